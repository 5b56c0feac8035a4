"""Scenarios against a plan: the immediate answer, the re-plan, risk and hedge value.

``run_stress`` is what ``cloudhedge stress`` does: for each scenario, the immediate
impact on the plan as it is (:mod:`cloudhedge.stress.impact`) and the planner's
re-plan with the past fixed (:func:`cloudhedge.planning.replan.replan`); optionally
Monte Carlo risk (:mod:`cloudhedge.stress.risk`) and the value of the hedge: the
same scenarios and samples against the unhedged plan (caps and survivability off)
and the best single-provider plan.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from cloudhedge.core.models import DomainKind, Fleet
from cloudhedge.core.plan import Plan, SurvivabilityCell
from cloudhedge.core.stress_report import (
    AvailabilityOut,
    BatchImpact,
    Immediate,
    Quantiles,
    Replanned,
    Risk,
    ScenarioResult,
    ServiceImpact,
    ServiceRisk,
    StressReport,
    TrainingImpact,
    TrainingRiskOut,
)
from cloudhedge.planning.index import FloatArray
from cloudhedge.planning.planner import PlanOptions
from cloudhedge.planning.replan import ScenarioInputs, replan
from cloudhedge.stress.effects import Effects
from cloudhedge.stress.impact import SECONDS_PER_HOUR, Impact, immediate
from cloudhedge.stress.risk import AvailabilityModel, RiskModel, cvar, monte_carlo
from cloudhedge.stress.scenario import Outage, Scenario, SupplyShock, TargetKind, effects
from cloudhedge.stress.state import PlanState
from cloudhedge.stress.value import hedge_value, variants

Progress = Callable[[str], None]
"""Called once per finished step with a short label (the CLI advances a bar)."""

_DOMAIN_OF_TARGET = {TargetKind.PROVIDER: DomainKind.PROVIDER,
                     TargetKind.VENDOR: DomainKind.VENDOR, TargetKind.REGION: DomainKind.REGION}


@dataclass(frozen=True)
class StressOptions:
    plan: PlanOptions = field(default_factory=lambda: PlanOptions(explain=False))
    replan: bool = True
    workers: int = 1  # processes for re-plans and Monte Carlo
    samples: int = 0  # Monte Carlo samples; 0: no risk section
    seed: int = 0
    risk_model: RiskModel = field(default_factory=RiskModel)
    hedge_value: bool = False


@dataclass(frozen=True)
class Labelled:
    """A scenario with the family it was swept from (None when named directly)."""

    scenario: Scenario
    family: str | None = None


def _r(v: float) -> float:
    return round(float(v), 4)


# ------------------------------------------------------------------ one scenario


def n1_domain(fleet: Fleet, scenario: Scenario) -> tuple[DomainKind, str] | None:
    """The failure domain an N-1 scenario takes out: one total outage of a provider,
    vendor or region over the whole horizon; None for any other scenario."""
    if len(scenario.events) != 1 or not isinstance(scenario.events[0], Outage):
        return None
    ev = scenario.events[0]
    whole = fleet.horizon.periods * fleet.horizon.period_hours
    if ev.fraction < 1.0 or ev.start != 0 or ev.hours < whole \
            or ev.target.kind not in _DOMAIN_OF_TARGET:
        return None
    return _DOMAIN_OF_TARGET[ev.target.kind], ev.target.name


def _promises(plan: Plan, domain: tuple[DomainKind, str] | None
              ) -> dict[tuple[str, str], SurvivabilityCell]:
    if domain is None:
        return {}
    kind, name = domain
    return {(c.service, c.jurisdiction): c for c in plan.survivability
            if c.kind == str(kind) and c.domain == name}


def immediate_result(fleet: Fleet, plan: Plan, imp: Impact,
                     domain: tuple[DomainKind, str] | None) -> Immediate:
    """The first sample of ``imp`` as the report's :class:`Immediate` section."""
    scale = SECONDS_PER_HOUR * imp.period_hours
    demand, served = imp.demand_tokens_per_s[0], imp.served_tokens_per_s[0]
    kept = imp.kept_tokens_per_s[0]
    crit = {s.name: str(s.criticality) for s in fleet.inference}
    promises = _promises(plan, domain)
    services = []
    for s, label in enumerate(imp.units):
        name, jur = label.rsplit("/", 1)
        share = np.divide(served[s], demand[s], out=np.ones_like(served[s]),
                          where=demand[s] > 0)
        worst = float(share.min(initial=1.0))
        cell = promises.get((name, jur))
        # what the plan claims survives: its alpha, or less where it says it fell short
        promised = None if cell is None else min(cell.alpha, cell.kept_share_min)
        services.append(ServiceImpact(
            service=name, jurisdiction=jur, criticality=crit.get(name, "standard"),
            demand_tokens_per_s=[_r(v) for v in demand[s]],
            served_tokens_per_s=[_r(v) for v in served[s]],
            failover_tokens_per_s=[_r(max(v, 0.0)) for v in served[s] - kept[s]],
            served_share_min=_r(worst), unserved_tokens=_r(imp.unserved_tokens[0, s].sum()),
            promised_share=None if promised is None else _r(promised),
            promise_kept=None if promised is None else worst >= promised - 1e-6))
    placed = {t.workload: t.pool for t in plan.training}
    training = [TrainingImpact(workload=r, pool=placed.get(r),
                               delay_hours=_r(imp.training_delay_hours[0, i]),
                               lost_chip_hours=_r(imp.training_lost_chip_hours[0, i]),
                               missed_deadline=bool(imp.training_missed_deadline[0, i]))
                for i, r in enumerate(imp.runs)
                if imp.training_delay_hours[0, i] > 0 or imp.training_missed_deadline[0, i]]
    batch = [BatchImpact(workload=j, delayed_chip_hours=_r(imp.batch_delayed_chip_hours[0, i]),
                         unserved_chip_hours=_r(imp.batch_unserved_chip_hours[0, i]))
             for i, j in enumerate(imp.jobs)
             if imp.batch_delayed_chip_hours[0, i] > 0 or imp.batch_unserved_chip_hours[0, i] > 0]
    total_demand = float(demand.sum()) * scale
    unserved = float(imp.unserved_tokens[0].sum())
    return Immediate(
        served_share=_r(1.0 - unserved / total_demand) if total_demand > 0 else 1.0,
        unserved_tokens=_r(unserved),
        lost_chip_hours=_r(imp.training_lost_chip_hours[0].sum()
                           + imp.batch_unserved_chip_hours[0].sum()),
        missed_deadlines=int(imp.training_missed_deadline[0].sum()),
        cost_usd=_r(imp.cost_usd[0].sum()), extra_cost_usd=_r(imp.extra_cost_usd[0]),
        cost_by_period=[_r(v) for v in imp.cost_usd[0]],
        services=services, training=training, batch=batch)


