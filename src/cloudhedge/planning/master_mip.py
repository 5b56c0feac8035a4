"""Branch-and-bound on the decomposition's master (:mod:`cloudhedge.planning.decompose`)
with training binary: :func:`master_mip` in the foreground, for better training
options and a bound, and :class:`BackgroundBound` in another thread beside the
integral phase, for its bound only.

The master (training options as its first ``ny`` columns, every Benders cut so far)
is a relaxation of the whole model whatever cuts it holds, so either dual bound is a
valid lower bound on the plan's cost. See docs/planning-model.md, "Large plans:
period decomposition", step 4.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import highspy
import numpy as np

from cloudhedge.planning.index import FloatArray
from cloudhedge.planning.periods import lp_highs
from cloudhedge.planning.solve import SolveOptions


class MasterLP(Protocol):
    """The master as the branch-and-bounds see it: its HiGHS LP (training options
    first), the objective's scale and offset, and the rows added after ``rows0``
    (``row_cut``: a cut's index, -1 for other rows)."""

    h: Any
    ny: int
    scale: float
    offset: float
    rows0: int
    row_cut: list[int]

    def solve(self, left: float | None) -> bool: ...

    def value(self) -> float: ...


def _training_binary(h: Any, ny: int) -> None:
    """The first ``ny`` columns (training options) binary."""
    ycols = np.arange(ny, dtype=np.int32)
    h.changeColsBounds(ny, ycols, np.zeros(ny), np.ones(ny))
    h.changeColsIntegrality(ny, ycols, np.ones(ny, dtype=np.uint8))


def _dual_bound(h: Any, scale: float, offset: float) -> float | None:
    """The branch-and-bound's dual bound in USD, or None when it has none."""
    value = float(h.getInfo().mip_dual_bound)
    if not np.isfinite(value) or h.getModelStatus() not in (
            highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kTimeLimit,
            highspy.HighsModelStatus.kInterrupt):
        return None
    return value * scale + offset


class BackgroundBound:
    """HiGHS branch-and-bound on a copy of the master (training binary, the cuts
    binding at its LP optimum), in another thread while the dive, the swaps and the
    rounds with training fixed go on, for its dual bound: the master's LP is the
    whole model's LP relaxation, and the branch-and-bound's cuts at its root lift it (at 2000
    workloads x 300 pools x 24 periods with a 120 s limit, from 10.109 B to 10.141 B
    in the 53 s after the LP phase). The dive and the swaps work on one core, and do
    not slow down beside it.

    Its root LP is solved by the interior point method (3-4 s at that size against
    13-23 s for the dual simplex from scratch), and it stops at its time limit or
    when :meth:`bound` asks (HiGHS checks between its steps: the request waits for
    the LP it is solving)."""

    def __init__(self, master: MasterLP, options: SolveOptions, seconds: float) -> None:
        h = self.h = lp_highs(options, seconds)
        lp = master.h.getLp()
        h.passModel(lp)
        # without the cuts slack at the master's optimum (three in four at 2000 x 300
        # x 24): a relaxation of the master, so its bound stays valid, and its LPs
        # are quicker (10.135 B after 30 s there, against 10.127 B with every cut)
        sol = master.h.getSolution()
        lo = np.asarray(lp.row_lower_)[master.rows0:]
        slack = np.asarray(sol.row_value)[master.rows0:] - lo
        loose = (np.asarray(master.row_cut) >= 0) & \
            (np.abs(np.asarray(sol.row_dual)[master.rows0:]) <= 1e-12) & \
            (slack > 1e-9 * np.maximum(1.0, np.abs(lo)))
        rows = (master.rows0 + np.flatnonzero(loose)).astype(np.int32)
        h.deleteRows(rows.size, rows)
        _training_binary(h, master.ny)
        h.setOptionValue("mip_lp_solver", "ipm")
        h.setOptionValue("mip_rel_gap", 0.0)
        self.scale, self.offset = master.scale, master.offset
        self.stop = threading.Event()
        h.setCallback(self._interrupt, None)
        h.startCallback(highspy.cb.HighsCallbackType.kCallbackMipInterrupt)
        self.thread = threading.Thread(target=h.run, name="master-bound", daemon=True)
        self.thread.start()

    def _interrupt(self, kind: Any, message: str, out: Any, data_in: Any, user: Any) -> None:
        if data_in is not None and self.stop.is_set():
            data_in.user_interrupt = True

    def bound(self, wait: bool = False) -> float | None:
        """Stop the branch-and-bound (or, with ``wait``, let it reach its time limit);
        its dual bound in USD (None without one)."""
        if not wait:
            self.stop.set()
        self.thread.join()
        return _dual_bound(self.h, self.scale, self.offset)


def master_mip(master: MasterLP, vals: FloatArray, seconds: float | None,
               gap: float) -> tuple[bool, float | None]:
    """HiGHS branch-and-bound on the master with training binary, started from the
    current solution (training fixed at ``vals``). Afterwards training is fixed again,
    at the branch-and-bound's options when they are cheaper in the master, and the
    master LP re-solved. Returns (new options taken, a valid lower bound in USD)."""
    h, ny = master.h, master.ny
    ycols = np.arange(ny, dtype=np.int32)
    start = highspy.HighsSolution()
    start.col_value = np.asarray(h.getSolution().col_value)
    start.value_valid = True
    before = master.value()
    _training_binary(h, ny)
    h.setOptionValue("mip_rel_gap", float(gap) / 2)
    if seconds is not None:
        h.setOptionValue("time_limit", h.getRunTime() + max(seconds, 1.0))
    h.setSolution(start)
    h.run()
    info = h.getInfo()
    bound = _dual_bound(h, master.scale, master.offset)
    got = np.asarray(h.getSolution().col_value)
    better = got.size > ny and \
        float(info.objective_function_value) * master.scale + master.offset < before - 1e-9
    h.changeColsIntegrality(ny, ycols, np.zeros(ny, dtype=np.uint8))
    new = np.round(got[:ny]) if better else vals
    h.changeColsBounds(ny, ycols, new, new)
    if not master.solve(seconds) and better:  # keep the dive's options then
        h.changeColsBounds(ny, ycols, vals, vals)
        master.solve(None)
        better = False
    return better, bound
