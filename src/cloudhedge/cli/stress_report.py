"""The HTML report of a stress run: one self-contained file that opens offline.

:func:`write_stress_html` writes, and :func:`render_stress_html` returns, a single
HTML document built like the plan report (:mod:`cloudhedge.cli.report`, same
stylesheet and building blocks from :mod:`cloudhedge.cli.htmldoc`): inline CSS, inline
SVG charts (from :mod:`cloudhedge.cli.stress_charts`), no script, nothing fetched from
anywhere, every string taken from the report escaped.

Layout, top to bottom: the headline figures; the charts (served demand per scenario,
the N-1 matrix, the risk distribution, premium vs payout); the scenarios table; the
survivability promises of the N-1 scenarios; the risk; the hedge value; each scenario
in detail (services, training, batch, cost per period, the replanned answer); notes
and timings. A part whose data the report lacks (no N-1 scenario, no risk run, no
hedge value, no inference service to draw) is left out, chart and section.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cloudhedge.cli import stress_charts
from cloudhedge.cli.htmldoc import (
    Cell,
    CellLike,
    esc,
    figure,
    html_table,
    kpi_tiles,
    nav,
    page,
    para,
    section,
)
from cloudhedge.cli.stress_summary import (
    PromiseCheck,
    count,
    hedge_rows,
    n1_scenarios,
    payout_variants,
    promise_check,
    promise_totals,
    quantile_rows,
    scenario_start,
    worst_scenario,
)
from cloudhedge.cli.summary import format_number, format_share, format_usd, label_span
from cloudhedge.core.stress_report import Replanned, ScenarioResult, StressReport

__all__ = ["render_stress_html", "write_stress_html"]


def write_stress_html(report: StressReport, path: Path) -> None:
    """Write the self-contained HTML report of ``report`` to ``path`` (UTF-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_stress_html(report), encoding="utf-8")


def render_stress_html(report: StressReport) -> str:
    """The self-contained HTML report of ``report`` as a string."""
    sections = {
        "charts": ("charts", _charts(report)),
        "scenarios": ("scenarios", _scenarios(report)),
        "n-1": ("N-1 promises", _n1(report)),
        "risk": ("risk", _risk(report)),
        "hedge-value": ("hedge value", _hedge_value(report)),
        "details": ("scenario details", _details(report)),
        "notes": ("notes", _notes(report)),
        "timings": ("timings", _timings(report)),
    }
    links = [(anchor, text) for anchor, (text, html) in sections.items() if html]
    body = "\n\n".join(html for _, html in sections.values() if html)
    return page(f"cloudhedge stress: {report.fleet}", _header(report, links), body)


def _header(report: StressReport, links: list[tuple[str, str]]) -> str:
    promises = promise_totals(report)
    n1 = len(n1_scenarios(report))
    worst = worst_scenario(report)
    kpis: list[tuple[str, str]] = [
        ("plan cost", format_usd(report.plan_cost_usd)),
        ("plan unmet-demand penalty", format_usd(report.plan_penalty_usd)),
        ("scenarios (N-1)", f"{len(report.scenarios)} ({n1})"),
        (f"horizon ({len(report.horizon_labels)} periods)", label_span(report.horizon_labels)),
    ]
    if worst is not None:
        kpis.append(
            ("worst served share", f"{format_share(worst.immediate.served_share)} ({worst.name})")
        )
    if promises.applies:
        kpis.append(("promises broken", f"{promises.broken} of {promises.promised}"))
    if report.risk is not None:
        q = report.risk.shortfall_share
        kpis += [
            ("shortfall P95 · CVaR95", f"{format_share(q.p95, 2)} · {format_share(q.cvar95, 2)}"),
            ("expected unserved tokens", format_number(report.risk.unserved_tokens.mean)),
        ]
    if report.hedge_value is not None:
        expected = next((r for r in hedge_rows(report) if r.key == "expected"), None)
        for v in payout_variants(report.hedge_value):
            payout = expected.payout_usd.get(v.name) if expected else None
            value = format_usd(v.premium_usd)
            if payout is not None:
                value += f" · {format_usd(payout)}"
            label = f"{v.name} premium" + (" · expected payout" if payout is not None else "")
            kpis.append((label, value))
    badge = ""
    if promises.applies:
        cls, text = (
            ("bad", f"{count(promises.broken, 'promise')} broken")
            if promises.broken
            else ("good", "promises kept")
        )
        badge = f' <span class="badge {cls}">{esc(text)}</span>'
    return (
        f"<header>\n<h1>{esc(report.fleet)}{badge}</h1>\n"
        f'<p class="sub">cloudhedge stress · schema {esc(report.schema_version)} · '
        f"{count(len(report.scenarios), 'scenario')}</p>\n"
        f"{kpi_tiles(kpis)}\n{nav(links)}\n</header>"
    )


