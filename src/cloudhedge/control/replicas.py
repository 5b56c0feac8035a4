"""Service replicas -> gateway deployments: readiness probes and route updates.

:class:`ReplicaRouter` runs beside the reconciler in ``cloudhedge up``. Every
``tick_s`` it reads the running attempts of services from the store and probes each
replica that is due (``GET http://ADDRESS:PORT{readiness.path}`` every
``readiness.period_s``, after ``readiness.initial_delay_s`` from its start, within
``readiness.timeout_s``; an answer below 400 is a success):

- a replica becomes **ready** on its first success, and **unready** after
  ``failure_threshold`` failures in a row; each change is a ``readiness`` event;
- a replica whose attempt is no longer ``running`` (failed over, cancelled, lost with
  its cloud) leaves at once, without waiting for probes.

Whenever the set of ready replicas changes, the gateway's configuration is replaced
(:meth:`cloudhedge.gateway.app.Gateway.replace_config`) with the base configuration
(tenants, keys, policies) plus one :class:`~cloudhedge.gateway.config.Deployment` per
ready replica: model from the service, provider/region/jurisdiction/accelerator from
its pool, cost per million tokens from the pool's chip-hour price and the fleet's
throughput for that model and accelerator (zero when the fleet does not say).
Requests in flight finish on the old configuration; the gateway's own retries cover
the seconds between a replica's death and its removal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import aiohttp

from cloudhedge.control.providers import Clock
from cloudhedge.control.providers.clock import every
from cloudhedge.control.reconciler import service_from_json
from cloudhedge.control.specs import ServiceSpec
from cloudhedge.control.store import Attempt, ControlStore
from cloudhedge.core.models import Fleet
from cloudhedge.gateway.config import Deployment, GatewayConfig
from cloudhedge.gateway.config_schema import usd_per_million_tokens

__all__ = ["ReplicaRouter", "deployment_name"]

log = logging.getLogger(__name__)


def deployment_name(attempt_key: str) -> str:
    """The gateway deployment of a replica attempt (``chat/0/1`` -> ``chat.0.1``)."""
    return attempt_key.replace("/", ".")


@dataclass
class _Probe:
    ready: bool = False
    failures: int = 0
    next_at: float = 0.0
    last_error: str = ""


class ReplicaRouter:
    """Probes service replicas; keeps the gateway's deployments = the ready replicas."""

    def __init__(self, store: ControlStore, fleet: Fleet, *, clock: Clock, base: GatewayConfig,
                 apply: Callable[[GatewayConfig], None], tick_s: float = 0.25) -> None:
        self._store = store
        self._fleet = fleet
        self._clock = clock
        self._base = base
        self._apply = apply
        self.tick_s = tick_s
        self._pools = {p.name: p for p in fleet.pools}
        self._throughput = {w.model: w.throughput_tokens_per_s for w in fleet.inference}
        self._probes: dict[int, _Probe] = {}  # by attempt id
        self._routed: frozenset[int] = frozenset()
        self._session: aiohttp.ClientSession | None = None

    @property
    def ready(self) -> frozenset[int]:
        """Ids of the attempts routed now."""
        return self._routed

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ``tick_s`` (on the injected clock) until ``stop`` is set."""
        try:
            await every(self._clock, self.tick_s, stop, self.tick, "replica routing pass")
        finally:
            await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def tick(self) -> bool:
        """Probe the replicas due now; returns whether the gateway's routes changed."""
        now = self._clock.now()
        services = {w.id: service_from_json(w.spec) for w in self._store.list_workloads(
            desired="running", kind="service")}
        running = {a.id: a for a in self._store.list_attempts(states=("running",))
                   if a.workload_id in services and a.port is not None and a.address}
        for gone in self._probes.keys() - running.keys():
            del self._probes[gone]
        due = []
        for a in running.values():
            probe = self._probes.setdefault(a.id, _Probe(
                next_at=a.updated_unix_s + services[a.workload_id].readiness.initial_delay_s))
            if probe.next_at <= now:
                due.append((a, probe))
        if due:
            await asyncio.gather(*(self._probe(a, services[a.workload_id], p, now)
                                   for a, p in due))
        routed = frozenset(i for i, p in self._probes.items() if p.ready)
        if routed == self._routed:
            return False
        self._routed = routed
        deployments = [self._deployment(running[i], services[running[i].workload_id])
                       for i in sorted(routed)]
        self._apply(replace(self._base, deployments=(*self._base.deployments, *deployments)))
        log.info("gateway routes: %d ready replica(s)", len(deployments))
        return True

    async def _probe(self, a: Attempt, spec: ServiceSpec, probe: _Probe, now: float) -> None:
        readiness = spec.readiness
        probe.next_at = now + readiness.period_s
        url = f"http://{a.address}:{a.port}{readiness.path}"
        error = ""
        try:
            async with asyncio.timeout(readiness.timeout_s), \
                    self._client().get(url, allow_redirects=False) as resp:
                await resp.read()
                if resp.status >= 400:
                    error = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            error = f"{type(e).__name__}: {e}".rstrip(": ")
        if not error:
            probe.failures = 0
            if not probe.ready:
                probe.ready = True
                self._event(a, f"{a.idempotency_key} ready on {a.pool} ({url}); routed by "
                            f"the gateway as {deployment_name(a.idempotency_key)}")
            return
        probe.failures += 1
        probe.last_error = error
        if probe.ready and probe.failures >= readiness.failure_threshold:
            probe.ready = False
            self._event(a, f"{a.idempotency_key} unready after {probe.failures} failed "
                        f"probes ({error}); no longer routed")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, force_close=True))
        return self._session

    def _deployment(self, a: Attempt, spec: ServiceSpec) -> Deployment:
        pool = self._pools[a.pool]
        per_chip = self._throughput.get(spec.model, {}).get(pool.accelerator)
        price = 0.0 if not per_chip else usd_per_million_tokens(
            pool.price_usd_per_chip_hour, a.chips, per_chip * a.chips)
        return Deployment(
            name=deployment_name(a.idempotency_key), model=spec.model, provider=pool.provider,
            region=pool.region, jurisdiction=pool.jurisdiction, accelerator=pool.accelerator,
            base_url=f"http://{a.address}:{a.port}/v1",
            input_usd_per_million=price, output_usd_per_million=price, timeout_s=30.0)

    def _event(self, a: Attempt, reason: str) -> None:
        log.info("readiness: %s", reason)
        self._store.append_event("readiness", reason, workload_id=a.workload_id,
                                 attempt_id=a.id)
