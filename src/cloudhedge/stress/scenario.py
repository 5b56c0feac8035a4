"""Scenarios: named lists of events, read from YAML against a fleet, and their :class:`Effects`.

A scenario file (``docs/stress-scenarios.md``) is parsed with the fleet spec's loader
(:func:`cloudhedge.spec.loader.parse_yaml`, positions kept), validated by the pydantic
models of :mod:`cloudhedge.stress.scenario_schema`, then resolved against a
:class:`Fleet`: names must be the fleet's (the closest one is suggested), periods
inside its horizon, every selector must match something. Every problem is collected
and raised as one :class:`SpecError` whose issues are located (file:line:column and
field path), exactly like the fleet spec's.

The resolved form is made of frozen values, fleet-specific (periods are indices into
the fleet's horizon):

    Scenario(name, description, events)
    Outage(target, start, hours, fraction)       capacity of a target down for hours
    SupplyShock(target, start, fraction)         capacity down from start to the horizon end
    PriceChange(factor, start, end, providers, accelerators, tiers)
    DemandSurge(factor, start, end, kinds, names, tenants)

:func:`effects` turns one scenario into :class:`Effects` arrays (one sample). Capacity
events on the same pool and period combine as independent losses: the share lost is
``1 - prod(1 - fraction)`` and the hours down the longest of their hours. Price and
demand factors multiply.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from cloudhedge.core.errors import SpecError, SpecIssue
from cloudhedge.core.models import (
    BatchJob,
    DomainKind,
    Fleet,
    Horizon,
    Pool,
    Tier,
    TrainingRun,
    Workload,
)
from cloudhedge.spec.errors import translate_validation_error
from cloudhedge.spec.loader import parse_yaml, read_input
from cloudhedge.spec.series import Calendar, bad_date
from cloudhedge.spec.source import IssueLog, PathKey, SourceMap, suggest
from cloudhedge.stress.effects import Effects, FloatArray
from cloudhedge.stress.scenario_schema import (
    DemandSurgeSpec,
    EventSpec,
    OutageSpec,
    PriceChangeSpec,
    ScenarioFileSpec,
    SupplyShockSpec,
)

__all__ = [
    "DemandSurge",
    "Event",
    "Outage",
    "PriceChange",
    "Scenario",
    "SupplyShock",
    "Target",
    "TargetKind",
    "WorkloadKind",
    "effects",
    "load_scenarios",
    "load_scenarios_text",
    "workload_kind",
]

BoolArray = npt.NDArray[np.bool_]
_PoolTest = Callable[[Pool], bool]


# --- the resolved form ----------------------------------------------------------------


class TargetKind(StrEnum):
    """What a capacity event hits: every pool of a provider, region, accelerator or vendor."""

    PROVIDER = "provider"
    REGION = "region"  # written provider/region, as Pool.domain(DomainKind.REGION)
    ACCELERATOR = "accelerator"
    VENDOR = "vendor"

    def of(self, pool: Pool) -> str:
        """The name of the pool's provider, region, accelerator or vendor."""
        if self is TargetKind.ACCELERATOR:
            return pool.accelerator
        return pool.domain(DomainKind(self.value))


@dataclass(frozen=True)
class Target:
    """One provider, region (``provider/region``), accelerator or vendor."""

    kind: TargetKind
    name: str

    def matches(self, pool: Pool) -> bool:
        """Whether ``pool`` belongs to the target."""
        return self.kind.of(pool) == self.name

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


class WorkloadKind(StrEnum):
    """Workload kinds a demand surge selects; ``agentic`` is an inference service from an
    agentic workload, ``inference`` any other inference service."""

    TRAINING = "training"
    BATCH = "batch"
    INFERENCE = "inference"
    AGENTIC = "agentic"


def workload_kind(workload: Workload) -> WorkloadKind:
    """The kind of a resolved workload (agentic services come from ``agentic:`` sources)."""
    if isinstance(workload, TrainingRun):
        return WorkloadKind.TRAINING
    if isinstance(workload, BatchJob):
        return WorkloadKind.BATCH
    if workload.source.startswith("agentic:"):
        return WorkloadKind.AGENTIC
    return WorkloadKind.INFERENCE