# ---------------------------------------------------------------------------
# charts


_CHARTS: tuple[tuple[str, Callable[[StressReport, str], str | None], str], ...] = (
    ("chart-served", stress_charts.served_svg,
     "Inference tokens/s served per period under each scenario (solid): the plan as it is, "
     "with failover onto spare capacity, against demand (dashed). First panel: every "
     "service together; then the largest services."),
    ("chart-n1", stress_charts.n1_matrix_svg,
     "N-1: the worst period's share of demand served after losing one domain (columns), "
     "per service and jurisdiction (rows), before replanning. Under it, the share the plan "
     "promised; red-framed ✗ cells break the promise."),
    ("chart-risk", stress_charts.risk_svg,
     "Shortfall share (unserved / demanded tokens) over the Monte Carlo samples, with P95, "
     "P99 and CVaR95 (the mean of the worst 5%)."),
    ("chart-hedge-value", stress_charts.hedge_value_svg,
     "Premium (light) against payout (solid) of each plan variant compared with the "
     "unhedged plan, per scenario and in aggregate. The payout is the loss avoided "
     "(shortfall at the fleet's penalty rates); above the premium, the hedge pays."),
)


def _charts(report: StressReport) -> str:
    figures = []
    for chart_id, draw, caption in _CHARTS:
        svg = draw(report, chart_id)
        if svg is not None:
            figures.append(figure(chart_id, caption, svg, ""))
    return section("charts", "Charts", *figures) if figures else ""


# ---------------------------------------------------------------------------
# tables


def _promise_cell(check: PromiseCheck) -> CellLike:
    if not check.applies:
        return Cell("—", "muted")
    if not check.broken:
        return Cell("✓", "good")
    return Cell(f"✗ {check.broken}/{check.promised}" if check.promised > 1 else "✗", "bad")


def _kept(kept: bool | None) -> CellLike:
    if kept is None:
        return ""
    return Cell("✓", "good") if kept else Cell("✗", "bad")


def _replanned_share(r: Replanned | None) -> CellLike:
    if r is None:
        return Cell("—", "muted")
    text = format_share(r.served_share)
    return text if r.status == "optimal" else Cell(f"{text} ({r.status})", "warn")


def _scenarios(report: StressReport) -> str:
    labels = report.horizon_labels
    rows: list[list[CellLike]] = []
    for s in report.scenarios:
        im, check = s.immediate, promise_check(s)
        rows.append(
            [
                Cell(s.name, "bad" if check.broken else ""),
                s.family or Cell("—", "muted"),
                s.domain or Cell("—", "muted"),
                scenario_start(s, labels),
                Cell(format_share(im.served_share), "warn" if im.served_share < 1 - 1e-9 else ""),
                _replanned_share(s.replanned),
                format_number(im.unserved_tokens),
                format_number(im.lost_chip_hours),
                Cell(str(im.missed_deadlines), "bad" if im.missed_deadlines else ""),
                format_usd(im.extra_cost_usd),
                format_usd(s.replanned.extra_cost_usd) if s.replanned else Cell("—", "muted"),
                _promise_cell(check),
            ]
        )
    headers = [
        "scenario",
        "family",
        "lose",
        "from",
        "served",
        "served replanned",
        "unserved tokens",
        "lost chip-hours",
        "missed deadlines",
        "extra cost",
        "extra cost replanned",
        "promise",
    ]
    intro = para(
        "Immediate: the plan as it is, hit by the scenario, with failover onto spare "
        "capacity. Replanned: the planner's answer once the event is known (the past fixed, "
        "the rest re-solved). Extra cost is against the plan's own cost.",
        "muted",
    )
    table = html_table(headers, rows, (4, 5, 6, 7, 8, 9, 10), empty="no scenarios")
    return section("scenarios", "Scenarios", intro, table)


