"""Baselines the hedged plan is measured against.

- :func:`per_workload_cheapest`: what a per-job broker does. Each workload in turn
  (training, then batch, then inference) buys the cheapest compatible capacity left
  on the market (on-demand and spot pools; spot only where the workload allows it),
  within the per-request filters a broker has (exclusivity, residency), blind to
  caps, survivability and contracts. The allocation is written as a solution vector
  in the planner's own column space and decoded by the planner's code, so its cost
  counts take-or-pay commitments (paid, and wasted, since the broker never uses
  committed pools; a commitment level the planner would decide is left at zero) and
  its concentration and survivability cells are measured against the fleet's real
  policies.
- :func:`single_provider` / :func:`best_single_provider`: the planner restricted to
  one provider's pools and contracts (the counterfactual of never signing with the
  others), caps and survivability removed since one provider cannot meet them.
- :func:`violations`: cap breaches, failing survivability cells and unmet demand of
  any plan against a fleet's policies, for comparison tables.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypedDict

import numpy as np

from cloudhedge.core.errors import PlanningError
from cloudhedge.core.models import DomainKind, Fleet, Tier
from cloudhedge.core.plan import Plan, SolverStats, Unmet
from cloudhedge.planning.build import Model, ModelBuilder
from cloudhedge.planning.decode import decode
from cloudhedge.planning.explain import binding
from cloudhedge.planning.index import SECONDS_PER_HOUR, FleetIndex, FloatArray, PolicySwitches
from cloudhedge.planning.index import build_index as _build_index
from cloudhedge.planning.planner import PlanOptions, assemble, make_plan

BROKER = "baseline:per-workload-cheapest"
BROKER_SWITCHES = PolicySwitches(caps=(), survivability=(), exclusivity=True, residency=True,
                                 budget=False)
"""A broker filters each request by exclusivity and residency, and knows nothing else."""

CAP_TOLERANCE = 1e-4
FEASIBILITY_TOLERANCE = 1e-6


# ------------------------------------------------------------------- broker
class _Broker:
    """Greedy per-workload allocation written into the planner's column space."""

    def __init__(self, ix: FleetIndex, model: Model) -> None:
        self.ix, self.model = ix, model
        self.T, self.H = ix.T, ix.hours
        self.x = np.zeros(model.A.shape[1])
        self.free = ix.capacity.copy()
        self.market = np.array([p.tier is not Tier.COMMITTED for p in ix.pools], dtype=bool)
        self.speed = np.array([ix.fleet.relative_speed.get(p.accelerator, 0.0)
                               for p in ix.pools])

    def run(self) -> FloatArray:
        self._training()
        self._batch()
        self._inference()
        self._contracts()
        use = self.model.cols["use"]
        self.x[use.start:use.stop] = self.model.U @ self.x
        return self.x

    def _training(self) -> None:
        ix, x = self.ix, self.x
        y0, z0 = self.model.cols["y"].start, self.model.cols["z"].start
        cost = ix.train_chip_hours * ix.price[ix.train_pool] if ix.train_run.size else \
            np.zeros(0)
        market = self.market[ix.train_pool] if ix.train_run.size else np.zeros(0, dtype=bool)
        for r, run in enumerate(ix.fleet.training):
            opts = np.flatnonzero((ix.train_run == r) & market)
            opts = opts[np.lexsort((ix.train_start[opts], cost[opts]))]
            for o in opts:
                p, s, dur = int(ix.train_pool[o]), int(ix.train_start[o]), int(
                    ix.train_duration[o])
                occ = np.full(dur, float(run.gang_chips))
                occ[-1] *= ix.train_last_fraction[o]
                if (self.free[p, s:s + dur] >= occ - 1e-9).all():
                    self.free[p, s:s + dur] -= occ
                    x[y0 + o] = 1.0
                    break
            else:
                x[z0 + r] = 1.0

    def _batch(self) -> None:
        ix, x, H = self.ix, self.x, self.H
        blk, ub = self.model.cols["b"], self.model.cols["ub"]
        jobs = ix.fleet.batch
        span = np.array([j.window_end - j.window_start + 1 for j in jobs], dtype=np.int64)
        pair = np.repeat(np.arange(ix.batch_pool.size), span[ix.batch_job]) if jobs else \
            np.zeros(0, dtype=np.int64)
        pool, t = ix.batch_pool[pair], blk.period
        job = ix.batch_job[pair]
        rate = self.speed[pool] * ix.efficiency[pool]  # reference chip-hours per chip-hour
        ok = self.market[pool] & (rate > 0)
        price = np.divide(ix.price[pool], rate, out=np.full(pool.size, np.inf), where=rate > 0)
        for j, b in enumerate(jobs):
            cols = np.flatnonzero((job == j) & ok)
            cols = cols[np.lexsort((t[cols], price[cols]))]
            need = b.chip_hours
            for c in cols:
                if need <= 1e-9:
                    break
                p, tt = int(pool[c]), int(t[c])
                hours = min(self.free[p, tt] * H, need / rate[c])
                if hours <= 0:
                    continue
                x[blk.start + c] = hours
                self.free[p, tt] -= hours / H
                need -= hours * rate[c]
            x[ub.start + j] = max(need, 0.0)

    def _inference(self) -> None:
        ix, x, T = self.ix, self.x, self.T
        x0, u0 = self.model.cols["x"].start, self.model.cols["u"].start
        ppt = ix.price[ix.inf_pool] / np.maximum(ix.inf_tput, 1e-12)  # USD per token rate
        for s in range(len(ix.units)):
            pairs = np.flatnonzero((ix.inf_unit == s) & self.market[ix.inf_pool])
            pairs = pairs[np.argsort(ppt[pairs], kind="stable")]
            pools, tput = ix.inf_pool[pairs], ix.inf_tput[pairs]
            # fill in price order: each pool serves what is left, up to its free chips
            room = np.maximum(self.free[pools], 0.0) * tput[:, None]  # (pairs, T) tokens/s
            before = np.cumsum(room, axis=0) - room
            served = np.clip(ix.demand[s][None, :] - before, 0.0, room)
            chips = served / tput[:, None]
            self.free[pools] -= chips
            cols = x0 + pairs[:, None] * T + np.arange(T)[None, :]
            x[cols] = chips
            x[u0 + s * T + np.arange(T)] = np.clip(ix.demand[s] - served.sum(axis=0), 0.0,
                                                  ix.demand[s])

    def _contracts(self) -> None:
        """Covered chips up to the commitment, the rest beyond it (decided: none)."""
        ix, T, H, x = self.ix, self.T, self.H, self.x
        cov0, over0 = self.model.cols["cov"].start, self.model.cols["over"].start
        use = (self.model.U @ x).reshape(len(ix.pools), T)
        covered = np.flatnonzero(ix.contract_of_pool >= 0)
        for k, c in enumerate(ix.fleet.contracts):
            active = np.array([c.active(t) for t in range(T)])
            if c.decide:
                left = np.zeros(T)
            elif c.committed_spend_usd:
                left = np.where(active, np.array(c.committed_spend_usd, dtype=float), 0.0)
            else:
                left = np.where(active, np.array(c.committed_chips, dtype=float), 0.0)
            for i in np.flatnonzero(ix.contract_of_pool[covered] == k):
                p = int(covered[i])
                unit = ix.price[p] * H if c.committed_spend_usd and not c.decide else 1.0
                cov = np.minimum(use[p], np.maximum(left, 0.0) / unit)
                left = left - cov * unit
                x[cov0 + i * T + np.arange(T)] = cov
                x[over0 + i * T + np.arange(T)] = use[p] - cov


