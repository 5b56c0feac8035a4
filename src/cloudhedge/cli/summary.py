"""The terminal summary of a plan: what a person reads in ten seconds.

:func:`render_summary` prints a header line (name, status, total cost, horizon, gap)
and a handful of compact tables to a :class:`rich.console.Console`. It aggregates and
caps rows so that even a flagship fleet (dozens of workloads and pools, two years of
months, five providers) fits in about a screen and a half; the HTML report
(:mod:`cloudhedge.cli.report`) has everything in full.

The formatting helpers (:func:`format_usd`, :func:`format_number`, :func:`format_share`,
:func:`format_periods`) are shared with the report and the charts, and the table
builders (:func:`compact_table`, :func:`bullets`) with the stress
summary (:mod:`cloudhedge.cli.stress_summary`).

Every string that comes from the plan is printed as :class:`rich.text.Text`, never as
markup, so a name containing ``[red]`` prints as itself.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cloudhedge.core.plan import (
    Concentration,
    ContractUse,
    HedgeCost,
    Plan,
    ShadowPrice,
    SurvivabilityCell,
    TrainingPlacement,
    Unmet,
)

__all__ = [
    "format_number",
    "format_periods",
    "format_share",
    "format_usd",
    "render_summary",
]

_SUFFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))

# Row caps: the summary is a glance; the report has the rest.
MAX_PROVIDERS = 8
MAX_CONCENTRATION = 12
MAX_CONTRACTS = 8
MAX_SURVIVABILITY = 10
MAX_UNMET = 6
MAX_TRAINING = 8
MAX_UNIT_ECONOMICS = 8
MAX_HEDGES = 5
MAX_SHADOW_PRICES = 5
MAX_CONFLICTS = 10
MAX_NOTES = 5

_KIND_ORDER = {"provider": 0, "vendor": 1, "region": 2}
_STATUS_STYLE = {"optimal": "bold green", "feasible": "bold yellow", "infeasible": "bold red"}
_EPS = 1e-6
_SIDE_BY_SIDE_MIN_WIDTH = 110


# ---------------------------------------------------------------------------
# formatting helpers (shared with report.py and charts.py)


def format_number(x: float, digits: int = 1) -> str:
    """A quantity in human units: ``1234`` -> ``"1.2 K"``, ``950`` -> ``"950"``.

    Sign aware; values below a thousand keep up to two decimals when they are small
    and not whole. Non-finite values print as ``"n/a"``.
    """
    if not math.isfinite(x):
        return "n/a"
    sign = "-" if x < 0 else ""
    a = abs(x)
    for scale, suffix in _SUFFIXES:
        # 999.96 K would round to "1000.0 K": such values already count as the next unit
        # (and below a thousand, which prints whole, from 999.5 on)
        if a >= min(scale * (1 - 0.5 / 10**digits / 1000), scale - 0.5):
            return f"{sign}{a / scale:.{digits}f} {suffix}"
    if a == 0:
        return "0"
    if a >= 10 or a.is_integer():
        text = f"{a:.0f}"
    elif a >= 1:
        text = f"{a:.2f}".rstrip("0").rstrip(".")
    else:
        text = f"{a:.2g}"
    return f"{sign}{text}"


def format_usd(x: float) -> str:
    """Money in human units: ``1.2e9`` -> ``"1.2 B USD"``, ``950`` -> ``"950 USD"``,
    ``-18.2e6`` -> ``"-18.2 M USD"``; non-finite -> ``"n/a"``."""
    return f"{format_number(x)} USD" if math.isfinite(x) else "n/a"


def format_share(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: ``0.387`` -> ``"38.7%"``; ``None`` -> ``"—"``."""
    if x is None or not math.isfinite(x):
        return "—"
    return f"{100 * x:.{digits}f}%"


def format_periods(periods: Iterable[int], labels: Sequence[str]) -> str:
    """Period indices as compact label ranges.

    ``[0, 1, 2, 5]`` -> ``"2025-01..2025-03, 2025-06"``.
    """

    def label(t: int) -> str:
        return labels[t] if 0 <= t < len(labels) else f"t{t}"

    ordered = sorted(set(periods))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        a, b = ordered[i], ordered[j]
        parts.append(label(a) if a == b else f"{label(a)}..{label(b)}")
        i = j + 1
    return ", ".join(parts)


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not ``None``; ``None`` when there are none."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def over_cap(c: Concentration) -> bool:
    """True when a concentration exceeds its cap (the planner should never allow it)."""
    return c.cap is not None and c.max_share > c.cap + _EPS


