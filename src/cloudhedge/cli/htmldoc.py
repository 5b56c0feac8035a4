"""Building blocks of the self-contained HTML pages (the plan and the stress reports).

One stylesheet (:data:`CSS`, inlined by :func:`page`) and small builders for the parts
every report is made of: KPI tiles, a navigation bar, sections, paragraphs, tables and
chart figures. Every text goes through :func:`esc` (:func:`html.escape`), so a name
read from a document never becomes markup; nothing refers to anything outside the page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "CSS",
    "Cell",
    "CellLike",
    "esc",
    "figure",
    "html_table",
    "kpi_tiles",
    "more",
    "nav",
    "page",
    "para",
    "section",
]

CSS = """
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
.badge.optimal, .badge.good { background: var(--green); }
.badge.feasible { background: var(--amber); }
.badge.infeasible, .badge.bad { background: var(--red); }
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


@dataclass(frozen=True)
class Cell:
    """A table cell: text (escaped on output) with an optional CSS class."""

    text: str
    cls: str = ""


CellLike = str | Cell


def esc(text: object) -> str:
    """``text`` as HTML text or attribute value (quotes escaped too)."""
    return html.escape(str(text), quote=True)


def _cell(value: CellLike, numeric: bool) -> str:
    cell = value if isinstance(value, Cell) else Cell(value)
    classes = " ".join(c for c in (("num" if numeric else ""), cell.cls) if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{esc(cell.text)}</td>"


def html_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[CellLike]],
    numeric: Iterable[int] = (),
    total: Sequence[CellLike] | None = None,
    empty: str = "none",
) -> str:
    """A scrollable table; columns in ``numeric`` are right-aligned.

    ``total`` is a last, bold row; without rows the table is the paragraph ``empty``.
    """
    nums = set(numeric)
    body = [
        "<tr>" + "".join(_cell(v, i in nums) for i, v in enumerate(row)) + "</tr>" for row in rows
    ]
    if not body:
        return f'<p class="empty">{esc(empty)}</p>'
    if total is not None:
        cells = "".join(_cell(v, i in nums) for i, v in enumerate(total))
        body.append(f'<tr class="total">{cells}</tr>')
    head = "".join(
        f'<th class="num">{esc(h)}</th>' if i in nums else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    rows_html = "\n".join(body)
    return (
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{rows_html}\n</tbody></table></div>"
    )


def section(section_id: str, title: str, *parts: str) -> str:
    """A ``<section>`` with an ``<h2>`` title; empty parts are skipped."""
    inner = "\n".join(p for p in parts if p)
    return f'<section id="{esc(section_id)}">\n<h2>{esc(title)}</h2>\n{inner}\n</section>'


def para(text: str, cls: str = "") -> str:
    """A paragraph of escaped text with an optional CSS class."""
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{esc(text)}</p>"


def more(hidden: int, what: str) -> str:
    """``… and N more WHAT`` under a capped table, or nothing when nothing was hidden."""
    return para(f"… and {hidden} more {what}", "muted") if hidden > 0 else ""


def figure(chart_id: str, caption: str, svg: str | None, empty: str) -> str:
    """A chart as a ``<figure id=chart_id>``; the paragraph ``empty`` when ``svg`` is None."""
    body = svg if svg is not None else f'<p class="empty">{esc(empty)}</p>'
    return (
        f'<figure id="{esc(chart_id)}">\n{body}\n<figcaption>{esc(caption)}</figcaption>\n</figure>'
    )


def kpi_tiles(kpis: Iterable[tuple[str, str]]) -> str:
    """The headline figures as a grid of labelled tiles."""
    tiles = "\n".join(
        f'<div class="kpi"><div class="label">{esc(k)}</div><div class="value">{esc(v)}</div></div>'
        for k, v in kpis
    )
    return f'<div class="kpis">\n{tiles}\n</div>'


def nav(links: Iterable[tuple[str, str]]) -> str:
    """Links to the sections of the page: ``(anchor, text)`` pairs."""
    items = "\n".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in links)
    return f"<nav>{items}</nav>"


def page(title: str, header: str, body: str) -> str:
    """The whole document: inline stylesheet, ``header`` (HTML), then ``body`` (HTML)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="cloudhedge">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{header}\n\n{body}\n</main>\n</body>\n</html>\n"
    )
