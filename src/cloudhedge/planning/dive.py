"""Training runs made integral by diving on an LP (:func:`dive`), then improved by
moving runs between their options (:func:`swap`).

The period decomposition's master (:mod:`cloudhedge.planning.decompose`) places
training runs fractionally; the dive fixes them a few at a time, re-solving the LP
after each round, and keeps every run inside the chips its pool has left
(:class:`Room`). Rounding costs: at 2000 workloads x 300 pools x 24 periods the
dive raises the master's value by about 1.4%; the swaps win back a third to a half.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from cloudhedge.planning.build import Model
from cloudhedge.planning.index import FleetIndex, FloatArray, IntArray

DIVE_ROUNDS = 20
"""Master re-solves while fixing training; then the rest is rounded at once."""
DIVE_SHARE = 0.35
"""Share of the unfixed training runs fixed per dive round."""
DIVE_MIN_SECONDS = 10.0
"""Below this much time left, the dive rounds the rest at once."""
SWAP_ROUNDS = 8
"""Rounds (a batch of moves, a master re-solve) per call of :func:`swap`."""
SWAP_BATCH = 16
"""Moves tried together in the first swap round."""
SWAP_TOL = 1e-7
"""A move must promise to lower the master's value by this share of it."""


class DiveMaster(Protocol):
    """The LP the dive works on: training options are its first ``ny`` columns."""

    h: Any
    ny: int

    def solve(self, left: float | None) -> bool: ...

    def value(self) -> float: ...


class Room:
    """Chips per pool and period left by the training options fixed so far."""

    def __init__(self, ix: FleetIndex) -> None:
        self.ix = ix
        self.room = ix.capacity.copy()
        self.gang = np.array([r.gang_chips for r in ix.fleet.training], dtype=np.float64)
        R = len(ix.fleet.training)
        self.order = np.argsort(ix.train_run, kind="stable")
        self.bounds = np.searchsorted(ix.train_run[self.order], np.arange(R + 1))
        self.chosen = np.full(R, -1, dtype=np.int64)

    def choose(self, y: FloatArray) -> None:
        """Take the options at 1 in ``y`` (0/1 over all options), dropping the others."""
        self.room = self.ix.capacity.copy()
        self.chosen[:] = -1
        for o in np.flatnonzero(y > 0.5):
            self.take(int(self.ix.train_run[o]), int(o))

    def fixed(self, ny: int) -> FloatArray:
        """0/1 over the training options: 1 for the chosen ones."""
        out = np.zeros(ny)
        out[self.chosen[self.chosen >= 0]] = 1.0
        return out

    def options(self, r: int) -> IntArray:
        out: IntArray = self.order[self.bounds[r]:self.bounds[r + 1]]
        return out

    def _span(self, o: int) -> tuple[int, slice, FloatArray]:
        ix = self.ix
        s0, d = int(ix.train_start[o]), int(ix.train_duration[o])
        need = np.full(d, self.gang[ix.train_run[o]])
        need[-1] *= ix.train_last_fraction[o]
        return int(ix.train_pool[o]), slice(s0, s0 + d), need

    def fits(self, o: int) -> bool:
        p, span, need = self._span(o)
        return bool((self.room[p, span] >= need - 1e-9).all())

    def take(self, r: int, o: int) -> None:
        p, span, need = self._span(o)
        self.room[p, span] -= need
        self.chosen[r] = o

    def free(self, r: int) -> None:
        p, span, need = self._span(int(self.chosen[r]))
        self.room[p, span] += need
        self.chosen[r] = -1

    def n_fitting(self, runs: IntArray) -> IntArray:
        return np.array([sum(self.fits(int(o)) for o in self.options(int(r))) for r in runs],
                        dtype=np.int64)

    def eject(self, r: int, preferred: IntArray) -> bool:
        """Place run ``r``, which fits nowhere, by moving one placed run out of its way
        to another option of its own that fits; True when done."""
        ix = self.ix
        for o in preferred:
            p, span, _ = self._span(int(o))
            placed = np.flatnonzero(self.chosen >= 0)
            ch = self.chosen[placed]
            s0, s1 = ix.train_start[ch], ix.train_start[ch] + ix.train_duration[ch]
            blocking = placed[(ix.train_pool[ch] == p) & (s0 < span.stop) & (s1 > span.start)]
            for other in blocking:
                old = int(self.chosen[other])
                self.free(int(other))
                if self.fits(int(o)):
                    self.take(r, int(o))
                    for alt in self.options(int(other)):
                        if alt != old and self.fits(int(alt)):
                            self.take(int(other), int(alt))
                            return True
                    self.free(r)
                self.take(int(other), old)
        return False