def _n1(report: StressReport) -> str:
    scenarios = n1_scenarios(report)
    if not scenarios:
        return ""
    cells = [
        (s, si) for s in scenarios for si in s.immediate.services if si.promise_kept is not None
    ]
    cells.sort(key=lambda c: (c[1].promise_kept is not False, c[0].domain or "", c[1].service))
    rows: list[list[CellLike]] = [
        [
            s.domain or "",
            s.name,
            f"{si.service} / {si.jurisdiction}",
            si.criticality,
            Cell(format_share(si.served_share_min), "bad" if si.promise_kept is False else ""),
            format_share(si.promised_share, 0),
            Cell("✗ broken", "bad") if si.promise_kept is False else Cell("✓", "good"),
        ]
        for s, si in cells
    ]
    broken = sum(si.promise_kept is False for _, si in cells)
    intro = para(
        f"{broken} of {len(cells)} survivability promises broken: the worst period's served "
        "share after losing the domain, before replanning, against the share the plan promised.",
        "bad" if broken else "",
    )
    table = html_table(
        [
            "lose",
            "scenario",
            "service / jurisdiction",
            "criticality",
            "worst served",
            "promised",
            "",
        ],
        rows,
        (4, 5),
        empty="no survivability promise covers these domains",
    )
    return section("n-1", "Survivability promises (N-1)", intro if cells else "", table)


def _risk(report: StressReport) -> str:
    risk = report.risk
    if risk is None:
        return ""
    intro = para(
        f"{risk.samples:,} Monte Carlo samples (seed {risk.seed}, {risk.workers} workers, "
        f"{risk.seconds:.1f} s) of the plan as it is, under the availability model below. "
        f"In 95% of the samples every period serves at least "
        f"{format_share(risk.worst_period_share_p5)} of demand; "
        f"{risk.missed_deadlines_mean:.2g} training deadlines are missed per sample on average."
    )
    quantiles = html_table(
        ["", "P50", "P95", "P99", "CVaR95", "mean"],
        [
            [name, fmt(q.p50), fmt(q.p95), fmt(q.p99), fmt(q.cvar95), fmt(q.mean)]
            for name, q, fmt in quantile_rows(report)
        ],
        (1, 2, 3, 4, 5),
    )
    services = html_table(
        [
            "service",
            "criticality",
            "shortfall P50",
            "P95",
            "P99",
            "CVaR95",
            "worst period served, P5",
            "expected unserved tokens",
        ],
        [
            [
                r.service,
                r.criticality,
                format_share(r.shortfall_share.p50, 2),
                format_share(r.shortfall_share.p95, 2),
                format_share(r.shortfall_share.p99, 2),
                format_share(r.shortfall_share.cvar95, 2),
                format_share(r.worst_period_share_p5),
                format_number(r.expected_unserved_tokens),
            ]
            for r in sorted(risk.services, key=lambda r: (-r.expected_unserved_tokens, r.service))
        ],
        (2, 3, 4, 5, 6, 7),
        empty="no inference services",
    )
    training = html_table(
        [
            "run",
            "deadline missed",
            "expected delay hours",
            "P95 delay hours",
            "expected lost chip-hours",
        ],
        [
            [
                t.workload,
                Cell(format_share(t.probability_missed), "bad" if t.probability_missed else ""),
                format_number(t.expected_delay_hours),
                format_number(t.p95_delay_hours),
                format_number(t.expected_lost_chip_hours),
            ]
            for t in sorted(risk.training, key=lambda t: (-t.probability_missed, t.workload))
        ],
        (1, 2, 3, 4),
        empty="no training runs",
    )
    model = html_table(
        ["scope", "outages per year", "median hours", "σ (lognormal)", "share lost", "source"],
        [
            [
                m.scope,
                f"{m.outages_per_year:g}",
                f"{m.median_hours:g}",
                f"{m.sigma:g}",
                format_share(m.fraction, 0),
                Cell(m.source, "muted"),
            ]
            for m in risk.model
        ],
        (1, 2, 3, 4),
        empty="no availability model",
    )
    return section(
        "risk",
        "Risk",
        intro,
        quantiles,
        "<h3>by service</h3>" + services,
        "<h3>training runs</h3>" + training,
        "<h3>availability model</h3>" + model,
    )


