"""Service replicas become gateway deployments when ready, and leave when not.

Real HTTP: each replica is a mock upstream (:class:`MockServer`) on loopback; the router
probes it with its readiness path. Time is a :class:`ManualClock`, so probe periods and
failure thresholds are exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudhedge.control.providers import ManualClock
from cloudhedge.control.reconciler import spec_to_json
from cloudhedge.control.replicas import ReplicaRouter, deployment_name
from cloudhedge.control.server import default_gateway_config
from cloudhedge.control.specs import load_service_text
from cloudhedge.control.store import ControlStore
from cloudhedge.core.models import Fleet
from cloudhedge.gateway.config import GatewayConfig
from cloudhedge.gateway.config_schema import usd_per_million_tokens
from cloudhedge.gateway.mock import MockServer
from cloudhedge.spec import load_fleet

ROOT = Path(__file__).resolve().parents[2]
SERVICE = """\
name: chat
model: gpt-large
command: sleep 60
replicas: 2
accelerators:
  - {accelerator: h100, chips: 8}
readiness: {path: /v1/models, period_s: 2, timeout_s: 1, failure_threshold: 2}
"""


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return load_fleet(ROOT / "examples" / "frontier-lab.yaml")


class Harness:
    def __init__(self, fleet: Fleet, tmp_path: Path) -> None:
        self.fleet = fleet
        self.clock = ManualClock(start=time.time())
        self.store = ControlStore(f"sqlite:///{tmp_path / 'c.db'}", clock=self.clock.now)
        self.base, self.keys = default_gateway_config(fleet, "sqlite://")
        self.applied: list[GatewayConfig] = []
        self.router = ReplicaRouter(self.store, fleet, clock=self.clock, base=self.base,
                                    apply=self.applied.append)
        spec = load_service_text(SERVICE, "chat.yaml", fleet)
        self.workload = self.store.create_workload("chat", "service", spec_to_json(spec))
        self.pool = next(p for p in fleet.pools if p.accelerator == "h100")

    def replica(self, replica: int, port: int) -> int:
        planned = self.store.plan_attempt(
            self.workload.id, idempotency_key=f"chat/0/{replica}", pool=self.pool.name,
            provider=self.pool.provider, region=self.pool.region,
            accelerator=self.pool.accelerator, chips=8, replica=replica, port=port)
        assert self.store.advance(planned.attempt.id, ["planned"], "running",
                                  instance_id=f"i-{replica}", address="127.0.0.1")
        return planned.attempt.id

    def tick(self, advance_s: float = 0.0) -> bool:
        self.clock.advance(advance_s)
        return asyncio.run(self._tick())

    async def _tick(self) -> bool:
        try:
            return await self.router.tick()
        finally:
            await self.router.close()

    def routed(self) -> dict[str, str]:
        last = self.applied[-1] if self.applied else self.base
        return {d.name: d.base_url for d in last.deployments}


@pytest.fixture
def harness(fleet: Fleet, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(fleet, tmp_path)
    yield h
    h.store.close()


def test_a_ready_replica_is_routed_with_its_place_and_cost(harness: Harness) -> None:
    with MockServer(name="r0") as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        attempt = harness.replica(0, port)
        assert harness.tick() is True
        assert harness.routed() == {"chat.0.0": f"http://127.0.0.1:{port}/v1"}
        [d] = harness.applied[-1].deployments
        pool = harness.pool
        assert (d.model, d.provider, d.region, d.jurisdiction, d.accelerator) == (
            "gpt-large", pool.provider, pool.region, pool.jurisdiction, "h100")
        per_chip = next(w for w in harness.fleet.inference
                        if w.model == "gpt-large").throughput_tokens_per_s["h100"]
        assert d.input_usd_per_million == pytest.approx(
            usd_per_million_tokens(pool.price_usd_per_chip_hour, 8, per_chip * 8))
        assert harness.router.ready == {attempt}
        assert harness.applied[-1].keys == harness.base.keys  # tenants and keys are kept
        assert harness.tick() is False  # nothing changed: no new configuration
        events = harness.store.list_events(workload_id=harness.workload.id)
        assert [e.kind for e in events] == ["readiness"]
        assert "routed by the gateway as chat.0.0" in events[0].reason


def test_unready_after_the_failure_threshold_then_ready_again(harness: Harness) -> None:
    server = MockServer(name="r0")
    url = server.start()
    try:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        harness.replica(0, port)
        harness.tick()
        assert list(harness.routed()) == ["chat.0.0"]
        server.stop()
        assert harness.tick(2.0) is False  # one failure: below the threshold of 2
        assert list(harness.routed()) == ["chat.0.0"]
        assert harness.tick(1.0) is False  # not due yet (period 2 s)
        assert harness.tick(1.0) is True  # second failure in a row
        assert harness.routed() == {}
        server.start()
        assert harness.tick(2.0) is True
        assert list(harness.routed()) == ["chat.0.0"]
        kinds = [e.reason.split()[1] for e in harness.store.list_events(
            workload_id=harness.workload.id)]
        assert kinds == ["ready", "unready", "ready"]
    finally:
        server.stop()


def test_a_replica_that_stops_running_leaves_at_once(harness: Harness) -> None:
    with MockServer(name="a") as a, MockServer(name="b") as b:
        ids = [harness.replica(i, int(u.rsplit(":", 1)[1].split("/")[0]))
               for i, u in enumerate((a, b))]
        harness.tick()
        assert sorted(harness.routed()) == ["chat.0.0", "chat.0.1"]
        harness.store.advance(ids[0], ["running"], "lost")  # failed over by the reconciler
        assert harness.tick() is True  # no probe needed, no threshold to wait for
        assert sorted(harness.routed()) == ["chat.0.1"]


def test_initial_delay_and_a_replica_not_listening(harness: Harness, fleet: Fleet) -> None:
    with MockServer(name="r0") as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
    harness.replica(0, port)  # the port is closed now: connection refused
    assert harness.tick() is False and harness.routed() == {}
    assert deployment_name("chat/3/1") == "chat.3.1"


def test_default_gateway_config_follows_the_fleet_policies(fleet: Fleet) -> None:
    config, keys = default_gateway_config(fleet, "sqlite://")
    assert set(keys) == set(fleet.policies.exclusivity) | {"default"}
    for name, allowed in fleet.policies.exclusivity.items():
        assert config.classes[name].providers == frozenset(allowed)
    assert config.classes["default"].providers is None
    assert len(set(keys.values())) == len(keys)
    assert all(k.key_hash != keys[k.tenant] for k in config.keys)  # only hashes are kept
