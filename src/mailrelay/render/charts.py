"""Charts as inline SVG, drawn on the server (no JavaScript): columns for a series over weeks,
bars for labelled rows. Each is an image with its title and description; the page shows the
same numbers as a table. Pure: numbers and texts in, escaped markup out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from babel.dates import format_skeleton
from markupsafe import Markup

from mailrelay.render.localized import babel_locale

WIDTH = 640
INK = "#1d1d1b"
MUTED = "#52525b"
BAR = "#1d4ed8"
#: Characters of a row's label before it is cut short (the table has it whole).
LABEL_CHARS = 26
#: The room (in the chart's units) below each labelled column from which its label may grow
#: on a phone (class "roomy": the page's style enlarges `.x-label` and `.y-label` there).
ROOMY = 110


@dataclass(frozen=True)
class Bar:
    """One column or bar: what it is, its value, and that value as the page writes it."""

    label: str
    value: float
    text: str


def _frame(chart_id: str, title: str, desc: str, height: int, body: list[Markup],
           kind: str = "chart") -> Markup:
    return Markup(
        '<svg class="{kind}" id="{id}" role="img" viewBox="0 0 {width} {height}"'
        ' aria-labelledby="{id}-title {id}-desc" xmlns="http://www.w3.org/2000/svg"'
        ' font-family="system-ui, sans-serif" font-size="13"><title id="{id}-title">{title}'
        '</title><desc id="{id}-desc">{desc}</desc>{body}</svg>',
    ).format(kind=kind, id=chart_id, width=WIDTH, height=height, title=title, desc=desc,
             body=Markup("").join(body))


# The shapes a chart has hundreds of (52 weeks, 4 charts) are written with Markup's % (each
# value escaped as by .format, and 7x faster: 13 ms → 5 ms for a 52-week dashboard).
def _text(x: float, y: float, text: str, anchor: str = "start", kind: str = "") -> Markup:
    kind_attr = Markup(' class="%s"') % kind if kind else ""
    return Markup('<text%s x="%.1f" y="%.1f" text-anchor="%s" fill="%s">%s</text>') % (
        kind_attr, x, y, anchor, INK, text)


def _rect(x: float, y: float, width: float, height: float) -> Markup:
    return Markup('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>') % (
        x, y, width, height, BAR)


def _scale(bars: Sequence[Bar], maximum: float | None) -> float:
    top = max([maximum or 0.0, *(bar.value for bar in bars)])
    return top if top > 0 else 1.0


def columns(chart_id: str, title: str, desc: str, bars: Sequence[Bar],
            maximum: float | None = None, top_text: str | None = None,
            every: int | None = None) -> Markup:
    """A column per bar (a week or a day each), labelled below every `every` columns (by
    default every few, so that at most 8 labels show and never overlap); `maximum` fixes the
    scale (5 for stars, 100 for a percentage). Labels with room to grow make the chart
    "roomy" (see ROOMY)."""
    height, left, bottom, top = 220, 60, 32, 12
    scale = _scale(bars, maximum)
    plot_width, plot_height = WIDTH - left - 8, height - top - bottom
    step = plot_width / max(1, len(bars))
    every = every or max(1, math.ceil(len(bars) / 8))
    parts = [
        Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>').format(
            left, top + plot_height, WIDTH - 8, top + plot_height, MUTED),
        _text(left - 6, top + 10, top_text or _number(scale), "end", "y-label"),
        _text(left - 6, top + plot_height, "0", "end", "y-label"),
    ]
    for n, bar in enumerate(bars):
        h = plot_height * max(0.0, bar.value) / scale
        x = left + n * step + step * 0.15
        parts.append(_rect(x, top + plot_height - h, step * 0.7, h))
        if n % every == 0:
            centre = x + step * 0.35
            parts.append(  # the last labels end at the edge rather than run past it
                _text(centre, height - 8, bar.label, "middle", "x-label") if centre < WIDTH - 60
                else _text(WIDTH - 2, height - 8, bar.label, "end", "x-label"))
    return _frame(chart_id, title, desc, height, parts,
                  "chart roomy" if step * every >= ROOMY else "chart")


def bars(chart_id: str, title: str, desc: str, rows: Sequence[Bar],
         maximum: float | None = None) -> Markup:
    """A horizontal bar per row, its label on the left and its value after the bar."""
    row_height, label_width, value_width = 30, 220, 70
    height = max(1, len(rows)) * row_height + 8
    scale = _scale(rows, maximum)
    room = WIDTH - label_width - value_width
    parts = []
    for n, row in enumerate(rows):
        y = 4 + n * row_height
        w = room * max(0.0, row.value) / scale
        label = row.label if len(row.label) <= LABEL_CHARS else row.label[:LABEL_CHARS - 1] + "…"
        parts += [_text(label_width - 8, y + 19, label, "end"),
                  _rect(label_width, y + 4, w, row_height - 8),
                  _text(label_width + w + 6, y + 19, row.text)]
    return _frame(chart_id, title, desc, height, parts)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def month_day(when: date, locale: str | None) -> str:
    """A column's short date, the locale's way: "Dec 7", "7. Dez.", "7 gru"."""
    return str(format_skeleton("MMMd", when, locale=babel_locale(locale)))


def month_name(when: date, locale: str | None) -> str:
    """A month on its own, the locale's way and capitalised: "November 2026", "Marraskuu 2026"."""
    text = str(format_skeleton("yMMMM", when, locale=babel_locale(locale)))
    return text[:1].upper() + text[1:]
