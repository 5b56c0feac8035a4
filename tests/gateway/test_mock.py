"""The mock upstream, straight through the official ``openai`` client and raw HTTP:
every endpoint, usage, pacing, each fault, stats, stop / start."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx2 as httpx
import openai
import pytest

from cloudhedge.gateway.mock import Fault, FaultMode, MockServer

MESSAGES = [{"role": "user", "content": "count these four words"}]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    server = MockServer(name="m1", output_tokens=6)
    with server:
        yield server


@pytest.fixture(autouse=True)
def _no_fault(mock: MockServer) -> None:
    mock.fault("none")


@pytest.fixture
def client(mock: MockServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.base_url, api_key="unused", max_retries=0, timeout=5)


def test_chat_stream_and_not_with_usage(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="any-model", messages=MESSAGES)
    assert r.model == "any-model" and r.system_fingerprint == "m1"
    assert r.choices[0].message.content == "t0 t1 t2 t3 t4 t5 "
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (4, 6)
    chunks = list(client.chat.completions.create(model="x", messages=MESSAGES, stream=True,
                                                 max_tokens=3))
    assert [c.choices[0].delta.content for c in chunks] == ["t0 ", "t1 ", "t2 ", None]
    assert all(c.usage is None for c in chunks)
    with_usage = list(client.chat.completions.create(
        model="x", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert with_usage[-1].choices == [] and with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == 6


def test_completions_embeddings_models(client: openai.OpenAI) -> None:
    r = client.completions.create(model="x", prompt="a b c", max_tokens=2)
    assert r.choices[0].text == "t0 t1 " and r.usage is not None and r.usage.prompt_tokens == 3
    chunks = list(client.completions.create(model="x", prompt="a", stream=True))
    assert "".join(c.choices[0].text for c in chunks) == "t0 t1 t2 t3 t4 t5 "
    e = client.embeddings.create(model="x", input=["a", "b c"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == 8
    assert e.data[0].embedding != e.data[1].embedding
    assert [m.id for m in client.models.list()] == ["mock"]


def test_errors_and_retry_after(mock: MockServer, client: openai.OpenAI) -> None:
    mock.fault("error500", count=1)
    with pytest.raises(openai.InternalServerError):
        client.completions.create(model="x", prompt="a")
    assert client.completions.create(model="x", prompt="a").choices  # count=1: one only
    mock.fault("error429", retry_after_s=7)
    with pytest.raises(openai.RateLimitError) as e:
        client.completions.create(model="x", prompt="a")
    assert e.value.response.headers["retry-after"] == "7"


def test_reset_hang_and_cut(mock: MockServer, client: openai.OpenAI) -> None:
    mock.fault("reset", count=1)
    with pytest.raises(openai.APIConnectionError):
        client.completions.create(model="x", prompt="a")
    mock.fault("hang", count=1)
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).completions.create(model="x", prompt="a")
    assert time.monotonic() - t0 < 2
    mock.fault("cut_after", count=1, chunks=2)
    got = []
    with pytest.raises(openai.APIConnectionError):
        for c in client.completions.create(model="x", prompt="a", stream=True):
            got.append(c.choices[0].text)
    assert got == ["t0 ", "t1 "]
    assert client.completions.create(model="x", prompt="a").choices


def test_latency_and_pacing() -> None:
    with MockServer(latency_ms=100, tokens_per_s=50, output_tokens=5) as url:
        c = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        t0 = time.monotonic()
        stream = c.completions.create(model="x", prompt="a", stream=True)
        next(iter(stream))
        first = time.monotonic() - t0
        list(stream)
        total = time.monotonic() - t0
    assert 0.1 <= first < 0.3
    assert total >= 0.1 + 4 / 50


def test_stats_and_control_endpoints(mock: MockServer) -> None:
    base = mock.base_url.removesuffix("/v1")
    before = httpx.get(base + "/_mock/stats").json()
    httpx.post(mock.base_url + "/embeddings", json={"model": "x", "input": "a"})
    after = httpx.get(base + "/_mock/stats").json()
    assert after["requests"] == before["requests"] + 1
    assert after["by_endpoint"]["embeddings"] == before["by_endpoint"].get("embeddings", 0) + 1
    r = httpx.post(base + "/_mock/fault", json={"mode": "error500", "count": 2})
    assert r.status_code == 200 and r.json()["fault"]["mode"] == "error500"
    assert httpx.post(base + "/_mock/fault", json={"mode": "bogus"}).status_code == 400
    assert httpx.post(base + "/_mock/fault", json={"mode": "hang", "x": 1}).status_code == 400
    assert httpx.post(mock.base_url + "/chat/completions", content=b"{oops").status_code == 400
    assert Fault.from_json({"mode": "cut_after", "chunks": 3}) == Fault(FaultMode.CUT_AFTER,
                                                                        None, 1.0, 3)


def test_stop_refuses_then_start_serves_on_the_same_port() -> None:
    server = MockServer()
    with server as url:
        assert httpx.get(url + "/models").status_code == 200
        server.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/models")
        assert server.start() == url
        assert httpx.get(url + "/models").status_code == 200


def test_cli_mock_upstream_serves() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "from cloudhedge.cli.main import main; main()",
                             "mock-upstream", "--port", "0", "--name", "cli"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        r = httpx.post(url + "/chat/completions", json={"model": "x", "messages": MESSAGES})
        assert r.json()["system_fingerprint"] == "cli"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
