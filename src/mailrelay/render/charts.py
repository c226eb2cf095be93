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
from markupsafe import Markup, escape

from mailrelay.render.localized import babel_locale

WIDTH = 640
INK = "#1d1d1b"
MUTED = "#52525b"
BAR = "#1d4ed8"
#: Characters of a row's label before it is cut short (the table has it whole).
LABEL_CHARS = 26


@dataclass(frozen=True)
class Bar:
    """One column or bar: what it is, its value, and that value as the page writes it."""

    label: str
    value: float
    text: str


def _frame(chart_id: str, title: str, desc: str, height: int, body: str) -> Markup:
    return Markup(
        f'<svg class="chart" id="{escape(chart_id)}" role="img" viewBox="0 0 {WIDTH} {height}"'
        f' aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc"'
        f' xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif"'
        f' font-size="13"><title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>{body}</svg>')


def _scale(bars: Sequence[Bar], maximum: float | None) -> float:
    top = max([maximum or 0.0, *(bar.value for bar in bars)])
    return top if top > 0 else 1.0


def columns(chart_id: str, title: str, desc: str, bars: Sequence[Bar],
            maximum: float | None = None, top_text: str | None = None) -> Markup:
    """A column per bar (a week each), labelled below every few columns so labels never
    overlap; `maximum` fixes the scale (5 for stars, 100 for a percentage)."""
    height, left, bottom, top = 220, 44, 32, 12
    scale = _scale(bars, maximum)
    plot_width, plot_height = WIDTH - left - 8, height - top - bottom
    step = plot_width / max(1, len(bars))
    every = max(1, math.ceil(len(bars) / 8))
    parts = [
        f'<line x1="{left}" y1="{top + plot_height}" x2="{WIDTH - 8}" y2="{top + plot_height}"'
        f' stroke="{MUTED}"/>',
        f'<text x="{left - 6}" y="{top + 10}" text-anchor="end" fill="{INK}">'
        f'{escape(top_text or _number(scale))}</text>',
        f'<text x="{left - 6}" y="{top + plot_height}" text-anchor="end" fill="{INK}">0</text>',
    ]
    for n, bar in enumerate(bars):
        h = plot_height * max(0.0, bar.value) / scale
        x = left + n * step + step * 0.15
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_height - h:.1f}"'
                     f' width="{step * 0.7:.1f}" height="{h:.1f}" fill="{BAR}"/>')
        if n % every == 0:
            parts.append(f'<text x="{x + step * 0.35:.1f}" y="{height - 10}"'
                         f' text-anchor="middle" fill="{INK}">{escape(bar.label)}</text>')
    return _frame(chart_id, title, desc, height, "".join(parts))


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
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 19}" text-anchor="end" fill="{INK}">'
            f'{escape(label)}</text><rect x="{label_width}" y="{y + 4}" width="{w:.1f}"'
            f' height="{row_height - 8}" fill="{BAR}"/><text x="{label_width + w + 6:.1f}"'
            f' y="{y + 19}" fill="{INK}">{escape(row.text)}</text>')
    return _frame(chart_id, title, desc, height, "".join(parts))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def month_day(when: date, locale: str | None) -> str:
    """A column's short date, the locale's way: "Dec 7", "7. Dez.", "7 gru"."""
    return str(format_skeleton("MMMd", when, locale=babel_locale(locale)))
