"""Agentic workloads become inference demand on the service of the model they call."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from spec_helpers import MINIMAL, line_of, only

from cloudhedge.core.errors import SpecIssue
from cloudhedge.core.models import Criticality, Fleet

AGENT = """\
  - kind: agentic
    name: coder
    model: llama-70b
    tasks_per_day: {us: 86400, eu: {from: 0, to: 8640}}
    steps_per_task: 10
    tokens_per_step: 100
    peak_to_average: 2
    criticality: high
"""


def test_agentic_demand_arithmetic(fleet_of: Callable[[str], Fleet]) -> None:
    text = MINIMAL.replace(
        "    model: llama-70b\n", "    model: llama-70b\n    tenant_class: partner\n"
    )
    fleet = fleet_of(text + AGENT)
    chat, coder = fleet.inference
    assert coder.name == "coder" and coder.source == "agentic:coder"
    assert coder.model == "llama-70b"
    # 86400 tasks/day x 10 steps x 100 tokens / 86400 s x 2 (peak) = 2000 tokens/s
    assert coder.demand_tokens_per_s["us"] == pytest.approx((2000.0,) * 12)
    eu = coder.demand_tokens_per_s["eu"]
    assert eu[0] == 0.0
    assert eu[-1] == pytest.approx(8640 * 10 * 100 / 86400 * 2)
    assert coder.throughput_tokens_per_s == chat.throughput_tokens_per_s
    assert coder.tenant_class == "partner"  # from the service it calls
    assert coder.criticality is Criticality.HIGH
    assert coder.unmet_penalty_usd_per_million_tokens == 50.0
    assert chat.source == "inference"


def test_agentic_tenant_class_of_its_own(fleet_of: Callable[[str], Fleet]) -> None:
    text = MINIMAL + AGENT.replace("    criticality: high\n", "    tenant_class: internal\n")
    coder = fleet_of(text).inference[1]
    assert coder.tenant_class == "internal"


def test_agentic_workload_calling_an_unserved_model(
    issues_of: Callable[[str], list[SpecIssue]],
) -> None:
    text = MINIMAL + AGENT.replace("model: llama-70b", "model: llama-7b")
    issue = only(issues_of(text), "workloads[2].model")
    assert issue.message == (
        "agentic workload coder calls model llama-7b, which no inference workload serves"
    )
    assert issue.suggestion == "llama-70b"
    assert issue.line == line_of(text, "model: llama-7b")
