"""Charts of a plan as inline SVG strings, for the HTML report.

Each chart function (``*_svg``) takes a :class:`~cloudhedge.core.plan.Plan` and returns the
``<svg>`` element as a string, or ``None`` when the plan has nothing to draw (an
infeasible plan, a fleet without contracts, ...). The SVG is self-contained: glyphs
are paths (no fonts needed), and every ``id`` inside it is prefixed with the chart's
name so that several charts can live in one HTML document.

Figures are built with the object-oriented API (:class:`matplotlib.figure.Figure`
rendered by the SVG canvas), never through ``pyplot``: no GUI backend is selected,
no global figure registry is touched, so nothing needs closing and nothing leaks
when a long-lived process renders many reports. Output is deterministic (fixed
hash salt, no date in the metadata).

:func:`draw_svg` (the house style around a drawing function), :func:`period_axis`,
:func:`legend_right`, :func:`colours` and :func:`compact_axis` are shared with the
stress charts (:mod:`cloudhedge.cli.stress_charts`).
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable, Sequence

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, LinearSegmentedColormap, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from cloudhedge.cli.summary import format_number, survivability_by_domain
from cloudhedge.core.plan import Concentration, ContractUse, Plan

__all__ = [
    "contracts_svg",
    "cost_by_provider_svg",
    "share_svg",
    "survivability_svg",
]

# Brand-ish colours, so azure is always blue and nvidia always green across charts.
PROVIDER_COLOURS = {
    "azure": "#0078d4",
    "aws": "#ff9900",
    "gcp": "#34a853",
    "oci": "#c74634",
    "coreweave": "#6c4ee0",
}
VENDOR_COLOURS = {
    "nvidia": "#76b900",
    "aws": "#ff9900",
    "google": "#4285f4",
    "amd": "#ed1c24",
}
# Tableau 10, for names without a known colour
_FALLBACK = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1")
_MAX_CONTRACT_PANELS = 12
_KIND_ORDER = {"provider": 0, "vendor": 1, "region": 2}


def colours(names: Sequence[str], known: dict[str, str]) -> dict[str, str]:
    """A stable colour per name: the known one, else the next unused fallback."""
    out: dict[str, str] = {}
    spare = [c for c in _FALLBACK if c not in known.values()]
    for i, name in enumerate(n for n in names if n not in known):
        out[name] = spare[i % len(spare)]
    return {n: known.get(n, out.get(n, "#888888")) for n in names}


def compact_axis(x: float, _pos: int | None = None) -> str:
    """Tick label in human units: ``1.2e9`` -> ``"1.2 B"``, ``5e5`` -> ``"500 K"``."""
    return format_number(x).replace(".0 ", " ") if x else "0"


# ---------------------------------------------------------------------------
# figure -> inline svg


def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    fig.set_facecolor("white")
    return fig


def to_svg(fig: Figure, chart_id: str, title: str) -> str:
    """Render ``fig`` to an inline ``<svg>`` with ids namespaced by ``chart_id``."""
    buf = io.StringIO()
    # the salt makes the hashed ids depend on the chart, and the output reproducible
    with rc_context({"svg.hashsalt": chart_id, "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML declaration and the DOCTYPE
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{chart_id}-\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{chart_id}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{chart_id}-\1)", svg)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{html.escape(title)}" ', 1)
    return svg.strip()


def percent_colorbar(fig: Figure, image: ScalarMappable, ax: Axes, label: str) -> None:
    """A colour bar beside ``ax`` for ``image``, its ticks in percent."""
    bar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.01)
    bar.set_label(label)
    bar.formatter = PercentFormatter(1.0, decimals=0)
    bar.update_ticks()


def period_axis(ax: Axes, labels: Sequence[str], max_ticks: int = 12) -> None:
    """Period labels on the x axis, thinned to at most ``max_ticks``."""
    n = len(labels)
    step = max(1, math.ceil(n / max_ticks))
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=45, ha="right")
    ax.set_xlim(-0.6, n - 0.4)


def legend_right(ax: Axes) -> None:
    """The legend outside the axes, to their right."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)


def draw_svg(
    chart_id: str, title: str, size: tuple[float, float], draw: Callable[[Figure], None]
) -> str:
    """A ``size`` (inches) figure filled by ``draw`` in the house style, as inline SVG."""
    with rc_context(
        {
            "font.size": 9.0,
            "axes.titlesize": 10.0,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.frameon": False,
            "svg.fonttype": "path",
        }
    ):
        fig = _figure(*size)
        draw(fig)
        return to_svg(fig, chart_id, title)


