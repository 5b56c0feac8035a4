"""Re-planning from a period on with the past fixed (what ``stress`` calls replanned)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from fleets import BatchJob, Policies, TrainingRun, fleet, pool, service, surv

from cloudhedge.core.errors import PlanningError
from cloudhedge.core.models import Criticality, DomainKind, Fleet, Horizon
from cloudhedge.core.plan import Plan
from cloudhedge.planning.generate import generate_fleet
from cloudhedge.planning.index import PolicySwitches
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.planning.replan import ScenarioInputs, replan
from cloudhedge.planning.solve import SolveOptions

EXACT = PlanOptions(solve=SolveOptions(gap=0.0), explain=False)
UNHEDGED = PolicySwitches(caps=(), survivability=())
T = 4


def _fleet(window_end: int = 3) -> Fleet:
    pools = [
        pool("a-h100", "aws", "h100", 64, 2.0, T=T),
        pool("z-h100", "azure", "h100", 64, 2.5, T=T, region="r2"),
        pool("o-mi300x", "oci", "mi300x", 64, 2.2, T=T, region="r3"),
    ]
    run = TrainingRun("pretrain", gang_chips=16, chip_hours=16 * 730 * 2.0,
                      accelerators=("h100",), window_start=0, window_end=window_end)
    job = BatchJob("evals", chip_hours=8 * 730.0, accelerators=("h100", "mi300x"),
                   window_start=0, window_end=3)
    svc = service("chat", 30000.0, T=T, crit=Criticality.CRITICAL)
    return fleet(pools, T=T, inference=[svc], training=[run], batch=[job],
                 policies=Policies(survivability=surv(0.5)))


def _inputs(f: Fleet, start: int, lost: str | None = None,
            price: float = 1.0) -> ScenarioInputs:
    P = len(f.pools)
    cf, pf = np.ones((P, T)), np.ones((P, T))
    for i, p in enumerate(f.pools):
        if p.provider == lost:
            cf[i, start:] = 0.0
        pf[i, start:] = price
    return ScenarioInputs(cf, pf, {}, start)


def _objective(p: Plan) -> float:
    return p.cost.total_usd + p.cost.penalty_usd


def _past(p: Plan, start: int) -> dict[tuple[int, str, str], float]:
    return {(a.period, a.pool, a.workload): a.chips for a in p.allocations if a.period < start}


def _same_past(a: Plan, b: Plan, start: int) -> None:
    pa, pb = _past(a, start), _past(b, start)
    assert pa.keys() == pb.keys()
    for k, v in pa.items():
        assert pb[k] == pytest.approx(v, abs=2e-3), k


@pytest.mark.parametrize("start", [0, 1, 2])
def test_no_event_reproduces_the_plan_and_keeps_its_past(start: int) -> None:
    f = _fleet()
    plan = make_plan(f, EXACT)
    again, _ = replan(f, plan, _inputs(f, start), EXACT)
    assert again.status == "optimal"
    assert _objective(again) == pytest.approx(_objective(plan), rel=1e-5)
    _same_past(again, plan, start)


@pytest.mark.parametrize(("lost", "start"), [("aws", 0), ("aws", 2), ("azure", 1), ("oci", 3)])
def test_losing_capacity_never_costs_less_than_the_plan(lost: str, start: int) -> None:
    f = _fleet()
    plan = make_plan(f, EXACT)
    after, _ = replan(f, plan, _inputs(f, start, lost=lost), EXACT)
    assert after.status == "optimal"
    assert _objective(after) >= _objective(plan) * (1 - 1e-5)  # plan.json rounding
    _same_past(after, plan, start)
    provider = {p.name: p.provider for p in f.pools}
    for a in after.allocations:  # nothing runs on the lost provider from the event on
        if a.period >= start:
            assert provider[a.pool] != lost


def test_price_factor_bills_market_pools_at_the_new_price() -> None:
    f = _fleet()
    plan = make_plan(f, EXACT)
    after, _ = replan(f, plan, _inputs(f, 2, price=3.0), EXACT)
    pools = {p.name: p.price_usd_per_chip_hour for p in f.pools}
    for a in after.allocations:
        factor = 3.0 if a.period >= 2 else 1.0
        assert a.cost_usd == pytest.approx(a.chips * 730.0 * pools[a.pool] * factor, rel=1e-3)
    assert after.cost.total_usd > plan.cost.total_usd


def test_a_run_whose_pool_fails_resumes_from_its_checkpoint_elsewhere() -> None:
    f = _fleet(window_end=1)  # two periods of work in a two-period window: starts at 0
    plan = make_plan(f, EXACT)
    placed = next(t for t in plan.training if t.workload == "pretrain")
    assert placed.scheduled and placed.start_period == 0 and placed.pool is not None
    provider = next(p.provider for p in f.pools if p.name == placed.pool)
    after, notes = replan(f, plan, _inputs(f, 1, lost=provider), EXACT)
    moved = next(t for t in after.training if t.workload == "pretrain")
    assert moved.scheduled and moved.pool != placed.pool
    assert moved.start_period is not None and moved.start_period >= 1
    assert any("pretrain" in n and "checkpoint" in n for n in notes)


def test_demand_surge_raises_demand_from_the_event_on() -> None:
    f = _fleet()
    plan = make_plan(f, EXACT)
    base = _inputs(f, 2)
    surge = ScenarioInputs(base.capacity_factor, base.price_factor,
                           {"chat": np.array([1.0, 1.0, 2.0, 2.0])}, 2)
    after, _ = replan(f, plan, surge, EXACT)
    chips = {t: sum(a.chips for a in after.allocations
                    if a.workload == "chat" and a.period == t) for t in range(T)}
    assert chips[2] == pytest.approx(2 * chips[1], rel=1e-3)


def test_random_fleets_replan_costs_at_least_the_plan() -> None:
    opts = PlanOptions(solve=SolveOptions(gap=0.0, time_limit_s=60), explain=False)
    for seed in range(3):
        f = generate_fleet(12, 10, 6, seed=seed)
        plan = make_plan(f, opts)
        provider = f.pools[0].provider
        after, notes = replan(f, plan, _inputs_for(f, 3, provider), opts)
        # the only reason to cost less: caps and survivability bent (and said so); then
        # the bound is the plan made without them
        bent = any("re-planned without them" in n for n in notes)
        base = make_plan(f, replace(opts, switches=UNHEDGED)) if bent else plan
        assert _objective(after) >= _objective(base) * (1 - 1e-5)


def _inputs_for(f: Fleet, start: int, lost: str) -> ScenarioInputs:
    P, n = len(f.pools), f.horizon.periods
    cf = np.ones((P, n))
    for i, p in enumerate(f.pools):
        if p.provider == lost:
            cf[i, start:] = 0.0
    return ScenarioInputs(cf, np.ones((P, n)), {}, start)


def test_a_plan_from_another_horizon_is_refused() -> None:
    f = _fleet()
    plan = make_plan(f, EXACT)
    other = f.copy(horizon=Horizon(f.horizon.start, T + 1),
                   pools=tuple(p.copy(capacity_chips=(*p.capacity_chips, 64.0))
                               for p in f.pools))
    with pytest.raises(PlanningError, match="periods"):
        replan(other, plan, _inputs(f, 0), EXACT)


def test_policies_that_would_leave_demand_unmet_bend_and_the_replan_says_so() -> None:
    # chat is critical with survivability 0.5 per provider: after losing aws and oci only
    # azure is left, so keeping the rule means serving nothing; the re-plan serves it
    f = _fleet()
    plan = make_plan(f, EXACT)
    P = len(f.pools)
    cf = np.ones((P, T))
    for i, p in enumerate(f.pools):
        if p.provider in ("aws", "oci"):
            cf[i, 1:] = 0.0
    after, notes = replan(f, plan, ScenarioInputs(cf, np.ones((P, T)), {}, 1), EXACT)
    assert any("re-planned without them" in n for n in notes)
    served = sum(a.chips for a in after.allocations if a.workload == "chat" and a.period == 2)
    assert served * 3000.0 == pytest.approx(30000.0, rel=1e-3)


def test_survivability_of_a_spent_domain_kind_is_not_asked_again() -> None:
    f = _fleet()
    plan = make_plan(f, EXACT)
    inputs = _inputs(f, 1, lost="aws")
    spent = ScenarioInputs(inputs.capacity_factor, inputs.price_factor, {}, 1,
                           spent=(DomainKind.PROVIDER,))
    after, notes = replan(f, plan, spent, EXACT)
    assert any("survivability per provider is not asked" in n for n in notes)
    assert not any("re-planned without them" in n for n in notes)
    assert after.cost.penalty_usd == pytest.approx(0.0, abs=1e-3)
