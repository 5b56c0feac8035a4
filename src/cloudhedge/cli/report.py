"""The HTML report of a plan: one self-contained file that opens offline.

:func:`write_report` writes, and :func:`render_report` returns, a single HTML document
with inline CSS and inline SVG charts (from :mod:`cloudhedge.cli.charts`): no script,
no font, no stylesheet or image is fetched from anywhere. Every string taken from the
plan is escaped.

Layout, top to bottom: the headline figures; the conflicts when the plan is
infeasible (prominent, first); five charts (cost per period by provider, chip share by
provider and by vendor with their caps, contract utilisation, survivability heat map),
each a ``<figure id="chart-...">`` that says so in words when the plan has nothing to
draw; then the tables: cost breakdown, pools, placements, concentration, contracts,
survivability, unmet demand, training, unit economics, hedge costs, shadow prices,
binding constraints, reasons, solver statistics and notes.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudhedge.cli import charts
from cloudhedge.cli.summary import (
    at_cap,
    contract_averages,
    format_number,
    format_periods,
    format_share,
    format_usd,
    gap_text,
    hedge_sentence,
    horizon_length,
    horizon_span,
    mean,
    over_cap,
    shadow_sentence,
    sorted_concentration,
    top_hedges,
    top_shadow_prices,
    training_window,
)
from cloudhedge.core.plan import Plan

__all__ = ["render_report", "write_report"]

MAX_UNMET_ROWS = 500
MAX_PLACEMENT_ROWS = 400

_CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d0d7de; --bg:#f6f8fa; --red:#cf222e;
  --green:#1a7f37; --amber:#9a6700; --blue:#0969da; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); margin: 0; background: #fff; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 36px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 16px 0 6px; }
.sub { color: var(--muted); margin: 0 0 16px; }
.badge { display: inline-block; padding: 1px 10px; border-radius: 12px; font-size: 13px;
  font-weight: 600; vertical-align: middle; color: #fff; }
.badge.optimal { background: var(--green); } .badge.feasible { background: var(--amber); }
.badge.infeasible { background: var(--red); }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 10px;
  margin: 16px 0; }
.kpi { background: var(--bg); border: 1px solid var(--line); border-radius: 8px;
  padding: 10px 12px; }
.kpi .label { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .04em; }
.kpi .value { font-size: 18px; font-weight: 600; overflow-wrap: anywhere; }
nav { font-size: 13px; margin: 8px 0 0; }
nav a { color: var(--blue); text-decoration: none; margin-right: 12px; white-space: nowrap; }
.conflicts { border: 2px solid var(--red); background: #ffebe9; border-radius: 8px;
  padding: 12px 18px; margin: 18px 0; }
.conflicts h2 { color: var(--red); border: 0; margin: 0 0 6px; }
figure { margin: 18px 0; padding: 12px; border: 1px solid var(--line); border-radius: 8px; }
figure svg { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.empty { color: var(--muted); font-style: italic; margin: 6px 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr));
  gap: 4px 24px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: var(--bg); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: 600; border-top: 2px solid var(--line); }
.bad { color: var(--red); font-weight: 600; } .good { color: var(--green); }
.warn { color: var(--amber); } .muted { color: var(--muted); }
code { font-size: 12px; background: var(--bg); padding: 0 4px; border-radius: 4px; }
details summary { cursor: pointer; color: var(--blue); margin: 6px 0; }
ul.notes li { margin: 2px 0; }
"""


# ---------------------------------------------------------------------------
# small HTML builders (every text goes through html.escape)


@dataclass(frozen=True)
class Cell:
    """A table cell: text (escaped on output) with an optional CSS class."""

    text: str
    cls: str = ""


