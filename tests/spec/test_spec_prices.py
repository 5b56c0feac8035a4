"""Pool and contract prices: given, from the catalog, from the contract; never invented."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from spec_helpers import MINIMAL, line_of, only

from cloudhedge.core.errors import SpecIssue
from cloudhedge.core.models import Fleet, Pool

Fleeter = Callable[[str], Fleet]
Issuer = Callable[[str], list[SpecIssue]]


def pool(fleet: Fleet, name: str) -> Pool:
    return next(p for p in fleet.pools if p.name == name)


def test_on_demand_price_from_the_catalog(fleet_of: Fleeter) -> None:
    od = pool(fleet_of(MINIMAL), "az-h100")
    assert (od.price_usd_per_chip_hour, od.price_source) == (10.0, "fake list azure")


def test_explicit_price_wins(fleet_of: Fleeter) -> None:
    text = MINIMAL.replace(
        "    capacity_chips: 1000\n",
        "    capacity_chips: 1000\n    price_usd_per_chip_hour: 8.5\n",
    )
    od = pool(fleet_of(text), "az-h100")
    assert (od.price_usd_per_chip_hour, od.price_source) == (8.5, "spec")
    text = text.replace(
        "price_usd_per_chip_hour: 8.5\n",
        "price_usd_per_chip_hour: 8.5\n    price_source: quote 2026-01\n",
    )
    assert pool(fleet_of(text), "az-h100").price_source == "quote 2026-01"


def test_spot_price_and_preemption(fleet_of: Fleeter) -> None:
    text = MINIMAL.replace("tier: on_demand", "tier: spot")
    spot = pool(fleet_of(text), "az-h100")
    assert spot.price_usd_per_chip_hour == 3.0
    assert spot.preemption_rate_per_hour == 0.02  # defaults.spot_preemption_rate_per_hour
    text = text.replace("tier: spot", "tier: spot\n    preemption_rate_per_hour: 0.1")
    assert pool(fleet_of(text), "az-h100").preemption_rate_per_hour == 0.1
    text = text + "defaults: {spot_preemption_rate_per_hour: 0.05}\n"
    assert (
        pool(
            fleet_of(text.replace("\n    preemption_rate_per_hour: 0.1", "")), "az-h100"
        ).preemption_rate_per_hour
        == 0.05
    )


def test_committed_price_is_the_contract_discount_off_on_demand(fleet_of: Fleeter) -> None:
    fleet = fleet_of(MINIMAL)
    committed = pool(fleet, "az-h100-committed")
    assert committed.price_usd_per_chip_hour == pytest.approx(6.0)  # 10.0 x (1 - 0.4)
    assert committed.price_source.startswith("contract az-deal: 40% off on-demand")
    (contract,) = fleet.contracts
    assert contract.price_usd_per_chip_hour == pytest.approx(6.0)


def test_committed_price_is_the_contract_price(fleet_of: Fleeter) -> None:
    text = MINIMAL.replace(
        "    discount: 0.4\n", "    price_usd_per_chip_hour: 4.25\n    source: press release\n"
    )
    fleet = fleet_of(text)
    committed = pool(fleet, "az-h100-committed")
    assert committed.price_usd_per_chip_hour == 4.25
    assert committed.price_source == "contract az-deal (press release)"
    assert fleet.contracts[0].price_usd_per_chip_hour == 4.25


def test_contract_price_is_the_mean_of_its_pools_prices(fleet_of: Fleeter) -> None:
    second = (
        "  - name: az-h200-committed\n    provider: azure\n    region: eastus\n"
        "    accelerator: h200\n    tier: committed\n    capacity_chips: 100\n"
        "    price_usd_per_chip_hour: 5.0\n"
    )
    text = (
        MINIMAL.replace("    discount: 0.4\n", "")
        .replace(
            "    capacity_chips: 2000\n",
            "    capacity_chips: 2000\n    price_usd_per_chip_hour: 3.0\n",
        )
        .replace("contracts:\n", second + "contracts:\n")
        .replace("pools: [az-h100-committed]", "pools: [az-h100-committed, az-h200-committed]")
    )
    (contract,) = fleet_of(text).contracts
    assert contract.price_usd_per_chip_hour == pytest.approx(4.0)


def test_contract_discount_applies_to_the_mean_on_demand_price(fleet_of: Fleeter) -> None:
    second = (
        "  - name: az-h200-committed\n    provider: azure\n    region: eastus\n"
        "    accelerator: h200\n    tier: committed\n    capacity_chips: 100\n"
    )
    text = MINIMAL.replace("contracts:\n", second + "contracts:\n").replace(
        "pools: [az-h100-committed]", "pools: [az-h100-committed, az-h200-committed]"
    )
    fleet = fleet_of(text)
    assert fleet.contracts[0].price_usd_per_chip_hour == pytest.approx((10.0 + 14.0) / 2 * 0.6)
    # each pool takes the discount off its own on-demand price
    assert pool(fleet, "az-h200-committed").price_usd_per_chip_hour == pytest.approx(14.0 * 0.6)


def test_no_price_is_an_error_never_an_invention(issues_of: Issuer) -> None:
    text = MINIMAL.replace(
        "accelerator: h100\n    tier: on_demand", "accelerator: mi300x\n    tier: on_demand"
    )
    issue = only(issues_of(text), "pools[0]")
    assert issue.message == (
        "no price for azure/eastus/mi300x/on_demand in the catalog: give price_usd_per_chip_hour"
    )
    assert (issue.line, issue.column) == (line_of(text, "- name: az-h100"), 5)


def test_committed_pool_without_a_contract_or_catalog_price(issues_of: Issuer) -> None:
    without_contracts = MINIMAL.split("contracts:\n")[0]
    text = without_contracts + "workloads:\n" + MINIMAL.split("workloads:\n")[1]
    issue = only(issues_of(text), "pools[1]")
    assert issue.message == (
        "no price for azure/eastus/h100/committed in the catalog: give price_usd_per_chip_hour"
    )


def test_contract_discount_without_an_on_demand_price(issues_of: Issuer) -> None:
    text = MINIMAL.replace(
        "    accelerator: h100\n    tier: committed\n",
        "    accelerator: mi300x\n    tier: committed\n",
    )
    issues = issues_of(text)
    issue = only(issues, "contracts[0].discount")
    assert "no on-demand price in the catalog for the pools of contract 'az-deal'" in issue.message
    assert only(issues, "pools[1]").message.startswith("no price for azure/eastus/mi300x/committed")


def test_assumed_catalog_price_is_noted(fleet_of: Fleeter) -> None:
    extra = (
        "  - name: cw-h100\n    provider: coreweave\n    region: us-east-04\n"
        "    accelerator: h100\n    tier: committed\n    capacity_chips: 64\n"
    )
    fleet = fleet_of(MINIMAL.replace("contracts:\n", extra + "contracts:\n"))
    cw = pool(fleet, "cw-h100")
    assert (cw.price_usd_per_chip_hour, cw.price_source) == (2.2, "assumed: neocloud quote")
    assert (
        "price of coreweave/us-east-04/h100/committed is assumed (source: assumed: neocloud quote)"
        in fleet.notes
    )
