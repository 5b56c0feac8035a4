"""A feasible starting plan for the MIP, rounded from the LP relaxation.

The LP relaxation of the planning model is tight (the flagship's bound is within a
fraction of a percent of the optimum); what costs time is finding a first integer
solution. This module rounds the relaxation: each training run takes the option the
LP liked best that still fits the capacity left by runs placed before it (runs in
order of LP confidence), else stays unscheduled; each decided contract takes the
tier the LP leaned to. With those integers fixed, the LP fills in everything else;
the result is handed to HiGHS as its first incumbent.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from cloudhedge.planning.build import Model
from cloudhedge.planning.index import FleetIndex, FloatArray
from cloudhedge.planning.solve import Solution, SolveOptions, fixed_lp, solve


def round_relaxation(ix: FleetIndex, model: Model, lp_x: FloatArray) -> FloatArray:
    """Integer values for every integer column (others copied from ``lp_x``)."""
    x = lp_x.copy()
    y = model.cols["y"]
    yv = lp_x[y.start:y.stop]
    chosen = np.zeros(y.size)
    left = ix.capacity.copy()
    gang = np.array([r.gang_chips for r in ix.fleet.training], dtype=np.float64)
    runs = range(len(ix.fleet.training))
    best = [float(yv[ix.train_run == r].max(initial=0.0)) for r in runs]
    for r in sorted(runs, key=lambda r: -best[r]):
        opts = np.flatnonzero(ix.train_run == r)
        for o in opts[np.argsort(-yv[opts], kind="stable")]:
            if yv[o] <= 1e-6:
                break
            p, s, n = int(ix.train_pool[o]), int(ix.train_start[o]), int(ix.train_duration[o])
            need = np.full(n, gang[r])
            need[-1] *= ix.train_last_fraction[o]
            if (left[p, s:s + n] >= need - 1e-9).all():
                left[p, s:s + n] -= need
                chosen[o] = 1.0
                break
    x[y.start:y.stop] = chosen
    w = model.cols["w"]
    if w.size:
        wv = lp_x[w.start:w.stop]
        pick = np.zeros(w.size)
        i = 0
        for c in ix.fleet.contracts:
            if c.decide:
                n = len(c.tiers)
                pick[i + int(np.argmax(wv[i:i + n]))] = 1.0
                i += n
        x[w.start:w.stop] = pick
    return x


def warm_start(ix: FleetIndex, model: Model, lp: Solution,
               options: SolveOptions) -> FloatArray | None:
    """A full feasible solution near the relaxation, or None if rounding failed."""
    if not lp.has_solution or not model.integer.any():
        return None
    fixed = fixed_lp(model, round_relaxation(ix, model, lp.x), options)
    return fixed.x if fixed.has_solution else None


def solve_warm(ix: FleetIndex, model: Model, options: SolveOptions,
               cost: FloatArray | None = None) -> tuple[Solution, Solution]:
    """LP relaxation, then the MIP started from its rounding: (relaxation, MIP)."""
    t0 = time.perf_counter()
    lp = solve(model, options, relax=True, cost=cost)
    if cost is not None:  # the start is rounded for the model's own objective only
        return lp, solve(model, _remaining(options, t0), cost=cost)
    start = warm_start(ix, model, lp, _remaining(options, t0))
    if start is not None and lp.objective is not None:
        value = float(model.objective @ start + model.offset)
        gap = (value - lp.objective) / max(abs(value), 1.0)
        if gap <= options.gap:  # the rounding is already proven within the gap
            return lp, Solution("optimal", start, value, lp.objective, max(gap, 0.0),
                                time.perf_counter() - t0)
    return lp, solve(model, _remaining(options, t0), start=start)


def _remaining(options: SolveOptions, t0: float) -> SolveOptions:
    """The same options with the time limit reduced by what has been spent since t0."""
    if options.time_limit_s is None:
        return options
    left = max(options.time_limit_s - (time.perf_counter() - t0), 1.0)
    return replace(options, time_limit_s=left)
