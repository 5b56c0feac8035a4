"""Built-in scenarios, computed from a fleet, their families, and scenario references.

Names (documented in ``docs/stress-scenarios.md``), for the fleet's own providers,
vendors and regions; every capacity loss is total and lasts the whole horizon:

    n-1-<provider>                      every pool of the provider lost (N-1)
    n-1-vendor-<vendor>                 every pool of the vendor's accelerators lost
    n-1-region-<provider>-<region>      every pool of the region lost
    <vendor>-minus-30                   supply shock: the vendor loses 30% from period 0
    spot-x3                             spot prices x3 (only if the fleet has spot pools)
    agentic-x2                          agentic demand x2 (only if it has agentic workloads)

Families (for a sweep): ``n-1-provider``, ``n-1-vendor``, ``n-1-region``, ``n-1`` (the
three), ``shocks`` (supply, price and demand ones) and ``all``.

A scenario reference (:func:`resolve_scenario_ref`) is ``builtin:NAME``, a scenario
file ``FILE.yaml`` (all its scenarios) or ``FILE.yaml#NAME`` (one of them).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from cloudhedge.core.errors import SpecError, SpecIssue
from cloudhedge.core.models import Fleet, Tier
from cloudhedge.spec.source import suggest
from cloudhedge.stress.scenario import (
    DemandSurge,
    Outage,
    PriceChange,
    Scenario,
    SupplyShock,
    Target,
    TargetKind,
    WorkloadKind,
    load_scenarios,
    workload_kind,
)

__all__ = ["BUILTIN_PREFIX", "FAMILIES", "builtin_scenarios", "family", "resolve_scenario_ref"]

BUILTIN_PREFIX = "builtin:"
FAMILIES = ("n-1-provider", "n-1-vendor", "n-1-region", "n-1", "shocks", "all")
SHOCK_FRACTION = 0.3
SPOT_FACTOR = 3.0
AGENTIC_FACTOR = 2.0
_NOT_APPLICABLE = {"spot-x3": "it has no spot pool", "agentic-x2": "it has no agentic workload"}


def builtin_scenarios(fleet: Fleet) -> dict[str, Scenario]:
    """Every built-in scenario that applies to ``fleet``, by name, family by family."""
    return {s.name: s for group in _groups(fleet).values() for s in group}


def family(fleet: Fleet, name: str) -> list[Scenario]:
    """The built-in scenarios of family ``name`` (one of :data:`FAMILIES`) for ``fleet``."""
    groups = _groups(fleet)
    if name == "all":
        return [s for group in groups.values() for s in group]
    if name == "n-1":
        return [*groups["n-1-provider"], *groups["n-1-vendor"], *groups["n-1-region"]]
    if name in groups:
        return list(groups[name])
    message = f"unknown scenario family; families: {', '.join(FAMILIES)}"
    raise SpecError([SpecIssue(name, 0, 0, "", message, suggest(name, FAMILIES))])


def resolve_scenario_ref(fleet: Fleet, ref: str) -> list[Scenario]:
    """The scenarios ``ref`` names: ``builtin:NAME``, ``FILE.yaml`` or ``FILE.yaml#NAME``.

    Raises :class:`SpecError` for an unknown built-in (listing the nearest names), an
    unreadable or invalid file, or a name the file does not define.
    """
    if ref.startswith(BUILTIN_PREFIX):
        name = ref.removeprefix(BUILTIN_PREFIX)
        builtins = builtin_scenarios(fleet)
        if name in builtins:
            return [builtins[name]]
        raise SpecError([_unknown_builtin(fleet, ref, name, list(builtins))])
    file, _, name = ref.rpartition("#") if "#" in ref else (ref, "", "")
    scenarios = load_scenarios(Path(file), fleet)
    if not name:
        return scenarios
    chosen = [s for s in scenarios if s.name == name]
    if chosen:
        return chosen
    names = [s.name for s in scenarios]
    message = f"no scenario named '{name}' in the file; it has {', '.join(names)}"
    raise SpecError([SpecIssue(file, 0, 0, "", message, suggest(name, names))])


def _unknown_builtin(fleet: Fleet, ref: str, name: str, names: list[str]) -> SpecIssue:
    if name in _NOT_APPLICABLE:
        message = f"built-in scenario '{name}' does not apply to fleet {fleet.name}: "
        return SpecIssue(ref, 0, 0, "", message + _NOT_APPLICABLE[name])
    nearest = difflib.get_close_matches(name, names, n=5, cutoff=0.5) or names[:8]
    message = f"unknown built-in scenario '{name}' for fleet {fleet.name}; nearest: "
    return SpecIssue(ref, 0, 0, "", message + ", ".join(nearest), suggest(name, names))


def _groups(fleet: Fleet) -> dict[str, list[Scenario]]:
    """The fleet's built-ins by elementary family: n-1-provider, n-1-vendor, n-1-region, shocks."""
    pools = fleet.pools
    horizon = fleet.horizon
    whole = horizon.periods * horizon.period_hours
    last = horizon.periods - 1

    def lost(name: str, target: Target, what: str) -> Scenario:
        description = f"{what} lost for the whole horizon (N-1)"
        return Scenario(name, description, (Outage(target, 0, whole),))

    providers = sorted({p.provider for p in pools})
    vendors = sorted({p.vendor for p in pools})
    regions = sorted({(p.provider, p.region) for p in pools})
    shocks = [
        Scenario(
            f"{vendor}-minus-30",
            f"{vendor} supply {SHOCK_FRACTION:.0%} short from the first period on",
            (SupplyShock(Target(TargetKind.VENDOR, vendor), 0, SHOCK_FRACTION),),
        )
        for vendor in vendors
    ]
    if any(p.tier is Tier.SPOT for p in pools):
        spot = PriceChange(SPOT_FACTOR, 0, last, tiers=(Tier.SPOT,))
        shocks.append(Scenario("spot-x3", "spot prices x3 for the whole horizon", (spot,)))
    if any(workload_kind(s) is WorkloadKind.AGENTIC for s in fleet.inference):
        surge = DemandSurge(AGENTIC_FACTOR, 0, last, kinds=(WorkloadKind.AGENTIC,))
        shocks.append(Scenario("agentic-x2", "agentic demand x2 for the whole horizon", (surge,)))
    return {
        "n-1-provider": [
            lost(f"n-1-{p}", Target(TargetKind.PROVIDER, p), p) for p in providers
        ],
        "n-1-vendor": [
            lost(f"n-1-vendor-{v}", Target(TargetKind.VENDOR, v), f"every {v} accelerator")
            for v in vendors
        ],
        "n-1-region": [
            lost(f"n-1-region-{p}-{r}", Target(TargetKind.REGION, f"{p}/{r}"), f"region {p}/{r}")
            for p, r in regions
        ],
        "shocks": shocks,
    }
