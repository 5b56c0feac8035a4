"""The terminal summary of a stress report: what each scenario does to the plan.

:func:`render_stress_summary` prints a header (fleet, scenarios, horizon, plan cost,
the worst scenario, broken promises), then compact tables: the scenarios (the plan as
it is against the planner's answer once the event is known), the Monte Carlo risk when
it was run, and the hedge value (premium vs payout) when it was computed. A table
too wide for the console splits into parts, its row labels repeated. The HTML report
(:mod:`cloudhedge.cli.stress_report`) has everything in full.

The helpers that read a :class:`~cloudhedge.core.stress_report.StressReport`
(:func:`promise_check`, :func:`n1_scenarios`, :func:`hedge_rows`, ...) are shared with
that report and with :mod:`cloudhedge.cli.stress_charts`; money and quantities are
formatted by the plan summary's helpers (:mod:`cloudhedge.cli.summary`).

Every string that comes from the report is printed as :class:`rich.text.Text`, never
as markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from cloudhedge.cli.summary import (
    bullets,
    compact_table,
    format_number,
    format_share,
    format_usd,
    label_span,
)
from cloudhedge.core.stress_report import (
    HedgeValue,
    PlanVariant,
    Quantiles,
    Replanned,
    ScenarioResult,
    StressReport,
)

__all__ = [
    "HedgeRow",
    "PromiseCheck",
    "count",
    "hedge_rows",
    "n1_scenarios",
    "payout_variants",
    "promise_check",
    "promise_totals",
    "quantile_rows",
    "render_stress_summary",
    "scenario_start",
    "variant_payouts",
    "worst_scenario",
]

UNHEDGED = "unhedged"
HEDGED = "hedged"

# Row caps: the summary is a glance; the report has the rest.
MAX_SCENARIOS = 12
MAX_HEDGE_SCENARIOS = 8
MAX_HEDGE_TEXT = 5
MAX_NOTES = 5


# ---------------------------------------------------------------------------
# reading the report (shared with stress_report.py and stress_charts.py)


@dataclass(frozen=True)
class PromiseCheck:
    """The survivability promises a scenario tested: how many, how many broken."""

    promised: int
    broken: int

    @property
    def applies(self) -> bool:
        """True when the plan promised a share for the domain the scenario takes out."""
        return self.promised > 0


def promise_check(scenario: ScenarioResult) -> PromiseCheck:
    """Count the services of ``scenario`` with a promise, and those whose promise broke."""
    checked = [s for s in scenario.immediate.services if s.promise_kept is not None]
    return PromiseCheck(promised=len(checked), broken=sum(s.promise_kept is False for s in checked))


def promise_totals(report: StressReport) -> PromiseCheck:
    """The promises of every scenario together."""
    checks = [promise_check(s) for s in report.scenarios]
    return PromiseCheck(sum(c.promised for c in checks), sum(c.broken for c in checks))


def count(n: int, noun: str) -> str:
    """``n`` and the noun, plural unless one: ``"1 scenario"``, ``"3 scenarios"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def n1_scenarios(report: StressReport) -> list[ScenarioResult]:
    """The N-1 scenarios: those that take out one failure domain (``domain`` set)."""
    return [s for s in report.scenarios if s.domain is not None]


def worst_scenario(report: StressReport) -> ScenarioResult | None:
    """The scenario with the lowest served share in the immediate answer."""
    return min(report.scenarios, key=lambda s: s.immediate.served_share, default=None)


def scenario_start(scenario: ScenarioResult, labels: Sequence[str]) -> str:
    """The label of the first period the scenario affects (``t3`` past the labels)."""
    t = scenario.start_period
    return labels[t] if 0 <= t < len(labels) else f"t{t}"


