"""Baselines: the per-job broker and the single-provider planner, against the hedged plan."""

from __future__ import annotations

import numpy as np
import pytest
from fleets import (
    BatchJob,
    Contract,
    Policies,
    Tier,
    TrainingRun,
    caps,
    fleet,
    pool,
    service,
    surv,
)

from cloudhedge.core.models import Criticality, Fleet
from cloudhedge.planning.baselines import (
    BROKER,
    BROKER_SWITCHES,
    best_single_provider,
    per_workload_cheapest,
    single_provider,
    violations,
)
from cloudhedge.planning.build import ModelBuilder
from cloudhedge.planning.generate import generate_fleet
from cloudhedge.planning.index import build_index
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.planning.solve import SolveOptions

EXACT = PlanOptions(solve=SolveOptions(gap=0.0), explain=False)
H = 730.0
COMMITMENT = 3 * 80 * H * 2.0


def _market_fleet(policies: Policies | None = None) -> Fleet:
    """One committed pool with a take-or-pay contract, and a market around it."""
    pools = [pool("c", "aws", "h100", 100, 2.0, tier=Tier.COMMITTED),
             pool("od", "gcp", "h100", 200, 3.0),
             pool("od2", "azure", "h100", 200, 4.0),
             pool("sp", "gcp", "h100", 100, 1.0, tier=Tier.SPOT),
             pool("b", "oci", "b200", 100, 7.0)]
    contract = Contract("aws-deal", "aws", ("c",), 0, 2, True, 2.0,
                        committed_chips=(80.0, 80.0, 80.0))
    run = TrainingRun("pretrain", 80, 80 * H * 2, ("h100", "b200"), 0, 2)
    job = BatchJob("evals", 10_000, ("h100",), 0, 2, spot_allowed=True)
    chat = service("chat", 150_000, accs=("h100",))
    return fleet(pools, contracts=[contract], training=[run], batch=[job], inference=[chat],
                 policies=policies)


def _pools_of(plan_allocs: list, workload: str) -> set[str]:  # type: ignore[type-arg]
    return {a.pool for a in plan_allocs if a.workload == workload}


def test_broker_takes_the_cheapest_market_pool_per_workload() -> None:
    plan = per_workload_cheapest(_market_fleet())
    assert plan.status == "feasible"
    assert plan.solver.solver == BROKER
    assert plan.solver.solve_seconds == 0.0
    # training: od (3.0 x 2 periods of h100) beats b200 (7.0 x 1 period) and od2 (4.0)
    t = plan.training[0]
    assert (t.pool, t.start_period, t.duration_periods) == ("od", 0, 2)
    # batch: spot at 1.0 (a little work lost to preemption) beats everything
    assert _pools_of(plan.allocations, "evals") == {"sp"}
    hours = sum(a.chips for a in plan.allocations if a.workload == "evals") * H
    assert hours == pytest.approx(10_000 * (1 + 0.05 * 0.5))
    # inference: not spot-allowed; od has 120 chips left beside the training gang
    assert _pools_of(plan.allocations, "chat") == {"od"}
    assert not plan.unmet


def test_broker_ignores_the_committed_pool_and_wastes_the_contract() -> None:
    plan = per_workload_cheapest(_market_fleet())
    assert all(a.pool != "c" for a in plan.allocations)
    c = plan.contracts[0]
    assert c.wasted_usd_total == pytest.approx(COMMITMENT)
    assert c.fixed_cost_usd == pytest.approx(COMMITMENT)
    # the commitment is counted in the total: market spend + the unused take-or-pay
    market = (80 * 2 * H * 3.0  # training on od
              + 10_000 * (1 + 0.025) * 1.0  # batch on spot
              + 3 * 50 * H * 3.0)  # chat: 50 chips of od for 3 periods
    assert plan.cost.total_usd == pytest.approx(market + COMMITMENT)
    assert plan.cost.by_workload["(unused commitment)"] == pytest.approx(COMMITMENT)


def test_hedged_planner_is_never_dearer_than_the_broker() -> None:
    f = _market_fleet(Policies(caps=caps(0.6)))
    planner = make_plan(f, EXACT)
    broker = per_workload_cheapest(f)
    assert planner.solver.objective_usd is not None
    assert broker.solver.objective_usd is not None
    assert planner.solver.objective_usd <= broker.solver.objective_usd + 1e-6
    assert "c" in _pools_of(planner.allocations, "chat") | _pools_of(planner.allocations,
                                                                       "pretrain")


@pytest.mark.parametrize("seed", range(4))
def test_broker_vector_is_a_feasible_point_of_the_planner_model(seed: int) -> None:
    """Same policies as the broker: the MIP optimum can only be cheaper (a theorem)."""
    f = generate_fleet(30, 16, 4, seed=seed)
    broker = per_workload_cheapest(f)  # raises if its vector breaks a row of the model
    planner = make_plan(f, PlanOptions(solve=SolveOptions(gap=1e-6, time_limit_s=60),
                                       explain=False, switches=BROKER_SWITCHES))
    assert planner.solver.objective_usd is not None
    assert broker.solver.objective_usd is not None
    assert planner.solver.objective_usd <= broker.solver.objective_usd * (1 + 1e-6)


@pytest.mark.parametrize("seed", range(2))
def test_hedged_plan_beats_the_broker_on_generated_fleets(seed: int) -> None:
    """Not a theorem (the broker ignores caps): an empirical claim on generated fleets."""
    f = generate_fleet(30, 20, 6, seed=seed)
    planner = make_plan(f, PlanOptions(solve=SolveOptions(gap=1e-3), explain=False))
    broker = per_workload_cheapest(f)
    assert planner.solver.objective_usd is not None
    assert broker.solver.objective_usd is not None
    assert planner.solver.objective_usd < broker.solver.objective_usd
    assert violations(f, planner)["cap_breaches"] == 0
    assert violations(f, broker)["cap_breaches"] + violations(f, broker)[
        "survivability_failing"] > 0


