"""Health and failover against real mocks: invisible failover before the first byte, an
explicit SSE error after it, Retry-After, breaker cool-down, client disconnects, and the
failover proof (steady mixed load, two of three providers killed, zero failures)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest
from app_harness import ADMIN_KEY, KEYS, Stack, stack

from cloudhedge.gateway.config import HealthPolicy, Route, Strategy

MESSAGES = [{"role": "user", "content": "hello"}]
FULL = "".join(f"t{i} " for i in range(16))
# azure first, always; aws and gcp are standbys (weight 0) for failover only.
AZURE_FIRST = {"gpt-test": Route("gpt-test", Strategy.WEIGHTED,
                                 {"azure-gpt": 1.0, "aws-gpt": 0.0, "gcp-gpt": 0.0})}


@pytest.fixture
def s(tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path, routes=AZURE_FIRST) as st:
        yield st


def _admin(s: Stack) -> dict[str, dict[str, object]]:
    r = httpx.get(s.url + "/admin/deployments",
                  headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    return {d["name"]: d for d in r.json()["deployments"]}


@pytest.mark.parametrize("mode", ["reset", "error500", "hang", "cut_after"])
def test_failover_before_the_first_byte_is_invisible(s: Stack, mode: str) -> None:
    s.mocks["azure"].fault(mode, chunks=0)
    c = s.client()
    raw = c.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == FULL
    assert raw.headers["x-cloudhedge-deployment"] in ("aws-gpt", "gcp-gpt")
    raw = c.chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, stream=True)
    chunks = list(raw.parse())
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == FULL
    assert raw.headers["x-cloudhedge-deployment"] in ("aws-gpt", "gcp-gpt")
    assert s.mocks["azure"].stats()["faults"] >= 1


def test_failure_after_the_first_byte_ends_the_stream_with_an_error_event(s: Stack) -> None:
    s.mocks["azure"].fault("cut_after", chunks=3)
    received: list[str] = []
    with pytest.raises(openai.APIError) as e:
        for ch in s.client().chat.completions.create(
                model="gpt-test", messages=MESSAGES, stream=True):
            received.append(ch.choices[0].delta.content or "")
    assert received == ["t0 ", "t1 ", "t2 "]
    assert isinstance(e.value.body, dict) and e.value.body["code"] == "stream_interrupted"
    assert "azure-gpt" in e.value.message
    # On the wire: the error event is the last one and there is no [DONE].
    body = httpx.post(s.url + "/v1/completions", headers={"Authorization": f"Bearer {KEYS['all']}"},
                      json={"model": "gpt-test", "prompt": "x", "stream": True}).text
    events = [e for e in body.split("\n\n") if e]
    assert events[-1].startswith('data: {"error":') and "[DONE]" not in body


def test_retry_after_is_waited_for_when_no_other_deployment_is_left(s: Stack) -> None:
    # The azure-only tenant has one deployment: a short Retry-After is waited out.
    s.mocks["azure"].fault("error429", count=1, retry_after_s=0.3)
    t0 = time.monotonic()
    r = s.client("azure").chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert r.choices[0].message.content == FULL
    assert time.monotonic() - t0 >= 0.3
    assert s.mocks["azure"].stats()["requests"] == 2
    # A Retry-After beyond max_retry_after_s (2 s) is not waited for: 503 + Retry-After.
    time.sleep(0.6)  # the breaker the first 429 opened cools down
    s.mocks["azure"].fault("error429", count=1, retry_after_s=30)
    t0 = time.monotonic()
    with pytest.raises(openai.InternalServerError) as e:
        s.client("azure").chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert time.monotonic() - t0 < 1.0
    assert e.value.status_code == 503 and e.value.response.headers["retry-after"] == "30"
    assert "azure-gpt: HTTP 429" in e.value.message


def test_retry_after_opens_the_breaker_and_traffic_goes_elsewhere(s: Stack) -> None:
    s.mocks["azure"].fault("error429", count=1, retry_after_s=30)
    c = s.client()
    for _ in range(5):
        raw = c.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)
        assert raw.headers["x-cloudhedge-deployment"] != "azure-gpt"
    assert s.mocks["azure"].stats()["requests"] == 1
    assert _admin(s)["azure-gpt"]["state"] == "open"


def test_breaker_cooldown_then_traffic_returns(s: Stack) -> None:
    s.mocks["azure"].fault("error500")
    c = s.client()
    for _ in range(6):  # every request succeeds elsewhere; azure opens after 2 failures
        assert c.chat.completions.create(model="gpt-test", messages=MESSAGES).choices
    assert s.mocks["azure"].stats()["requests"] == 2
    assert _admin(s)["azure-gpt"]["state"] == "open"
    s.mocks["azure"].fault("none")
    time.sleep(0.6)  # the cool-down (0.5 s)
    raw = c.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)
    assert raw.headers["x-cloudhedge-deployment"] == "azure-gpt"
    assert _admin(s)["azure-gpt"]["state"] == "closed"


def test_all_attempts_failed_names_each_deployment_and_error(s: Stack) -> None:
    s.mocks["azure"].fault("error500")
    s.mocks["aws"].fault("reset")
    s.mocks["gcp"].fault("hang")
    with pytest.raises(openai.APIStatusError) as e:
        s.client().chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert e.value.status_code == 502
    for name in ("azure-gpt: HTTP 500", "aws-gpt: connection", "gcp-gpt: no first byte"):
        assert name in e.value.message


def test_client_disconnect_cancels_the_upstream_request(tmp_path: Path) -> None:
    with stack(tmp_path, timeout_s=30.0) as s:
        s.mocks["azure"].fault("hang")
        with pytest.raises(openai.APITimeoutError):
            s.client("azure", timeout=0.3).chat.completions.create(
                model="gpt-test", messages=MESSAGES)
        deadline = time.monotonic() + 3
        while _admin(s)["azure-gpt"]["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _admin(s)["azure-gpt"]["in_flight"] == 0
        s.app.store.flush()
        assert s.app.store.totals(by="deployment")["azure-gpt"].requests == 1
        assert len(s.mocks["azure"].upstream.connections) == 0  # the hung one was closed


async def _load(s: Stack, stop: asyncio.Event, failures: list[str], workers: int = 6) -> int:
    """Mixed streaming / non-streaming requests until ``stop``; returns how many."""
    client = s.async_client()
    done = 0

    async def worker(i: int) -> None:
        nonlocal done
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if (i + n) % 2:
                    r = await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
                    ok = r.choices[0].message.content == FULL
                else:
                    stream = await client.chat.completions.create(
                        model="gpt-test", messages=MESSAGES, stream=True)
                    ok = "".join([ch.choices[0].delta.content or "" async for ch in stream]) == FULL
                if not ok:
                    failures.append("incomplete answer")
            except openai.APIError as e:
                failures.append(f"{type(e).__name__}: {e}")
            done += 1

    await asyncio.gather(*(worker(i) for i in range(workers)))
    await client.close()
    return done


def test_failover_proof_zero_failures_while_one_provider_is_healthy(tmp_path: Path) -> None:
    policy = HealthPolicy(failure_threshold=2, cooldown_s=0.5)
    with stack(tmp_path, latency_ms=2, tokens_per_s=4000, health=policy) as s:
        failures: list[str] = []

        async def scenario() -> tuple[int, dict[str, int], dict[str, int]]:
            stop = asyncio.Event()
            load = asyncio.ensure_future(_load(s, stop, failures))
            await asyncio.sleep(0.8)
            s.mocks["azure"].fault("reset")  # first provider dies: connections reset
            await asyncio.sleep(0.8)
            s.mocks["aws"].fault("hang")  # second one hangs: timeouts to first byte
            await asyncio.sleep(1.2)
            before = s.served()
            s.mocks["azure"].fault("none")
            s.mocks["aws"].fault("none")
            await asyncio.sleep(1.5)  # cool-down (0.5 s), half-open trial, closed
            after = s.served()
            stop.set()
            return await load, before, after

        total, before, after = asyncio.run(scenario())
        assert failures == []
        assert total > 100
        # Traffic returned to both restored providers after the cool-down.
        assert after["azure"] - before["azure"] > 10
        assert after["aws"] - before["aws"] > 10
        text = httpx.get(s.url + "/metrics").text
        assert "cloudhedge_gateway_failovers_total" in text


def test_a_stopped_upstream_is_failed_over_and_traffic_returns_when_it_is_back(
        tmp_path: Path) -> None:
    with stack(tmp_path, health=HealthPolicy(failure_threshold=1, cooldown_s=0.3)) as s:
        c = s.client()
        s.mocks["azure"].stop()  # connection refused
        s.mocks["aws"].stop()
        for _ in range(10):
            assert c.completions.create(model="gpt-test", prompt="x").choices
        s.mocks["azure"].start()
        s.mocks["aws"].start()
        time.sleep(0.4)
        seen = set()
        for _ in range(30):
            raw = c.completions.with_raw_response.create(model="gpt-test", prompt="x")
            seen.add(raw.headers["x-cloudhedge-deployment"])
        assert seen == {"azure-gpt", "aws-gpt", "gcp-gpt"}


def test_active_probes_open_a_dead_deployment_before_any_client_hits_it(
        tmp_path: Path) -> None:
    policy = HealthPolicy(failure_threshold=1, cooldown_s=5.0, probe_interval_s=0.1)
    with stack(tmp_path, health=policy) as s:
        s.mocks["aws"].fault("error500")
        deadline = time.monotonic() + 3
        while _admin(s)["aws-gpt"]["state"] != "open" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _admin(s)["aws-gpt"]["state"] == "open"
        assert _admin(s)["azure-gpt"]["state"] == "closed"
        assert s.mocks["aws"].stats()["by_endpoint"].get("chat", 0) == 0
