"""Policy is a security boundary: a tenant restricted to azure is never routed elsewhere,
whatever fails and however (a property over fault patterns on real mocks), and nothing
a client sends (fields, headers) widens what its key's tenant may use."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx2 as httpx
import openai
import pytest
from app_harness import KEYS, Stack, stack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudhedge.gateway.config import HealthPolicy, RetryPolicy
from cloudhedge.gateway.mock import FaultMode

MESSAGES = [{"role": "user", "content": "hello"}]
MODES = [m.value for m in FaultMode]


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Two azure deployments (one more, on the azure mock, in another region) so that
    # failover inside the allowed set is exercised too; short timeouts and cool-downs.
    with stack(tmp_path_factory.mktemp("policy"), timeout_s=0.15,
               health=HealthPolicy(failure_threshold=1, cooldown_s=0.05),
               retry=RetryPolicy(max_attempts=3, deadline_s=2.0, max_retry_after_s=0.1)) as st_:
        config = st_.app.config
        azure = next(d for d in config.deployments if d.name == "azure-gpt")
        extra = dataclasses.replace(azure, name="azure-gpt-west", region="azure-west")
        st_.app.replace_config(dataclasses.replace(
            config, deployments=(*config.deployments, extra)))
        yield st_


fault = st.fixed_dictionaries({
    "mode": st.sampled_from(MODES),
    "count": st.one_of(st.none(), st.integers(0, 3)),
    "chunks": st.integers(0, 4),
})


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(faults=st.fixed_dictionaries({p: fault for p in ("azure", "aws", "gcp")}),
       stream=st.booleans(), chat=st.booleans())
def test_an_azure_only_tenant_is_never_routed_elsewhere(
        s: Stack, faults: dict[str, dict[str, object]], stream: bool, chat: bool) -> None:
    for provider, f in faults.items():
        s.mocks[provider].fault(str(f["mode"]), count=f["count"],
                                chunks=int(f["chunks"]), retry_after_s=0.05)
    others = {p: s.mocks[p].stats()["requests"] for p in ("aws", "gcp")}
    client = s.client("azure", timeout=5.0)
    try:
        if chat:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-test", messages=MESSAGES, stream=stream)
        else:
            raw = client.completions.with_raw_response.create(
                model="gpt-test", prompt="x", stream=stream)
        assert raw.headers["x-cloudhedge-deployment"].startswith("azure-")
        result = raw.parse()
        if stream:
            list(result)
    except openai.APIStatusError as e:
        assert e.status_code in (502, 503, 504)
        assert "aws" not in e.message and "gcp" not in e.message
    except openai.APIError as e:  # a stream cut after its first bytes
        assert isinstance(e.body, dict) and e.body["code"] == "stream_interrupted"
    assert {p: s.mocks[p].stats()["requests"] for p in ("aws", "gcp")} == others


def test_no_allowed_deployment_is_403_never_any(s: Stack) -> None:
    before = s.served()
    with pytest.raises(openai.PermissionDeniedError):
        s.client("nowhere").chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert s.served() == before


def test_request_fields_and_headers_do_not_widen_the_allowed_set(s: Stack) -> None:
    s.heal()
    for mock in s.mocks.values():
        mock.fault("none")
    s.mocks["azure"].fault("error500")
    others = {p: s.mocks[p].stats()["requests"] for p in ("aws", "gcp")}
    r = httpx.post(s.url + "/v1/chat/completions", json={
        "model": "gpt-test", "messages": MESSAGES, "tenant": "acme", "user": "acme",
        "provider": "aws", "deployment": "gcp-gpt", "metadata": {"tenant_class": "any"}},
        headers={"Authorization": f"Bearer {KEYS['azure']}", "X-Tenant": "acme",
                 "X-Cloudhedge-Deployment": "aws-gpt", "X-Provider": "gcp"})
    assert r.status_code == 502
    assert {p: s.mocks[p].stats()["requests"] for p in ("aws", "gcp")} == others
