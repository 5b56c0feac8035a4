"""Scenario files: located validation errors against a fleet, and the Effects they produce."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))
from fleets import BatchJob, Policies, Tier, TrainingRun, fleet, pool, service

from cloudhedge.core.errors import SpecError, SpecIssue
from cloudhedge.core.models import Fleet
from cloudhedge.stress.scenario import (
    Outage,
    Scenario,
    Target,
    TargetKind,
    WorkloadKind,
    effects,
    load_scenarios,
    load_scenarios_text,
    workload_kind,
)

H = 730.0
T = 6  # 2026-01 .. 2026-06


@pytest.fixture
def small() -> Fleet:
    """Three providers, three vendors, spot on two providers; five kinds of workload."""
    pools = [
        pool("az-h100", "azure", "h100", 100, 4.0, region="eastus", T=T),
        pool("az-mi", "azure", "mi300x", 100, 2.0, tier=Tier.SPOT, region="westus", T=T),
        pool("aws-h100", "aws", "h100", 100, 5.0, region="us-east-1", T=T),
        pool("aws-trn2", "aws", "trn2", 100, 1.0, tier=Tier.SPOT, region="us-east-1", T=T),
        pool("gcp-b200", "gcp", "b200", 100, 6.0, tier=Tier.COMMITTED, region="us-central1", T=T),
    ]
    inference = [
        service("chat", 1000.0, T=T, tenant="consumer"),
        service("api", 1000.0, T=T, tenant="api"),
        replace(service("coder", 500.0, T=T, tenant="consumer"), source="agentic:coder"),
    ]
    training = [TrainingRun("pretrain", 64, 1e5, ("h100",), 0, T - 1, tenant_class="consumer")]
    batch = [BatchJob("rollouts", 1e4, ("h100", "trn2"), 0, T - 1)]
    return fleet(pools, T=T, inference=inference, training=training, batch=batch,
                 policies=Policies(exclusivity={"api": ("azure",), "partner": ("gcp",)}))


def one_event(event: str, name: str = "s") -> str:
    """A scenario file with one event, on line 4."""
    return f"scenarios:\n  - name: {name}\n    events:\n      - {event}\n"


def resolve(text: str, the_fleet: Fleet) -> list[Scenario]:
    return load_scenarios_text(text, "scenarios.yaml", the_fleet)


def issues_of(text: str, the_fleet: Fleet) -> list[SpecIssue]:
    with pytest.raises(SpecError) as caught:
        resolve(text, the_fleet)
    return caught.value.issues


def only_issue(text: str, the_fleet: Fleet) -> SpecIssue:
    found = issues_of(text, the_fleet)
    assert len(found) == 1, [str(i) for i in found]
    return found[0]


def column(text: str, fragment: str) -> int:
    line = next(line for line in text.splitlines() if fragment in line)
    return line.index(fragment) + 1


# --- validation errors --------------------------------------------------------------------


def test_misspelled_key_is_located_with_valid_fields_and_a_suggestion(small: Fleet) -> None:
    text = one_event('{kind: outage, provder: azure, start: "2026-03", hours: 168}')
    issue = only_issue(text, small)
    assert (issue.file, issue.line, issue.column) == ("scenarios.yaml", 4, column(text, "provder"))
    assert issue.path == "scenarios[0].events[0].provder"
    assert "unknown field 'provder'" in issue.message
    assert "provider, region, accelerator, vendor" in issue.message
    assert issue.suggestion == "provider"
    assert str(issue).startswith("scenarios.yaml:4:")


def test_unknown_event_kind_suggests_the_nearest(small: Fleet) -> None:
    issue = only_issue(one_event("{kind: outtage, provider: azure, start: 0, hours: 1}"), small)
    assert issue.path == "scenarios[0].events[0].kind"
    assert "outage, supply_shock, price_change, demand_surge" in issue.message
    assert issue.suggestion == "outage"


@pytest.mark.parametrize(
    ("event", "path", "message", "suggestion"),
    [
        ('{kind: outage, provider: azur, start: 0, hours: 1}',
         "provider", "unknown provider 'azur': fleet test has aws, azure, gcp", "azure"),
        ('{kind: outage, region: eastus, start: 0, hours: 1}',
         "region", "a region is written provider/region", "azure/eastus"),
        ('{kind: outage, accelerator: h200, start: 0, hours: 1}',
         "accelerator", "unknown accelerator 'h200'", "h100"),
        ('{kind: supply_shock, vendor: nvidai, fraction: 0.3, start: 0}',
         "vendor", "unknown vendor 'nvidai'", "nvidia"),
        ('{kind: price_change, tier: spott, factor: 2, start: 0}',
         "tier", "expected committed, on_demand, spot", "spot"),
        ('{kind: price_change, provider: [aws, gpc], factor: 2, start: 0}',
         "provider[1]", "unknown provider 'gpc'", "gcp"),
        ('{kind: demand_surge, workload_kind: agentc, factor: 2, start: 0}',
         "workload_kind", "expected agentic, batch, inference, training", "agentic"),
        ('{kind: demand_surge, name: chatt, factor: 2, start: 0}',
         "name", "unknown workload 'chatt'", "chat"),
        ('{kind: demand_surge, tenant: [api, consumr], factor: 2, start: 0}',
         "tenant[1]", "unknown tenant class 'consumr'", "consumer"),
    ],
)
def test_unknown_names_are_checked_against_the_fleet(
    small: Fleet, event: str, path: str, message: str, suggestion: str
) -> None:
    issue = only_issue(one_event(event), small)
    assert issue.line == 4
    assert issue.path == f"scenarios[0].events[0].{path}"
    assert message in issue.message
    assert issue.suggestion == suggestion


@pytest.mark.parametrize(
    ("event", "path", "message"),
    [
        ('{kind: outage, provider: aws, start: "2026-13", hours: 1}',
         "start", "bad date '2026-13'"),
        ('{kind: outage, provider: aws, start: "2027-01", hours: 1}',
         "start", "2027-01 is outside the horizon 2026-01..2026-06"),
        ("{kind: outage, provider: aws, start: 6, hours: 1}",
         "start", "period 6 is outside the horizon: 0..5 (2026-01..2026-06)"),
        ("{kind: outage, provider: aws, start: March, hours: 1}",
         "start", "expected an integer or a month as YYYY-MM, got 'March'"),
        ('{kind: outage, provider: aws, start: "2026-04", end: "2026-03"}',
         "end", "the outage ends (2026-03) before it starts (2026-04)"),
        ('{kind: price_change, tier: spot, factor: 2, start: 3, end: 1}',
         "end", "the price change ends (period 1) before it starts (period 3)"),
        ("{kind: outage, provider: aws, fraction: 1.5, start: 0, hours: 1}",
         "fraction", "expected a number > 0 and <= 1, got 1.5"),
        ("{kind: supply_shock, vendor: aws, fraction: 0, start: 0}",
         "fraction", "expected a number > 0 and <= 1, got 0"),
        ("{kind: price_change, tier: spot, factor: 0, start: 0}",
         "factor", "expected a number > 0, got 0"),
        ("{kind: outage, start: 0, hours: 1}",
         "", "an outage needs a target: one of provider, region, accelerator, vendor"),
        ("{kind: supply_shock, fraction: 0.5, start: 0}",
         "", "a supply shock needs a target: one of accelerator, vendor"),
        ("{kind: outage, vendor: aws, provider: aws, start: 0, hours: 1}",
         "provider", "an outage takes exactly one target, got provider and vendor"),
        ("{kind: outage, provider: aws, start: 0, end: 1, hours: 1}",
         "hours", "give either end or hours, not both"),
        ("{kind: outage, provider: aws, start: 0}",
         "", "an outage needs a length: end (the last period) or hours"),
        ("{kind: supply_shock, provider: aws, fraction: 0.5, start: 0}",
         "provider", "unknown field 'provider' (valid fields: kind, accelerator, vendor"),
        ("{kind: price_change, factor: 2, start: 0}",
         "", "a price change needs a selector: provider, accelerator or tier"),
        ("{kind: price_change, provider: gcp, tier: spot, factor: 2, start: 0}",
         "", "the price change selects no pool: none has provider gcp, tier spot"),
        ("{kind: price_change, provider: [], factor: 2, start: 0}",
         "provider", "expected at least one provider"),
        ("{kind: demand_surge, tenant: partner, factor: 2, start: 0}",
         "", "the demand surge selects no workload: none has tenant partner"),
        ("{kind: demand_surge, name: 3, factor: 2, start: 0}",
         "name", "expected text or a list (of text), got 3"),
    ],
)
def test_timing_ranges_and_rules_are_located(
    small: Fleet, event: str, path: str, message: str
) -> None:
    text = one_event(event)
    issue = only_issue(text, small)
    assert issue.file == "scenarios.yaml"
    assert issue.line == 4
    assert issue.path == "scenarios[0].events[0]" + (f".{path}" if path else "")
    assert message in issue.message
    if path:  # a field's issue is at the field (its key for a misplaced one), not the event
        assert issue.column > column(text, "{")


def test_every_problem_is_reported_at_once(small: Fleet) -> None:
    text = (
        "scenarios:\n"
        "  - name: a\n"
        "    events:\n"
        "      - {kind: outage, provider: azur, start: 0, hours: 1}\n"
        "      - {kind: price_change, tier: spot, factor: 2, start: 9}\n"
        "  - name: a\n"
        "    events: []\n"
    )
    found = issues_of(text, small)
    assert [(i.line, i.path) for i in found] == [
        (4, "scenarios[0].events[0].provider"),
        (5, "scenarios[0].events[1].start"),
        (6, "scenarios[1].name"),
        (7, "scenarios[1].events"),
    ]
    assert "already defined (line 2)" in found[2].message


def test_empty_and_unreadable_files(small: Fleet, tmp_path: Path) -> None:
    assert "the file is empty" in only_issue("# nothing\n", small).message
    with pytest.raises(SpecError, match="cannot read the file"):
        load_scenarios(tmp_path / "missing.yaml", small)


# --- resolved form ----------------------------------------------------------------------


def test_months_and_indices_resolve_to_the_same_periods(small: Fleet) -> None:
    by_month = resolve(one_event('{kind: outage, provider: aws, start: "2026-02", end: '
                                 '"2026-03", fraction: 0.5}'), small)
    by_index = resolve(one_event("{kind: outage, provider: aws, start: 1, end: 2, "
                                 "fraction: 0.5}"), small)
    expected = Outage(Target(TargetKind.PROVIDER, "aws"), 1, 2 * H, 0.5)
    assert by_month[0].events == by_index[0].events == (expected,)


def test_description_defaults_to_the_events(small: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(one_event('{kind: outage, provider: azure, start: "2026-03", hours: 168}'))
    (scenario,) = load_scenarios(path, small)
    assert scenario.description == (
        "outage: provider azure loses all of its capacity for 168 h from the start of 2026-03"
    )


def test_workload_kinds_partition_inference_and_agentic(small: Fleet) -> None:
    kinds = {w.name: workload_kind(w) for w in (*small.training, *small.batch, *small.inference)}
    assert kinds == {
        "pretrain": WorkloadKind.TRAINING,
        "rollouts": WorkloadKind.BATCH,
        "chat": WorkloadKind.INFERENCE,
        "api": WorkloadKind.INFERENCE,
        "coder": WorkloadKind.AGENTIC,
    }


# --- effects ------------------------------------------------------------------------------


def scenario_of(small: Fleet, *events: str) -> Scenario:
    body = "".join(f"      - {e}\n" for e in events)
    (scenario,) = resolve(f"scenarios:\n  - name: s\n    events:\n{body}", small)
    return scenario


def test_outage_hours_spill_into_the_next_period(small: Fleet) -> None:
    result = effects(small, scenario_of(small, "{kind: outage, provider: azure, start: 1, "
                                               "hours: 1000}"))
    assert result.lost_fraction.shape == result.down_hours.shape == (1, 5, T)
    assert result.period_hours == H
    np.testing.assert_allclose(result.down_hours[0, 0], [0, H, 1000 - H, 0, 0, 0])
    np.testing.assert_allclose(result.down_hours[0, 1], [0, H, 1000 - H, 0, 0, 0])
    np.testing.assert_allclose(result.lost_fraction[0, 0], [0, 1, 1, 0, 0, 0])
    assert not result.down_hours[0, 2:].any() and not result.lost_fraction[0, 2:].any()
    np.testing.assert_allclose(result.capacity_factor()[0, 0, 2], 1 - (1000 - H) / H)
    assert result.start == 1


def test_outage_past_the_horizon_end_is_cut_at_the_end(small: Fleet) -> None:
    result = effects(small, scenario_of(small, "{kind: outage, provider: aws, start: 5, "
                                               "hours: 5000}"))
    np.testing.assert_allclose(result.down_hours[0, 2], [0, 0, 0, 0, 0, H])


def test_two_outages_on_one_pool_and_period_combine(small: Fleet) -> None:
    result = effects(small, scenario_of(
        small,
        "{kind: outage, accelerator: h100, fraction: 0.4, start: 0, hours: 300}",
        "{kind: outage, provider: azure, fraction: 0.5, start: 0, hours: 100}",
    ))
    lost, down = result.lost_fraction[0, :, 0], result.down_hours[0, :, 0]
    # az-h100 (both), az-mi (azure), aws-h100 (h100), aws-trn2, gcp-b200 (neither)
    np.testing.assert_allclose(lost, [1 - 0.5 * 0.6, 0.5, 0.4, 0, 0])
    np.testing.assert_allclose(down, [300, 100, 300, 0, 0])
    assert not result.lost_fraction[0, :, 1:].any()


def test_supply_shock_lasts_to_the_horizon_end(small: Fleet) -> None:
    result = effects(small, scenario_of(
        small, '{kind: supply_shock, vendor: nvidia, fraction: 0.3, start: "2026-04"}'
    ))
    nvidia = [p.vendor == "nvidia" for p in small.pools]
    assert nvidia == [True, False, True, False, True]
    for index, hit in enumerate(nvidia):
        expected = [0, 0, 0, 0.3, 0.3, 0.3] if hit else [0] * T
        np.testing.assert_allclose(result.lost_fraction[0, index], expected)
        np.testing.assert_allclose(result.down_hours[0, index], np.array(expected) / 0.3 * H)
    assert result.start == 3


def test_price_factors_compose(small: Fleet) -> None:
    result = effects(small, scenario_of(
        small,
        "{kind: price_change, provider: azure, factor: 2, start: 0, end: 3}",
        "{kind: price_change, tier: spot, factor: 3, start: 2}",
    ))
    price = result.price_factor[0]
    assert price.shape == (5, T)
    np.testing.assert_allclose(price[0], [2, 2, 2, 2, 1, 1])  # azure on demand
    np.testing.assert_allclose(price[1], [2, 2, 6, 6, 3, 3])  # azure spot
    np.testing.assert_allclose(price[3], [1, 1, 3, 3, 3, 3])  # aws spot
    np.testing.assert_allclose(price[[2, 4]], 1.0)
    assert not result.lost_fraction.any()
    assert result.demand_factor == {}


def test_demand_factors_compose_per_workload(small: Fleet) -> None:
    result = effects(small, scenario_of(
        small,
        "{kind: demand_surge, workload_kind: agentic, factor: 2, start: 2}",
        "{kind: demand_surge, tenant: consumer, factor: 1.5, start: 0, end: 2}",
        "{kind: demand_surge, name: [rollouts], factor: 4, start: 5}",
    ))
    factors = result.demand_factor
    assert set(factors) == {"coder", "chat", "pretrain", "rollouts"}  # not api
    assert all(f.shape == (1, T) for f in factors.values())
    np.testing.assert_allclose(factors["coder"][0], [1.5, 1.5, 3, 2, 2, 2])
    np.testing.assert_allclose(factors["chat"][0], [1.5, 1.5, 1.5, 1, 1, 1])
    np.testing.assert_allclose(factors["pretrain"][0], [1.5, 1.5, 1.5, 1, 1, 1])
    np.testing.assert_allclose(factors["rollouts"][0], [1, 1, 1, 1, 1, 4])
    np.testing.assert_allclose(result.price_factor, 1.0)
    assert result.start == 0


def test_kind_inference_leaves_agentic_services_alone(small: Fleet) -> None:
    result = effects(small, scenario_of(
        small, "{kind: demand_surge, workload_kind: [inference, batch], factor: 2, start: 0}"
    ))
    assert set(result.demand_factor) == {"chat", "api", "rollouts"}