CellLike = str | Cell


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cell(value: CellLike, numeric: bool) -> str:
    cell = value if isinstance(value, Cell) else Cell(value)
    classes = " ".join(c for c in (("num" if numeric else ""), cell.cls) if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{_e(cell.text)}</td>"


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[CellLike]],
    numeric: Iterable[int] = (),
    total: Sequence[CellLike] | None = None,
    empty: str = "none",
) -> str:
    nums = set(numeric)
    body = [
        "<tr>" + "".join(_cell(v, i in nums) for i, v in enumerate(row)) + "</tr>" for row in rows
    ]
    if not body:
        return f'<p class="empty">{_e(empty)}</p>'
    if total is not None:
        cells = "".join(_cell(v, i in nums) for i, v in enumerate(total))
        body.append(f'<tr class="total">{cells}</tr>')
    head = "".join(
        f'<th class="num">{_e(h)}</th>' if i in nums else f"<th>{_e(h)}</th>"
        for i, h in enumerate(headers)
    )
    rows_html = "\n".join(body)
    return (
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{rows_html}\n</tbody></table></div>"
    )


def _section(section_id: str, title: str, *parts: str) -> str:
    inner = "\n".join(p for p in parts if p)
    return f'<section id="{_e(section_id)}">\n<h2>{_e(title)}</h2>\n{inner}\n</section>'


