"""Fault injection for the emulated clouds: ``cloudhedge chaos`` and ``/v1/chaos/*``.

Scopes are written as the user thinks of them and resolved against the fleet:

    aws                      provider            h100              accelerator (everywhere)
    aws/us-east-1            region              pool:NAME         a pool (or just NAME)
    aws/us-east-1/us-east-1a zone                region:aws/us-east-1   explicit kind

Durations: ``90``, ``90s``, ``10m``, ``1h30m``. Every injection is recorded as a
``chaos`` event, so ``cloudhedge explain`` shows the fault next to the failover it caused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cloudhedge.control.providers import Clock, EmulatedCloud, Scope, ScopeKind
from cloudhedge.control.store import ControlStore
from cloudhedge.core.errors import CloudhedgeError
from cloudhedge.core.models import Fleet
from cloudhedge.spec.source import suggest

__all__ = ["Chaos", "ChaosError", "parse_duration", "parse_scope"]

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


class ChaosError(CloudhedgeError):
    """A fault that cannot be injected as asked (unknown scope, bad duration, ...)."""


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``10m``, ``1h30m``; raises :class:`ChaosError`."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise ChaosError(f"expected a duration like 90s, 10m or 1h30m, got {text!r}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ChaosError(f"a duration must be > 0, got {text!r}")
    return total


def parse_scope(text: str, fleet: Fleet) -> Scope:
    """The failure domain ``text`` names in ``fleet``; raises :class:`ChaosError`."""
    providers = {p.provider for p in fleet.pools}
    regions = {f"{p.provider}/{p.region}" for p in fleet.pools}
    accelerators = {p.accelerator for p in fleet.pools}
    pools = {p.name for p in fleet.pools}
    known: dict[ScopeKind, set[str]] = {
        ScopeKind.PROVIDER: providers, ScopeKind.REGION: regions,
        ScopeKind.ACCELERATOR: accelerators, ScopeKind.POOL: pools}
    kind_text, sep, name = text.partition(":")
    if sep and kind_text in {k.value for k in ScopeKind}:
        kind = ScopeKind(kind_text)
        if kind is ScopeKind.ZONE:
            if name.count("/") != 2 or name.rsplit("/", 1)[0] not in regions:
                raise ChaosError(f"expected a zone as provider/region/zone of a region of the "
                                 f"fleet, got {name!r}")
        elif name not in known[kind]:
            raise ChaosError(_unknown(kind.value, name, known[kind]))
        return Scope(kind, name)
    for kind in (ScopeKind.POOL, ScopeKind.PROVIDER, ScopeKind.REGION, ScopeKind.ACCELERATOR):
        if text in known[kind]:
            return Scope(kind, text)
    if text.count("/") == 2 and text.rsplit("/", 1)[0] in regions:
        return Scope(ScopeKind.ZONE, text)
    everything = providers | regions | accelerators | pools
    raise ChaosError(_unknown("provider, region, accelerator or pool", text, everything))


def _unknown(what: str, name: str, known: set[str]) -> str:
    hint = suggest(name, sorted(known))
    return f"no {what} {name!r} in this fleet" + (f" (did you mean {hint!r}?)" if hint else "")


@dataclass(frozen=True)
class Injected:
    """What an injection did: the scope (or target) and the instances it ended."""

    target: str
    instances: list[str]
    until_unix_s: float | None = None


class Chaos:
    """Injects faults into an :class:`EmulatedCloud` and records them as events."""

    def __init__(self, cloud: EmulatedCloud, store: ControlStore, fleet: Fleet, *,
                 clock: Clock) -> None:
        self._cloud = cloud
        self._clock = clock
        self._store = store
        self._fleet = fleet

    def outage(self, scope_text: str, duration_s: float | None = None) -> Injected:
        """Take a scope down for ``duration_s`` (None: until :meth:`restore`)."""
        scope = parse_scope(scope_text, self._fleet)
        if duration_s is not None and duration_s <= 0:
            raise ChaosError("duration_s must be > 0")
        try:
            failed = self._cloud.outage(scope, duration_s)
        except ValueError as e:
            raise ChaosError(str(e)) from None
        until = None if duration_s is None else self._clock.now() + duration_s
        span = "until restored" if duration_s is None else f"for {duration_s:g} s"
        self._record(f"chaos: outage of {scope} {span}; {len(failed)} instance(s) failed",
                     {"scope": str(scope), "duration_s": duration_s, "instances": failed})
        return Injected(str(scope), failed, until)

    def restore(self, scope_text: str) -> bool:
        """End the outages of a scope now; False if it had none."""
        scope = parse_scope(scope_text, self._fleet)
        restored = self._cloud.restore(scope)
        if restored:
            self._record(f"chaos: {scope} restored", {"scope": str(scope)})
        return restored

    def preempt(self, target: str) -> Injected:
        """Preempt an instance (by id), every instance of a pool, or of a workload."""
        workload = self._store.get_workload_by_name(target)
        try:
            if workload is not None:
                ids = [a.instance_id for a in self._store.list_attempts(
                    states=("running",), workload_id=workload.id) if a.instance_id]
                preempted = [i for instance in ids for i in self._cloud.preempt(instance)]
            else:
                preempted = self._cloud.preempt(target)
        except ValueError as e:
            raise ChaosError(f"{e} (give an instance id, a pool or a workload name)") from None
        self._record(f"chaos: preempted {len(preempted)} instance(s) of {target}",
                     {"target": target, "instances": preempted},
                     None if workload is None else workload.id)
        return Injected(target, preempted)

    def capacity(self, pool: str, chips: int) -> None:
        """Set a pool's capacity in chips (running instances above it keep running)."""
        if pool not in {p.name for p in self._fleet.pools}:
            raise ChaosError(_unknown("pool", pool, {p.name for p in self._fleet.pools}))
        try:
            self._cloud.set_capacity(pool, chips)
        except ValueError as e:
            raise ChaosError(str(e)) from None
        self._record(f"chaos: capacity of pool {pool} set to {chips} chips",
                     {"pool": pool, "chips": chips})

    def _record(self, reason: str, data: dict[str, object],
                workload_id: int | None = None) -> None:
        self._store.append_event("chaos", reason, workload_id=workload_id, data=data)
