"""Resolving a fleet spec: cross references, periods, policies and workloads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from spec_helpers import MINIMAL, FakeCatalog, column_of, line_of, only

from cloudhedge.core.errors import SpecError, SpecIssue
from cloudhedge.core.models import CommitTier, Criticality, DomainKind, Fleet, Tier
from cloudhedge.spec import load_spec_text, resolve

Fleeter = Callable[[str], Fleet]
Issuer = Callable[[str], list[SpecIssue]]


def test_minimal_fleet(fleet_of: Fleeter) -> None:
    fleet = fleet_of(MINIMAL)
    assert fleet.name == "test-fleet"
    assert fleet.horizon.start == date(2026, 1, 1)
    assert fleet.horizon.periods == 12
    assert fleet.horizon.period_hours == 730.0
    od, committed = fleet.pools
    assert (od.name, od.jurisdiction, od.vendor, od.stack, od.tier) == (
        "az-h100",
        "us",
        "nvidia",
        "cuda",
        Tier.ON_DEMAND,
    )
    assert od.capacity_chips == (1000.0,) * 12
    assert od.preemption_rate_per_hour == 0.0
    assert committed.tier is Tier.COMMITTED
    (contract,) = fleet.contracts
    assert (contract.start_period, contract.end_period) == (0, 11)  # clipped to the horizon
    assert contract.committed_chips == (1500.0,) * 12
    (run,) = fleet.training
    assert (run.window_start, run.window_end, run.accelerators) == (1, 8, ("h100",))
    (chat,) = fleet.inference
    assert chat.demand_tokens_per_s == {"us": (100000.0,) * 12}
    assert chat.throughput_tokens_per_s == {
        "h100": 3000.0,
        "h200": 4000.0,
        "mi300x": 2900.0,
        "trn2": 2600.0,
    }
    assert chat.unmet_penalty_usd_per_million_tokens == 50.0
    assert fleet.relative_speed == {"h100": 1.0, "h200": 1.0, "trn2": 0.7}
    assert set(fleet.accelerators) == set(FakeCatalog().accelerators)
    assert fleet.training_penalty_usd_per_chip_hour == 100.0
    assert fleet.batch_penalty_usd_per_chip_hour == 30.0


def test_resolve_takes_a_spec_and_its_source_map() -> None:
    spec, source = load_spec_text(MINIMAL, "inline.yaml")
    fleet = resolve(spec, source, FakeCatalog())
    assert [p.name for p in fleet.pools] == ["az-h100", "az-h100-committed"]


def test_misspelled_accelerator_suggests_the_nearest(issues_of: Issuer) -> None:
    text = MINIMAL.replace(
        "accelerator: h100\n    tier: on_demand", "accelerator: h10\n    tier: on_demand"
    )
    issue = only(issues_of(text), "pools[0].accelerator")
    assert issue.message == "unknown accelerator 'h10'"
    assert issue.suggestion == "h100"
    assert (issue.line, issue.column) == (
        line_of(text, "accelerator: h10"),
        column_of(text, "accelerator: h10") + len("accelerator: "),
    )
    assert issue.file.endswith("fleet.yaml")


def test_accelerator_case_is_an_error_with_the_right_name(issues_of: Issuer) -> None:
    text = MINIMAL.replace("accelerators: [h100]", "accelerators: [H100]")
    issue = only(issues_of(text), "workloads[0].accelerators[0]")
    assert issue.suggestion == "h100"
    assert (issue.line, issue.column) == (line_of(text, "[H100]"), column_of(text, "H100"))


def test_empty_accelerator_list(issues_of: Issuer) -> None:
    text = MINIMAL.replace("accelerators: [h100]", "accelerators: []")
    assert only(issues_of(text), "workloads[0].accelerators").message == (
        "expected at least one accelerator"
    )


def test_bad_month_in_a_window(issues_of: Issuer) -> None:
    text = MINIMAL.replace("end: 2026-09", "end: 2026-13")
    issue = only(issues_of(text), "workloads[0].window.end")
    assert issue.message.startswith("bad date '2026-13'")
    assert (issue.line, issue.column) == (line_of(text, "2026-13"), column_of(text, "2026-13"))


def test_window_ending_before_it_starts(issues_of: Issuer) -> None:
    text = MINIMAL.replace(
        "window: {start: 2026-02, end: 2026-09}", "window: {start: 2026-06, end: 2026-03}"
    )
    issue = only(issues_of(text), "workloads[0].window.end")
    assert issue.message == "the window ends (2026-03) before it starts (2026-06)"
    assert issue.line == line_of(text, "window:")


def test_window_outside_the_horizon(issues_of: Issuer) -> None:
    text = MINIMAL.replace(
        "window: {start: 2026-02, end: 2026-09}", "window: {start: 2030-01, end: 2030-06}"
    )
    issue = only(issues_of(text), "workloads[0].window.start")
    assert issue.message == (
        "the window 2030-01..2030-06 lies outside the horizon 2026-01..2026-12"
    )


def test_window_is_clipped_to_the_horizon(fleet_of: Fleeter) -> None:
    text = MINIMAL.replace(
        "window: {start: 2026-02, end: 2026-09}", "window: {start: 2025-06, end: 2027-06}"
    )
    (run,) = fleet_of(text).training
    assert (run.window_start, run.window_end) == (0, 11)


def test_bad_horizon_start_stops_early(issues_of: Issuer) -> None:
    text = MINIMAL.replace("start: 2026-01\n  periods", "start: 2026-00\n  periods")
    issues = issues_of(text)
    assert [i.path for i in issues] == ["horizon.start"]
    assert issues[0].message.startswith("bad date '2026-00'")


def test_series_with_the_wrong_length(issues_of: Issuer) -> None:
    text = MINIMAL.replace("capacity_chips: 1000", "capacity_chips: [1, 2, 3]")
    issue = only(issues_of(text), "pools[0].capacity_chips")
    assert issue.message == (
        "expected 12 values (one per period of the horizon 2026-01..2026-12), got 3"
    )
    assert issue.line == line_of(text, "capacity_chips: [1, 2, 3]")


def test_unknown_pool_in_a_contract(issues_of: Issuer) -> None:
    text = MINIMAL.replace("pools: [az-h100-committed]", "pools: [az-h100-comitted]")
    issue = only(issues_of(text), "contracts[0].pools[0]")
    assert issue.message == "unknown pool 'az-h100-comitted'"
    assert issue.suggestion == "az-h100-committed"
    assert (issue.line, issue.column) == (
        line_of(text, "comitted"),
        column_of(text, "az-h100-comitted"),
    )


def test_contract_pool_of_another_tier_or_provider(issues_of: Issuer) -> None:
    text = MINIMAL.replace("pools: [az-h100-committed]", "pools: [az-h100-committed, az-h100]")
    issue = only(issues_of(text), "contracts[0].pools[1]")
    assert "tier on_demand" in issue.message
    text = MINIMAL.replace(
        "  - name: az-deal\n    provider: azure", "  - name: az-deal\n    provider: aws"
    )
    issue = only(issues_of(text), "contracts[0].pools[0]")
    assert "is on provider 'azure', not on the contract's provider 'aws'" in issue.message


def test_a_pool_is_covered_by_one_contract(issues_of: Issuer) -> None:
    second = (
        "  - name: deal-2\n    provider: azure\n    pools: [az-h100-committed]\n"
        "    start: 2026-01\n    end: 2026-12\n    committed_chips: 10\n"
        "    price_usd_per_chip_hour: 2.0\n"
    )
    text = MINIMAL.replace("workloads:\n", second + "workloads:\n")
    issue = only(issues_of(text), "contracts[1].pools[0]")
    assert "already covered by contract 'az-deal'" in issue.message


@pytest.mark.parametrize(
    ("replacement", "got"),
    [
        ("    committed_chips: 1500\n", "none"),
        (
            "    committed_chips: 1500\n    committed_spend_usd: 10\n",
            "committed_chips and committed_spend_usd",
        ),
    ],
)
def test_contract_needs_exactly_one_commitment(
    issues_of: Issuer, replacement: str, got: str
) -> None:
    text = MINIMAL.replace("    committed_chips: 1500\n", replacement if got != "none" else "")
    issue = only(issues_of(text), "contracts[0]")
    assert issue.message.endswith(f"(got {got})")
    assert issue.line == line_of(text, "- name: az-deal")


def test_commitment_is_zero_outside_the_term(fleet_of: Fleeter) -> None:
    text = MINIMAL.replace("start: 2026-01\n    end: 2027-12", "start: 2026-04\n    end: 2026-09")
    (contract,) = fleet_of(text).contracts
    assert (contract.start_period, contract.end_period) == (3, 8)
    assert contract.committed_chips == (0.0,) * 3 + (1500.0,) * 6 + (0.0,) * 3
    assert contract.active(3) and not contract.active(9)


def test_commitment_decision_with_sorted_tiers(fleet_of: Fleeter) -> None:
    decide = (
        "    decide:\n      max_chips: 4000\n      tiers:\n"
        "        - {min_chips: 2000, discount: 0.3}\n        - {min_chips: 500, discount: 0.1}\n"
    )
    (contract,) = fleet_of(MINIMAL.replace("    committed_chips: 1500\n", decide)).contracts
    assert contract.decide and contract.max_chips == 4000.0
    assert contract.tiers == (CommitTier(500.0, 0.1), CommitTier(2000.0, 0.3))
    assert contract.committed_chips == () and contract.committed_spend_usd == ()
    plain = "    decide: {max_chips: 100}\n"
    (contract,) = fleet_of(MINIMAL.replace("    committed_chips: 1500\n", plain)).contracts
    assert contract.tiers == (CommitTier(0.0, 0.0),)


def test_committed_spend_series(fleet_of: Fleeter) -> None:
    text = MINIMAL.replace("committed_chips: 1500", "committed_spend_usd: {from: 100, to: 210}")
    (contract,) = fleet_of(text).contracts
    assert contract.committed_spend_usd == pytest.approx([100.0 + 10.0 * t for t in range(12)])


def test_duplicate_workload_names(issues_of: Issuer) -> None:
    text = MINIMAL.replace("name: chat", "name: pretrain")
    issue = only(issues_of(text), "workloads[1].name")
    assert issue.message.startswith("duplicate workload name 'pretrain' (also workloads[0] at line")
    assert issue.line == line_of(text, "name: pretrain", 2)


def test_duplicate_pool_names(issues_of: Issuer) -> None:
    text = MINIMAL.replace("name: az-h100-committed\n", "name: az-h100\n").replace(
        "pools: [az-h100-committed]", "pools: [az-h100]"
    )
    issues = issues_of(text)
    issue = only(issues, "pools[1].name")
    assert (
        issue.message
        == f"duplicate pool name 'az-h100' (first at line {line_of(text, '- name: az-h100')})"
    )


def test_unknown_provider_and_region(issues_of: Issuer) -> None:
    text = MINIMAL.replace(
        "provider: azure\n    region: eastus\n    accelerator: h100\n    tier: on_demand",
        "provider: azur\n    region: eastus\n    accelerator: h100\n    tier: on_demand",
    )
    issue = only(issues_of(text), "pools[0].provider")
    assert (issue.message, issue.suggestion) == ("unknown provider 'azur'", "azure")
    text = MINIMAL.replace(
        "region: eastus\n    accelerator: h100\n    tier: on_demand",
        "region: eastus2\n    accelerator: h100\n    tier: on_demand",
    )
    issue = only(issues_of(text), "pools[0].region")
    assert issue.message.startswith("unknown region 'eastus2' of provider 'azure'")
    assert issue.suggestion == "eastus"


def test_regions_declared_in_the_spec(fleet_of: Fleeter) -> None:
    pool = (
        "  - name: neo\n    provider: neocloud\n    region: tokyo-1\n    accelerator: h100\n"
        "    tier: on_demand\n    capacity_chips: 8\n    price_usd_per_chip_hour: 2.5\n"
    )
    text = MINIMAL.replace("contracts:\n", pool + "contracts:\n").replace(
        "pools:\n",
        "providers:\n  neocloud:\n    regions:\n      tokyo-1: {jurisdiction: jp}\npools:\n",
        1,
    )
    neo = next(p for p in fleet_of(text).pools if p.name == "neo")
    assert (neo.provider, neo.jurisdiction, neo.price_usd_per_chip_hour) == ("neocloud", "jp", 2.5)


def test_policies(fleet_of: Fleeter) -> None:
    policies = """\
