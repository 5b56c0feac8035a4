"""A plan.json read back into arrays over the fleet's pools (P) and periods (T).

:meth:`PlanState.from_plan` is the one place where a :class:`~cloudhedge.core.plan.Plan`
meets the :class:`~cloudhedge.core.models.Fleet` it is stressed against. Demand units
(service x jurisdiction) and eligibility come from
:func:`~cloudhedge.planning.index.build_index`, so every chip of the plan lands on an
index pair: an allocation that the fleet's policies forbid (exclusivity, residency,
spot, accelerator) is a mismatch, not something to stress. Any mismatch (horizon,
pools, workloads, contracts) raises :class:`~cloudhedge.core.errors.PlanningError`
naming every difference found.

Layouts: inference and batch are stored per eligibility pair (``inf_*``, ``batch_*``),
like the planner's index, with chips (or chip-hours) per pair and period; training
per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cloudhedge.core.errors import PlanningError
from cloudhedge.core.models import BatchJob, Criticality, Fleet, Pool, TrainingRun
from cloudhedge.core.plan import Plan
from cloudhedge.planning.index import DemandUnit, FleetIndex, build_index

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

CRITICALITY_RANK: dict[Criticality, int] = {
    Criticality.CRITICAL: 0, Criticality.HIGH: 1, Criticality.STANDARD: 2,
    Criticality.BEST_EFFORT: 3,
}
"""Order in which inference keeps surviving chips and takes failover capacity."""

MAX_LISTED = 12  # differences named in a mismatch message


@dataclass(frozen=True)
class PlanState:
    """A plan as arrays; the fixed input of :func:`cloudhedge.stress.impact.immediate`."""

    fleet: Fleet
    plan_name: str
    pools: tuple[Pool, ...]
    period_hours: float
    capacity_chips: FloatArray  # (P, T) the fleet's capacity, raised to the plan's use
    price_usd_per_chip_hour: FloatArray  # (P,) list price (contract price when committed)
    contract_of_pool: IntArray  # (P,) index into fleet.contracts, -1 when not covered
    used_chips: FloatArray  # (P, T) all chips the plan uses
    usage_cost_usd: FloatArray  # (P, T) the plan's usage cost per pool-period
    plan_cost_usd: FloatArray  # (T,) the plan's total cost per period (fixed + usage)
    contract_headroom: FloatArray  # (K, T) committed minus used (take-or-pay), >= 0
    contract_in_usd: BoolArray  # (K,) headroom in USD (spend commitment), else chips
    # inference: demand units and eligibility pairs (from the planner's index)
    units: tuple[DemandUnit, ...]
    unit_rank: IntArray  # (S,) CRITICALITY_RANK of the unit's service
    demand_tokens_per_s: FloatArray  # (S, T)
    inf_unit: IntArray  # (I,)
    inf_pool: IntArray  # (I,)
    inf_tput: FloatArray  # (I,) tokens/s per chip (spot efficiency included, as planned)
    inf_chips: FloatArray  # (I, T)
    # training: one row per fleet run
    runs: tuple[TrainingRun, ...]
    train_pool: IntArray  # (R,) -1 when the plan left the run unscheduled
    train_chips: FloatArray  # (R, T) gang chips occupied (a fraction in the last period)
    train_end_hours: FloatArray  # (R,) planned end, hours from the horizon start
    # batch: eligibility pairs (from the planner's index)
    jobs: tuple[BatchJob, ...]
    batch_job: IntArray  # (B,)
    batch_pool: IntArray  # (B,)
    batch_rate: FloatArray  # (B,) reference chip-hours done per chip-hour on the pool
    batch_chip_hours: FloatArray  # (B, T) chip-hours on the pool

    @property
    def periods(self) -> int:
        return int(self.capacity_chips.shape[1])

    @property
    def planned_tokens_per_s(self) -> FloatArray:
        """(S, T) tokens/s the plan serves per demand unit (never above demand)."""
        S, T = len(self.units), self.periods
        served = np.zeros((S, T))
        np.add.at(served, self.inf_unit, self.inf_chips * self.inf_tput[:, None])
        return np.minimum(served, self.demand_tokens_per_s)

    @staticmethod
    def from_plan(fleet: Fleet, plan: Plan) -> PlanState:
        """Read ``plan`` against ``fleet``; :class:`PlanningError` if they do not match."""
        return _Reader(fleet, plan).read()


class _Reader:
    """Matches a plan's rows to the fleet's index, collecting every mismatch."""

    def __init__(self, fleet: Fleet, plan: Plan) -> None:
        self.fleet, self.plan = fleet, plan
        self.ix: FleetIndex = build_index(fleet)
        self.T, self.H = fleet.horizon.periods, fleet.horizon.period_hours
        self.problems: list[str] = []
        self.pool_pos = {p.name: i for i, p in enumerate(fleet.pools)}

    def read(self) -> PlanState:
        self._check_horizon()
        self._check_pools()
        if self.problems:  # nothing below can be matched
            self._raise()
        ix, T, H = self.ix, self.T, self.H
        P = len(self.fleet.pools)
        inf_pair = {(int(s), int(p)): i for i, (s, p) in
                    enumerate(zip(ix.inf_unit, ix.inf_pool, strict=True))}
        batch_pair = {(int(j), int(p)): i for i, (j, p) in
                      enumerate(zip(ix.batch_job, ix.batch_pool, strict=True))}
        unit_pos = {(u.service.name, u.jurisdiction): s for s, u in enumerate(ix.units)}
        run_pos = {r.name: i for i, r in enumerate(self.fleet.training)}
        job_pos = {b.name: i for i, b in enumerate(self.fleet.batch)}
        svc_names = {s.name for s in self.fleet.inference}
        inf_chips = np.zeros((ix.inf_unit.size, T))
        batch_hours = np.zeros((ix.batch_job.size, T))
        train_chips = np.zeros((len(self.fleet.training), T))
        train_alloc_pool = np.full(len(self.fleet.training), -1, dtype=np.int64)
        used = np.zeros((P, T))
        usage = np.zeros((P, T))
        for a in self.plan.allocations:
            p = self.pool_pos.get(a.pool)
            where = f"allocation {a.workload} on {a.pool} in period {a.period}"
            if p is None or not 0 <= a.period < T:
                self.problems.append(f"{where}: unknown pool or period")
                continue
            t = a.period
            used[p, t] += a.chips
            usage[p, t] += a.cost_usd
            if a.kind == "inference":
                s = unit_pos.get((a.workload, a.jurisdiction or ""))
                if s is None:
                    what = "jurisdiction" if a.workload in svc_names else "inference service"
                    self.problems.append(f"{where}: unknown {what} "
                                         f"{a.workload}/{a.jurisdiction}")
                elif (i := inf_pair.get((s, p))) is None:
                    self.problems.append(f"{where}: the fleet does not allow "
                                         f"{a.workload}/{a.jurisdiction} on this pool")
                else:
                    inf_chips[i, t] += a.chips
            elif a.kind == "batch":
                j = job_pos.get(a.workload)
                if j is None:
                    self.problems.append(f"{where}: unknown batch job")
                elif (i := batch_pair.get((j, p))) is None:
                    self.problems.append(f"{where}: the fleet does not allow this job here")
                else:
                    batch_hours[i, t] += a.chips * H
            else:
                r = run_pos.get(a.workload)
                if r is None:
                    self.problems.append(f"{where}: unknown training run")
                else:
                    train_chips[r, t] += a.chips
                    train_alloc_pool[r] = p
        train_pool, end_hours = self._training(run_pos, train_chips, train_alloc_pool)
        headroom, in_usd = self._contracts()
        if self.problems:
            self._raise()
        speed = np.array([self.fleet.relative_speed.get(p.accelerator, 0.0)
                          for p in self.fleet.pools])
        units = tuple(ix.units)
        return PlanState(
            fleet=self.fleet, plan_name=self.plan.name, pools=self.fleet.pools,
            period_hours=H, capacity_chips=np.maximum(ix.capacity, used),
            price_usd_per_chip_hour=ix.price.copy(),
            contract_of_pool=ix.contract_of_pool.copy(), used_chips=used,
            usage_cost_usd=usage,
            plan_cost_usd=np.array(self.plan.cost.by_period, dtype=np.float64),
            contract_headroom=headroom, contract_in_usd=in_usd, units=units,
            unit_rank=np.array([CRITICALITY_RANK[u.service.criticality] for u in units],
                               dtype=np.int64),
            demand_tokens_per_s=ix.demand.copy(), inf_unit=ix.inf_unit.copy(),
            inf_pool=ix.inf_pool.copy(), inf_tput=ix.inf_tput.copy(), inf_chips=inf_chips,
            runs=self.fleet.training, train_pool=train_pool, train_chips=train_chips,
            train_end_hours=end_hours, jobs=self.fleet.batch,
            batch_job=ix.batch_job.copy(), batch_pool=ix.batch_pool.copy(),
            batch_rate=speed[ix.batch_pool] * ix.efficiency[ix.batch_pool],
            batch_chip_hours=batch_hours,
        )

    def _check_horizon(self) -> None:
        h, mine = self.plan.horizon, self.fleet.horizon
        if (h.periods, h.period_hours, h.start) != (mine.periods, mine.period_hours,
                                                     mine.start.isoformat()):
            self.problems.append(
                f"horizon: the plan has {h.periods} periods of {h.period_hours:g} h from "
                f"{h.start}, the fleet {mine.periods} periods of {mine.period_hours:g} h "
                f"from {mine.start.isoformat()}")
        if len(self.plan.cost.by_period) != mine.periods:
            self.problems.append(f"cost.by_period has {len(self.plan.cost.by_period)} "
                                 f"periods, the fleet {mine.periods}")

    def _check_pools(self) -> None:
        planned = {p.name for p in self.plan.pools}
        mine = set(self.pool_pos)
        if extra := sorted(planned - mine):
            self.problems.append(f"pools in the plan but not in the fleet: {_names(extra)}")
        if missing := sorted(mine - planned):
            self.problems.append(f"pools in the fleet but not in the plan: {_names(missing)}")

    def _training(self, run_pos: dict[str, int], chips: FloatArray,
                  alloc_pool: IntArray) -> tuple[IntArray, FloatArray]:
        R = len(self.fleet.training)
        pool = np.full(R, -1, dtype=np.int64)
        end = np.full(R, np.nan)
        for placement in self.plan.training:
            r = run_pos.get(placement.workload)
            if r is None:
                self.problems.append(f"training placement {placement.workload}: "
                                     "unknown training run")
                continue
            if not placement.scheduled:
                continue
            p = self.pool_pos.get(placement.pool or "")
            if p is None or placement.end_period is None:
                self.problems.append(f"training placement {placement.workload}: unknown "
                                     f"pool {placement.pool} or no end period")
                continue
            if alloc_pool[r] >= 0 and alloc_pool[r] != p:
                self.problems.append(f"training run {placement.workload}: placed on "
                                     f"{placement.pool} but allocated elsewhere")
            pool[r] = p
            gang = self.fleet.training[r].gang_chips
            last = float(chips[r, placement.end_period]) / gang if gang else 1.0
            end[r] = (placement.end_period + (last if last > 0 else 1.0)) * self.H
        return pool, end

    def _contracts(self) -> tuple[FloatArray, BoolArray]:
        contracts = self.fleet.contracts
        pos = {c.name: k for k, c in enumerate(contracts)}
        headroom = np.zeros((len(contracts), self.T))
        in_usd = np.array([bool(c.committed_spend_usd) for c in contracts], dtype=bool)
        for use in self.plan.contracts:
            k = pos.get(use.name)
            if k is None:
                self.problems.append(f"contract {use.name}: not in the fleet")
                continue
            if contracts[k].take_or_pay and len(use.committed_chips) == self.T:
                headroom[k] = np.maximum(np.array(use.committed_chips)
                                         - np.array(use.used_chips), 0.0)
        return headroom, in_usd

    def _raise(self) -> None:
        listed = self.problems[:MAX_LISTED]
        more = len(self.problems) - len(listed)
        lines = [f"plan '{self.plan.name}' does not match fleet '{self.fleet.name}':"]
        lines += [f"  - {p}" for p in listed]
        if more:
            lines.append(f"  ... and {more} more")
        raise PlanningError("\n".join(lines))


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" (+{len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")


__all__ = ["CRITICALITY_RANK", "PlanState"]
