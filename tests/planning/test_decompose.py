"""The period decomposition: a feasible plan and a valid lower bound on small fleets."""

from __future__ import annotations

import highspy
import numpy as np
import pytest

from cloudhedge.planning import decompose
from cloudhedge.planning.build import ModelBuilder
from cloudhedge.planning.dive import Room, dive, swap
from cloudhedge.planning.generate import generate_fleet
from cloudhedge.planning.index import FleetIndex, build_index
from cloudhedge.planning.periods import SLACK_TOL, PeriodLPs, coarse_model
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.planning.solve import SolveOptions, solve


def _feasible(model: decompose.Model, x: np.ndarray) -> None:
    r = model.A @ x
    tol = 1e-6 * np.maximum(1.0, np.abs(np.where(np.isfinite(model.row_hi), model.row_hi, 0.0)))
    assert (r >= model.row_lo - tol).all()
    assert (r <= model.row_hi + tol).all()
    assert (x >= model.col_lo - 1e-9).all()
    assert (x <= model.col_hi + 1e-9).all()
    ints = model.integer
    assert np.allclose(x[ints], np.round(x[ints]))


@pytest.fixture(params=["batch in master", "batch in periods"])
def batch_out(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both places for the batch classes: the master (smaller fleets) or the period
    LPs (from ``BATCH_OUT_MIN_COLUMNS`` model columns)."""
    out = request.param == "batch in periods"
    monkeypatch.setattr(decompose, "BATCH_OUT_MIN_COLUMNS", 0 if out else 10**12)
    return out


@pytest.mark.parametrize("size", [(30, 20, 6, 0), (40, 24, 8, 1), (60, 24, 6, 2)])
def test_decomposition_is_feasible_and_brackets_the_optimum(
        size: tuple[int, int, int, int], batch_out: bool) -> None:
    w, p, t, seed = size
    ix = build_index(generate_fleet(w, p, t, seed=seed))
    model = ModelBuilder(ix).build()
    assert decompose.applicable(model)
    bound, sol = decompose.solve_decomposed(ix, model, SolveOptions(gap=0.0))
    assert sol.has_solution and sol.objective is not None and sol.mip_bound is not None
    _feasible(model, sol.x)
    assert sol.objective == pytest.approx(float(model.objective @ sol.x + model.offset))
    exact = solve(model, SolveOptions(gap=0.0))
    assert exact.objective is not None
    assert sol.mip_bound <= exact.objective * (1 + 1e-7)
    assert exact.objective <= sol.objective * (1 + 1e-7)
    assert bound.objective == sol.mip_bound
    assert sol.gap is not None and sol.gap >= 0.0


def test_lagrangian_bound_with_exact_duals_is_the_lp_optimum() -> None:
    ix = build_index(generate_fleet(30, 20, 6, seed=0))
    model = ModelBuilder(ix).build()
    lp = solve(model, SolveOptions(), relax=True)
    assert lp.row_dual is not None and lp.objective is not None
    assert decompose.lagrangian_bound(ix, model, lp.row_dual) == pytest.approx(
        lp.objective, rel=1e-6)
    # any prices give a bound below the optimum, even nonsense ones
    rng = np.random.default_rng(0)
    noisy = lp.row_dual * rng.uniform(0.0, 2.0, size=lp.row_dual.size)
    assert decompose.lagrangian_bound(ix, model, noisy) <= lp.objective * (1 + 1e-9)


def test_planner_uses_decomposition_when_asked() -> None:
    fleet = generate_fleet(30, 20, 6, seed=0)
    plan = make_plan(fleet, PlanOptions(solve=SolveOptions(gap=0.01),
                                        explain=False, decompose=True))
    assert plan.solver.mip_bound_usd is not None and plan.solver.objective_usd is not None
    assert plan.solver.mip_bound_usd <= plan.solver.objective_usd
    exact = make_plan(fleet, PlanOptions(solve=SolveOptions(gap=0.0), explain=False,
                                         decompose=False))
    assert exact.solver.objective_usd is not None
    assert plan.solver.mip_bound_usd <= exact.solver.objective_usd * (1 + 1e-7)


def test_hedge_costs_take_the_plans_path() -> None:
    """With the decomposition, each policy's re-solve is decomposed too: dropping a
    policy never costs more than the two solves' gaps."""
    fleet = generate_fleet(30, 20, 6, seed=0)
    plan = make_plan(fleet, PlanOptions(solve=SolveOptions(gap=0.005), decompose=True,
                                        duals=False, conflicts=False))
    assert plan.solver.objective_usd is not None
    priced = [h for h in plan.hedge_costs if h.cost_usd is not None]
    assert len(priced) >= 4  # caps, survivability, exclusivity, residency
    for h in priced:
        assert h.cost_usd is not None and h.uncertainty_usd is not None
        assert h.cost_usd >= -h.uncertainty_usd - 1e-6 * plan.solver.objective_usd


def test_master_is_seeded_from_the_period_lps() -> None:
    ix = build_index(generate_fleet(40, 24, 8, seed=1))
    model = ModelBuilder(ix).build()
    info = decompose.DecomposeInfo()
    _, sol = decompose.solve_decomposed(ix, model, SolveOptions(gap=0.0), info)
    assert info.steps[0].split()[1:3] == ["seed", "period"]
    assert sol.has_solution and sol.mip_bound is not None and sol.objective is not None
    _feasible(model, sol.x)
    exact = solve(model, SolveOptions(gap=0.0))
    assert exact.objective is not None
    assert sol.mip_bound <= exact.objective * (1 + 1e-7) <= sol.objective * (1 + 2e-7)


def test_bound_reaches_the_lp_relaxation(batch_out: bool) -> None:
    """Without a time limit the LP phase runs until its bound is within 0.2% of a
    plan with training fractional, so the bound is at least that close to the LP
    optimum (and the branch-and-bound on the master may raise it further)."""
    ix = build_index(generate_fleet(40, 24, 8, seed=1))
    model = ModelBuilder(ix).build()
    lp = solve(model, SolveOptions(), relax=True)
    _, sol = decompose.solve_decomposed(ix, model, SolveOptions(gap=0.0))
    assert lp.objective is not None and sol.mip_bound is not None
    assert sol.mip_bound >= lp.objective * (1 - 0.0025)


def test_lp_phase_moves_to_ipm_after_slow_simplex_solves_and_back() -> None:
    h = highspy.Highs()
    choice = decompose._LPSolver(h)

    def solver() -> str:
        return str(h.getOptionValue("solver")[1])

    slow = decompose.IPM_AFTER_SECONDS
    choice.after(slow)
    choice.after(slow / 10)  # a quick solve in between: no switch
    choice.after(slow)
    assert solver() != "ipm" and not choice.ipm
    choice.after(slow * 2)
    assert solver() == "ipm" and choice.ipm
    choice.after(slow * 3)  # slower than the simplex once: still the ipm
    choice.after(slow)
    assert choice.ipm
    choice.after(slow * 2)
    choice.after(slow * 2)  # twice in a row no faster: back to simplex for good
    assert solver() == "simplex" and not choice.ipm
    choice.after(slow * 5)
    choice.after(slow * 5)
    assert solver() == "simplex"


def test_lp_phase_on_ipm_brackets_the_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interior point method (with crossover) in the LP phase gives the same
    guarantees: a feasible plan, a bound below the optimum and near the LP."""
    monkeypatch.setattr(decompose, "IPM_AFTER_SECONDS", 0.0)
    plan, bound, lp, exact = _decomposed((40, 24, 8, 1), SolveOptions(gap=0.0), "ipm")
    assert lp * (1 - 0.0025) <= bound <= exact * (1 + 1e-7)
    assert exact <= plan * (1 + 1e-7)


def _decomposed(size: tuple[int, int, int, int], options: SolveOptions,
                step: str) -> tuple[float, float, float, float]:
    """Plan a generated fleet by decomposition, check that a step's log names
    ``step`` and that the plan is feasible; (plan, bound, LP optimum, MILP optimum)."""
    w, p, t, seed = size
    ix = build_index(generate_fleet(w, p, t, seed=seed))
    model = ModelBuilder(ix).build()
    info = decompose.DecomposeInfo()
    _, sol = decompose.solve_decomposed(ix, model, options, info)
    assert any(step in line for line in info.steps)
    assert sol.objective is not None and sol.mip_bound is not None
    _feasible(model, sol.x)
    exact = solve(model, SolveOptions(gap=0.0))
    lp = solve(model, SolveOptions(), relax=True)
    assert exact.objective is not None and lp.objective is not None
    return sol.objective, sol.mip_bound, lp.objective, exact.objective


@pytest.mark.parametrize("size", [(30, 20, 6, 0), (40, 24, 8, 1)])
def test_background_branch_and_bound_lifts_the_bound_validly(
        size: tuple[int, int, int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """With a time limit, a branch-and-bound on a copy of the master (its loose
    cuts dropped) runs beside the integral phase: its bound lies above the LP
    relaxation and below the optimum."""
    monkeypatch.setattr(decompose, "MIP_MIN_SECONDS", 1e9)  # no branch-and-bound after
    plan, bound, lp, exact = _decomposed(size, SolveOptions(gap=0.0, time_limit_s=20.0),
                                         "background branch-and-bound")
    assert lp * (1 + 1e-4) < bound <= exact * (1 + 1e-7) <= plan * (1 + 2e-7)


@pytest.mark.parametrize("out", [False, True])
def test_cuts_never_overestimate_a_period(out: bool) -> None:
    """Q_t is convex in what the linking columns take from period t, and the period
    LP's row duals are a subgradient: a cut made at one point stays below Q_t at
    another (the sign conventions of HiGHS's duals are what this checks)."""
    ix = build_index(generate_fleet(40, 24, 8, seed=1))
    model = ModelBuilder(ix).build()
    options = SolveOptions()
    co = coarse_model(ix, model)
    co.batch_in_master = not out
    periods = PeriodLPs(ix, model, co, options)
    try:
        master = decompose._Master(ix, model, co, periods, options)
        s0 = master.shift(np.zeros(master.n))
        assert periods.solve(s0, None)
        q0, g0 = periods.values.copy(), [g.copy() for g in periods.duals]
        master.add_cuts(periods, s0)
        assert master.solve(None)
        s1 = master.shift(master.x())
        assert np.abs(s1 - s0).max() > 1.0  # the master did move training and batch
        assert periods.solve(s1, None)
        for t, rows in enumerate(periods.rows):
            cut = q0[t] - g0[t] @ (s1[rows] - s0[rows])
            assert periods.values[t] >= cut - 1e-6 * max(1.0, abs(cut))
        # shared cuts: one period's duals bound every period, and are tight at home
        Y, K = periods.constants(np.column_stack(g0))
        assert np.isfinite(K).sum() >= ix.T * (ix.T - 1)
        for k in range(ix.T):
            assert K[k, k] == pytest.approx(q0[k] - g0[k] @ s0[periods.rows[k]], rel=1e-6)
            for t, rows in enumerate(periods.rows):
                if np.isfinite(K[k, t]):
                    cut = K[k, t] - Y[:, k] @ s1[rows]
                    assert periods.values[t] >= cut - 1e-6 * max(1.0, abs(cut))
        # the master's value is a lower bound: theta_t sits on the cuts
        assert master.value() <= float(master.cost @ master.x()) + periods.values.sum() \
            + model.offset + 1e-6 * abs(master.value())
    finally:
        periods.close()


def _blocked_pair(ix: FleetIndex, room: Room) -> tuple[int, int, int, int, int] | None:
    """Runs a and b, an option oa of a and ob of b on one pool p at overlapping
    times, and an option of b on a pool where a has none: (a, b, p, ob, that pool)."""
    pool, start, dur = ix.train_pool, ix.train_start, ix.train_duration
    R = len(ix.fleet.training)
    for a in range(R):
        a_pools = set(pool[room.options(a)].tolist())
        for b in range(R):
            if a == b:
                continue
            alts = [o for o in room.options(b) if pool[o] not in a_pools]
            if not alts:
                continue
            for oa in room.options(a):
                for ob in room.options(b):
                    if pool[ob] == pool[oa] and start[ob] < start[oa] + dur[oa] \
                            and start[oa] < start[ob] + dur[ob]:
                        return a, b, int(pool[oa]), int(ob), int(pool[alts[0]])
    return None


def test_a_run_that_fits_nowhere_moves_a_placed_run() -> None:
    ix = build_index(generate_fleet(40, 24, 8, seed=1))
    room = Room(ix)
    found = _blocked_pair(ix, room)
    assert found is not None, "the fleet should have two runs that can share a pool"
    a, b, p, ob, q = found
    room.room[:] = 0.0
    room.room[p] = max(room.gang[a], room.gang[b])  # one of the two runs at a time
    room.room[q] = ix.capacity[q]
    room.take(b, int(ob))
    assert not any(room.fits(int(o)) for o in room.options(a))
    assert room.eject(a, room.options(a))
    assert room.chosen[a] >= 0 and room.chosen[b] >= 0 and room.chosen[b] != ob
    assert (room.room >= -1e-9).all()


def test_room_rows_keep_batch_placeable() -> None:
    """With batch in the period LPs the master only decides each job's work per
    period; its room rows (Hall's condition per set of batch classes) make sure the
    period LPs can place that work without elastic slack."""
    ix = build_index(generate_fleet(60, 24, 6, seed=2))
    model = ModelBuilder(ix).build()
    options = SolveOptions()
    co = coarse_model(ix, model)
    co.batch_in_master = False
    periods = PeriodLPs(ix, model, co, options)
    try:
        master = decompose._Master(ix, model, co, periods, options)
        assert master.room_in  # the single classes' rows from the start
        # no cut prices batch yet: the master puts every job's work where it likes
        assert master.solve(None)
        x = master.x()
        assert x[master.n - master.nh:].sum() > 0.0
        assert periods.solve(master.shift(x), None)
        assert periods.slack.max() <= SLACK_TOL
        # the fallback point, every job left undone, fits whatever training does
        undone = master.unbatched(x)
        assert not undone[master.n - master.nh:].any()
        assert np.allclose(undone[master.ub], master.need)
        assert periods.solve(master.shift(undone), None)
        assert periods.slack.max() <= SLACK_TOL
    finally:
        periods.close()


def test_swaps_move_runs_to_cheaper_options() -> None:
    """After a bad choice of training options, the reduced-cost swaps lower the
    master's value, keep every run inside its pool's room, and leave the master
    solved at the options the room holds."""
    ix = build_index(generate_fleet(40, 24, 8, seed=1))
    model = ModelBuilder(ix).build()
    options = SolveOptions()
    co = coarse_model(ix, model)
    periods = PeriodLPs(ix, model, co, options)
    try:
        master = decompose._Master(ix, model, co, periods, options)
        assert master.solve(None)
        s = master.shift(master.x())
        assert periods.solve(s, None)
        master.add_cuts(periods, s)
        assert master.solve(None)
        steps: list[str] = []
        room = dive(master, ix, model, lambda: None, steps.append)
        assert room is not None and (room.chosen >= 0).any()
        dived = master.value()
        # the worst option that fits for every run, by the master's own prices
        rc = np.asarray(master.h.getSolution().col_dual)[:master.ny]
        for r in np.flatnonzero(room.chosen >= 0):
            room.free(int(r))
            opts = room.options(int(r))
            room.take(int(r), int(next(int(o) for o in opts[np.argsort(-rc[opts])]
                                       if room.fits(int(o)))))
        ycols = np.arange(master.ny, dtype=np.int32)
        bad = room.fixed(master.ny)
        master.h.changeColsBounds(master.ny, ycols, bad, bad)
        assert master.solve(None)
        worse = master.value()
        assert worse > dived
        kept = swap(master, room, lambda: None, steps.append, rounds=20)
        assert kept > 0 and steps[-1].startswith(f"swaps: {kept} moves kept")
        assert master.value() < worse
        # the room is what the chosen options leave, and the master holds them
        fresh = Room(ix)
        fresh.choose(room.fixed(master.ny))
        assert np.allclose(fresh.room, room.room) and (room.room >= -1e-9).all()
        y = np.asarray(master.h.getSolution().col_value)[:master.ny]
        assert np.allclose(y, room.fixed(master.ny))
        assert np.bincount(ix.train_run, weights=y).max() <= 1.0
    finally:
        periods.close()
