"""Period decomposition for large plans: a feasible plan and a valid lower bound.

The monolithic LP relaxation stops scaling near a million columns (2000 workloads x
300 pools x 24 periods has 3.3 M columns, 2.75 M of them inference pairs, and HiGHS
does not finish its relaxation in two minutes). This path never solves that LP:

1. **Master with batch aggregated exactly.** A batch column's cost and chip use do not
   depend on the job, so ``B[c, p, t]`` (chip-hours of job class ``c``, the jobs with the
   same eligible pools, on pool ``p`` in period ``t``) plus ``h[j, t]`` (reference
   chip-hours of job ``j`` done in ``t``) with ``sum_p v_p e_p B[c, p, t] = sum_{j in c}
   h[j, t]`` describe the same plans (disaggregate ``b[j, p, t] = B[c, p, t] h[j, t] /
   sum_{j' in c} h[j', t]``). Inference pairs start restricted to those the period LPs
   (step 4) use when solved once with training and batch left out (else, if those do
   not solve in time, to the cheapest pool per unit and provider); a restriction, so
   every master solution is a feasible plan.
2. **Column generation.** Inference columns are priced with the master's duals; the
   most negative few per unit and period are added and the master re-solved (warm).
3. **Training by diving** on the master (warm re-solves), then, when the master is quick,
   a short HiGHS branch-and-bound on it from the dive's solution.
4. **Period LPs.** With training and batch fixed, the rest separates by period; each
   period's LP has all its inference pairs and is warm-started from the previous
   period's basis. The assembled plan is checked against every row before it is used.
5. **Lower bound.** :func:`lagrangian_bound`: for any row prices, ``min c'x + pi'(r - A
   x)`` over the column bounds tightened by capacity (every feasible plan lies there)
   and the row ranges is at most the LP optimum; evaluated with the master's and the
   period LPs' duals, the best is reported.

Applicable when nothing but training and batch links periods: no decided contract
levels and no total budget (the planner falls back to the monolithic path then).
See docs/planning-model.md, "Large plans: period decomposition".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from cloudhedge.core.models import DomainKind
from cloudhedge.planning.build import Model
from cloudhedge.planning.index import FleetIndex, FloatArray, IntArray
from cloudhedge.planning.solve import (
    Solution,
    SolveOptions,
    _new_highs,
    objective_scale,
)

log = logging.getLogger(__name__)

LINK_COLS = ("y", "z", "b", "ub")
LINK_ROWS = ("train", "batch")
DECOMPOSE_MIN_COLUMNS = 1_000_000
"""Models with at least this many columns are planned by decomposition (when it applies)."""
KEEP_PER_PROVIDER = 1
"""Inference pools per demand unit and provider kept in the coarse LP."""


@dataclass
class DecomposeInfo:
    """What the decomposition did, for logs and benchmarks."""

    coarse_columns: int = 0
    coarse_seconds: float = 0.0
    fixed_seconds: float = 0.0
    period_seconds: float = 0.0
    bound_seconds: float = 0.0
    upper: float | None = None
    lower: float | None = None
    steps: list[str] = field(default_factory=list)


def applicable(model: Model) -> bool:
    """True when training and batch are the only links between periods."""
    if model.cols["q"].size or model.cols["w"].size or "slack" in model.cols:
        return False
    if "budget_total" in model.rows:
        return False
    for name, blk in model.rows.items():
        if name not in LINK_ROWS and blk.period.size != blk.size:
            return False
    for name, blk in model.cols.items():
        if name not in LINK_COLS and blk.size and blk.period.size != blk.size:
            return False
    return bool(model.cols["x"].size)


def use_decomposition(model: Model, choice: bool | None = None) -> bool:
    """Whether to plan ``model`` by decomposition: ``choice`` when given (and the model
    allows it), else for models of at least :data:`DECOMPOSE_MIN_COLUMNS` columns."""
    if not applicable(model):
        return False
    return choice if choice is not None else model.A.shape[1] >= DECOMPOSE_MIN_COLUMNS


# ----------------------------------------------------------------- HiGHS glue
def _lp_highs(options: SolveOptions, time_limit: float | None) -> Any:
    h = _new_highs()
    h.setOptionValue("output_flag", options.verbose)
    h.setOptionValue("log_to_console", options.verbose)
    if options.threads is not None:  # HiGHS fixes its thread pool once per process
        h.setOptionValue("threads", int(options.threads))
    h.setOptionValue("random_seed", 0)
    if time_limit is not None:
        h.setOptionValue("time_limit", max(float(time_limit), 1.0))
    return h


def _pass_lp(h: Any, A: sp.csc_matrix, cost: FloatArray, lo: FloatArray, hi: FloatArray,
             rlo: FloatArray, rhi: FloatArray, scale: float) -> None:
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = A.shape[1], A.shape[0]
    lp.col_cost_ = np.asarray(cost, dtype=np.float64) / scale
    lp.col_lower_ = np.asarray(lo, dtype=np.float64)
    lp.col_upper_ = np.asarray(hi, dtype=np.float64)
    lp.row_lower_ = np.asarray(rlo, dtype=np.float64)
    lp.row_upper_ = np.asarray(rhi, dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(np.float64)
    h.passModel(lp)


def _optimal(h: Any) -> bool:
    return bool(h.getModelStatus() == highspy.HighsModelStatus.kOptimal)


# ------------------------------------------------------------- coarse model
@dataclass
class _Coarse:
    A: sp.csc_matrix
    cost: FloatArray
    lo: FloatArray
    hi: FloatArray
    rlo: FloatArray
    rhi: FloatArray
    keep: IntArray  # full-model column of each kept column (the first len(keep))
    B_rep: IntArray  # a representative b column per B column
    B_class: IntArray
    B_t: IntArray
    h_job: IntArray
    h_t: IntArray
    job_class: IntArray
    b_B: IntArray  # B column of each b column (relative to the b block)
    extra: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """full-model inference columns added by column generation (after the h columns)"""

    @property
    def nk(self) -> int:
        return int(self.keep.size)

    def position(self, full_col: IntArray) -> IntArray:
        """Coarse column of kept full-model columns."""
        out: IntArray = np.searchsorted(self.keep, full_col)
        return out


def _restricted_pairs(ix: FleetIndex, model: Model, per_provider: int) -> np.ndarray:
    """Inference pairs kept in the coarse LP: per unit and provider the cheapest pools
    by effective price per token (contract price for committed pools)."""
    price = ix.price.astype(np.float64).copy()
    covered = ix.contract_of_pool >= 0
    if covered.any():
        cprice = np.array([c.price_usd_per_chip_hour for c in ix.fleet.contracts])
        price[covered] = cprice[ix.contract_of_pool[covered]]
    prov = ix.domain_of_pool[DomainKind.PROVIDER]
    score = price[ix.inf_pool] / np.maximum(ix.inf_tput, 1e-12)
    order = np.lexsort((score, prov[ix.inf_pool], ix.inf_unit))
    us, ps = ix.inf_unit[order], prov[ix.inf_pool[order]]
    head = np.r_[True, (us[1:] != us[:-1]) | (ps[1:] != ps[:-1])]
    first = np.flatnonzero(head)
    rank = np.arange(order.size) - first[np.cumsum(head) - 1]
    keep = np.zeros(ix.inf_pool.size, dtype=bool)
    keep[order[rank < per_provider]] = True
    return keep


def _coarse(ix: FleetIndex, model: Model, per_provider: int,
            seed: np.ndarray | None = None) -> _Coarse:
    T = ix.T
    n = model.A.shape[1]
    m = model.A.shape[0]
    keep_mask = np.ones(n, dtype=bool)
    x = model.cols["x"]
    keep_mask[x.start:x.stop] = (np.repeat(_restricted_pairs(ix, model, per_provider), T)
                                 if per_provider > 0 else False)
    if seed is not None:
        keep_mask[x.start:x.stop] |= seed
    b = model.cols["b"]
    keep_mask[b.start:b.stop] = False
    keep = np.flatnonzero(keep_mask)
    # batch classes: jobs with identical eligible pools
    J = len(ix.fleet.batch)
    classes: dict[bytes, int] = {}
    job_class = np.zeros(J, dtype=np.int64)
    order = np.argsort(ix.batch_job, kind="stable")
    bounds = np.searchsorted(ix.batch_job[order], np.arange(J + 1))
    for j in range(J):
        key = np.sort(ix.batch_pool[order[bounds[j]:bounds[j + 1]]]).tobytes()
        job_class[j] = classes.setdefault(key, len(classes))
    nclass = len(classes)
    # b columns: job, pool, period
    jobs = ix.fleet.batch
    ws = np.array([jb.window_start for jb in jobs], dtype=np.int64)
    we = np.array([jb.window_end for jb in jobs], dtype=np.int64)
    span = (we - ws + 1)[ix.batch_job] if ix.batch_job.size else np.zeros(0, dtype=np.int64)
    pair = np.repeat(np.arange(ix.batch_job.size), span)
    k = np.arange(pair.size) - np.repeat(np.cumsum(span) - span, span)
    bjob = ix.batch_job[pair]
    bt = ws[bjob] + k if pair.size else np.zeros(0, dtype=np.int64)
    bpool = ix.batch_pool[pair]
    P = len(ix.pools)
    ckey = (job_class[bjob] * P + bpool) * T + bt
    ukeys, first, b_B = np.unique(ckey, return_index=True, return_inverse=True)
    B_rep = b.start + first
    B_class = ukeys // (P * T)
    B_t = ukeys % T
    # h columns: job x window period
    hspan = we - ws + 1
    h_job = np.repeat(np.arange(J), hspan)
    h_t = (np.arange(h_job.size) - np.repeat(np.cumsum(hspan) - hspan, hspan)) + ws[h_job]
    # assemble: kept columns, B columns, h columns; new rows class*T + t after m
    A = model.A
    brow = model.rows["batch"]
    Ak = A[:, keep]
    Ab = A[:, B_rep].tocoo()
    in_batch = (Ab.row >= brow.start) & (Ab.row < brow.stop)
    coef = np.zeros(B_rep.size)
    coef[Ab.col[in_batch]] = Ab.data[in_batch]
    nb_rows = Ab.row[~in_batch]
    nb_cols = Ab.col[~in_batch]
    nb_vals = Ab.data[~in_batch]
    cp_rows = m + B_class * T + B_t
    AB = sp.csc_matrix((np.concatenate([nb_vals, coef]),
                        (np.concatenate([nb_rows, cp_rows]),
                         np.concatenate([nb_cols, np.arange(B_rep.size)]))),
                       shape=(m + nclass * T, B_rep.size))
    nh = h_job.size
    AH = sp.csc_matrix((np.concatenate([np.ones(nh), -np.ones(nh)]),
                        (np.concatenate([brow.start + h_job, m + job_class[h_job] * T + h_t]),
                         np.concatenate([np.arange(nh), np.arange(nh)]))),
                       shape=(m + nclass * T, nh))
    Ak.resize((m + nclass * T, keep.size))
    Ac = sp.hstack([Ak, AB, AH], format="csc")
    obj = model.objective
    cost = np.concatenate([obj[keep], obj[B_rep], np.zeros(nh)])
    lo = np.concatenate([model.col_lo[keep], np.zeros(B_rep.size + nh)])
    hi = np.concatenate([model.col_hi[keep], np.full(B_rep.size + nh, np.inf)])
    rlo = np.concatenate([model.row_lo, np.zeros(nclass * T)])
    rhi = np.concatenate([model.row_hi, np.zeros(nclass * T)])
    return _Coarse(Ac, cost, lo, hi, rlo, rhi, keep, B_rep, B_class, B_t, h_job, h_t,
                   job_class, b_B)


def _expand(ix: FleetIndex, model: Model, co: _Coarse, xc: FloatArray) -> FloatArray:
    """A full-model column vector from a coarse solution (batch disaggregated)."""
    x = np.zeros(model.A.shape[1])
    x[co.keep] = xc[:co.nk]
    Bv = xc[co.nk:co.nk + co.B_rep.size]
    nbh = co.nk + co.B_rep.size + co.h_job.size
    hv = np.maximum(xc[co.nk + co.B_rep.size:nbh], 0.0)
    x[co.extra] = xc[nbh:nbh + co.extra.size]
    T = ix.T
    nclass = int(co.job_class.max(initial=-1)) + 1
    tot = np.zeros(nclass * T)
    np.add.at(tot, co.job_class[co.h_job] * T + co.h_t, hv)
    h_of = np.zeros(len(ix.fleet.batch) * T)
    h_of[co.h_job * T + co.h_t] = hv
    b = model.cols["b"]
    # job and period of each b column, recovered from its B column and job
    bjob = _batch_job_of_b(ix, model)
    bt = b.period
    share = h_of[bjob * T + bt] / np.maximum(tot[co.job_class[bjob] * T + bt], 1e-300)
    share = np.where(tot[co.job_class[bjob] * T + bt] > 0, share, 0.0)
    x[b.start:b.stop] = Bv[co.b_B] * share
    return x


def _batch_job_of_b(ix: FleetIndex, model: Model) -> IntArray:
    jobs = ix.fleet.batch
    ws = np.array([jb.window_start for jb in jobs], dtype=np.int64)
    we = np.array([jb.window_end for jb in jobs], dtype=np.int64)
    span = (we - ws + 1)[ix.batch_job] if ix.batch_job.size else np.zeros(0, dtype=np.int64)
    out: IntArray = ix.batch_job[np.repeat(np.arange(ix.batch_job.size), span)]
    return out


# --------------------------------------------------------------- period LPs
def _periods(model: Model) -> tuple[IntArray, IntArray]:
    """Period of each column and row (-1: linking)."""
    cp = np.full(model.A.shape[1], -1, dtype=np.int64)
    for name, blk in model.cols.items():
        if name not in LINK_COLS and blk.size:
            cp[blk.start:blk.stop] = blk.period
    rp = np.full(model.A.shape[0], -1, dtype=np.int64)
    for name, blk in model.rows.items():
        if name not in LINK_ROWS:
            rp[blk.start:blk.stop] = blk.period
    return cp, rp


def _solve_periods(ix: FleetIndex, model: Model, x: FloatArray, options: SolveOptions,
                   deadline: float | None) -> tuple[FloatArray, FloatArray, bool]:
    """Fill the period columns of ``x`` (linking columns fixed); row duals of period rows."""
    cp, rp = _periods(model)
    link = np.flatnonzero(cp < 0)
    shift = model.A[:, link] @ x[link]
    dual = np.zeros(model.A.shape[0])
    scale = objective_scale(model.objective[cp >= 0])
    obj = model.objective
    basis = None
    shape: tuple[int, int] | None = None
    A = model.A
    ok = True
    for t in range(ix.T):
        cs = np.flatnonzero(cp == t)
        rs = np.flatnonzero(rp == t)
        sub = A[:, cs].tocsr()[rs].tocsc()
        left = None if deadline is None else deadline - time.perf_counter()
        h = _lp_highs(options, left)
        _pass_lp(h, sub, obj[cs], model.col_lo[cs], model.col_hi[cs],
                 model.row_lo[rs] - shift[rs], model.row_hi[rs] - shift[rs], scale)
        if basis is not None and shape == sub.shape:
            h.setBasis(basis)
        h.run()
        if not _optimal(h):  # keep the master's values for this period (feasible)
            ok = False
            if deadline is not None and time.perf_counter() >= deadline:
                break
            continue
        sol = h.getSolution()
        x[cs] = np.asarray(sol.col_value)
        dual[rs] = np.asarray(sol.row_dual) * scale
        basis, shape = h.getBasis(), sub.shape
    return x, dual, ok


# ------------------------------------------------------------- lower bound
def _implied_upper(ix: FleetIndex, model: Model) -> FloatArray:
    """Column upper bounds implied by capacity (every feasible plan respects them)."""
    hi = model.col_hi.copy()
    cap = ix.capacity.ravel()
    U = model.U.tocsc()
    n = U.shape[1]
    cnt = np.diff(U.indptr)
    has = np.flatnonzero(cnt > 0)
    ratio = np.where(U.data > 0, cap[U.indices] / np.maximum(U.data, 1e-300), np.inf)
    if has.size:
        mins = np.minimum.reduceat(ratio, U.indptr[has])
        hi[has] = np.minimum(hi[has], mins)
    del n
    T = ix.T
    use = model.cols["use"]
    hi[use.start:use.stop] = np.minimum(hi[use.start:use.stop], cap)
    covered = np.flatnonzero(ix.contract_of_pool >= 0)
    ccap = ix.capacity[covered].ravel() if covered.size else np.zeros(0)
    for name in ("cov", "over"):
        blk = model.cols[name]
        if blk.size == covered.size * T:
            hi[blk.start:blk.stop] = np.minimum(hi[blk.start:blk.stop], ccap)
    return hi


def lagrangian_bound(ix: FleetIndex, model: Model, dual: FloatArray) -> float:
    """A valid lower bound on the model's optimum from row prices of the period rows.

    Linking rows (training, batch) take the best multiplier given the others; every
    row price is clipped to the sign that keeps its term finite."""
    A = model.A
    obj = model.objective
    pi = dual.copy()
    link_rows = np.concatenate([np.arange(model.rows[r].start, model.rows[r].stop)
                                for r in LINK_ROWS if r in model.rows])
    pi[link_rows] = 0.0
    pi = _clip(pi, model.row_lo, model.row_hi)
    d0 = obj - A.T @ pi
    if link_rows.size:
        L = A[link_rows].tocsr()
        nz = np.diff(L.indptr) > 0
        ratio = d0[L.indices] / np.where(L.data != 0, L.data, 1.0)
        lam = np.zeros(link_rows.size)
        starts = L.indptr[:-1][nz]
        if starts.size:
            lam[nz] = np.minimum.reduceat(ratio, starts)
        pi[link_rows] = lam
        pi = _clip(pi, model.row_lo, model.row_hi)
    d = obj - A.T @ pi
    hi = _implied_upper(ix, model)
    lo = model.col_lo
    col_term = np.where(d >= 0, d * np.where(np.isfinite(lo), lo, 0.0), 0.0)
    neg = d < 0
    if (neg & ~np.isfinite(hi)).any() or ((d[~neg] > 0).any() and \
            not np.isfinite(lo[~neg][d[~neg] > 0]).all()):
        return -np.inf
    col_term = np.where(neg, d * np.where(np.isfinite(hi), hi, 0.0), col_term)
    row_term = np.where(pi > 0, pi * np.where(np.isfinite(model.row_lo), model.row_lo, 0.0),
                        pi * np.where(np.isfinite(model.row_hi), model.row_hi, 0.0))
    return float(col_term.sum() + row_term.sum() + model.offset)


def _clip(pi: FloatArray, lo: FloatArray, hi: FloatArray) -> FloatArray:
    """Row prices whose term min(pi * r) over r in [lo, hi] is finite."""
    out = pi.copy()
    out[(out > 0) & ~np.isfinite(lo)] = 0.0
    out[(out < 0) & ~np.isfinite(hi)] = 0.0
    return out


# -------------------------------------------------------------------- driver
CG_PER_UNIT_PERIOD = 3
"""Columns added per demand unit and period in each column-generation round."""
DIVE_ROUNDS = 20
"""Master re-solves while fixing training; then the rest is rounded at once."""
DIVE_SHARE = 0.2
"""Share of the unfixed training runs fixed per dive round."""
DIVE_MIN_SECONDS = 10.0
"""Below this much time left, the dive rounds the rest at once."""
MIP_ROOT_FACTOR = 4.0
"""The master's branch-and-bound runs only with this many first-master solve times left."""
PERIOD_RESERVE = 0.15
"""Share of the time limit kept for the period LPs after the master's branch-and-bound."""
CG_RESERVE = 0.25
"""Share of the time limit column generation leaves for the dive and the period LPs."""
FEASIBILITY_TOL = 1e-6
"""Largest relative violation accepted in the assembled plan (else the path fails)."""
CG_STOP = 0.002
"""Column generation stops when the master is within this of the Lagrangian bound."""
SEED_TOL = 1e-9
"""Inference pairs above this in the seed period LPs start in the master."""


