"""Balancing, as pure logic: weights and standbys, capacity, failure domains, latency."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from cloudhedge.gateway.balance import Balancer
from cloudhedge.gateway.config import Deployment, Route, Strategy


def _d(name: str, provider: str, **kw: Any) -> Deployment:
    return Deployment(name=name, model="m", provider=provider, region="r", jurisdiction="us",
                      base_url="http://127.0.0.1:1/v1", **kw)


A, B, C = _d("a", "azure"), _d("b", "aws"), _d("c", "gcp")


def _picks(b: Balancer, route: Route, pool: list[Deployment], n: int = 4000,
           avoid: tuple[str, ...] = ()) -> Counter[str]:
    return Counter(p.name for p in (b.pick(pool, route, avoid) for _ in range(n)) if p)


def test_weighted_follows_route_weights_and_zero_is_standby_only() -> None:
    b = Balancer(rng=random.Random(1))
    route = Route("m", Strategy.WEIGHTED, {"a": 3.0, "b": 1.0, "c": 0.0})
    counts = _picks(b, route, [A, B, C])
    assert counts["c"] == 0
    assert 0.7 < counts["a"] / 4000 < 0.8
    assert _picks(b, route, [C], 10) == {"c": 10}  # the standby, once alone


def test_least_outstanding_and_capacity() -> None:
    b = Balancer(rng=random.Random(2))
    route = Route("m", Strategy.LEAST_OUTSTANDING)
    b.stats("a").in_flight = 2
    b.stats("b").in_flight = 1
    b.stats("c").in_flight = 5
    assert _picks(b, route, [A, B, C], 50) == {"b": 50}
    capped = _d("b", "aws", max_concurrency=1)
    assert _picks(b, route, [A, capped], 50) == {"a": 50}
    assert b.pick([capped], route) is None


def test_failover_prefers_another_domain() -> None:
    b = Balancer(rng=random.Random(3))
    a2 = _d("a2", "azure")
    route = Route("m", Strategy.WEIGHTED, {"a2": 100.0})
    assert _picks(b, route, [a2, B], 200, avoid=("azure",)) == {"b": 200}
    assert _picks(b, route, [a2], 20, avoid=("azure",)) == {"a2": 20}  # nothing else left


def test_latency_prefers_fast_then_spreads_with_load() -> None:
    b = Balancer(rng=random.Random(4))
    route = Route("m", Strategy.LATENCY)
    assert b.pick([A, B], route) in (A, B)  # unmeasured: explored first
    b.observe_ttft("a", 0.010)
    b.observe_ttft("b", 0.050)
    assert _picks(b, route, [A, B], 50) == {"a": 50}
    b.stats("a").in_flight = 9  # 10 ms x 10 > 50 ms x 1
    assert _picks(b, route, [A, B], 50) == {"b": 50}
    b.observe_ttft("a", 0.110)  # EWMA 0.01 + 0.2 x 0.1
    assert abs((b.stats("a").ewma_ttft_s or 0) - 0.030) < 1e-9
