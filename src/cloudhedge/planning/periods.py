"""The period side of the decomposition (:mod:`cloudhedge.planning.decompose`).

- :func:`coarse_model`: the model with batch aggregated exactly by class (jobs with
  the same eligible pools), and :func:`expand` back to the full model's columns;
- :func:`period_of`: which columns and rows belong to a period, which link periods;
- :class:`PeriodLPs`: one warm HiGHS LP per period, ``Q_t(s)`` with its duals, and
  :meth:`PeriodLPs.constants`, the cuts one period's duals give every period.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from cloudhedge.planning.build import Model
from cloudhedge.planning.index import FleetIndex, FloatArray, IntArray
from cloudhedge.planning.lagrangian import LINK_ROWS, implied_upper
from cloudhedge.planning.solve import SolveOptions, _new_highs, objective_scale

LINK_COLS = ("y", "z", "b", "ub")
"""Column blocks that link periods: training options, unscheduled runs, batch, unmet batch."""
ELASTIC_FACTOR = 100.0
"""Price of a chip of elastic slack on a cap or budget row, in dearest inference chips."""
SLACK_TOL = 1e-6
"""Elastic slack (chips) above which a point is not a plan."""


# ----------------------------------------------------------------- HiGHS glue
def lp_highs(options: SolveOptions, time_limit: float | None) -> Any:
    h = _new_highs()
    h.setOptionValue("output_flag", options.verbose)
    h.setOptionValue("log_to_console", options.verbose)
    if options.threads is not None:  # HiGHS fixes its thread pool once per process
        h.setOptionValue("threads", int(options.threads))
    h.setOptionValue("random_seed", 0)
    if time_limit is not None:
        h.setOptionValue("time_limit", max(float(time_limit), 1.0))
    return h


def pass_lp(h: Any, A: sp.csc_matrix, cost: FloatArray, lo: FloatArray, hi: FloatArray,
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


def optimal(h: Any) -> bool:
    return bool(h.getModelStatus() == highspy.HighsModelStatus.kOptimal)


# ------------------------------------------------------------- coarse model
@dataclass
class Coarse:
    A: sp.csc_matrix
    cost: FloatArray
    lo: FloatArray
    hi: FloatArray
    rlo: FloatArray
    rhi: FloatArray
    keep: IntArray  # full-model column of each kept column (the first len(keep))
    B_rep: IntArray  # a representative b column per B column (-1: none, fixed at 0)
    B_t: IntArray  # period of each B column
    B_class: IntArray
    B_pool: IntArray
    B_coef: FloatArray  # reference chip-hours done per chip-hour
    h_job: IntArray
    h_t: IntArray
    job_class: IntArray
    b_B: IntArray  # B column of each b column (relative to the b block)
    b_job: IntArray  # batch job of each b column
    batch_in_master: bool = True  # else batch classes' columns are in the period LPs

    @property
    def nk(self) -> int:
        return int(self.keep.size)

    def position(self, full_col: IntArray) -> IntArray:
        """Coarse column of kept full-model columns."""
        out: IntArray = np.searchsorted(self.keep, full_col)
        return out


def coarse_model(ix: FleetIndex, model: Model) -> Coarse:
    """The model with batch aggregated by class (rows ``m + class * T + t`` tie each
    class's chip-hours in a period to its jobs' ``h``)."""
    T = ix.T
    n = model.A.shape[1]
    m = model.A.shape[0]
    keep_mask = np.ones(n, dtype=bool)
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
    rkeys, first, b_real = np.unique(ckey, return_index=True, return_inverse=True)
    # every (class, pool) gets a column in every period, the absent ones fixed at 0:
    # then all period LPs share one column layout and a basis carries over
    ukeys = (np.unique(rkeys // T)[:, None] * T + np.arange(T)[None, :]).ravel()
    slot = np.searchsorted(ukeys, rkeys)
    b_B = slot[b_real]
    nB = ukeys.size
    B_rep = np.full(nB, -1, dtype=np.int64)
    B_rep[slot] = b.start + first
    B_class = ukeys // (P * T)
    B_pool = (ukeys // T) % P
    B_t = ukeys % T
    # h columns: job x window period
    hspan = we - ws + 1
    h_job = np.repeat(np.arange(J), hspan)
    h_t = (np.arange(h_job.size) - np.repeat(np.cumsum(hspan) - hspan, hspan)) + ws[h_job]
    # assemble: kept columns, B columns, h columns; new rows class*T + t after m
    A = model.A
    brow = model.rows["batch"]
    Ak = A[:, keep]
    Ab = A[:, b.start + first].tocoo()
    in_batch = (Ab.row >= brow.start) & (Ab.row < brow.stop)
    coef = np.ones(nB)  # chip-hours done per chip-hour (1 for the absent ones)
    coef[slot[Ab.col[in_batch]]] = Ab.data[in_batch]
    pad = np.flatnonzero(B_rep < 0)
    pu = model.rows["pool_use"]
    AB = sp.csc_matrix(
        (np.concatenate([Ab.data[~in_batch], np.ones(pad.size), coef]),
         (np.concatenate([Ab.row[~in_batch], pu.start + B_pool[pad] * T + B_t[pad],
                          m + B_class * T + B_t]),
          np.concatenate([slot[Ab.col[~in_batch]], pad, np.arange(nB)]))),
        shape=(m + nclass * T, nB))
    nh = h_job.size
    AH = sp.csc_matrix((np.concatenate([np.ones(nh), -np.ones(nh)]),
                        (np.concatenate([brow.start + h_job, m + job_class[h_job] * T + h_t]),
                         np.concatenate([np.arange(nh), np.arange(nh)]))),
                       shape=(m + nclass * T, nh))
    Ak.resize((m + nclass * T, keep.size))
    Ac = sp.hstack([Ak, AB, AH], format="csc")
    obj = model.objective
    real = B_rep >= 0
    cost = np.concatenate([obj[keep], np.where(real, obj[np.maximum(B_rep, 0)], 0.0),
                           np.zeros(nh)])
    lo = np.concatenate([model.col_lo[keep], np.zeros(nB + nh)])
    hi = np.concatenate([model.col_hi[keep], np.where(real, np.inf, 0.0),
                         np.full(nh, np.inf)])
    rlo = np.concatenate([model.row_lo, np.zeros(nclass * T)])
    rhi = np.concatenate([model.row_hi, np.zeros(nclass * T)])
    return Coarse(Ac, cost, lo, hi, rlo, rhi, keep, B_rep, B_t, B_class, B_pool, coef,
                   h_job, h_t, job_class, b_B, bjob)


def expand(ix: FleetIndex, model: Model, co: Coarse, xc: FloatArray) -> FloatArray:
    """A full-model column vector from a coarse solution (batch disaggregated)."""
    x = np.zeros(model.A.shape[1])
    x[co.keep] = xc[:co.nk]
    Bv = xc[co.nk:co.nk + co.B_rep.size]
    hv = np.maximum(xc[co.nk + co.B_rep.size:co.nk + co.B_rep.size + co.h_job.size], 0.0)
    T = ix.T
    nclass = int(co.job_class.max(initial=-1)) + 1
    tot = np.zeros(nclass * T)
    np.add.at(tot, co.job_class[co.h_job] * T + co.h_t, hv)
    h_of = np.zeros(len(ix.fleet.batch) * T)
    h_of[co.h_job * T + co.h_t] = hv
    b = model.cols["b"]
    # job and period of each b column, recovered from its B column and job
    bjob = co.b_job
    bt = b.period
    share = h_of[bjob * T + bt] / np.maximum(tot[co.job_class[bjob] * T + bt], 1e-300)
    share = np.where(tot[co.job_class[bjob] * T + bt] > 0, share, 0.0)
    x[b.start:b.stop] = Bv[co.b_B] * share
    return x


# --------------------------------------------------------------- period LPs
def period_of(ix: FleetIndex, model: Model, co: Coarse) -> tuple[IntArray, IntArray]:
    """Period of each coarse column and row (-1: linking). Batch classes' columns and
    rows belong to their period; the jobs' ``h`` link periods."""
    cp = np.full(model.A.shape[1], -1, dtype=np.int64)
    for name, blk in model.cols.items():
        if name not in LINK_COLS and blk.size:
            cp[blk.start:blk.stop] = blk.period
    rp = np.full(model.A.shape[0], -1, dtype=np.int64)
    for name, blk in model.rows.items():
        if name not in LINK_ROWS:
            rp[blk.start:blk.stop] = blk.period
    nct = co.A.shape[0] - model.A.shape[0]  # class rows: m + class * T + t
    if co.batch_in_master:
        return (np.concatenate([cp[co.keep], np.full(co.B_t.size + co.h_job.size, -1)]),
                np.concatenate([rp, np.full(nct, -1)]))
    return (np.concatenate([cp[co.keep], co.B_t, np.full(co.h_job.size, -1)]),
            np.concatenate([rp, np.arange(nct, dtype=np.int64) % ix.T]))