@dataclass(frozen=True)
class Outage:
    """``fraction`` of the target's capacity down for ``hours`` from the start of ``start``.

    The hours may run over several periods; past the horizon's end they are dropped.
    """

    target: Target
    start: int
    hours: float
    fraction: float = 1.0

    def down_hours(self, periods: int, period_hours: float) -> FloatArray:
        """(T,) hours of each period the outage covers."""
        offset = (np.arange(periods) - self.start) * period_hours
        covered = np.clip(self.hours - offset, 0.0, period_hours)
        return np.where(offset >= 0, covered, 0.0)

    def describe(self, horizon: Horizon) -> str:
        """One line a user can read."""
        when = _hours_text(horizon, self.start, self.hours)
        return f"outage: {self.target} loses {_share(self.fraction)} of its capacity {when}"


@dataclass(frozen=True)
class SupplyShock:
    """``fraction`` of the target's capacity lost from ``start`` to the horizon's end."""

    target: Target
    start: int
    fraction: float

    def down_hours(self, periods: int, period_hours: float) -> FloatArray:
        """(T,) hours of each period the shock covers: every hour from ``start`` on."""
        return np.where(np.arange(periods) >= self.start, period_hours, 0.0)

    def describe(self, horizon: Horizon) -> str:
        """One line a user can read."""
        return (
            f"supply shock: {self.target} loses {_share(self.fraction)} of its capacity "
            f"from {horizon.label(self.start)} to the horizon's end"
        )


@dataclass(frozen=True)
class PriceChange:
    """Prices of the pools matching every given selector x ``factor`` in ``start..end``.

    An empty selector matches anything; names within one selector are alternatives.
    """

    factor: float
    start: int
    end: int  # inclusive
    providers: tuple[str, ...] = ()
    accelerators: tuple[str, ...] = ()
    tiers: tuple[Tier, ...] = ()

    def matches(self, pool: Pool) -> bool:
        """Whether the change applies to ``pool``."""
        return (
            _among(pool.provider, self.providers)
            and _among(pool.accelerator, self.accelerators)
            and _among(pool.tier, self.tiers)
        )

    @property
    def selection(self) -> str:
        """The selectors as text, e.g. ``provider aws, tier spot``."""
        return _selection(
            [("provider", self.providers), ("accelerator", self.accelerators), ("tier", self.tiers)]
        )

    def describe(self, horizon: Horizon) -> str:
        """One line a user can read."""
        when = _window_text(horizon, self.start, self.end)
        return f"price change: pools with {self.selection} x{self.factor:g} {when}"


@dataclass(frozen=True)
class DemandSurge:
    """Demand of the workloads matching every given selector x ``factor`` in ``start..end``.

    An empty selector matches anything; names within one selector are alternatives.
    """

    factor: float
    start: int
    end: int  # inclusive
    kinds: tuple[WorkloadKind, ...] = ()
    names: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()

    def matches(self, workload: Workload) -> bool:
        """Whether the surge applies to ``workload``."""
        return (
            _among(workload_kind(workload), self.kinds)
            and _among(workload.name, self.names)
            and (not self.tenants or workload.tenant_class in self.tenants)
        )

    @property
    def selection(self) -> str:
        """The selectors as text, e.g. ``kind agentic, tenant api``."""
        return _selection([("kind", self.kinds), ("name", self.names), ("tenant", self.tenants)])

    def describe(self, horizon: Horizon) -> str:
        """One line a user can read."""
        when = _window_text(horizon, self.start, self.end)
        return f"demand surge: workloads with {self.selection} x{self.factor:g} {when}"


Event = Outage | SupplyShock | PriceChange | DemandSurge


@dataclass(frozen=True)
class Scenario:
    """A named list of (at least one) events, resolved against one fleet."""

    name: str
    description: str
    events: tuple[Event, ...]

    @property
    def start(self) -> int:
        """The first period any event touches."""
        return min(event.start for event in self.events)


def _among(value: str, names: tuple[str, ...]) -> bool:
    return not names or value in names


def _selection(selectors: Iterable[tuple[str, tuple[str, ...]]]) -> str:
    return ", ".join(f"{key} {' or '.join(names)}" for key, names in selectors if names)


def _share(fraction: float) -> str:
    return "all" if fraction >= 1.0 else f"{fraction:.0%}"


def _window_text(horizon: Horizon, start: int, end: int) -> str:
    if start == end:
        return f"in {horizon.label(start)}"
    return f"from {horizon.label(start)} to {horizon.label(end)}"


def _hours_text(horizon: Horizon, start: int, hours: float) -> str:
    periods = hours / horizon.period_hours
    if periods >= 1 and math.isclose(periods, round(periods)):
        last = min(start + round(periods), horizon.periods) - 1
        return _window_text(horizon, start, last)
    return f"for {hours:g} h from the start of {horizon.label(start)}"


