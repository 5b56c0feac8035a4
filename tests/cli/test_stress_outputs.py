"""The outputs of ``cloudhedge stress``: terminal summary, HTML report and stress.json.

:func:`make_report` builds by hand the document a stress run would write for the
conftest's plan (acme-2025: azure, aws, gcp; 4 months): two N-1 scenarios (losing azure
breaks the 70% promise for chat/us, losing aws keeps it), a week-long azure outage with
a chat surge, the Monte Carlo risk and the hedge value. :func:`make_minimal_report` has
one scenario and neither risk nor hedge value.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rich.console import Console
from typer.testing import CliRunner

from cloudhedge.cli.main import app
from cloudhedge.cli.stress_report import render_stress_html, write_stress_html
from cloudhedge.cli.stress_summary import hedge_rows, render_stress_summary, variant_payouts
from cloudhedge.cli.summary import format_number, format_share, format_usd
from cloudhedge.core.stress_report import StressReport

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs/stress.schema.json"
LABELS = ["2025-01", "2025-02", "2025-03", "2025-04"]
SECONDS = 730.0 * 3600.0  # one period
PLAN_COST = 14_900_000.0
ALL_CHARTS = ("chart-served", "chart-n1", "chart-risk", "chart-hedge-value")
PENALTY_PER_TOKEN = 50.0 / 1e6

# service, jurisdiction, criticality, demand tokens/s per period
DEMAND = {
    ("chat", "us"): ("critical", [20_000.0] * 4),
    ("chat", "eu"): ("critical", [5_000.0] * 4),
    ("embed", "us"): ("standard", [8_000.0] * 4),
}


def _service(
    key: tuple[str, str],
    served: list[float],
    failover: list[float] | None = None,
    demand: list[float] | None = None,
    promised: float | None = None,
) -> dict[str, Any]:
    criticality, base = DEMAND[key]
    demand = demand or base
    share = min(s / d for s, d in zip(served, demand, strict=True))
    return {
        "service": key[0],
        "jurisdiction": key[1],
        "criticality": criticality,
        "demand_tokens_per_s": demand,
        "served_tokens_per_s": served,
        "failover_tokens_per_s": failover or [0.0] * 4,
        "served_share_min": share,
        "unserved_tokens": sum(d - s for s, d in zip(served, demand, strict=True)) * SECONDS,
        "promised_share": promised,
        "promise_kept": None if promised is None else share >= promised - 1e-9,
    }


def _immediate(
    services: list[dict[str, Any]],
    extra: list[float],
    training: Sequence[dict[str, Any]] = (),
    batch: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    demand = sum(sum(s["demand_tokens_per_s"]) for s in services) * SECONDS
    unserved = sum(s["unserved_tokens"] for s in services)
    base = PLAN_COST / 4
    return {
        "served_share": 1 - unserved / demand,
        "unserved_tokens": unserved,
        "lost_chip_hours": sum(t["lost_chip_hours"] for t in training),
        "missed_deadlines": sum(t["missed_deadline"] for t in training),
        "cost_usd": PLAN_COST + sum(extra),
        "extra_cost_usd": sum(extra),
        "cost_by_period": [base + x for x in extra],
        "services": services,
        "training": list(training),
        "batch": list(batch),
    }


def _replanned(served: float, unserved: float, extra: float, **more: Any) -> dict[str, Any]:
    out = {
        "status": "optimal",
        "cost_usd": PLAN_COST + extra,
        "penalty_usd": unserved * PENALTY_PER_TOKEN,
        "extra_cost_usd": extra,
        "served_share": served,
        "unserved_tokens": unserved,
        "unscheduled_runs": [],
        "unmet": [],
        "notes": [],
        "solve_seconds": 1.8,
    }
    out.update(more)
    return out


def _scenarios() -> list[dict[str, Any]]:
    lose_azure = {
        "name": "n-1-azure",
        "description": "every pool of azure lost for the whole horizon",
        "family": "n-1-provider",
        "start_period": 0,
        "domain": "provider:azure",
        "immediate": _immediate(
            [
                _service(
                    ("chat", "us"),
                    [6_200.0, 6_800.0, 7_500.0, 8_200.0],
                    failover=[1_200.0, 1_400.0, 1_500.0, 1_600.0],
                    promised=0.7,
                ),
                _service(("chat", "eu"), [5_000.0] * 4, promised=0.7),
                _service(("embed", "us"), [4_000.0, 4_000.0, 4_400.0, 4_800.0]),
            ],
            extra=[310_000.0, 320_000.0, 330_000.0, 340_000.0],
            training=[
                {
                    "workload": "llm-pretrain",
                    "pool": "azure-eastus-h100-committed",
                    "delay_hours": 2_920.0,
                    "lost_chip_hours": 6_144.0,
                    "missed_deadline": True,
                }
            ],
            batch=[{"workload": "evals", "delayed_chip_hours": 0.0, "unserved_chip_hours": 0.0}],
        ),
        "replanned": _replanned(
            0.934,
            0.066 * 33_000 * 4 * SECONDS,
            2_100_000.0,
            unscheduled_runs=["llm-pretrain"],
            unmet=[
                "chat/us 2025-01: 2.2 K tokens/s unserved: aws us-east-1 trn2 is full",
                "llm-pretrain: no 512-chip h100 gang free outside azure",
            ],
            notes=["periods before 2025-01 fixed: none"],
        ),
    }
    lose_aws = {
        "name": "n-1-aws",
        "description": "every pool of aws lost for the whole horizon",
        "family": "n-1-provider",
        "start_period": 0,
        "domain": "provider:aws",
        "immediate": _immediate(
            [
                _service(
                    ("chat", "us"),
                    [18_400.0, 18_000.0, 17_600.0, 17_200.0],
                    failover=[2_000.0, 1_600.0, 1_200.0, 900.0],
                    promised=0.7,
                ),
                _service(("chat", "eu"), [5_000.0] * 4, promised=0.7),
                _service(("embed", "us"), [8_000.0, 7_500.0, 7_000.0, 6_500.0]),
            ],
            extra=[120_000.0, 130_000.0, 140_000.0, 150_000.0],
        ),
        "replanned": _replanned(0.995, 0.005 * 33_000 * 4 * SECONDS, 610_000.0),
    }
    surge = [20_000.0, 20_000.0, 30_000.0, 30_000.0]
    azure_week = {
        "name": "azure-week-surge",
        "description": "azure down for a week from 2025-03 while chat demand grows by half",
        "start_period": 2,
        "immediate": _immediate(
            [
                _service(
                    ("chat", "us"),
                    [20_000.0, 20_000.0, 24_500.0, 27_000.0],
                    failover=[0.0, 0.0, 2_500.0, 1_000.0],
                    demand=surge,
                ),
                _service(("chat", "eu"), [5_000.0] * 4),
                _service(("embed", "us"), [8_000.0, 8_000.0, 7_600.0, 8_000.0]),
            ],
            extra=[0.0, 0.0, 480_000.0, 260_000.0],
            batch=[
                {"workload": "evals", "delayed_chip_hours": 1_800.0, "unserved_chip_hours": 250.0}
            ],
        ),
    }
    return [lose_azure, lose_aws, azure_week]


def _quantiles(p50: float, p95: float, p99: float, mean: float, cvar95: float) -> dict[str, float]:
    return {"p50": p50, "p95": p95, "p99": p99, "mean": mean, "cvar95": cvar95}


HISTOGRAM_COUNTS = [9200, 300, 150, 100, 80, 50, 40, 25, 20, 10, 8, 5, 4, 3, 2, 1, 1, 0, 0, 1]


def _risk() -> dict[str, Any]:
    demanded = 33_000 * 4 * SECONDS
    return {
        "samples": sum(HISTOGRAM_COUNTS),
        "seed": 7,
        "workers": 4,
        "seconds": 12.34,
        "shortfall_share": _quantiles(0.0, 0.0123, 0.0412, 0.0031, 0.0347),
        "unserved_tokens": _quantiles(0.0, 0.0123 * demanded, 0.0412 * demanded,
                                      0.0031 * demanded, 0.0347 * demanded),
        "extra_cost_usd": _quantiles(0.0, 95_000.0, 410_000.0, 21_000.0, 330_000.0),
        "lost_chip_hours": _quantiles(0.0, 512.0, 3_072.0, 96.0, 2_210.0),
        "missed_deadlines_mean": 0.021,
        "worst_period_share_p5": 0.874,
        "training": [
            {
                "workload": "llm-pretrain",
                "probability_missed": 0.021,
                "expected_delay_hours": 3.1,
                "p95_delay_hours": 12.0,
                "expected_lost_chip_hours": 96.0,
            }
        ],
        "histogram_edges": [i * 0.005 for i in range(21)],
        "histogram_counts": HISTOGRAM_COUNTS,
        "services": [
            {
                "service": "chat",
                "criticality": "critical",
                "shortfall_share": _quantiles(0.0, 0.011, 0.052, 0.004, 0.043),
                "expected_unserved_tokens": 0.004 * 25_000 * 4 * SECONDS,
                "worst_period_share_p5": 0.861,
            },
            {
                "service": "embed",
                "criticality": "standard",
                "shortfall_share": _quantiles(0.0, 0.021, 0.061, 0.005, 0.05),
                "expected_unserved_tokens": 0.005 * 8_000 * 4 * SECONDS,
                "worst_period_share_p5": 0.79,
            },
        ],
        "model": [
            {
                "scope": "provider:azure",
                "outages_per_year": 0.5,
                "median_hours": 6.0,
                "sigma": 1.2,
                "fraction": 1.0,
                "source": "default: public post-incident reports, 2019-2024",
            },
            {
                "scope": "region:aws/us-east-1",
                "outages_per_year": 1.5,
                "median_hours": 4.0,
                "sigma": 1.0,
                "fraction": 1.0,
                "source": "override: risk.yaml",
            },
            {
                "scope": "spot",
                "outages_per_year": 12.0,
                "median_hours": 2.0,
                "sigma": 0.8,
                "fraction": 0.3,
                "source": "default",
            },
        ],
    }


# loss per variant and outcome: scenario names, then expected and cvar95
LOSSES = {
    "hedged": {"n-1-azure": 2.2e6, "n-1-aws": 0.3e6, "azure-week-surge": 0.4e6,
               "expected": 0.05e6, "cvar95": 0.9e6},
    "unhedged": {"n-1-azure": 9.1e6, "n-1-aws": 0.2e6, "azure-week-surge": 1.1e6,
                 "expected": 0.4e6, "cvar95": 4.8e6},
    "single-provider": {"n-1-azure": 31.0e6, "n-1-aws": 0.0, "azure-week-surge": 3.9e6,
                        "expected": 1.3e6, "cvar95": 16.0e6},
}
COSTS = {"hedged": PLAN_COST, "unhedged": PLAN_COST - 1.2e6, "single-provider": PLAN_COST - 1.9e6}


def _hedge_value() -> dict[str, Any]:
    def outcome(variant: str, key: str) -> dict[str, Any]:
        loss = LOSSES[variant][key]
        return {
            "scenario": key,
            "unserved_tokens": loss / PENALTY_PER_TOKEN,
            "lost_chip_hours": 0.0,
            "missed_deadlines": 0,
            "loss_usd": loss,
            "extra_cost_usd": 0.1 * loss,
        }

    descriptions = {
        "hedged": "the plan: caps and survivability rules as written",
        "unhedged": "the same fleet without caps and survivability rules",
        "single-provider": "everything on the cheapest provider",
    }
    return {
        "variants": [
            {
                "name": name,
                "description": descriptions[name],
                "cost_usd": COSTS[name],
                "premium_usd": COSTS[name] - COSTS["unhedged"],
                "outcomes": [outcome(name, key) for key in LOSSES[name]],
            }
            for name in LOSSES
        ],
        "payout_usd": {k: LOSSES["unhedged"][k] - LOSSES["hedged"][k] for k in LOSSES["hedged"]},
        "text": [
            "the hedge costs 1.2 M USD over the horizon and pays 6.9 M USD if azure is lost",
            "in expectation it pays 350 K USD: it is insurance against the tail (CVaR95 3.9 M USD)",
        ],
    }


def make_report(**overrides: Any) -> StressReport:
    """The full report: three scenarios, risk and hedge value."""
    data: dict[str, Any] = {
        "fleet": "acme-2025",
        "plan_cost_usd": PLAN_COST,
        "plan_penalty_usd": 1_576_800.0,
        "horizon_labels": LABELS,
        "scenarios": _scenarios(),
        "risk": _risk(),
        "hedge_value": _hedge_value(),
        "notes": [
            "failover may use any idle chip the plan's index allows (residency holds)",
            "the risk model uses default outage rates for gcp (no override)",
        ],
        "seconds": {"immediate": 0.41, "replan": 3.6, "risk": 12.34, "hedge_value": 9.8},
    }
    data.update(overrides)
    return StressReport.model_validate(data)


def make_minimal_report() -> StressReport:
    """One scenario without a domain; neither risk nor hedge value."""
    return make_report(scenarios=_scenarios()[2:], risk=None, hedge_value=None, notes=[],
                       seconds={"immediate": 0.1})


@pytest.fixture
def report() -> StressReport:
    return make_report()


@pytest.fixture
def minimal() -> StressReport:
    return make_minimal_report()


# ---------------------------------------------------------------------------
# the terminal summary


def _summary(report: StressReport, width: int = 140) -> str:
    console = Console(record=True, width=width, color_system=None, file=io.StringIO())
    render_stress_summary(report, console)
    return console.export_text()


def _line(text: str, start: str) -> str:
    """The first line that starts with ``start`` (leading spaces ignored)."""
    return next(line for line in text.splitlines() if line.strip().startswith(start))


def test_summary_lists_every_scenario_with_its_figures(report: StressReport) -> None:
    out = _summary(report)
    first = out.splitlines()[0]
    assert "acme-2025" in first and "3 scenarios" in first and "2025-01..2025-04" in first
    assert format_usd(PLAN_COST) in out
    for s in report.scenarios:
        row = _line(out, s.name)
        im = s.immediate
        assert format_share(im.served_share) in row
        assert format_number(im.unserved_tokens) in row
        assert format_usd(im.extra_cost_usd) in row
        if s.replanned is not None:
            assert format_share(s.replanned.served_share) in row
            assert format_usd(s.replanned.extra_cost_usd) in row
    assert "6.1 K" in _line(out, "n-1-azure")  # lost chip-hours
    assert "1.3 M USD" in _line(out, "n-1-azure")  # extra cost, immediate


def test_summary_marks_the_broken_promise(report: StressReport) -> None:
    out = _summary(report)
    assert "✗" in _line(out, "n-1-azure") and "1/2" in _line(out, "n-1-azure")
    assert "✓" in _line(out, "n-1-aws") and "✗" not in _line(out, "n-1-aws")
    assert "✓" not in _line(out, "azure-week-surge") and "✗" not in _line(out, "azure-week-surge")
    assert "1 of 4 promises broken" in out.splitlines()[1]


def test_summary_risk_block(report: StressReport) -> None:
    out = _summary(report)
    assert "10,000 samples, seed 7, 4 workers, 12.3 s" in out
    shortfall = _line(out, "shortfall share")
    for x in ("0.00%", "1.23%", "4.12%", "3.47%", "0.31%"):  # P50, P95, P99, CVaR95, mean
        assert x in shortfall
    extra = _line(out, "extra cost")
    for usd in (95_000.0, 410_000.0, 330_000.0):
        assert format_usd(usd) in extra
    assert report.risk is not None
    assert f"expected unserved tokens {format_number(report.risk.unserved_tokens.mean)}" in out
    assert "in 95% of samples every period serves ≥ 87.4%" in out


def test_summary_hedge_value_table_and_text(report: StressReport) -> None:
    out = _summary(report, width=160)
    assert "premium vs payout" in out
    premium = _line(out, "premium")
    assert "1.2 M USD" in premium and "-700.0 K USD" in premium
    azure = _line(out, "loss · n-1-azure")
    assert "2.2 M USD" in azure and "9.1 M USD" in azure and "31.0 M USD" in azure
    assert "6.9 M USD" in azure  # hedged payout
    assert "-21.9 M USD" in azure  # single-provider payout
    assert "350.0 K USD" in _line(out, "loss · expected")
    assert "pays 6.9 M USD if azure is lost" in out


def test_summary_without_risk_or_hedge_value(minimal: StressReport) -> None:
    out = _summary(minimal)
    assert "azure-week-surge" in out
    assert "Risk" not in out and "Hedge" not in out and "premium" not in out
    assert "promises" not in out.splitlines()[1]


def test_summary_prints_names_as_text_not_markup(report: StressReport) -> None:
    data = report.model_dump()
    data["scenarios"][0]["name"] = "[red]lose[/red] azure"
    out = _summary(StressReport.model_validate(data))
    assert "[red]lose[/red] azure" in out


def test_summary_splits_wide_tables_on_a_narrow_terminal(report: StressReport) -> None:
    wide, narrow = _summary(report, width=160), _summary(report, width=80)
    assert "Scenarios: inference" not in wide and "Hedge value: payout" not in wide
    assert "Scenarios: inference" in narrow and "Scenarios: work and cost" in narrow
    assert "Hedge value: payout against the unhedged plan" in narrow
    assert all(len(line) <= 80 for line in narrow.splitlines())
    # names and figures are never cut
    for needle in ("azure-week-surge", "✗ 1/2", "1.3 M USD", "-21.9 M USD", "single-provider"):
        assert needle in narrow, needle
    assert "…" not in _line(narrow, "n-1-azure")


def test_variant_payouts_match_the_report(report: StressReport) -> None:
    assert report.hedge_value is not None
    payouts = variant_payouts(report.hedge_value)
    assert set(payouts) == {"hedged", "single-provider"}
    assert payouts["hedged"] == report.hedge_value.payout_usd
    assert payouts["single-provider"]["n-1-azure"] == pytest.approx(9.1e6 - 31.0e6)
    keys = [r.key for r in hedge_rows(report)]
    assert keys == ["n-1-azure", "n-1-aws", "azure-week-surge", "expected", "cvar95"]


# ---------------------------------------------------------------------------
# the HTML report


class _Page(HTMLParser):
    """Nesting errors, tag counts, figures with their SVG, section ids and the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}
        self.figures: dict[str, int] = {}  # figure id -> <svg> inside
        self.sections: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        ident = dict(attrs).get("id") or ""
        if tag == "figure":
            self.figures[ident] = 0
        if tag == "section":
            self.sections.append(ident)
        if tag == "svg" and "figure" in self.stack:
            self.figures[list(self.figures)[-1]] += 1
        if tag not in {"meta", "br", "hr", "img", "input", "link"}:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(document: str) -> _Page:
    parsed = _Page()
    parsed.feed(document)
    parsed.close()
    assert parsed.errors == [] and parsed.stack == []
    return parsed