def scenario_inputs(scenario: Scenario, eff: Effects) -> ScenarioInputs:
    """The first sample of ``eff`` as the planner's scenario inputs."""
    spent = tuple(dict.fromkeys(
        _DOMAIN_OF_TARGET[ev.target.kind] for ev in scenario.events
        if isinstance(ev, Outage | SupplyShock) and ev.fraction >= 1.0
        and ev.target.kind in _DOMAIN_OF_TARGET))
    return ScenarioInputs(eff.capacity_factor()[0], eff.price_factor[0],
                          {k: v[0] for k, v in eff.demand_factor.items()}, eff.start, spent)


def replanned_result(fleet: Fleet, plan: Plan, inputs: ScenarioInputs,
                     options: PlanOptions) -> Replanned:
    """Re-plan under the scenario and summarise it against the original plan."""
    t0 = time.perf_counter()
    after, notes = replan(fleet, plan, inputs, options)
    seconds = time.perf_counter() - t0
    hours = fleet.horizon.period_hours
    demand = _demand_tokens_per_s(fleet, inputs) * SECONDS_PER_HOUR * hours
    unserved = sum(u.amount for u in after.unmet if u.kind == "inference") \
        * SECONDS_PER_HOUR * hours
    return Replanned(
        status=after.status, cost_usd=_r(after.cost.total_usd),
        penalty_usd=_r(after.cost.penalty_usd),
        extra_cost_usd=_r(after.cost.total_usd - plan.cost.total_usd),
        served_share=_r(1.0 - unserved / demand) if demand > 0 else 1.0,
        unserved_tokens=_r(unserved),
        unscheduled_runs=[t.workload for t in after.training if not t.scheduled],
        unmet=[f"{u.workload}{'/' + u.jurisdiction if u.jurisdiction else ''}"
               f"{'' if u.period is None else ' @' + fleet.horizon.label(u.period)}: "
               f"{u.amount:,.4g} {u.unit} ({u.cause})" for u in after.unmet],
        notes=notes, solve_seconds=_r(seconds))