def variant_payouts(hv: HedgeValue) -> dict[str, dict[str, float]]:
    """Per variant other than the unhedged one: outcome -> unhedged loss minus its loss.

    The hedged plan's payouts are the report's own ``payout_usd``; the others' are
    computed from the outcomes the same way (negative: the variant loses more).
    """
    unhedged = next((v for v in hv.variants if v.name == UNHEDGED), None)
    base = {o.scenario: o.loss_usd for o in unhedged.outcomes} if unhedged else {}
    out: dict[str, dict[str, float]] = {}
    for v in payout_variants(hv):
        if v.name == HEDGED:
            out[v.name] = dict(hv.payout_usd)
        else:
            out[v.name] = {
                o.scenario: base[o.scenario] - o.loss_usd for o in v.outcomes if o.scenario in base
            }
    return out


@dataclass(frozen=True)
class HedgeRow:
    """One outcome (a scenario, ``expected`` or ``cvar95``) across the plan variants."""

    key: str
    aggregate: bool  # True for expected / cvar95, False for a scenario
    loss_usd: dict[str, float]  # variant -> loss
    payout_usd: dict[str, float]  # variant (other than unhedged) -> payout


def hedge_rows(report: StressReport) -> list[HedgeRow]:
    """The outcomes of the hedge value, scenarios first (report order), then aggregates."""
    hv = report.hedge_value
    if hv is None:
        return []
    outcomes = [o.scenario for v in hv.variants for o in v.outcomes]
    keys = list(dict.fromkeys([*outcomes, *hv.payout_usd]))  # first seen, no repeats
    scenarios = {s.name for s in report.scenarios}
    keys.sort(key=lambda k: k not in scenarios)  # stable: scenarios, then aggregates
    losses = {v.name: {o.scenario: o.loss_usd for o in v.outcomes} for v in hv.variants}
    payouts = variant_payouts(hv)
    return [
        HedgeRow(
            key=k,
            aggregate=k not in scenarios,
            loss_usd={v: by[k] for v, by in losses.items() if k in by},
            payout_usd={v: by[k] for v, by in payouts.items() if k in by},
        )
        for k in keys
    ]


def payout_variants(hv: HedgeValue) -> list[PlanVariant]:
    """The variants whose payout against the unhedged plan is reported, in report order."""
    return [v for v in hv.variants if v.name != UNHEDGED]


# ---------------------------------------------------------------------------
# the summary


def render_stress_summary(report: StressReport, console: Console) -> None:
    """Print the summary of ``report`` to ``console``."""
    blocks: list[RenderableType | None] = [
        _header(report),
        _scenarios(report, console),
        _risk(report),
        _hedge_value(report, console),
        _hedge_text(report),
        _notes(report),
    ]
    for i, block in enumerate(b for b in blocks if b is not None):
        if i:
            console.print()
        console.print(block)


def _header(report: StressReport) -> Text:
    """Line one: fleet · stress · scenarios · horizon. Line two (dim): plan cost, worst."""
    n = len(report.scenarios)
    periods = len(report.horizon_labels)
    line = Text()
    line.append(report.fleet, style="bold")
    line.append(" · stress · ")
    line.append(count(n, "scenario"), style="bold cyan")
    line.append(f" over {label_span(report.horizon_labels)} ({periods} periods)")
    details = [Text(f"plan cost {format_usd(report.plan_cost_usd)}", style="dim")]
    if report.plan_penalty_usd > 0:
        details.append(Text(f"penalty {format_usd(report.plan_penalty_usd)}", style="dim"))
    worst = worst_scenario(report)
    if worst is not None:
        details.append(
            Text(f"worst: {worst.name} serves {format_share(worst.immediate.served_share)}")
        )
    promises = promise_totals(report)
    if promises.broken:
        details.append(
            Text(f"✗ {promises.broken} of {promises.promised} promises broken", style="bold red")
        )
    elif promises.applies:
        details.append(Text(f"✓ all {promises.promised} promises kept", style="green"))
    line.append("\n")
    line.append_text(Text(" · ", style="dim").join(details))
    return line


def _replanned_share(r: Replanned | None) -> Text:
    if r is None:
        return Text("—", "dim")
    text = Text(format_share(r.served_share))
    if r.status != "optimal":
        text.append(f" ({r.status})", style="yellow")
    return text


