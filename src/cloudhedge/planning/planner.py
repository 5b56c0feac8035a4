"""``make_plan``: fleet in, :class:`~cloudhedge.core.plan.Plan` out.

Build the model (vectorised), solve it with HiGHS, decode, explain. The plan is
always returned; ``plan.status == "infeasible"`` means the hard policies cannot all
be met while serving the demand that capacity allows, and ``plan.conflicts`` says
which constraints conflict (the CLI then exits with code 3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cloudhedge.core.errors import Conflict
from cloudhedge.core.models import DomainKind, Fleet
from cloudhedge.core.plan import (
    Allocation,
    BindingConstraint,
    Concentration,
    ConflictOut,
    ContractUse,
    CostBreakdown,
    HedgeCost,
    HorizonOut,
    Plan,
    PoolOut,
    ShadowPrice,
    SolverStats,
    SurvivabilityCell,
    TrainingPlacement,
    UnitEconomics,
)
from cloudhedge.planning import decompose, explain
from cloudhedge.planning.build import Model, ModelBuilder
from cloudhedge.planning.decode import (
    EPS,
    Decoded,
    breakdowns,
    decode,
    kept_share,
    shares,
    tokens_served,
)
from cloudhedge.planning.index import (
    SECONDS_PER_HOUR,
    FleetIndex,
    FloatArray,
    PolicySwitches,
    build_index,
)
from cloudhedge.planning.reasons import reasons, unmet_rows
from cloudhedge.planning.solve import SolveOptions, fixed_lp
from cloudhedge.planning.warmstart import solve_warm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanOptions:
    solve: SolveOptions = field(default_factory=SolveOptions)
    explain: bool = True  # hedge costs (one re-solve per policy)
    conflicts: bool = True  # with unmet demand, the elastic analysis of what conflicts
    duals: bool = True  # shadow prices and dual-based binding constraints (one more LP)
    hedge_time_limit_s: float | None = None  # per re-solve; default: solve's limit
    switches: PolicySwitches = field(default_factory=PolicySwitches)
    decompose: bool | None = None  # period decomposition; None: for large models only


Prepare = Callable[[FleetIndex, Model], None]


def make_plan(fleet: Fleet, options: PlanOptions | None = None, *,
              price_factor: FloatArray | None = None, prepare: Prepare | None = None) -> Plan:
    """Plan ``fleet``. ``price_factor`` (P, T) scales market prices per pool-period;
    ``prepare`` may tighten the model's column bounds before the solve (re-planning
    fixes the past with it)."""
    options = options or PlanOptions()
    t_build = time.perf_counter()
    ix = build_index(fleet, options.switches, price_factor=price_factor)
    model = ModelBuilder(ix).build()
    if prepare is not None:
        prepare(ix, model)
    build_seconds = time.perf_counter() - t_build
    log.info("model: %d columns, %d rows, %d nonzeros, built in %.2fs",
             model.A.shape[1], model.A.shape[0], model.A.nnz, build_seconds)
    t_solve = time.perf_counter()
    if decompose.use_decomposition(model, options.decompose):
        # the bound is Lagrangian (at most the LP relaxation's): reported as the MIP bound
        _, sol = decompose.solve_decomposed(ix, model, options.solve)
        lp_bound = None
    else:
        lp, sol = solve_warm(ix, model, options.solve)
        lp_bound = lp.objective if lp.has_solution else None
    solve_seconds = time.perf_counter() - t_solve
    stats = SolverStats(
        solver="HiGHS", status=sol.status, variables=model.A.shape[1],
        integer_variables=int(model.integer.sum()), constraints=model.A.shape[0],
        nonzeros=int(model.A.nnz), build_seconds=round(build_seconds, 4),
        solve_seconds=round(solve_seconds, 4),
        objective_usd=sol.objective,
        lp_relaxation_bound_usd=lp_bound,
        mip_bound_usd=sol.mip_bound, gap=sol.gap, time_limit_s=options.solve.time_limit_s,
        gap_limit=options.solve.gap, threads=options.solve.threads,
    )
    if not sol.has_solution:
        found = explain.conflicts(fleet, options.switches, options.solve, None) \
            if options.conflicts else []
        return _empty_plan(ix, stats, found)
    d = decode(ix, model, sol.x)
    found = []
    if d.penalty > 1.0 and options.conflicts:
        found = explain.conflicts(fleet, options.switches, options.solve, d.penalty)
    fixed = fixed_lp(model, sol.x, options.solve) if options.duals else None
    dual = fixed.row_dual if fixed is not None and fixed.has_solution else None
    hedges: list[HedgeCost] = []
    if options.explain and sol.objective is not None:
        hopts = SolveOptions(time_limit_s=options.hedge_time_limit_s
                             or options.solve.time_limit_s, gap=min(options.solve.gap, 0.001),
                             threads=options.solve.threads)
        hedges = explain.hedge_costs(fleet, sol.objective, hopts, sol.mip_bound,
                                     options.decompose)
    prices: list[ShadowPrice] = explain.shadow_prices(ix, model, fixed, d.use) \
        if fixed is not None and fixed.has_solution else []
    bind: list[BindingConstraint] = explain.binding(ix, model, sol.x, dual)
    status = "infeasible" if found else sol.status
    return assemble(ix, model, d, stats.model_copy(update={"status": status}), status,
                    hedges, prices, bind, found)


def _horizon(ix: FleetIndex) -> HorizonOut:
    h = ix.fleet.horizon
    return HorizonOut(start=h.start.isoformat(), periods=h.periods, period=h.period,
                      period_hours=h.period_hours, labels=list(h.labels))


def _empty_plan(ix: FleetIndex, stats: SolverStats, found: list[Conflict]) -> Plan:
    T = ix.T
    zero = [0.0] * T
    return Plan(
        name=ix.fleet.name, status="infeasible", horizon=_horizon(ix),
        pools=[_pool_out(ix, p, np.zeros(T)) for p in range(len(ix.pools))],
        allocations=[], training=[],
        cost=CostBreakdown(total_usd=0.0, committed_fixed_usd=0.0, usage_usd=0.0,
                           penalty_usd=0.0, by_provider={}, by_vendor={}, by_tier={},
                           by_workload={}, by_period=zero, by_period_provider={}),
        contracts=[], concentration=[], survivability=[], unmet=[], unit_economics=[],
        hedge_costs=[], shadow_prices=[], binding_constraints=[], reasons=[],
        conflicts=[_conflict_out(c) for c in found], notes=list(ix.fleet.notes),
        solver=stats.model_copy(update={"status": "infeasible"}),
    )


def _conflict_out(c: Conflict) -> ConflictOut:
    return ConflictOut(constraint=c.constraint, text=c.text, violation=c.violation, unit=c.unit)


def _pool_out(ix: FleetIndex, p: int, used: np.ndarray) -> PoolOut:
    pool = ix.pools[p]
    return PoolOut(name=pool.name, provider=pool.provider, region=pool.region,
                   jurisdiction=pool.jurisdiction, accelerator=pool.accelerator,
                   vendor=pool.vendor, tier=str(pool.tier),
                   price_usd_per_chip_hour=pool.price_usd_per_chip_hour,
                   price_source=pool.price_source, capacity_chips=list(pool.capacity_chips),
                   used_chips=[round(float(v), 6) for v in used])


def _r(v: float) -> float:
    return round(float(v), 4)


def assemble(ix: FleetIndex, model: Model, d: Decoded, stats: SolverStats, status: str,
             hedges: list[HedgeCost], prices: list[ShadowPrice],
             bind: list[BindingConstraint], found: list[Conflict]) -> Plan:
    fleet, T = ix.fleet, ix.T
    b = breakdowns(ix, d)
    by_period = [b["period"][str(t)] for t in range(T)]
    fixed = float(model.fixed_per_period.sum())
    committed_decided = float(d.contract_cost.sum()) - fixed
    cost = CostBreakdown(
        total_usd=d.real_cost, committed_fixed_usd=fixed + max(committed_decided, 0.0),
        usage_usd=d.real_cost - fixed - max(committed_decided, 0.0), penalty_usd=d.penalty,
        by_provider=b["provider"], by_vendor=b["vendor"], by_tier=b["tier"],
        by_workload=b["workload"], by_period=by_period,
        by_period_provider=b["period_provider"],
    )
    return Plan(
        name=fleet.name, status=status,
        horizon=_horizon(ix),
        pools=[_pool_out(ix, p, d.use[p]) for p in range(len(ix.pools))],
        allocations=_allocations(ix, d), training=_training(ix, d), cost=cost,
        contracts=_contracts(ix, d), concentration=_concentration(ix, d),
        survivability=_survivability(ix, d), unmet=unmet_rows(ix, model, d),
        unit_economics=_unit_economics(ix, d, b["workload"]), hedge_costs=hedges,
        shadow_prices=prices, binding_constraints=bind, reasons=reasons(ix, model, d),
        conflicts=[_conflict_out(c) for c in found], notes=list(fleet.notes), solver=stats,
    )


def _allocations(ix: FleetIndex, d: Decoded) -> list[Allocation]:
    T = ix.T
    out: list[Allocation] = []
    wc = d.wc.tocoo()
    # inference allocations are split per jurisdiction; other kinds per workload
    jur_of: dict[tuple[str, int, int], list[tuple[str | None, float]]] = {}
    xs = d.served / np.maximum(ix.inf_tput[:, None], EPS)
    for i in np.flatnonzero(xs.max(axis=1, initial=0.0) > EPS) if xs.size else []:
        unit = ix.units[ix.inf_unit[i]]
        p = int(ix.inf_pool[i])
        for t_ in np.flatnonzero(xs[i] > EPS):
            jur_of.setdefault((unit.service.name, p, int(t_)), []).append(
                (unit.jurisdiction, float(xs[i, t_])))
    for row, w, chips in zip(wc.row, wc.col, wc.data, strict=True):
        if chips <= EPS:
            continue
        p, t = divmod(int(row), T)
        name, kind = d.workloads[w], d.workload_kind[w]
        rate = float(d.rate[row])
        whole: list[tuple[str | None, float]] = [(None, float(chips))]
        parts = jur_of.get((name, p, t), whole) if kind == "inference" else whole
        for jur, c in parts:
            out.append(Allocation(period=t, pool=ix.pools[p].name, workload=name,
                                  kind=kind,
                                  jurisdiction=jur, chips=_r(c), cost_usd=_r(c * rate)))
    out.sort(key=lambda a: (a.period, a.pool, a.workload, a.jurisdiction or ""))
    return out


def _training(ix: FleetIndex, d: Decoded) -> list[TrainingPlacement]:
    out = []
    led = d.wc.tocsc()
    for r, run in enumerate(ix.fleet.training):
        o = int(d.train_choice[r])
        if o < 0:
            out.append(TrainingPlacement(workload=run.name, scheduled=False,
                                         gang_chips=run.gang_chips, chip_hours=0.0,
                                         cost_usd=0.0, reason="not scheduled"))
            continue
        p = int(ix.train_pool[o])
        start, dur = int(ix.train_start[o]), int(ix.train_duration[o])
        col = led[:, r].toarray().ravel()
        cost = float((col * d.rate).sum())
        pool = ix.pools[p]
        out.append(TrainingPlacement(
            workload=run.name, scheduled=True, pool=pool.name, accelerator=pool.accelerator,
            start_period=start, end_period=start + dur - 1, duration_periods=dur,
            gang_chips=run.gang_chips, chip_hours=_r(ix.train_chip_hours[o]), cost_usd=_r(cost),
            reason=f"{pool.provider}/{pool.region} {pool.accelerator} ({pool.tier})"))
    return out


def _contracts(ix: FleetIndex, d: Decoded) -> list[ContractUse]:
    out = []
    for k, c in enumerate(ix.fleet.contracts):
        committed, used = d.contract_committed[k], d.contract_used[k]
        unit = "USD" if c.committed_spend_usd else "chips"
        util = [None if cm <= EPS else _r(min(u / cm, 1.0)) for cm, u in
                zip(committed, used, strict=True)]
        wasted = d.contract_cost[k] * np.clip(1 - used / np.maximum(committed, EPS), 0, 1)
        wasted = np.where(committed > EPS, wasted, 0.0) if c.take_or_pay else np.zeros(ix.T)
        level = float(committed.max()) if c.decide else None
        disc = None
        if c.decide and level:
            for tier in c.tiers:
                if level + 1e-6 >= tier.min_chips:
                    disc = tier.discount
        out.append(ContractUse(
            name=c.name, provider=c.provider, pools=list(c.pools),
            unit=unit, committed_chips=[_r(v) for v in committed],
            used_chips=[_r(v) for v in d.contract_use_total[k]],
            utilisation=util, fixed_cost_usd=_r(d.contract_cost[k].sum()),
            overage_cost_usd=_r(d.contract_overage[k].sum()),
            wasted_usd=[_r(v) for v in wasted], wasted_usd_total=_r(wasted.sum()),
            decided=c.decide, decided_commitment_chips=level, decided_discount=disc))
    return out


def _concentration(ix: FleetIndex, d: Decoded) -> list[Concentration]:
    out = []
    caps = ix.fleet.policies.caps
    for kind in DomainKind:
        for name, share in shares(ix, d.use, kind).items():
            limits = [c.max_share for c in caps if c.kind is kind and c.name in ("*", name)]
            out.append(Concentration(kind=str(kind), name=name,
                                     share_by_period=[_r(v) for v in share],
                                     max_share=_r(share.max(initial=0.0)),
                                     cap=min(limits) if limits else None))
    return out


def _survivability(ix: FleetIndex, d: Decoded) -> list[SurvivabilityCell]:
    out = []
    for k, rule in enumerate(ix.fleet.policies.survivability):
        for s, unit in enumerate(ix.units):
            alpha = ix.alpha(unit, k)
            if alpha <= 0:
                continue
            for dom, kept in kept_share(ix, d, s, rule.kind).items():
                served = (ix.demand[s] - d.unmet_tokens[s]) > EPS
                worst = float(kept[served].min()) if served.any() else 1.0
                out.append(SurvivabilityCell(
                    kind=str(rule.kind), domain=dom, service=unit.service.name,
                    jurisdiction=unit.jurisdiction, alpha=alpha, kept_share_min=_r(worst),
                    kept_share_by_period=[_r(v) for v in kept],
                    ok=worst + 1e-6 >= alpha))
    return out


def _unit_economics(ix: FleetIndex, d: Decoded, by_w: dict[str, float]) -> list[UnitEconomics]:
    served = tokens_served(ix, d)
    out = []
    for svc in ix.fleet.inference:
        tok = served.get(svc.name, 0.0)
        cost = by_w.get(svc.name, 0.0)
        out.append(UnitEconomics(workload=svc.name, tokens_served=tok, cost_usd=_r(cost),
                                 usd_per_million_tokens=_r(cost / tok * 1e6) if tok > 0
                                 else None))
    return out


__all__ = [
    "SECONDS_PER_HOUR",
    "PlanOptions",
    "assemble",
    "make_plan",
]
