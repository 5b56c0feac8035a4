"""Circuit breakers: the same transitions in-process and through a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from backends import REDIS_URL, FakeClock, redis_namespace
from cloudhedge.gateway.breaker import (
    Breakers,
    BreakerState,
    LocalBreakers,
    RedisBreakers,
    State,
    make_breakers,
)
from cloudhedge.gateway.config import HealthPolicy

POLICY = HealthPolicy(failure_threshold=3, cooldown_s=30.0)
MakeBreakers = Callable[[FakeClock], Breakers]


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


@pytest.fixture(params=["local", "redis"])
def make(request: pytest.FixtureRequest) -> Iterator[MakeBreakers]:
    if request.param == "local":
        yield lambda clock: LocalBreakers(POLICY, clock)
    else:
        with redis_namespace() as prefix:
            yield lambda clock: RedisBreakers(REDIS_URL, POLICY, prefix=prefix, clock=clock)


def test_opens_at_the_threshold_of_consecutive_failures(make: MakeBreakers) -> None:
    async def main() -> None:
        clock = FakeClock(5_000.0)
        b = make(clock)
        assert await b.state("d1") == BreakerState(State.CLOSED, 0, None, None)
        await b.failure("d1", "timeout")
        await b.failure("d1", "timeout")
        assert await b.state("d1") == BreakerState(State.CLOSED, 2, None, "timeout")
        await b.success("d1")  # not consecutive any more
        await b.failure("d1", "timeout")
        await b.failure("d1", "502")
        assert await b.available("d1")
        assert await b.state("d1") == BreakerState(State.CLOSED, 2, None, "502")
        await b.failure("d1", "connection refused")
        assert not await b.available("d1")
        assert await b.state("d1") == BreakerState(State.OPEN, 3, 5_030.0, "connection refused")
        assert await b.available("d2")  # breakers are per deployment
        await b.close()

    run(main())


def test_cooldown_then_one_trial_then_closed(make: MakeBreakers) -> None:
    async def main() -> None:
        clock = FakeClock(5_000.0)
        b = make(clock)
        for _ in range(3):
            await b.failure("d1", "503")
        clock.advance(29.9)
        assert not await b.available("d1")
        await b.success("d1")  # a late answer while open does not close it
        assert (await b.state("d1")).state is State.OPEN
        clock.advance(0.1)
        assert (await b.state("d1")).state is State.HALF_OPEN
        assert [await b.available("d1") for _ in range(3)] == [True, False, False]
        await b.success("d1")
        assert await b.state("d1") == BreakerState(State.CLOSED, 0, None, "503")
        assert await b.available("d1")
        await b.close()

    run(main())


def test_failed_trial_reopens_and_a_lost_trial_is_replaced(make: MakeBreakers) -> None:
    async def main() -> None:
        clock = FakeClock(5_000.0)
        b = make(clock)
        for _ in range(3):
            await b.failure("d1", "503")
        clock.advance(30)
        assert await b.available("d1")  # the trial
        await b.failure("d1", "still 503")
        assert not await b.available("d1")
        assert await b.state("d1") == BreakerState(State.OPEN, 4, 5_060.0, "still 503")
        clock.advance(30)
        assert await b.available("d1")  # a trial that never reports...
        clock.advance(29)
        assert not await b.available("d1")
        clock.advance(1)
        assert await b.available("d1")  # ...is replaced after a cooldown
        await b.close()

    run(main())


def test_retry_after_opens_at_once_for_the_longer_wait(make: MakeBreakers) -> None:
    async def main() -> None:
        clock = FakeClock(5_000.0)
        b = make(clock)
        await b.failure("long", "429", retry_after_s=100.0)
        await b.failure("short", "429", retry_after_s=5.0)
        assert await b.state("long") == BreakerState(State.OPEN, 1, 5_100.0, "429")
        assert await b.state("short") == BreakerState(State.OPEN, 1, 5_030.0, "429")
        clock.advance(50)
        await b.failure("short", "429", retry_after_s=60.0)  # extends an open breaker
        assert (await b.state("short")).open_until == 5_110.0
        await b.failure("long", "timeout")  # a failure without Retry-After does not extend
        assert (await b.state("long")).open_until == 5_100.0
        clock.advance(49.9)
        assert not await b.available("long")
        clock.advance(0.1)
        assert await b.available("long")
        await b.close()

    run(main())


def test_drain(make: MakeBreakers) -> None:
    async def main() -> None:
        clock = FakeClock(5_000.0)
        b = make(clock)
        await b.drain("d1", True)
        assert not await b.available("d1")
        for _ in range(5):
            await b.failure("d1", "late failure")  # counted, but stays drained
        await b.success("d1")
        clock.advance(3600)
        assert not await b.available("d1")
        assert await b.state("d1") == BreakerState(State.DRAINED, 5, None, "late failure")
        await b.drain("d1", False)
        assert await b.available("d1")
        assert await b.state("d1") == BreakerState(State.CLOSED, 0, None, "late failure")
        await b.close()

    run(main())


def test_one_trial_across_racing_redis_instances() -> None:
    async def main(prefix: str) -> None:
        clock = FakeClock(5_000.0)
        a, b = (RedisBreakers(REDIS_URL, POLICY, prefix=prefix, clock=clock) for _ in range(2))
        await a.failure("d1", "503", retry_after_s=1.0)
        assert not await b.available("d1")  # b sees what a did
        clock.advance(30)
        grants = await asyncio.gather(*(x.available("d1") for _ in range(50) for x in (a, b)))
        assert sum(grants) == 1
        await b.success("d1")
        assert await a.available("d1")
        await a.close()
        await b.close()

    with redis_namespace() as prefix:
        asyncio.run(main(prefix))


def test_success_after_a_clean_look_costs_no_round_trip() -> None:
    async def main(prefix: str) -> None:
        clock = FakeClock(5_000.0)
        a, b = (RedisBreakers(REDIS_URL, POLICY, prefix=prefix, clock=clock) for _ in range(2))
        assert await a.available("d1")  # closed, no failure: a's success is free
        await b.failure("d1", "503")
        await b.failure("d1", "503")
        await a.success("d1")  # not sent: b's failures stay counted
        assert (await a.state("d1")).failures == 2
        await a.failure("d1", "503")  # the third: opens
        assert (await b.state("d1")).state is State.OPEN
        clock.advance(30)
        assert await a.available("d1")  # a holds the trial: its success is sent
        await a.success("d1")
        assert await b.state("d1") == BreakerState(State.CLOSED, 0, None, "503")
        await a.close()
        await b.close()

    with redis_namespace() as prefix:
        asyncio.run(main(prefix))


def test_make_breakers() -> None:
    async def main() -> None:
        local = make_breakers(None, POLICY)
        shared = make_breakers(REDIS_URL, POLICY, prefix="cloudhedge-test:")
        assert isinstance(local, LocalBreakers)
        assert isinstance(shared, RedisBreakers)
        await local.close()
        await shared.close()

    run(main())


def test_unreachable_redis_fails_open() -> None:
    async def main() -> None:
        b = RedisBreakers("redis://127.0.0.1:1/0", POLICY)  # nothing listens on port 1
        await b.failure("d1", "503", retry_after_s=60.0)  # dropped, never raises
        await b.success("d1")
        assert await b.available("d1")
        await b.close()

    run(main())
