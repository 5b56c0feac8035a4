"""The HTML report of a plan: one self-contained file that opens offline.

:func:`write_report` writes, and :func:`render_report` returns, a single HTML document
with inline CSS and inline SVG charts (from :mod:`cloudhedge.cli.charts`): no script,
no font, no stylesheet or image is fetched from anywhere. Every string taken from the
plan is escaped. The page's building blocks are in :mod:`cloudhedge.cli.htmldoc`, shared
with the stress report.

Layout, top to bottom: the headline figures; the conflicts when the plan is
infeasible (prominent, first); five charts (cost per period by provider, chip share by
provider and by vendor with their caps, contract utilisation, survivability heat map),
each a ``<figure id="chart-...">`` that says so in words when the plan has nothing to
draw; then the tables: cost breakdown, pools, placements, concentration, contracts,
survivability, unmet demand, training, unit economics, hedge costs, shadow prices,
binding constraints, reasons, solver statistics and notes.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from cloudhedge.cli import charts
from cloudhedge.cli.htmldoc import (
    Cell,
    CellLike,
    esc,
    figure,
    html_table,
    kpi_tiles,
    more,
    nav,
    page,
    para,
    section,
)
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
    return page(title, _header(plan), body)


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
    links = ((("conflicts", "conflicts"),) if plan.conflicts else ()) + _NAV
    solved = f"{s.solver} {s.status}, {s.build_seconds + s.solve_seconds:.1f} s"
    return (
        f"<header>\n<h1>{esc(plan.name)} "
        f'<span class="badge {esc(plan.status)}">{esc(plan.status)}</span></h1>\n'
        f'<p class="sub">cloudhedge plan · schema {esc(plan.schema_version)} · '
        f"{esc(solved)}</p>\n"
        f"{kpi_tiles(kpis)}\n{nav(links)}\n</header>"
    )


def _conflicts(plan: Plan) -> str:
    if not plan.conflicts:
        return ""
    items = "\n".join(
        f'<li><strong>{esc(c.text)}</strong> <span class="muted">'
        f"(<code>{esc(c.constraint)}</code> bends by {esc(format_number(c.violation))} "
        f"{esc(c.unit)})</span></li>"
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
        figure(
            "chart-cost-by-provider",
            "Cost per period, stacked by provider (committed take-or-pay plus usage).",
            charts.cost_by_provider_svg(plan, "chart-cost-by-provider"),
            nothing,
        ),
        figure(
            "chart-share-provider",
            share_caption.format("provider"),
            charts.share_svg(plan, "provider", "chart-share-provider"),
            nothing,
        ),
        figure(
            "chart-share-vendor",
            share_caption.format("chip vendor"),
            charts.share_svg(plan, "vendor", "chart-share-vendor"),
            nothing,
        ),
        figure(
            "chart-contracts",
            "Contract utilisation: committed chips (grey) against chips used, per contract.",
            charts.contracts_svg(plan, "chart-contracts"),
            "The fleet has no contracts.",
        ),
        figure(
            "chart-survivability",
            "Survivability: the worst share of demand kept after losing one domain "
            "(columns), per service and jurisdiction (rows). Red cells fall short of α.",
            charts.survivability_svg(plan, "chart-survivability"),
            "No survivability rules apply to this plan."
            if plan.status != "infeasible"
            else nothing,
        ),
    ]
    return section("charts", "Charts", *figures)


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
        return section(
            "cost", "Cost breakdown", para("No plan, no cost: see the conflicts.", "empty")
        )
    parts = [
        para(
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
            f"<div><h3>{esc(title)}</h3>"
            + html_table([title.split()[-1], "USD", "share"], rows, (1, 2), total if rows else None)
            + "</div>"
        )
    parts.append('<div class="grid">' + "".join(tables) + "</div>")
    rows, total = _shares(c.by_workload)
    parts.append(
        "<h3>by workload</h3>" + html_table(["workload", "USD", "share"], rows, (1, 2), total)
    )
    return section("cost", "Cost breakdown", *parts)


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
    return section("pools", "Pools", html_table(headers, rows, (5, 7, 8, 9, 10)))


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
    table = html_table(
        ["workload", "pool", "periods", "avg chips", "usage USD"],
        rows,
        (3, 4),
        empty="no allocations",
    )
    body = f"<details><summary>{len(groups)} workload × pool placements</summary>{table}"
    body += more(len(ordered) - MAX_PLACEMENT_ROWS, "placements (see plan.json)") + "</details>"
    return section("placements", "Placements by workload and pool", body)


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
    table = html_table(["kind", "domain", "max share", "cap", ""], rows, (2, 3))
    return section("concentration", "Concentration", table)


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
        para(f"Take-or-pay commitment paid but not used: {format_usd(wasted)} over the horizon.")
        if plan.contracts
        else ""
    )
    table = html_table(headers, rows, (3, 4, 5, 6, 7, 8), empty="no contracts")
    return section("contracts", "Contracts", intro, table)


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
        para(f"{failing} of {len(cells)} cells fall short of α.", "bad" if failing else "")
        if cells
        else ""
    )
    table = html_table(
        ["lose", "service / jurisdiction", "worst kept", "α", ""],
        rows,
        (2, 3),
        empty="no survivability rules",
    )
    return section("survivability", "Survivability", intro, table)


def _unmet(plan: Plan) -> str:
    if plan.status == "infeasible":
        return section("unmet", "Unmet demand", para("No plan: see the conflicts.", "empty"))
    if not plan.unmet:
        return section("unmet", "Unmet demand", para("All demand served.", "good"))
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
    table = html_table(["workload", "kind", "jurisdiction", "period", "unmet", "cause"], rows, (4,))
    return section(
        "unmet",
        "Unmet demand",
        table,
        more(len(ordered) - MAX_UNMET_ROWS, "rows (see plan.json)"),
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
    table = html_table(headers, rows, (5, 6, 7), empty="no training runs")
    return section("training", "Training placements", table)


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
    table = html_table(
        ["service", "tokens served", "cost", "USD per million tokens"],
        rows,
        (1, 2, 3),
        empty="no inference services",
    )
    return section("unit-economics", "Unit economics", table)


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
    table = html_table(
        ["policy", "cost of the hedge", "status", ""], rows, (1,), empty="no hedge costs computed"
    )
    intro = para("What each policy costs: plan cost with the policy minus without it.", "muted")
    return section("hedge-costs", "Hedge costs", intro if rows else "", table)


def _shadow_prices(plan: Plan) -> str:
    rows: list[list[CellLike]] = [
        [Cell(s.constraint), s.kind, format_usd(s.usd), s.unit, shadow_sentence(s)]
        for s in top_shadow_prices(plan)
    ]
    table = html_table(
        ["constraint", "kind", "USD", "per", ""], rows, (2,), empty="no shadow prices"
    )
    return section("shadow-prices", "Shadow prices", table)


def _binding(plan: Plan) -> str:
    labels = plan.horizon.labels
    rows: list[list[CellLike]] = [
        [Cell(b.constraint), format_periods(b.periods, labels) or "—", b.text]
        for b in plan.binding_constraints
    ]
    table = html_table(["constraint", "periods", ""], rows, empty="no binding constraints")
    return section("binding", "Binding constraints", table)


def _reasons(plan: Plan) -> str:
    rows: list[list[CellLike]] = [
        [r.workload, r.text] for r in sorted(plan.reasons, key=lambda r: r.workload)
    ]
    return section("reasons", "Reasons", html_table(["workload", "why"], rows, empty="no reasons"))


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
    return section("solver", "Solver statistics", html_table(["", ""], rows))


def _notes(plan: Plan) -> str:
    if not plan.notes:
        return section("notes", "Notes", para("No assumptions to report.", "empty"))
    items = "\n".join(f"<li>{esc(n)}</li>" for n in plan.notes)
    return section("notes", "Notes and assumptions", f'<ul class="notes">\n{items}\n</ul>')