def at_cap(c: Concentration) -> bool:
    """True when a concentration sits on its cap (the cap is likely binding)."""
    return c.cap is not None and not over_cap(c) and c.max_share >= c.cap - 0.005


def contract_averages(c: ContractUse) -> tuple[float, float, float | None]:
    """Average committed chips and used chips over the active term, and mean utilisation."""
    active = [t for t, chips in enumerate(c.committed_chips) if chips > _EPS]
    if not active:
        active = list(range(len(c.used_chips)))
    committed = mean(c.committed_chips[t] for t in active if t < len(c.committed_chips)) or 0.0
    used = mean(c.used_chips[t] for t in active if t < len(c.used_chips)) or 0.0
    return committed, used, mean(c.utilisation)


def hedge_sentence(h: HedgeCost) -> str:
    """The hedge cost as a sentence (the planner's text, or one made from the numbers)."""
    if h.text:
        return h.text
    if h.cost_usd is None:
        return f"{h.description}: cost not computed ({h.status})"
    return f"{h.description} costs {format_usd(h.cost_usd)} over the horizon"


def shadow_sentence(s: ShadowPrice) -> str:
    """The shadow price as a sentence (the planner's text, or one made from the numbers)."""
    if s.text:
        return s.text
    verb = "saves" if s.usd >= 0 else "costs"
    return f"relaxing {s.constraint} by one {s.unit} {verb} {format_usd(abs(s.usd))}"


def top_hedges(plan: Plan) -> list[HedgeCost]:
    """Hedge costs, most expensive first; those without a cost last."""
    return sorted(
        plan.hedge_costs,
        key=lambda h: (h.cost_usd is None, -(h.cost_usd or 0.0), h.policy),
    )


def top_shadow_prices(plan: Plan) -> list[ShadowPrice]:
    """Shadow prices, largest absolute value first."""
    return sorted(plan.shadow_prices, key=lambda s: (-abs(s.usd), s.constraint))


def sorted_concentration(plan: Plan, kinds: Sequence[str] | None = None) -> list[Concentration]:
    """Concentration rows by kind (provider, vendor, region), then largest share first."""
    rows = [c for c in plan.concentration if kinds is None or c.kind in kinds]
    return sorted(rows, key=lambda c: (_KIND_ORDER.get(c.kind, 9), c.kind, -c.max_share, c.name))


@dataclass(frozen=True)
class DomainSurvival:
    """The worst survivability cell for losing one domain (over services and jurisdictions)."""

    kind: str
    domain: str
    worst: SurvivabilityCell
    cells: int
    failing: int

    @property
    def ok(self) -> bool:
        return self.failing == 0


def survivability_by_domain(cells: Iterable[SurvivabilityCell]) -> list[DomainSurvival]:
    """Group cells by failure domain; failing domains first, then the thinnest margin."""
    groups: dict[tuple[str, str], list[SurvivabilityCell]] = defaultdict(list)
    for cell in cells:
        groups[(cell.kind, cell.domain)].append(cell)
    out = [
        DomainSurvival(
            kind=kind,
            domain=domain,
            worst=min(group, key=lambda c: (c.ok, c.kept_share_min - c.alpha)),
            cells=len(group),
            failing=sum(not c.ok for c in group),
        )
        for (kind, domain), group in groups.items()
    ]
    return sorted(
        out,
        key=lambda d: (
            d.ok,
            d.worst.kept_share_min - d.worst.alpha,
            _KIND_ORDER.get(d.kind, 9),
            d.domain,
        ),
    )


@dataclass(frozen=True)
class UnmetGroup:
    """Unmet rows of one workload with one cause, across periods and jurisdictions."""

    workload: str
    kind: str
    cause: str
    unit: str
    periods: tuple[int, ...]
    jurisdictions: tuple[str, ...]
    peak: float
    total: float


def unmet_groups(rows: Iterable[Unmet]) -> list[UnmetGroup]:
    """Aggregate unmet rows by (workload, cause, unit), largest peak first."""
    groups: dict[tuple[str, str, str, str], list[Unmet]] = defaultdict(list)
    for u in rows:
        groups[(u.workload, u.kind, u.cause, u.unit)].append(u)
    out = [
        UnmetGroup(
            workload=w,
            kind=k,
            cause=cause,
            unit=unit,
            periods=tuple(sorted({u.period for u in g if u.period is not None})),
            jurisdictions=tuple(sorted({u.jurisdiction for u in g if u.jurisdiction})),
            peak=max(u.amount for u in g),
            total=sum(u.amount for u in g),
        )
        for (w, k, cause, unit), g in groups.items()
    ]
    return sorted(out, key=lambda g: (-g.peak, g.workload))