def _check_feasible(model: Model, x: FloatArray) -> None:
    """The broker's vector must satisfy every row and bound of its own model."""
    tol = FEASIBILITY_TOLERANCE
    act = model.A @ x
    bad = (act < model.row_lo - tol * np.maximum(1.0, np.abs(model.row_lo))) | \
          (act > model.row_hi + tol * np.maximum(1.0, np.abs(model.row_hi)))
    names = [n for n, b in model.rows.items() if bad[b.start:b.stop].any()]
    col_bad = (x < model.col_lo - tol) | (x > model.col_hi + tol * np.maximum(1.0, np.abs(x)))
    names += [n for n, b in model.cols.items() if col_bad[b.start:b.stop].any()]
    if names:
        raise PlanningError(f"broker allocation breaks the model at: {', '.join(names)}")


def _broker_causes(plan: Plan) -> Plan:
    """Unmet demand under the broker: the market ran out (committed pools are not sold)."""
    texts = {
        "inference": "broker: the eligible on-demand/spot pools are full after earlier "
                     "workloads (committed capacity is not offered to a per-job broker)",
        "training": "broker: no on-demand pool has the whole gang free for the run inside "
                    "its window after earlier workloads",
        "batch": "broker: the eligible on-demand/spot pools are full in the window",
    }
    unmet = [u.model_copy(update={"cause": texts[u.kind] if u.amount > 0 and
                                  not u.cause.startswith("no ") else u.cause})
             for u in plan.unmet]
    return plan.model_copy(update={"unmet": unmet})


