"""Immediate impact of :class:`~cloudhedge.stress.effects.Effects` on a fixed plan.

``immediate(state, effects)`` answers "what happens to this plan, as it is?" for every
sample of ``effects`` at once (arrays over samples N, no Python loop per sample; the
loops below run over pools, services, runs, jobs and periods). The semantics, in
words and formulas, are in ``docs/stress-model.md``; in short, per period:

1. **During a pool's down hours** its capacity is ``cap x (1 - lost_fraction)``;
   surviving chips go to inference by criticality, then to whole training gangs by
   priority, then to batch by priority. Outside its down hours every planned chip
   is up. A gang that does not fit whole stops for the outage and loses half a
   checkpoint interval of work; batch work that does not fit is lost.
2. **Inference, phase by phase.** Outages inside a period are taken to start
   together (the cautious reading: they overlap as much as they can), which cuts
   the period into phases with a fixed set of pools down. In each phase a demand
   unit keeps its chips still up, and failover re-serves what it lost (plus any
   demand surge) from idle chips of pools the planner's index lets it use, cheapest
   tokens first, units in criticality order. Exclusivity and residency hold by
   construction: only index pairs receive failover chips.
3. **Batch** work that was lost (or surged) is re-done on idle capacity of eligible
   pools later in the job's window (delayed), else it is unserved.
4. **Cost**: the plan's own cost, with price factors on pools no contract covers,
   plus every extra chip-hour (failover, re-done batch, lost training work) at its
   pool's price; covered pools first use their take-or-pay headroom, which is
   already paid.

Every reduction over pools, units or periods is an explicit accumulation in a fixed
order, so a sample's numbers do not depend on how many samples are computed with it
(Monte Carlo results are identical whatever the chunking).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cloudhedge.stress.effects import Effects
from cloudhedge.stress.state import BoolArray, FloatArray, IntArray, PlanState

SECONDS_PER_HOUR = 3600.0
TOKENS_EPS = 1e-6  # tokens/s: below this a deficit is rounding, not a loss
ROUNDING_SHARE = 1e-6  # of demand: an unserved share below this is plan.json rounding
CHIPS_EPS = 1e-6  # chips: tolerance when a gang is checked against free chips


@dataclass(frozen=True)
class ServiceSummary:
    """One service (all its jurisdictions) over the horizon, for one sample."""

    service: str
    demand_tokens: float
    served_tokens: float
    unserved_tokens: float
    served_share: float  # served / demand over the horizon
    worst_period: int
    worst_period_share: float  # served / demand in the worst period
    failover_chip_hours: float


@dataclass(frozen=True)
class Impact:
    """What Effects do to a fixed plan; arrays have the sample axis N first.

    Inference is per demand unit (service x jurisdiction, ``units``), in period-average
    tokens/s; ``unserved_tokens`` are tokens over each period. Training is per fleet run
    (``runs``), batch per job (``jobs``) in reference (h100-equivalent) chip-hours, the
    unit of ``BatchJob.chip_hours``. Costs in USD.
    """

    units: tuple[str, ...]  # "service/jurisdiction"
    unit_service: IntArray  # (S,) index into ``services``
    services: tuple[str, ...]
    pools: tuple[str, ...]
    runs: tuple[str, ...]
    jobs: tuple[str, ...]
    period_hours: float
    demand_tokens_per_s: FloatArray  # (N, S, T) demand x demand_factor
    served_tokens_per_s: FloatArray  # (N, S, T) kept + failover
    kept_tokens_per_s: FloatArray  # (N, S, T) by the plan's own chips still up
    unserved_tokens: FloatArray  # (N, S, T)
    failover_chips: FloatArray  # (N, S, T) period-average chips taken by failover
    extra_chip_hours: FloatArray  # (N, P, T) on idle chips: failover, re-done batch
    training_delay_hours: FloatArray  # (N, R) down hours + lost work
    training_lost_chip_hours: FloatArray  # (N, R) gang x work lost since checkpoints
    training_missed_deadline: BoolArray  # (N, R)
    batch_delayed_chip_hours: FloatArray  # (N, J) lost or surged work re-done later
    batch_unserved_chip_hours: FloatArray  # (N, J) work no capacity could re-do
    plan_cost_usd: FloatArray  # (T,)
    cost_usd: FloatArray  # (N, T)
    extra_cost_usd: FloatArray  # (N,) cost minus the plan's, over the horizon

    @property
    def samples(self) -> int:
        return int(self.served_tokens_per_s.shape[0])

    def by_service(self, per_unit: FloatArray) -> FloatArray:
        """(N, S, T) per demand unit -> (N, V, T) per service (jurisdictions summed)."""
        n, _, t = per_unit.shape
        out = np.zeros((n, len(self.services), t))
        for s, v in enumerate(self.unit_service):
            out[:, v] += per_unit[:, s]
        return out

    def served_share(self) -> FloatArray:
        """(N, V, T) served / demand per service and period (1 where no demand)."""
        demand = self.by_service(self.demand_tokens_per_s)
        served = self.by_service(self.served_tokens_per_s)
        return np.divide(served, demand, out=np.ones_like(served), where=demand > 0)

    def worst_period_share(self) -> FloatArray:
        """(N, V) the lowest served share of each service over the periods."""
        return _min_last(self.served_share())

    def shortfall(self) -> FloatArray:
        """(N, V) unserved tokens / demand tokens over the horizon, per service."""
        scale = SECONDS_PER_HOUR * self.period_hours
        demand = _sum_last(self.by_service(self.demand_tokens_per_s)) * scale
        lost = _sum_last(self.by_service(self.unserved_tokens))
        return np.divide(lost, demand, out=np.zeros_like(lost), where=demand > 0)

    def shortfall_total(self) -> FloatArray:
        """(N,) unserved tokens / demand tokens over the horizon, all services."""
        scale = SECONDS_PER_HOUR * self.period_hours
        demand = _sum_last(_sum_middle(self.demand_tokens_per_s)) * scale
        lost = _sum_last(_sum_middle(self.unserved_tokens))
        return np.divide(lost, demand, out=np.zeros_like(lost), where=demand > 0)

    def service_summaries(self, sample: int = 0) -> list[ServiceSummary]:
        """Per service, one sample: tokens, served share, worst period, failover."""
        scale = SECONDS_PER_HOUR * self.period_hours
        demand = self.by_service(self.demand_tokens_per_s)[sample] * scale
        unserved = self.by_service(self.unserved_tokens)[sample]
        share = self.served_share()[sample]
        failover = self.by_service(self.failover_chips)[sample] * self.period_hours
        out = []
        for v, name in enumerate(self.services):
            total = float(demand[v].sum())
            lost = float(unserved[v].sum())
            worst = int(np.argmin(share[v]))
            out.append(ServiceSummary(
                service=name, demand_tokens=total, served_tokens=total - lost,
                unserved_tokens=lost, served_share=1.0 - lost / total if total > 0 else 1.0,
                worst_period=worst, worst_period_share=float(share[v, worst]),
                failover_chip_hours=float(failover[v].sum())))
        return out


def immediate(state: PlanState, effects: Effects) -> Impact:
    """The plan as it is under ``effects``: served demand, delays, lost work, cost."""
    _check(state, effects)
    return _Simulation(state, effects).run()


def _check(state: PlanState, effects: Effects) -> None:
    shape = (effects.samples, len(state.pools), state.periods)
    for name in ("lost_fraction", "down_hours", "price_factor"):
        if getattr(effects, name).shape != shape:
            raise ValueError(f"effects.{name} has shape {getattr(effects, name).shape}, "
                             f"expected {shape} (samples, pools, periods)")
    if effects.period_hours != state.period_hours:
        raise ValueError(f"effects.period_hours {effects.period_hours} differs from the "
                         f"plan's {state.period_hours}")
    known = {u.service.name for u in state.units} | {j.name for j in state.jobs} | \
        {r.name for r in state.runs}
    for name, factor in effects.demand_factor.items():
        if name not in known:
            raise ValueError(f"effects.demand_factor names unknown workload {name!r}")
        if factor.shape != (effects.samples, state.periods):
            raise ValueError(f"effects.demand_factor[{name!r}] has shape {factor.shape}, "
                             f"expected {(effects.samples, state.periods)}")


def _pool_first(a: FloatArray) -> FloatArray:
    """(N, P, T) -> contiguous (P, N, T): one pool's samples are one block."""
    return np.ascontiguousarray(np.swapaxes(a, 0, 1), dtype=np.float64)