# ---------------------------------------------------------------------------
# the charts


def cost_by_provider_svg(plan: Plan, chart_id: str = "chart-cost-by-provider") -> str | None:
    """Cost per period, stacked by provider (from ``cost.by_period_provider``)."""
    series = {k: v for k, v in plan.cost.by_period_provider.items() if any(x > 0 for x in v)}
    if not series:
        return None
    labels = plan.horizon.labels
    n = min(len(labels), *(len(v) for v in series.values()))
    names = sorted(series, key=lambda k: -sum(series[k]))
    colour = colours(names, PROVIDER_COLOURS)

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        bottom = np.zeros(n)
        x = np.arange(n)
        for name in names:
            values = np.asarray(series[name][:n], dtype=float)
            ax.bar(x, values, bottom=bottom, label=name, color=colour[name], width=0.8)
            bottom += values
        ax.yaxis.set_major_formatter(FuncFormatter(compact_axis))
        ax.set_ylabel("USD per period")
        ax.grid(axis="x", visible=False)
        period_axis(ax, labels[:n])
        legend_right(ax)

    return draw_svg(chart_id, "cost per period by provider", (9.0, 3.6), draw)


def share_svg(plan: Plan, kind: str, chart_id: str) -> str | None:
    """Chip share per period of each domain of ``kind``, caps as dashed lines."""
    rows = sorted(
        (c for c in plan.concentration if c.kind == kind and c.share_by_period),
        key=lambda c: (-c.max_share, c.name),
    )
    if not rows:
        return None
    labels = plan.horizon.labels
    known = VENDOR_COLOURS if kind == "vendor" else PROVIDER_COLOURS
    colour = colours([c.name for c in rows], known)

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        for c in rows:
            n = min(len(labels), len(c.share_by_period))
            ax.plot(
                range(n),
                c.share_by_period[:n],
                marker="o",
                markersize=3,
                color=colour[c.name],
                label=c.name,
            )
        _caps(ax, rows, colour)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        top = max([c.max_share for c in rows] + [c.cap or 0.0 for c in rows])
        ax.set_ylim(0, min(1.05, top * 1.15 + 0.02))
        ax.set_ylabel(f"share of chips in use ({kind})")
        period_axis(ax, labels)
        legend_right(ax)

    return draw_svg(chart_id, f"chip share by {kind}", (9.0, 3.4), draw)


def _caps(ax: Axes, rows: Sequence[Concentration], colour: dict[str, str]) -> None:
    capped = [c for c in rows if c.cap is not None]
    if not capped:
        return
    values = {c.cap for c in capped}
    if len(values) == 1 and len(capped) == len(rows):  # one cap for every domain
        cap = capped[0].cap or 0.0
        ax.axhline(cap, color="#444444", linestyle="--", linewidth=1.2, label=f"cap {cap:.0%}")
        return
    for c in capped:
        cap = c.cap or 0.0
        ax.axhline(
            cap,
            color=colour[c.name],
            linestyle="--",
            linewidth=1.2,
            label=f"cap {c.name} {cap:.0%}",
        )


def contracts_svg(plan: Plan, chart_id: str = "chart-contracts") -> str | None:
    """Small multiples: committed vs used chips per contract over time."""
    contracts = sorted(plan.contracts, key=lambda c: (-c.fixed_cost_usd, c.name))
    contracts = contracts[:_MAX_CONTRACT_PANELS]
    if not contracts:
        return None
    labels = plan.horizon.labels
    cols = min(3, len(contracts))
    rows = math.ceil(len(contracts) / cols)

    def draw(fig: Figure) -> None:
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
        for i, ax in enumerate(axes.flat):
            if i >= len(contracts):
                ax.set_visible(False)
                continue
            _contract_panel(ax, contracts[i], labels, first=(i == 0))
            if i >= len(contracts) - cols:  # bottom row of each column
                period_axis(ax, labels, max_ticks=6)
                ax.tick_params(labelbottom=True)

    height = 0.6 + 2.3 * rows
    return draw_svg(chart_id, "contract utilisation", (3.6 * cols + 0.6, height), draw)


