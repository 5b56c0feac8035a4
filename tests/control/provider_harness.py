"""A harness over one provider adapter, for the contract suite and the emulated tests.

A new adapter joins the contract suite by adding a factory to ``FACTORIES``: it returns
a :class:`Harness` around a provider with one known pool (``pool``, ``capacity`` chips
free), and, if the adapter can inject faults, the :class:`EmulatedCloud` behind it.
``aws`` runs :class:`AwsProvider` against a moto server on loopback (``moto_server``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))

from fleets import Tier, fleet, pool

from cloudhedge.control.providers import (
    EmulatedCloud,
    Instance,
    InstanceState,
    LaunchRequest,
    LocalProvider,
    ManualClock,
    Provider,
    Scope,
)
from cloudhedge.core.models import Fleet

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def small_fleet() -> Fleet:
    """aws: h100 (4) and spot h100 (8) in us-east-1, trn2 (4) in us-west-2; gcp: h100 (4)."""
    return fleet([
        pool("aws-h100", "aws", "h100", 4, 2.0, region="us-east-1"),
        pool("aws-h100-spot", "aws", "h100", [8, 2, 2], 1.0, tier=Tier.SPOT,
             region="us-east-1"),
        pool("aws-trn2", "aws", "trn2", 4, 1.5, region="us-west-2"),
        pool("gcp-h100", "gcp", "h100", 4, 2.5, region="us-central1"),
    ])


@dataclass
class Harness:
    provider: Provider
    pool: str  # a pool of ``provider`` with ``capacity`` chips, all free
    capacity: int
    reopen: Callable[[], Provider]  # a new adapter that sees the same instances
    close: Callable[[], Awaitable[None]]  # ends every instance, reaps every process
    cloud: EmulatedCloud | None = None  # fault injection, when the adapter has it
    outage_scope: Scope | None = None  # a scope holding ``pool``, for outages
    # the instance's process runs on this machine, so a test can see its exit code and
    # environment (False for a cloud, even one whose instances run the command)
    observable_processes: bool = True

    def request(self, key: str, chips: int = 1, command: list[str] | None = None, *,
                workload: str = "job", env: dict[str, str] | None = None,
                replica_port: int | None = None) -> LaunchRequest:
        return LaunchRequest(key, workload, self.pool, chips, command or SLEEP, env or {},
                             replica_port)


def emulated(run_processes: bool, tmp: Path) -> Harness:
    clock = ManualClock(1000.0)
    cloud = EmulatedCloud(small_fleet(), clock=clock, run_processes=run_processes,
                          workdir=tmp if run_processes else None)
    return Harness(cloud.provider("aws"), "aws-h100", 4, lambda: cloud.provider("aws"),
                   cloud.close, cloud, Scope.of_region("aws", "us-east-1"))


def local(tmp: Path) -> Harness:
    provider = LocalProvider(clock=ManualClock(1000.0), workdir=tmp, chips=4)
    return Harness(provider, "local", 4, lambda: provider, provider.close)


def aws(tmp: Path) -> Harness:
    """The aws adapter over a clean moto server, with the small fleet's aws pools."""
    from cloudhedge.control.providers.aws import AwsProvider
    from control import moto_server

    moto_server.reset()
    pools = small_fleet().pools
    clock = ManualClock(1000.0)
    regions = {p.region for p in pools if p.provider == "aws"}
    images = {r: moto_server.image_id(r) for r in regions}
    clients = {r: moto_server.client("ec2", r) for r in regions}

    def make() -> Provider:
        return AwsProvider(pools, clock=clock, image_id=images, region_clients=clients)

    provider = make()

    async def close() -> None:
        for inst in await provider.list_instances():
            await provider.terminate(inst.id)
        await provider.close()

    return Harness(provider, "aws-h100", 4, make, close, observable_processes=False)


FACTORIES: dict[str, Callable[[Path], Harness]] = {
    "emulated-processes": lambda tmp: emulated(True, tmp),
    "emulated-simulated": lambda tmp: emulated(False, tmp),
    "local": local,
    "aws": aws,
}


def run(harness: Harness, body: Callable[[Harness], Awaitable[None]]) -> None:
    """Run ``body`` in a fresh event loop, then close the adapter in that loop."""

    async def main() -> None:
        try:
            await body(harness)
        finally:
            await harness.close()

    asyncio.run(main())


async def wait_for(provider: Provider, instance_id: str, *states: InstanceState,
                   timeout_s: float = 10.0) -> Instance:
    """Poll (wall time: processes run for real) until the instance is in ``states``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        inst = await provider.get(instance_id)
        if inst.state in states:
            return inst
        if loop.time() > deadline:
            raise AssertionError(f"{instance_id} stayed {inst.state}, wanted {states}")
        await asyncio.sleep(0.01)
