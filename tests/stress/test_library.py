"""Built-in scenarios and families on the flagship fleet, and scenario references."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))
from fleets import fleet, pool, service

from cloudhedge.core.errors import SpecError
from cloudhedge.core.models import DomainKind, Fleet
from cloudhedge.spec import load_fleet
from cloudhedge.stress.library import (
    FAMILIES,
    builtin_scenarios,
    family,
    resolve_scenario_ref,
)
from cloudhedge.stress.scenario import Outage, PriceChange, SupplyShock, effects

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def frontier() -> Fleet:
    return load_fleet(EXAMPLES / "frontier-lab.yaml")


def domains(the_fleet: Fleet, kind: DomainKind) -> set[str]:
    return {p.domain(kind) for p in the_fleet.pools}


def test_one_n_1_scenario_per_provider_vendor_and_region(frontier: Fleet) -> None:
    providers = domains(frontier, DomainKind.PROVIDER)
    vendors = domains(frontier, DomainKind.VENDOR)
    regions = domains(frontier, DomainKind.REGION)
    assert providers == {"azure", "aws", "gcp", "oci", "coreweave"}
    assert vendors == {"nvidia", "aws", "google", "amd"}
    assert len(regions) > 20
    names = {s.name for s in family(frontier, "n-1-provider")}
    assert names == {f"n-1-{p}" for p in providers}
    assert {s.name for s in family(frontier, "n-1-vendor")} == {f"n-1-vendor-{v}" for v in vendors}
    assert {s.name for s in family(frontier, "n-1-region")} == {
        "n-1-region-" + r.replace("/", "-") for r in regions
    }


def test_families_partition_the_builtins(frontier: Fleet) -> None:
    builtins = builtin_scenarios(frontier)
    by_family = {name: [s.name for s in family(frontier, name)] for name in FAMILIES}
    assert by_family["n-1"] == (
        by_family["n-1-provider"] + by_family["n-1-vendor"] + by_family["n-1-region"]
    )
    assert sorted(by_family["shocks"]) == [
        "agentic-x2", "amd-minus-30", "aws-minus-30", "google-minus-30", "nvidia-minus-30",
        "spot-x3",
    ]
    assert by_family["all"] == by_family["n-1"] + by_family["shocks"] == list(builtins)
    assert len(set(by_family["all"])) == len(by_family["all"])


def test_n_1_scenarios_take_the_whole_target_for_the_whole_horizon(frontier: Fleet) -> None:
    builtins = builtin_scenarios(frontier)
    for name, kind, domain in [
        ("n-1-aws", DomainKind.PROVIDER, "aws"),
        ("n-1-vendor-nvidia", DomainKind.VENDOR, "nvidia"),
        ("n-1-region-aws-us-east-1", DomainKind.REGION, "aws/us-east-1"),
    ]:
        scenario = builtins[name]
        assert isinstance(scenario.events[0], Outage)
        kept = effects(frontier, scenario).capacity_factor()[0]
        hit = np.array([p.domain(kind) == domain for p in frontier.pools])
        assert hit.any() and not hit.all()
        np.testing.assert_allclose(kept[hit], 0.0)
        np.testing.assert_allclose(kept[~hit], 1.0)
    assert builtins["n-1-aws"].description == "aws lost for the whole horizon (N-1)"


def test_shocks(frontier: Fleet) -> None:
    builtins = builtin_scenarios(frontier)
    (shock,) = builtins["nvidia-minus-30"].events
    assert isinstance(shock, SupplyShock) and (shock.start, shock.fraction) == (0, 0.3)
    lost = effects(frontier, builtins["nvidia-minus-30"]).lost_fraction[0]
    nvidia = np.array([p.vendor == "nvidia" for p in frontier.pools])
    np.testing.assert_allclose(lost[nvidia], 0.3)
    np.testing.assert_allclose(lost[~nvidia], 0.0)

    (change,) = builtins["spot-x3"].events
    assert isinstance(change, PriceChange)
    price = effects(frontier, builtins["spot-x3"]).price_factor[0]
    spot = np.array([p.tier == "spot" for p in frontier.pools])
    np.testing.assert_allclose(price[spot], 3.0)
    np.testing.assert_allclose(price[~spot], 1.0)

    demand = effects(frontier, builtins["agentic-x2"]).demand_factor
    assert set(demand) == {"coding-agent", "deep-research", "api-agents"}
    assert all(np.all(f == 2.0) for f in demand.values())


def test_spot_and_agentic_builtins_only_where_they_apply() -> None:
    plain = fleet([pool("p", "aws", "h100", 10, 1.0)], inference=[service("chat", 100.0)])
    assert set(builtin_scenarios(plain)) == {
        "n-1-aws", "n-1-vendor-nvidia", "n-1-region-aws-r1", "nvidia-minus-30",
    }
    with pytest.raises(SpecError) as caught:
        resolve_scenario_ref(plain, "builtin:spot-x3")
    assert "does not apply to fleet test: it has no spot pool" in str(caught.value)


def test_unknown_family_suggests_the_nearest(frontier: Fleet) -> None:
    with pytest.raises(SpecError) as caught:
        family(frontier, "n-1-provder")
    (issue,) = caught.value.issues
    assert issue.suggestion == "n-1-provider"
    assert "n-1-region" in issue.message


# --- references ---------------------------------------------------------------------------


def test_builtin_reference(frontier: Fleet) -> None:
    (scenario,) = resolve_scenario_ref(frontier, "builtin:n-1-aws")
    assert scenario == builtin_scenarios(frontier)["n-1-aws"]
    assert scenario.name == "n-1-aws"


def test_unknown_builtin_lists_the_nearest_names(frontier: Fleet) -> None:
    with pytest.raises(SpecError) as caught:
        resolve_scenario_ref(frontier, "builtin:n-1-awz")
    (issue,) = caught.value.issues
    assert issue.file == "builtin:n-1-awz"
    assert issue.suggestion == "n-1-aws"
    assert "nearest: n-1-aws, " in issue.message


def test_file_reference_gives_every_scenario(frontier: Fleet) -> None:
    scenarios = resolve_scenario_ref(frontier, str(EXAMPLES / "scenarios.yaml"))
    assert [s.name for s in scenarios] == [
        "azure-week", "aws-us-east-1-down", "nvidia-supply-cut", "spot-x3-2027",
        "agentic-boom", "gb200-crunch",
    ]
    for scenario in scenarios:  # every example scenario changes something
        result = effects(frontier, scenario)
        changed = (
            result.lost_fraction.any()
            or (result.price_factor != 1).any()
            or any((f != 1).any() for f in result.demand_factor.values())
        )
        assert changed, scenario.name


def test_file_reference_with_a_name(frontier: Fleet) -> None:
    (scenario,) = resolve_scenario_ref(frontier, f"{EXAMPLES / 'scenarios.yaml'}#azure-week")
    assert scenario.name == "azure-week"
    result = effects(frontier, scenario)
    azure = [i for i, p in enumerate(frontier.pools) if p.provider == "azure"]
    march_2027 = frontier.horizon.labels.index("2027-03")
    np.testing.assert_allclose(result.down_hours[0, azure, march_2027], 168.0)
    assert result.start == march_2027


def test_file_reference_with_an_unknown_name(frontier: Fleet) -> None:
    with pytest.raises(SpecError) as caught:
        resolve_scenario_ref(frontier, f"{EXAMPLES / 'scenarios.yaml'}#azure-weak")
    (issue,) = caught.value.issues
    assert issue.suggestion == "azure-week"
    assert "no scenario named 'azure-weak'" in issue.message


def test_file_reference_to_a_missing_file(frontier: Fleet, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the file"):
        resolve_scenario_ref(frontier, str(tmp_path / "nope.yaml"))