def _promise_mark(check: PromiseCheck) -> Text:
    if not check.applies:
        return Text("—", "dim")
    if not check.broken:
        return Text("✓", "green")
    mark = Text("✗", "bold red")
    if check.promised > 1:
        mark.append(f" {check.broken}/{check.promised}", style="red")
    return mark


def _scenarios(report: StressReport, console: Console) -> RenderableType:
    if not report.scenarios:
        return Text("no scenarios", style="dim")
    headers = (
        "scenario",
        "served",
        "→ replan",
        "unserved tok",
        "promise",
        "lost chip-h",
        "missed",
        "extra cost",
        "→ replan",
    )
    shown = _most_severe(report.scenarios, MAX_SCENARIOS)
    rows: list[list[RenderableType]] = []
    for s in shown:
        im, check = s.immediate, promise_check(s)
        short = im.served_share < 1 - 1e-9
        rows.append(
            [
                Text(s.name, "red" if check.broken else ""),
                Text(format_share(im.served_share), "yellow" if short else ""),
                _replanned_share(s.replanned),
                format_number(im.unserved_tokens),
                _promise_mark(check),
                format_number(im.lost_chip_hours),
                Text(str(im.missed_deadlines), "red" if im.missed_deadlines else ""),
                format_usd(im.extra_cost_usd),
                format_usd(s.replanned.extra_cost_usd) if s.replanned else Text("—", "dim"),
            ]
        )
    kept = {id(s) for s in shown}
    broken = sum(promise_check(s).broken > 0 for s in report.scenarios if id(s) not in kept)
    hidden = len(report.scenarios) - len(shown)
    what = f"more scenarios ({broken} ✗)" if broken else "more scenarios"
    return _fit(
        console,
        "Scenarios (immediate: the plan as it is · replanned: re-solved once known)",
        headers,
        rows,
        right=(1, 2, 3, 5, 6, 7, 8),
        parts=(("Scenarios: inference", (1, 2, 3, 4)), ("Scenarios: work and cost", (5, 6, 7, 8))),
        caption=f"… and {hidden} {what}, see the report" if hidden > 0 else None,
    )


def _most_severe(scenarios: Sequence[ScenarioResult], cap: int) -> list[ScenarioResult]:
    """At most ``cap`` scenarios, in report order: broken promises first, then the
    lowest served shares."""
    ranked = sorted(
        scenarios, key=lambda s: (not promise_check(s).broken, s.immediate.served_share)
    )
    keep = {id(s) for s in ranked[:cap]}
    return [s for s in scenarios if id(s) in keep]


def _share2(x: float) -> str:
    """A shortfall share: small, so two decimals (``"1.23%"``)."""
    return format_share(x, 2)


def quantile_rows(
    report: StressReport,
) -> list[tuple[str, Quantiles, Callable[[float], str]]]:
    """The risk quantiles worth a row, with how to format them (shared with the report)."""
    risk = report.risk
    if risk is None:
        return []
    return [
        ("shortfall share", risk.shortfall_share, _share2),
        ("extra cost", risk.extra_cost_usd, format_usd),
        ("unserved tokens", risk.unserved_tokens, format_number),
        ("lost chip-hours", risk.lost_chip_hours, format_number),
    ]


def _risk(report: StressReport) -> Table | None:
    risk = report.risk
    if risk is None:
        return None
    table = compact_table(
        f"Risk (Monte Carlo: {risk.samples:,} samples, seed {risk.seed},"
        f" {risk.workers} workers, {risk.seconds:.1f} s)",
        "",
        "P50",
        "P95",
        "P99",
        "CVaR95",
        "mean",
        right=(1, 2, 3, 4, 5),
    )
    for name, q, fmt in quantile_rows(report):
        table.add_row(
            Text(name), fmt(q.p50), fmt(q.p95), fmt(q.p99), Text(fmt(q.cvar95), "bold"), fmt(q.mean)
        )
    table.caption = (
        f"expected unserved tokens {format_number(risk.unserved_tokens.mean)}"
        f" · missed deadlines per sample {risk.missed_deadlines_mean:.2g}\n"
        f"in 95% of samples every period serves ≥ {format_share(risk.worst_period_share_p5)}"
    )
    return table