def _contract_panel(ax: Axes, c: ContractUse, labels: Sequence[str], first: bool) -> None:
    n = min(len(labels), len(c.committed_chips), len(c.used_chips))
    x = np.arange(n)
    committed = np.asarray(c.committed_chips[:n], dtype=float)
    used = np.asarray(c.used_chips[:n], dtype=float)
    colour = PROVIDER_COLOURS.get(c.provider, "#4e79a7")
    ax.fill_between(x, 0, committed, step="mid", color="#cccccc", alpha=0.6, label="committed")
    ax.step(x, committed, where="mid", color="#777777", linewidth=1.0)
    ax.plot(x, used, color=colour, marker="o", markersize=2.5, linewidth=1.6, label="used")
    over = used > committed + 1e-9
    if over.any():
        ax.plot(x[over], used[over], "^", color="#d62728", markersize=4, label="overage")
    util = [u for u in c.utilisation if u is not None]
    avg = f" · {sum(util) / len(util):.0%} used" if util else ""
    ax.set_title(f"{c.name} ({c.provider}, {c.unit}){avg}", fontsize=9, loc="left")
    ax.yaxis.set_major_formatter(FuncFormatter(compact_axis))
    ax.set_ylim(bottom=0)
    if first:
        ax.legend(fontsize=7, loc="lower left")


def _survival_cmap() -> Colormap:
    """Red below alpha, green at or above; the break sits at 0.5 of the normed scale."""
    cmap = LinearSegmentedColormap.from_list(
        "survival",
        [(0.0, "#b2182b"), (0.4999, "#f4a582"), (0.5, "#d9f0d3"), (1.0, "#1b7837")],
    )
    return cmap.with_extremes(bad="#eeeeee")


def survivability_svg(plan: Plan, chart_id: str = "chart-survivability") -> str | None:
    """Heat map of the worst kept share: rows service/jurisdiction, columns kind:domain."""
    cells = plan.survivability
    if not cells:
        return None
    columns = [(d.kind, d.domain) for d in survivability_by_domain(cells)]
    columns.sort(key=lambda kd: (_KIND_ORDER.get(kd[0], 9), kd[0], kd[1]))
    rows = sorted({(c.service, c.jurisdiction) for c in cells})
    col_ix = {kd: j for j, kd in enumerate(columns)}
    row_ix = {sj: i for i, sj in enumerate(rows)}
    kept = np.full((len(rows), len(columns)), np.nan)
    alpha = np.full_like(kept, np.nan)
    for c in cells:
        i, j = row_ix[(c.service, c.jurisdiction)], col_ix[(c.kind, c.domain)]
        kept[i, j], alpha[i, j] = c.kept_share_min, c.alpha
    margin = kept - alpha
    finite = margin[np.isfinite(margin)]
    norm = TwoSlopeNorm(
        vcenter=0.0,
        vmin=min(float(finite.min()), -0.05),
        vmax=max(float(finite.max()), 0.05),
    )
    # alpha in the row label when one alpha holds for the whole row, else in each cell
    row_alpha: list[float | None] = []
    for i in range(len(rows)):
        values = {round(float(a), 6) for a in alpha[i] if np.isfinite(a)}
        row_alpha.append(values.pop() if len(values) == 1 else None)
    row_labels = [
        f"{s} / {j}" + (f"  (α {a:.0%})" if a is not None else "")
        for (s, j), a in zip(rows, row_alpha, strict=True)
    ]

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        image = ax.pcolormesh(
            np.ma.masked_invalid(margin),
            cmap=_survival_cmap(),
            norm=norm,
            edgecolors="white",
            linewidth=2.0,
        )
        ax.invert_yaxis()
        ax.grid(False)
        centres = np.arange(len(columns)) + 0.5
        ax.set_xticks(centres, [f"{k}:{d}" for k, d in columns], rotation=45, ha="right")
        ax.set_yticks(np.arange(len(rows)) + 0.5, row_labels)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        for i in range(len(rows)):
            for j in range(len(columns)):
                if not np.isfinite(kept[i, j]):
                    continue
                ok = margin[i, j] >= -1e-9
                text = f"{kept[i, j]:.0%}" + ("" if ok else " ✗")
                if row_alpha[i] is None:
                    text += f"\nα {alpha[i, j]:.0%}"
                ax.text(
                    j + 0.5,
                    i + 0.5,
                    text,
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    fontweight="normal" if ok else "bold",
                )
        percent_colorbar(fig, image, ax, "kept share − α")

    # sized so that, scaled to a ~1100 px wide page, the cell text stays readable
    width = max(5.5, 2.6 + 0.44 * len(columns))
    height = max(2.2, 1.4 + 0.3 * len(rows))
    return draw_svg(
        chart_id, "survivability: share kept after losing one domain", (width, height), draw
    )
