"""Balancing: which allowed, available deployment an attempt goes to.

Pure logic over in-process statistics; the caller has already applied policy (only the
deployments the key's tenant may use are ever passed in) and asks the breaker whether the
pick is available. One pick, in order:

    1. capacity   deployments at ``max_concurrency`` are skipped
    2. domain     after a failure, deployments in another failure domain (provider) first
    3. standby    weight 0 (``route.weights`` or ``deployment.weight``) = failover only:
                  used only when no deployment with a positive weight is left
    4. strategy   WEIGHTED: random by weight
                  LEAST_OUTSTANDING: fewest requests in flight
                  LATENCY: lowest EWMA of time to first token x (in flight + 1)
                  (peak-EWMA: a fast deployment that is piling up requests looks slower;
                  a deployment never measured scores 0 and is tried first)
                  ties are broken at random by weight.

Statistics are per process and keyed by deployment name, so they survive a reload.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from cloudhedge.gateway.config import Deployment, Route, Strategy


class DeploymentStats:
    """Live figures of one deployment in this process."""

    __slots__ = ("ewma_ttft_s", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        self.ewma_ttft_s: float | None = None


class Balancer:
    """Picks a deployment per attempt; holds each deployment's in-flight count and EWMA."""

    def __init__(self, *, alpha: float = 0.2, rng: random.Random | None = None) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self._alpha = alpha
        self._rng = rng or random.Random()
        self._stats: dict[str, DeploymentStats] = {}

    def stats(self, name: str) -> DeploymentStats:
        """The statistics of deployment ``name`` (created empty on first use)."""
        s = self._stats.get(name)
        if s is None:
            s = self._stats[name] = DeploymentStats()
        return s

    def observe_ttft(self, name: str, seconds: float) -> None:
        """Fold one time to first token (or first byte) into the deployment's EWMA."""
        s = self.stats(name)
        prev = s.ewma_ttft_s
        s.ewma_ttft_s = seconds if prev is None else prev + self._alpha * (seconds - prev)

    def pick(
        self, candidates: Sequence[Deployment], route: Route, avoid_domains: Collection[str] = ()
    ) -> Deployment | None:
        """The deployment for the next attempt, or None when every candidate is at capacity."""
        pool = [d for d in candidates
                if d.max_concurrency is None or self.stats(d.name).in_flight < d.max_concurrency]
        if avoid_domains:
            elsewhere = [d for d in pool if d.domain not in avoid_domains]
            pool = elsewhere or pool
        if not pool:
            return None
        weights = [route.weights.get(d.name, d.weight) for d in pool]
        if any(w > 0 for w in weights):
            pairs = [(d, w) for d, w in zip(pool, weights, strict=True) if w > 0]
        else:  # only standbys are left: they share equally
            pairs = [(d, 1.0) for d in pool]
        if len(pairs) == 1:
            return pairs[0][0]
        if route.strategy is Strategy.WEIGHTED:
            return self._choice(pairs)
        scores = [self._score(d, route.strategy) for d, _ in pairs]
        best = min(scores)
        return self._choice([p for p, s in zip(pairs, scores, strict=True) if s == best])

    def _score(self, d: Deployment, strategy: Strategy) -> float:
        s = self.stats(d.name)
        if strategy is Strategy.LEAST_OUTSTANDING:
            return float(s.in_flight)
        return (s.ewma_ttft_s or 0.0) * (s.in_flight + 1)

    def _choice(self, pairs: Sequence[tuple[Deployment, float]]) -> Deployment:
        if len(pairs) == 1:
            return pairs[0][0]
        total = sum(w for _, w in pairs)
        x = self._rng.random() * total
        for d, w in pairs:
            x -= w
            if x < 0:
                return d
        return pairs[-1][0]
