"""Period decomposition for large plans: a feasible plan and a valid lower bound.

The monolithic LP relaxation stops scaling near a million columns (2000 workloads x
300 pools x 24 periods has 3.3 M columns, 2.75 M of them inference pairs, and HiGHS
does not finish its relaxation in two minutes); from a quarter of a million columns
this path is already the faster one (500 x 100 x 24: 0.6% in 15 s against 1.0% in
120 s for the monolithic MIP). Only training and batch link the
periods; everything else separates by period once they are fixed. So this path is a
Benders decomposition:

1. **Batch aggregated exactly.** A batch column's cost and chip use do not depend on
   the job, so ``B[c, p, t]`` (chip-hours of job class ``c``, the jobs with the same
   eligible pools, on pool ``p`` in period ``t``) plus ``h[j, t]`` (reference
   chip-hours of job ``j`` done in ``t``) with ``sum_p v_p e_p B[c, p, t] = sum_{j in c}
   h[j, t]`` describe the same plans (disaggregate ``b[j, p, t] = B[c, p, t] h[j, t] /
   sum_{j' in c} h[j', t]``). For the largest models (:data:`BATCH_OUT_MIN_COLUMNS`)
   the ``B`` columns belong to the period LPs, the ``h`` to the master.
2. **Period LPs** (:class:`~cloudhedge.planning.periods.PeriodLPs`). With the
   linking columns fixed, period ``t`` is an LP over all its inference pairs whose
   least cost ``Q_t(s)`` is convex in ``s``, the linking columns' activity in its
   rows (chips they take from each pool); its row duals ``g`` give the cut
   ``Q_t(s) >= Q_t(s') - g'(s - s')``. The 24 LPs stay alive (warm re-solves) and
   run in parallel threads. With batch in the periods, each round's duals are also
   shared: they bound every other period too (weak duality), and the shared cuts
   the master breaks most join it.
3. **Master** (:class:`_Master`): training options, batch classes (or the jobs'
   work per period, kept placeable by room rows), ``r`` (the linking columns'
   activity, capacity as its bound) and per period ``theta_t`` above every cut so
   far. The first period LPs are solved at the master's point without cuts. Its
   optimum is a lower bound; each round evaluates the period LPs at a
   point between the best point so far and the master's solution (in-out
   stabilisation), which gives a plan value (with training still fractional) and new
   cuts; the master is solved by warm dual simplex, or by the interior point method
   where that is slow (:class:`_LPSolver`). This LP phase stops when the bound is
   within 0.2% of the best point, or when another round would leave the integral
   phase less than 45% of the time limit or 2.5 rounds' time.
4. **Training integral.** With a time limit, a HiGHS branch-and-bound on a copy of
   the master (training binary, its loose cuts dropped) starts in another thread
   for its bound (:class:`BackgroundBound`). Diving on the master fixes the
   training options (a run that fits nowhere moves a placed run to another of its
   options) and swaps move runs where the master's reduced costs promise a gain;
   rounds of cuts with training fixed then improve batch and inference, every round
   being a whole plan. With time left, a HiGHS branch-and-bound on the master (cuts
   included) searches better options and raises the bound; if it finds some, more
   rounds follow.
5. **Plan and bound.** The best plan is assembled (batch disaggregated, period
   columns from the period LPs) and checked against every row. The bound is the best
   of the master's LP optimum, the branch-and-bounds' dual bounds and
   :func:`lagrangian_bound` at the master's implied row prices.

Applicable when nothing but training and batch links periods: no decided contract
levels and no total budget (the planner falls back to the monolithic path then).
See docs/planning-model.md, "Large plans: period decomposition".
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from cloudhedge.planning.build import Model
from cloudhedge.planning.dive import dive, swap
from cloudhedge.planning.index import FleetIndex, FloatArray, IntArray
from cloudhedge.planning.lagrangian import LINK_ROWS, lagrangian_bound
from cloudhedge.planning.master_mip import BackgroundBound, master_mip
from cloudhedge.planning.periods import (
    LINK_COLS,
    SLACK_TOL,
    Coarse,
    PeriodLPs,
    coarse_model,
    expand,
    lp_highs,
    optimal,
    pass_lp,
)
from cloudhedge.planning.solve import Solution, SolveOptions, objective_scale

log = logging.getLogger(__name__)

DECOMPOSE_MIN_COLUMNS = 250_000
"""Models with at least this many columns are planned by decomposition (when it applies)."""


@dataclass
class DecomposeInfo:
    """What the decomposition did, for logs and benchmarks."""

    master_columns: int = 0
    lp_seconds: float = 0.0
    fixed_seconds: float = 0.0
    period_seconds: float = 0.0
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


# -------------------------------------------------------------------- driver
IN_OUT = 0.3
"""Separation point: this share of the master's solution, the rest of the best point."""
LP_SHARE = 0.55
"""Most of the time limit the LP phase (cuts with training fractional) may take: the
branch-and-bound beside the integral phase (:class:`BackgroundBound`) lifts the bound
more than the LP phase's last rounds do."""
LP_STOP = 0.002
"""The LP phase stops when the best LP point is within this of the bound."""
MAX_ROUNDS = 200
"""Most Benders rounds in each phase."""
FIXED_RESERVE = 0.05
"""Share of the time limit left unused after the last round with training fixed."""
FEASIBILITY_TOL = 1e-6
"""Largest relative violation accepted in the assembled plan (else the path fails)."""
MIP_MIN_SECONDS = 10.0
"""Time left below which the master's branch-and-bound is skipped."""
MIP_SHARE = 0.6
"""Share of the time left given to the master's branch-and-bound."""
BACKGROUND_MIN_SECONDS = 10.0
"""Time left after the LP phase below which no branch-and-bound runs beside it."""
MIP_ROOT_FACTOR = 12.0
"""The branch-and-bound runs only with this many of the slowest master LP solves left:
its root LP is solved cold and its first cut rounds ignore the time limit (at 2000
workloads x 300 pools x 24 periods they took 64 s against a slowest warm solve of 5 s)."""
BATCH_OUT_MIN_COLUMNS = 2_000_000
"""From this many model columns, batch classes move from the master to the period
LPs (a smaller master LP, at the price of the room rows and a harder cut surface)."""
ROOM_MAX_SETS = 2000
"""Most pool sets with a batch room row (unions of batch classes' pools)."""
ROOM_ROUNDS = 3
"""Master re-solves per solve with the batch room rows its solution broke."""
INTEGRAL_ROUNDS = 2.5
"""Time kept for the dive and the first plan, in LP rounds (see also LP_SHARE)."""
SHARE_CUTS = 3
"""Pooled cuts from other periods' duals added per period and round (0: no sharing)."""
FIXED_SWAP_ROUNDS = 4
"""Swap rounds (:func:`~cloudhedge.planning.dive.swap`) once the rounds with training
fixed have converged."""
CUT_TOL = 1e-5
"""A pooled cut enters the master when violated by this share of ``theta_t``."""
IPM_AFTER_SECONDS = 1.5
"""The master's LP phase moves from warm dual simplex to the interior point method
after two warm solves in a row this slow (see :class:`_LPSolver`)."""