@pytest.fixture
def html(report: StressReport, tmp_path: Path) -> str:
    path = tmp_path / "out" / "stress.html"
    write_stress_html(report, path)
    return path.read_text(encoding="utf-8")


def test_report_is_self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    external = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert external == []
    # the only URLs are the SVG namespace declarations
    urls = re.findall(r"""(\S+)=["']?https?://""", html)
    assert set(urls) <= {"xmlns", "xmlns:xlink"}
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "@import" not in html and "url(http" not in html
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html


def test_report_has_one_svg_per_chart(html: str) -> None:
    parsed = _parse(html)
    assert parsed.figures == {chart: 1 for chart in ALL_CHARTS}
    assert parsed.counts["svg"] == len(ALL_CHARTS)
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    refs = set(re.findall(r'href="#([^"]+)"', html)) | set(re.findall(r"url\(#([^)]+)\)", html))
    assert refs <= set(ids)


def test_report_tables_mirror_the_summary(report: StressReport, html: str) -> None:
    parsed = _parse(html)
    assert parsed.sections == [
        "charts", "scenarios", "n-1", "risk", "hedge-value", "details", "notes", "timings",
    ]
    text = " ".join(parsed.text)
    for s in report.scenarios:
        assert s.name in text and s.description in text
        assert format_usd(s.immediate.extra_cost_usd) in text
    assert "1 of 4 survivability promises broken" in text
    assert "✗ broken" in text
    for needle in (
        "chat/us 2025-01: 2.2 K tokens/s unserved: aws us-east-1 trn2 is full",
        "periods before 2025-01 fixed: none",
        "Training runs not scheduled: llm-pretrain",
        "azure-eastus-h100-committed",  # the training run's pool
        "missed",
        "override: risk.yaml",
        "In 95% of the samples every period serves at least 87.4% of demand",
        "expected lost chip-hours",  # the training runs' risk
        "79.0%",  # embed's worst period served, P5
        "region:aws/us-east-1",
        "pays 6.9 M USD if azure is lost",
        "everything on the cheapest provider",
        format_usd(-21.9e6),
        report.notes[0],
        "12.34 s",
        "Not replanned.",
    ):
        assert needle in text, needle


