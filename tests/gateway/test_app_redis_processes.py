"""Two gateway processes, one Redis: a limit and a circuit breaker mean the same as in one.

Deployment and key names carry a fresh suffix, so the Redis keys of this test are its
own (other tests and earlier runs share the server).
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from pathlib import Path

import openai
import pytest
from app_harness import gateway_process

from backends import redis_namespace
from cloudhedge.gateway.mock import MockServer

REDIS = "redis://127.0.0.1:6379/0"


def _config(tmp_path: Path, urls: dict[str, str], suffix: str, *, redis: bool,
            rpm: int = 1000) -> Path:
    deployments = "\n".join(
        f"  - {{name: {name}-{suffix}, model: m, provider: {name}, region: r1, "
        f"jurisdiction: us, base_url: \"{url}\", timeout_s: 0.5}}"
        for name, url in urls.items())
    path = tmp_path / f"gateway-{redis}.yaml"
    path.write_text(f"""\
deployments:
{deployments}
tenant_classes:
  any: {{}}
tenants:
  t: {{class: any}}
keys:
  - {{name: k-{suffix}, tenant: t, key_env: TEST_TWO_PROCS_KEY, requests_per_minute: {rpm}}}
health: {{failure_threshold: 1, cooldown_s: 60}}
retry: {{max_attempts: 3, deadline_s: 10}}
database_url: "sqlite:///{tmp_path / 'gw.db'}"
{f'redis_url: "{REDIS}"' if redis else ''}
""", encoding="utf-8")
    return path


def _ask(url: str) -> int:
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-two", max_retries=0)
    try:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    except openai.RateLimitError:
        return 429
    return 200


@pytest.mark.parametrize("shared", [True, False])
def test_a_rate_limit_holds_across_two_processes_only_with_redis(tmp_path: Path,
                                                                 shared: bool) -> None:
    if shared:
        with redis_namespace():  # skips when Redis is unreachable
            pass
    suffix = uuid.uuid4().hex[:10]
    env = {"TEST_TWO_PROCS_KEY": "sk-two"}
    with MockServer(name="azure") as up:
        config = _config(tmp_path, {"azure": up}, suffix, redis=shared, rpm=6)
        with gateway_process(["--config", str(config)], env) as (a, _), \
                gateway_process(["--config", str(config)], env) as (b, _):
            codes = [_ask(a if i % 2 else b) for i in range(10)]
    # 6 per minute for the key: with Redis the two processes share them; without,
    # each process counts its own 6 and the key gets 10
    assert codes.count(200) == (6 if shared else 10)
    assert codes.count(429) == (4 if shared else 0)


def test_a_breaker_opened_by_one_process_is_open_in_the_other(tmp_path: Path) -> None:
    with redis_namespace():  # skips when Redis is unreachable
        pass
    suffix = uuid.uuid4().hex[:10]
    env = {"TEST_TWO_PROCS_KEY": "sk-two"}
    with ExitStack() as es:
        mocks = [MockServer(name="azure"), MockServer(name="aws")]
        urls = {m.upstream.settings.name: es.enter_context(m) for m in mocks}
        config = _config(tmp_path, urls, suffix, redis=True)
        a, _ = es.enter_context(gateway_process(["--config", str(config)], env))
        b, _ = es.enter_context(gateway_process(["--config", str(config)], env))

        def served() -> int:
            return sum(int(m.stats()["requests"]) for m in mocks)

        for m in mocks:
            m.fault("error500")
        # process a meets the failures and opens both breakers (threshold 1)
        with pytest.raises(openai.APIStatusError):
            _create(a)
        for m in mocks:
            m.fault("none")
        before = served()
        # process b has sent nothing yet, but the breakers it reads are open
        with pytest.raises(openai.APIStatusError) as err:
            _create(b)
        assert served() == before  # process b tried no upstream
        assert err.value.status_code == 503


def _create(url: str) -> None:
    openai.OpenAI(base_url=url + "/v1", api_key="sk-two", max_retries=0) \
        .chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