class _Master:
    """The Benders master: training options, unscheduled runs, unmet batch, batch
    aggregated by class (or, with the classes in the period LPs, the jobs' work per
    period and room rows that keep it placeable: :meth:`_room_setup`), and per
    period ``theta_t``, the largest of the cuts
    ``theta_t >= Q_t(s') - g'(s - s')`` found so far (``s``: the linking columns'
    activity in the rows of period ``t``; ``g``: the period LP's row duals at
    ``s'``). Capacity bounds ``r`` (the linking columns' chips in each pool), so every
    master point leaves the period LPs feasible up to the elastic rows. ``theta_t``
    is at least 0 when no period column has a negative cost (else unbounded below;
    the seed's cuts bound it before the first solve)."""

    def __init__(self, ix: FleetIndex, model: Model, co: Coarse, periods: PeriodLPs,
                 options: SolveOptions) -> None:
        T = ix.T
        m = model.A.shape[0]

        def pos(name: str) -> IntArray:
            blk = model.cols[name]
            return co.position(np.arange(blk.start, blk.stop))

        self.ny = model.cols["y"].size
        self.nh = co.h_job.size
        ubb, brow = model.cols["ub"], model.rows["batch"]
        self.ub = self.ny + model.cols["z"].size + np.arange(ubb.size)
        self.need = model.row_lo[brow.start:brow.stop]
        h0 = co.nk + co.B_rep.size
        B = co.nk + np.flatnonzero(co.B_rep >= 0) if co.batch_in_master else \
            np.zeros(0, dtype=np.int64)
        self.cols = np.concatenate([pos("y"), pos("z"), pos("ub"), B,
                                    h0 + np.arange(co.h_job.size)]).astype(np.int64)
        AM = co.A[:, self.cols].tocsr()
        self.n = self.cols.size
        self.T = T
        self.shift_rows = AM
        # r: the linking columns' activity in each period row they touch (the pools'
        # chips in use by training, the batch classes' chip-hours); cuts are written
        # on r, so they stay short
        in_period = np.zeros(co.A.shape[0], dtype=bool)
        for rs in periods.rows:
            in_period[rs] = True
        R = np.flatnonzero((np.diff(self.shift_rows.indptr) > 0) & in_period)
        nr = R.size
        self.r_of_period: list[tuple[IntArray, IntArray]] = []
        for rs in periods.rows:
            local = np.flatnonzero(np.isin(rs, R))
            self.r_of_period.append((local, self.n + np.searchsorted(R, rs[local])))
        inner = np.concatenate([np.arange(model.rows[r].start, model.rows[r].stop)
                                for r in LINK_ROWS if r in model.rows]
                               + [np.arange(m, co.A.shape[0])] * co.batch_in_master)
        define = sp.hstack([self.shift_rows[R], -sp.identity(nr, format="csr")])
        A = sp.vstack([sp.hstack([AM[inner], sp.csr_matrix((inner.size, nr))]), define],
                      format="csc")
        A.resize((A.shape[0], self.n + nr + T))
        r_hi = np.full(nr, np.inf)
        pu = model.rows["pool_use"]
        on_pool = (pu.start <= R) & (pu.stop > R)
        r_hi[on_pool] = ix.capacity.ravel()[R[on_pool] - pu.start]
        self.cost = co.cost[self.cols]
        self.scale = objective_scale(self.cost)
        self.offset = model.offset
        period_cols = np.concatenate(periods.cols)
        theta_lo = self.theta_lo = \
            0.0 if (co.cost[period_cols] >= 0).all() else -np.inf
        self.h = lp_highs(options, options.time_limit_s)
        pass_lp(self.h, A, np.concatenate([self.cost, np.zeros(nr), np.ones(T)]),
                np.concatenate([co.lo[self.cols], np.full(nr, -np.inf),
                                np.full(T, theta_lo)]),
                np.concatenate([co.hi[self.cols], r_hi, np.full(T, np.inf)]),
                np.concatenate([co.rlo[inner], np.zeros(nr)]),
                np.concatenate([co.rhi[inner], np.zeros(nr)]), self.scale)
        self.R, self.r_hi = R, r_hi
        self.theta0 = self.n + nr
        self.row_cut: list[int] = []  # per row after rows0: its cut, -1 for room rows
        self.cut_period: list[int] = []
        self.cut_dual: list[FloatArray] = []
        self.rows0 = A.shape[0]
        self.room_h: list[list[IntArray]] = []
        if not co.batch_in_master:
            self._room_setup(ix, model, co)
        self.pool_y: list[FloatArray] = []
        self.pool_K: list[FloatArray] = []

    def _room_setup(self, ix: FleetIndex, model: Model, co: Coarse) -> None:
        """Batch fits beside training only if, for every set ``S`` of batch classes
        and period ``t``, the work of ``S`` is at most what the pools eligible to
        any class of ``S`` hold beyond training (Hall's condition; exact here, as a
        pool does the same reference chip-hours per chip for every class). One row
        per distinct pool set, the largest ``S`` for it; rows are added when the
        master breaks them (:meth:`add_room`), single classes from the start."""
        T, P = ix.T, len(ix.pools)
        nc = int(co.job_class.max(initial=-1)) + 1
        real = co.B_rep >= 0
        E = np.zeros((nc, P), dtype=bool)
        E[co.B_class[real], co.B_pool[real]] = True
        self.room_per_chip = np.zeros(P)
        self.room_per_chip[co.B_pool[real]] = co.B_coef[real] * ix.hours
        sets = {E[c].tobytes(): E[c] for c in range(nc)}
        todo = list(sets.values())
        while todo and len(sets) < ROOM_MAX_SETS:  # closure under union
            u = todo.pop()
            for c in range(nc):
                v = u | E[c]
                if v.tobytes() not in sets:
                    sets[v.tobytes()] = v
                    todo.append(v)
        self.room_U = np.array(list(sets.values()), dtype=bool).reshape(-1, P)
        # (u, c): classes whose pools all lie in pool set u
        self.room_S = np.asarray((E[None, :, :] <= self.room_U[:, None, :]).all(axis=2),
                                 dtype=bool)
        pu = model.rows["pool_use"]
        full = pu.start + np.arange(P * T)
        pos = np.searchsorted(self.R, full)
        ok = (pos < self.R.size) & (self.R[np.minimum(pos, self.R.size - 1)] == full)
        self.room_rcol = np.where(ok, self.n + pos, -1).reshape(P, T)
        self.room_cap = ix.capacity * self.room_per_chip[:, None]
        hcls = co.job_class[co.h_job]
        self.room_h = [[self.n - self.nh + np.flatnonzero((hcls == c) & (co.h_t == t))
                        for t in range(T)] for c in range(nc)]
        self.room_in: set[tuple[int, int]] = set()
        self._add_room([(u, t) for u in range(nc) for t in range(T)])

    def _add_room(self, pairs: list[tuple[int, int]]) -> None:
        pairs = [p for p in pairs if p not in self.room_in]
        if not pairs:
            return
        starts, idx, val, rhs = [], [], [], []
        nnz = 0
        for u, t in pairs:
            self.room_in.add((u, t))
            pools = np.flatnonzero(self.room_U[u])
            rc = self.room_rcol[pools, t]
            hc = np.concatenate([self.room_h[c][t] for c in np.flatnonzero(self.room_S[u])])
            starts.append(nnz)
            idx.append(np.concatenate([hc, rc[rc >= 0]]))
            val.append(np.concatenate([np.ones(hc.size),
                                       self.room_per_chip[pools[rc >= 0]]]))
            nnz += idx[-1].size
            rhs.append(float(self.room_cap[pools, t].sum()))
            self.row_cut.append(-1)
        self.h.addRows(len(pairs), np.full(len(pairs), -np.inf), np.asarray(rhs), nnz,
                       np.asarray(starts, dtype=np.int32),
                       np.concatenate(idx).astype(np.int32), np.concatenate(val))

    def add_room(self) -> int:
        """Add the batch room rows the master's solution breaks; returns how many."""
        if not self.room_h:
            return 0
        sol = np.asarray(self.h.getSolution().col_value)
        nc, T = len(self.room_h), self.T
        H = np.array([[sol[self.room_h[c][t]].sum() for t in range(T)] for c in range(nc)])
        r = np.where(self.room_rcol >= 0, sol[np.maximum(self.room_rcol, 0)], 0.0)
        left = self.room_cap - self.room_per_chip[:, None] * r
        viol = self.room_S.astype(float) @ H - self.room_U.astype(float) @ left
        u, t = np.nonzero(viol > 1e-6 * np.maximum(1.0, np.abs(self.room_U @ self.room_cap)))
        pairs = [(int(a), int(b)) for a, b in zip(u, t, strict=True)]
        before = len(self.room_in)
        self._add_room(pairs)
        return len(self.room_in) - before

    def unbatched(self, xm: FloatArray) -> FloatArray:
        """``xm`` with every batch job left undone."""
        out = xm.copy()
        out[self.n - self.nh:] = 0.0
        out[self.ub] = self.need
        return out

    def shift(self, xm: FloatArray) -> FloatArray:
        """Row activity of the linking columns at master point ``xm``; chips in use
        clipped to capacity (the master meets it within its tolerances only)."""
        out: FloatArray = self.shift_rows @ xm
        out[self.R] = np.minimum(out[self.R], self.r_hi)
        return out

    def add_cuts(self, periods: PeriodLPs, s: FloatArray, share: bool = False) -> None:
        """One cut per period from the period LPs just solved at ``s``; with ``share``,
        their duals also join the pool of cuts for the other periods (see
        :meth:`PeriodLPs.constants` and :meth:`separate`)."""
        cuts = []
        for t in range(self.T):
            g = periods.duals[t]
            cuts.append((t, g, periods.values[t] + float(g @ s[periods.rows[t]])))
        self._add(cuts)
        if share and len({g.size for g in periods.duals}) == 1:
            Y, K = periods.constants(np.column_stack(periods.duals))
            K[np.arange(self.T), np.arange(self.T)] = -np.inf  # own cuts are above
            self.pool_y.extend(Y.T)
            self.pool_K.extend(K)

    def separate(self, most: int) -> int:
        """Add the pooled cuts the master's current solution violates most, at most
        ``most`` per period; returns how many were added."""
        if not self.pool_y:
            return 0
        sol = np.asarray(self.h.getSolution().col_value)
        theta = sol[self.theta0:self.theta0 + self.T]
        Y = np.vstack(self.pool_y)
        K = np.vstack(self.pool_K)
        cuts = []
        for t in range(self.T):
            local, rcols = self.r_of_period[t]
            viol = K[:, t] - Y[:, local] @ sol[rcols] - theta[t]
            tol = CUT_TOL * max(abs(float(theta[t])), 1.0)
            order = np.argsort(-viol)[:most]
            for k in order[viol[order] > tol]:
                cuts.append((t, Y[k], float(K[k, t])))
                self.pool_K[k][t] = -np.inf  # in the master now
        self._add(cuts)
        return len(cuts)

    def _add(self, cuts: list[tuple[int, FloatArray, float]]) -> None:
        """Cuts ``theta_t + g'r >= rhs`` given as (t, g over period t's rows, rhs)."""
        if not cuts:
            return
        starts, idx, val, rhs = [], [], [], []
        nnz = 0
        for t, g, k in cuts:
            local, rcols = self.r_of_period[t]
            starts.append(nnz)
            idx.append(np.append(rcols, self.theta0 + t))
            val.append(np.append(g[local], 1.0))
            nnz += rcols.size + 1
            rhs.append(k)
            self.row_cut.append(len(self.cut_period))
            self.cut_period.append(t)
            self.cut_dual.append(g)
        self.h.addRows(len(cuts), np.asarray(rhs) / self.scale, np.full(len(cuts), np.inf), nnz,
                       np.asarray(starts, dtype=np.int32),
                       np.concatenate(idx).astype(np.int32),
                       np.concatenate(val) / self.scale)

    def solve(self, left: float | None) -> bool:
        """Solve the master LP (warm dual simplex after new cuts or bounds)."""
        if left is not None:
            self.h.setOptionValue("time_limit", self.h.getRunTime() + max(left, 1.0))
        self.h.run()
        for _ in range(ROOM_ROUNDS):
            if not optimal(self.h) or not self.add_room():
                break
            self.h.run()
        return optimal(self.h)

    def x(self) -> FloatArray:
        return np.asarray(self.h.getSolution().col_value)[:self.n]

    def value(self) -> float:
        return float(self.h.getInfo().objective_function_value) * self.scale + self.offset

    def weights(self) -> list[list[tuple[float, FloatArray]]]:
        """Per period, (cut dual, period duals) of every cut: the period row prices
        the master implies (at convergence, the LP's own)."""
        mu = np.asarray(self.h.getSolution().row_dual)[self.rows0:]
        out: list[list[tuple[float, FloatArray]]] = [[] for _ in range(self.T)]
        for row, w in enumerate(mu):
            k = self.row_cut[row]
            if k >= 0 and abs(w) > 1e-12:
                out[self.cut_period[k]].append((float(w), self.cut_dual[k]))
        return out