policies:
  caps:
    - {kind: provider, name: azure, max_share: 0.6}
    - {kind: vendor, max_share: 0.8}
    - {kind: region, name: azure/eastus, max_share: 0.9}
  survivability:
    - {kind: provider, alpha: {critical: 0.9, standard: 0.5}}
  exclusivity:
    partner: [azure, aws]
  residency:
    eu: [azure/westeurope]
  budget: {total_usd: 1.0e9}
"""
    fleet = fleet_of(MINIMAL + policies)
    caps = fleet.policies.caps
    assert [(c.kind, c.name, c.max_share) for c in caps] == [
        (DomainKind.PROVIDER, "azure", 0.6),
        (DomainKind.VENDOR, "*", 0.8),
        (DomainKind.REGION, "azure/eastus", 0.9),
    ]
    (rule,) = fleet.policies.survivability
    assert rule.kind is DomainKind.PROVIDER and rule.alpha == {"critical": 0.9, "standard": 0.5}
    assert fleet.policies.exclusivity == {"partner": ("azure", "aws")}
    assert fleet.policies.residency == {"eu": ("azure/westeurope",)}
    assert fleet.policies.budget is not None and fleet.policies.budget.total_usd == 1.0e9


def test_policy_names_must_be_known(issues_of: Issuer) -> None:
    policies = """\