def _price(ix: FleetIndex, model: Model, co: _Coarse, pi: FloatArray,
           in_master: np.ndarray) -> IntArray:
    """Inference columns with negative reduced cost at ``pi``, the best few per unit and
    period (full-model column indices)."""
    x = model.cols["x"]
    T = ix.T
    d = model.objective[x.start:x.stop] - model.A[:, x.start:x.stop].T @ pi
    scale = np.maximum(np.abs(model.objective[x.start:x.stop]), 1.0)
    cand = np.flatnonzero((d < -1e-7 * scale) & ~in_master[x.start:x.stop])
    if not cand.size:
        return cand
    group = ix.inf_unit[cand // T] * T + cand % T
    order = np.lexsort((d[cand], group))
    g = group[order]
    head = np.r_[True, g[1:] != g[:-1]]
    first = np.flatnonzero(head)
    rank = np.arange(g.size) - first[np.cumsum(head) - 1]
    out: IntArray = x.start + cand[order[rank < CG_PER_UNIT_PERIOD]]
    return np.sort(out)


def _add_columns(h: Any, model: Model, co: _Coarse, cols: IntArray, scale: float) -> _Coarse:
    sub = model.A[:, cols].tocsc()
    h.addCols(int(cols.size), model.objective[cols] / scale, model.col_lo[cols],
              model.col_hi[cols], int(sub.nnz), sub.indptr[:-1].astype(np.int32),
              sub.indices.astype(np.int32), sub.data.astype(np.float64))
    co.extra = np.concatenate([co.extra, cols])
    co.cost = np.concatenate([co.cost, model.objective[cols]])
    return co


def solve_decomposed(ix: FleetIndex, model: Model, options: SolveOptions,
                     info: DecomposeInfo | None = None) -> tuple[Solution, Solution]:
    """(bound, plan): the bound's objective is the Lagrangian lower bound."""
    info = info or DecomposeInfo()
    t0 = time.perf_counter()
    deadline = None if options.time_limit_s is None else t0 + options.time_limit_s
    n, m = model.A.shape[1], model.A.shape[0]

    def left() -> float | None:
        return None if deadline is None else deadline - time.perf_counter()

    # seed: the inference pairs the period LPs use with training and batch left out
    lower, seed = -np.inf, None
    ts = time.perf_counter()
    x0, dual0, ok0 = _solve_periods(ix, model, np.zeros(n), options, deadline)
    if ok0:
        xb = model.cols["x"]
        seed = x0[xb.start:xb.stop] > SEED_TOL
        lower = lagrangian_bound(ix, model, dual0)
        info.steps.append(f"{time.perf_counter() - t0:.1f}s seed period LPs "
                          f"({time.perf_counter() - ts:.1f}s) {int(seed.sum())} pairs, "
                          f"bound {lower:.6g}")
        log.info("decomposition: %s", info.steps[-1])
    co = _coarse(ix, model, 0 if seed is not None else KEEP_PER_PROVIDER, seed)
    scale = objective_scale(co.cost)
    h = _lp_highs(options, left())
    _pass_lp(h, co.A, co.cost, co.lo, co.hi, co.rlo, co.rhi, scale)
    in_master = np.zeros(n, dtype=bool)
    in_master[co.keep] = True
    info.coarse_columns = co.A.shape[1] + co.extra.size
    first_solve = last_round = 0.0
    while True:
        tl = left()
        if tl is not None:
            h.setOptionValue("time_limit", h.getRunTime() + max(tl, 1.0))
        t_round = time.perf_counter()
        h.run()
        last_round = time.perf_counter() - t_round
        if not first_solve:
            first_solve = time.perf_counter() - t0
        if not _optimal(h):
            return _failed(n, t0, f"coarse LP ({h.modelStatusToString(h.getModelStatus())})")
        master = float(h.getInfo().objective_function_value) * scale + model.offset
        pi = np.asarray(h.getSolution().row_dual)[:m] * scale
        lower = max(lower, lagrangian_bound(ix, model, pi))
        new = _price(ix, model, co, pi, in_master)
        info.steps.append(f"{time.perf_counter() - t0:.1f}s master {master:.6g} "
                          f"bound {lower:.6g} +{new.size}")
        log.info("decomposition: %s", info.steps[-1])
        if not new.size or master - lower <= CG_STOP * abs(master):
            break
        rest = left()
        if rest is not None and rest - last_round < CG_RESERVE * (options.time_limit_s
                                                                       or 0.0):
            break  # another round would eat the time the dive and period LPs need
        in_master[new] = True
        co = _add_columns(h, model, co, new, scale)
    info.coarse_seconds = time.perf_counter() - t0
    y = model.cols["y"]
    ycols = co.position(np.arange(y.start, y.stop)).astype(np.int32)
    t1 = time.perf_counter()
    vals = _dive(h, ix, model, ycols, left, info)
    if vals is None:
        return _failed(n, t0, "coarse LP while fixing training")
    xc = np.asarray(h.getSolution().col_value)
    info.steps.append(f"{time.perf_counter() - t0:.1f}s dive "
                      f"{float(co.cost @ xc) + model.offset:.6g}")
    tl = left()
    reserve = PERIOD_RESERVE * (options.time_limit_s or 0.0)
    # HiGHS's branch-and-bound re-solves the root from scratch and does not stop
    # inside it: only when the master is quick compared with the time left
    if ycols.size and (tl is None or tl - reserve > MIP_ROOT_FACTOR * first_solve):
        vals, xc = _master_mip(h, co, ycols, vals, xc, None if tl is None else tl - reserve,
                               options.gap, left, info)
    info.fixed_seconds = time.perf_counter() - t1
    info.steps.append(f"{time.perf_counter() - t0:.1f}s master with training fixed "
                      f"{float(co.cost @ xc) + model.offset:.6g}")
    x = _expand(ix, model, co, xc)
    x[y.start:y.stop] = vals
    t2 = time.perf_counter()
    x, dual, ok = _solve_periods(ix, model, x, options, deadline)
    info.period_seconds = time.perf_counter() - t2
    info.steps.append(f"{time.perf_counter() - t0:.1f}s period LPs "
                      f"{'all solved' if ok else 'stopped by the time limit'}")
    t3 = time.perf_counter()
    if ok:
        lower = max(lower, lagrangian_bound(ix, model, dual))
    info.bound_seconds = time.perf_counter() - t3
    if violation(model, x) > FEASIBILITY_TOL:
        return _failed(n, t0, "assembled plan (constraint violated)")
    upper = float(model.objective @ x + model.offset)
    info.upper, info.lower = upper, lower
    gap = max(upper - lower, 0.0) / max(abs(upper), 1.0) if np.isfinite(lower) else None
    seconds = time.perf_counter() - t0
    status = "optimal" if gap is not None and gap <= options.gap else "feasible"
    bound = Solution("optimal" if np.isfinite(lower) else "error", np.zeros(0),
                     lower if np.isfinite(lower) else None, None, None, seconds)
    return bound, Solution(status, x, upper, lower if np.isfinite(lower) else None, gap,
                           seconds)


def _dive(h: Any, ix: FleetIndex, model: Model, ycols: Any,
          left: Callable[[], float | None], info: DecomposeInfo) -> FloatArray | None:
    """Fix training options by diving on the master LP (warm re-solves): runs the LP
    already places whole are fixed there, else the most confident quarter of the rest
    take their favourite option that fits; the LP is re-solved after each round.
    Returns the 0/1 values, with the master solved at them, or None."""
    y = model.cols["y"]
    cost = model.objective[y.start:y.stop]
    R = len(ix.fleet.training)
    gang = np.array([r.gang_chips for r in ix.fleet.training], dtype=np.float64)
    order = np.argsort(ix.train_run, kind="stable")
    bounds = np.searchsorted(ix.train_run[order], np.arange(R + 1))
    lo, hi = np.zeros(ycols.size), np.ones(ycols.size)
    done = np.zeros(R, dtype=bool)
    room = ix.capacity.copy()
    rounds = 0
    while not done.all():
        yv = np.asarray(h.getSolution().col_value)[ycols]
        best = np.array([yv[order[bounds[r]:bounds[r + 1]]].max(initial=0.0)
                         for r in range(R)])
        total = np.bincount(ix.train_run, weights=yv, minlength=R)
        whole = ~done & ((best >= 1 - 1e-6) | (total <= 1e-6))
        tl = left()
        if rounds >= DIVE_ROUNDS or (tl is not None and tl < DIVE_MIN_SECONDS):
            pick = ~done  # out of rounds or time: round the rest at once
        elif whole.any():
            pick = whole
        else:  # the runs with the fewest options left first, then the most confident
            free = np.flatnonzero(~done)
            k = max(1, int(np.ceil(DIVE_SHARE * free.size)))
            fits = _fitting(ix, room, gang, free, order, bounds)
            pick = np.zeros(R, dtype=bool)
            pick[free[np.lexsort((-best[free], fits))[:k]]] = True
        chosen = np.flatnonzero(pick)
        fits = _fitting(ix, room, gang, chosen, order, bounds)
        for r in chosen[np.lexsort((-best[chosen], fits))]:
            opts = order[bounds[r]:bounds[r + 1]]
            done[r] = True
            hi[opts] = 0.0
            if total[r] <= 1e-6:
                continue  # the LP leaves it unscheduled
            liked = yv[opts] > 1e-6
            for o in opts[np.lexsort((cost[opts], -np.where(liked, yv[opts], 0.0)))]:
                p, s0, d = int(ix.train_pool[o]), int(ix.train_start[o]), int(ix.train_duration[o])
                need = np.full(d, gang[r])
                need[-1] *= ix.train_last_fraction[o]
                if (room[p, s0:s0 + d] >= need - 1e-9).all():
                    room[p, s0:s0 + d] -= need
                    lo[o] = hi[o] = 1.0
                    break
        h.changeColsBounds(ycols.size, ycols, lo, hi)
        tl = left()
        if tl is not None:
            h.setOptionValue("time_limit", h.getRunTime() + max(tl, 1.0))
        h.run()
        rounds += 1
        if not _optimal(h):
            return None
        info.steps.append(f"dive {rounds}: {int(done.sum())}/{R} runs fixed")
    return lo


def _fitting(ix: FleetIndex, room: FloatArray, gang: FloatArray, runs: IntArray,
             order: IntArray, bounds: IntArray) -> IntArray:
    """Number of options of each run that still fit the chips left by placed runs."""
    out = np.zeros(runs.size, dtype=np.int64)
    for i, r in enumerate(runs):
        for o in order[bounds[r]:bounds[r + 1]]:
            p, s0, d = int(ix.train_pool[o]), int(ix.train_start[o]), int(ix.train_duration[o])
            need = np.full(d, gang[r])
            need[-1] *= ix.train_last_fraction[o]
            out[i] += bool((room[p, s0:s0 + d] >= need - 1e-9).all())
    return out


def _master_mip(h: Any, co: _Coarse, ycols: Any, vals: FloatArray, xc: FloatArray,
                seconds: float | None, gap: float, left: Callable[[], float | None],
                info: DecomposeInfo) -> tuple[FloatArray, FloatArray]:
    """A short branch-and-bound on the master for the training options, from the dive's
    solution; returns the better of the two (values, master solution)."""
    ones = np.ones(ycols.size)
    h.changeColsBounds(ycols.size, ycols, 0.0 * ones, ones)
    h.changeColsIntegrality(ycols.size, ycols, np.ones(ycols.size, dtype=np.uint8))
    h.setOptionValue("mip_rel_gap", float(gap) / 2)
    if seconds is not None:
        h.setOptionValue("time_limit", h.getRunTime() + max(seconds, 1.0))
    start = highspy.HighsSolution()
    start.col_value = xc
    start.value_valid = True
    h.setSolution(start)
    h.run()
    got = np.asarray(h.getSolution().col_value)
    h.changeColsIntegrality(ycols.size, ycols, np.zeros(ycols.size, dtype=np.uint8))
    better = got.size == xc.size and float(co.cost @ got) < float(co.cost @ xc) - 1e-9
    info.steps.append(f"master MIP: {h.modelStatusToString(h.getModelStatus())}, "
                      f"{'improved' if better else 'no improvement'}")
    if not better or not _fixed_run(h, ycols, np.round(got[ycols]), left()):
        h.changeColsBounds(ycols.size, ycols, vals, vals)  # keep the dive's solution
        return vals, xc
    return np.round(got[ycols]), np.asarray(h.getSolution().col_value)


def violation(model: Model, x: FloatArray) -> float:
    """Largest violation of a row or column bound (rows relative to 1 + sum |a_ij x_j|)."""
    r = model.A @ x
    size = 1.0 + abs(model.A) @ np.abs(x)
    rows = np.maximum(model.row_lo - r, 0.0) + np.maximum(r - model.row_hi, 0.0)
    cols = np.maximum(model.col_lo - x, 0.0) + np.maximum(x - model.col_hi, 0.0)
    return float(max((rows / size).max(initial=0.0), cols.max(initial=0.0)))


def _fixed_run(h: Any, cols: Any, vals: FloatArray, left: float | None) -> bool:
    h.changeColsBounds(cols.size, cols, vals, vals)
    if left is not None:
        h.setOptionValue("time_limit", h.getRunTime() + max(left, 1.0))
    h.run()
    return _optimal(h)


def _failed(n: int, t0: float, what: str) -> tuple[Solution, Solution]:
    log.warning("decomposition: %s did not solve", what)
    s = Solution("time_limit_no_solution", np.zeros(n), None, None, None,
                 time.perf_counter() - t0)
    return s, s