class _LPSolver:
    """Which HiGHS solver solves the master while training is fractional.

    Warm dual simplex, as long as it is quick. Where each round's cuts move the
    optimum far (11-16 k iterations, 4-5 s a solve at 2000 workloads x 300 pools x 24
    periods), the interior point method with crossover solves the master from
    scratch in 2-3 s: after two simplex solves of :data:`IPM_AFTER_SECONDS` or more
    in a row it takes over, and gives back for good after two solves in a row no
    faster than the last simplex solve. Where the
    master is quick to re-solve (0.1-0.2 s a round at 1000 x 200 x 24), the simplex
    stays. The crossover's basis warm-starts the dive's simplex afterwards."""

    def __init__(self, h: Any) -> None:
        self.h = h
        self.ipm = False
        self.done = False  # the choice is final
        self.slow = 0  # slow solves in a row
        self.simplex_s = 0.0

    def after(self, seconds: float) -> None:
        """Choose the solver for the next solve, given how long the last one took."""
        if self.done:
            return
        if self.ipm:
            self.slow = self.slow + 1 if seconds >= self.simplex_s else 0
            if self.slow >= 2:
                self.ipm, self.done = False, True
                self.h.setOptionValue("solver", "simplex")
            return
        self.slow = self.slow + 1 if seconds >= IPM_AFTER_SECONDS else 0
        if self.slow >= 2:
            self.ipm, self.simplex_s, self.slow = True, seconds, 0
            self.h.setOptionValue("solver", "ipm")

    def finish(self) -> None:
        """Back to warm simplex (the crossover's basis): from here on, small changes."""
        self.h.setOptionValue("solver", "simplex")