def _sum_last(a: FloatArray) -> FloatArray:
    """Sum over the last axis, one slice at a time (order fixed whatever the shape)."""
    out = np.zeros(a.shape[:-1])
    for k in range(a.shape[-1]):
        out += a[..., k]
    return out


def _sum_middle(a: FloatArray) -> FloatArray:
    """(N, S, T) -> (N, T), summing units one at a time."""
    out = np.zeros((a.shape[0], a.shape[2]))
    for s in range(a.shape[1]):
        out += a[:, s]
    return out


def _min_last(a: FloatArray) -> FloatArray:
    out = np.full(a.shape[:-1], np.inf)
    for k in range(a.shape[-1]):
        np.minimum(out, a[..., k], out=out)
    return out


def _lost_share(kept: FloatArray, planned: FloatArray) -> FloatArray:
    """1 - kept / planned, 0 where nothing was planned."""
    share = np.divide(kept, planned, out=np.ones_like(kept), where=planned > 0)
    return 1.0 - share


class _Simulation:
    """One call of :func:`immediate`. Internal arrays are pool-first (P, N, T) and
    unit-first (S, N, T) so that one pool's or unit's samples are contiguous."""

    def __init__(self, state: PlanState, effects: Effects) -> None:
        self.st = state
        self.N, self.P, self.T = effects.samples, len(state.pools), state.periods
        self.H = state.period_hours
        lost = np.clip(_pool_first(effects.lost_fraction), 0.0, 1.0)
        down = np.clip(_pool_first(effects.down_hours), 0.0, self.H)
        self.down = np.where(lost > 0, down, 0.0)  # hours a pool is short, per period
        cap = state.capacity_chips[:, None, :]
        self.up_out = np.where(self.down > 0, cap * (1.0 - lost), cap)
        self.price_factor = _pool_first(effects.price_factor)
        self.pool_hit = self.down.reshape(self.P, -1).max(axis=1) > 0
        self.extra_hours = np.zeros((self.P, self.N, self.T))  # failover + batch re-done
        self.train_redo_hours = np.zeros((self.P, self.N, self.T))  # lost gang work
        self.factor = effects.demand_factor
        self.failover_pairs = [(s, *_failover_pairs(state, s)) for s in _unit_order(state)]
        self.inf_lost: dict[int, FloatArray] = {}  # criticality rank -> (P, N, T) share lost
        R = len(state.runs)
        self.delay = np.zeros((R, self.N))
        self.lost_ch = np.zeros((R, self.N))
        self.missed = np.zeros((R, self.N), dtype=bool)

    def run(self) -> Impact:
        st = self.st
        free = self._inference_outage()
        self._training_outage(free)
        batch_need = self._batch_outage(free)
        # what is left of ``free`` is the chips up and idle during each pool's outage
        demand, kept, served, failover, spare_avg = self._inference_phases(free)
        delayed, unserved = self._batch_redo(batch_need, spare_avg)
        cost = self._cost()
        plan_cost = st.plan_cost_usd
        extra = _sum_last(cost - plan_cost[None, :])
        gap = demand - served
        # plan.json rounds chips to 4 decimals: a deficit this small is that, not a loss
        gap = np.where(gap <= ROUNDING_SHARE * demand, 0.0, gap)
        unserved_tokens = gap * SECONDS_PER_HOUR * self.H
        services = tuple(dict.fromkeys(u.service.name for u in st.units))
        svc_pos = {name: v for v, name in enumerate(services)}
        return Impact(
            units=tuple(u.label for u in st.units),
            unit_service=np.array([svc_pos[u.service.name] for u in st.units],
                                  dtype=np.int64),
            services=services, pools=tuple(p.name for p in st.pools),
            runs=tuple(r.name for r in st.runs),
            jobs=tuple(j.name for j in st.jobs), period_hours=self.H,
            demand_tokens_per_s=_unit_last(demand), served_tokens_per_s=_unit_last(served),
            kept_tokens_per_s=_unit_last(kept),
            unserved_tokens=_unit_last(np.maximum(unserved_tokens, 0.0)),
            failover_chips=_unit_last(failover), extra_chip_hours=_unit_last(self.extra_hours),
            training_delay_hours=self.delay.T.copy(),
            training_lost_chip_hours=self.lost_ch.T.copy(),
            training_missed_deadline=self.missed.T.copy(),
            batch_delayed_chip_hours=delayed.T.copy(),
            batch_unserved_chip_hours=unserved.T.copy(),
            plan_cost_usd=plan_cost.copy(), cost_usd=cost, extra_cost_usd=extra,
        )

    # ------------------------------------------------------------ 1. during outages
    def _inference_outage(self) -> FloatArray:
        """Inference keeps surviving chips by criticality; returns the chips left."""
        st = self.st
        free = self.up_out.copy()
        rank_of_pair = st.unit_rank[st.inf_unit]
        for rank in np.unique(st.unit_rank):
            sel = rank_of_pair == rank
            planned = np.zeros((self.P, self.T))
            np.add.at(planned, st.inf_pool[sel], st.inf_chips[sel])
            kept = np.minimum(free, planned[:, None, :])
            free -= kept
            self.inf_lost[int(rank)] = _lost_share(kept, planned[:, None, :])
        return free

    def _training_outage(self, free: FloatArray) -> None:
        """Gangs, by priority, run through an outage only whole; else they stop.

        A gang needs what the plan gives it: the whole gang, or in its last, partly
        used period the planner's period-average share of it (as in the plan's own
        capacity rows, so that a plan that fits is never stopped by nothing)."""
        st, H = self.st, self.H
        order = sorted((r for r in range(len(st.runs)) if st.train_pool[r] >= 0),
                       key=lambda r: (-st.runs[r].priority, r))
        for r in order:
            run, p = st.runs[r], int(st.train_pool[r])
            gang = float(run.gang_chips)
            occ = st.train_chips[r]
            active = occ > 0
            fits = free[p] >= occ - CHIPS_EPS
            free[p] -= np.where(active & fits, occ, 0.0)
            stopped = active & ~fits & (self.down[p] > 0)
            if not stopped.any():
                continue
            # expected overlap with the outage: the run's share of its last period
            stop_hours = np.where(stopped, self.down[p] * (occ / gang), 0.0)
            lost_hours = np.where(stopped, run.checkpoint_interval_hours / 2.0, 0.0)
            self.delay[r] = _sum_last(stop_hours + lost_hours)
            self.lost_ch[r] = gang * _sum_last(lost_hours)
            deadline = (run.window_end + 1) * H
            self.missed[r] = st.train_end_hours[r] + self.delay[r] > deadline + 1e-6
            self.train_redo_hours[p] += gang * lost_hours

    def _batch_outage(self, free: FloatArray) -> FloatArray:
        """Batch keeps what is left by priority; returns (J, N, T) reference chip-hours
        to re-do: work lost in outages plus any surge."""
        st = self.st
        J = len(st.jobs)
        need = np.zeros((J, self.N, self.T))
        prio = np.array([j.priority for j in st.jobs], dtype=np.int64)
        chips = st.batch_chip_hours / self.H
        for level in sorted(set(prio.tolist()), reverse=True):
            sel = prio[st.batch_job] == level
            planned = np.zeros((self.P, self.T))
            np.add.at(planned, st.batch_pool[sel], chips[sel])
            kept = np.minimum(free, planned[:, None, :])
            free -= kept
            lost = _lost_share(kept, planned[:, None, :]) * self.down  # hours x share
            for i in np.flatnonzero(sel):
                p = int(st.batch_pool[i])
                if self.pool_hit[p] and chips[i].any():
                    need[st.batch_job[i]] += (chips[i] * st.batch_rate[i]) * lost[p]
        planned_ref = np.zeros((J, self.T))
        np.add.at(planned_ref, st.batch_job, st.batch_chip_hours * st.batch_rate[:, None])
        for j, job in enumerate(st.jobs):
            factor = self.factor.get(job.name)
            if factor is not None:
                need[j] += planned_ref[j] * np.maximum(factor - 1.0, 0.0)
        return need

    # ------------------------------------------------------------ 2. inference phases
    def _inference_phases(self, spare_out: FloatArray) -> tuple[
            FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """Kept + failover per phase, given the idle chips of each pool during its own
        outage; returns unit-first demand, kept and served tokens/s, failover chips, and
        the pool-first idle chips left (period averages)."""
        st, N, T, H = self.st, self.N, self.T, self.H
        S = len(st.units)
        base = st.demand_tokens_per_s
        planned = st.planned_tokens_per_s[:, None, :]
        demand = np.broadcast_to(base[:, None, :], (S, N, T)).copy()
        surge = np.zeros((S, N, T))
        for s, unit in enumerate(st.units):
            factor = self.factor.get(unit.service.name)
            if factor is not None:
                demand[s] = base[s] * factor
                surge[s] = base[s] * np.maximum(factor - 1.0, 0.0)
        wanted = np.minimum(demand, planned + surge)
        spare_norm = np.maximum(st.capacity_chips - st.used_chips, 0.0)[:, None, :]
        kept_avg = np.zeros((S, N, T))
        served = np.zeros((S, N, T))
        failover = np.zeros((S, N, T))
        spare_avg = np.zeros((self.P, N, T))
        active = [i for i in range(st.inf_unit.size) if st.inf_chips[i].any()]
        tokens = st.inf_chips * st.inf_tput[:, None]
        for weight, down_k in self._phases():
            kept = np.broadcast_to(planned, (S, N, T)).copy()
            if down_k is not None:
                hit = np.any(down_k.reshape(self.P, -1), axis=1)
                for i in active:
                    p = int(st.inf_pool[i])
                    if hit[p]:
                        s = int(st.inf_unit[i])
                        lost = self.inf_lost[int(st.unit_rank[s])][p]
                        kept[s] -= tokens[i] * np.where(down_k[p], lost, 0.0)
                np.maximum(kept, 0.0, out=kept)
                spare = np.where(down_k, spare_out, spare_norm)
            else:
                spare = np.broadcast_to(spare_norm, (self.P, N, T)).copy()
            got = np.minimum(demand, kept)
            w = weight / H
            kept_avg += got * w
            self._failover(wanted - kept, weight, spare, got, failover)
            served += got * w
            spare_avg += spare * w
        return demand, kept_avg, served, failover, spare_avg

    def _phases(self) -> list[tuple[FloatArray, BoolArray | None]]:
        """(hours, pools down) per phase: outages start together, so a pool is down in
        every phase ending before its own down hours are over. Phases are padded to the
        same count in every cell (zero hours), then the rest of the period, all up."""
        N, T = self.N, self.T
        if not self.pool_hit.any():
            return [(np.full((N, T), self.H), None)]
        ends = np.sort(self.down, axis=0)
        new = ends > 0
        new[1:] &= ends[1:] > ends[:-1]
        count = int(new.sum(axis=0).max())
        d_max = ends[-1]
        bounds = np.broadcast_to(d_max, (count, N, T)).copy()
        rank = np.cumsum(new, axis=0) - 1
        p_i, n_i, t_i = np.nonzero(new)
        bounds[rank[p_i, n_i, t_i], n_i, t_i] = ends[p_i, n_i, t_i]
        out: list[tuple[FloatArray, BoolArray | None]] = []
        start = np.zeros((N, T))
        for k in range(count):
            end = bounds[k]
            out.append((end - start, (self.down >= end) & (end > 0)))
            start = end
        out.append((self.H - d_max, None))
        return out

    def _failover(self, deficit: FloatArray, weight: FloatArray, spare: FloatArray,
                  got: FloatArray, failover: FloatArray) -> None:
        """Serve each unit's deficit (S, N, T) from ``spare`` (P, N, T, consumed in place)
        on its eligible pools, cheapest tokens first, units in criticality order; adds
        the tokens to ``got`` and the period-average chips to ``failover``."""
        spare2 = spare.reshape(self.P, -1)
        w_flat = weight.ravel()
        extra2 = self.extra_hours.reshape(self.P, -1)
        for s, pools, tput in self.failover_pairs:
            if pools.size == 0:
                continue
            need_all = deficit[s].ravel()
            cells = np.flatnonzero((need_all > TOKENS_EPS) & (w_flat > 0))
            if cells.size == 0:
                continue
            grid = np.ix_(pools, cells)
            idle = spare2[grid]
            avail = idle * tput[:, None]  # tokens/s each pool could add
            before = np.cumsum(avail, axis=0) - avail
            need = need_all[cells]
            take = np.clip(need[None, :] - before, 0.0, avail)
            chips = take / tput[:, None]
            spare2[grid] = np.maximum(idle - chips, 0.0)
            extra2[grid] += chips * w_flat[cells][None, :]
            got[s].ravel()[cells] += np.minimum(need, (before + avail)[-1])
            failover[s].ravel()[cells] += np.cumsum(chips, axis=0)[-1] * \
                (w_flat[cells] / self.H)

    # ------------------------------------------------------------ 3. batch redo
    def _batch_redo(self, need: FloatArray, spare: FloatArray) -> tuple[FloatArray,
                                                                       FloatArray]:
        """Re-do lost (or surged) batch work on idle chips of eligible pools, from the
        period it was lost to the end of the job's window, cheapest first."""
        st, N, H = self.st, self.N, self.H
        J = len(st.jobs)
        delayed = np.zeros((J, N))
        unserved = np.zeros((J, N))
        order = sorted(range(J), key=lambda j: (-st.jobs[j].priority, j))
        for j in order:
            if not need[j].any():
                continue
            job = st.jobs[j]
            sel = np.flatnonzero(st.batch_job == j)
            pools = st.batch_pool[sel]
            rate = st.batch_rate[sel]
            keep = rate > 0
            cost = st.price_usd_per_chip_hour[pools] / np.where(keep, rate, 1.0)
            by_cost = np.argsort(cost[keep], kind="stable")
            pools, rate = pools[keep][by_cost], rate[keep][by_cost]
            carry = np.zeros(N)
            for t in range(job.window_start, min(job.window_end, self.T - 1) + 1):
                carry += need[j, :, t]
                if pools.size == 0 or not carry.any():
                    continue
                avail = spare[pools, :, t] * (H * rate[:, None])  # reference chip-hours
                before = np.cumsum(avail, axis=0) - avail
                take = np.clip(carry[None, :] - before, 0.0, avail)
                chip_hours = take / rate[:, None]
                spare[pools, :, t] = np.maximum(spare[pools, :, t] - chip_hours / H, 0.0)
                self.extra_hours[pools, :, t] += chip_hours
                done = np.minimum(carry, (before + avail)[-1])
                delayed[j] += done
                carry = np.maximum(carry - done, 0.0)
            unserved[j] = carry
        return delayed, unserved

    # ------------------------------------------------------------ 4. cost
    def _cost(self) -> FloatArray:
        """(N, T) USD: the plan's cost, price factors on uncovered pools, extra chip-hours
        (failover, re-done batch, and lost training work, billed where it was lost)."""
        st, N, T, H = self.st, self.N, self.T, self.H
        cost = np.broadcast_to(st.plan_cost_usd, (N, T)).copy()
        price = st.price_usd_per_chip_hour
        extra = self.extra_hours + self.train_redo_hours
        for p in np.flatnonzero(st.contract_of_pool < 0):
            pf = self.price_factor[p]
            cost += st.usage_cost_usd[p] * (pf - 1.0)
            cost += extra[p] * (price[p] * pf)
        for k in range(st.contract_headroom.shape[0]):
            hours = np.zeros((N, T))
            usd = np.zeros((N, T))
            for p in np.flatnonzero(st.contract_of_pool == k):
                hours += extra[p]
                usd += extra[p] * price[p]
            room = st.contract_headroom[k]
            if st.contract_in_usd[k]:
                cost += np.maximum(usd - room, 0.0)
            else:
                free = np.minimum(hours, room * H)
                cost += usd * (1.0 - np.divide(free, hours, out=np.zeros_like(free),
                                               where=hours > 0))
        return cost


def _unit_order(st: PlanState) -> list[int]:
    """Demand units in failover order: criticality, then fleet order."""
    return sorted(range(len(st.units)), key=lambda s: (int(st.unit_rank[s]), s))


def _failover_pairs(st: PlanState, s: int) -> tuple[IntArray, FloatArray]:
    """Eligible pools of unit ``s`` and their tokens/s per chip, cheapest tokens first."""
    sel = np.flatnonzero((st.inf_unit == s) & (st.inf_tput > 0))
    pools, tput = st.inf_pool[sel], st.inf_tput[sel]
    order = np.argsort(st.price_usd_per_chip_hour[pools] / tput, kind="stable")
    return pools[order], tput[order]


def _unit_last(a: FloatArray) -> FloatArray:
    """Unit- or pool-first (S, N, T) -> contiguous (N, S, T)."""
    return np.ascontiguousarray(np.swapaxes(a, 0, 1))


__all__ = ["Impact", "ServiceSummary", "immediate"]