class PeriodLPs:
    """One HiGHS LP per period, linking columns fixed: ``Q_t(s)``, the least cost of
    period ``t`` when the linking columns put ``s`` into its rows, with row duals
    (a subgradient). Each LP stays alive between calls, so re-solves start warm; the
    periods are solved in parallel threads (HiGHS releases the GIL while it runs).

    Rows the linking columns can make infeasible (caps, per-period budgets) get an
    elastic slack at :data:`ELASTIC_FACTOR` times the dearest chip: the value is then
    a lower estimate of the true one everywhere (so every cut stays valid), and a
    point with slack in use is not counted as a plan."""

    def __init__(self, ix: FleetIndex, model: Model, co: Coarse,
                 options: SolveOptions) -> None:
        cp, rp = period_of(ix, model, co)
        self.co, self.options, self.T = co, options, ix.T
        self.cols = [np.flatnonzero(cp == t) for t in range(ix.T)]
        self.rows = [np.flatnonzero(rp == t) for t in range(ix.T)]
        self.scale = objective_scale(co.cost[cp >= 0])
        m = model.A.shape[0]
        soft = np.zeros(co.A.shape[0], dtype=bool)
        soft[m:] = True  # batch class rows: the master's h may ask more than fits
        for name, blk in model.rows.items():
            if name.startswith(("cap:", "budget")) and blk.period.size == blk.size:
                soft[blk.start:blk.stop] = True
        self.soft = [np.flatnonzero(soft[r]) for r in self.rows]
        xb = model.cols["x"]
        ub = model.cols["ub"]
        # a chip of slack costs far more than any chip; a chip-hour of batch class
        # slack far more than leaving it undone
        pen = np.full(co.A.shape[0], ELASTIC_FACTOR * float(
            np.abs(model.objective[xb.start:xb.stop]).max(initial=1.0)))
        pen[m:] = ELASTIC_FACTOR * max(
            float(np.abs(model.objective[ub.start:ub.stop]).max(initial=1.0)),
            float((co.cost[co.nk:co.nk + co.B_rep.size] / co.B_coef).max(initial=1.0)))
        self.penalty = [pen[r][k] for r, k in zip(self.rows, self.soft, strict=True)]
        full_hi = implied_upper(ix, model)
        self.hi = np.concatenate([full_hi[co.keep],
                                  np.where(co.B_rep >= 0, full_hi[np.maximum(co.B_rep, 0)], 0.0),
                                  np.full(co.h_job.size, np.inf)])
        self.sub: list[sp.csc_matrix | None] = [None] * ix.T
        # per period, for :meth:`constants`: sub's transpose, the finite upper
        # bounds, the columns with a finite nonzero lower bound, with an infinite
        # upper bound and with an infinite lower bound
        self._dual_side: list[tuple[sp.csr_matrix, FloatArray, IntArray, IntArray,
                                    IntArray] | None] = [None] * ix.T
        self.h: list[Any] = [None] * ix.T
        self.values = np.zeros(ix.T)
        self.duals: list[FloatArray] = [np.zeros(r.size) for r in self.rows]
        self.slack = np.zeros(ix.T)
        workers = options.threads or os.cpu_count() or 1
        self.workers = max(1, min(int(workers), ix.T))
        self.pool = ThreadPoolExecutor(self.workers)

    def _build(self, t: int, shift: FloatArray, left: float | None) -> Any:
        co, cs, rs = self.co, self.cols[t], self.rows[t]
        sub = self.sub[t] = co.A[:, cs].tocsr()[rs].tocsc()
        k = self.soft[t]
        el = sp.csc_matrix((np.concatenate([np.ones(k.size), -np.ones(k.size)]),
                            (np.concatenate([k, k]), np.arange(2 * k.size))),
                           shape=(rs.size, 2 * k.size))
        h = lp_highs(self.options, left)
        pass_lp(h, sp.hstack([sub, el], format="csc"),
                np.concatenate([co.cost[cs], np.tile(self.penalty[t], 2)]),
                np.concatenate([co.lo[cs], np.zeros(2 * k.size)]),
                np.concatenate([co.hi[cs], np.full(2 * k.size, np.inf)]),
                co.rlo[rs] - shift[rs], co.rhi[rs] - shift[rs], self.scale)
        return h

    def _solve(self, t: int, shift: FloatArray, left: float | None, start: Any) -> bool:
        """Solve period ``t`` at ``shift``, from its own last basis, or from ``start``
        (a basis of a neighbouring period) when given."""
        co, rs = self.co, self.rows[t]
        h = self.h[t]
        if h is None:
            h = self.h[t] = self._build(t, shift, left)
        else:
            h.changeRowsBounds(rs.size, np.arange(rs.size, dtype=np.int32),
                               co.rlo[rs] - shift[rs], co.rhi[rs] - shift[rs])
            if left is not None:
                h.setOptionValue("time_limit", h.getRunTime() + max(left, 1.0))
        if start is not None and len(start.col_status) == h.getNumCol() and \
                len(start.row_status) == h.getNumRow():
            h.setBasis(start)
        h.run()
        if not optimal(h):
            return False
        sol = h.getSolution()
        self.values[t] = float(h.getInfo().objective_function_value) * self.scale
        self.duals[t] = np.asarray(sol.row_dual) * self.scale
        col = np.asarray(sol.col_value)
        self.slack[t] = float(col[self.cols[t].size:].sum())
        return True

    def solve(self, shift: FloatArray, deadline: float | None, chain: bool = False) -> bool:
        """Solve every period at ``shift`` (the linking columns' row activity); True
        when all solved to optimality. With ``chain`` (and on the first call), each
        worker takes a run of consecutive periods and starts each from the basis of
        the one before: neighbouring periods look alike, so this beats a cold start
        after a large change of ``shift``."""
        chain = chain or self.h[0] is None
        runs = (np.array_split(np.arange(self.T), self.workers) if chain
                else [np.array([t]) for t in range(self.T)])

        def one(ts: IntArray) -> bool:
            prev = None
            for t in ts:
                left = None if deadline is None else deadline - time.perf_counter()
                if not self._solve(int(t), shift, left, prev):
                    return False
                prev = self.h[int(t)].getBasis() if chain else None
            return True
        return all(list(self.pool.map(one, runs)))

    def constants(self, Y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Row prices ``Y[:, k]`` of one period's rows, made valid for every period,
        and ``K[k, t]``, the constant of the cut ``theta_t + Y[:, k]'s >= K[k, t]``.

        By weak duality ``Q_t(s) >= min c'x + y'(b_t - s - A_t x)`` over the column
        bounds (upper bounds implied by capacity) for any ``y`` whose row terms are
        finite, so duals found in one period bound every other period too (their
        LPs differ mostly in demand and capacity): cut sharing. ``y`` is clipped to
        the row senses and, on elastic rows, to the slack's price; ``K`` is ``-inf``
        where a column's term would be unbounded."""
        co = self.co
        K = np.full((Y.shape[1], self.T), -np.inf)
        same = [t for t in range(self.T)
                if self.sub[t] is not None and self.rows[t].size == Y.shape[0]]
        Y = Y.copy()
        for t in same:  # one y valid in every period
            k = self.soft[t]
            Y[k] = np.clip(Y[k], -self.penalty[t][:, None], self.penalty[t][:, None])
            rlo, rhi = co.rlo[self.rows[t]][:, None], co.rhi[self.rows[t]][:, None]
            Y[((Y > 0) & ~np.isfinite(rlo)) | ((Y < 0) & ~np.isfinite(rhi))] = 0.0
        for t in same:
            rs, cs = self.rows[t], self.cols[t]
            side = self._dual_side[t]
            if side is None:  # the period's fixed parts, kept
                sub, lo, hi = self.sub[t], co.lo[cs], self.hi[cs]
                assert sub is not None
                lo_nz = np.flatnonzero(np.isfinite(lo) & (lo != 0.0))
                side = self._dual_side[t] = (
                    sub.T.tocsr(), np.where(np.isfinite(hi), hi, 0.0), lo_nz,
                    np.flatnonzero(~np.isfinite(hi)), np.flatnonzero(~np.isfinite(lo)))
            subT, hi_f, lo_nz, inf_hi, inf_lo = side
            D = co.cost[cs][:, None] - subT @ Y
            bad = (D[inf_hi] < 0).any(axis=0) | (D[inf_lo] > 0).any(axis=0)
            # min over the column bounds of D x: D hi where D < 0, D lo where D > 0
            # (lo is 0 for most columns)
            col = co.lo[cs][lo_nz] @ np.maximum(D[lo_nz], 0.0) + \
                hi_f @ np.minimum(D, 0.0, out=D)
            rlo, rhi = co.rlo[rs][:, None], co.rhi[rs][:, None]
            row = np.where(Y > 0, Y * np.where(np.isfinite(rlo), rlo, 0.0),
                           Y * np.where(np.isfinite(rhi), rhi, 0.0)).sum(axis=0)
            K[:, t] = np.where(bad, -np.inf, col + row)
        return Y, K

    def fill(self, x: FloatArray) -> None:
        """Write the period columns of the last solutions into ``x``."""
        for t, h in enumerate(self.h):
            cs = self.cols[t]
            x[cs] = np.clip(np.asarray(h.getSolution().col_value)[:cs.size],
                            self.co.lo[cs], self.co.hi[cs])

    def prices(self, weights: list[list[tuple[float, FloatArray]]], m: int) -> FloatArray:
        """Prices of the full model's ``m`` period rows: per period, a weighted sum of
        dual vectors (the batch class rows' prices are dropped)."""
        pi = np.zeros(self.co.A.shape[0])
        for t, pairs in enumerate(weights):
            for w, g in pairs:
                pi[self.rows[t]] += w * g
        return pi[:m]

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.h = [None] * self.T