def label_span(labels: Sequence[str]) -> str:
    """First and last period label: ``"2025-01..2026-12"`` (``"?"`` without labels)."""
    return f"{labels[0]}..{labels[-1]}" if labels else "?"


def horizon_span(plan: Plan) -> str:
    """``"2025-01..2026-12"``."""
    return label_span(plan.horizon.labels)


def horizon_length(plan: Plan) -> str:
    """``"24 months"``."""
    h = plan.horizon
    return f"{h.periods} {h.period if h.periods == 1 else h.period + 's'}"


def horizon_text(plan: Plan) -> str:
    """``"2025-01..2026-12 (24 months)"``."""
    return f"{horizon_span(plan)} ({horizon_length(plan)})"


def gap_text(plan: Plan) -> str:
    """The MIP gap as a percentage, or ``"n/a"``."""
    gap = plan.solver.gap
    return "n/a" if gap is None else f"{100 * gap:.2f}%"


def training_window(tp: TrainingPlacement, labels: Sequence[str]) -> str:
    """``"2025-03..2025-06"`` for a scheduled run, ``""`` otherwise."""
    if tp.start_period is None:
        return ""
    end = tp.end_period if tp.end_period is not None else tp.start_period
    return format_periods(range(tp.start_period, end + 1), labels)


# ---------------------------------------------------------------------------
# rich building blocks (shared with stress_summary.py)


def compact_table(title: str, *columns: str, right: Sequence[int] = ()) -> Table:
    """A titled table in the summary's compact style; columns in ``right`` right-aligned."""
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        header_style="dim",
        caption_justify="left",
        caption_style="dim",
    )
    for i, name in enumerate(columns):
        table.add_column(name, justify="right" if i in right else "left")
    return table


def bullets(title: str, lines: Sequence[Text], hidden: int, what: str) -> Text:
    """A bold title and one bullet per line; ``… and N more WHAT`` when lines were hidden."""
    out = Text()
    out.append(title + "\n", style="bold")
    for line in lines:
        out.append("  • ")
        out.append_text(line)
        out.append("\n")
    if hidden > 0:
        out.append(f"  … and {hidden} more {what}\n", style="dim")
    out.rstrip()
    return out


# ---------------------------------------------------------------------------
# the summary


def render_summary(plan: Plan, console: Console) -> None:
    """Print the ten-second summary of ``plan`` to ``console``."""
    blocks: list[RenderableType | None] = [_header(plan)]
    if plan.conflicts:
        blocks.append(_conflicts(plan))
    blocks.append(_pair(_cost_by_provider(plan), _concentration(plan), console.width))
    blocks.append(_pair(_contracts(plan), _survivability(plan), console.width))
    if plan.status != "infeasible":  # an infeasible plan serves nothing: the conflicts say why
        blocks.append(_unmet(plan))
    blocks.append(_pair(_training(plan), _unit_economics(plan), console.width))
    blocks += [_hedges(plan), _shadow_prices(plan), _notes(plan)]
    for i, block in enumerate(b for b in blocks if b is not None):
        if i:
            console.print()
        console.print(block)


def _pair(
    left: RenderableType | None, right: RenderableType | None, width: int
) -> RenderableType | None:
    """Two tables side by side on a wide console (they wrap to fit), else stacked."""
    items = [r for r in (left, right) if r is not None]
    if not items:
        return None
    if len(items) == 1 or width < _SIDE_BY_SIDE_MIN_WIDTH:
        return Group(*items)
    grid = Table.grid(padding=(0, 4))
    grid.add_column()
    grid.add_column()
    grid.add_row(*items)
    return grid


def _more(table: Table, hidden: int, what: str = "more") -> None:
    """Say how many rows the cap hid, under the table (a caption does not widen columns)."""
    if hidden > 0:
        table.caption = f"… and {hidden} {what}"