def _demand_tokens_per_s(fleet: Fleet, inputs: ScenarioInputs) -> float:
    """Inference demand under the scenario, summed over services, jurisdictions, periods."""
    total = 0.0
    for svc in fleet.inference:
        f = inputs.demand_factor.get(svc.name)
        for series in svc.demand_tokens_per_s.values():
            row = np.asarray(series)
            total += float((row if f is None else row * f).sum())
    return total


def _replan_task(args: tuple[Fleet, Plan, ScenarioInputs, PlanOptions]) -> Replanned:
    return replanned_result(*args)


# ------------------------------------------------------------------ the run


def run_scenarios(fleet: Fleet, plan: Plan, scenarios: Sequence[Labelled],
                  options: StressOptions, progress: Progress | None = None, *,
                  state: PlanState | None = None) -> list[ScenarioResult]:
    """Immediate answer for every scenario, then the re-plans (in parallel if asked)."""
    state = state or PlanState.from_plan(fleet, plan)
    effs = [effects(fleet, s.scenario) for s in scenarios]
    out: list[ScenarioResult] = []
    for lab, eff in zip(scenarios, effs, strict=True):
        dom = n1_domain(fleet, lab.scenario)
        out.append(ScenarioResult(
            name=lab.scenario.name, description=lab.scenario.description, family=lab.family,
            start_period=eff.start, domain=None if dom is None else f"{dom[0]}:{dom[1]}",
            immediate=immediate_result(fleet, plan, immediate(state, eff), dom)))
        if progress:
            progress(f"immediate {lab.scenario.name}")
    if not options.replan:
        return out
    tasks = [(fleet, plan, scenario_inputs(lab.scenario, e), options.plan)
             for lab, e in zip(scenarios, effs, strict=True)]
    if options.workers > 1 and len(tasks) > 1:
        # spawn, not fork: HiGHS's worker threads do not survive a fork, and a forked
        # child that solves can hang on them
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=options.workers, mp_context=ctx) as pool:
            replans = []
            for r, lab in zip(pool.map(_replan_task, tasks), scenarios, strict=True):
                replans.append(r)
                if progress:
                    progress(f"replanned {lab.scenario.name}")
    else:
        replans = []
        for t, lab in zip(tasks, scenarios, strict=True):
            replans.append(_replan_task(t))
            if progress:
                progress(f"replanned {lab.scenario.name}")
    return [r.model_copy(update={"replanned": p}) for r, p in zip(out, replans, strict=True)]


# ------------------------------------------------------------------ risk


def quantiles(values: FloatArray) -> Quantiles:
    """P50, P95, P99, mean and CVaR95 of a sample of values."""
    v = np.asarray(values, dtype=np.float64)
    p50, p95, p99 = (float(q) for q in np.percentile(v, [50, 95, 99]))
    return Quantiles(p50=_r6(p50), p95=_r6(p95), p99=_r6(p99), mean=_r6(float(v.mean())),
                     cvar95=_r6(cvar(v)))


def _r6(v: float) -> float:
    return float(f"{v:.6g}")


def availability_models(fleet: Fleet, model: RiskModel) -> list[AvailabilityOut]:
    """The model each provider and region was sampled from, for the report."""
    out = []
    default = RiskModel()

    def row(scope: str, m: AvailabilityModel, base: AvailabilityModel) -> AvailabilityOut:
        return AvailabilityOut(scope=scope, outages_per_year=m.outages_per_year,
                               median_hours=m.median_hours, sigma=m.spread,
                               fraction=m.lost_fraction,
                               source="default (docs/stress-model.md)" if m == base
                               else "override")

    for provider in sorted({p.provider for p in fleet.pools}):
        out.append(row(f"provider:{provider}", model.provider_model(provider), default.provider))
    for provider, region in sorted({(p.provider, p.region) for p in fleet.pools}):
        out.append(row(f"region:{provider}/{region}", model.region_model(provider, region),
                       default.region))
    return out