# --- effects ----------------------------------------------------------------------------


def effects(fleet: Fleet, scenario: Scenario) -> Effects:
    """What ``scenario`` does to ``fleet``, as :class:`Effects` with one sample.

    Arrays are ``(1, P, T)`` in the fleet's pool order. Outages and supply shocks set
    ``down_hours`` and ``lost_fraction`` (several on one pool and period: the share
    lost is ``1 - prod(1 - fraction)``, the hours down the longest); price changes
    multiply ``price_factor``; demand surges multiply ``demand_factor[name]``, a
    ``(1, T)`` array per workload they match.
    """
    pools = fleet.pools
    periods, hours = fleet.horizon.periods, fleet.horizon.period_hours
    shape = (len(pools), periods)
    kept, down, price = np.ones(shape), np.zeros(shape), np.ones(shape)
    demand: dict[str, FloatArray] = {}
    t = np.arange(periods)
    for event in scenario.events:
        if isinstance(event, Outage | SupplyShock):
            mask = _pool_mask(pools, event.target.matches)
            covered = event.down_hours(periods, hours)
            hit = mask[:, None] & (covered > 0)[None, :]
            kept = np.where(hit, kept * (1.0 - event.fraction), kept)
            down = np.where(hit, np.maximum(down, covered[None, :]), down)
        elif isinstance(event, PriceChange):
            inside = (t >= event.start) & (t <= event.end)
            hit = _pool_mask(pools, event.matches)[:, None] & inside[None, :]
            price = np.where(hit, price * event.factor, price)
        else:
            row = np.where((t >= event.start) & (t <= event.end), event.factor, 1.0)
            for workload in _workloads(fleet):
                if event.matches(workload):
                    demand[workload.name] = demand.get(workload.name, np.ones(periods)) * row
    return Effects(
        lost_fraction=(1.0 - kept)[None],
        down_hours=down[None],
        price_factor=price[None],
        period_hours=hours,
        demand_factor={name: factor[None, :] for name, factor in demand.items()},
        start=scenario.start,
    )


def _pool_mask(pools: Iterable[Pool], test: _PoolTest) -> BoolArray:
    return np.array([test(pool) for pool in pools], dtype=bool)


def _workloads(fleet: Fleet) -> tuple[Workload, ...]:
    return (*fleet.training, *fleet.batch, *fleet.inference)


# --- loading and resolving --------------------------------------------------------------


def load_scenarios(path: Path, fleet: Fleet) -> list[Scenario]:
    """Read, validate and resolve every scenario of the file at ``path`` against ``fleet``."""
    return load_scenarios_text(read_input(path), str(path), fleet)


def load_scenarios_text(text: str, filename: str, fleet: Fleet) -> list[Scenario]:
    """Validate and resolve scenario file ``text``; ``filename`` is used in issues."""
    data, source = parse_yaml(text, filename)
    if data is None:
        message = "the file is empty: expected 'scenarios:' with a list of scenarios"
        raise SpecError([SpecIssue(filename, 1, 1, "", message)])
    try:
        spec = ScenarioFileSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(translate_validation_error(exc, data, source, ScenarioFileSpec)) from exc
    return _Resolver(fleet, source).scenarios(spec)


