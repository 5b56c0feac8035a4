"""Charts of a stress report as inline SVG strings, for the stress HTML report.

Each ``*_svg`` function takes a :class:`~cloudhedge.core.stress_report.StressReport`
and returns the ``<svg>`` element as a string, or ``None`` when the report has nothing
to draw (no inference service, no N-1 scenario, no risk run, no hedge value). They are
drawn in the plan charts' house style, through the same self-contained SVG rendering
(:func:`cloudhedge.cli.charts.draw_svg`: glyphs as paths, ids namespaced by chart).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, PercentFormatter

from cloudhedge.cli.charts import (
    colours,
    compact_axis,
    draw_svg,
    legend_right,
    percent_colorbar,
    period_axis,
)
from cloudhedge.cli.stress_summary import hedge_rows, n1_scenarios, payout_variants
from cloudhedge.cli.summary import format_share
from cloudhedge.core.stress_report import ScenarioResult, StressReport
from cloudhedge.stress.state import CRITICALITY_RANK

__all__ = ["hedge_value_svg", "n1_matrix_svg", "risk_svg", "served_svg"]

MAX_SERVED_SCENARIOS = 8
MAX_SERVICE_PANELS = 5
MAX_PAYOUT_SCENARIOS = 16

Floats = npt.NDArray[np.float64]
_CRITICALITY_ORDER = {str(c): rank for c, rank in CRITICALITY_RANK.items()}
_DEMAND = "#444444"
_BROKEN = "#cf222e"
_VARIANT_COLOURS = {"hedged": "#4e79a7", "single-provider": "#f28e2b", "unhedged": "#888888"}


# ---------------------------------------------------------------------------
# served demand over time


def _worst_scenarios(report: StressReport, cap: int) -> list[ScenarioResult]:
    """Scenarios with inference, the ``cap`` lowest served shares, in report order."""
    with_services = [s for s in report.scenarios if s.immediate.services]
    worst = {id(s) for s in sorted(with_services, key=lambda s: s.immediate.served_share)[:cap]}
    return [s for s in with_services if id(s) in worst]


def _service_series(scenario: ScenarioResult, n: int) -> dict[str, tuple[Floats, Floats]]:
    """Per service (summed over jurisdictions): demand and served tokens/s per period."""
    out: dict[str, tuple[Floats, Floats]] = {}
    for si in scenario.immediate.services:
        demand, served = out.setdefault(si.service, (np.zeros(n), np.zeros(n)))
        k = min(n, len(si.demand_tokens_per_s), len(si.served_tokens_per_s))
        demand[:k] += si.demand_tokens_per_s[:k]
        served[:k] += si.served_tokens_per_s[:k]
    return out


def _note(fig: Figure, text: str) -> None:
    """A small grey line above the axes (e.g. what a row cap left out)."""
    fig.suptitle(text, x=0.01, ha="left", fontsize=8, color="#656d76")


def served_svg(report: StressReport, chart_id: str = "chart-served") -> str | None:
    """Served tokens/s per period under each scenario (solid) against demand (dashed).

    One panel for all services together, then one per service (the largest first,
    at most :data:`MAX_SERVICE_PANELS`); the :data:`MAX_SERVED_SCENARIOS` scenarios
    that serve the least are drawn. Demand is dashed: grey for the demand most
    scenarios share, in the scenario's colour for one that differs (a demand surge).
    """
    scenarios = _worst_scenarios(report, MAX_SERVED_SCENARIOS)
    labels = report.horizon_labels
    n = len(labels)
    if not scenarios or n == 0:
        return None
    series = {s.name: _service_series(s, n) for s in scenarios}
    totals: dict[str, float] = defaultdict(float)
    for by_service in series.values():
        for name, (demand, _) in by_service.items():
            totals[name] = max(totals[name], float(demand.sum()))
    services = sorted(totals, key=lambda k: (-totals[k], k))
    panels: list[tuple[str, list[str]]] = [("all services", services)]
    if len(services) > 1:
        panels += [(name, [name]) for name in services[:MAX_SERVICE_PANELS]]
    colour = colours([s.name for s in scenarios], {})
    hidden = len([s for s in report.scenarios if s.immediate.services]) - len(scenarios)
    cols = 1 if len(panels) == 1 else 2
    rows = math.ceil(len(panels) / cols)

    def total(name: str, members: Sequence[str], which: int) -> Floats:
        out = np.zeros(n)
        for m in members:
            if m in series[name]:
                out += series[name][m][which]
        return out

    def panel(ax: Axes, title: str, members: Sequence[str]) -> None:
        demands = [total(s.name, members, 0) for s in scenarios]
        # the demand most scenarios share, in grey; a different one (a surge) in its colour
        common = max(demands, key=lambda d: sum(np.allclose(d, e) for e in demands))
        x = np.arange(n)
        ax.plot(x, common, color=_DEMAND, linestyle="--", linewidth=1.2, label="demand")
        for s, demand in zip(scenarios, demands, strict=True):
            ax.plot(
                x,
                total(s.name, members, 1),
                color=colour[s.name],
                marker="o",
                markersize=2.5,
                linewidth=1.5,
                label=s.name,
            )
            if not np.allclose(demand, common):
                ax.plot(x, demand, color=colour[s.name], linestyle="--", linewidth=1.0, alpha=0.8)
        ax.set_title(title, fontsize=9, loc="left")
        ax.yaxis.set_major_formatter(FuncFormatter(compact_axis))
        ax.set_ylim(bottom=0)
        ax.set_ylabel("tokens/s")

    def draw(fig: Figure) -> None:
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
        for i, ax in enumerate(axes.flat):
            if i >= len(panels):
                ax.set_visible(False)
                continue
            panel(ax, *panels[i])
            if i >= len(panels) - cols:  # bottom row of each column
                period_axis(ax, labels, max_ticks=12 // cols)
                ax.tick_params(labelbottom=True)
        handles, names = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside right upper", fontsize=8)
        if hidden > 0:
            _note(
                fig,
                f"the {len(scenarios)} scenarios that serve the least, "
                f"of {len(scenarios) + hidden}",
            )

    width = 10.0 if cols == 2 else 9.0
    return draw_svg(chart_id, "served demand per scenario", (width, 0.6 + 2.6 * rows), draw)


# ---------------------------------------------------------------------------
# the N-1 matrix


def _served_cmap() -> Colormap:
    cmap = LinearSegmentedColormap.from_list(
        "served", [(0.0, "#b2182b"), (0.5, "#f4a582"), (0.8, "#fee08b"), (1.0, "#1b7837")]
    )
    return cmap.with_extremes(bad="#eeeeee")


def n1_matrix_svg(report: StressReport, chart_id: str = "chart-n1") -> str | None:
    """Heat map of the worst served share: rows service/jurisdiction, columns the domain lost.

    A cell is the immediate answer's ``served_share_min``; where the plan promised a
    share for that domain, the promise is printed under it, and a broken promise is
    framed in red and marked ✗.
    """
    scenarios = n1_scenarios(report)
    if not any(s.immediate.services for s in scenarios):
        return None
    domains = [s.domain or "" for s in scenarios]
    columns = [
        d if domains.count(d) == 1 else f"{d}\n{s.name}"
        for d, s in zip(domains, scenarios, strict=True)
    ]
    criticality: dict[tuple[str, str], str] = {}
    for s in scenarios:
        for si in s.immediate.services:
            criticality[(si.service, si.jurisdiction)] = si.criticality
    rows = sorted(criticality, key=lambda k: (_CRITICALITY_ORDER.get(criticality[k], 9), k))
    row_ix = {k: i for i, k in enumerate(rows)}
    served = np.full((len(rows), len(columns)), np.nan)
    promised = np.full_like(served, np.nan)
    broken = np.zeros(served.shape, dtype=bool)
    for j, s in enumerate(scenarios):
        for si in s.immediate.services:
            i = row_ix[(si.service, si.jurisdiction)]
            served[i, j] = si.served_share_min
            if si.promised_share is not None:
                promised[i, j] = si.promised_share
            broken[i, j] = si.promise_kept is False

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        image = ax.pcolormesh(
            np.ma.masked_invalid(served),
            cmap=_served_cmap(),
            norm=Normalize(0.0, 1.0),
            edgecolors="white",
            linewidth=2.0,
        )
        ax.invert_yaxis()
        ax.grid(False)
        ax.set_xticks(np.arange(len(columns)) + 0.5, columns, rotation=45, ha="right")
        ax.set_yticks(
            np.arange(len(rows)) + 0.5,
            [f"{svc} / {jur}  ({criticality[(svc, jur)]})" for svc, jur in rows],
        )
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        for i in range(len(rows)):
            for j in range(len(columns)):
                if not np.isfinite(served[i, j]):
                    continue
                text = f"{served[i, j]:.0%}"
                if np.isfinite(promised[i, j]):
                    text += f"\n≥{promised[i, j]:.0%} " + ("✗" if broken[i, j] else "✓")
                if broken[i, j]:
                    ax.add_patch(
                        Rectangle(
                            (j + 0.06, i + 0.06),
                            0.88,
                            0.88,
                            fill=False,
                            edgecolor=_BROKEN,
                            linewidth=2.0,
                        )
                    )
                ax.text(
                    j + 0.5,
                    i + 0.5,
                    text,
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    fontweight="bold" if broken[i, j] else "normal",
                )
        percent_colorbar(fig, image, ax, "served share, worst period")

    # sized like the plan's survivability heat map, so the cell text stays readable
    width = max(5.5, 3.2 + 0.44 * len(columns))
    height = max(2.2, 1.6 + 0.34 * len(rows))
    return draw_svg(chart_id, "N-1: share served after losing one domain", (width, height), draw)


# ---------------------------------------------------------------------------
# the risk distribution


def risk_svg(report: StressReport, chart_id: str = "chart-risk") -> str | None:
    """Histogram of the shortfall share over the Monte Carlo samples, P95/P99/CVaR95 marked.

    The count axis is logarithmic when the tallest bin is over a hundred times the
    smallest non-empty one (most samples usually lose nothing).
    """
    risk = report.risk
    if risk is None or not risk.histogram_counts:
        return None
    edges = np.asarray(risk.histogram_edges, dtype=float)
    counts = np.asarray(risk.histogram_counts, dtype=float)
    if len(edges) != len(counts) + 1:
        return None
    q = risk.shortfall_share
    marks = (("P95", q.p95, ":"), ("P99", q.p99, "--"), ("CVaR95", q.cvar95, "-"))
    positive = counts[counts > 0]
    log = positive.size > 0 and positive.max() > 100 * positive.min()

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ax.bar(
            edges[:-1],
            counts,
            width=np.diff(edges),
            align="edge",
            color="#4e79a7",
            edgecolor="white",
            linewidth=0.5,
            log=log,
            label="samples",
        )
        for name, value, style in marks:
            ax.axvline(
                value,
                color=_BROKEN,
                linestyle=style,
                linewidth=1.3,
                label=f"{name} {format_share(value, 2)}",
            )
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("shortfall share (unserved tokens / demanded tokens)")
        ax.set_ylabel("samples" + (" (log scale)" if log else ""))
        ax.grid(axis="x", visible=False)
        legend_right(ax)

    title = f"shortfall share over {risk.samples:,} samples"
    return draw_svg(chart_id, title, (9.0, 3.4), draw)


# ---------------------------------------------------------------------------
# premium vs payout


def hedge_value_svg(report: StressReport, chart_id: str = "chart-hedge-value") -> str | None:
    """Premium against payout of each variant vs the unhedged plan, per outcome.

    Horizontal groups, one per scenario then the aggregates (``expected``,
    ``cvar95``); in each, for the hedged and the single-provider plans, the premium
    (light) and the payout (solid): the loss the variant avoids compared with the
    unhedged plan. Past :data:`MAX_PAYOUT_SCENARIOS` scenarios, those with the largest
    payouts are drawn.
    """
    hv = report.hedge_value
    if hv is None:
        return None
    payers = payout_variants(hv)
    rows = hedge_rows(report)
    if not payers or not rows:
        return None
    scenario_rows = [r for r in rows if not r.aggregate]
    if len(scenario_rows) > MAX_PAYOUT_SCENARIOS:
        biggest = sorted(
            scenario_rows, key=lambda r: -max((abs(p) for p in r.payout_usd.values()), default=0)
        )[:MAX_PAYOUT_SCENARIOS]
        rows = [r for r in rows if r.aggregate or r in biggest]
    colour = colours([v.name for v in payers], _VARIANT_COLOURS)
    bars = [(v, kind) for v in payers for kind in ("premium", "payout")]
    step = 0.8 / len(bars)

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        y = np.arange(len(rows))
        for b, (v, kind) in enumerate(bars):
            if kind == "premium":
                values = [v.premium_usd] * len(rows)
            else:
                values = [r.payout_usd.get(v.name, np.nan) for r in rows]
            ax.barh(
                y - 0.4 + step * (b + 0.5),
                values,
                height=step * 0.92,
                color=colour[v.name],
                alpha=0.35 if kind == "premium" else 1.0,
                edgecolor=colour[v.name],
                label=f"{v.name} {kind}",
            )
        ax.axvline(0.0, color="#444444", linewidth=0.8)
        sizes = [abs(v.premium_usd) for v in payers]
        sizes += [abs(p) for r in rows for p in r.payout_usd.values() if np.isfinite(p)]
        top = max(sizes, default=0.0)
        small = min((x for x in sizes if x > 0), default=top)
        log = top > 0 and top / small > 1e3  # one bar would flatten the others
        if log:
            ax.set_xscale("symlog", linthresh=top * 1e-4)
        ax.set_yticks(y, [r.key for r in rows])
        for tick, r in zip(ax.get_yticklabels(), rows, strict=True):
            if r.aggregate:
                tick.set_fontweight("bold")
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(FuncFormatter(compact_axis))
        ax.set_xlabel("USD (payout: unhedged loss minus the variant's loss)"
                      + ("; symmetric log scale" if log else ""))
        ax.grid(axis="y", visible=False)
        legend_right(ax)
        if len(scenario_rows) > MAX_PAYOUT_SCENARIOS:
            _note(
                fig,
                f"the {MAX_PAYOUT_SCENARIOS} scenarios with the largest payouts, "
                f"of {len(scenario_rows)}",
            )

    title = "premium vs payout against the unhedged plan"
    height = max(2.4, 1.0 + 0.16 * len(bars) * len(rows))
    return draw_svg(chart_id, title, (9.0, height), draw)
