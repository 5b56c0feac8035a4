"""Assemble the planning model as sparse matrices, vectorised.

Columns (decision variables), all per period ``t`` where it applies::

    x[i, t]    chips of pool p(i) serving demand unit s(i)          (inference pairs i)
    u[s, t]    unmet tokens/s of demand unit s                       (penalised)
    y[o]       1 if training option o = (run, pool, start) is taken  (binary)
    z[r]       run r left unscheduled                                (penalised)
    b[i, t]    chip-hours of batch pair i in period t
    ub[j]      unmet reference chip-hours of batch job j             (penalised)
    cov[p, t]  chips of committed pool p covered by its contract
    over[p, t] chips of committed pool p beyond the commitment       (pool price)
    q[k, i]    committed chips of decided contract k at tier i       (tier price)
    w[k, i]    1 if contract k commits at tier i                     (binary)
    use[p, t]  chips in use of pool p in period t                    (= U x)
    e[...]     elastic slack of a policy row (only in elastic mode)

Every pool-period's chips in use come from one sparse matrix ``U`` (P*T x n), tied
once to the ``use`` columns (rows ``pool_use``: U x - use = 0); capacity, contract
and cap rows are written on ``use``, so each workload column appears in one of
them only and the matrix stays small (a cap row has P entries, not one per column).
Survivability after losing domain g is written on the pairs inside g (the demand
row makes it equivalent to "the pairs outside g serve alpha of the demand").
Real cost per period is a sparse matrix ``C`` (T x n) plus a constant (take-or-pay
commitments); the objective is ``1'C x + penalty' x``. See docs/planning-model.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from cloudhedge.core.models import Fleet
from cloudhedge.planning.index import (
    SECONDS_PER_HOUR,
    FleetIndex,
    FloatArray,
    IntArray,
    critical_alphas,
)

INF = np.inf


@dataclass
class Block:
    """A contiguous range of rows or columns with per-entry metadata."""

    name: str
    start: int
    size: int
    ids: list[str] = field(default_factory=list)  # constraint/variable id per entry
    period: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scale: FloatArray = field(default_factory=lambda: np.zeros(0))
    elastic: bool = False
    sense: int = 0  # -1: <= row, +1: >= row, 0: equality

    @property
    def stop(self) -> int:
        return self.start + self.size


@dataclass
class Model:
    """The assembled model: ``min c'x + offset  s.t.  row_lo <= A x <= row_hi``."""

    A: sp.csc_matrix
    cost: FloatArray  # real USD per unit of each column (sum over periods of C)
    penalty: FloatArray  # penalty USD per unit of each column
    C: sp.csr_matrix  # (T, n) real USD per period per unit
    fixed_per_period: FloatArray  # (T,) constant committed cost
    col_lo: FloatArray
    col_hi: FloatArray
    integer: np.ndarray
    row_lo: FloatArray
    row_hi: FloatArray
    cols: dict[str, Block]
    rows: dict[str, Block]
    U: sp.csr_matrix  # (P*T, n) chips in use per pool-period
    build_seconds: float = 0.0

    @property
    def objective(self) -> FloatArray:
        return self.cost + self.penalty

    @property
    def offset(self) -> float:
        return float(self.fixed_per_period.sum())


