"""job.yaml and service.yaml: valid files load; every error names file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudhedge.control.specs import (
    SHELL,
    AcceleratorOption,
    RetryPolicy,
    load_job,
    load_job_text,
    load_service,
    load_service_text,
)
from cloudhedge.core.errors import SpecError, SpecIssue
from cloudhedge.core.models import Criticality, DomainKind, Fleet
from cloudhedge.spec import load_fleet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

JOB = """\
name: pretrain
kind: training
command: [python, train.py, --steps, "10"]
accelerators:
  - {accelerator: gb200, chips: 8}
  - {accelerator: h100, chips: 8}
gang_size: 4
checkpoint: s3://ckpt-bucket/pretrain
"""

SERVICE = """\
name: chat
model: frontier-chat
command: cloudhedge mock-upstream --port $CLOUDHEDGE_REPLICA_PORT
replicas: 3
accelerators:
  - accelerator: h100
    chips: 8
spread: provider
tenant_class: consumer
jurisdiction: eu
"""


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return load_fleet(EXAMPLES / "frontier-lab.yaml")


def job_issues(text: str, fleet: Fleet) -> list[SpecIssue]:
    with pytest.raises(SpecError) as caught:
        load_job_text(text, "job.yaml", fleet)
    return caught.value.issues


def service_issues(text: str, fleet: Fleet) -> list[SpecIssue]:
    with pytest.raises(SpecError) as caught:
        load_service_text(text, "service.yaml", fleet)
    return caught.value.issues


def only(issues: list[SpecIssue]) -> SpecIssue:
    assert len(issues) == 1, issues
    return issues[0]


# --- valid files ---------------------------------------------------------------------


def test_the_examples_load(fleet: Fleet) -> None:
    job = load_job(EXAMPLES / "control" / "job.yaml", fleet)
    service = load_service(EXAMPLES / "control" / "service.yaml", fleet)
    assert job.kind == "training" and job.gang_size == 4 and job.heartbeat_timeout_s == 30
    assert job.command[:2] == SHELL and "train.py" in job.command[2]
    assert service.replicas == 3 and service.spread is DomainKind.PROVIDER
    assert "mock-upstream" in service.command[2]
    assert service.readiness.path == "/v1/models"


def test_a_job_resolves_with_defaults(fleet: Fleet) -> None:
    job = load_job_text(JOB, "job.yaml", fleet)
    assert job.command == ("python", "train.py", "--steps", "10")  # a list runs as is
    assert job.accelerators == (AcceleratorOption("gb200", 8), AcceleratorOption("h100", 8))
    assert job.retry == RetryPolicy()
    assert job.spot_allowed is False  # training: no spot unless asked
    batch = load_job_text(JOB.replace("kind: training", "kind: batch"), "job.yaml", fleet)
    assert batch.spot_allowed is True  # batch: preemptible by default


def test_a_service_resolves(fleet: Fleet) -> None:
    service = load_service_text(SERVICE, "service.yaml", fleet)
    assert service.command == (*SHELL, "cloudhedge mock-upstream --port $CLOUDHEDGE_REPLICA_PORT")
    assert service.criticality is Criticality.STANDARD
    assert service.jurisdiction == "eu" and service.tenant_class == "consumer"


def test_retry_backoff_grows_and_is_capped() -> None:
    retry = RetryPolicy(max_attempts=5, backoff_s=10, backoff_factor=3, max_backoff_s=60)
    assert [retry.delay_s(n) for n in (1, 2, 3)] == [10, 30, 60]


# --- errors: file, line, field, did-you-mean -------------------------------------------


def test_a_misspelled_key_is_located_with_a_suggestion(fleet: Fleet) -> None:
    issue = only(job_issues(JOB.replace("gang_size", "gang_sise"), fleet))
    assert (issue.file, issue.line, issue.path) == ("job.yaml", 7, "gang_sise")
    assert issue.suggestion == "gang_size"
    assert str(issue).startswith("job.yaml:7:1: gang_sise: unknown field")


def test_an_unknown_accelerator_suggests_the_closest(fleet: Fleet) -> None:
    issue = only(job_issues(JOB.replace("accelerator: h100", "accelerator: h10"), fleet))
    assert (issue.line, issue.path) == (6, "accelerators[1].accelerator")
    assert "unknown accelerator 'h10'" in issue.message and issue.suggestion == "h100"


def test_a_bad_value_names_what_was_expected(fleet: Fleet) -> None:
    issue = only(job_issues(JOB.replace("chips: 8}\n  - {", "chips: eight}\n  - {"), fleet))
    assert (issue.line, issue.path) == (5, "accelerators[0].chips")
    assert "expected an integer >= 1, got 'eight'" in issue.message


def test_a_missing_field_is_reported(fleet: Fleet) -> None:
    text = "\n".join(line for line in JOB.splitlines() if not line.startswith("command"))
    issue = only(job_issues(text, fleet))
    assert issue.path == "command" and issue.message == "field required"


def test_a_wrong_kind_suggests_the_closest(fleet: Fleet) -> None:
    issue = only(job_issues(JOB.replace("kind: training", "kind: trainng"), fleet))
    assert (issue.line, issue.path, issue.suggestion) == (2, "kind", "training")


def test_policy_names_fail_closed(fleet: Fleet) -> None:
    """An unknown tenant class or jurisdiction would escape exclusivity or residency."""
    text = SERVICE.replace("tenant_class: consumer", "tenant_class: Api").replace(
        "jurisdiction: eu", "jurisdiction: EU")
    issues = service_issues(text, fleet)
    assert [(i.line, i.path, i.suggestion) for i in issues] == [
        (9, "tenant_class", "api"), (10, "jurisdiction", "eu")]


def test_checkpoint_locations(fleet: Fleet) -> None:
    issue = only(job_issues(JOB.replace("s3://ckpt-bucket", "s3:/ckpt-bucket"), fleet))
    assert issue.path == "checkpoint" and issue.suggestion == "s3://ckpt-bucket/pretrain"
    issue = only(job_issues(JOB.replace("s3://ckpt-bucket/pretrain", "ckpt"), fleet))
    assert "absolute directory" in issue.message
    assert load_job_text(JOB.replace("s3://ckpt-bucket/pretrain", "/data/ckpt"), "j",
                         fleet).checkpoint == "/data/ckpt"


def test_service_errors_are_all_reported_at_once(fleet: Fleet) -> None:
    text = SERVICE.replace("spread: provider", "spread: provder").replace(
        "replicas: 3", "replicas: 0")
    issues = service_issues(text, fleet)
    assert [(i.line, i.path) for i in issues] == [(4, "replicas"), (8, "spread")]
    assert issues[1].suggestion == "provider"


def test_checks_after_validation(fleet: Fleet) -> None:
    text = SERVICE.replace("name: chat", "name: Chat_Service") + (
        "readiness: {path: health, port_env: 9-port}\n")
    issues = service_issues(text, fleet)
    assert [i.path for i in issues] == ["name", "readiness.path", "readiness.port_env"]


def test_duplicate_and_unoffered_accelerators(fleet: Fleet) -> None:
    issue = only(job_issues(JOB.replace("accelerator: h100", "accelerator: gb200"), fleet))
    assert issue.path == "accelerators[1].accelerator" and "twice" in issue.message
    text = JOB.replace("accelerator: gb200", "accelerator: h100").replace(
        "accelerator: h100, chips: 8}\n  - {accelerator: h100", "accelerator: h100, chips: 8}\n"
        "  - {accelerator: tpu-v5e")
    assert load_job_text(text, "j", fleet).accelerators[1].accelerator == "tpu-v5e"


def test_yaml_errors_and_empty_files(fleet: Fleet, tmp_path: Path) -> None:
    issue = only(job_issues("name: [oops\n", fleet))
    assert issue.file == "job.yaml" and issue.line >= 1 and "YAML" in issue.message
    assert "empty" in only(job_issues("", fleet)).message
    with pytest.raises(SpecError, match="cannot read"):
        load_job(tmp_path / "missing.yaml", fleet)


def test_json_reads_like_the_same_yaml_and_its_errors_are_located(fleet: Fleet) -> None:
    import json

    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(JOB)
    text = json.dumps(data, indent=2)
    assert load_job_text(text, "job.json", fleet) == load_job_text(JOB, "job.json", fleet)
    bad = json.dumps({**data, "gang_size": "four", "accelerators": [
        {"accelerator": "h10", "chips": 8}]}, indent=2)
    with pytest.raises(SpecError) as caught:
        load_job_text(bad, "job.json", fleet)
    by_path = {i.path: i for i in caught.value.issues}
    line = next(n for n, row in enumerate(bad.splitlines(), 1) if '"gang_size"' in row)
    assert (by_path["gang_size"].file, by_path["gang_size"].line) == ("job.json", line)
    # a semantic error (found after validation) is located too
    unknown = json.dumps({**data, "accelerators": [{"accelerator": "h10", "chips": 8}]},
                         indent=2)
    with pytest.raises(SpecError) as caught:
        load_job_text(unknown, "job.json", fleet)
    [issue] = caught.value.issues
    assert issue.path == "accelerators[0].accelerator" and issue.suggestion == "h100"
    assert issue.line == next(n for n, row in enumerate(unknown.splitlines(), 1)
                              if '"h10"' in row)


@pytest.mark.parametrize(("text", "message"), [
    ("name: \x00x", "is not allowed in YAML"),
    ("[" * 2000 + "]" * 2000, "nested too deeply"),
    ("a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
     "expands to more than 10,000 values"),
])
def test_hostile_yaml_is_a_located_error_not_a_crash(fleet: Fleet, text: str,
                                                     message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_job_text(text, "evil.yaml", fleet)
    assert message in str(caught.value.issues[0])
    assert caught.value.issues[0].file == "evil.yaml"


def test_a_merge_key_is_read(fleet: Fleet) -> None:
    text = ("base: &base {accelerator: h100, chips: 8}\n" + JOB.replace(
        "  - {accelerator: h100, chips: 8}", "  - {<<: *base}"))
    with pytest.raises(SpecError) as caught:  # `base` is not a job field: located, no crash
        load_job_text(text, "merge.yaml", fleet)
    assert [i.path for i in caught.value.issues] == ["base"]