def _p(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{_e(text)}</p>"


def _more(hidden: int, what: str) -> str:
    return _p(f"… and {hidden} more {what}", "muted") if hidden > 0 else ""


def _figure(chart_id: str, caption: str, svg: str | None, empty: str) -> str:
    body = svg if svg is not None else f'<p class="empty">{_e(empty)}</p>'
    return (
        f'<figure id="{_e(chart_id)}">\n{body}\n<figcaption>{_e(caption)}</figcaption>\n</figure>'
    )


# ---------------------------------------------------------------------------
# the document


def write_report(plan: Plan, path: Path) -> None:
    """Write the self-contained HTML report of ``plan`` to ``path`` (UTF-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(plan), encoding="utf-8")


def render_report(plan: Plan) -> str:
    """The self-contained HTML report of ``plan`` as a string."""
    sections = [
        _conflicts(plan),
        _charts(plan),
        _cost(plan),
        _pools(plan),
        _placements(plan),
        _concentration(plan),
        _contracts(plan),
        _survivability(plan),
        _unmet(plan),
        _training(plan),
        _unit_economics(plan),
        _hedges(plan),
        _shadow_prices(plan),
        _binding(plan),
        _reasons(plan),
        _solver(plan),
        _notes(plan),
    ]
    title = f"cloudhedge plan: {plan.name}"
    body = "\n\n".join(s for s in sections if s)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="cloudhedge">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{_header(plan)}\n\n{body}\n</main>\n</body>\n</html>\n"
    )


_NAV = (
    ("charts", "charts"),
    ("cost", "cost"),
    ("pools", "pools"),
    ("placements", "placements"),
    ("concentration", "concentration"),
    ("contracts", "contracts"),
    ("survivability", "survivability"),
    ("unmet", "unmet demand"),
    ("training", "training"),
    ("unit-economics", "unit economics"),
    ("hedge-costs", "hedge costs"),
    ("shadow-prices", "shadow prices"),
    ("binding", "binding constraints"),
    ("reasons", "reasons"),
    ("solver", "solver"),
    ("notes", "notes"),
)


def _header(plan: Plan) -> str:
    c, s = plan.cost, plan.solver
    feasible = plan.status != "infeasible"

    def usd(x: float) -> str:
        return format_usd(x) if feasible else "—"

    kpis: list[tuple[str, str]] = [
        ("total cost", format_usd(c.total_usd) if feasible else "no plan"),
        ("committed (take-or-pay)", usd(c.committed_fixed_usd)),
        ("usage", usd(c.usage_usd)),
        ("unmet-demand penalty", usd(c.penalty_usd)),
        (f"horizon ({horizon_length(plan)})", horizon_span(plan)),
        ("gap", gap_text(plan)),
        ("pools · contracts", f"{len(plan.pools)} · {len(plan.contracts)}"),
        ("unmet rows", str(len(plan.unmet)) if feasible else "—"),
    ]
    if not feasible:
        kpis.insert(1, ("conflicts", str(len(plan.conflicts))))
    tiles = "\n".join(
        f'<div class="kpi"><div class="label">{_e(k)}</div><div class="value">{_e(v)}</div></div>'
        for k, v in kpis
    )
    links = ((("conflicts", "conflicts"),) if plan.conflicts else ()) + _NAV
    nav = "\n".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in links)
    solved = f"{s.solver} {s.status}, {s.build_seconds + s.solve_seconds:.1f} s"
    return (
        f"<header>\n<h1>{_e(plan.name)} "
        f'<span class="badge {_e(plan.status)}">{_e(plan.status)}</span></h1>\n'
        f'<p class="sub">cloudhedge plan · schema {_e(plan.schema_version)} · '
        f"{_e(solved)}</p>\n"
        f'<div class="kpis">\n{tiles}\n</div>\n<nav>{nav}</nav>\n</header>'
    )


def _conflicts(plan: Plan) -> str:
    if not plan.conflicts:
        return ""
    items = "\n".join(
        f'<li><strong>{_e(c.text)}</strong> <span class="muted">'
        f"(<code>{_e(c.constraint)}</code> bends by {_e(format_number(c.violation))} "
        f"{_e(c.unit)})</span></li>"
        for c in plan.conflicts
    )
    return (
        '<section id="conflicts" class="conflicts">\n'
        "<h2>No plan meets the hard policies: these constraints conflict</h2>\n"
        f"<ul>\n{items}\n</ul>\n"
        '<p class="muted">Relax one of them (a cap, an alpha, a residency or exclusivity '
        "rule, the budget) or add capacity, then plan again.</p>\n</section>"
    )


def _charts(plan: Plan) -> str:
    nothing = "Nothing to draw: the plan has no allocations."
    if plan.status == "infeasible":
        nothing = "Nothing to draw: the plan is infeasible (see the conflicts above)."
    share_caption = "Share of chips in use per period by {}; dashed lines are the caps."
    figures = [
        _figure(
            "chart-cost-by-provider",
            "Cost per period, stacked by provider (committed take-or-pay plus usage).",
            charts.cost_by_provider_svg(plan, "chart-cost-by-provider"),
            nothing,
        ),
        _figure(
            "chart-share-provider",
            share_caption.format("provider"),
            charts.share_svg(plan, "provider", "chart-share-provider"),
            nothing,
        ),
        _figure(
            "chart-share-vendor",
            share_caption.format("chip vendor"),
            charts.share_svg(plan, "vendor", "chart-share-vendor"),
            nothing,
        ),
        _figure(
            "chart-contracts",
            "Contract utilisation: committed chips (grey) against chips used, per contract.",
            charts.contracts_svg(plan, "chart-contracts"),
            "The fleet has no contracts.",
        ),
        _figure(
            "chart-survivability",
            "Survivability: the worst share of demand kept after losing one domain "
            "(columns), per service and jurisdiction (rows). Red cells fall short of α.",
            charts.survivability_svg(plan, "chart-survivability"),
            "No survivability rules apply to this plan."
            if plan.status != "infeasible"
            else nothing,
        ),
    ]
    return _section("charts", "Charts", *figures)


def _shares(values: dict[str, float]) -> tuple[list[list[CellLike]], list[CellLike]]:
    total = sum(values.values())
    rows: list[list[CellLike]] = [
        [k, format_usd(v), format_share(v / total if total else None)]
        for k, v in sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return rows, ["total", format_usd(total), format_share(1.0 if total else None)]


def _cost(plan: Plan) -> str:
    c = plan.cost
    if plan.status == "infeasible":
        return _section(
            "cost", "Cost breakdown", _p("No plan, no cost: see the conflicts.", "empty")
        )
    parts = [
        _p(
            f"Total {format_usd(c.total_usd)} = committed {format_usd(c.committed_fixed_usd)}"
            f" + usage {format_usd(c.usage_usd)}. The unmet-demand penalty"
            f" ({format_usd(c.penalty_usd)}) is not money spent and is excluded."
        )
    ]
    tables = []
    for title, values in (
        ("by provider", c.by_provider),
        ("by vendor", c.by_vendor),
        ("by tier", c.by_tier),
    ):
        rows, total = _shares(values)
        tables.append(
            f"<div><h3>{_e(title)}</h3>"
            + _table([title.split()[-1], "USD", "share"], rows, (1, 2), total if rows else None)
            + "</div>"
        )
    parts.append('<div class="grid">' + "".join(tables) + "</div>")
    rows, total = _shares(c.by_workload)
    parts.append("<h3>by workload</h3>" + _table(["workload", "USD", "share"], rows, (1, 2), total))
    return _section("cost", "Cost breakdown", *parts)


def _pools(plan: Plan) -> str:
    rows: list[list[CellLike]] = []
    for p in sorted(plan.pools, key=lambda p: (p.provider, p.region, p.accelerator, p.tier)):
        cap = mean(p.capacity_chips) or 0.0
        used = mean(p.used_chips) or 0.0
        util = used / cap if cap > 0 else None
        full = sum(
            1 for c, u in zip(p.capacity_chips, p.used_chips, strict=False) if c > 0 and u >= c
        )
        rows.append(
            [
                p.name,
                p.provider,
                f"{p.region} ({p.jurisdiction})",
                f"{p.accelerator} ({p.vendor})",
                p.tier,
                f"{p.price_usd_per_chip_hour:.2f}",
                Cell(p.price_source, "muted"),
                format_number(cap),
                format_number(used),
                format_share(util, 0),
                str(full),
            ]
        )
    headers = [
        "pool",
        "provider",
        "region",
        "accelerator",
        "tier",
        "USD/chip-h",
        "price source",
        "avg capacity",
        "avg used",
        "util",
        "periods full",
    ]
    return _section("pools", "Pools", _table(headers, rows, (5, 7, 8, 9, 10)))


def _placements(plan: Plan) -> str:
    """Allocations aggregated per workload and pool (the full list is in plan.json)."""
    groups: dict[tuple[str, str], list[tuple[int, float, float]]] = defaultdict(list)
    for a in plan.allocations:
        groups[(a.workload, a.pool)].append((a.period, a.chips, a.cost_usd))
    labels = plan.horizon.labels
    ordered = sorted(groups.items(), key=lambda kv: (kv[0][0], -sum(x[2] for x in kv[1])))
    rows: list[list[CellLike]] = [
        [
            workload,
            pool,
            format_periods((t for t, chips, _ in items if chips > 0), labels),
            format_number(sum(chips for _, chips, _ in items) / max(1, len(items))),
            format_usd(sum(usd for _, _, usd in items)),
        ]
        for (workload, pool), items in ordered[:MAX_PLACEMENT_ROWS]
    ]
    table = _table(
        ["workload", "pool", "periods", "avg chips", "usage USD"],
        rows,
        (3, 4),
        empty="no allocations",
    )
    body = f"<details><summary>{len(groups)} workload × pool placements</summary>{table}"
    body += _more(len(ordered) - MAX_PLACEMENT_ROWS, "placements (see plan.json)") + "</details>"
    return _section("placements", "Placements by workload and pool", body)


def _concentration(plan: Plan) -> str:
    rows: list[list[CellLike]] = []
    for c in sorted_concentration(plan):
        if over_cap(c):
            flag = Cell("✗ over cap", "bad")
        elif at_cap(c):
            flag = Cell("at cap", "warn")
        else:
            flag = Cell("")
        rows.append(
            [
                c.kind,
                c.name,
                Cell(format_share(c.max_share), "bad" if over_cap(c) else ""),
                format_share(c.cap, 0) if c.cap is not None else Cell("—", "muted"),
                flag,
            ]
        )
    table = _table(["kind", "domain", "max share", "cap", ""], rows, (2, 3))
    return _section("concentration", "Concentration", table)


def _contracts(plan: Plan) -> str:
    rows: list[list[CellLike]] = []
    for c in sorted(plan.contracts, key=lambda c: (-c.fixed_cost_usd, c.name)):
        committed, used, util = contract_averages(c)
        decided = ""
        if c.decided and c.decided_commitment_chips is not None:
            decided = f"{format_number(c.decided_commitment_chips)} chips"
            if c.decided_discount is not None:
                decided += f" at {format_share(c.decided_discount, 0)} off"
        rows.append(
            [
                c.name,
                c.provider,
                Cell(", ".join(c.pools), "muted"),
                format_number(committed),
                format_number(used),
                Cell(format_share(util, 0), "" if util is None or util >= 0.9 else "warn"),
                format_usd(c.fixed_cost_usd),
                format_usd(c.overage_cost_usd),
                Cell(format_usd(c.wasted_usd_total), "bad" if c.wasted_usd_total > 0 else ""),
                decided or Cell("—", "muted"),
            ]
        )
    headers = [
        "contract",
        "provider",
        "pools",
        "avg committed chips",
        "avg used chips",
        "avg util",
        "fixed USD",
        "overage USD",
        "wasted USD",
        "decided commitment",
    ]
    wasted = sum(c.wasted_usd_total for c in plan.contracts)
    intro = (
        _p(f"Take-or-pay commitment paid but not used: {format_usd(wasted)} over the horizon.")
        if plan.contracts
        else ""
    )
    table = _table(headers, rows, (3, 4, 5, 6, 7, 8), empty="no contracts")
    return _section("contracts", "Contracts", intro, table)


def _survivability(plan: Plan) -> str:
    cells = sorted(
        plan.survivability,
        key=lambda c: (c.ok, c.kept_share_min - c.alpha, c.kind, c.domain, c.service),
    )
    rows: list[list[CellLike]] = [
        [
            f"{c.kind} {c.domain}",
            f"{c.service} / {c.jurisdiction}",
            Cell(format_share(c.kept_share_min), "" if c.ok else "bad"),
            format_share(c.alpha, 0),
            Cell("✓", "good") if c.ok else Cell("✗", "bad"),
        ]
        for c in cells
    ]
    failing = sum(not c.ok for c in cells)
    intro = (
        _p(f"{failing} of {len(cells)} cells fall short of α.", "bad" if failing else "")
        if cells
        else ""
    )
    table = _table(
        ["lose", "service / jurisdiction", "worst kept", "α", ""],
        rows,
        (2, 3),
        empty="no survivability rules",
    )
    return _section("survivability", "Survivability", intro, table)


def _unmet(plan: Plan) -> str:
    if plan.status == "infeasible":
        return _section("unmet", "Unmet demand", _p("No plan: see the conflicts.", "empty"))
    if not plan.unmet:
        return _section("unmet", "Unmet demand", _p("All demand served.", "good"))
    labels = plan.horizon.labels
    ordered = sorted(plan.unmet, key=lambda u: (u.workload, u.period or 0, u.jurisdiction or ""))
    rows: list[list[CellLike]] = [
        [
            u.workload,
            u.kind,
            u.jurisdiction or "—",
            format_periods([u.period], labels) if u.period is not None else "whole horizon",
            f"{format_number(u.amount)} {u.unit}",
            u.cause,
        ]
        for u in ordered[:MAX_UNMET_ROWS]
    ]
    table = _table(["workload", "kind", "jurisdiction", "period", "unmet", "cause"], rows, (4,))
    return _section(
        "unmet",
        "Unmet demand",
        table,
        _more(len(ordered) - MAX_UNMET_ROWS, "rows (see plan.json)"),
    )


def _training(plan: Plan) -> str:
    labels = plan.horizon.labels
    rows: list[list[CellLike]] = []
    for tp in sorted(plan.training, key=lambda tp: (tp.scheduled, tp.start_period or 0)):
        rows.append(
            [
                tp.workload,
                Cell("scheduled", "good") if tp.scheduled else Cell("not scheduled", "bad"),
                tp.pool or "—",
                tp.accelerator or "—",
                training_window(tp, labels) or "—",
                f"{tp.gang_chips:,}",
                format_number(tp.chip_hours),
                format_usd(tp.cost_usd),
                Cell(tp.reason, "muted"),
            ]
        )
    headers = [
        "run",
        "status",
        "pool",
        "accelerator",
        "when",
        "gang chips",
        "chip-hours",
        "cost",
        "reason",
    ]
    table = _table(headers, rows, (5, 6, 7), empty="no training runs")
    return _section("training", "Training placements", table)


def _unit_economics(plan: Plan) -> str:
    rows: list[list[CellLike]] = [
        [
            u.workload,
            format_number(u.tokens_served),
            format_usd(u.cost_usd),
            "—" if u.usd_per_million_tokens is None else f"{u.usd_per_million_tokens:.4g}",
        ]
        for u in sorted(plan.unit_economics, key=lambda u: (-u.cost_usd, u.workload))
    ]
    table = _table(
        ["service", "tokens served", "cost", "USD per million tokens"],
        rows,
        (1, 2, 3),
        empty="no inference services",
    )
    return _section("unit-economics", "Unit economics", table)


def _hedges(plan: Plan) -> str:
    rows: list[list[CellLike]] = [
        [
            Cell(h.policy),
            "n/a" if h.cost_usd is None else format_usd(h.cost_usd),
            Cell(h.status, "muted"),
            hedge_sentence(h),
        ]
        for h in top_hedges(plan)
    ]
    table = _table(
        ["policy", "cost of the hedge", "status", ""], rows, (1,), empty="no hedge costs computed"
    )
    intro = _p("What each policy costs: plan cost with the policy minus without it.", "muted")
    return _section("hedge-costs", "Hedge costs", intro if rows else "", table)


def _shadow_prices(plan: Plan) -> str:
    rows: list[list[CellLike]] = [
        [Cell(s.constraint), s.kind, format_usd(s.usd), s.unit, shadow_sentence(s)]
        for s in top_shadow_prices(plan)
    ]
    table = _table(["constraint", "kind", "USD", "per", ""], rows, (2,), empty="no shadow prices")
    return _section("shadow-prices", "Shadow prices", table)


def _binding(plan: Plan) -> str:
    labels = plan.horizon.labels
    rows: list[list[CellLike]] = [
        [Cell(b.constraint), format_periods(b.periods, labels) or "—", b.text]
        for b in plan.binding_constraints
    ]
    table = _table(["constraint", "periods", ""], rows, empty="no binding constraints")
    return _section("binding", "Binding constraints", table)


def _reasons(plan: Plan) -> str:
    rows: list[list[CellLike]] = [
        [r.workload, r.text] for r in sorted(plan.reasons, key=lambda r: r.workload)
    ]
    return _section("reasons", "Reasons", _table(["workload", "why"], rows, empty="no reasons"))


def _solver(plan: Plan) -> str:
    s = plan.solver

    def usd(x: float | None) -> str:
        return "—" if x is None else format_usd(x)

    def opt(x: float | int | None, suffix: str = "") -> str:
        return "—" if x is None else f"{x:g}{suffix}"

    rows: list[list[CellLike]] = [
        ["solver", f"{s.solver} ({s.status})"],
        ["variables", f"{s.variables:,} ({s.integer_variables:,} integer)"],
        ["constraints", f"{s.constraints:,}"],
        ["nonzeros", f"{s.nonzeros:,}"],
        ["build", f"{s.build_seconds:.2f} s"],
        ["solve", f"{s.solve_seconds:.2f} s"],
        ["objective", usd(s.objective_usd)],
        ["LP relaxation bound", usd(s.lp_relaxation_bound_usd)],
        ["MIP bound", usd(s.mip_bound_usd)],
        ["gap", gap_text(plan)],
        ["time limit", opt(s.time_limit_s, " s")],
        ["gap limit", "—" if s.gap_limit is None else format_share(s.gap_limit, 2)],
        ["threads", opt(s.threads)],
    ]
    return _section("solver", "Solver statistics", _table(["", ""], rows))


def _notes(plan: Plan) -> str:
    if not plan.notes:
        return _section("notes", "Notes", _p("No assumptions to report.", "empty"))
    items = "\n".join(f"<li>{_e(n)}</li>" for n in plan.notes)
    return _section("notes", "Notes and assumptions", f'<ul class="notes">\n{items}\n</ul>')
