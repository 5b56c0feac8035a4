"""Loading a fleet spec: YAML and pydantic errors become located, plain-word issues."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from spec_helpers import MINIMAL, column_of, line_of, only

from cloudhedge import spec as spec_package
from cloudhedge.core.errors import SpecError, SpecIssue
from cloudhedge.spec import SourceMap, load_spec, load_spec_text
from cloudhedge.spec.errors import SERIES_EXPECTED
from cloudhedge.spec.schema import FleetSpec, InferenceSpec, TrainingSpec
from cloudhedge.spec.source import format_path


def spec_issues(text: str, filename: str = "fleet.yaml") -> list[SpecIssue]:
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, filename)
    return caught.value.issues


def test_public_api() -> None:
    assert sorted(spec_package.__all__) == [
        "SourceMap",
        "load_fleet",
        "load_spec",
        "load_spec_text",
        "resolve",
    ]


def test_minimal_spec_loads_with_positions() -> None:
    spec, source = load_spec_text(MINIMAL, "fleet.yaml")
    assert isinstance(spec, FleetSpec)
    assert isinstance(spec.workloads[0], TrainingSpec)
    assert isinstance(spec.workloads[1], InferenceSpec)
    assert source.file == "fleet.yaml"
    # a sequence item inside a flow sequence, and a mapping key
    assert source.position(("workloads", 0, "accelerators", 0)) == (
        line_of(MINIMAL, "accelerators: [h100]"),
        column_of(MINIMAL, "h100]"),
    )
    assert source.key_position(("workloads", 0, "gang_chips")) == (
        line_of(MINIMAL, "gang_chips"),
        column_of(MINIMAL, "gang_chips"),
    )
    # an unrecorded path falls back to its longest recorded prefix
    assert source.position(("workloads", 0, "no", "such")) == source.position(("workloads", 0))


def test_load_spec_reads_a_file(write: Callable[[str], Path]) -> None:
    path = write(MINIMAL)
    spec, source = load_spec(path)
    assert spec.name == "test-fleet"
    assert source.file == str(path)


def test_wrong_type_names_file_line_column_and_field(write: Callable[[str], Path]) -> None:
    text = MINIMAL.replace("gang_chips: 512", 'gang_chips: "many"')
    path = write(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    issue = only(caught.value.issues, "workloads[0].gang_chips")
    assert issue.file == str(path)
    assert (issue.line, issue.column) == (line_of(text, "gang_chips"), column_of(text, '"many"'))
    assert issue.message == "expected an integer >= 1, got 'many'"
    assert str(issue).startswith(f"{path}:{issue.line}:{issue.column}: workloads[0].gang_chips: ")


def test_number_with_bounds_in_the_message() -> None:
    text = MINIMAL + "policies:\n  caps:\n    - {kind: provider, max_share: lots}\n"
    issue = only(spec_issues(text), "policies.caps[0].max_share")
    assert issue.message == "expected a number >= 0 and <= 1, got 'lots'"
    assert issue.line == line_of(text, "max_share")


def test_out_of_bounds_number() -> None:
    text = MINIMAL.replace("chip_hours: 1000000", "chip_hours: -5")
    issue = only(spec_issues(text), "workloads[0].chip_hours")
    assert issue.message == "expected a number > 0, got -5"


def test_unknown_key_suggests_the_nearest_field() -> None:
    text = MINIMAL.replace("gang_chips: 512", "gang_chips: 512\n    gang_chip: 4")
    issue = only(spec_issues(text), "workloads[0].gang_chip")
    assert issue.suggestion == "gang_chips"
    assert issue.message.startswith("unknown field 'gang_chip' (valid fields: kind, name,")
    assert (issue.line, issue.column) == (
        line_of(text, "gang_chip:"),
        column_of(text, "gang_chip:"),
    )
    assert "did you mean 'gang_chips'?" in str(issue)


def test_missing_field_is_located_at_its_parent_mapping() -> None:
    text = MINIMAL.replace("    accelerator: h100\n    tier: on_demand\n", "    tier: on_demand\n")
    issue = only(spec_issues(text), "pools[0].accelerator")
    assert issue.message == "field required"
    assert issue.line == line_of(text, "- name: az-h100")


def test_missing_field_in_a_nested_mapping_points_at_its_key() -> None:
    text = MINIMAL.replace("window: {start: 2026-02, end: 2026-09}", "window: {start: 2026-02}")
    issue = only(spec_issues(text), "workloads[0].window.end")
    assert issue.message == "field required"
    assert (issue.line, issue.column) == (line_of(text, "window:"), column_of(text, "window:"))


def test_unknown_kind_lists_the_kinds() -> None:
    text = MINIMAL.replace("kind: inference", "kind: serving")
    issue = only(spec_issues(text), "workloads[1].kind")
    assert issue.message == "expected one of training, batch, inference, agentic, got 'serving'"
    assert (issue.line, issue.column) == (line_of(text, "serving"), column_of(text, "serving"))


def test_missing_kind() -> None:
    text = MINIMAL.replace("  - kind: inference\n    name: chat", "  - name: chat")
    issue = only(spec_issues(text), "workloads[1].kind")
    assert issue.message == "field required (one of training, batch, inference, agentic)"
    assert issue.line == line_of(text, "- name: chat")


def test_literal_with_suggestion() -> None:
    text = MINIMAL.replace("tier: on_demand", "tier: spotty")
    issue = only(spec_issues(text), "pools[0].tier")
    assert issue.message == "expected one of committed, on_demand, spot, got 'spotty'"
    assert issue.suggestion == "spot"


def test_month_pattern() -> None:
    text = MINIMAL.replace("end: 2027-12", "end: 2027-1")
    issue = only(spec_issues(text), "contracts[0].end")
    assert issue.message == "expected a month as YYYY-MM, got '2027-1'"


def test_series_errors_collapse_into_one_message() -> None:
    text = MINIMAL.replace("capacity_chips: 1000", "capacity_chips: lots")
    issues = spec_issues(text)
    assert len(issues) == 1
    issue = only(issues, "pools[0].capacity_chips")
    assert issue.message == f"expected {SERIES_EXPECTED}, got 'lots'"
    assert SERIES_EXPECTED == (
        "a number, a list of numbers, {from: a, to: b} or {steps: {YYYY-MM: value}}"
    )
    assert issue.line == line_of(text, "capacity_chips: lots")


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ("-3", "pools[0].capacity_chips", "expected a number >= 0, got -3"),
        ("[1, 2, -3]", "pools[0].capacity_chips[2]", "expected a number >= 0, got -3"),
        ("{from: 1}", "pools[0].capacity_chips.to", "field required"),
        ("{from: 1, to: 2, by: 3}", "pools[0].capacity_chips.by", "unknown field 'by'"),
        (
            "{steps: {2026-1: 5}}",
            "pools[0].capacity_chips.steps.2026-1",
            "expected the key to be a month as YYYY-MM, got '2026-1'",
        ),
        ("", "pools[0].capacity_chips", f"expected {SERIES_EXPECTED}, got nothing (null)"),
        ("{size: 3}", "pools[0].capacity_chips", f"expected {SERIES_EXPECTED}, got a mapping"),
    ],
)
def test_series_errors_follow_the_shape_of_the_value(value: str, path: str, message: str) -> None:
    text = MINIMAL.replace("capacity_chips: 1000", f"capacity_chips: {value}")
    issues = spec_issues(text)
    assert len(issues) == 1, issues
    assert issues[0].path == path
    assert issues[0].message.startswith(message)
    assert issues[0].line == line_of(text, "capacity_chips:")


def test_every_error_is_reported_in_file_order() -> None:
    text = MINIMAL.replace("gang_chips: 512", "gang_chips: many").replace(
        "tier: committed", "tier: reserved"
    )
    issues = spec_issues(text)
    assert [i.path for i in issues] == ["pools[1].tier", "workloads[0].gang_chips"]
    assert issues[0].line < issues[1].line


def test_wrong_container_type() -> None:
    text = MINIMAL + "policies: 3\n"
    issue = only(spec_issues(text), "policies")
    assert issue.message.startswith("expected a mapping with fields caps, survivability,")
    assert issue.message.endswith("got 3")


def test_workload_that_is_not_a_mapping() -> None:
    text = MINIMAL + "  - 5\n"
    issue = only(spec_issues(text), "workloads[2]")
    assert "got 5" in issue.message
    assert issue.line == text.count("\n")


def test_yaml_syntax_error_has_its_line() -> None:
    text = MINIMAL.replace("accelerators: [h100]", "accelerators: [h100")
    issues = spec_issues(text, "broken.yaml")
    assert len(issues) == 1
    issue = issues[0]
    assert issue.file == "broken.yaml"
    assert issue.message.startswith("YAML syntax error: ")
    # the flow sequence opened on this line is never closed: found on the next line
    assert issue.line == line_of(text, "accelerators: [h100") + 1
    assert issue.column > 0


def test_duplicate_key_is_located() -> None:
    text = MINIMAL.replace("    region: eastus\n", "    region: eastus\n    region: westus\n", 1)
    issues = spec_issues(text)
    assert len(issues) == 1
    issue = issues[0]
    assert issue.message.startswith("duplicate key 'region'")
    assert (issue.line, issue.column) == (line_of(text, "region: westus"), 5)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    assert spec_issues("")[0].message.startswith("the file is empty")
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "nope.yaml")
    assert caught.value.issues[0].file == str(tmp_path / "nope.yaml")
    assert "cannot read the file" in caught.value.issues[0].message


def test_source_map_issue_and_path_format() -> None:
    source = SourceMap("f.yaml", {("a",): (3, 4), ("a", 0): (4, 6)}, {("a",): (3, 1)})
    issue = source.issue(("a", 0, "b"), "oops", "bee")
    assert (issue.line, issue.column, issue.path) == (4, 6, "a[0].b")
    assert source.issue(("a",), "key", at_key=True).column == 1
    assert SourceMap("g.yaml").issue(("x",), "m").line == 0
    assert format_path(("policies", "caps", 0, "max_share")) == "policies.caps[0].max_share"
    assert format_path(()) == ""


def test_unknown_top_level_key_and_literal_key_suggestions() -> None:
    text = MINIMAL.replace("workloads:", "workload:")
    issues = spec_issues(text)
    assert only(issues, "workload").suggestion == "workloads"
    assert only(issues, "workloads").message == "field required"
    text = (
        MINIMAL + "policies:\n  survivability:\n    - kind: provider\n      alpha: {critcal: 0.9}\n"
    )
    issue = only(spec_issues(text), "policies.survivability[0].alpha.critcal")
    assert issue.message.startswith("expected the key to be one of critical, high,")
    assert issue.suggestion == "critical"
    assert issue.column == column_of(text, "critcal")


def test_shortened_field_name_suggests_the_full_one() -> None:
    text = MINIMAL + "defaults:\n  unmet_penalty: 3\n"
    issue = only(spec_issues(text), "defaults.unmet_penalty")
    assert issue.suggestion == "unmet_penalty_usd_per_million_tokens"
