"""Emulated clouds: every provider, region and pool of a fleet, with fault injection.

An :class:`EmulatedCloud` is one shared world (the "sky") built from a fleet: each pool
with its capacity in one period, a launch latency, and the instances launched on it.
It hands out one :class:`~cloudhedge.control.providers.base.Provider` per provider of
the fleet (:meth:`EmulatedCloud.provider`), as a real deployment has one adapter per
cloud: the reconciler sees the same shape (one adapter per failure domain) in both,
while faults that span providers (an accelerator family) stay one call here.

Modes: with ``run_processes`` (default) an instance is a local process running the
request's command, told where it runs by environment variables (``CLOUDHEDGE_PROVIDER``,
``_REGION``, ``_ACCELERATOR``, ``_POOL``, ``_INSTANCE``, ``_CHECKPOINT_DIR`` (one
directory per workload under ``workdir``), ``_REPLICA_PORT`` when the request has one);
exit code 0 means ``succeeded``, any other ``failed``. Without, instances are simulated:
``pending`` for the launch latency, then ``running`` until terminated, faulted or
:meth:`EmulatedCloud.complete`-d. All time goes through the injected clock.

Faults (the ``cloudhedge chaos`` verbs call these):

- :meth:`~EmulatedCloud.outage`: instances in scope fail (detail ``"outage"``),
  launches there raise ``CapacityUnavailable(scope)``, offers there show 0 chips free,
  each affected provider gets an ``outage`` signal, and a ``restored`` one when it ends;
- :meth:`~EmulatedCloud.preempt`: one instance, or every instance of a pool, is
  preempted, with a ``preempted`` signal;
- :meth:`~EmulatedCloud.set_capacity`: a pool's capacity changes; running instances
  above it keep running, new launches see the new free chips;
- :meth:`~EmulatedCloud.restore`: ends the outages of a scope at once;
- :meth:`~EmulatedCloud.fail_launches`: the next launches into a scope raise a given
  error type (quota, transient, permission), leaving running instances alone.

:meth:`EmulatedCloud.close` terminates everything; a provider's ``close`` does not
(instances outlive adapters, so a new adapter adopts them via ``list_instances``).

**An emulated cloud with processes outlives its control plane**, as a real one does.
Its instances are rows of ``<workdir>/world.db`` (written before anything runs, updated
on every change, with the pid and start time of each process), and each command runs
under a shim that records its exit code in ``<workdir>/run/<id>.exit``. A new
:class:`EmulatedCloud` on the same ``workdir`` (``cloudhedge up`` restarted with the
same state directory after a SIGKILL or a crash) takes them back: live processes are
adopted (``running``, watched until they end), ended ones get their state from their
exit file (``failed``, "lost", without one), launches recorded but never spawned are
``failed`` (their command never ran); idempotency keys, ids and used capacity survive.
Graceful :meth:`close` (``cloudhedge down``) still terminates every instance, adopted
ones included. Faults are not persisted; simulated clouds stay in memory. Details in
:mod:`cloudhedge.control.providers._world` and docs/providers.md.
"""

from __future__ import annotations

from pathlib import Path

from cloudhedge.control.providers._world import Slot, World, WorldProvider
from cloudhedge.control.providers.base import (
    Capabilities,
    InstanceState,
    Provider,
    ProviderError,
    Scope,
)
from cloudhedge.control.providers.clock import Clock
from cloudhedge.core.models import Fleet, Tier


