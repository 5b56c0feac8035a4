"""The period decomposition: a feasible plan and a valid lower bound on small fleets."""

from __future__ import annotations

import numpy as np
import pytest

from cloudhedge.planning import decompose
from cloudhedge.planning.build import ModelBuilder
from cloudhedge.planning.generate import generate_fleet
from cloudhedge.planning.index import build_index
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


@pytest.mark.parametrize("size", [(30, 20, 6, 0), (40, 24, 8, 1), (60, 24, 6, 2)])
def test_decomposition_is_feasible_and_brackets_the_optimum(
        size: tuple[int, int, int, int]) -> None:
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