def test_report_omits_what_the_report_lacks(minimal: StressReport) -> None:
    document = render_stress_html(minimal)
    parsed = _parse(document)
    assert parsed.figures == {"chart-served": 1}
    assert parsed.sections == ["charts", "scenarios", "details", "notes", "timings"]
    for absent in ('id="n-1"', 'id="risk"', 'id="hedge-value"', 'href="#risk"', "promises"):
        assert absent not in document
    assert "No assumptions to report." in " ".join(parsed.text)


def test_report_without_inference_has_no_charts(minimal: StressReport) -> None:
    data = minimal.model_dump()
    data["scenarios"][0]["immediate"]["services"] = []
    document = render_stress_html(StressReport.model_validate(data))
    parsed = _parse(document)
    assert "charts" not in parsed.sections and "<svg" not in document
    assert "no inference services" in " ".join(parsed.text)


def test_report_escapes_text(report: StressReport) -> None:
    data = report.model_dump()
    data["fleet"] = "<script>alert(1)</script>"
    data["scenarios"][0]["replanned"]["unmet"] = ["chat <eu> & more"]
    document = render_stress_html(StressReport.model_validate(data))
    assert "<script>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "chat &lt;eu&gt; &amp; more" in document
    _parse(document)


def test_report_is_deterministic(report: StressReport) -> None:
    assert render_stress_html(report) == render_stress_html(report)


# ---------------------------------------------------------------------------
# stress.json and its schema


def test_json_round_trips(report: StressReport, minimal: StressReport) -> None:
    for r in (report, minimal):
        assert StressReport.model_validate_json(r.model_dump_json()) == r


def test_json_validates_against_the_published_schema(
    report: StressReport, minimal: StressReport
) -> None:
    schema = json.loads(SCHEMA.read_text())
    for r in (report, minimal):
        jsonschema.validate(json.loads(r.model_dump_json(indent=1)), schema)
    bad = json.loads(minimal.model_dump_json())
    bad["scenarios"][0]["immediate"]["served_share"] = "all of it"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_published_stress_schema_is_current() -> None:
    res = CliRunner().invoke(app, ["schema", "stress"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == json.loads(SCHEMA.read_text())
    assert json.loads(res.output) == StressReport.model_json_schema()