def _header(plan: Plan) -> Text:
    """Line one: name · status · total · horizon · gap. Line two (dim): where money goes."""
    cost, s = plan.cost, plan.solver
    line = Text()
    line.append(plan.name, style="bold")
    line.append(" · ")
    line.append(plan.status, style=_STATUS_STYLE.get(plan.status, "bold"))
    line.append(" · ")
    details: list[Text] = []
    if plan.status == "infeasible":
        line.append("no plan", style="bold red")
        line.append(f" for {horizon_text(plan)}")
    else:
        line.append(format_usd(cost.total_usd), style="bold cyan")
        line.append(f" over {horizon_text(plan)} · gap {gap_text(plan)}")
        details.append(
            Text(
                f"committed {format_usd(cost.committed_fixed_usd)}"
                f" + usage {format_usd(cost.usage_usd)}",
                style="dim",
            )
        )
        if cost.penalty_usd > _EPS:
            details.append(
                Text(f"unmet-demand penalty {format_usd(cost.penalty_usd)}", style="yellow")
            )
    details.append(
        Text(
            f"{s.solver} {s.variables:,} vars, {s.constraints:,} rows,"
            f" solved in {s.build_seconds + s.solve_seconds:.1f} s"
            + (f", LP bound {format_usd(s.lp_relaxation_bound_usd)}"
               if s.lp_relaxation_bound_usd is not None else ""),
            style="dim",
        )
    )
    line.append("\n")
    line.append_text(Text(" · ", style="dim").join(details))
    return line


def _conflicts(plan: Plan) -> Panel:
    body = Text()
    for c in plan.conflicts[:MAX_CONFLICTS]:
        body.append("✗ ", style="bold red")
        body.append(c.text)
        body.append(f"  [{c.constraint}, bends by {format_number(c.violation)} {c.unit}]\n", "dim")
    hidden = len(plan.conflicts) - MAX_CONFLICTS
    if hidden > 0:
        body.append(f"… and {hidden} more conflicts (see the report)\n", style="dim")
    body.rstrip()
    return Panel(
        body,
        title="no plan meets the hard policies: these constraints conflict",
        title_align="left",
        border_style="red",
    )


def _cost_by_provider(plan: Plan) -> Table | None:
    items = sorted(plan.cost.by_provider.items(), key=lambda kv: (-kv[1], kv[0]))
    if not items:
        return None
    total = sum(v for _, v in items)
    table = compact_table("Cost by provider", "provider", "USD", "share", "", right=(1, 2))
    for name, usd in items[:MAX_PROVIDERS]:
        share = usd / total if total > 0 else 0.0
        bar = "█" * max(0, round(12 * share))
        table.add_row(Text(name), format_usd(usd), format_share(share), Text(bar, "cyan"))
    _more(table, len(items) - MAX_PROVIDERS, "more providers")
    return table


def _concentration(plan: Plan) -> Table | None:
    rows = [
        c
        for c in sorted_concentration(plan)
        if c.kind in ("provider", "vendor") or c.cap is not None
    ]
    if not rows:
        return None
    table = compact_table(
        "Concentration (max chip share)", "kind", "domain", "max", "cap", "", right=(2, 3)
    )
    shown = rows[:MAX_CONCENTRATION]
    # never hide a breach behind the row cap
    shown += [c for c in rows[MAX_CONCENTRATION:] if over_cap(c)]
    for c in shown:
        if over_cap(c):
            flag = Text("✗ over cap", style="bold red")
        elif at_cap(c):
            flag = Text("at cap", style="yellow")
        else:
            flag = Text("")
        style = "red" if over_cap(c) else ""
        table.add_row(
            Text(c.kind, "dim"),
            Text(c.name),
            Text(format_share(c.max_share), style),
            format_share(c.cap, 0) if c.cap is not None else Text("—", "dim"),
            flag,
        )
    _more(table, len(rows) - len(shown), "more domains")
    return table


def _contracts(plan: Plan) -> Table | None:
    if not plan.contracts:
        return None
    table = compact_table(
        "Contracts (avg over term)",
        "contract",
        "committed",
        "used",
        "util",
        "wasted",
        right=(1, 2, 3, 4),
    )
    ordered = sorted(plan.contracts, key=lambda c: (-c.fixed_cost_usd, c.name))
    for c in ordered[:MAX_CONTRACTS]:
        committed, used, util = contract_averages(c)
        util_style = "" if util is None or util >= 0.9 else ("yellow" if util >= 0.6 else "red")
        label = Text(c.name)
        label.append(f" {c.provider}", style="dim")
        if c.decided and c.decided_commitment_chips is not None:
            label.append(" (decided)", style="cyan")
        table.add_row(
            label,
            format_number(committed),
            format_number(used),
            Text(format_share(util, 0), util_style),
            Text(format_usd(c.wasted_usd_total), "red" if c.wasted_usd_total > _EPS else "dim"),
        )
    hidden = ordered[MAX_CONTRACTS:]
    if hidden:
        wasted = sum(c.wasted_usd_total for c in hidden)
        _more(table, len(hidden), f"more (wasted {format_usd(wasted)})")
    return table


