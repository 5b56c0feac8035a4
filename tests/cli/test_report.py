"""The HTML report: one self-contained file that opens offline."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cloudhedge.cli.report import render_report, write_report
from cloudhedge.cli.summary import format_usd
from cloudhedge.core.plan import Plan

CHART_IDS = (
    "chart-cost-by-provider",
    "chart-share-provider",
    "chart-share-vendor",
    "chart-contracts",
    "chart-survivability",
)
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}


class _Structure(HTMLParser):
    """Checks nesting: every element closed, in order (SVG self-closing tags allowed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.figures: list[dict[str, str | None]] = []
        self.counts: dict[str, int] = {}
        self.doctype = ""
        self.text: list[str] = []
        self._figure_depth: list[int] = []
        self._figure_has_svg: list[bool] = []
        self.figures_with_svg: dict[str, bool] = {}

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag == "figure":
            self.figures.append(dict(attrs))
            self._figure_has_svg.append(False)
        if tag == "svg" and self._figure_has_svg:
            self._figure_has_svg[-1] = True
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1  # <path ... />: opened and closed

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag == "figure":
            figure_id = self.figures[len(self.figures_with_svg)].get("id") or ""
            self.figures_with_svg[figure_id] = self._figure_has_svg.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(document: str) -> _Structure:
    parser = _Structure()
    parser.feed(document)
    parser.close()
    return parser


@pytest.fixture
def report(plan: Plan, tmp_path: Path) -> str:
    path = tmp_path / "out" / "report.html"
    write_report(plan, path)
    return path.read_text(encoding="utf-8")


def test_report_is_one_well_formed_html_document(report: str) -> None:
    assert report.startswith("<!DOCTYPE html>")
    assert report.count("<html") == 1 and report.count("</html>") == 1
    parsed = _parse(report)
    assert parsed.doctype.lower() == "doctype html"
    assert parsed.errors == []
    assert parsed.stack == []  # everything closed
    assert parsed.counts["figure"] == len(CHART_IDS)
    assert parsed.counts["svg"] == len(CHART_IDS)
    assert "<?xml" not in report and "<!DOCTYPE svg" not in report


def test_report_loads_nothing_from_the_network(report: str) -> None:
    external = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", report, re.I)
    assert external == []
    assert "<script" not in report.lower()
    assert "<link" not in report.lower()
    assert "@import" not in report and "url(http" not in report


def test_report_has_every_chart_as_inline_svg(report: str) -> None:
    parsed = _parse(report)
    for chart_id in CHART_IDS:
        assert parsed.figures_with_svg.get(chart_id) is True, chart_id
        figure = next(f for f in parsed.figures if f.get("id") == chart_id)
        assert figure is not None
    assert report.count("<figcaption>") == len(CHART_IDS)


def test_report_svg_ids_are_unique_across_charts(report: str) -> None:
    ids = re.findall(r'\bid="([^"]+)"', report)
    assert len(ids) == len(set(ids))
    # every internal reference points at an id of the document
    refs = set(re.findall(r'href="#([^"]+)"', report)) | set(re.findall(r"url\(#([^)]+)\)", report))
    assert refs <= set(ids)


def test_report_shows_costs_providers_and_tables(plan: Plan, report: str) -> None:
    assert format_usd(plan.cost.total_usd) in report
    for provider in ("azure", "aws", "gcp"):
        assert f"<td>{provider}</td>" in report
    text = " ".join(_parse(report).text)
    for needle in (
        plan.unmet[0].cause,
        "the 60% cap on every provider costs 1.2 M USD over the horizon",
        "raising the azure cap by one point saves 2.5 M USD",
        "gcp-europe-west4-h100-spot is full in every period",
        plan.reasons[0].text,
        plan.notes[0],
        "LP relaxation bound",
        "MIP bound",
        "9,876",  # nonzeros
        format_usd(plan.contracts[0].wasted_usd_total),
        "2.34",  # USD per million tokens
        "not scheduled",
    ):
        assert needle in text, needle


def test_report_escapes_text(plan: Plan) -> None:
    data = plan.model_dump()
    data["name"] = "<script>alert(1)</script>"
    data["binding_constraints"][1]["text"] = "no binding <cap>"
    document = render_report(Plan.model_validate(data))
    assert "<script>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "no binding &lt;cap&gt;" in document
    assert _parse(document).errors == []


def test_infeasible_report_renders_conflicts_and_skips_charts(
    infeasible_plan: Plan, tmp_path: Path
) -> None:
    path = tmp_path / "infeasible.html"
    write_report(infeasible_plan, path)
    document = path.read_text(encoding="utf-8")
    parsed = _parse(document)
    assert parsed.errors == [] and parsed.stack == []
    text = " ".join(parsed.text)
    assert infeasible_plan.conflicts[0].text in text
    assert "these constraints conflict" in text
    # the conflicts come before the charts
    assert document.index('id="conflicts"') < document.index('id="charts"')
    # every chart figure is still there, with a note instead of an empty chart
    for chart_id in CHART_IDS:
        assert f'<figure id="{chart_id}">' in document
    assert "<svg" not in document
    assert "Nothing to draw" in text


def test_report_without_contracts_or_unmet(plan_factory: Callable[..., Plan]) -> None:
    document = render_report(plan_factory(contracts=[], unmet=[]))
    parsed = _parse(document)
    assert parsed.errors == []
    assert parsed.figures_with_svg["chart-contracts"] is False
    assert parsed.figures_with_svg["chart-cost-by-provider"] is True
    text = " ".join(parsed.text)
    assert "The fleet has no contracts." in text
    assert "All demand served." in text


def test_report_is_deterministic(plan: Plan) -> None:
    assert render_report(plan) == render_report(plan)
