"""Re-plan from a period on, with the past of an existing plan fixed.

``cloudhedge stress`` asks what the planner would do once an event is known: the
periods before the event are history (what the plan allocated then is spent), and
from the event on the planner re-solves with the scenario's capacity, prices and
demand. The same model is used, with bounds fixing the past:

* inference pairs and batch chip-hours of periods before ``start`` are fixed at the
  plan's allocations;
* a training run the plan started before ``start`` keeps its placement if the gang
  still fits under the scenario's capacity; if not, it resumes from its checkpoint:
  the work done before ``start`` is kept and the rest becomes a run that may be
  placed anywhere compatible from ``start`` to its deadline;
* a run not yet started cannot start before ``start``;
* commitments the plan decided are signed: they become fixed contracts at the
  chosen level and tier price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from cloudhedge.core.errors import PlanningError
from cloudhedge.core.models import (
    BatchJob,
    Contract,
    DomainKind,
    Fleet,
    InferenceService,
    Pool,
    TrainingRun,
)
from cloudhedge.core.plan import Plan
from cloudhedge.planning.build import Model
from cloudhedge.planning.index import FleetIndex, FloatArray
from cloudhedge.planning.planner import PlanOptions, make_plan


@dataclass(frozen=True)
class ScenarioInputs:
    """A scenario as the planner sees it: per pool-period capacity and price factors,
    per workload demand factors, and the first period it touches."""

    capacity_factor: FloatArray  # (P, T) share of capacity up (period average)
    price_factor: FloatArray  # (P, T)
    demand_factor: Mapping[str, FloatArray]  # workload -> (T,)
    start: int
    # kinds of failure domain the scenario takes out whole: the N-1 promise of that
    # kind has been drawn on, so the re-plan does not ask for it again (no N-2)
    spent: tuple[DomainKind, ...] = ()


def scenario_fleet(fleet: Fleet, plan: Plan, s: ScenarioInputs) -> tuple[Fleet, list[str]]:
    """The fleet the re-plan solves, and notes on what was carried over from the plan."""
    notes: list[str] = []
    pools = tuple(p.copy(capacity_chips=tuple(float(c) for c in
                                              np.asarray(p.capacity_chips) * s.capacity_factor[i]))
                  for i, p in enumerate(fleet.pools))
    inference = tuple(_surge_service(svc, s.demand_factor.get(svc.name)) for svc in fleet.inference)
    batch = tuple(_surge_hours(b, s.demand_factor.get(b.name)) for b in fleet.batch)
    training = tuple(_surge_hours(r, s.demand_factor.get(r.name)) for r in fleet.training)
    training = _resume_runs(plan, training, pools, s.start, notes)
    contracts = tuple(_signed(c, plan, notes) for c in fleet.contracts)
    return fleet.copy(pools=pools, inference=inference, batch=batch, training=training,
                      contracts=contracts), notes


def _surge_service(svc: InferenceService, f: FloatArray | None) -> InferenceService:
    if f is None:
        return svc
    demand = {j: tuple(float(v) for v in np.asarray(series) * f)
              for j, series in svc.demand_tokens_per_s.items()}
    return replace(svc, demand_tokens_per_s=demand)


def _window_mean(f: FloatArray, start: int, end: int) -> float:
    return float(np.asarray(f)[start:end + 1].mean())


_Hours = TypeVar("_Hours", BatchJob, TrainingRun)


def _surge_hours(w: _Hours, f: FloatArray | None) -> _Hours:
    """A batch job's or run's chip-hours times the surge's mean over its window."""
    if f is None:
        return w
    return replace(w, chip_hours=w.chip_hours * _window_mean(f, w.window_start, w.window_end))


def _resume_runs(plan: Plan, runs: tuple[TrainingRun, ...], pools: tuple[Pool, ...],
                 start: int, notes: list[str]) -> tuple[TrainingRun, ...]:
    """Runs the plan started before ``start`` whose gang no longer fits resume elsewhere."""
    placed = {t.workload: t for t in plan.training if t.scheduled}
    cap = {p.name: np.asarray(p.capacity_chips) for p in pools}
    out = []
    for run in runs:
        t = placed.get(run.name)
        if t is None or t.start_period is None or t.start_period >= start or t.pool is None \
                or t.end_period is None or t.duration_periods is None:
            out.append(run)
            continue
        if t.end_period < start or cap[t.pool][start:t.end_period + 1].min() >= run.gang_chips:
            out.append(run)  # finished before the event, or still fits: kept as planned
            continue
        done = (start - t.start_period) / t.duration_periods
        left = run.chip_hours * max(1.0 - done, 0.0)
        notes.append(f"training {run.name}: its pool {t.pool} no longer fits the gang from "
                     f"period {start}; {done:.0%} of the work is kept (last checkpoint), "
                     f"the rest is re-placed")
        out.append(replace(run, chip_hours=left, window_start=start))
    return tuple(out)