@dataclass
class _Best:
    """The cheapest plan met so far: its value, master point and period columns."""

    value: float = np.inf
    xm: FloatArray | None = None
    x: FloatArray | None = None


def solve_decomposed(ix: FleetIndex, model: Model, options: SolveOptions,
                     info: DecomposeInfo | None = None) -> tuple[Solution, Solution]:
    """(bound, plan): the bound's objective is the best valid lower bound found."""
    info = info or DecomposeInfo()
    t0 = time.perf_counter()
    co = coarse_model(ix, model)
    co.batch_in_master = model.A.shape[1] < BATCH_OUT_MIN_COLUMNS
    periods = PeriodLPs(ix, model, co, options)
    background: list[BackgroundBound] = []
    try:
        return _benders(ix, model, co, options, info, periods, t0, background)
    finally:
        for b in background:
            b.bound()  # stopped and joined
        periods.close()


def _benders(ix: FleetIndex, model: Model, co: Coarse, options: SolveOptions,
             info: DecomposeInfo, periods: PeriodLPs, t0: float,
             background: list[BackgroundBound]) -> tuple[Solution, Solution]:
    limit = options.time_limit_s
    deadline = None if limit is None else t0 + limit
    n, m = model.A.shape[1], model.A.shape[0]

    def left() -> float | None:
        return None if deadline is None else deadline - time.perf_counter()

    def note(text: str) -> None:
        info.steps.append(f"{time.perf_counter() - t0:.1f}s {text}")
        log.info("decomposition: %s", info.steps[-1])

    master = _Master(ix, model, co, periods, options)
    share = SHARE_CUTS > 0 and not co.batch_in_master
    info.master_columns = master.n
    # seed: the period LPs where the master without cuts puts training and batch
    # (theta_t >= 0 then), else with no training and no batch
    xm = np.zeros(master.n)
    seeded = master.theta_lo == 0.0 and master.solve(left())
    if seeded:
        xm = master.x()
    s = master.shift(xm)
    ts = time.perf_counter()
    if not periods.solve(s, deadline):
        return _failed(n, t0, "seed period LPs")
    info.period_seconds += time.perf_counter() - ts
    lower = master.value() if seeded else -np.inf
    # LP phase: cuts at in-out points while training is fractional
    t1 = time.perf_counter()
    best_lp = np.inf
    core: FloatArray | None = None
    value = float(master.cost @ xm) + float(periods.values.sum()) + model.offset
    if periods.slack.max() <= SLACK_TOL:
        best_lp, core = value, xm
    note(f"seed period LPs ({time.perf_counter() - ts:.1f}s): point {value:.6g}")
    master.add_cuts(periods, s, share=share)
    slowest = 0.0  # the slowest master LP solve, to judge if a branch-and-bound fits
    round_s = 0.0  # the last LP round's seconds
    lp_solver = _LPSolver(master.h)
    for _ in range(MAX_ROUNDS):
        tr = tm = time.perf_counter()
        ipm = lp_solver.ipm
        if not master.solve(left()):
            return _failed(n, t0, "master LP")
        tm = time.perf_counter() - tm
        slowest = max(slowest, tm)
        lp_solver.after(tm)
        lower = max(lower, master.value())
        if np.isfinite(best_lp) and best_lp - lower <= LP_STOP * abs(best_lp):
            break
        tl = left()
        # leave the integral phase at least (1 - LP_SHARE) of the limit and
        # INTEGRAL_ROUNDS rounds' time after this round
        if tl is not None and limit is not None and \
                tl - round_s < max((1 - LP_SHARE) * limit, INTEGRAL_ROUNDS * round_s):
            break
        xnew = master.x()
        xm = xnew if core is None else IN_OUT * xnew + (1 - IN_OUT) * core
        s = master.shift(xm)
        ts = time.perf_counter()
        ok = periods.solve(s, deadline)  # warm: the seed's point is near the next ones
        info.period_seconds += time.perf_counter() - ts
        if not ok:
            break
        value = float(master.cost @ xm) + float(periods.values.sum()) + model.offset
        if periods.slack.max() <= SLACK_TOL and value < best_lp:
            best_lp, core = value, xm
        tp = time.perf_counter() - ts
        round_s = time.perf_counter() - tr
        master.add_cuts(periods, s, share=share)
        shared = master.separate(SHARE_CUTS if share else 0)
        note(f"LP round: bound {lower:.6g}, point {value:.6g}, best {best_lp:.6g} "
             f"(master {tm:.1f}s{' ipm' if ipm else ''}, periods {tp:.1f}s, "
             f"{shared} shared cuts)")
    lp_solver.finish()  # the master is solved (or has cuts added): warm from here
    if not master.solve(left()):
        return _failed(n, t0, "master LP")
    lower = max(lower, master.value())
    lower = max(lower, lagrangian_bound(ix, model, periods.prices(master.weights(), m)))
    info.lp_seconds = time.perf_counter() - t1
    note(f"LP phase done: bound {lower:.6g}, best LP point {best_lp:.6g}")
    tl = left()
    if master.ny and tl is not None and limit is not None and options.threads != 1 and \
            (os.cpu_count() or 1) > 1 and tl - FIXED_RESERVE * limit >= BACKGROUND_MIN_SECONDS:
        background.append(BackgroundBound(master, options, tl - FIXED_RESERVE * limit))
    # training: dive on the master, then cuts with training fixed; with time left, a
    # branch-and-bound on the master (its cuts included) may find better options
    t2 = time.perf_counter()
    room = dive(master, ix, model, left, note)
    if room is None:
        return _failed(n, t0, "master LP while fixing training")
    note(f"dive: master {master.value():.6g}")
    swap(master, room, left, note)
    if not master.solve(left()):
        return _failed(n, t0, "master LP while moving training")
    best = _Best()

    def fixed_rounds() -> None:
        core: FloatArray | None = None  # the best point with the current options
        core_value = np.inf
        for i in range(MAX_ROUNDS):
            t_round = time.perf_counter()
            xnew = master.x()
            # mix only points with the same training (swaps may have moved it)
            xm = xnew
            if core is not None and not np.array_equal(xnew[:master.ny], core[:master.ny]):
                core, core_value = None, np.inf  # swaps moved training: a new center
            if core is not None:
                xm = IN_OUT * xnew + (1 - IN_OUT) * core
            if i == 1 and best.xm is None:  # batch left undone always fits
                xm = master.unbatched(xm)
            s = master.shift(xm)
            ts = time.perf_counter()
            # the first plan is completed even past the time limit
            ok = periods.solve(s, deadline if best.xm is not None else None)
            tp = time.perf_counter() - ts
            info.period_seconds += tp
            if not ok:
                return
            value = float(master.cost @ xm) + float(periods.values.sum()) + model.offset
            whole = periods.slack.max() <= SLACK_TOL  # a plan, not a relaxed point
            if whole and value < core_value:
                core, core_value = xm, value
            if whole and value < best.value:
                best.value, best.xm = value, xm
                best.x = np.zeros(co.A.shape[1])
                periods.fill(best.x)
            master.add_cuts(periods, s, share=share)
            master.separate(SHARE_CUTS if share else 0)
            tm = time.perf_counter()
            if not master.solve(left()):
                return
            tm = time.perf_counter() - tm
            fixed_bound = master.value()
            note(f"fixed round: master {fixed_bound:.6g}, point {value:.6g}, "
                 f"best {best.value:.6g} (periods {tp:.1f}s, master {tm:.1f}s)")
            tl = left()
            if tl is not None and limit is not None and \
                    tl < FIXED_RESERVE * limit + time.perf_counter() - t_round:
                return  # another round would not end in time
            if np.isfinite(best.value) and \
                    best.value - max(fixed_bound, lower) <= LP_STOP * abs(best.value):
                # converged at these options: move runs where the cuts, now close
                # to the truth around them, promise a plan cheaper by more than
                # LP_STOP (with time for the swaps and a round after them)
                if not FIXED_SWAP_ROUNDS or (tl is not None and limit is not None and tl < (
                        FIXED_RESERVE * limit + 2 * (time.perf_counter() - t_round))) or \
                        not swap(master, room, left, note, FIXED_SWAP_ROUNDS):
                    return
                if not master.solve(left()) or \
                        best.value - master.value() <= LP_STOP * abs(best.value):
                    return

    fixed_rounds()
    tl = left()
    # HiGHS solves the root LP from scratch and does not stop inside it: only when the
    # master LP is quick compared with the time left
    mip = master.ny > 0 and best.xm is not None and \
        (tl is None or tl > max(MIP_MIN_SECONDS, MIP_ROOT_FACTOR * slowest))
    for b in background:
        # the rounds are over: the branch-and-bound may go on raising the bound
        # while the gap is open and nothing else would use the time
        bg_bound = b.bound(wait=not mip and
                           best.value - lower > options.gap * abs(best.value))
        if bg_bound is not None:
            lower = max(lower, bg_bound)
        note(f"background branch-and-bound: bound {bg_bound or 0:.6g}")
    if mip:
        mip_seconds = None if tl is None else MIP_SHARE * tl
        assert best.xm is not None
        found, mip_bound = master_mip(master, best.xm[:master.ny], mip_seconds, options.gap)
        if mip_bound is not None:
            lower = max(lower, mip_bound)
        note(f"master branch-and-bound: bound {mip_bound if mip_bound is not None else 0:.6g}, "
             f"{'new training options' if found else 'nothing better'}")
        if found:
            room.choose(np.asarray(master.h.getSolution().col_value)[:master.ny])
            fixed_rounds()
    info.fixed_seconds = time.perf_counter() - t2
    if best.xm is None or best.x is None:
        return _failed(n, t0, "period LPs with training fixed")
    xc = best.x.copy()
    xc[master.cols] = best.xm
    x = expand(ix, model, co, xc)
    y = model.cols["y"]
    x[y.start:y.stop] = np.round(x[y.start:y.stop])
    # the LP solvers' values hold bounds up to their tolerances (about 1e-9 chips):
    # inside them exactly; the rows are checked after
    np.clip(x, model.col_lo, model.col_hi, out=x)
    if violation(model, x) > FEASIBILITY_TOL:
        return _failed(n, t0, "assembled plan (constraint violated)")
    upper = float(model.objective @ x + model.offset)
    info.upper, info.lower = upper, lower
    note(f"plan {upper:.6g}, bound {lower:.6g}")
    gap = max(upper - lower, 0.0) / max(abs(upper), 1.0) if np.isfinite(lower) else None
    seconds = time.perf_counter() - t0
    status = "optimal" if gap is not None and gap <= options.gap else "feasible"
    bound = Solution("optimal" if np.isfinite(lower) else "error", np.zeros(0),
                     lower if np.isfinite(lower) else None, None, None, seconds)
    return bound, Solution(status, x, upper, lower if np.isfinite(lower) else None, gap,
                           seconds)

def violation(model: Model, x: FloatArray) -> float:
    """Largest violation of a row or column bound (rows relative to 1 + sum |a_ij x_j|)."""
    r = model.A @ x
    size = 1.0 + abs(model.A) @ np.abs(x)
    rows = np.maximum(model.row_lo - r, 0.0) + np.maximum(r - model.row_hi, 0.0)
    cols = np.maximum(model.col_lo - x, 0.0) + np.maximum(x - model.col_hi, 0.0)
    return float(max((rows / size).max(initial=0.0), cols.max(initial=0.0)))


def _failed(n: int, t0: float, what: str) -> tuple[Solution, Solution]:
    log.warning("decomposition: %s did not solve", what)
    s = Solution("time_limit_no_solution", np.zeros(n), None, None, None,
                 time.perf_counter() - t0)
    return s, s
