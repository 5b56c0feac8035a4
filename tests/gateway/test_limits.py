"""Rate limits and budgets: the same decisions in-process and through a real Redis."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends import REDIS_URL, FakeClock, redis_namespace
from cloudhedge.gateway.config import ApiKey, Tenant
from cloudhedge.gateway.limits import (
    Decision,
    Limiter,
    LocalLimiter,
    RedisLimiter,
    make_limiter,
)
from cloudhedge.gateway.store import RequestRecord, UsageStore

TENANT = Tenant("acme", "standard")
MakeLimiter = Callable[..., Limiter]  # (store=None, clock=...) -> Limiter


def key(**limits: Any) -> ApiKey:
    return ApiKey(name=limits.pop("name", "k1"), key_hash="h", tenant="acme", **limits)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


@pytest.fixture(params=["local", "redis"])
def make(request: pytest.FixtureRequest) -> Iterator[MakeLimiter]:
    if request.param == "local":
        yield lambda store=None, clock=time.monotonic: LocalLimiter(store, clock=clock)
    else:
        with redis_namespace() as prefix:
            yield lambda store=None, clock=time.time: RedisLimiter(
                REDIS_URL, prefix=prefix, store=store, clock=clock)


def test_requests_per_minute(make: MakeLimiter) -> None:
    async def main() -> None:
        clock = FakeClock(1_000_000.5)
        limiter = make(clock=clock)
        k = key(requests_per_minute=3)
        assert [(await limiter.admit(k, TENANT)).allowed for _ in range(3)] == [True] * 3
        clock.advance(10)  # 1_000_010.5
        refused = await limiter.admit(k, TENANT)
        assert refused == Decision(False, "API key 'k1' is limited to 3 requests per minute",
                                   49.5, 429, "rate_limit_exceeded")
        assert not (await limiter.admit(k, TENANT)).allowed  # refusals are not counted
        clock.advance(49.4)  # 1_000_059.9: the first second's bucket still counts
        # Redis rounds up to the millisecond
        assert (await limiter.admit(k, TENANT)).retry_after_s == pytest.approx(0.1, abs=2e-3)
        clock.advance(0.1)  # 1_000_060.0: it has left the window, with its 3 requests
        assert [(await limiter.admit(k, TENANT)).allowed for _ in range(4)] == [True] * 3 + [
            False]
        await limiter.close()

    run(main())


def test_retry_after_waits_for_enough_requests_to_leave(make: MakeLimiter) -> None:
    async def main() -> None:
        clock = FakeClock(2_000_000.0)
        limiter = make(clock=clock)
        k = key(requests_per_minute=4)
        for step in (0, 10, 10, 10):  # one request at +0, +10, +20, +30 s
            clock.advance(step)
            assert (await limiter.admit(k, TENANT)).allowed
        clock.advance(5)  # +35
        assert (await limiter.admit(k, TENANT)).retry_after_s == pytest.approx(25.0)
        await limiter.close()

    run(main())


def test_tokens_per_minute(make: MakeLimiter) -> None:
    async def main() -> None:
        clock = FakeClock(3_000_000.25)
        limiter = make(clock=clock)
        k = key(tokens_per_minute=100)
        assert (await limiter.admit(k, TENANT)).allowed
        await limiter.record(k, TENANT, 60, 0.0)
        clock.advance(20)
        assert (await limiter.admit(k, TENANT)).allowed  # 60 < 100
        await limiter.record(k, TENANT, 50, 0.0)
        refused = await limiter.admit(k, TENANT)
        assert (refused.allowed, refused.status, refused.code) == (
            False, 429, "rate_limit_exceeded")
        assert refused.reason == "API key 'k1' is limited to 100 tokens per minute"
        assert refused.retry_after_s == pytest.approx(39.75)  # the first 60 tokens leave
        clock.advance(39.75)
        assert (await limiter.admit(k, TENANT)).allowed  # 50 < 100
        await limiter.close()

    run(main())


def test_both_rate_limits_report_the_later_retry(make: MakeLimiter) -> None:
    async def main() -> None:
        clock = FakeClock(4_000_000.0)
        limiter = make(clock=clock)
        k = key(requests_per_minute=1, tokens_per_minute=10)
        assert (await limiter.admit(k, TENANT)).allowed
        clock.advance(30)
        await limiter.record(k, TENANT, 10, 0.0)
        refused = await limiter.admit(k, TENANT)
        assert refused.reason == "API key 'k1' is limited to 1 requests per minute"
        assert refused.retry_after_s == pytest.approx(60.0)  # tokens leave at +90 s
        await limiter.close()

    run(main())


def test_budgets_per_key_and_per_tenant(make: MakeLimiter) -> None:
    async def main() -> None:
        limiter = make()
        tenant = Tenant("acme", "standard", budget_usd=2.0)
        k1, k2 = key(name="k1", budget_usd=1.0), key(name="k2")
        assert (await limiter.admit(k1, tenant)).allowed
        await limiter.record(k1, tenant, 100, 0.6)
        assert (await limiter.admit(k1, tenant)).allowed
        await limiter.record(k1, tenant, 100, 0.4)
        refused = await limiter.admit(k1, tenant)
        assert refused == Decision(False, "API key 'k1' has spent its budget of 1 USD", None,
                                   403, "insufficient_quota")
        assert (await limiter.admit(k2, tenant)).allowed  # the tenant has 1 USD left
        await limiter.record(k2, tenant, 100, 1.0)
        refused = await limiter.admit(k2, tenant)
        assert refused == Decision(False, "tenant 'acme' has spent its budget of 2 USD", None,
                                   403, "insufficient_quota")
        await limiter.close()

    run(main())


def test_budgets_start_from_the_store(make: MakeLimiter, tmp_path: Path) -> None:
    store = UsageStore(f"sqlite:///{tmp_path / 'usage.db'}")
    for i, (k, cost) in enumerate([("k1", 0.7), ("k1", 0.2), ("k2", 0.5)]):
        store.record(RequestRecord(f"r{i}", 0.0, k, "acme", "m", "chat", "d", "p", 200, 1, 1,
                                   cost, 1.0, 0.1, 1, False))
    store.flush()

    async def main() -> None:
        limiter = make(store=store)
        k1 = key(name="k1", budget_usd=1.0)
        tenant = Tenant("acme", "standard", budget_usd=1.5)
        assert (await limiter.admit(k1, TENANT)).allowed  # 0.9 spent before this process
        await limiter.record(k1, TENANT, 10, 0.1)
        assert (await limiter.admit(k1, TENANT)).status == 403
        # The tenant's 1.4 USD (k1 and k2) plus 0.1 recorded here reaches its 1.5 USD.
        assert (await limiter.admit(key(name="k2"), tenant)).status == 403
        await limiter.close()

    try:
        run(main())
    finally:
        store.close()


def test_two_redis_limiters_share_one_limit() -> None:
    async def main(prefix: str) -> None:
        a = RedisLimiter(REDIS_URL, prefix=prefix)
        b = RedisLimiter(REDIS_URL, prefix=prefix)
        k = key(requests_per_minute=50, budget_usd=1.0)
        decisions = await asyncio.gather(*(lim.admit(k, TENANT) for _ in range(60)
                                           for lim in (a, b)))
        assert sum(d.allowed for d in decisions) == 50  # not 50 per instance
        await a.record(k, TENANT, 10, 0.5)
        await b.record(k, TENANT, 10, 0.5)
        assert (await a.admit(k, TENANT)).code == "insufficient_quota"
        assert (await b.admit(k, TENANT)).code == "insufficient_quota"
        await a.close()
        await b.close()

    with redis_namespace() as prefix:
        asyncio.run(main(prefix))


def _admit_in_a_process(prefix: str, attempts: int, start: Any, results: Any) -> None:
    """Child process: connect, wait for the other one, then try ``attempts`` admissions."""

    async def main() -> int:
        limiter = RedisLimiter(REDIS_URL, prefix=prefix)
        k = key(requests_per_minute=70)
        await limiter.admit(key(name="warm-up", requests_per_minute=1e9), TENANT)  # connected
        start.wait()
        allowed = sum([(await limiter.admit(k, TENANT)).allowed for _ in range(attempts)])
        await limiter.close()
        return allowed

    results.put(asyncio.run(main()))


def test_two_processes_share_one_limit() -> None:
    ctx = multiprocessing.get_context("spawn")
    with redis_namespace() as prefix:
        start, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_admit_in_a_process, args=(prefix, 100, start, results))
                 for _ in range(2)]
        for p in procs:
            p.start()
        allowed = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=10)
            assert p.exitcode == 0
    assert sum(allowed) == 70, allowed  # 70 in total across both processes
    assert all(n > 0 for n in allowed), allowed  # both really competed


def test_keys_without_limits_are_admitted_without_counting() -> None:
    async def main() -> None:
        limiter = LocalLimiter()
        k = key()
        assert all([(await limiter.admit(k, TENANT)).allowed for _ in range(1000)])
        await limiter.close()

    run(main())


def test_make_limiter() -> None:
    async def main() -> None:
        local = make_limiter(None, None)
        shared = make_limiter(REDIS_URL, None, prefix="cloudhedge-test:")
        assert isinstance(local, LocalLimiter)
        assert isinstance(shared, RedisLimiter)
        await local.close()
        await shared.close()

    run(main())


def test_unreachable_redis_fails_closed() -> None:
    async def main() -> None:
        limiter = RedisLimiter("redis://127.0.0.1:1/0")  # nothing listens on port 1
        k = key(requests_per_minute=10)
        decision = await limiter.admit(k, TENANT)
        assert (decision.allowed, decision.status, decision.code, decision.retry_after_s) == (
            False, 503, "service_unavailable", 1.0)
        await limiter.record(k, TENANT, 10, 0.5)  # dropped, never raises
        await limiter.close()

    run(main())