def per_workload_cheapest(fleet: Fleet) -> Plan:
    """The per-job broker's allocation, as a plan priced and checked like the planner's."""
    ix = _build_index(fleet, BROKER_SWITCHES)
    model = ModelBuilder(ix).build()
    x = _Broker(ix, model).run()
    _check_feasible(model, x)
    d = decode(ix, model, x)
    stats = SolverStats(
        solver=BROKER, status="feasible", variables=model.A.shape[1],
        integer_variables=int(model.integer.sum()), constraints=model.A.shape[0],
        nonzeros=int(model.A.nnz), build_seconds=0.0, solve_seconds=0.0,
        objective_usd=d.real_cost + d.penalty, lp_relaxation_bound_usd=None,
        mip_bound_usd=None, gap=None, time_limit_s=None, gap_limit=None, threads=None)
    plan = assemble(ix, model, d, stats, "feasible", [], [], binding(ix, model, x, None), [])
    return _broker_causes(plan.model_copy(update={"name": f"{fleet.name} [{BROKER}]"}))


# ---------------------------------------------------------- single provider
def providers(fleet: Fleet) -> list[str]:
    return sorted({p.provider for p in fleet.pools})


def single_provider_fleet(fleet: Fleet, provider: str) -> Fleet:
    """The fleet restricted to one provider's pools and contracts."""
    pools = tuple(p for p in fleet.pools if p.provider == provider)
    if not pools:
        raise ValueError(f"no pool of provider {provider!r} in fleet {fleet.name!r}")
    names = {p.name for p in pools}
    contracts = tuple(replace(c, pools=tuple(n for n in c.pools if n in names))
                      for c in fleet.contracts
                      if c.provider == provider and any(n in names for n in c.pools))
    return fleet.copy(name=f"{fleet.name} [single provider: {provider}]", pools=pools,
                      contracts=contracts)


def single_provider(fleet: Fleet, provider: str, options: PlanOptions | None = None) -> Plan:
    """The planner on one provider's pools and contracts; caps and survivability off.

    Exclusivity, residency and budget stay on. The plan's concentration and
    survivability cells are still measured against the fleet's caps and alphas, so
    they show what putting everything on one provider breaks.
    """
    sub = single_provider_fleet(fleet, provider)
    opts = options or PlanOptions()
    sw = opts.switches
    switches = PolicySwitches(caps=(), survivability=(), exclusivity=sw.exclusivity,
                              residency=sw.residency, budget=sw.budget)
    return make_plan(sub, replace(opts, switches=switches, explain=False))


def _objective(plan: Plan) -> float:
    v = plan.solver.objective_usd
    return float("inf") if v is None else v


def best_single_provider(fleet: Fleet, options: PlanOptions | None = None) -> tuple[str, Plan]:
    """The provider whose single-provider plan has the least objective (cost + penalty)."""
    plans = [(name, single_provider(fleet, name, options)) for name in providers(fleet)]
    if not plans:
        raise ValueError(f"fleet {fleet.name!r} has no pools")
    return min(plans, key=lambda item: _objective(item[1]))


# --------------------------------------------------------------- violations
class Unmet_(TypedDict):
    training_runs: int
    training_chip_hours: float
    batch_chip_hours: float
    inference_tokens: float


class Violations(TypedDict):
    cap_breaches: int  # concentration cells over their cap
    cap_breach_by_domain: dict[str, float]  # "kind:name" -> worst excess share
    survivability_failing: int
    survivability_cells: int
    min_kept_share: float | None
    unmet: Unmet_


def violations(fleet: Fleet, plan: Plan) -> Violations:
    """What a plan breaks against ``fleet``'s caps, and what it leaves unmet.

    Caps are read from ``fleet``; survivability cells come from the plan (every plan
    here is assembled against the fleet's survivability rules).
    """
    breaches: dict[str, float] = {}
    for cell in plan.concentration:
        limits = [c.max_share for c in fleet.policies.caps
                  if c.kind is DomainKind(cell.kind) and c.name in ("*", cell.name)]
        if limits and cell.max_share > min(limits) + CAP_TOLERANCE:
            breaches[f"{cell.kind}:{cell.name}"] = round(cell.max_share - min(limits), 4)
    failing = sum(not c.ok for c in plan.survivability)
    kept = min((c.kept_share_min for c in plan.survivability), default=None)
    return Violations(
        cap_breaches=len(breaches), cap_breach_by_domain=breaches,
        survivability_failing=failing, survivability_cells=len(plan.survivability),
        min_kept_share=kept, unmet=_unmet(plan.unmet, plan.horizon.period_hours))


def _unmet(rows: list[Unmet], hours: float) -> Unmet_:
    tr = [u for u in rows if u.kind == "training"]
    return Unmet_(
        training_runs=len(tr), training_chip_hours=sum((u.amount for u in tr), 0.0),
        batch_chip_hours=sum((u.amount for u in rows if u.kind == "batch"), 0.0),
        inference_tokens=sum((u.amount * SECONDS_PER_HOUR * hours for u in rows
                              if u.kind == "inference"), 0.0))


__all__ = ["BROKER", "BROKER_SWITCHES", "Violations", "best_single_provider",
           "per_workload_cheapest", "providers", "single_provider", "violations"]