def _hedge_value(report: StressReport) -> str:
    hv = report.hedge_value
    if hv is None:
        return ""
    variants = html_table(
        ["variant", "", "cost", "premium"],
        [
            [
                v.name,
                Cell(v.description, "muted"),
                format_usd(v.cost_usd),
                format_usd(v.premium_usd),
            ]
            for v in hv.variants
        ],
        (2, 3),
        empty="no plan variants",
    )
    payers = payout_variants(hv)
    rows: list[list[CellLike]] = []
    for r in hedge_rows(report):
        losses = [
            format_usd(r.loss_usd[v.name]) if v.name in r.loss_usd else Cell("—", "muted")
            for v in hv.variants
        ]
        payouts: list[CellLike] = []
        for v in payers:
            usd = r.payout_usd.get(v.name)
            payouts.append(
                Cell("—", "muted")
                if usd is None
                else Cell(format_usd(usd), "good" if usd > 0 else ("bad" if usd < 0 else ""))
            )
        rows.append([Cell(r.key, "" if not r.aggregate else "muted"), *losses, *payouts])
    n = len(hv.variants) + len(payers)
    outcomes = html_table(
        [
            "outcome",
            *(f"loss {v.name}" for v in hv.variants),
            *(f"payout {v.name}" for v in payers),
        ],
        rows,
        range(1, 1 + n),
        empty="no outcomes",
    )
    text = (
        '<ul class="notes">\n' + "\n".join(f"<li>{esc(t)}</li>" for t in hv.text) + "\n</ul>"
        if hv.text
        else ""
    )
    intro = para(
        "Premium: a variant's cost minus the unhedged plan's. Loss: the shortfall valued at "
        "the fleet's penalty rates. Payout: the unhedged loss minus the variant's.",
        "muted",
    )
    return section("hedge-value", "Hedge value: premium vs payout", text, intro, variants, outcomes)


# ---------------------------------------------------------------------------
# scenario details


def _details(report: StressReport) -> str:
    if not report.scenarios:
        return ""
    parts = [_scenario(i, s, report.horizon_labels) for i, s in enumerate(report.scenarios)]
    return section("details", "Scenario details", *parts)