class EmulatedCloud:
    """The emulated clouds of a fleet; see the module docstring."""

    def __init__(self, fleet: Fleet, *, clock: Clock, launch_latency_s: float = 0.0,
                 run_processes: bool = True, workdir: Path | None = None,
                 period: int = 0) -> None:
        if not 0 <= period < fleet.horizon.periods:
            raise ValueError(f"period {period} is outside the horizon")
        slots = [Slot(p.name, p.provider, p.region, p.accelerator, p.tier,
                      p.price_usd_per_chip_hour, int(p.capacity_chips[period]))
                 for p in fleet.pools]
        self._world = World(slots, clock, launch_latency_s, run_processes, workdir)

    @property
    def provider_names(self) -> list[str]:
        return self._world.provider_names

    @property
    def workdir(self) -> Path | None:
        """Where checkpoints and logs go (``None`` when simulated)."""
        return self._world.workdir

    def provider(self, name: str) -> Provider:
        """A new adapter for provider ``name``; adapters of one cloud share its state."""
        if name not in self.provider_names:
            raise ValueError(f"no provider {name!r} in this fleet")
        spot = any(s.tier is Tier.SPOT for s in self._world.slots if s.provider == name)
        capabilities = Capabilities(spot=spot, multi_node=True, preemption_signals=True,
                                    real_processes=self._world.run_processes)
        return WorldProvider(self._world, name, capabilities)

    def providers(self) -> dict[str, Provider]:
        """One adapter per provider of the fleet."""
        return {name: self.provider(name) for name in self.provider_names}

    # -- faults ----------------------------------------------------------------------

    def outage(self, scope: Scope, duration_s: float | None = None) -> list[str]:
        """Take ``scope`` down (for ``duration_s``, or until :meth:`restore`).

        Returns the ids of the instances that failed.
        """
        self._world.tick()
        if not self._world.slots_in(scope):
            raise ValueError(f"no pool of this fleet is in {scope}")
        if duration_s is not None and duration_s <= 0:
            raise ValueError("duration_s must be > 0")
        until = None if duration_s is None else self._world.clock.now() + duration_s
        failed = self._world.live(scope)
        for record in failed:
            self._world.end(record, InstanceState.FAILED, "outage")
        self._world.add_outage(scope, until)
        return [r.instance.id for r in failed]

    def restore(self, scope: Scope) -> bool:
        """End the outages of exactly ``scope`` now; False if there was none."""
        self._world.tick()
        return self._world.remove_outages(scope)

    def preempt(self, target: str) -> list[str]:
        """Preempt an instance (by id) or every live instance of a pool (by name).

        Returns the ids preempted (an instance already ended is left alone).
        """
        self._world.tick()
        record = self._world.record(target)
        if record is not None:
            records = [record]
        elif self._world.slots_in(Scope.of_pool(target)):
            records = self._world.live(Scope.of_pool(target))
        else:
            raise ValueError(f"no instance or pool {target!r}")
        live = [r for r in records if not r.instance.state.ended]
        for r in live:
            self._world.preempt(r)
        return [r.instance.id for r in live]

    def set_capacity(self, pool: str, chips: int) -> None:
        """Set the capacity of ``pool`` (chips); running instances are not evicted."""
        if chips < 0:
            raise ValueError("chips must be >= 0")
        slots = self._world.slots_in(Scope.of_pool(pool))
        if not slots:
            raise ValueError(f"no pool {pool!r}")
        slots[0].capacity_chips = chips

    def fail_launches(self, error: type[ProviderError], scope: Scope, times: int = 1) -> None:
        """The next ``times`` valid launches into ``scope`` raise ``error(scope=scope)``.

        For the errors no other fault produces: ``QuotaExceeded``, ``Transient``,
        ``PermissionDenied`` (or a ``CapacityUnavailable`` that leaves instances alone).
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        if not self._world.slots_in(scope):
            raise ValueError(f"no pool of this fleet is in {scope}")
        self._world.inject(error, scope, times)

    def complete(self, instance_id: str, exit_code: int = 0) -> None:
        """End a simulated instance as its process would have (0: succeeded)."""
        if self._world.run_processes:
            raise ValueError("complete() is for simulated instances; processes exit by themselves")
        self._world.tick()
        record = self._world.record(instance_id)
        if record is None:
            raise ValueError(f"no instance {instance_id!r}")
        state = InstanceState.SUCCEEDED if exit_code == 0 else InstanceState.FAILED
        self._world.end(record, state, f"exit code {exit_code}", exit_code=exit_code)

    async def close(self) -> None:
        """Terminate every instance (adopted ones included) and reap its process.

        What ``cloudhedge down`` does: nothing is left running. Only a process that dies
        without calling it leaves its instances to the next cloud on the same workdir.
        """
        await self._world.shutdown()