def _signed(c: Contract, plan: Plan, notes: list[str]) -> Contract:
    """A decided commitment becomes a fixed one at the plan's level and tier price."""
    if not c.decide:
        return c
    use = next((u for u in plan.contracts if u.name == c.name), None)
    if use is None:
        raise PlanningError(f"the plan has no contract named {c.name!r}")
    level = use.decided_commitment_chips or 0.0
    disc = use.decided_discount or 0.0
    notes.append(f"contract {c.name}: signed at {level:g} chips, {disc:.0%} off")
    committed = tuple(level if c.active(t) else 0.0 for t in range(len(use.committed_chips)))
    return replace(c, decide=False, tiers=(), max_chips=0.0, committed_chips=committed,
                   price_usd_per_chip_hour=c.price_usd_per_chip_hour * (1 - disc))


def fix_past(ix: FleetIndex, model: Model, plan: Plan, start: int) -> None:
    """Fix, in ``model``'s bounds, what the plan did before ``start`` (see module doc)."""
    T = ix.T
    lo, hi = model.col_lo, model.col_hi
    if start <= 0:
        _no_early_starts(ix, model, plan, start)
        return
    pool_pos = {p.name: i for i, p in enumerate(ix.pools)}
    pair_of = {(int(s), int(p)): i for i, (s, p) in enumerate(zip(ix.inf_unit, ix.inf_pool,
                                                                   strict=True))}
    unit_of = {(u.service.name, u.jurisdiction): s for s, u in enumerate(ix.units)}
    job_of = {b.name: j for j, b in enumerate(ix.fleet.batch)}
    bpair_of = {(int(j), int(p)): i for i, (j, p) in enumerate(zip(ix.batch_job, ix.batch_pool,
                                                                   strict=True))}
    # columns of b: per batch pair, its window's periods, pairs in order
    ws = np.array([b.window_start for b in ix.fleet.batch], dtype=np.int64)
    we = np.array([b.window_end for b in ix.fleet.batch], dtype=np.int64)
    span = (we - ws + 1)[ix.batch_job] if ix.batch_job.size else np.zeros(0, dtype=np.int64)
    bfirst = np.r_[0, np.cumsum(span)[:-1]].astype(np.int64)
    xb, bb = model.cols["x"], model.cols["b"]
    # past periods start at zero; the plan's allocations are written on top
    past_x = xb.start + np.flatnonzero(np.tile(np.arange(T), xb.size // T if T else 0) < start)
    lo[past_x] = hi[past_x] = 0.0
    if bb.size:
        past_b = bb.start + np.flatnonzero(bb.period < start)
        lo[past_b] = hi[past_b] = 0.0
    for a in plan.allocations:
        if a.period >= start or a.kind == "training":
            continue
        p = pool_pos.get(a.pool)
        if p is None:
            raise PlanningError(f"the plan allocates pool {a.pool!r}, which the fleet lacks")
        if a.kind == "inference":
            s = unit_of.get((a.workload, a.jurisdiction or ""))
            i = None if s is None else pair_of.get((s, p))
            if i is None:
                raise PlanningError(f"the plan serves {a.workload}/{a.jurisdiction} from "
                                    f"{a.pool}, which the fleet does not allow")
            col = xb.start + i * T + a.period
        else:
            j = job_of.get(a.workload)
            i = None if j is None else bpair_of.get((j, p))
            if i is None or j is None:
                raise PlanningError(f"the plan runs batch {a.workload} on {a.pool}, which "
                                    f"the fleet does not allow")
            col = bb.start + int(bfirst[i]) + a.period - int(ws[j])
            _pin(lo, hi, col, a.chips * ix.hours, ix.hours)  # batch columns: chip-hours
            continue
        _pin(lo, hi, col, a.chips)
    _no_early_starts(ix, model, plan, start)
    # policies are promises about the future: the past's caps and survivability rows
    # are history (and plan.json's rounding can nudge them by a hair)
    for name, blk in model.rows.items():
        if name == "survivability" or name.startswith("cap:"):
            past = blk.start + np.flatnonzero(blk.period < start)
            model.row_lo[past] = -np.inf
            model.row_hi[past] = np.inf


PIN_SLACK = 1e-3
"""plan.json rounds chips to 4 decimals: a past value may sit a hair above the true one
(several of them above a full pool's capacity) or below it (a sliver of demand unmet);
a pin allows this much either way."""


def _pin(lo: FloatArray, hi: FloatArray, col: int, value: float, unit: float = 1.0) -> None:
    """Pin a column at ``value`` (chips x ``unit``) give or take the rounding slack."""
    hi[col] = value + PIN_SLACK * unit
    lo[col] = max(value - PIN_SLACK * unit, 0.0)


def _no_early_starts(ix: FleetIndex, model: Model, plan: Plan, start: int) -> None:
    """Runs started before ``start`` keep their option; others may not start before it."""
    yb = model.cols["y"]
    lo, hi = model.col_lo, model.col_hi
    pool_pos = {p.name: i for i, p in enumerate(ix.pools)}
    run_of = {r.name: k for k, r in enumerate(ix.fleet.training)}
    kept: set[int] = set()
    for t in plan.training:
        if not t.scheduled or t.start_period is None or t.start_period >= start:
            continue
        r, p = run_of.get(t.workload), pool_pos.get(t.pool or "")
        if r is None or p is None:
            continue
        hit = np.flatnonzero((ix.train_run == r) & (ix.train_pool == p)
                             & (ix.train_start == t.start_period))
        if hit.size:
            kept.add(r)
            lo[yb.start + hit[0]] = hi[yb.start + hit[0]] = 1.0
    early = np.flatnonzero((ix.train_start < start) & ~np.isin(ix.train_run, list(kept)))
    hi[yb.start + early] = 0.0


def replan(fleet: Fleet, plan: Plan, inputs: ScenarioInputs,
           options: PlanOptions | None = None) -> tuple[Plan, list[str]]:
    """Re-solve ``fleet`` under a scenario from ``inputs.start`` on, the past fixed.

    Returns the re-plan (no hedge costs, conflict analysis or shadow prices: those
    answer other questions) and the notes on what was carried over from ``plan``.
    """
    if plan.horizon.periods != fleet.horizon.periods:
        raise PlanningError(f"the plan has {plan.horizon.periods} periods, the fleet "
                            f"{fleet.horizon.periods}: they do not belong together")
    scenario, notes = scenario_fleet(fleet, plan, inputs)
    opts = replace(options or PlanOptions(), explain=False, conflicts=False, duals=False)
    rules = fleet.policies.survivability
    keep = tuple(i for i, r in enumerate(rules) if r.kind not in inputs.spent
                 and opts.switches.keeps_survivability(i))
    if len(keep) < len(rules):
        gone = sorted({str(r.kind) for r in rules if r.kind in inputs.spent})
        notes.append(f"survivability per {', '.join(gone)} is not asked of the re-plan: the "
                     f"scenario takes such a domain out, which is what it promised against")
        opts = replace(opts, switches=replace(opts.switches, survivability=keep))

    def prepare(ix: FleetIndex, model: Model) -> None:
        fix_past(ix, model, plan, inputs.start)

    out = make_plan(scenario, opts, price_factor=inputs.price_factor, prepare=prepare)
    blocked = [u for u in out.unmet if u.cause.startswith("policy")]
    if out.status == "infeasible" or blocked:
        # the policies leave demand unmet (or cannot hold at all) under this scenario:
        # an operator serves first; the re-plan keeps exclusivity and residency (law
        # and contracts) and lets caps and survivability bend, and says so
        loose = replace(opts, switches=replace(opts.switches, caps=(), survivability=()))
        bent = make_plan(scenario, loose, price_factor=inputs.price_factor, prepare=prepare)
        if bent.status != "infeasible":
            what = "cannot all hold" if out.status == "infeasible" else \
                f"would leave {len(blocked)} demand-periods unmet"
            notes.append(f"caps and survivability {what} under this scenario; re-planned "
                         f"without them (exclusivity and residency kept)")
            out = bent
    return out, notes