def risk_section(fleet: Fleet, state: PlanState, options: StressOptions) -> Risk:
    """Monte Carlo of the plan as it is: distributions of shortfall, cost and lost work."""
    t0 = time.perf_counter()
    rr = monte_carlo(state, options.risk_model, options.samples, options.seed,
                     workers=options.workers)
    seconds = time.perf_counter() - t0
    ps = rr.per_sample
    short = rr.shortfall_total
    top = max(float(short.max(initial=0.0)), 1e-9)
    counts, edges = np.histogram(short, bins=40, range=(0.0, top))
    crit = {s.name: str(s.criticality) for s in fleet.inference}
    overall = rr.overall_stats()
    services = [ServiceRisk(service=st.name, criticality=crit.get(st.name, "standard"),
                            shortfall_share=quantiles(rr.shortfall[:, v]),
                            expected_unserved_tokens=_r6(st.expected_unserved_tokens),
                            worst_period_share_p5=_r6(st.worst_period_share_p5))
                for v, st in enumerate(rr.service_stats())]
    training = [TrainingRiskOut(workload=t.run, probability_missed=_r6(t.probability_missed),
                                expected_delay_hours=_r6(t.expected_delay_hours),
                                p95_delay_hours=_r6(t.p95_delay_hours),
                                expected_lost_chip_hours=_r6(t.expected_lost_chip_hours))
                for t in rr.training_risk()]
    return Risk(
        samples=rr.samples, seed=rr.seed, workers=options.workers, seconds=round(seconds, 3),
        shortfall_share=quantiles(short), unserved_tokens=quantiles(ps.unserved_tokens.sum(axis=1)),
        extra_cost_usd=quantiles(ps.extra_cost_usd),
        lost_chip_hours=quantiles(ps.training_lost_chip_hours.sum(axis=1)
                                  + ps.batch_unserved.sum(axis=1)),
        missed_deadlines_mean=_r6(float(ps.training_missed.sum(axis=1).mean())),
        worst_period_share_p5=_r6(overall.worst_period_share_p5), training=training,
        histogram_edges=[_r6(float(e)) for e in edges],
        histogram_counts=[int(c) for c in counts], services=services,
        model=availability_models(fleet, options.risk_model))


# ------------------------------------------------------------------ everything


def run_stress(fleet: Fleet, plan: Plan, scenarios: Sequence[Labelled], options: StressOptions,
               progress: Progress | None = None) -> StressReport:
    """Scenarios (immediate and re-planned), risk and hedge value, as one report."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    state = PlanState.from_plan(fleet, plan)
    results = run_scenarios(fleet, plan, scenarios, options, progress, state=state)
    seconds["scenarios"] = round(time.perf_counter() - t0, 3)
    risk = None
    if options.samples:
        t1 = time.perf_counter()
        risk = risk_section(fleet, state, options)
        seconds["risk"] = round(time.perf_counter() - t1, 3)
        if progress:
            progress("risk")
    hedge = None
    if options.hedge_value:
        t2 = time.perf_counter()
        vs = variants(fleet, plan, options.plan)
        if progress:
            progress("unhedged and single-provider plans")
        hedge = hedge_value(vs, [s.scenario for s in scenarios], samples=options.samples,
                            seed=options.seed, model=options.risk_model,
                            workers=options.workers)
        seconds["hedge_value"] = round(time.perf_counter() - t2, 3)
        if progress:
            progress("hedge value")
    seconds["total"] = round(time.perf_counter() - t0, 3)
    notes = list(fleet.notes)
    if any(s.replanned and s.replanned.status == "infeasible" for s in results):
        notes.append("some re-plans are infeasible under their scenario")
    return StressReport(fleet=fleet.name, plan_cost_usd=round(plan.cost.total_usd, 2),
                        plan_penalty_usd=round(plan.cost.penalty_usd, 2),
                        horizon_labels=list(fleet.horizon.labels), scenarios=results,
                        risk=risk, hedge_value=hedge, notes=notes, seconds=seconds)