def test_broker_breaks_a_cap_the_planner_honours() -> None:
    pools = [pool("a", "aws", "h100", 1000, 1.0), pool("b", "azure", "h100", 1000, 2.0),
             pool("c", "oci", "h100", 1000, 3.0)]
    f = fleet(pools, inference=[service("chat", 300_000, accs=("h100",))],
              policies=Policies(caps=caps(0.4)))
    broker = per_workload_cheapest(f)
    v = violations(f, broker)
    assert v["cap_breaches"] == 1
    assert v["cap_breach_by_domain"] == {"provider:aws": pytest.approx(0.6)}
    shares = {c.name: c for c in broker.concentration if c.kind == "provider"}
    assert shares["aws"].max_share == pytest.approx(1.0)
    assert shares["aws"].cap == pytest.approx(0.4)
    planner = make_plan(f, EXACT)
    assert violations(f, planner)["cap_breaches"] == 0


def test_broker_survivability_cells_use_the_fleet_alphas() -> None:
    pools = [pool("a", "aws", "h100", 1000, 1.0), pool("b", "azure", "h100", 1000, 2.0)]
    svc = service("api", 30_000, crit=Criticality.CRITICAL, accs=("h100",))
    f = fleet(pools, inference=[svc], policies=Policies(survivability=surv(0.5)))
    broker = per_workload_cheapest(f)
    v = violations(f, broker)
    assert v["survivability_failing"] == 1  # everything on aws: losing aws keeps nothing
    assert v["min_kept_share"] == pytest.approx(0.0)
    planner = make_plan(f, EXACT)
    pv = violations(f, planner)
    assert pv["survivability_failing"] == 0
    assert pv["min_kept_share"] == pytest.approx(0.5)


def test_broker_respects_exclusivity_and_residency() -> None:
    pools = [pool("az-us", "azure", "h100", 1000, 3.0, region="eastus"),
             pool("aws-us", "aws", "h100", 1000, 1.0, region="us-east-1"),
             pool("aws-eu", "aws", "h100", 1000, 1.0, region="eu-west-1", jur="eu"),
             pool("az-eu", "azure", "h100", 1000, 3.0, region="westeurope", jur="eu")]
    api = service("api", {"us": [30_000.0] * 3, "eu": [30_000.0] * 3}, tenant="api",
                  accs=("h100",))
    chat = service("chat", {"eu": [30_000.0] * 3}, accs=("h100",))
    pol = Policies(exclusivity={"api": ("azure",)}, residency={"eu": ("azure/westeurope",)})
    plan = per_workload_cheapest(fleet(pools, inference=[api, chat], policies=pol))
    assert _pools_of(plan.allocations, "api") == {"az-us", "az-eu"}
    assert all(a.pool == "az-eu" for a in plan.allocations if a.jurisdiction == "eu")


def test_broker_leaves_demand_unmet_when_the_market_is_full() -> None:
    pools = [pool("c", "aws", "h100", 100, 2.0, tier=Tier.COMMITTED),
             pool("od", "gcp", "h100", 10, 3.0)]
    f = fleet(pools, inference=[service("chat", 60_000, accs=("h100",))])
    plan = per_workload_cheapest(f)
    assert [u.amount for u in plan.unmet] == [pytest.approx(30_000)] * 3
    assert all(u.cause.startswith("broker:") for u in plan.unmet)
    tokens = violations(f, plan)["unmet"]["inference_tokens"]
    assert tokens == pytest.approx(3 * 30_000 * 3600 * H)


def test_single_provider_uses_only_its_pools_and_contracts() -> None:
    f = _market_fleet(Policies(caps=caps(0.4)))
    plan = single_provider(f, "gcp", EXACT)
    assert {p.provider for p in plan.pools} == {"gcp"}
    assert {a.pool for a in plan.allocations} <= {"od", "sp"}
    assert plan.contracts == []  # aws's contract is never signed
    v = violations(f, plan)
    assert v["cap_breach_by_domain"]["provider:gcp"] == pytest.approx(0.6)
    own = single_provider(f, "aws", EXACT)
    assert [c.name for c in own.contracts] == ["aws-deal"]
    assert {a.pool for a in own.allocations} <= {"c"}
    with pytest.raises(ValueError):
        single_provider(f, "nowhere")


def test_best_single_provider_has_the_least_objective() -> None:
    f = _market_fleet(Policies(caps=caps(0.4)))
    name, best = best_single_provider(f, EXACT)
    objectives = {p: single_provider(f, p, EXACT).solver.objective_usd
                  for p in ("aws", "azure", "gcp", "oci")}
    assert best.solver.objective_usd == pytest.approx(min(
        v for v in objectives.values() if v is not None))
    assert objectives[name] == pytest.approx(best.solver.objective_usd)


def test_broker_plan_decodes_in_the_planner_column_space() -> None:
    f = _market_fleet()
    ix = build_index(f, BROKER_SWITCHES)
    model = ModelBuilder(ix).build()
    plan = per_workload_cheapest(f)
    assert plan.solver.variables == model.A.shape[1]
    assert plan.solver.nonzeros == model.A.nnz
    used = np.array([p.used_chips for p in plan.pools])
    assert (used <= np.array([p.capacity_chips for p in plan.pools]) + 1e-6).all()