class _Resolver:
    """Checks a validated scenario file against a fleet, collecting located issues."""

    def __init__(self, fleet: Fleet, source: SourceMap) -> None:
        self.fleet = fleet
        self.source = source
        self.log = IssueLog(source)
        horizon = fleet.horizon
        self.span = f"{horizon.label(0)}..{horizon.label(horizon.periods - 1)}"
        self.calendar = (
            Calendar(horizon.start.year, horizon.start.month, horizon.periods)
            if horizon.period == "month"
            else None
        )

    def scenarios(self, spec: ScenarioFileSpec) -> list[Scenario]:
        """Every scenario of the file, or a SpecError listing every problem."""
        if not spec.scenarios:
            self.log.add(("scenarios",), "expected at least one scenario")
        first_seen: dict[str, PathKey] = {}
        out: list[Scenario] = []
        for i, scenario in enumerate(spec.scenarios):
            path: PathKey = ("scenarios", i)
            name = scenario.name
            if not name.strip():
                self.log.add((*path, "name"), "expected a non-empty name")
            elif name in first_seen:
                line = self.source.position(first_seen[name])[0]
                self.log.add((*path, "name"), f"scenario '{name}' is already defined (line {line})")
            first_seen.setdefault(name, (*path, "name"))
            if not scenario.events:
                self.log.add((*path, "events"), "expected at least one event")
            events = [self._event(e, (*path, "events", j)) for j, e in enumerate(scenario.events)]
            resolved = tuple(e for e in events if e is not None)
            description = scenario.description or "; ".join(
                e.describe(self.fleet.horizon) for e in resolved
            )
            out.append(Scenario(name, description, resolved))
        self.log.raise_if_any()
        return out

    def _event(self, spec: EventSpec, path: PathKey) -> Event | None:
        if isinstance(spec, OutageSpec):
            return self._outage(spec, path)
        if isinstance(spec, SupplyShockSpec):
            return self._supply_shock(spec, path)
        if isinstance(spec, PriceChangeSpec):
            return self._price_change(spec, path)
        return self._demand_surge(spec, path)

    # --- events ---

    def _outage(self, spec: OutageSpec, path: PathKey) -> Outage | None:
        targets = {
            "provider": spec.provider,
            "region": spec.region,
            "accelerator": spec.accelerator,
            "vendor": spec.vendor,
        }
        target = self._target(targets, path, "an outage")
        start = self._period(spec.start, (*path, "start"))
        hours: float | None = None
        if spec.end is not None and spec.hours is not None:
            self.log.add((*path, "hours"), "give either end or hours, not both", at_key=True)
        elif spec.end is not None:
            end = self._period(spec.end, (*path, "end"))
            if start is not None and end is not None and self._ordered(spec, start, end, path):
                hours = (end - start + 1) * self.fleet.horizon.period_hours
        elif spec.hours is not None:
            hours = spec.hours
        else:
            self.log.add(path, "an outage needs a length: end (the last period) or hours")
        if target is None or start is None or hours is None:
            return None
        return Outage(target, start, hours, spec.fraction)

    def _supply_shock(self, spec: SupplyShockSpec, path: PathKey) -> SupplyShock | None:
        targets = {"accelerator": spec.accelerator, "vendor": spec.vendor}
        target = self._target(targets, path, "a supply shock")
        start = self._period(spec.start, (*path, "start"))
        if target is None or start is None:
            return None
        return SupplyShock(target, start, spec.fraction)

    def _price_change(self, spec: PriceChangeSpec, path: PathKey) -> PriceChange | None:
        pools = self.fleet.pools
        providers = self._names(spec.provider, (*path, "provider"), "provider",
                                [p.provider for p in pools], in_fleet=True)
        accelerators = self._names(spec.accelerator, (*path, "accelerator"), "accelerator",
                                   [p.accelerator for p in pools], in_fleet=True)
        tiers = self._names(spec.tier, (*path, "tier"), "tier", [t.value for t in Tier],
                            in_fleet=False)
        given = (spec.provider, spec.accelerator, spec.tier)
        if all(value is None for value in given):
            self.log.add(path, "a price change needs a selector: provider, accelerator or tier")
        window = self._window(spec, path)
        if providers is None or accelerators is None or tiers is None or window is None:
            return None
        event = PriceChange(spec.factor, *window, providers, accelerators,
                            tuple(Tier(t) for t in tiers))
        if any(value is not None for value in given) and not any(map(event.matches, pools)):
            self.log.add(path, f"the price change selects no pool: none has {event.selection}")
            return None
        return event

    def _demand_surge(self, spec: DemandSurgeSpec, path: PathKey) -> DemandSurge | None:
        workloads = _workloads(self.fleet)
        tenant_classes = {w.tenant_class for w in workloads if w.tenant_class is not None}
        kinds = self._names(spec.workload_kind, (*path, "workload_kind"), "workload kind",
                            [k.value for k in WorkloadKind], in_fleet=False)
        names = self._names(spec.name, (*path, "name"), "workload", [w.name for w in workloads],
                            in_fleet=True)
        tenants = self._names(spec.tenant, (*path, "tenant"), "tenant class",
                              tenant_classes | set(self.fleet.policies.exclusivity), in_fleet=True)
        given = (spec.workload_kind, spec.name, spec.tenant)
        if all(value is None for value in given):
            self.log.add(path, "a demand surge needs a selector: workload_kind, name or tenant")
        window = self._window(spec, path)
        if kinds is None or names is None or tenants is None or window is None:
            return None
        event = DemandSurge(spec.factor, *window, tuple(WorkloadKind(k) for k in kinds),
                            names, tenants)
        if any(value is not None for value in given) and not any(map(event.matches, workloads)):
            message = f"the demand surge selects no workload: none has {event.selection}"
            self.log.add(path, message)
            return None
        return event

    # --- pieces ---

    def _target(
        self, given: Mapping[str, str | None], path: PathKey, what: str
    ) -> Target | None:
        """Exactly one of the ``given`` target fields, naming something of the fleet."""
        named = [(key, name) for key, name in given.items() if name is not None]
        if not named:
            self.log.add(path, f"{what} needs a target: one of {', '.join(given)}")
            return None
        if len(named) > 1:
            keys = " and ".join(key for key, _ in named)
            message = f"{what} takes exactly one target, got {keys}"
            last = max(named, key=lambda item: self.source.key_position((*path, item[0])))
            self.log.add((*path, last[0]), message, at_key=True)
            return None
        key, name = named[0]
        kind = TargetKind(key)
        known = {kind.of(pool) for pool in self.fleet.pools}
        if name not in known:
            self._unknown((*path, key), key, name, known, in_fleet=True)
            return None
        return Target(kind, name)

    def _names(
        self,
        value: str | list[str] | None,
        path: PathKey,
        what: str,
        known: Iterable[str],
        *,
        in_fleet: bool,
    ) -> tuple[str, ...] | None:
        """A selector's names, each checked: () when not given; None after an issue."""
        if value is None:
            return ()
        names = [value] if isinstance(value, str) else value
        if not names:
            self.log.add(path, f"expected at least one {what}")
            return None
        known = set(known)
        ok = True
        for i, name in enumerate(names):
            if name not in known:
                where = path if isinstance(value, str) else (*path, i)
                self._unknown(where, what, name, known, in_fleet=in_fleet)
                ok = False
        return tuple(dict.fromkeys(names)) if ok else None

    def _unknown(
        self, path: PathKey, what: str, name: str, known: set[str], *, in_fleet: bool
    ) -> None:
        """An unknown name, with the known ones (the fleet's, or a fixed vocabulary)."""
        hint = suggest(name, known)
        note = ""
        if what == "region" and "/" not in name:  # "eastus" -> "azure/eastus"
            note = " (a region is written provider/region)"
            regions = [k for k in known if k.endswith(f"/{name}")]
            hint = regions[0] if len(regions) == 1 else hint
        listing = sorted(known)
        shown = ", ".join(listing[:12])
        if len(listing) > 12:
            shown += f" and {len(listing) - 12} more"
        known_text = f"fleet {self.fleet.name} has {shown}" if in_fleet else f"expected {shown}"
        self.log.add(path, f"unknown {what} '{name}'{note}: {known_text}", hint)

    def _period(self, ref: int | str, path: PathKey) -> int | None:
        """A period index or month label -> an index inside the horizon; None after an issue."""
        last = self.fleet.horizon.periods - 1
        if isinstance(ref, int):
            if 0 <= ref <= last:
                return ref
            self.log.add(path, f"period {ref} is outside the horizon: 0..{last} ({self.span})")
            return None
        if self.calendar is None:
            self.log.add(path, f"a month needs a monthly horizon: give a period index 0..{last}")
            return None
        index = self.calendar.index(ref)
        if index is None:
            self.log.add(path, bad_date(ref))
            return None
        if not 0 <= index <= last:
            self.log.add(path, f"{ref} is outside the horizon {self.span}")
            return None
        return index

    def _window(
        self, spec: PriceChangeSpec | DemandSurgeSpec, path: PathKey
    ) -> tuple[int, int] | None:
        """``start..end`` as indices (``end`` defaults to the horizon's last period)."""
        start = self._period(spec.start, (*path, "start"))
        end = self.fleet.horizon.periods - 1
        if spec.end is not None:
            given = self._period(spec.end, (*path, "end"))
            if given is None:
                return None
            end = given
        if start is None or not self._ordered(spec, start, end, path):
            return None
        return start, end

    def _ordered(
        self,
        spec: OutageSpec | PriceChangeSpec | DemandSurgeSpec,
        start: int,
        end: int,
        path: PathKey,
    ) -> bool:
        """Whether ``end`` >= ``start``; an issue at ``end`` otherwise."""
        if end >= start:
            return True
        what = spec.kind.replace("_", " ")
        message = f"the {what} ends ({_ref(spec.end)}) before it starts ({_ref(spec.start)})"
        self.log.add((*path, "end"), message)
        return False


def _ref(ref: int | str | None) -> str:
    return f"period {ref}" if isinstance(ref, int) else str(ref)
