"""Turn a solved model back into domain terms: allocations, costs, contract use,
concentration, survivability and unmet demand.

Costs are attributed with one rule: within a pool and period every chip in use
costs the same (the pool price on use, or the contract's cost shared by the chips
it covers plus overage at the pool price); committed chips nobody used are
"wasted" take-or-pay dollars, attributed to the pools of the contract by capacity.
So every breakdown (provider, vendor, tier, period, workload) sums to the total.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cloudhedge.core.models import DomainKind
from cloudhedge.planning.build import Model
from cloudhedge.planning.index import SECONDS_PER_HOUR, FleetIndex, FloatArray, IntArray

EPS = 1e-6
UNUSED = "(unused commitment)"


@dataclass
class Decoded:
    """Numbers derived from one solution, shared by plan assembly and explanations."""

    x: FloatArray
    use: FloatArray  # (P, T) chips in use
    wc: sp.csr_matrix  # (P*T, W) chips per pool-period per workload
    workloads: list[str]
    workload_kind: list[str]
    rate: FloatArray  # (P*T,) USD per chip in use per pool-period
    waste: FloatArray  # (P*T,) unused take-or-pay USD attributed to the pool-period
    contract_committed: FloatArray  # (K, T) chips (or USD for spend commitments)
    contract_used: FloatArray  # (K, T) same unit, covered by the commitment
    contract_use_total: FloatArray  # (K, T) same unit, covered plus overage
    contract_cost: FloatArray  # (K, T) fixed + decided-commitment cost
    contract_overage: FloatArray  # (K, T) USD
    served: FloatArray  # (n_pairs, T) tokens/s per inference pair
    unmet_tokens: FloatArray  # (S, T) tokens/s
    train_choice: IntArray  # option index per run, -1 when unscheduled
    batch_unmet: FloatArray  # (J,) reference chip-hours
    real_cost: float
    penalty: float


def workload_columns(ix: FleetIndex, model: Model) -> tuple[list[str], list[str], IntArray]:
    """Workload names and kinds, and the workload index of each column (-1: none)."""
    names = [r.name for r in ix.fleet.training] + [b.name for b in ix.fleet.batch]
    kinds = ["training"] * len(ix.fleet.training) + ["batch"] * len(ix.fleet.batch)
    svc_pos: dict[str, int] = {}
    for svc in ix.fleet.inference:
        svc_pos[svc.name] = len(names)
        names.append(svc.name)
        kinds.append("inference")
    n = model.A.shape[1]
    owner = np.full(n, -1, dtype=np.int64)
    T = ix.T
    x = model.cols["x"]
    unit_svc = np.array([svc_pos[u.service.name] for u in ix.units], dtype=np.int64)
    if x.size:
        owner[x.start:x.stop] = np.repeat(unit_svc[ix.inf_unit], T)
    y = model.cols["y"]
    owner[y.start:y.stop] = ix.train_run
    b = model.cols["b"]
    R = len(ix.fleet.training)
    if b.size:
        owner[b.start:b.stop] = R + _batch_job_of_cols(ix, model)
    return names, kinds, owner


def _batch_job_of_cols(ix: FleetIndex, model: Model) -> IntArray:
    jobs = ix.fleet.batch
    ws = np.array([j.window_start for j in jobs], dtype=np.int64)
    we = np.array([j.window_end for j in jobs], dtype=np.int64)
    span = (we - ws + 1)[ix.batch_job]
    return np.repeat(ix.batch_job, span).astype(np.int64)


def decode(ix: FleetIndex, model: Model, x: FloatArray) -> Decoded:
    T, H = ix.T, ix.hours
    P = len(ix.pools)
    names, kinds, owner = workload_columns(ix, model)
    W = len(names)
    has = owner >= 0
    M = sp.csr_matrix((np.ones(int(has.sum())), (np.flatnonzero(has), owner[has])),
                      shape=(x.size, W))
    wc = (model.U @ sp.diags(x) @ M).tocsr()
    wc.data[np.abs(wc.data) < EPS] = 0.0
    wc.eliminate_zeros()
    use_flat = np.asarray(wc.sum(axis=1)).ravel()
    use = use_flat.reshape(P, T)
    price_pt = ix.price_pt.ravel() * H
    covered_pt = np.repeat(ix.contract_of_pool >= 0, T)
    cost_pt = np.where(covered_pt, 0.0, price_pt * use_flat)
    waste = np.zeros(P * T)

    K = len(ix.fleet.contracts)
    committed = np.zeros((K, T))
    used = np.zeros((K, T))
    use_total = np.zeros((K, T))
    ccost = np.zeros((K, T))
    overage = np.zeros((K, T))
    cov_blk, over_blk, q_blk = model.cols["cov"], model.cols["over"], model.cols["q"]
    covered = np.flatnonzero(ix.contract_of_pool >= 0)
    cov = x[cov_blk.start:cov_blk.stop].reshape(covered.size, T)
    over = x[over_blk.start:over_blk.stop].reshape(covered.size, T)
    q = x[q_blk.start:q_blk.stop]
    qi = 0
    for k, c in enumerate(ix.fleet.contracts):
        mine = np.flatnonzero(ix.contract_of_pool[covered] == k)
        pools = covered[mine]
        spend = bool(c.committed_spend_usd)
        unit = (ix.price[pools][:, None] * H) if spend else np.ones((pools.size, 1))
        used[k] = (cov[mine] * unit).sum(axis=0)
        use_total[k] = used[k] + (over[mine] * unit).sum(axis=0)
        overage[k] = (over[mine] * ix.price_pt[pools] * H).sum(axis=0)
        active = np.array([c.active(t) for t in range(T)])
        if c.decide:
            level = np.zeros(T)
            for tier in c.tiers:
                level += np.where(active, q[qi], 0.0)
                ccost[k] += np.where(active, q[qi] * c.price_usd_per_chip_hour
                                     * (1 - tier.discount) * H, 0.0)
                qi += 1
            committed[k] = level
        elif spend:
            committed[k] = np.where(active, c.committed_spend_usd, 0.0)
            ccost[k] = committed[k] if c.take_or_pay else 0.0
        else:
            committed[k] = np.where(active, c.committed_chips, 0.0)
            ccost[k] = committed[k] * H * c.price_usd_per_chip_hour if c.take_or_pay else 0.0
        if not c.take_or_pay:  # pay the contract price on covered use only
            ccost[k] = (cov[mine] * c.price_usd_per_chip_hour * H).sum(axis=0)
            committed[k] = used[k]
        denom = np.maximum(np.maximum(committed[k], used[k]), EPS)
        for j, p in enumerate(pools):
            sl = slice(p * T, (p + 1) * T)
            unit_j = unit[j] if spend else 1.0
            cost_pt[sl] += ccost[k] * cov[mine[j]] * unit_j / denom
            cost_pt[sl] += over[mine[j]] * ix.price_pt[p] * H
        unused = ccost[k] * np.clip(1 - used[k] / denom, 0, 1)
        capw = ix.capacity[pools]
        capw = capw / np.maximum(capw.sum(axis=0), EPS)
        for j, p in enumerate(pools):
            waste[p * T:(p + 1) * T] += unused * capw[j]
    rate = np.divide(cost_pt, use_flat, out=np.zeros_like(cost_pt), where=use_flat > EPS)

    xb = model.cols["x"]
    served = (x[xb.start:xb.stop].reshape(-1, T) * ix.inf_tput[:, None]) if xb.size else \
        np.zeros((0, T))
    ub = model.cols["u"]
    unmet = x[ub.start:ub.stop].reshape(len(ix.units), T)
    yb = model.cols["y"]
    y = x[yb.start:yb.stop]
    choice = np.full(len(ix.fleet.training), -1, dtype=np.int64)
    for o in np.flatnonzero(y > 0.5):
        choice[ix.train_run[o]] = o
    bu = x[model.cols["ub"].start:model.cols["ub"].stop]
    real = float(model.cost @ x + model.offset)
    pen = float(model.penalty @ x)
    return Decoded(x, use, wc, names, kinds, rate, waste, committed, used, use_total, ccost,
                   overage,
                   served, unmet, choice, bu, real, pen)


def cost_ledger(ix: FleetIndex, d: Decoded) -> tuple[sp.csr_matrix, FloatArray]:
    """USD per (pool-period, workload) and the wasted USD per pool-period."""
    return (sp.diags(d.rate) @ d.wc).tocsr(), d.waste


def breakdowns(ix: FleetIndex, d: Decoded) -> dict[str, dict[str, float]]:
    """Cost by provider, vendor, tier, workload; plus per period (key 'period')."""
    T = ix.T
    led, waste = cost_ledger(ix, d)
    per_pt = np.asarray(led.sum(axis=1)).ravel() + waste
    per_pool = per_pt.reshape(len(ix.pools), T)
    out: dict[str, dict[str, float]] = {}
    for key, attr in (("provider", "provider"), ("vendor", "vendor"), ("tier", "tier"),
                      ("region", "region")):
        agg: dict[str, float] = defaultdict(float)
        for p, pool in enumerate(ix.pools):
            name = str(getattr(pool, attr))
            if attr == "region":
                name = f"{pool.provider}/{pool.region}"
            agg[name] += float(per_pool[p].sum())
        out[key] = dict(agg)
    by_w = np.asarray(led.sum(axis=0)).ravel()
    wl = {n: float(v) for n, v in zip(d.workloads, by_w, strict=True)}
    if waste.sum() > EPS:
        wl[UNUSED] = float(waste.sum())
    out["workload"] = wl
    out["period"] = {str(t): float(per_pool[:, t].sum()) for t in range(T)}
    prov_period: dict[str, FloatArray] = defaultdict(lambda: np.zeros(T))
    for p, pool in enumerate(ix.pools):
        prov_period[pool.provider] = prov_period[pool.provider] + per_pool[p]
    out["period_provider"] = {k: v.tolist() for k, v in prov_period.items()}
    return out


MIN_USE_CHIPS = 1e-3
"""Below this many chips in use in a period, shares are 0: solver noise, not a plan."""


def shares(ix: FleetIndex, use: FloatArray, kind: DomainKind) -> dict[str, FloatArray]:
    """Share of chips in use per domain of ``kind`` per period."""
    total = use.sum(axis=0)
    dom = ix.domain_of_pool[kind]
    out = {}
    for g, name in enumerate(ix.domain_names[kind]):
        part = use[dom == g].sum(axis=0)
        out[name] = np.divide(part, total, out=np.zeros_like(part),
                              where=total > MIN_USE_CHIPS)
    return out


def kept_share(ix: FleetIndex, d: Decoded, s: int, kind: DomainKind) -> dict[str, FloatArray]:
    """For demand unit s: per domain of ``kind``, share of served tokens kept without it."""
    pairs = np.flatnonzero(ix.inf_unit == s)
    served = d.served[pairs]
    total = served.sum(axis=0)
    dom = ix.domain_of_pool[kind][ix.inf_pool[pairs]]
    out: dict[str, FloatArray] = {}
    for g in np.unique(dom[served.sum(axis=1) > EPS]):
        outside = served[dom != g].sum(axis=0)
        out[ix.domain_names[kind][g]] = np.divide(outside, total, out=np.ones_like(total),
                                                  where=total > EPS)
    return out


def tokens_served(ix: FleetIndex, d: Decoded) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for s, unit in enumerate(ix.units):
        out[unit.service.name] += float(
            ((ix.demand[s] - d.unmet_tokens[s]).clip(min=0) * SECONDS_PER_HOUR * ix.hours).sum()
        )
    return dict(out)