policies:
  caps:
    - {kind: provider, name: azur, max_share: 0.6}
    - {kind: vendor, name: amd, max_share: 0.5}
  exclusivity:
    partner: [azure, awss]
  residency:
    eu: [azure/westeurop, westeurope]
"""
    text = MINIMAL + policies
    issues = issues_of(text)
    cap = only(issues, "policies.caps[0].name")
    assert cap.suggestion == "azure" and "no pool is in that provider" in cap.message
    assert cap.line == line_of(text, "name: azur,")
    assert "no pool is in that vendor" in only(issues, "policies.caps[1].name").message
    assert only(issues, "policies.exclusivity.partner[1]").suggestion == "aws"
    assert only(issues, "policies.residency.eu[0]").suggestion == "azure/westeurope"
    assert only(issues, "policies.residency.eu[1]").message.startswith(
        "unknown region 'westeurope'"
    )


def test_all_issues_are_reported_at_once(issues_of: Issuer) -> None:
    text = (
        MINIMAL.replace("accelerators: [h100]", "accelerators: [h10]")
        .replace("pools: [az-h100-committed]", "pools: [nope]")
        .replace("end: 2026-09", "end: 2026-13")
    )
    paths = [i.path for i in issues_of(text)]
    assert "contracts[0].pools[0]" in paths
    assert "workloads[0].accelerators[0]" in paths
    assert "workloads[0].window.end" in paths
    lines = [i.line for i in issues_of(text)]
    assert lines == sorted(lines)


def test_inference_throughput_scaled_restricted_and_given(fleet_of: Fleeter) -> None:
    text = MINIMAL.replace(
        "    model: llama-70b\n",
        "    model: llama-8b\n    model_params_b: 7\n    accelerators: [h100, trn2]\n",
    )
    (chat,) = fleet_of(text).inference
    assert chat.throughput_tokens_per_s == pytest.approx({"h100": 30000.0, "trn2": 26000.0})
    text = MINIMAL.replace(
        "    model: llama-70b\n",
        "    model: llama-70b\n    throughput_tokens_per_s: {h100: 1234, b200: 5000}\n"
        "    criticality: critical\n    unmet_penalty_usd_per_million_tokens: 7\n",
    )
    (chat,) = fleet_of(text).inference
    assert chat.throughput_tokens_per_s == {"h100": 1234.0, "b200": 5000.0}
    assert chat.criticality is Criticality.CRITICAL
    assert chat.unmet_penalty_usd_per_million_tokens == 7.0


def test_inference_throughput_errors(issues_of: Issuer) -> None:
    text = MINIMAL.replace(
        "    model: llama-70b\n", "    model: llama-70b\n    throughput_tokens_per_s: {h1000: 5}\n"
    )
    issue = only(issues_of(text), "workloads[1].throughput_tokens_per_s.h1000")
    assert issue.suggestion == "h100"
    assert issue.column == column_of(text, "h1000")
    text = MINIMAL.replace(
        "    model: llama-70b\n", "    model: llama-70b\n    accelerators: [b200]\n"
    )
    issue = only(issues_of(text), "workloads[1]")
    assert issue.message.startswith("no throughput figure for inference workload 'chat' on b200")


def test_notes_on_modelled_throughput(fleet_of: Fleeter) -> None:
    pool = (
        "  - name: aws-trn2\n    provider: aws\n    region: us-east-1\n    accelerator: trn2\n"
        "    tier: on_demand\n    capacity_chips: 64\n"
    )
    fleet = fleet_of(MINIMAL.replace("contracts:\n", pool + "contracts:\n"))
    notes = [n for n in fleet.notes if n.startswith("service chat: throughput")]
    # trn2 is modelled; h100 is measured and h200 has no pool: neither is noted
    assert notes == ["service chat: throughput on trn2 is modelled, not measured "
                     "(rules in catalog/data/SOURCES.md)"]


def test_spec_error_text_is_one_line_per_issue(issues_of: Issuer) -> None:
    text = MINIMAL.replace("accelerators: [h100]", "accelerators: [h10]")
    issues = issues_of(text)
    error = SpecError(issues)
    assert str(error).count("\n") == len(issues) - 1
    assert "workloads[0].accelerators[0]: unknown accelerator 'h10' (did you mean 'h100'?)" in str(
        error
    )