def _hedge_value(report: StressReport, console: Console) -> RenderableType | None:
    hv = report.hedge_value
    if hv is None or not hv.variants:
        return None
    payers = payout_variants(hv)
    headers = ("", *(v.name for v in hv.variants), *(f"payout {v.name}" for v in payers))
    blank = [""] * len(payers)
    rows: list[list[RenderableType]] = [
        [Text("cost"), *(format_usd(v.cost_usd) for v in hv.variants), *blank],
        [Text("premium"), *(format_usd(v.premium_usd) for v in hv.variants), *blank],
    ]
    outcomes = hedge_rows(report)
    scenario_rows = [r for r in outcomes if not r.aggregate]
    for r in scenario_rows[:MAX_HEDGE_SCENARIOS] + [r for r in outcomes if r.aggregate]:
        losses = [
            format_usd(r.loss_usd[v.name]) if v.name in r.loss_usd else "—" for v in hv.variants
        ]
        payouts = [_payout(r.payout_usd.get(v.name)) for v in payers]
        rows.append([Text(f"loss · {r.key}", "bold" if r.aggregate else ""), *losses, *payouts])
    hidden = len(scenario_rows) - MAX_HEDGE_SCENARIOS
    n = len(hv.variants)
    return _fit(
        console,
        "Hedge value: premium vs payout (loss = shortfall at the fleet's penalty rates)",
        headers,
        rows,
        right=tuple(range(1, len(headers))),
        parts=(
            ("Hedge value: cost, premium and loss", tuple(range(1, 1 + n))),
            ("Hedge value: payout against the unhedged plan", tuple(range(1 + n, len(headers)))),
        ),
        caption=f"… and {hidden} more scenarios" if hidden > 0 else None,
    )


def _fit(
    console: Console,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[RenderableType]],
    right: Sequence[int],
    parts: Sequence[tuple[str, Sequence[int]]],
    caption: str | None,
) -> RenderableType:
    """One table when it fits the console, else one per part (the label column repeated).

    Column 0 labels the rows; a part's table leaves out the rows it has nothing for.
    """

    def build(title: str, columns: Sequence[int], caption: str | None) -> Table:
        table = compact_table(
            title,
            headers[0],
            *(headers[j] for j in columns),
            right=tuple(i + 1 for i, j in enumerate(columns) if j in right),
        )
        table.columns[0].no_wrap = True  # a name is read whole; numbers wrap first
        for row in rows:
            if any(str(row[j]) for j in columns):
                table.add_row(row[0], *(row[j] for j in columns))
        table.caption = caption
        return table

    whole = build(title, range(1, len(headers)), caption)
    unbounded = console.options.update_width(10 * console.width)
    if Measurement.get(console, unbounded, whole).maximum <= console.width:
        return whole
    tables: list[RenderableType] = []
    for i, (part_title, columns) in enumerate(parts):
        if i:
            tables.append(Text(""))
        tables.append(build(part_title, columns, caption if i == len(parts) - 1 else None))
    return Group(*tables)


def _payout(usd: float | None) -> Text:
    if usd is None:
        return Text("—", "dim")
    return Text(format_usd(usd), "green" if usd > 0 else ("red" if usd < 0 else ""))


def _hedge_text(report: StressReport) -> Text | None:
    hv = report.hedge_value
    if hv is None or not hv.text:
        return None
    lines = [Text(t) for t in hv.text[:MAX_HEDGE_TEXT]]
    return bullets("Hedge value", lines, len(hv.text) - MAX_HEDGE_TEXT, "lines (see the report)")


def _notes(report: StressReport) -> Text | None:
    if not report.notes:
        return None
    lines = [Text(n, style="dim") for n in report.notes[:MAX_NOTES]]
    return bullets("Notes", lines, len(report.notes) - MAX_NOTES, "notes (see the report)")
