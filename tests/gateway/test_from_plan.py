"""Routing weights from a plan made by the real planner on a small fleet."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))
from fleets import fleet, pool, service

from cloudhedge.core.plan import Plan
from cloudhedge.gateway.config import Deployment, Route, Strategy
from cloudhedge.gateway.config_schema import load_gateway_config_text
from cloudhedge.gateway.from_plan import config_with_plan, routes_from_plan
from cloudhedge.planning.planner import PlanOptions, make_plan


@pytest.fixture(scope="module")
def plan() -> Plan:
    """chat needs 12 chips in periods 0 and 2 and 8 in period 1; cheapest first: azure/eastus
    (two pools, 4 + 2 chips), aws/us-east-1 (4), then oci/eu-frankfurt-1; gcp is too dear."""
    small = fleet(
        [
            pool("az-eus-a", "azure", "h100", 4, 2.0, region="eastus"),
            pool("az-eus-b", "azure", "h100", 2, 2.5, region="eastus"),
            pool("aws-use1", "aws", "h100", 4, 3.0, region="us-east-1"),
            pool("oci-fra", "oci", "h100", 4, 4.0, region="eu-frankfurt-1", jur="eu"),
            pool("gcp-usc1", "gcp", "h100", 4, 9.0, region="us-central1"),
            pool("oci-fra-mi", "oci", "mi300x", 2, 1.0, region="eu-frankfurt-1", jur="eu"),
        ],
        inference=[
            service("chat", {"us": [36000.0, 24000.0, 36000.0]}, accs=("h100",)),
            service("embed", 2900.0, accs=("mi300x",)),
        ],
    )
    result = make_plan(small, PlanOptions(explain=False, duals=False))
    assert result.status == "optimal"
    return result


def dep(name: str, model: str, provider: str, region: str) -> Deployment:
    return Deployment(name, model, provider, region, "us", "http://127.0.0.1:9/v1")


DEPLOYMENTS = [
    dep("chat-az-1", "chat", "azure", "eastus"),
    dep("chat-az-2", "chat", "azure", "eastus"),
    dep("chat-aws", "chat", "aws", "us-east-1"),
    dep("chat-gcp", "chat", "gcp", "us-central1"),
    dep("embed-oci", "embed", "oci", "eu-frankfurt-1"),
    dep("search-aws", "search", "aws", "us-east-1"),
]


def chip_shares(plan: Plan, service_name: str, period: int) -> dict[tuple[str, str], float]:
    """The plan's chips of a service per provider/region, as shares of its total."""
    pools = {p.name: p for p in plan.pools}
    chips: dict[tuple[str, str], float] = defaultdict(float)
    for a in plan.allocations:
        if a.workload == service_name and a.period == period:
            chips[(pools[a.pool].provider, pools[a.pool].region)] += a.chips
    total = sum(chips.values())
    return {place: c / total for place, c in chips.items()}


def test_weights_are_the_plans_chip_shares_per_place(plan: Plan) -> None:
    routes, notes = routes_from_plan(plan, DEPLOYMENTS)
    shares = chip_shares(plan, "chat", 0)
    assert shares == pytest.approx({("azure", "eastus"): 0.5, ("aws", "us-east-1"): 1 / 3,
                                    ("oci", "eu-frankfurt-1"): 1 / 6})
    chat = routes["chat"]
    assert chat.strategy is Strategy.WEIGHTED
    # two deployments in azure/eastus split its share; gcp is unused: weight 0, kept
    assert chat.weights == pytest.approx({
        "chat-az-1": shares[("azure", "eastus")] / 2,
        "chat-az-2": shares[("azure", "eastus")] / 2,
        "chat-aws": shares[("aws", "us-east-1")],
        "chat-gcp": 0.0,
    })
    assert routes["embed"] == Route("embed", Strategy.WEIGHTED, {"embed-oci": 1.0})
    assert "search" not in routes
    assert sorted(notes) == [
        "model 'search': the plan has no inference service 'search'; its route is left as "
        "configured",
        "service 'chat': 16.7% of its chips in 2026-01 are in oci/eu-frankfurt-1, where no "
        "deployment of model 'chat' runs",
    ]


def test_period_selects_the_plans_month(plan: Plan) -> None:
    routes, _ = routes_from_plan(plan, DEPLOYMENTS, period=1)
    shares = chip_shares(plan, "chat", 1)
    assert shares == pytest.approx({("azure", "eastus"): 0.75, ("aws", "us-east-1"): 0.25})
    assert routes["chat"].weights == pytest.approx(
        {"chat-az-1": 0.375, "chat-az-2": 0.375, "chat-aws": 0.25, "chat-gcp": 0.0})
    with pytest.raises(ValueError, match="outside the plan's horizon"):
        routes_from_plan(plan, DEPLOYMENTS, period=3)


def test_service_of_maps_models_to_services(plan: Plan) -> None:
    deployments = [dep("gpt-aws", "gpt", "aws", "us-east-1"), dep("x", "chatt", "aws", "r")]
    routes, notes = routes_from_plan(
        plan, deployments, service_of={"gpt": "chat", "unused": "embed"})
    assert routes == {"gpt": Route("gpt", Strategy.WEIGHTED,
                                   {"gpt-aws": pytest.approx(1 / 3)})}
    assert notes[0] == "service_of maps model 'unused', which no deployment serves"
    assert ("model 'chatt': the plan has no inference service 'chatt' (did you mean 'chat'?); "
            "its route is left as configured") in notes
    assert notes[-1] == ("services the plan serves in 2026-01 without a deployment (no model "
                         "named after them or mapped to them by service_of): embed")


def test_no_deployment_where_the_chips_are_keeps_the_route(plan: Plan) -> None:
    routes, notes = routes_from_plan(plan, [dep("embed-gcp", "embed", "gcp", "us-central1")])
    assert routes == {}
    assert ("model 'embed': no deployment is where the plan serves service "
            "'embed' in 2026-01; its route is left as configured") in notes


GATEWAY = """\
deployments:
  - {name: chat-az, model: chat, provider: azure, region: eastus, jurisdiction: us,
     base_url: "http://127.0.0.1:9101/v1"}
  - {name: chat-oci, model: chat, provider: oci, region: eu-frankfurt-1, jurisdiction: eu,
     base_url: "http://127.0.0.1:9103/v1"}
  - {name: search-az, model: search, provider: azure, region: eastus, jurisdiction: us,
     base_url: "http://127.0.0.1:9101/v1"}
routes:
  chat: {strategy: latency}
  search: {strategy: least_outstanding}
"""


def test_config_with_plan_replaces_the_derived_routes_only(plan: Plan) -> None:
    config = load_gateway_config_text(GATEWAY, "gateway.yaml", {})
    planned, notes = config_with_plan(config, plan)
    assert planned.routes["chat"] == Route(
        "chat", Strategy.WEIGHTED, {"chat-az": pytest.approx(0.5),
                                    "chat-oci": pytest.approx(1 / 6)})
    assert planned.routes["search"] == config.routes["search"]
    assert planned.deployments == config.deployments and planned.keys == config.keys
    assert config.routes["chat"].strategy is Strategy.LATENCY  # the original is unchanged
    assert any("aws/us-east-1" in n for n in notes)
