"""A valid lower bound on a plan's cost from any row prices (Lagrangian relaxation).

For row prices ``pi``, ``L(pi) = min c'x + pi'(r - A x)`` over the column bounds
(upper bounds tightened by capacity: every feasible plan lies inside) and the row
ranges is at most the LP optimum, so at most the MIP optimum; with exact LP duals it
is the LP optimum. Used by the period decomposition (:mod:`cloudhedge.planning.decompose`)
to certify its plans.
"""

from __future__ import annotations

import numpy as np

from cloudhedge.planning.build import Model
from cloudhedge.planning.index import FleetIndex, FloatArray

LINK_ROWS = ("train", "batch")
"""Rows that link periods: each training run is placed once, each batch job done."""


def implied_upper(ix: FleetIndex, model: Model) -> FloatArray:
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
    hi = implied_upper(ix, model)
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
