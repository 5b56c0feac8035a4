"""Immediate impact of Effects on real plans of small hand-built fleets.

Every expected number below is worked out by hand from the fleet (chips x tokens/s per
chip, hours x chips) and the plan's own allocations.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))

import numpy as np
import pytest
from fleets import BatchJob, Contract, Policies, Tier, TrainingRun, fleet, pool, service
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudhedge.core.errors import PlanningError
from cloudhedge.core.models import Criticality, Fleet
from cloudhedge.core.plan import Plan
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.planning.solve import SolveOptions
from cloudhedge.stress.effects import Effects
from cloudhedge.stress.impact import Impact, immediate
from cloudhedge.stress.state import PlanState

EXACT = PlanOptions(solve=SolveOptions(gap=0.0), explain=False)
H = 730.0
CRIT, HIGH, STD = Criticality.CRITICAL, Criticality.HIGH, Criticality.STANDARD


def planned(f: Fleet) -> tuple[Plan, PlanState]:
    plan = make_plan(f, EXACT)
    assert plan.status == "optimal", plan.conflicts
    return plan, PlanState.from_plan(f, plan)


def effects(state: PlanState, losses: dict[str, tuple[float, float]], *, n: int = 1,
            periods: list[int] | None = None,
            demand_factor: dict[str, float] | None = None,
            price_factor: float = 1.0) -> Effects:
    """Pools named in ``losses`` lose (fraction, hours) in ``periods`` (default all)."""
    P, T = len(state.pools), state.periods
    pos = {p.name: i for i, p in enumerate(state.pools)}
    ts = list(range(T)) if periods is None else periods
    lost, down = np.zeros((n, P, T)), np.zeros((n, P, T))
    for name, (fraction, hours) in losses.items():
        lost[:, pos[name], ts] = fraction
        down[:, pos[name], ts] = hours
    factors = {k: np.full((n, T), v) for k, v in (demand_factor or {}).items()}
    return Effects(lost, down, np.full((n, P, T), price_factor), H, factors)


def served(imp: Impact, label: str) -> np.ndarray:
    return imp.served_tokens_per_s[0, imp.units.index(label)]


def chips_on(plan: Plan, pool_name: str, workload: str, period: int = 0) -> float:
    return sum(a.chips for a in plan.allocations
               if a.pool == pool_name and a.workload == workload and a.period == period)


# ---------------------------------------------------------------- reading a plan back
def test_plan_state_reads_every_allocation_back() -> None:
    f = fleet([pool("a", "aws", "h100", 200, 2.0), pool("b", "gcp", "h100", 200, 2.5)],
              inference=[service("chat", {"us": [150_000.0] * 3, "eu": [60_000.0] * 3})],
              training=[TrainingRun("run", 100, 100 * H * 1.5, ("h100",), 0, 2)],
              batch=[BatchJob("etl", 30 * H, ("h100",), 0, 2)])
    plan, state = planned(f)
    used = np.array([p.used_chips for p in plan.pools])
    assert np.allclose(state.used_chips, used, atol=1e-3)
    assert np.allclose(state.planned_tokens_per_s, state.demand_tokens_per_s, rtol=1e-6)
    placement = plan.training[0]
    assert state.pools[state.train_pool[0]].name == placement.pool
    assert state.train_chips[0].sum() == pytest.approx(150.0, abs=1e-3)  # 1.5 periods x 100
    assert state.train_end_hours[0] == pytest.approx((placement.start_period + 1.5) * H)
    assert (state.batch_chip_hours * state.batch_rate[:, None]).sum() == pytest.approx(30 * H)
    assert state.plan_cost_usd.sum() == pytest.approx(plan.cost.total_usd)


def test_a_plan_of_another_fleet_is_rejected_naming_the_difference() -> None:
    f = fleet([pool("a", "aws", "h100", 100, 2.0)], inference=[service("chat", 30_000)])
    plan, _ = planned(f)
    longer = fleet([pool("a", "aws", "h100", 100, 2.0, T=4)],
                   inference=[service("chat", 30_000, T=4)], T=4)
    with pytest.raises(PlanningError, match="horizon: the plan has 3 periods"):
        PlanState.from_plan(longer, plan)
    renamed = fleet([pool("z", "aws", "h100", 100, 2.0)], inference=[service("chat", 30_000)])
    with pytest.raises(PlanningError, match="not in the fleet: a") as err:
        PlanState.from_plan(renamed, plan)
    assert "in the fleet but not in the plan: z" in str(err.value)
    other = fleet([pool("a", "aws", "h100", 100, 2.0)], inference=[service("mail", 30_000)])
    with pytest.raises(PlanningError, match="unknown inference service chat/us"):
        PlanState.from_plan(other, plan)
    resident = fleet([pool("a", "aws", "h100", 100, 2.0)], inference=[service("chat", 30_000)],
                     policies=Policies(residency={"us": ("gcp/r1",)}))
    with pytest.raises(PlanningError, match="does not allow chat/us on this pool"):
        PlanState.from_plan(resident, plan)


def test_without_events_the_plan_is_served_as_planned_at_its_cost() -> None:
    f = fleet([pool("a", "aws", "h100", 100, 2.0), pool("b", "gcp", "h100", 100, 3.0)],
              inference=[service("chat", 150_000)],
              batch=[BatchJob("etl", 20 * H, ("h100",), 0, 2)])
    plan, state = planned(f)
    imp = immediate(state, Effects.none(3, 2, 3, H))
    assert np.allclose(imp.served_tokens_per_s, 150_000.0)
    assert np.all(imp.unserved_tokens <= 1e-3 * H)
    assert np.all(imp.failover_chips == 0) and np.all(imp.extra_chip_hours == 0)
    assert np.allclose(imp.cost_usd, plan.cost.by_period) and np.all(imp.extra_cost_usd == 0)
    assert np.all(imp.batch_delayed_chip_hours == 0)


# ---------------------------------------------------------------- inference
def test_criticality_keeps_chips_first_and_failover_goes_cheapest_first() -> None:
    f = fleet([pool("a", "aws", "h100", 100, 1.0), pool("b", "azure", "h100", 20, 5.0),
               pool("c", "gcp", "h100", 40, 4.0)],
              inference=[service("crit", 150_000, crit=CRIT),
                         service("std", 150_000, crit=STD)])
    plan, state = planned(f)
    assert chips_on(plan, "a", "crit") == pytest.approx(50) and \
        chips_on(plan, "a", "std") == pytest.approx(50)
    # 70% of pool a lost all month: 30 chips survive and all go to crit; failover of the
    # 20 chips crit still needs, then of std's 50, from c (cheaper, 40 spare) then b (20)
    imp = immediate(state, effects(state, {"a": (0.7, H)}))
    assert served(imp, "crit/us") == pytest.approx([150_000.0] * 3)
    assert served(imp, "std/us") == pytest.approx([40 * 3000.0] * 3)
    c, b = imp.pools.index("c"), imp.pools.index("b")
    assert imp.extra_chip_hours[0, c] == pytest.approx([40 * H] * 3)
    assert imp.extra_chip_hours[0, b] == pytest.approx([20 * H] * 3)
    assert imp.failover_chips[0, imp.units.index("crit/us")] == pytest.approx([20.0] * 3)
    assert imp.extra_cost_usd[0] == pytest.approx(3 * H * (40 * 4.0 + 20 * 5.0))
    summary = {s.service: s for s in imp.service_summaries()}
    assert summary["std"].worst_period_share == pytest.approx(0.8)
    assert summary["crit"].served_share == pytest.approx(1.0)


def test_outages_inside_a_period_overlap_phase_by_phase() -> None:
    f = fleet([pool("a", "aws", "h100", 50, 1.0), pool("b", "gcp", "h100", 50, 1.0)],
              inference=[service("chat", 300_000)])
    plan, state = planned(f)
    assert chips_on(plan, "a", "chat") == pytest.approx(50)
    # a down 10 h, b down 20 h: both down for 10 h, b alone for 10 h, nothing spare
    imp = immediate(state, effects(state, {"a": (1.0, 10.0), "b": (1.0, 20.0)}, periods=[1]))
    expected = 300_000.0 * (1 - (10 * 1.0 + 10 * 0.5) / H)
    assert served(imp, "chat/us") == pytest.approx([300_000.0, expected, 300_000.0])
    assert imp.unserved_tokens[0, 0, 1] == pytest.approx(300_000.0 * 15 * 3600)


def test_a_demand_surge_is_served_from_spare_capacity() -> None:
    f = fleet([pool("a", "aws", "h100", 100, 1.0), pool("b", "azure", "h100", 60, 5.0)],
              inference=[service("chat", 150_000), service("mail", 150_000)])
    plan, state = planned(f)
    assert chips_on(plan, "a", "mail") == pytest.approx(50)  # a is full, b idle
    imp = immediate(state, effects(state, {}, demand_factor={"mail": 1.5, "chat": 0.5}))
    assert served(imp, "mail/us") == pytest.approx([225_000.0] * 3)  # +25 chips on b
    assert served(imp, "chat/us") == pytest.approx([75_000.0] * 3)
    assert imp.demand_tokens_per_s[0, imp.units.index("mail/us")] == \
        pytest.approx([225_000.0] * 3)
    assert imp.extra_cost_usd[0] == pytest.approx(3 * 25 * H * 5.0)


def test_failover_never_breaks_exclusivity_or_residency() -> None:
    policies = Policies(exclusivity={"api": ("azure",)},
                        residency={"eu": ("gcp/europe-west4",)})
    f = fleet([pool("az1", "azure", "h100", 100, 2.0, region="r1"),
               pool("az2", "azure", "h100", 30, 4.0, region="r2"),
               pool("eu", "gcp", "h100", 60, 2.0, region="europe-west4", jur="eu"),
               pool("big", "aws", "h100", 1000, 1.0, region="us-east-1")],
              inference=[service("api", 150_000, tenant="api"),
                         service("chat", {"eu": [150_000.0] * 3, "us": [30_000.0] * 3})],
              policies=policies)
    plan, state = planned(f)
    assert chips_on(plan, "az1", "api") == pytest.approx(50)
    assert chips_on(plan, "eu", "chat") == pytest.approx(50)
    imp = immediate(state, effects(state, {"az1": (1.0, H), "eu": (1.0, H)}))
    big = imp.pools.index("big")
    # the cheap, nearly empty aws pool takes nothing: api may only use azure, eu
    # traffic only gcp/europe-west4
    assert np.all(imp.extra_chip_hours[0, big] == 0)
    assert served(imp, "api/us") == pytest.approx([90_000.0] * 3)  # all of az2's 30 chips
    assert served(imp, "chat/eu") == pytest.approx([0.0] * 3)
    assert served(imp, "chat/us") == pytest.approx([30_000.0] * 3)


# ---------------------------------------------------------------- conservation
def _rich_fleet() -> Fleet:
    return fleet(
        [pool("az1", "azure", "h100", 120, 2.0, region="r1"),
         pool("az2", "azure", "mi300x", 80, 2.2, region="r2"),
         pool("aws1", "aws", "h100", 150, 1.5, region="us-east-1"),
         pool("aws-spot", "aws", "h100", 80, 0.8, tier=Tier.SPOT, region="us-east-1"),
         pool("gcp-eu", "gcp", "h100", 100, 2.1, region="europe-west4", jur="eu"),
         pool("oci", "oci", "b200", 60, 3.0, region="r9")],
        inference=[service("api", 210_000, tenant="api", crit=HIGH),
                   service("chat", {"us": [300_000.0] * 3, "eu": [150_000.0] * 3}, crit=CRIT),
                   service("mail", 200_000)],
        training=[TrainingRun("big", 60, 60 * H * 2, ("h100", "b200"), 0, 2, 2.0, priority=2),
                  TrainingRun("small", 20, 20 * H, ("h100", "mi300x"), 0, 2)],
        batch=[BatchJob("etl", 40 * H, ("h100", "mi300x"), 0, 2),
               BatchJob("evals", 10 * H, ("h100",), 1, 2, spot_allowed=False, priority=2)],
        policies=Policies(exclusivity={"api": ("azure",)},
                          residency={"eu": ("gcp/europe-west4", "azure/r2")}))


@cache
def _rich() -> tuple[Fleet, PlanState]:
    f = _rich_fleet()
    return f, planned(f)[1]


def _allowed(f: Fleet, state: PlanState) -> np.ndarray:
    """(S, P) pools a unit may use, from the policies themselves (not the index)."""
    out = np.zeros((len(state.units), len(f.pools)), dtype=bool)
    for s, unit in enumerate(state.units):
        svc = unit.service
        for p, pl in enumerate(f.pools):
            excl = f.policies.exclusivity.get(svc.tenant_class or "")
            res = f.policies.residency.get(unit.jurisdiction)
            out[s, p] = (svc.throughput_tokens_per_s.get(pl.accelerator, 0) > 0
                         and (excl is None or pl.provider in excl)
                         and (res is None or f"{pl.provider}/{pl.region}" in res)
                         and (pl.tier is not Tier.SPOT or svc.spot_allowed))
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_served_never_exceeds_demand_nor_surviving_capacity(seed: int) -> None:
    f, state = _rich()
    rng = np.random.default_rng(seed)
    n, P, T = 12, len(f.pools), 3
    lost = np.where(rng.random((n, P, T)) < 0.4, rng.choice([0.3, 0.7, 1.0], (n, P, T)), 0.0)
    down = np.where(rng.random((n, P, T)) < 0.5, H, rng.uniform(0, H, (n, P, T)))
    factors = {"chat": rng.uniform(0.5, 2.0, (n, T)), "etl": rng.uniform(0.8, 1.5, (n, T))}
    eff = Effects(lost, down, rng.uniform(0.5, 3.0, (n, P, T)), H, factors)
    imp = immediate(state, eff)
    cap_up = state.capacity_chips[None] * eff.capacity_factor()  # (N, P, T)
    allowed = _allowed(f, state)
    tput = {(int(s), int(p)): t for s, p, t in
            zip(state.inf_unit, state.inf_pool, state.inf_tput, strict=True)}
    for s in range(len(state.units)):
        bound = np.zeros((n, T))
        for p in np.flatnonzero(allowed[s]):
            bound += cap_up[:, p] * tput[(s, int(p))]
        got = imp.served_tokens_per_s[:, s]
        assert np.all(got <= imp.demand_tokens_per_s[:, s] * (1 + 1e-9) + 1e-6)
        assert np.all(got <= bound * (1 + 1e-9) + 1e-6)
        assert np.all(got >= 0)
    # chips beyond the plan only where something had to move, never beyond what was up
    extra_chips = imp.extra_chip_hours / H
    assert np.all(extra_chips <= cap_up + 1e-6)
    assert np.all(imp.unserved_tokens >= 0) and np.all(imp.batch_unserved_chip_hours >= 0)
    assert np.all(imp.training_delay_hours >= 0) and np.all(np.isfinite(imp.cost_usd))


# ---------------------------------------------------------------- training
def _training_fleet(window_end: int, *, second: bool = False) -> Fleet:
    runs = [TrainingRun("big", 100, 100 * H * 2, ("h100",), 0, window_end, 2.0, priority=2)]
    if second:
        runs.append(TrainingRun("small", 50, 50 * H * 2, ("h100",), 0, window_end, 1.0))
    return fleet([pool("a", "aws", "h100", 150 if second else 100, 2.0)], training=runs)


def test_a_gang_in_a_failed_pool_stops_loses_half_a_checkpoint_and_misses_its_deadline() -> None:
    plan, state = planned(_training_fleet(window_end=1))
    assert (plan.training[0].start_period, plan.training[0].end_period) == (0, 1)
    imp = immediate(state, effects(state, {"a": (1.0, 10.0)}, periods=[0]))
    # 10 h down + half of the 2 h checkpoint interval; the run ended exactly at its deadline
    assert imp.training_delay_hours[0, 0] == pytest.approx(11.0)
    assert imp.training_lost_chip_hours[0, 0] == pytest.approx(100.0)
    assert bool(imp.training_missed_deadline[0, 0])
    assert imp.extra_cost_usd[0] == pytest.approx(100.0 * 2.0)  # the lost work, re-done


def test_a_delay_inside_the_window_meets_the_deadline_and_no_loss_no_delay() -> None:
    plan, state = planned(_training_fleet(window_end=2))
    start = plan.training[0].start_period
    assert start is not None and plan.training[0].end_period == start + 1
    imp = immediate(state, effects(state, {"a": (1.0, 10.0)}, periods=[start, start + 1]))
    assert imp.training_delay_hours[0, 0] == pytest.approx(22.0)
    assert imp.training_missed_deadline[0, 0] == (start == 1)  # slack only when started at 0
    calm = immediate(state, effects(state, {"a": (0.0, 100.0)}))  # down hours, nothing lost
    assert calm.training_delay_hours[0, 0] == 0.0


def test_gangs_run_whole_by_priority() -> None:
    plan, state = planned(_training_fleet(window_end=1, second=True))
    assert {t.pool for t in plan.training} == {"a"}
    # 40% of 150 chips lost: 90 up, the 100-chip gang (priority 2) cannot run whole,
    # the 50-chip gang can
    imp = immediate(state, effects(state, {"a": (0.4, 5.0)}, periods=[0]))
    big, small = imp.runs.index("big"), imp.runs.index("small")
    assert imp.training_delay_hours[0, big] == pytest.approx(5.0 + 1.0)
    assert imp.training_delay_hours[0, small] == 0.0


# ---------------------------------------------------------------- batch
def _batch_fleet(window_end: int) -> Fleet:
    # the cheap pool a only exists in period 0, the dear pool b only from period 1
    return fleet([pool("a", "aws", "h100", [100.0, 0.0, 0.0], 1.0),
                  pool("b", "gcp", "h100", [0.0, 100.0, 100.0], 3.0)],
                 batch=[BatchJob("etl", 100 * H, ("h100",), 0, window_end)])


def test_lost_batch_work_is_redone_later_in_its_window_else_unserved() -> None:
    plan, state = planned(_batch_fleet(window_end=0))
    assert chips_on(plan, "a", "etl", 0) == pytest.approx(100)
    imp = immediate(state, effects(state, {"a": (1.0, 73.0)}, periods=[0]))
    assert imp.batch_unserved_chip_hours[0, 0] == pytest.approx(100 * 73.0)
    assert imp.batch_delayed_chip_hours[0, 0] == 0.0

    plan, state = planned(_batch_fleet(window_end=1))
    assert chips_on(plan, "a", "etl", 0) == pytest.approx(100)
    imp = immediate(state, effects(state, {"a": (1.0, 73.0)}, periods=[0]))
    assert imp.batch_delayed_chip_hours[0, 0] == pytest.approx(100 * 73.0)
    assert imp.batch_unserved_chip_hours[0, 0] == pytest.approx(0.0, abs=1e-6)
    b = imp.pools.index("b")
    assert imp.extra_chip_hours[0, b] == pytest.approx([0.0, 7300.0, 0.0])
    assert imp.extra_cost_usd[0] == pytest.approx(7300.0 * 3.0)


# ---------------------------------------------------------------- cost
def test_market_prices_move_uncovered_pools_only() -> None:
    contract = Contract("deal", "aws", ("c",), 0, 2, True, 2.0, committed_chips=(80.0,) * 3)
    f = fleet([pool("c", "aws", "h100", 100, 4.0, tier=Tier.COMMITTED),
               pool("od", "gcp", "h100", 100, 3.0)],
              inference=[service("chat", 150_000), service("mail", 150_000)],
              contracts=[contract])
    plan, state = planned(f)
    assert sum(chips_on(plan, "od", w) for w in ("chat", "mail")) == pytest.approx(20)
    doubled = immediate(state, effects(state, {}, price_factor=2.0))
    assert doubled.extra_cost_usd[0] == pytest.approx(3 * 20 * H * 3.0)  # od only
    # losing od, its 20 chips fail over onto c beyond the 80 committed chips (all used):
    # overage at c's own price, which market prices do not move; od's planned chips are
    # still billed (at the new price: no refund is assumed for capacity lost)
    imp = immediate(state, effects(state, {"od": (1.0, H)}, price_factor=2.0))
    assert imp.served_tokens_per_s[0].sum(axis=0) == pytest.approx([300_000.0] * 3)
    assert imp.extra_cost_usd[0] == pytest.approx(3 * 20 * H * (3.0 + 4.0))


def test_failover_onto_unused_take_or_pay_commitment_costs_nothing_extra() -> None:
    contract = Contract("deal", "aws", ("c1", "c2"), 0, 2, True, 2.0,
                        committed_chips=(100.0,) * 3)
    f = fleet([pool("c1", "aws", "h100", 100, 4.0, tier=Tier.COMMITTED, region="r1"),
               pool("c2", "aws", "h100", 100, 4.0, tier=Tier.COMMITTED, region="r2")],
              inference=[service("chat", 240_000)], contracts=[contract])  # 80 chips
    plan, state = planned(f)
    moved = [chips_on(plan, "c1", "chat", t) for t in range(3)]
    imp = immediate(state, effects(state, {"c1": (1.0, H)}))
    assert served(imp, "chat/us") == pytest.approx([240_000.0] * 3)
    # 20 committed chips were idle (already paid): only failover beyond them is billed
    billed = sum(max(m - 20.0, 0.0) * H * 4.0 for m in moved)
    assert imp.extra_cost_usd[0] == pytest.approx(billed, abs=1e-6)


def test_effects_of_the_wrong_shape_are_refused() -> None:
    f = fleet([pool("a", "aws", "h100", 100, 1.0)], inference=[service("chat", 30_000)])
    _, state = planned(f)
    with pytest.raises(ValueError, match="lost_fraction"):
        immediate(state, Effects.none(1, 2, 3, H))
    with pytest.raises(ValueError, match="unknown workload 'nope'"):
        immediate(state, effects(state, {}, demand_factor={"nope": 2.0}))
