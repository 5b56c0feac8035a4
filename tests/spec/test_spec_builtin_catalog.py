"""Resolving against the real built-in catalog (cloudhedge.catalog.load_builtin)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from spec_helpers import MINIMAL

from cloudhedge.catalog import load_builtin
from cloudhedge.core.errors import SpecError
from cloudhedge.core.models import Tier
from cloudhedge.spec import load_fleet


def test_minimal_fleet_resolves_with_the_builtin_catalog(write: Callable[[str], Path]) -> None:
    catalog = load_builtin()
    fleet = load_fleet(write(MINIMAL))  # catalog=None: the built-in one
    od = next(p for p in fleet.pools if p.name == "az-h100")
    expected = catalog.price("azure", "eastus", "h100", Tier.ON_DEMAND)
    assert expected is not None
    assert (od.price_usd_per_chip_hour, od.price_source) == expected
    assert od.jurisdiction == catalog.regions[("azure", "eastus")].jurisdiction == "us"
    assert od.vendor == "nvidia"
    committed = next(p for p in fleet.pools if p.name == "az-h100-committed")
    assert committed.price_usd_per_chip_hour == expected[0] * 0.6
    (chat,) = fleet.inference
    assert chat.throughput_tokens_per_s["h100"] == catalog.throughput["h100"].value
    assert fleet.relative_speed["h100"] == 1.0
    assert set(fleet.accelerators) == set(catalog.accelerators)


def test_builtin_catalog_suggests_accelerators(write: Callable[[str], Path]) -> None:
    text = MINIMAL.replace("accelerators: [h100]", "accelerators: [mi300]")
    try:
        load_fleet(write(text), load_builtin())
    except SpecError as error:
        (issue,) = error.issues
        assert issue.suggestion == "mi300x"
    else:
        raise AssertionError("an unknown accelerator must not resolve")
