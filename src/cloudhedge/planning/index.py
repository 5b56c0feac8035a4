"""Numeric view of a :class:`~cloudhedge.core.models.Fleet` for the model builder.

Turns pools, workloads and policies into numpy arrays and eligibility pairs once,
so that :mod:`cloudhedge.planning.build` can assemble the model with array
arithmetic. Exclusivity and residency are enforced here, structurally: a pair
(workload, pool) that a policy forbids simply has no variable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cloudhedge.core.models import (
    Criticality,
    DomainKind,
    Fleet,
    InferenceService,
    Pool,
    Tier,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

LOST_HOURS_PER_PREEMPTION = 0.5
"""Work lost per spot preemption (half a checkpoint interval plus restart), in hours."""

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class PolicySwitches:
    """Which policies the model enforces; hedge costs re-solve with one switched off."""

    caps: tuple[int, ...] | None = None  # indices of fleet.policies.caps kept; None = all
    survivability: tuple[int, ...] | None = None
    exclusivity: bool = True
    residency: bool = True
    budget: bool = True

    def keeps_cap(self, i: int) -> bool:
        return self.caps is None or i in self.caps

    def keeps_survivability(self, i: int) -> bool:
        return self.survivability is None or i in self.survivability


NO_POLICIES = PolicySwitches(caps=(), survivability=(), exclusivity=False, residency=False,
                             budget=False)


@dataclass(frozen=True)
class DemandUnit:
    """One inference service in one jurisdiction: the unit of demand and survivability."""

    service: InferenceService
    jurisdiction: str

    @property
    def label(self) -> str:
        return f"{self.service.name}/{self.jurisdiction}"


@dataclass
class FleetIndex:
    """Arrays over pools (P) and periods (T) plus eligibility pairs."""

    fleet: Fleet
    switches: PolicySwitches
    T: int = 0
    hours: float = 0.0
    pools: tuple[Pool, ...] = ()
    price: FloatArray = field(default_factory=lambda: np.zeros(0))  # list USD per chip-hour
    price_factor: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # (P, T)
    capacity: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # (P, T)
    efficiency: FloatArray = field(default_factory=lambda: np.zeros(0))  # spot work kept
    contract_of_pool: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    domain_names: dict[DomainKind, list[str]] = field(default_factory=dict)
    domain_of_pool: dict[DomainKind, IntArray] = field(default_factory=dict)
    units: list[DemandUnit] = field(default_factory=list)
    demand: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # (S, T) tokens/s
    # inference pairs
    inf_unit: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    inf_pool: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    inf_tput: FloatArray = field(default_factory=lambda: np.zeros(0))
    # batch pairs
    batch_job: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    batch_pool: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # training options: (run, pool, start, duration, last-period fraction)
    train_run: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    train_pool: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    train_start: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    train_duration: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    train_last_fraction: FloatArray = field(default_factory=lambda: np.zeros(0))
    train_chip_hours: FloatArray = field(default_factory=lambda: np.zeros(0))
    eligible_count: dict[str, int] = field(default_factory=dict)  # workload -> pools

    @property
    def price_pt(self) -> FloatArray:
        """(P, T) market USD per chip-hour: the list price times any scenario factor."""
        return self.price[:, None] * self.price_factor

    def pool_allowed_for_tenant(self, pool: Pool, tenant_class: str | None) -> bool:
        if not self.switches.exclusivity or tenant_class is None:
            return True
        allowed = self.fleet.policies.exclusivity.get(tenant_class)
        return allowed is None or pool.provider in allowed

    def pool_allowed_for_jurisdiction(self, pool: Pool, jurisdiction: str) -> bool:
        if not self.switches.residency:
            return True
        allowed = self.fleet.policies.residency.get(jurisdiction)
        return allowed is None or f"{pool.provider}/{pool.region}" in allowed

    def alpha(self, unit: DemandUnit, rule_index: int) -> float:
        rule = self.fleet.policies.survivability[rule_index]
        return float(rule.alpha.get(str(unit.service.criticality), 0.0))


def build_index(fleet: Fleet, switches: PolicySwitches | None = None, *,
                price_factor: FloatArray | None = None) -> FleetIndex:
    """Compute every array the builder needs, in one pass over the fleet.

    ``price_factor`` (P, T) multiplies each pool's market price per period (a stress
    scenario's price change); contract prices and spend commitments do not move.
    """
    sw = switches or PolicySwitches()
    ix = FleetIndex(fleet=fleet, switches=sw)
    T = fleet.horizon.periods
    ix.T, ix.hours, ix.pools = T, fleet.horizon.period_hours, fleet.pools
    P = len(fleet.pools)
    ix.price = np.array([p.price_usd_per_chip_hour for p in fleet.pools], dtype=np.float64)
    ix.price_factor = np.ones((P, T)) if price_factor is None else \
        np.asarray(price_factor, dtype=np.float64).reshape(P, T)
    ix.capacity = (
        np.array([p.capacity_chips for p in fleet.pools], dtype=np.float64).reshape(P, T)
        if P
        else np.zeros((0, T))
    )
    rate = np.array([p.preemption_rate_per_hour if p.tier is Tier.SPOT else 0.0
                     for p in fleet.pools], dtype=np.float64)
    ix.efficiency = 1.0 / (1.0 + rate * LOST_HOURS_PER_PREEMPTION)
    pool_pos = {p.name: i for i, p in enumerate(fleet.pools)}
    ix.contract_of_pool = np.full(P, -1, dtype=np.int64)
    for k, c in enumerate(fleet.contracts):
        for name in c.pools:
            ix.contract_of_pool[pool_pos[name]] = k
    for kind in DomainKind:
        names = sorted({p.domain(kind) for p in fleet.pools})
        pos = {n: i for i, n in enumerate(names)}
        ix.domain_names[kind] = names
        ix.domain_of_pool[kind] = np.array([pos[p.domain(kind)] for p in fleet.pools],
                                           dtype=np.int64)
    has_capacity = ix.capacity.max(axis=1) > 0 if P else np.zeros(0, dtype=bool)
    acc_of_pool = np.array([p.accelerator for p in fleet.pools], dtype=object)
    is_spot = np.array([p.tier is Tier.SPOT for p in fleet.pools], dtype=bool)

    _index_inference(ix, acc_of_pool, is_spot, has_capacity)
    _index_batch(ix, acc_of_pool, is_spot, has_capacity)
    _index_training(ix, acc_of_pool, is_spot)
    return ix


def _tenant_mask(ix: FleetIndex, tenant_class: str | None) -> npt.NDArray[np.bool_]:
    return np.array([ix.pool_allowed_for_tenant(p, tenant_class) for p in ix.pools], dtype=bool)


def _index_inference(ix: FleetIndex, acc: npt.NDArray[np.object_],
                     is_spot: npt.NDArray[np.bool_],
                     has_capacity: npt.NDArray[np.bool_]) -> None:
    units: list[DemandUnit] = []
    demand: list[tuple[float, ...]] = []
    unit_ids: list[IntArray] = []
    pool_ids: list[IntArray] = []
    tputs: list[FloatArray] = []
    for svc in ix.fleet.inference:
        tput_of_pool = np.array([svc.throughput_tokens_per_s.get(a, 0.0) for a in acc],
                                dtype=np.float64) * ix.efficiency
        base = (tput_of_pool > 0) & has_capacity & _tenant_mask(ix, svc.tenant_class)
        if not svc.spot_allowed:
            base &= ~is_spot
        for jur, series in sorted(svc.demand_tokens_per_s.items()):
            s = len(units)
            units.append(DemandUnit(svc, jur))
            demand.append(series)
            res = np.array([ix.pool_allowed_for_jurisdiction(p, jur) for p in ix.pools],
                           dtype=bool)
            pools = np.flatnonzero(base & res)
            ix.eligible_count[f"{svc.name}/{jur}"] = int(pools.size)
            unit_ids.append(np.full(pools.size, s, dtype=np.int64))
            pool_ids.append(pools.astype(np.int64))
            tputs.append(tput_of_pool[pools])
    ix.units = units
    ix.demand = np.array(demand, dtype=np.float64).reshape(len(units), ix.T)
    ix.inf_unit = _cat_int(unit_ids)
    ix.inf_pool = _cat_int(pool_ids)
    ix.inf_tput = np.concatenate(tputs) if tputs else np.zeros(0)


def _index_batch(ix: FleetIndex, acc: npt.NDArray[np.object_], is_spot: npt.NDArray[np.bool_],
                 has_capacity: npt.NDArray[np.bool_]) -> None:
    jobs: list[IntArray] = []
    pools: list[IntArray] = []
    for j, job in enumerate(ix.fleet.batch):
        mask = np.isin(acc, list(job.accelerators)) & has_capacity
        mask &= _tenant_mask(ix, job.tenant_class)
        if not job.spot_allowed:
            mask &= ~is_spot
        sel = np.flatnonzero(mask)
        ix.eligible_count[job.name] = int(sel.size)
        jobs.append(np.full(sel.size, j, dtype=np.int64))
        pools.append(sel.astype(np.int64))
    ix.batch_job = _cat_int(jobs)
    ix.batch_pool = _cat_int(pools)


def _index_training(ix: FleetIndex, acc: npt.NDArray[np.object_],
                    is_spot: npt.NDArray[np.bool_]) -> None:
    runs, pools, starts, durs, fracs, hours = [], [], [], [], [], []
    speed = ix.fleet.relative_speed
    for r, run in enumerate(ix.fleet.training):
        mask = np.isin(acc, list(run.accelerators)) & _tenant_mask(ix, run.tenant_class)
        if not run.spot_allowed:
            mask &= ~is_spot
        count = 0
        for p in np.flatnonzero(mask):
            pool = ix.pools[p]
            rate = speed.get(pool.accelerator, 0.0) * ix.efficiency[p]
            if rate <= 0:
                continue
            chip_hours = run.chip_hours / rate  # on this accelerator
            periods_exact = chip_hours / (run.gang_chips * ix.hours)
            dur = max(1, math.ceil(periods_exact - 1e-9))
            last = periods_exact - (dur - 1)
            cap = ix.capacity[p]
            feasible_any = False
            for start in range(run.window_start, run.window_end - dur + 2):
                if start + dur > ix.T:
                    break
                if cap[start:start + dur].min() < run.gang_chips:
                    continue  # the gang never fits: no variable for it
                feasible_any = True
                runs.append(r)
                pools.append(p)
                starts.append(start)
                durs.append(dur)
                fracs.append(last)
                hours.append(chip_hours)
            count += int(feasible_any)
        ix.eligible_count[run.name] = count
    ix.train_run = np.array(runs, dtype=np.int64)
    ix.train_pool = np.array(pools, dtype=np.int64)
    ix.train_start = np.array(starts, dtype=np.int64)
    ix.train_duration = np.array(durs, dtype=np.int64)
    ix.train_last_fraction = np.array(fracs, dtype=np.float64)
    ix.train_chip_hours = np.array(hours, dtype=np.float64)


def _cat_int(parts: list[IntArray]) -> IntArray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def critical_alphas(ix: FleetIndex) -> dict[tuple[int, int], float]:
    """(rule index, unit index) -> alpha, for every unit a kept rule protects."""
    out: dict[tuple[int, int], float] = {}
    for k, _rule in enumerate(ix.fleet.policies.survivability):
        if not ix.switches.keeps_survivability(k):
            continue
        for s, unit in enumerate(ix.units):
            a = ix.alpha(unit, k)
            if a > 0:
                out[(k, s)] = a
    return out


__all__ = ["NO_POLICIES", "Criticality", "DemandUnit", "FleetIndex", "PolicySwitches",
           "build_index", "critical_alphas"]