def _survivability(plan: Plan) -> Table | None:
    domains = survivability_by_domain(plan.survivability)
    if not domains:
        return None
    table = compact_table(
        "Survivability (lose one domain)", "lose", "worst kept", "α", "worst for", "", right=(1, 2)
    )
    for d in domains[:MAX_SURVIVABILITY]:
        w = d.worst
        mark = Text("✓", "green") if d.ok else Text("✗", "bold red")
        if d.failing and d.cells > 1:
            mark.append(f" {d.failing}/{d.cells}", style="red")
        table.add_row(
            Text(f"{d.kind} {d.domain}"),
            Text(format_share(w.kept_share_min, 0), "" if d.ok else "red"),
            format_share(w.alpha, 0),
            Text(f"{w.service}/{w.jurisdiction}", "dim"),
            mark,
        )
    hidden = domains[MAX_SURVIVABILITY:]
    failing = sum(not d.ok for d in hidden)
    _more(table, len(hidden), f"more domains ({failing} ✗)" if failing else "more domains ✓")
    return table


def _unmet(plan: Plan) -> RenderableType:
    groups = unmet_groups(plan.unmet)
    if not groups:
        return Text("✓ all demand served", style="green")
    labels = plan.horizon.labels
    table = compact_table("Unmet demand", "workload", "when / where", "peak", "cause", right=(2,))
    for g in groups[:MAX_UNMET]:
        where = format_periods(g.periods, labels) if g.periods else "whole horizon"
        if g.jurisdictions:
            where += " · " + ", ".join(g.jurisdictions)
        table.add_row(
            Text(g.workload, "yellow"),
            Text(where),
            f"{format_number(g.peak)} {g.unit}",
            Text(g.cause),
        )
    _more(table, len(groups) - MAX_UNMET)
    return table


def _training(plan: Plan) -> Table | None:
    if not plan.training:
        return None
    labels = plan.horizon.labels
    table = compact_table("Training placements", "run", "pool", "when", "gang", right=(3,))
    ordered = sorted(
        plan.training, key=lambda tp: (tp.scheduled, tp.start_period or 0, tp.workload)
    )
    for tp in ordered[:MAX_TRAINING]:
        if tp.scheduled and tp.pool is not None:
            table.add_row(
                Text(tp.workload),
                Text(f"→ {tp.pool}"),
                Text(training_window(tp, labels)),
                f"{tp.gang_chips:,}",
            )
        else:
            table.add_row(
                Text(tp.workload, "red"),
                Text("not scheduled", "bold red"),
                Text(tp.reason, "dim", overflow="fold"),
                f"{tp.gang_chips:,}",
            )
    _more(table, len(ordered) - MAX_TRAINING, "more runs")
    return table


def _unit_economics(plan: Plan) -> Table | None:
    rows = sorted(plan.unit_economics, key=lambda u: (-u.cost_usd, u.workload))
    if not rows:
        return None
    table = compact_table(
        "Unit economics", "service", "tokens", "cost", "USD/Mtok", right=(1, 2, 3)
    )
    for u in rows[:MAX_UNIT_ECONOMICS]:
        per_m = "—" if u.usd_per_million_tokens is None else f"{u.usd_per_million_tokens:.3g}"
        table.add_row(
            Text(u.workload), format_number(u.tokens_served), format_usd(u.cost_usd), per_m
        )
    _more(table, len(rows) - MAX_UNIT_ECONOMICS, "more services")
    return table


def _hedges(plan: Plan) -> Text | None:
    hedges = top_hedges(plan)
    if not hedges:
        return None
    lines = []
    for h in hedges[:MAX_HEDGES]:
        line = Text(hedge_sentence(h))
        if h.cost_usd is None and h.text:
            line.append(f" ({h.status})", style="dim")
        lines.append(line)
    return bullets("Hedge costs", lines, len(hedges) - MAX_HEDGES, "policies")


def _shadow_prices(plan: Plan) -> Text | None:
    prices = top_shadow_prices(plan)
    if not prices:
        return None
    lines = [Text(shadow_sentence(s)) for s in prices[:MAX_SHADOW_PRICES]]
    return bullets("Top shadow prices", lines, len(prices) - MAX_SHADOW_PRICES, "(see report)")


def _notes(plan: Plan) -> Text | None:
    if not plan.notes:
        return None
    lines = [Text(n, style="dim") for n in plan.notes[:MAX_NOTES]]
    return bullets("Notes", lines, len(plan.notes) - MAX_NOTES, "notes (see report)")