def _scenario(index: int, s: ScenarioResult, labels: list[str]) -> str:
    im = s.immediate
    meta = [f"from {scenario_start(s, labels)}"]
    if s.family:
        meta.append(f"family {s.family}")
    if s.domain:
        meta.append(f"loses {s.domain}")
    services = html_table(
        [
            "service",
            "jurisdiction",
            "criticality",
            "worst served",
            "unserved tokens",
            "peak failover tokens/s",
            "promised",
            "",
        ],
        [
            [
                si.service,
                si.jurisdiction,
                si.criticality,
                Cell(format_share(si.served_share_min), "bad" if si.promise_kept is False else ""),
                format_number(si.unserved_tokens),
                format_number(max(si.failover_tokens_per_s, default=0.0)),
                format_share(si.promised_share, 0),
                _kept(si.promise_kept),
            ]
            for si in im.services
        ],
        (3, 4, 5, 6),
        empty="no inference services",
    )
    training = html_table(
        ["run", "pool", "delay hours", "lost chip-hours", "deadline"],
        [
            [
                t.workload,
                t.pool or Cell("—", "muted"),
                format_number(t.delay_hours),
                format_number(t.lost_chip_hours),
                Cell("missed", "bad") if t.missed_deadline else Cell("met", "good"),
            ]
            for t in im.training
        ],
        (2, 3),
        empty="no training run hit",
    )
    batch = html_table(
        ["job", "delayed chip-hours", "unserved chip-hours"],
        [
            [
                b.workload,
                format_number(b.delayed_chip_hours),
                Cell(format_number(b.unserved_chip_hours), "bad" if b.unserved_chip_hours else ""),
            ]
            for b in im.batch
        ],
        (1, 2),
        empty="no batch job hit",
    )
    n = min(len(labels), len(im.cost_by_period))
    cost = html_table(
        labels[:n], [[format_usd(x) for x in im.cost_by_period[:n]]], range(n), empty="no periods"
    )
    summary = (
        f"{s.name}: serves {format_share(im.served_share)}, extra cost "
        f"{format_usd(im.extra_cost_usd)}"
    )
    cls = ' class="bad"' if promise_check(s).broken else ""
    return (
        f'<details id="scenario-{index}"><summary{cls}>{esc(summary)}</summary>\n'
        + "\n".join(
            [
                para(s.description),
                para(" · ".join(meta), "muted"),
                "<h3>immediate: inference</h3>" + services,
                "<h3>immediate: training</h3>" + training,
                "<h3>immediate: batch</h3>" + batch,
                para(
                    f"Cost {format_usd(im.cost_usd)} ({format_usd(im.extra_cost_usd)} over the "
                    f"plan); {format_number(im.lost_chip_hours)} chip-hours of planned work lost; "
                    f"{count(im.missed_deadlines, 'deadline')} missed."
                ),
                "<h3>immediate: cost per period</h3>" + cost,
                _replanned(s.replanned),
            ]
        )
        + "\n</details>"
    )


def _replanned(r: Replanned | None) -> str:
    if r is None:
        return "<h3>replanned</h3>" + para("Not replanned.", "empty")
    parts = [
        "<h3>replanned</h3>",
        para(
            f"{r.status}: serves {format_share(r.served_share)} "
            f"({format_number(r.unserved_tokens)} tokens unserved) for {format_usd(r.cost_usd)} "
            f"({format_usd(r.extra_cost_usd)} over the plan), penalty "
            f"{format_usd(r.penalty_usd)}; solved in {r.solve_seconds:.1f} s.",
            "" if r.status == "optimal" else "warn",
        ),
    ]
    if r.unscheduled_runs:
        parts.append(para("Training runs not scheduled: " + ", ".join(r.unscheduled_runs), "bad"))
    if r.unmet:
        parts.append(_list("still unmet", r.unmet))
    if r.notes:
        parts.append(_list("notes", r.notes))
    return "\n".join(parts)


def _list(title: str, lines: list[str]) -> str:
    items = "\n".join(f"<li>{esc(line)}</li>" for line in lines)
    return f'<p class="muted">{esc(title)}</p>\n<ul class="notes">\n{items}\n</ul>'


def _notes(report: StressReport) -> str:
    if not report.notes:
        return section("notes", "Notes", para("No assumptions to report.", "empty"))
    items = "\n".join(f"<li>{esc(n)}</li>" for n in report.notes)
    return section("notes", "Notes and assumptions", f'<ul class="notes">\n{items}\n</ul>')


def _timings(report: StressReport) -> str:
    if not report.seconds:
        return ""
    rows: list[list[CellLike]] = [[k, f"{v:.2f} s"] for k, v in report.seconds.items()]
    return section("timings", "Timings", html_table(["phase", "wall time"], rows, (1,)))
