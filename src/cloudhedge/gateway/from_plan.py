"""Routing weights from a plan: the plan's per-service chip shares become route weights.

``cloudhedge gateway --from-plan plan.json --deployments deployments.yaml`` routes each
model the way the plan serves it. For one period of the plan (the first by default):

1. the chips of each inference service are summed per place, a place being a
   provider/region (``plan.allocations`` of kind ``inference``, each pool's place from
   ``plan.pools``; accelerators and tiers are summed together);
2. each model is matched to the plan's service of the same name (or the one
   ``service_of`` names for it);
3. a deployment of the model gets the share of the service's chips in its place,
   split equally among the model's deployments in that place. A deployment where the
   plan puts no chips gets weight 0: a failover target only;
4. the route is :attr:`Strategy.WEIGHTED` with a weight for every deployment of the
   model. Weights are shares of the service's chips: they sum to 1 when every place
   the plan uses has a deployment, less otherwise.

Weights apply among the deployments a request may use: a tenant class restricted to
some providers or jurisdictions picks by the same weights among those (the choice is
proportional to weight, so the others' shares do not matter).

What does not match is reported as notes, never guessed: a model without a plan
service, a place where the plan serves a service but no deployment runs, a service
the plan serves that no model maps to. A model whose route cannot be derived (no
service, no chips in the period, no deployment where the chips are) keeps the route
it had.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TypeAlias

from cloudhedge.core.plan import Plan
from cloudhedge.gateway.config import Deployment, GatewayConfig, Route, Strategy
from cloudhedge.gateway.config_schema import load_deployments
from cloudhedge.spec.source import suggest

__all__ = ["config_with_plan", "load_deployments", "routes_from_plan"]

Place: TypeAlias = tuple[str, str]
"""(provider, region)."""


def routes_from_plan(
    plan: Plan,
    deployments: Sequence[Deployment],
    *,
    service_of: Mapping[str, str] | None = None,
    period: int = 0,
) -> tuple[dict[str, Route], list[str]]:
    """Weighted routes by model from the chip shares of ``plan`` in ``period``, and notes.

    ``service_of`` maps a model to the plan service it serves when the names differ.
    Raises ValueError when ``period`` is outside the plan's horizon.
    """
    periods = plan.horizon.periods
    if not 0 <= period < periods:
        raise ValueError(f"period {period} is outside the plan's horizon (0..{periods - 1})")
    label = plan.horizon.labels[period]
    chips = _chips_by_place(plan, period)
    services = _services(plan)
    by_model: dict[str, list[Deployment]] = defaultdict(list)
    for d in deployments:
        by_model[d.model].append(d)
    mapping = dict(service_of or {})
    notes = [f"service_of maps model '{m}', which no deployment serves"
             for m in mapping if m not in by_model]
    routes: dict[str, Route] = {}
    matched: set[str] = set()
    for model, deps in by_model.items():
        service = mapping.get(model, model)
        if service not in services:
            hint = suggest(service, services)
            notes.append(f"model '{model}': the plan has no inference service '{service}'"
                         + (f" (did you mean '{hint}'?)" if hint else "")
                         + "; its route is left as configured")
            continue
        matched.add(service)
        route, route_notes = _route(model, deps, service, chips.get(service, {}), label)
        notes += route_notes
        if route is not None:
            routes[model] = route
    unmatched = sorted(set(chips) - matched)
    if unmatched:
        notes.append(f"services the plan serves in {label} without a deployment (no model "
                     f"named after them or mapped to them by service_of): {', '.join(unmatched)}")
    return routes, notes


def config_with_plan(
    config: GatewayConfig,
    plan: Plan,
    period: int = 0,
    *,
    service_of: Mapping[str, str] | None = None,
) -> tuple[GatewayConfig, list[str]]:
    """``config`` with the routes :func:`routes_from_plan` derives (others kept), and notes."""
    routes, notes = routes_from_plan(plan, config.deployments, service_of=service_of,
                                     period=period)
    return replace(config, routes={**config.routes, **routes}), notes


def _route(
    model: str,
    deployments: list[Deployment],
    service: str,
    chips: Mapping[Place, float],
    label: str,
) -> tuple[Route | None, list[str]]:
    """The weighted route of one model from its service's chips per place (None: no
    deployment where the chips are, or no chips)."""
    total = sum(chips.values())
    if total <= 0:
        return None, [f"model '{model}': the plan gives service '{service}' no chips in "
                      f"{label}; its route is left as configured"]
    at: dict[Place, int] = defaultdict(int)
    for d in deployments:
        at[(d.provider, d.region)] += 1
    notes = [f"service '{service}': {c / total:.1%} of its chips in {label} are in "
             f"{provider}/{region}, where no deployment of model '{model}' runs"
             for (provider, region), c in sorted(chips.items()) if (provider, region) not in at]
    weights = {
        d.name: chips.get((d.provider, d.region), 0.0) / total / at[(d.provider, d.region)]
        for d in deployments
    }
    if not any(w > 0 for w in weights.values()):
        notes.append(f"model '{model}': no deployment is where the plan serves service "
                     f"'{service}' in {label}; its route is left as configured")
        return None, notes
    return Route(model, Strategy.WEIGHTED, weights), notes


def _chips_by_place(plan: Plan, period: int) -> dict[str, dict[Place, float]]:
    """Inference chips per service and place in ``period`` (positive amounts only)."""
    place = {p.name: (p.provider, p.region) for p in plan.pools}
    chips: dict[str, dict[Place, float]] = defaultdict(lambda: defaultdict(float))
    for a in plan.allocations:
        if a.kind == "inference" and a.period == period and a.chips > 0:
            chips[a.workload][place[a.pool]] += a.chips
    return {service: dict(by_place) for service, by_place in chips.items()}


def _services(plan: Plan) -> set[str]:
    """Every inference service the plan knows: allocated in some period, or unmet."""
    allocated = {a.workload for a in plan.allocations if a.kind == "inference"}
    return allocated | {u.workload for u in plan.unmet if u.kind == "inference"}
