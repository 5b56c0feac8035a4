"""Hand a :class:`~cloudhedge.planning.build.Model` to HiGHS in one call and read back.

``solve`` runs the MIP (or the LP when ``relax=True`` or the model has no integer
columns). ``fixed_lp_duals`` fixes the integer columns at a solution and solves
the LP to read row duals (shadow prices). Nothing here knows what a pool is.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt

from cloudhedge.core.errors import PlanningError
from cloudhedge.planning.build import Model

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SolveOptions:
    time_limit_s: float | None = None
    gap: float = 0.005  # relative MIP gap
    threads: int | None = None
    verbose: bool = False


@dataclass
class Solution:
    status: str  # optimal | feasible | infeasible | unbounded | error | time_limit_no_solution
    x: FloatArray
    objective: float | None  # includes the model offset
    mip_bound: float | None
    gap: float | None
    solve_seconds: float
    row_dual: FloatArray | None = None

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible")


def _new_highs() -> Any:
    """A HiGHS instance; the core class when present, since the Python wrapper's
    constructor enables callbacks, which prints the banner before any option is set."""
    core = getattr(getattr(highspy, "_core", None), "_Highs", None)
    return core() if core is not None else highspy.Highs()  # type: ignore[no-untyped-call]


def _highs(options: SolveOptions) -> Any:
    h = _new_highs()
    h.setOptionValue("output_flag", options.verbose)
    h.setOptionValue("log_to_console", options.verbose)
    h.setOptionValue("mip_rel_gap", float(options.gap))
    if options.time_limit_s is not None:
        h.setOptionValue("time_limit", float(options.time_limit_s))
    if options.threads is not None:
        h.setOptionValue("threads", int(options.threads))
    h.setOptionValue("random_seed", 0)
    return h


OBJECTIVE_MAX = 1e7
"""Largest objective coefficient handed to HiGHS: costs are divided by a power of two
to bring them under it (penalties reach 1e11 USD; unscaled, HiGHS's dual tolerance
makes some LPs take a minute instead of a second). Results are scaled back."""


def objective_scale(cost: FloatArray) -> float:
    top = float(np.abs(cost).max(initial=0.0))
    return 1.0 if top <= OBJECTIVE_MAX else float(2.0 ** np.ceil(np.log2(top / OBJECTIVE_MAX)))


def _pass(h: Any, model: Model, cost: FloatArray, *, integer: bool,
          col_lo: FloatArray | None = None, col_hi: FloatArray | None = None) -> float:
    """Pass the model; returns the objective scale used (see :func:`objective_scale`)."""
    lp = highspy.HighsLp()
    n = model.A.shape[1]
    lp.num_col_ = n
    lp.num_row_ = model.A.shape[0]
    scale = objective_scale(cost)
    lp.col_cost_ = np.asarray(cost, dtype=np.float64) / scale
    lp.col_lower_ = model.col_lo if col_lo is None else col_lo
    lp.col_upper_ = model.col_hi if col_hi is None else col_hi
    lp.row_lower_ = model.row_lo
    lp.row_upper_ = model.row_hi
    lp.offset_ = model.offset / scale
    A = model.A
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(np.float64)
    if integer and model.integer.any():
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if f else highspy.HighsVarType.kContinuous
            for f in model.integer
        ]
    status = h.passModel(lp)
    if status == highspy.HighsStatus.kError:
        raise PlanningError("HiGHS rejected the model (invalid bounds or matrix)")
    return scale


def solve(model: Model, options: SolveOptions, *, relax: bool = False,
          cost: FloatArray | None = None, start: FloatArray | None = None) -> Solution:
    """Solve the model (as a MIP unless ``relax``); ``cost`` overrides the objective;
    ``start`` is a feasible solution HiGHS takes as its first incumbent."""
    h = _highs(options)
    scale = _pass(h, model, model.objective if cost is None else cost, integer=not relax)
    if start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = np.asarray(start, dtype=np.float64)
        sol.value_valid = True
        h.setSolution(sol)
    t0 = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - t0
    return _read(h, model, seconds, mip=not relax and bool(model.integer.any()), scale=scale)


def fixed_lp(model: Model, x: FloatArray, options: SolveOptions) -> Solution:
    """Fix integer columns at ``x`` and solve the LP: gives row duals for explanations."""
    lo, hi = model.col_lo.copy(), model.col_hi.copy()
    ints = model.integer
    lo[ints] = np.round(x[ints])
    hi[ints] = np.round(x[ints])
    h = _highs(SolveOptions(time_limit_s=options.time_limit_s, threads=options.threads))
    scale = _pass(h, model, model.objective, integer=False, col_lo=lo, col_hi=hi)
    t0 = time.perf_counter()
    h.run()
    return _read(h, model, time.perf_counter() - t0, mip=False, scale=scale)


def _read(h: Any, model: Model, seconds: float, *, mip: bool, scale: float = 1.0) -> Solution:
    ms = h.getModelStatus()
    info = h.getInfo()
    S = highspy.HighsModelStatus
    n = model.A.shape[1]
    has_primal = info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
    if ms == S.kOptimal:
        status = "optimal"
    elif ms in (S.kInfeasible,):
        status = "infeasible"
    elif ms in (S.kUnbounded, S.kUnboundedOrInfeasible):
        status = "infeasible" if ms == S.kUnboundedOrInfeasible else "unbounded"
    elif has_primal:
        status = "feasible"  # stopped on a limit with an incumbent
    elif ms in (S.kTimeLimit, S.kIterationLimit, S.kSolutionLimit, S.kInterrupt):
        status = "time_limit_no_solution"
    else:
        status = "error"
        log.warning("HiGHS ended with %s", h.modelStatusToString(ms))
    if status in ("optimal", "feasible"):
        sol = h.getSolution()
        x = np.asarray(sol.col_value, dtype=np.float64)
        obj = float(info.objective_function_value) * scale
        dual = None if mip else np.asarray(sol.row_dual, dtype=np.float64) * scale
        bound = float(info.mip_dual_bound) * scale if mip else obj
        gap: float | None = float(info.mip_gap) if mip else 0.0
        if gap is not None and not np.isfinite(gap):
            gap = None
        return Solution(status, x, obj, bound, gap, seconds, dual)
    return Solution(status, np.zeros(n), None, None, None, seconds)