class _Rows:
    """Accumulates COO triplets and bounds, block by block."""

    def __init__(self) -> None:
        self.r: list[IntArray] = []
        self.c: list[IntArray] = []
        self.v: list[FloatArray] = []
        self.lo: list[FloatArray] = []
        self.hi: list[FloatArray] = []
        self.blocks: dict[str, Block] = {}
        self.n = 0

    def add_block(self, name: str, mat: sp.spmatrix, lo: FloatArray, hi: FloatArray,
                  ids: list[str], period: IntArray, scale: FloatArray | None = None,
                  elastic: bool = False, sense: int = 0) -> Block:
        coo = sp.coo_matrix(mat)
        self.r.append(coo.row.astype(np.int64) + self.n)
        self.c.append(coo.col.astype(np.int64))
        self.v.append(coo.data.astype(np.float64))
        self.lo.append(np.asarray(lo, dtype=np.float64))
        self.hi.append(np.asarray(hi, dtype=np.float64))
        m = coo.shape[0]
        if ids and len(ids) != m:  # one id per entity, entity-major rows
            ids = [i for i in ids for _ in range(m // len(ids))]
        blk = Block(name, self.n, m, ids, period,
                    np.ones(m) if scale is None else scale, elastic, sense)
        self.blocks[name] = blk
        self.n += m
        return blk


class ModelBuilder:
    """Builds a :class:`Model` from a :class:`FleetIndex`.

    ``elastic=True`` adds a non-negative slack column to each policy row (caps,
    survivability, budget) so that any policy can bend; explain.py minimises the
    slack to find which policies conflict.
    """

    def __init__(self, ix: FleetIndex, *, elastic: bool = False) -> None:
        self.ix = ix
        self.fleet: Fleet = ix.fleet
        self.elastic = elastic
        self.T = ix.T
        self.H = ix.hours
        self.P = len(ix.pools)
        self.cols: dict[str, Block] = {}
        self.ncol = 0
        self.lo: list[FloatArray] = []
        self.hi: list[FloatArray] = []
        self.integ: list[np.ndarray] = []
        self.cost_r: list[IntArray] = []  # C triplets (period, col, usd)
        self.cost_c: list[IntArray] = []
        self.cost_v: list[FloatArray] = []
        self.pen: list[FloatArray] = []
        self.fixed = np.zeros(self.T)
        # U triplets (pool*T + t, col, chips)
        self.u_r: list[IntArray] = []
        self.u_c: list[IntArray] = []
        self.u_v: list[FloatArray] = []

    # ----------------------------------------------------------------- columns
    def _col_block(self, name: str, n: int, lo: FloatArray | float, hi: FloatArray | float,
                   *, integer: bool = False, penalty: FloatArray | float = 0.0,
                   ids: list[str] | None = None, period: IntArray | None = None) -> Block:
        blk = Block(name, self.ncol, n, ids or [],
                    period if period is not None else np.zeros(0, dtype=np.int64))
        self.cols[name] = blk
        self.ncol += n
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=np.float64), (n,)).copy())
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=np.float64), (n,)).copy())
        self.integ.append(np.full(n, integer))
        self.pen.append(np.broadcast_to(np.asarray(penalty, dtype=np.float64), (n,)).copy())
        return blk

    def _cost(self, period: IntArray, col: IntArray, usd: FloatArray) -> None:
        self.cost_r.append(period)
        self.cost_c.append(col)
        self.cost_v.append(usd)

    def _use(self, pool: IntArray, period: IntArray, col: IntArray, chips: FloatArray) -> None:
        self.u_r.append(pool * self.T + period)
        self.u_c.append(col)
        self.u_v.append(chips)

    def build(self) -> Model:
        t0 = time.perf_counter()
        self._inference_columns()
        self._training_columns()
        self._batch_columns()
        self._contract_columns()
        use = self._col_block("use", self.P * self.T, 0.0, INF,
                              period=np.tile(np.arange(self.T), self.P))
        n = self.ncol
        U = sp.csr_matrix(
            (_cat(self.u_v), (_cati(self.u_r), _cati(self.u_c))), shape=(self.P * self.T, n)
        )
        self.U = U
        self.use0 = use.start
        rows = _Rows()
        self._demand_rows(rows)
        self._use_rows(rows)
        self._capacity_rows(rows)
        self._contract_rows(rows)
        self._cap_rows(rows)
        self._survivability_rows(rows)
        C = sp.csr_matrix(
            (_cat(self.cost_v), (_cati(self.cost_r), _cati(self.cost_c))), shape=(self.T, n)
        )
        self._budget_rows(rows, C)
        n_slack = self._elastic_columns(rows)
        n_all = n + n_slack
        A = sp.csc_matrix(
            (_cat(rows.v), (_cati(rows.r), _cati(rows.c))), shape=(rows.n, n_all)
        )
        A.eliminate_zeros()  # e.g. a zero price or a zero-throughput coefficient
        C.resize((self.T, n_all))
        cost = np.asarray(C.sum(axis=0)).ravel()
        U.resize((self.P * self.T, n_all))
        model = Model(
            A=A, cost=cost, penalty=np.concatenate(self.pen), C=C.tocsr(),
            fixed_per_period=self.fixed, col_lo=np.concatenate(self.lo),
            col_hi=np.concatenate(self.hi), integer=np.concatenate(self.integ),
            row_lo=np.concatenate(rows.lo), row_hi=np.concatenate(rows.hi),
            cols=self.cols, rows=rows.blocks, U=U.tocsr(),
        )
        model.build_seconds = time.perf_counter() - t0
        return model

    def _uncovered_price(self, pool: IntArray, t: IntArray) -> FloatArray:
        """USD per chip-hour billed on use: 0 in contract-covered pools (see cov/over)."""
        return np.where(self.ix.contract_of_pool[pool] >= 0, 0.0, self.ix.price_pt[pool, t])

    def _inference_columns(self) -> None:
        ix, T = self.ix, self.T
        npair = ix.inf_pool.size
        blk = self._col_block("x", npair * T, 0.0, INF)
        pair = np.repeat(np.arange(npair), T)
        t = np.tile(np.arange(T), npair)
        col = blk.start + np.arange(npair * T)
        blk.period = t
        pool = ix.inf_pool[pair]
        self._use(pool, t, col, np.ones(col.size))
        self._cost(t, col, self._uncovered_price(pool, t) * self.H)
        S = len(ix.units)
        pen = np.array([u.service.unmet_penalty_usd_per_million_tokens for u in ix.units])
        pen_tok = np.repeat(pen * SECONDS_PER_HOUR * self.H / 1e6, T)
        ublk = self._col_block("u", S * T, 0.0, ix.demand.ravel(), penalty=pen_tok)
        ublk.period = np.tile(np.arange(T), S)

    def _training_columns(self) -> None:
        ix = self.ix
        nopt = ix.train_run.size
        blk = self._col_block("y", nopt, 0.0, 1.0, integer=True)
        dur = ix.train_duration
        opt = np.repeat(np.arange(nopt), dur)
        # offset k within each option's duration: 0..dur-1
        k = np.arange(opt.size) - np.repeat(np.cumsum(dur) - dur, dur)
        period = ix.train_start[opt] + k
        gang = np.array([r.gang_chips for r in self.fleet.training], dtype=np.float64)
        occ = np.where(k == dur[opt] - 1, ix.train_last_fraction[opt], 1.0)
        chips = gang[ix.train_run[opt]] * occ
        pool = ix.train_pool[opt]
        col = blk.start + opt
        self._use(pool, period, col, chips)
        self._cost(period, col, chips * self.H * self._uncovered_price(pool, period))
        R = len(self.fleet.training)
        per_hour = self.fleet.training_penalty_usd_per_chip_hour
        pen = np.array([per_hour * r.chip_hours * r.priority for r in self.fleet.training])
        self._col_block("z", R, 0.0, 1.0, penalty=pen)

    def _batch_columns(self) -> None:
        ix = self.ix
        jobs = self.fleet.batch
        npair = ix.batch_pool.size
        ws = np.array([b.window_start for b in jobs], dtype=np.int64)
        we = np.array([b.window_end for b in jobs], dtype=np.int64)
        span = (we - ws + 1)[ix.batch_job] if npair else np.zeros(0, dtype=np.int64)
        pair = np.repeat(np.arange(npair), span)
        k = np.arange(pair.size) - np.repeat(np.cumsum(span) - span, span)
        t = ws[ix.batch_job[pair]] + k if npair else np.zeros(0, dtype=np.int64)
        pool = ix.batch_pool[pair]
        blk = self._col_block("b", pair.size, 0.0, INF, period=t)
        blk.ids = []
        self.batch_pair_of_col = pair
        col = blk.start + np.arange(pair.size)
        self._use(pool, t, col, np.full(col.size, 1.0 / self.H))
        self._cost(t, col, self._uncovered_price(pool, t))
        pen_hour = self.fleet.batch_penalty_usd_per_chip_hour
        pen = np.array([pen_hour * b.priority for b in jobs])
        self._col_block("ub", len(jobs), 0.0, np.array([b.chip_hours for b in jobs]),
                        penalty=pen)

    def _contract_columns(self) -> None:
        ix, T = self.ix, self.T
        covered = np.flatnonzero(ix.contract_of_pool >= 0)
        self.covered = covered
        nc = covered.size
        pool = np.repeat(covered, T)
        t = np.tile(np.arange(T), nc)
        cov = self._col_block("cov", nc * T, 0.0, INF, period=t)
        over = self._col_block("over", nc * T, 0.0, INF, period=t)
        k_of = ix.contract_of_pool[pool]
        contracts = self.fleet.contracts
        price_k = np.array([c.price_usd_per_chip_hour for c in contracts])
        top = np.array([c.take_or_pay for c in contracts], dtype=bool)
        # covered chips cost nothing on use under take-or-pay (paid as fixed cost);
        # without take-or-pay they are billed at the contract price when used
        if nc:
            cov_cost = np.where(top[k_of], 0.0, price_k[k_of] * self.H)
            self._cost(t, cov.start + np.arange(nc * T), cov_cost)
            self._cost(t, over.start + np.arange(nc * T), ix.price_pt[pool, t] * self.H)
        # decided commitments: one quantity and one binary per tier
        q_ids: list[str] = []
        q_cost_r, q_cost_c, q_cost_v = [], [], []
        dec = [(k, c) for k, c in enumerate(contracts) if c.decide]
        ntier = sum(len(c.tiers) for _, c in dec)
        qblk = self._col_block("q", ntier, 0.0, INF)
        self._col_block("w", ntier, 0.0, 1.0, integer=True)
        i = 0
        for k, c in dec:
            active = np.array([t_ for t_ in range(T) if c.active(t_)], dtype=np.int64)
            for tier in c.tiers:
                q_ids.append(f"{c.name}@{tier.min_chips:g}")
                q_cost_r.append(active)
                q_cost_c.append(np.full(active.size, qblk.start + i, dtype=np.int64))
                q_cost_v.append(np.full(active.size, c.price_usd_per_chip_hour
                                        * (1 - tier.discount) * self.H))
                i += 1
            del k
        qblk.ids = q_ids
        if q_cost_r:
            self._cost(_cati(q_cost_r), _cati(q_cost_c), _cat(q_cost_v))
        # fixed take-or-pay commitments
        for c in contracts:
            if not c.take_or_pay or c.decide:
                continue
            if c.committed_chips:
                self.fixed += np.array(c.committed_chips) * self.H * c.price_usd_per_chip_hour
            if c.committed_spend_usd:
                self.fixed += np.array(c.committed_spend_usd)

    # -------------------------------------------------------------------- rows
    def _demand_rows(self, rows: _Rows) -> None:
        ix, T = self.ix, self.T
        S, npair = len(ix.units), ix.inf_pool.size
        x0, u0 = self.cols["x"].start, self.cols["u"].start
        pair = np.repeat(np.arange(npair), T)
        t = np.tile(np.arange(T), npair)
        r = ix.inf_unit[pair] * T + t
        mat = sp.coo_matrix(
            (np.concatenate([ix.inf_tput[pair], np.ones(S * T)]),
             (np.concatenate([r, np.arange(S * T)]),
              np.concatenate([x0 + np.arange(npair * T), u0 + np.arange(S * T)]))),
            shape=(S * T, self.ncol),
        )
        d = ix.demand.ravel()
        rows.add_block("demand", mat, d, d, [u.label for u in ix.units],
                       np.tile(np.arange(T), S))
        # training: each run takes one option or stays unscheduled
        R = len(self.fleet.training)
        y0, z0 = self.cols["y"].start, self.cols["z"].start
        nopt = ix.train_run.size
        mat = sp.coo_matrix(
            (np.ones(nopt + R),
             (np.concatenate([ix.train_run, np.arange(R)]),
              np.concatenate([y0 + np.arange(nopt), z0 + np.arange(R)]))),
            shape=(R, self.ncol),
        )
        rows.add_block("train", mat, np.ones(R), np.ones(R),
                       [r.name for r in self.fleet.training], np.zeros(R, dtype=np.int64))
        # batch: reference chip-hours done (speed x efficiency) plus unmet = required
        J = len(self.fleet.batch)
        bblk = self.cols["b"]
        pair = self.batch_pair_of_col
        pool = ix.batch_pool[pair]
        speed = np.array([self.fleet.relative_speed.get(p.accelerator, 0.0) for p in ix.pools])
        coef = speed[pool] * ix.efficiency[pool]
        ub0 = self.cols["ub"].start
        mat = sp.coo_matrix(
            (np.concatenate([coef, np.ones(J)]),
             (np.concatenate([ix.batch_job[pair], np.arange(J)]),
              np.concatenate([bblk.start + np.arange(pair.size), ub0 + np.arange(J)]))),
            shape=(J, self.ncol),
        )
        need = np.array([b.chip_hours for b in self.fleet.batch])
        rows.add_block("batch", mat, need, need, [b.name for b in self.fleet.batch],
                       np.zeros(J, dtype=np.int64))

    def _use_rows(self, rows: _Rows) -> None:
        """pool_use[p, t]: chips in use by the workload columns minus use[p, t] = 0."""
        PT = self.P * self.T
        link = sp.csr_matrix((np.full(PT, -1.0), (np.arange(PT), self.use0 + np.arange(PT))),
                             shape=(PT, self.ncol))
        rows.add_block("pool_use", self.U + link, np.zeros(PT), np.zeros(PT),
                       [p.name for p in self.ix.pools], np.tile(np.arange(self.T), self.P))

    def _use_matrix(self, pt: IntArray, coef: FloatArray, row: IntArray,
                    nrow: int) -> sp.coo_matrix:
        """Rows on the use columns: entry (row[i], use[pt[i]]) = coef[i]."""
        return sp.coo_matrix((coef, (row, self.use0 + pt)), shape=(nrow, self.ncol))

    def _capacity_rows(self, rows: _Rows) -> None:
        T, PT = self.T, self.P * self.T
        ids = [p.name for p in self.ix.pools]
        mat = self._use_matrix(np.arange(PT), np.ones(PT), np.arange(PT), PT)
        rows.add_block("capacity", mat, np.full(PT, -INF),
                       self.ix.capacity.ravel(), ids, np.tile(np.arange(T), self.P), sense=-1)

    def _contract_rows(self, rows: _Rows) -> None:
        T, covered = self.T, self.covered
        nc = covered.size
        sel = (covered[:, None] * T + np.arange(T)[None, :]).ravel()
        cov0, over0 = self.cols["cov"].start, self.cols["over"].start
        i = np.arange(nc * T)
        link = sp.coo_matrix(
            (np.concatenate([np.ones(nc * T), -np.ones(nc * T), -np.ones(nc * T)]),
             (np.concatenate([i, i, i]),
              np.concatenate([self.use0 + sel, cov0 + i, over0 + i]))),
            shape=(nc * T, self.ncol))
        rows.add_block("contract_use", link, np.zeros(nc * T), np.zeros(nc * T),
                       [self.ix.pools[p].name for p in covered], np.tile(np.arange(T), nc))
        # commitment rows: covered chips (or spend) per contract and period
        contracts = self.fleet.contracts
        K = len(contracts)
        k_of = self.ix.contract_of_pool[np.repeat(covered, T)]
        t_of = np.tile(np.arange(T), nc)
        spend = np.array([bool(c.committed_spend_usd) for c in contracts], dtype=bool)
        pool_price = self.ix.price[np.repeat(covered, T)]
        coef = np.where(spend[k_of] if K else np.zeros(0, dtype=bool), pool_price * self.H, 1.0)
        r = k_of * T + t_of
        ri, ci, vi = [r], [cov0 + np.arange(nc * T)], [coef]
        hi = np.zeros(K * T)
        qblk = self.cols["q"]
        qi = 0
        for k, c in enumerate(contracts):
            active = np.array([c.active(t) for t in range(T)], dtype=bool)
            if c.decide:
                for _tier in c.tiers:
                    ri.append(k * T + np.flatnonzero(active))
                    ci.append(np.full(int(active.sum()), qblk.start + qi, dtype=np.int64))
                    vi.append(np.full(int(active.sum()), -1.0))
                    qi += 1
            elif c.committed_spend_usd:
                hi[k * T:(k + 1) * T] = np.where(active, c.committed_spend_usd, 0.0)
            else:
                hi[k * T:(k + 1) * T] = np.where(active, c.committed_chips, 0.0)
        mat = sp.coo_matrix((_cat(vi), (_cati(ri), _cati(ci))), shape=(K * T, self.ncol))
        rows.add_block("commitment", mat, np.full(K * T, -INF), hi,
                       [c.name for c in contracts], np.tile(np.arange(T), K), sense=-1)
        # tier logic: q <= max * w ; q >= min * w ; sum w <= 1 per contract
        w0 = self.cols["w"].start
        ntier = qblk.size
        if ntier:
            mx, mn, owner = [], [], []
            for k, c in enumerate(contracts):
                if c.decide:
                    for tier in c.tiers:
                        mx.append(c.max_chips)
                        mn.append(tier.min_chips)
                        owner.append(k)
            i = np.arange(ntier)
            m1 = sp.coo_matrix((np.concatenate([np.ones(ntier), -np.array(mx)]),
                                (np.concatenate([i, i]),
                                 np.concatenate([qblk.start + i, w0 + i]))),
                               shape=(ntier, self.ncol))
            rows.add_block("tier_max", m1, np.full(ntier, -INF), np.zeros(ntier),
                           qblk.ids, np.zeros(ntier, dtype=np.int64))
            m2 = sp.coo_matrix((np.concatenate([np.ones(ntier), -np.array(mn)]),
                                (np.concatenate([i, i]),
                                 np.concatenate([qblk.start + i, w0 + i]))),
                               shape=(ntier, self.ncol))
            rows.add_block("tier_min", m2, np.zeros(ntier), np.full(ntier, INF),
                           qblk.ids, np.zeros(ntier, dtype=np.int64))
            own = np.array(owner)
            uniq, inv = np.unique(own, return_inverse=True)
            m3 = sp.coo_matrix((np.ones(ntier), (inv, w0 + i)), shape=(uniq.size, self.ncol))
            rows.add_block("tier_one", m3, np.full(uniq.size, -INF), np.ones(uniq.size),
                           [contracts[k].name for k in uniq], np.zeros(uniq.size, dtype=np.int64))

    def _cap_rows(self, rows: _Rows) -> None:
        ix, T, P = self.ix, self.T, self.P
        tot_cap = ix.capacity.sum(axis=0)
        # row t: sum_p (1[p in g] - share) use[p, t] <= 0
        pt = (np.arange(P)[:, None] * T + np.arange(T)[None, :]).ravel()
        row = np.tile(np.arange(T), P)
        for c_i, cap in enumerate(self.fleet.policies.caps):
            if not ix.switches.keeps_cap(c_i):
                continue
            names = ix.domain_names[cap.kind]
            dom = ix.domain_of_pool[cap.kind]
            targets = range(len(names)) if cap.name == "*" else [names.index(cap.name)]
            for g in targets:
                coef = np.repeat((dom == g).astype(np.float64) - cap.max_share, T)
                keep = coef != 0
                mat = self._use_matrix(pt[keep], coef[keep], row[keep], T)
                rows.add_block(f"cap:{cap.kind}:{names[g]}#{c_i}", mat, np.full(T, -INF),
                               np.zeros(T), [f"{cap.id}|{names[g]}"], np.arange(T),
                               scale=np.maximum(tot_cap, 1.0), elastic=True, sense=-1)

    def _survivability_rows(self, rows: _Rows) -> None:
        ix, T = self.ix, self.T
        alphas = critical_alphas(ix)
        if not alphas:
            return
        x0, u0 = self.cols["x"].start, self.cols["u"].start
        pairs_of_unit: dict[int, IntArray] = {}
        for s in range(len(ix.units)):
            pairs_of_unit[s] = np.flatnonzero(ix.inf_unit == s)
        ri: list[IntArray] = []
        ci: list[IntArray] = []
        vi: list[FloatArray] = []
        rhs: list[FloatArray] = []
        ids: list[str] = []
        per: list[IntArray] = []
        scale: list[FloatArray] = []
        nrow = 0
        for (k, s), alpha in sorted(alphas.items()):
            rule = self.fleet.policies.survivability[k]
            pairs = pairs_of_unit[s]
            dom = ix.domain_of_pool[rule.kind][ix.inf_pool[pairs]]
            demand = ix.demand[s]
            for g in np.unique(dom):
                inside = pairs[dom == g]
                # the pairs outside g serve alpha of the demand:
                #   sum_{i outside g} tput_i x[i,t] + alpha u[s,t] >= alpha D[s,t];
                # with the demand row (sum_i tput_i x[i,t] + u[s,t] = D[s,t]) that is
                #   sum_{i in g} tput_i x[i,t] + (1 - alpha) u[s,t] <= (1 - alpha) D[s,t]
                # (same slack in elastic mode), with far fewer nonzeros
                r = nrow + np.repeat(np.arange(T)[None, :], inside.size, axis=0).ravel()
                c = x0 + (inside[:, None] * T + np.arange(T)[None, :]).ravel()
                v = np.repeat(ix.inf_tput[inside], T)
                ri.append(r)
                ci.append(c)
                vi.append(v)
                if alpha < 1.0:
                    ri.append(nrow + np.arange(T))
                    ci.append(u0 + s * T + np.arange(T))
                    vi.append(np.full(T, 1.0 - alpha))
                rhs.append((1.0 - alpha) * demand)
                ids.append(f"{rule.id}|{ix.domain_names[rule.kind][g]}|{ix.units[s].label}")
                per.append(np.arange(T))
                scale.append(np.maximum(alpha * demand, 1.0))
                nrow += T
        mat = sp.coo_matrix((_cat(vi), (_cati(ri), _cati(ci))), shape=(nrow, self.ncol))
        rows.add_block("survivability", mat, np.full(nrow, -INF), _cat(rhs),
                       ids, _cati(per), scale=_cat(scale), elastic=True, sense=-1)

    def _budget_rows(self, rows: _Rows, C: sp.csr_matrix) -> None:
        budget = self.fleet.policies.budget
        if budget is None or not self.ix.switches.budget:
            return
        if budget.total_usd is not None:
            room = budget.total_usd - self.fixed.sum()
            mat = sp.csr_matrix(C.sum(axis=0))
            rows.add_block("budget_total", mat, np.array([-INF]), np.array([room]),
                           ["budget:total"], np.zeros(1, dtype=np.int64),
                           scale=np.array([max(budget.total_usd, 1.0)]), elastic=True, sense=-1)
        if budget.per_period_usd is not None:
            room = budget.per_period_usd - self.fixed
            rows.add_block("budget_period", C, np.full(self.T, -INF), room,
                           ["budget:per_period"] * self.T, np.arange(self.T),
                           scale=np.full(self.T, max(budget.per_period_usd, 1.0)),
                           elastic=True, sense=-1)

    def _elastic_columns(self, rows: _Rows) -> int:
        """Append one slack column per elastic row (elastic mode only)."""
        if not self.elastic:
            return 0
        ri, ci, vi, ids = [], [], [], []
        n0 = self.ncol
        for blk in rows.blocks.values():
            if not blk.elastic:
                continue
            r = blk.start + np.arange(blk.size)
            ri.append(r)
            ci.append(self.ncol + np.arange(blk.size))
            vi.append(np.full(blk.size, float(blk.sense)))  # <= rows: -s ; >= rows: +s
            ids += [blk.name] * blk.size
            self.ncol += blk.size
        n = self.ncol - n0
        self.cols["slack"] = Block("slack", n0, n, ids)
        self.lo.append(np.zeros(n))
        self.hi.append(np.full(n, INF))
        self.integ.append(np.zeros(n, dtype=bool))
        self.pen.append(np.zeros(n))
        rows.r.append(_cati(ri))
        rows.c.append(_cati(ci))
        rows.v.append(_cat(vi))
        return n


def _cat(parts: list[FloatArray]) -> FloatArray:
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def _cati(parts: list[IntArray]) -> IntArray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
