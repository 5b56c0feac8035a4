"""The terminal summary: what a person reads in ten seconds after ``cloudhedge plan``."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from rich.console import Console

from cloudhedge.cli.summary import format_periods, format_usd, render_summary
from cloudhedge.core.plan import Plan


def _render(plan: Plan, width: int = 120) -> str:
    console = Console(record=True, width=width, color_system=None, file=io.StringIO())
    render_summary(plan, console)
    return console.export_text()


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (1.2e9, "1.2 B USD"),
        (950, "950 USD"),
        (-18.2e6, "-18.2 M USD"),
        (-950, "-950 USD"),
        (412.3e9, "412.3 B USD"),
        (3.7e12, "3.7 T USD"),
        (1_234, "1.2 K USD"),
        (0, "0 USD"),
        (2.5, "2.5 USD"),
        (999_951, "1.0 M USD"),  # never "1000.0 K USD"
        (float("nan"), "n/a"),
    ],
)
def test_format_usd(usd: float, text: str) -> None:
    assert format_usd(usd) == text


def test_format_periods_compacts_runs() -> None:
    labels = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"]
    assert format_periods([5, 0, 1, 2], labels) == "2025-01..2025-03, 2025-06"
    assert format_periods([], labels) == ""


def test_summary_headline_costs_and_providers(plan: Plan) -> None:
    out = _render(plan)
    first = out.splitlines()[0]
    assert plan.name in first and "optimal" in first
    assert format_usd(plan.cost.total_usd) in first
    assert "2025-01..2025-04" in first and "gap 0.42%" in first
    for provider in ("azure", "aws", "gcp"):
        assert provider in out
    assert format_usd(plan.cost.by_provider["azure"]) in out


def test_summary_flags_failing_survivability(plan: Plan) -> None:
    out = _render(plan)
    surv = [line for line in out.splitlines() if "provider azure" in line]
    assert surv and "✗" in surv[0]
    ok = [line for line in out.splitlines() if "provider aws" in line]
    assert ok and "✓" in ok[0] and "✗" not in ok[0]


def test_summary_shows_unmet_cause_and_contract_waste(plan: Plan) -> None:
    out = _render(plan, width=200)  # wide enough for the cause on one line
    assert plan.unmet[0].cause in out
    assert "all demand served" not in out
    assert format_usd(plan.contracts[0].wasted_usd_total) in out


def test_summary_says_all_demand_served(plan_factory: Callable[..., Plan]) -> None:
    assert "all demand served" in _render(plan_factory(unmet=[]))


def test_summary_hedges_shadow_prices_training_notes(plan: Plan) -> None:
    out = _render(plan, width=200)
    assert "the 60% cap on every provider costs 1.2 M USD over the horizon" in out
    assert "survivability after losing a provider costs 340.0 K USD" in out
    assert "raising the azure cap by one point saves 2.5 M USD" in out
    # top shadow price first
    assert out.index("raising the azure cap") < out.index("one more chip in gcp")
    assert "llm-pretrain" in out and "→ azure-eastus-h100-committed" in out
    assert "not scheduled" in out
    assert plan.notes[0] in out


def test_summary_flags_over_cap_in_red(plan: Plan) -> None:
    data = plan.model_dump()
    data["concentration"][0]["max_share"] = 0.75  # azure, cap 0.6: the planner should not
    console = Console(
        record=True, width=120, force_terminal=True, color_system="standard", file=io.StringIO()
    )
    render_summary(Plan.model_validate(data), console)
    styled = console.export_text(styles=True)
    line = next(line for line in styled.splitlines() if "over cap" in line)
    assert "\x1b[31m75.0%" in line  # the share in red
    assert "\x1b[1;31m✗ over cap" in line
    assert "over cap" not in _render(plan)


def test_summary_escapes_markup_in_names(plan_factory: Callable[..., Plan]) -> None:
    out = _render(plan_factory(name="fleet [bold]x[/bold]"))
    assert "fleet [bold]x[/bold]" in out


def test_infeasible_summary_shows_conflicts(infeasible_plan: Plan) -> None:
    out = _render(infeasible_plan, width=200)
    assert "infeasible" in out.splitlines()[0]
    assert infeasible_plan.conflicts[0].text in out
    assert "all demand served" not in out


def test_summary_caps_rows_for_a_large_plan(plan: Plan) -> None:
    data = plan.model_dump()
    cell = data["survivability"][1]
    data["survivability"] = [{**cell, "domain": f"region-{i}", "kind": "region"} for i in range(40)]
    data["unit_economics"] = [
        {**data["unit_economics"][0], "workload": f"svc-{i}"} for i in range(30)
    ]
    out = _render(Plan.model_validate(data))
    assert "… and 30 more domains ✓" in out
    assert "… and 22 more services" in out
    assert len(out.splitlines()) < 90


def test_summary_stacks_tables_on_a_narrow_terminal(plan: Plan) -> None:
    out = _render(plan, width=80)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert out.index("Cost by provider") < out.index("Concentration")
    assert format_usd(plan.cost.total_usd) in out
