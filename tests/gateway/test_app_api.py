"""The API through the official ``openai`` client, unchanged: every endpoint, streaming,
usage, bad inputs, limits, accounting, and the operational endpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx2 as httpx
import openai
import pytest
from app_harness import ADMIN_KEY, KEYS, PRICES, Stack, stack

from backends import postgres_schema

MESSAGES = [{"role": "user", "content": "three little words"}]


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("api")) as st:
        yield st


@pytest.fixture(autouse=True)
def _healthy(s: Stack) -> None:
    s.heal()


def test_chat_completion(s: Stack) -> None:
    r = s.client().chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert r.choices[0].message.content == "".join(f"t{i} " for i in range(16))
    assert r.usage is not None and r.usage.prompt_tokens == 3
    assert r.usage.completion_tokens == 16
    assert r.system_fingerprint in ("azure", "aws", "gcp")


def test_chat_stream_without_usage_strips_the_usage_chunk(s: Stack) -> None:
    chunks = list(s.client().chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(f"t{i} " for i in range(16))
    assert all(c.choices for c in chunks), "the usage chunk the client did not ask for leaked"
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_stream_with_usage_keeps_it(s: Stack) -> None:
    chunks = list(s.client().chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True, max_tokens=5,
        stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 5)


def test_completions_stream_and_not(s: Stack) -> None:
    c = s.client()
    r = c.completions.create(model="gpt-test", prompt="one two", max_tokens=4)
    assert r.choices[0].text == "t0 t1 t2 t3 "
    assert r.usage is not None and r.usage.prompt_tokens == 2
    chunks = list(c.completions.create(model="gpt-test", prompt="one two", max_tokens=4,
                                       stream=True))
    assert "".join(ch.choices[0].text for ch in chunks) == "t0 t1 t2 t3 "


def test_embeddings_float_and_base64(s: Stack) -> None:
    c = s.client()
    r = c.embeddings.create(model="embed-test", input=["a b", "c"])  # client default: base64
    assert [len(d.embedding) for d in r.data] == [8, 8]
    f = c.embeddings.create(model="embed-test", input="a b", encoding_format="float")
    assert f.data[0].embedding == pytest.approx(r.data[0].embedding)
    assert r.usage.prompt_tokens == 3


def test_models_lists_what_the_tenant_may_use(s: Stack) -> None:
    assert sorted(m.id for m in s.client().models.list()) == ["embed-test", "gpt-test"]
    assert [m.id for m in s.client("nowhere").models.list()] == []
    assert s.client("azure").models.retrieve("gpt-test").id == "gpt-test"
    with pytest.raises(openai.NotFoundError):
        s.client("nowhere").models.retrieve("gpt-test")


def test_response_headers(s: Stack) -> None:
    raw = s.client().chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES)
    assert float(raw.headers["x-cloudhedge-overhead-ms"]) >= 0
    assert raw.headers["x-cloudhedge-deployment"] in ("azure-gpt", "aws-gpt", "gcp-gpt")
    assert raw.headers["x-request-id"]


def _assert_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["message"]


def test_bad_inputs_give_openai_errors_and_the_process_keeps_serving(s: Stack) -> None:
    url = s.url + "/v1/chat/completions"
    auth = {"Authorization": f"Bearer {KEYS['all']}"}
    _assert_error(httpx.post(url, content=b"{not json", headers=auth), 400, "invalid_request")
    _assert_error(httpx.post(url, content=b"[1, 2]", headers=auth), 400, "invalid_request")
    _assert_error(httpx.post(url, json={"messages": MESSAGES}, headers=auth), 400,
                  "invalid_request")
    _assert_error(httpx.post(url, json={"model": "gpt-test"}, headers=auth), 400,
                  "invalid_request")
    _assert_error(httpx.post(url, json={"model": "gpt-test", "messages": MESSAGES}), 401,
                  "missing_api_key")
    _assert_error(httpx.post(url, json={"model": "nope", "messages": MESSAGES}, headers=auth),
                  404, "model_not_found")
    _assert_error(httpx.post(s.url + "/v1/embeddings", json={"model": "gpt-test", "input": "x"},
                             headers=auth), 400, "invalid_request")
    _assert_error(httpx.get(url, headers=auth), 405, "method_not_allowed")
    _assert_error(httpx.get(s.url + "/v2/nothing"), 404, "not_found")

    c = s.client()
    with pytest.raises(openai.AuthenticationError):
        s.client(api_key="sk-wrong").chat.completions.create(
            model="gpt-test", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError) as nf:
        c.chat.completions.create(model="gpt-5", messages=MESSAGES)
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.PermissionDeniedError) as pd:
        s.client("nowhere").chat.completions.create(
            model="gpt-test", messages=MESSAGES)
    assert pd.value.code == "model_not_allowed"
    with pytest.raises(openai.APIStatusError) as big:
        c.chat.completions.create(model="gpt-test", messages=[
            {"role": "user", "content": "x" * 70_000}])
    assert big.value.status_code == 413
    assert c.chat.completions.create(model="gpt-test", messages=MESSAGES).choices


def test_rate_limit_gives_429_with_retry_after(s: Stack) -> None:
    c = s.client("limited")
    for _ in range(2):
        c.completions.create(model="gpt-test", prompt="x")
    with pytest.raises(openai.RateLimitError) as e:
        c.completions.create(model="gpt-test", prompt="x")
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert e.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_accounting_sums_equal_usage_times_prices(tmp_path: Path, backend: str) -> None:
    with ExitStack() as es:
        url = es.enter_context(postgres_schema()) if backend == "postgresql" else None
        st = es.enter_context(stack(tmp_path, database_url=url))
        c = st.client()
        expected: dict[str, list[float]] = {}  # deployment -> [requests, in, out, cost]

        def add(deployment: str, n_in: int, n_out: int) -> None:
            price_in, price_out = PRICES[deployment.split("-")[0]]
            row = expected.setdefault(deployment, [0, 0, 0, 0.0])
            row[0] += 1
            row[1] += n_in
            row[2] += n_out
            row[3] += (n_in * price_in + n_out * price_out) / 1e6

        for i in range(12):
            if i % 3 == 0:
                raw = c.chat.completions.with_raw_response.create(
                    model="gpt-test", messages=MESSAGES, max_tokens=1 + i)
                usage = raw.parse().usage
                assert usage is not None
                add(raw.headers["x-cloudhedge-deployment"], usage.prompt_tokens,
                    usage.completion_tokens)
            elif i % 3 == 1:
                raw = c.chat.completions.with_raw_response.create(
                    model="gpt-test", messages=MESSAGES, max_tokens=1 + i, stream=True,
                    stream_options={"include_usage": True})
                last = list(raw.parse())[-1]
                assert last.usage is not None
                add(raw.headers["x-cloudhedge-deployment"], last.usage.prompt_tokens,
                    last.usage.completion_tokens)
            else:  # a stream without usage asked: still accounted (3 in, max_tokens out)
                raw = c.chat.completions.with_raw_response.create(
                    model="gpt-test", messages=MESSAGES, max_tokens=1 + i, stream=True)
                list(raw.parse())
                add(raw.headers["x-cloudhedge-deployment"], 3, 1 + i)
        st.app.store.flush()
        totals = st.app.store.totals(by="deployment")
        for name, (n, n_in, n_out, cost) in expected.items():
            t = totals[name]
            assert (t.requests, t.input_tokens, t.output_tokens) == (n, n_in, n_out)
            assert t.cost_usd == pytest.approx(cost, abs=1e-9)
        assert st.app.store.totals(by="tenant")["acme"].cost_usd == pytest.approx(
            sum(row[3] for row in expected.values()), abs=1e-9)


def test_health_ready_and_metrics(s: Stack) -> None:
    assert httpx.get(s.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(s.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    s.client().completions.create(model="gpt-test", prompt="x")
    text = httpx.get(s.url + "/metrics").text
    for name in ("cloudhedge_gateway_requests_total", "cloudhedge_gateway_overhead_seconds",
                 "cloudhedge_gateway_request_duration_seconds_bucket",
                 "cloudhedge_gateway_ttft_seconds", "cloudhedge_gateway_tokens_total",
                 "cloudhedge_gateway_cost_usd_total", "cloudhedge_gateway_in_flight",
                 "cloudhedge_gateway_deployment_available"):
        assert name in text
    assert 'tenant="acme"' in text


def test_readyz_fails_when_no_deployment_is_routable(s: Stack) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    names = [d["name"] for d in httpx.get(s.url + "/admin/deployments", headers=admin)
             .json()["deployments"]]
    try:
        for name in names:
            httpx.post(f"{s.url}/admin/deployments/{name}/drain", headers=admin)
        ready = httpx.get(s.url + "/readyz")
        assert ready.status_code == 503 and ready.json()["routable_deployments"] == 0
    finally:
        for name in names:
            httpx.post(f"{s.url}/admin/deployments/{name}/enable", headers=admin)


def test_upstream_model_is_sent_upstream_and_usage_asked_for_in_streams(tmp_path: Path) -> None:
    with stack(tmp_path) as st:
        config = st.app.config
        st.app.replace_config(dataclasses.replace(config, deployments=tuple(
            dataclasses.replace(d, upstream_model="vendor/gpt-test-v2")
            for d in config.deployments)))
        c = st.client()
        assert c.completions.create(model="gpt-test", prompt="x").model == "vendor/gpt-test-v2"
        chunks = list(c.chat.completions.create(model="gpt-test", messages=MESSAGES,
                                                stream=True))
        assert {ch.model for ch in chunks} == {"vendor/gpt-test-v2"}
        st.app.store.flush()
        assert st.app.store.totals(by="model")["gpt-test"].output_tokens == 32
