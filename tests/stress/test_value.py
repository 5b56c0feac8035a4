"""Hedge value: loss valuation, premium and payout on fleets where the answer is known."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))

import numpy as np
import pytest
from fleets import Policies, TrainingRun, fleet, pool, service, surv

from cloudhedge.core.models import Criticality, Fleet
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.planning.solve import SolveOptions
from cloudhedge.stress.library import resolve_scenario_ref
from cloudhedge.stress.risk import SampleOutcomes
from cloudhedge.stress.value import hedge_value, loss_usd, variants

EXACT = PlanOptions(solve=SolveOptions(gap=0.0), explain=False)
T = 3
H = 730.0


def _fleet() -> Fleet:
    # a is cheap, b dear; chat is critical and must keep half after losing a provider
    pools = [pool("a-h100", "aws", "h100", 100, 2.0, T=T),
             pool("b-h100", "azure", "h100", 100, 3.0, T=T, region="r2")]
    svc = service("chat", 150000.0, T=T, crit=Criticality.CRITICAL)  # 50 h100 chips
    return fleet(pools, T=T, inference=[svc], policies=Policies(survivability=surv(0.5)))


def test_loss_values_shortfall_at_the_fleets_penalties() -> None:
    run = TrainingRun("pretrain", gang_chips=10, chip_hours=1000.0, accelerators=("h100",),
                      window_start=0, window_end=2, priority=2)
    f = fleet([pool("a-h100", "aws", "h100", 100, 2.0, T=T)], T=T,
              inference=[service("chat", 1000.0, T=T)], training=[run])
    out = SampleOutcomes(
        demand_tokens=np.array([[1e12], [1e12]]), unserved_tokens=np.array([[2e6], [0.0]]),
        worst_period_share=np.ones((2, 1)), cost_usd=np.zeros(2),
        extra_cost_usd=np.array([10.0, 5.0]),
        training_delay_hours=np.array([[30.0], [500.0]]),
        training_lost_chip_hours=np.zeros((2, 1)),
        training_missed=np.array([[True], [True]]),
        batch_delayed=np.zeros((2, 0)), batch_unserved=np.zeros((2, 0)))
    loss = loss_usd(f, out, ["chat"])
    penalty = f.training_penalty_usd_per_chip_hour * 2
    # sample 0: 2 M tokens at 50 USD/M + 10 chips x 30 h slip; sample 1: slip capped at the run
    assert loss[0] == pytest.approx(10.0 + 2 * 50.0 + 10 * 30.0 * penalty)
    assert loss[1] == pytest.approx(5.0 + 1000.0 * penalty)


def test_the_hedge_pays_when_the_cheap_provider_is_lost() -> None:
    f = _fleet()
    plan = make_plan(f, EXACT)
    vs = variants(f, plan, EXACT)
    assert [v.name for v in vs] == ["hedged", "unhedged", "single-provider"]
    hedged, unhedged, single = (v.plan for v in vs)
    # unhedged: all 50 chips on a; hedged: 25 on each
    assert unhedged.cost.total_usd == pytest.approx(50 * 2.0 * H * T)
    assert hedged.cost.total_usd == pytest.approx(25 * (2.0 + 3.0) * H * T)
    lose_aws = resolve_scenario_ref(f, "builtin:n-1-aws")
    lose_azure = resolve_scenario_ref(f, "builtin:n-1-azure")
    hv = hedge_value(vs, lose_aws + lose_azure)
    by = {v.name: v for v in hv.variants}
    assert by["unhedged"].premium_usd == 0.0
    assert by["hedged"].premium_usd == pytest.approx(25 * 1.0 * H * T)
    # losing aws, both fail over to azure's idle chips: the unhedged plan buys 50 chips
    # there, the hedged one 25; the payout is the 25 chips it does not have to buy
    assert hv.payout_usd["n-1-aws"] == pytest.approx(25 * 3.0 * H * T, rel=1e-6)
    # losing azure costs the unhedged plan nothing, the hedged one 25 chips on aws
    assert hv.payout_usd["n-1-azure"] == pytest.approx(-25 * 2.0 * H * T, rel=1e-6)
    # all on aws with no azure account: losing aws loses the whole service
    single_loss = {o.scenario: o.loss_usd for o in by["single-provider"].outcomes}
    tokens = 150000.0 * 3600 * H * T
    assert single.cost.total_usd == pytest.approx(unhedged.cost.total_usd)
    assert single_loss["n-1-aws"] == pytest.approx(tokens * 50.0 / 1e6, rel=1e-6)
    assert any("premium" in line for line in hv.text)


def test_expected_and_cvar_rows_come_from_the_same_samples() -> None:
    f = _fleet()
    plan = make_plan(f, EXACT)
    vs = variants(f, plan, EXACT)
    a = hedge_value(vs, [], samples=256, seed=3)
    b = hedge_value(vs, [], samples=256, seed=3)
    assert a == b
    for v in a.variants:
        rows = {o.scenario: o for o in v.outcomes}
        assert set(rows) == {"expected", "cvar95"}
        assert rows["cvar95"].loss_usd >= rows["expected"].loss_usd - 1e-6
    assert a.payout_usd["expected"] == pytest.approx(
        next(o.loss_usd for o in a.variants[1].outcomes if o.scenario == "expected")
        - next(o.loss_usd for o in a.variants[0].outcomes if o.scenario == "expected"),
        abs=0.02)
