"""The example fleets (examples/*.yaml) against the fleet spec schema.

Schema level only: each file parses and validates as a :class:`FleetSpec`, the flagship
has the breadth it is meant to show, and the pricing rules of the examples hold (no
price where the catalog has none unless stated and sourced). Resolving and planning the
examples is tested elsewhere. The gateway examples load with the gateway's loaders.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from cloudhedge.gateway.config_schema import load_deployments, load_gateway_config
from cloudhedge.spec.schema import AgenticSpec, FleetSpec, InferenceSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ["frontier-lab.yaml", "startup.yaml", "enterprise-eu.yaml"]
SCENARIO_FILES = ["scenarios.yaml"]  # stress scenarios, tested in tests/stress
GATEWAY_FILES = ["gateway.yaml", "deployments.yaml"]  # gateway configs, tested below
GATEWAY_ENV = {  # the demo keys gateway.yaml reads (see its header)
    "CLOUDHEDGE_DEMO_KEY": "demo-default",
    "CLOUDHEDGE_DEMO_API_KEY": "demo-api",
    "CLOUDHEDGE_DEMO_EU_KEY": "demo-eu",
    "CLOUDHEDGE_DEMO_ADMIN_KEY": "demo-admin",
}


def load(name: str) -> FleetSpec:
    data = YAML(typ="safe").load((EXAMPLES / name).read_text(encoding="utf-8"))
    return FleetSpec.model_validate(data)


@pytest.fixture(scope="module")
def flagship() -> FleetSpec:
    return load("frontier-lab.yaml")


def test_every_example_file_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(
        NAMES + SCENARIO_FILES + GATEWAY_FILES)


@pytest.mark.parametrize("name", NAMES)
def test_example_validates(name: str) -> None:
    spec = load(name)
    assert spec.pools and spec.workloads


@pytest.mark.parametrize("name", NAMES + GATEWAY_FILES)
def test_example_has_a_header_comment(name: str) -> None:
    lines = (EXAMPLES / name).read_text(encoding="utf-8").splitlines()
    header = [line for line in lines[:6] if line.startswith("#")]
    assert len(header) >= 3, f"{name}: start with a few comment lines saying what it models"


@pytest.mark.parametrize("name", NAMES + SCENARIO_FILES + GATEWAY_FILES)
def test_example_is_documented_in_readme(name: str) -> None:
    assert f"`{name}`" in (EXAMPLES / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", NAMES)
def test_explicit_prices_name_their_source(name: str) -> None:
    for pool in load(name).pools:
        if pool.price_usd_per_chip_hour is not None:
            assert pool.price_source, f"{pool.name}: an explicit price needs price_source"


@pytest.mark.parametrize("name", NAMES)
def test_no_price_is_taken_where_the_catalog_has_none(name: str) -> None:
    """CoreWeave has no catalog price, Azure spot is unknown: such pools state an
    assumed price (committed pools are priced by their contract)."""
    for pool in load(name).pools:
        if pool.tier == "committed":
            continue
        no_catalog_price = pool.provider == "coreweave" or (
            pool.provider == "azure" and pool.tier == "spot"
        )
        if no_catalog_price:
            assert pool.price_usd_per_chip_hour is not None, pool.name
            assert (pool.price_source or "").startswith("assumed"), pool.name


@pytest.mark.parametrize("name", NAMES)
def test_contracts_cover_committed_pools_of_their_provider(name: str) -> None:
    spec = load(name)
    pools = {p.name: p for p in spec.pools}
    covered: list[str] = []
    for contract in spec.contracts:
        given = [contract.committed_chips, contract.committed_spend_usd, contract.decide]
        assert sum(g is not None for g in given) == 1, contract.name
        for name_ in contract.pools:
            assert pools[name_].provider == contract.provider, name_
            assert pools[name_].tier == "committed", name_
        covered += contract.pools
    assert len(covered) == len(set(covered)), "a pool is covered by one contract at most"


@pytest.mark.parametrize("name", NAMES)
def test_critical_services_list_their_demand_jurisdictions(name: str) -> None:
    for workload in load(name).workloads:
        if isinstance(workload, InferenceSpec) and workload.criticality == "critical":
            assert workload.demand_tokens_per_s, workload.name
        if isinstance(workload, AgenticSpec) and workload.criticality == "critical":
            assert workload.tasks_per_day, workload.name


def test_flagship_breadth(flagship: FleetSpec) -> None:
    assert flagship.horizon.periods >= 24
    assert len(flagship.pools) >= 40
    assert len({p.provider for p in flagship.pools}) >= 5
    assert len({p.accelerator for p in flagship.pools}) >= 8
    assert len(flagship.workloads) >= 25
    kinds = {w.kind for w in flagship.workloads}
    assert kinds == {"training", "batch", "inference", "agentic"}


def test_flagship_critical_services_cover_us_and_eu(flagship: FleetSpec) -> None:
    critical = [
        w
        for w in flagship.workloads
        if isinstance(w, InferenceSpec) and w.criticality == "critical"
    ]
    assert critical
    for service in critical:
        assert {"us", "eu"} <= set(service.demand_tokens_per_s), service.name


def test_flagship_policies(flagship: FleetSpec) -> None:
    policies = flagship.policies
    assert any(c.kind == "provider" and c.name == "*" for c in policies.caps)
    assert any(c.kind == "vendor" and c.name == "nvidia" for c in policies.caps)
    assert {r.kind for r in policies.survivability} == {"provider", "region"}
    assert policies.exclusivity["api"] == ["azure"]
    providers = {p.provider for p in flagship.pools}
    assert set(policies.exclusivity["consumer"]) == providers
    pooled = {f"{p.provider}/{p.region}" for p in flagship.pools}
    assert set(policies.residency["eu"]) <= pooled


def test_flagship_api_is_not_critical(flagship: FleetSpec) -> None:
    """A critical service restricted to one provider cannot survive losing it."""
    single = {t for t, providers in flagship.policies.exclusivity.items() if len(providers) < 2}
    for w in flagship.workloads:
        if isinstance(w, InferenceSpec | AgenticSpec) and w.tenant_class in single:
            assert w.criticality != "critical", w.name


def test_flagship_contracts(flagship: FleetSpec) -> None:
    by_provider = {c.provider: c for c in flagship.contracts}
    assert set(by_provider) == {"azure", "aws", "oci", "coreweave", "gcp"}
    assert by_provider["aws"].total_value_usd == 38e9
    assert by_provider["gcp"].decide is not None
    assert len(by_provider["gcp"].decide.tiers) >= 2
    assert by_provider["oci"].start == "2027-01"


def test_gateway_example_serves_the_mock_upstreams() -> None:
    config = load_gateway_config(EXAMPLES / "gateway.yaml", GATEWAY_ENV)
    for model in ("chat", "embed"):
        places = {(d.provider, d.region, d.jurisdiction, d.base_url)
                  for d in config.deployments if d.model == model}
        assert places == {
            ("azure", "eastus", "us", "http://127.0.0.1:9101/v1"),
            ("aws", "us-east-1", "us", "http://127.0.0.1:9102/v1"),
            ("oci", "eu-frankfurt-1", "eu", "http://127.0.0.1:9103/v1"),
        }
    assert config.classes["api"].providers == {"azure"}
    assert config.classes["eu"].jurisdictions == {"eu"}
    assert {r.strategy.value for r in config.routes.values()} == {
        "weighted", "least_outstanding", "latency"}


def test_deployments_example_matches_the_flagship(flagship: FleetSpec) -> None:
    deployments = load_deployments(EXAMPLES / "deployments.yaml", {})
    services = {w.name for w in flagship.workloads if isinstance(w, InferenceSpec)}
    places = {(p.provider, p.region) for p in flagship.pools}
    assert {d.model for d in deployments} <= services
    for d in deployments:
        assert (d.provider, d.region) in places, d.name
    assert {d.provider for d in deployments if d.model == "api"} == {"azure"}
