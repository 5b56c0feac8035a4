"""What a hedge is worth: premium against payout, per scenario and in expectation.

Three plans from one spec meet the same scenarios and the same Monte Carlo samples
(same seed, so the same outages): the hedged plan (every policy), the unhedged plan
(caps and survivability off; exclusivity, residency and budget stay, being contracts
and law rather than hedges) and the best single-provider plan (the planner on one
provider's pools and contracts). The premium of a plan is its cost minus the
unhedged plan's; its loss under a scenario is what the scenario costs it:

    loss = extra cost (failover, re-done work, price changes)
         + unserved tokens x the service's unmet-demand penalty
         + unserved batch chip-hours x the batch penalty x priority
         + for a run that misses its deadline, min(gang chips x delay hours, its
           chip-hours) x the training penalty x priority

The payout of hedging under a scenario is the unhedged loss minus the hedged loss.
Penalties are the fleet's own (``unmet_penalty_usd_per_million_tokens`` per service,
``training_penalty_usd_per_chip_hour``, ``batch_penalty_usd_per_chip_hour``): the
value the user put on service, not money spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from cloudhedge.core.models import Fleet
from cloudhedge.core.plan import Plan
from cloudhedge.core.stress_report import HedgeValue, PlanVariant, VariantOutcome
from cloudhedge.planning.baselines import best_single_provider, single_provider_fleet
from cloudhedge.planning.explain import fmt_usd
from cloudhedge.planning.index import FloatArray, PolicySwitches
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.stress.risk import RiskModel, SampleOutcomes, cvar, monte_carlo
from cloudhedge.stress.scenario import Scenario, effects
from cloudhedge.stress.state import PlanState

UNHEDGED = PolicySwitches(caps=(), survivability=())
"""Caps and survivability off; exclusivity, residency and budget kept."""


@dataclass(frozen=True)
class Variant:
    name: Literal["hedged", "unhedged", "single-provider"]
    description: str
    fleet: Fleet  # the fleet the plan was made on (one provider's, for single-provider)
    plan: Plan


def variants(fleet: Fleet, plan: Plan, options: PlanOptions) -> list[Variant]:
    """The hedged plan (given), the unhedged plan and the best single-provider plan."""
    opts = replace(options, explain=False, duals=False)
    unhedged = make_plan(fleet, replace(opts, switches=UNHEDGED))
    provider, single = best_single_provider(fleet, opts)
    return [
        Variant("hedged", "the plan, every policy kept", fleet, plan),
        Variant("unhedged", "caps and survivability off (exclusivity, residency, budget "
                            "kept)", fleet, unhedged),
        Variant("single-provider", f"everything on {provider}, the best single provider",
                single_provider_fleet(fleet, provider), single),
    ]


def loss_usd(fleet: Fleet, out: SampleOutcomes, services: Sequence[str]) -> FloatArray:
    """(N,) loss of each sample, valued as in the module doc."""
    svc = {s.name: s for s in fleet.inference}
    per_token = np.array([svc[n].unmet_penalty_usd_per_million_tokens / 1e6 for n in services])
    loss = out.extra_cost_usd + out.unserved_tokens @ per_token
    if fleet.batch:
        rate = np.array([fleet.batch_penalty_usd_per_chip_hour * j.priority for j in fleet.batch])
        loss = loss + out.batch_unserved @ rate
    if fleet.training:
        # chip-hours of slip past the deadline, at most the run itself (a run that slips
        # out of the horizon loses no more than one never scheduled)
        gang = np.array([r.gang_chips for r in fleet.training], dtype=np.float64)
        whole = np.array([r.chip_hours for r in fleet.training], dtype=np.float64)
        rate = np.array([fleet.training_penalty_usd_per_chip_hour * r.priority
                         for r in fleet.training])
        slip = np.minimum(out.training_missed * out.training_delay_hours * gang, whole)
        loss = loss + slip @ rate
    return np.asarray(loss, dtype=np.float64)


def _outcome(name: str, fleet: Fleet, out: SampleOutcomes, services: Sequence[str],
             pick: str = "mean") -> VariantOutcome:
    loss = loss_usd(fleet, out, services)
    if pick == "cvar95":
        return VariantOutcome(scenario=name, unserved_tokens=_cvar_of(out.unserved_tokens),
                              lost_chip_hours=_cvar_of(out.training_lost_chip_hours),
                              missed_deadlines=_cvar_of(out.training_missed.astype(np.float64)),
                              loss_usd=round(cvar(loss), 2),
                              extra_cost_usd=round(cvar(out.extra_cost_usd), 2))
    return VariantOutcome(
        scenario=name, unserved_tokens=round(float(out.unserved_tokens.sum(axis=1).mean()), 2),
        lost_chip_hours=round(float((out.training_lost_chip_hours.sum(axis=1)
                                     + out.batch_unserved.sum(axis=1)).mean()), 2),
        missed_deadlines=round(float(out.training_missed.sum(axis=1).mean()), 4),
        loss_usd=round(float(loss.mean()), 2),
        extra_cost_usd=round(float(out.extra_cost_usd.mean()), 2))


def _cvar_of(per_item: FloatArray) -> float:
    return round(cvar(np.asarray(per_item, dtype=np.float64).sum(axis=1)), 2)


def hedge_value(variants_: Sequence[Variant], scenarios: Sequence[Scenario], *,
                samples: int = 0, seed: int = 0, model: RiskModel | None = None,
                workers: int = 1) -> HedgeValue:
    """Every variant against every scenario and, with ``samples``, the same Monte Carlo."""
    base = next(v for v in variants_ if v.name == "unhedged").plan.cost.total_usd
    rows: list[PlanVariant] = []
    losses: dict[str, dict[str, float]] = {}
    for v in variants_:
        state = PlanState.from_plan(v.fleet, v.plan)
        services = list(dict.fromkeys(u.service.name for u in state.units))
        outcomes = []
        for sc in scenarios:
            out = SampleOutcomes.of(state, effects(v.fleet, sc))
            outcomes.append(_outcome(sc.name, v.fleet, out, services))
        if samples:
            rr = monte_carlo(state, model or RiskModel(), samples, seed, workers=workers)
            outcomes.append(_outcome("expected", v.fleet, rr.per_sample, rr.services))
            outcomes.append(_outcome("cvar95", v.fleet, rr.per_sample, rr.services,
                                     pick="cvar95"))
        losses[v.name] = {o.scenario: o.loss_usd for o in outcomes}
        rows.append(PlanVariant(name=v.name, description=v.description,
                                cost_usd=round(v.plan.cost.total_usd, 2),
                                premium_usd=round(v.plan.cost.total_usd - base, 2),
                                outcomes=outcomes))
    payout = {k: round(losses["unhedged"][k] - losses["hedged"][k], 2)
              for k in losses["hedged"]}
    return HedgeValue(variants=rows, payout_usd=payout, text=_text(rows, payout))


def _text(rows: Sequence[PlanVariant], payout: dict[str, float]) -> list[str]:
    hedged = next(r for r in rows if r.name == "hedged")
    lines = [f"The hedged plan costs {fmt_usd(hedged.premium_usd)} more than the unhedged one "
             f"over the horizon (the premium)."]
    scen = {k: v for k, v in payout.items() if k not in ("expected", "cvar95")}
    if scen:
        best = max(scen, key=lambda k: scen[k])
        pays = sum(1 for v in scen.values() if v > 0)
        lines.append(f"Hedging pays off in {pays} of {len(scen)} scenarios; most under "
                     f"{best}: {fmt_usd(scen[best])} of loss avoided.")
    if "expected" in payout:
        net = payout["expected"] - hedged.premium_usd
        lines.append(f"In expectation over the samples it avoids {fmt_usd(payout['expected'])} "
                     f"of loss ({fmt_usd(payout.get('cvar95', 0.0))} in the worst 5%): "
                     f"{'more' if net >= 0 else 'less'} than the premium by {fmt_usd(abs(net))}.")
    return lines