def dive(master: DiveMaster, ix: FleetIndex, model: Model,
         left: Callable[[], float | None], note: Callable[[str], None]) -> Room | None:
    """Fix training options by diving on the master LP (warm re-solves): runs the LP
    already places whole are fixed there, else the most confident share of the rest
    take their favourite option that fits (a run that fits nowhere moves a placed run
    to another of its options); the LP is re-solved after each round.
    Returns the chosen options (:attr:`Room.chosen`), with the master solved at them,
    or None."""
    y = model.cols["y"]
    cost = model.objective[y.start:y.stop]
    R = len(ix.fleet.training)
    room = Room(ix)
    h = master.h
    ycols = np.arange(master.ny, dtype=np.int32)
    done = np.zeros(R, dtype=bool)
    rounds = 0
    while not done.all():
        yv = np.asarray(h.getSolution().col_value)[ycols]
        best = np.array([yv[room.options(r)].max(initial=0.0) for r in range(R)])
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
            pick = np.zeros(R, dtype=bool)
            pick[free[np.lexsort((-best[free], room.n_fitting(free)))[:k]]] = True
        chosen = np.flatnonzero(pick)
        for r in chosen[np.lexsort((-best[chosen], room.n_fitting(chosen)))]:
            opts = room.options(int(r))
            done[r] = True
            if total[r] <= 1e-6:
                continue  # the LP leaves it unscheduled
            liked = yv[opts] > 1e-6
            ranked = opts[np.lexsort((cost[opts], -np.where(liked, yv[opts], 0.0)))]
            for o in ranked:
                if room.fits(int(o)):
                    room.take(int(r), int(o))
                    break
            else:
                room.eject(int(r), ranked)
        lo = room.fixed(master.ny)
        hi = np.where(done[ix.train_run], lo, 1.0)
        h.changeColsBounds(ycols.size, ycols, lo, hi)
        rounds += 1
        if not master.solve(left()):
            return None
        note(f"dive {rounds}: {int(done.sum())}/{R} runs fixed, master {master.value():.6g}")
    return room


def swap(master: DiveMaster, room: Room, left: Callable[[], float | None],
         note: Callable[[str], None], rounds: int = SWAP_ROUNDS) -> int:
    """Local search on the chosen training options, the master solved with them fixed.

    The master's reduced costs price moving a placed run to another of its options
    that fits: ``d_new - d_old`` is a lower bound on the change of the master's
    value (an LP's value is convex in its column bounds), so only moves with a
    negative price can pay. The most promising moves, one per run, are made a batch
    at a time; a batch is kept when the master's value drops, else undone and the
    next batch halved (a single move that failed is not tried again).
    Returns how many moves were kept; the master is left solved at the best options."""
    h = master.h
    ycols = np.arange(master.ny, dtype=np.int32)
    batch, kept = SWAP_BATCH, 0
    failed: set[tuple[int, int]] = set()
    best = master.value()

    def pin() -> None:  # the master's training at the room's options
        fixed = room.fixed(master.ny)
        h.changeColsBounds(ycols.size, ycols, fixed, fixed)
    for _ in range(rounds):
        tl = left()
        if tl is not None and tl <= 0:
            break
        rc = np.asarray(h.getSolution().col_dual)[:master.ny]
        tol = SWAP_TOL * max(abs(float(h.getInfo().objective_function_value)), 1.0)
        moves: list[tuple[float, int, int, int]] = []  # (price, run, from, to)
        for run in np.flatnonzero(room.chosen >= 0).tolist():
            o = int(room.chosen[run])
            opts = room.options(run)
            price = rc[opts] - rc[o]
            room.free(run)
            for k in np.argsort(price):
                if price[k] >= -tol:
                    break
                if (run, int(opts[k])) not in failed and room.fits(int(opts[k])):
                    moves.append((float(price[k]), run, o, int(opts[k])))
                    break
            room.take(run, o)
        if not moves:
            break
        moves.sort()
        made: list[tuple[int, int, int]] = []
        for _, r, o, new in moves[:batch]:
            room.free(r)
            if room.fits(new):
                room.take(r, new)
                made.append((r, o, new))
            else:
                room.take(r, o)
        pin()
        if master.solve(left()) and master.value() < best - SWAP_TOL * abs(best):
            best = master.value()
            kept += len(made)
            continue
        for r, o, new in reversed(made):
            room.free(r)
            room.take(r, o)
            if len(made) == 1:
                failed.add((r, new))
        batch = max(1, batch // 2)
        pin()
        if not master.solve(left()):
            break
    note(f"swaps: {kept} moves kept, master {master.value():.6g}")
    return kept
