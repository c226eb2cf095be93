"""Listing output for the CLI: table, JSON or CSV over the SPEC's contract fields.

JSON and CSV keep machine formats (ISO 8601 with offset); the table is for people: times as they
read them in the shop's zone, and every cell in full, wrapped rather than cut (issue 12).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

FORMATS = ("table", "json", "csv")
#: A table time: minutes are what people act on; the zone's abbreviation says whose clock.
TABLE_TIME = "%Y-%m-%d %H:%M %Z"
#: Never wrap a column narrower than this (or its header), unless its text is shorter.
MIN_COLUMN = 10
#: A word longer than this (a URL, a Message-ID) may be broken to fit.
MAX_WORD = 40
GAP = "  "


def localize(rows: list[dict[str, Any]], tz_of: Mapping[str, tzinfo], *,
             human: bool = False) -> list[dict[str, Any]]:
    """Show `*_at` times in the row's shop timezone: ISO 8601 with offset (SPEC: CLI), or with
    `human` as people read them (`2026-12-04 14:05 CET`)."""
    out = []
    for row in rows:
        tz = tz_of.get(str(row.get("shop")))
        new = dict(row)
        for key, value in row.items():
            if key.endswith("_at") and isinstance(value, str) and value:
                new[key] = human_time(value, tz) if human else _iso_time(value, tz)
        out.append(new)
    return out


def human_time(iso: str, tz: tzinfo | None) -> str:
    """A stored UTC time as people read it in `tz`: `2026-12-04 14:05 CET`."""
    when = datetime.fromisoformat(iso)
    return (when.astimezone(tz) if tz else when).strftime(TABLE_TIME).rstrip()


def _iso_time(iso: str, tz: tzinfo | None) -> str:
    when = datetime.fromisoformat(iso)
    return (when.astimezone(tz) if tz else when).isoformat(timespec="seconds")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _csv_cell(value: Any) -> str:
    """A list as `a;b`, a boolean as `true`/`false` (SPEC "Operators (issue 9)"): what a
    spreadsheet or a script reads without parsing JSON or Python's `True`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(_cell(item) for item in value)
    return _cell(value)


def render(rows: Sequence[dict[str, Any]], fields: Sequence[str], fmt: str) -> str:
    """One JSON array, CSV with a header row (lists `;`-joined, booleans `true`/`false`),
    or an aligned table for people."""
    projected = [{f: row.get(f) for f in fields} for row in rows]
    if fmt == "json":
        return json.dumps(projected, ensure_ascii=False, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(fields)
        for row in projected:
            writer.writerow([_csv_cell(row[f]) for f in fields])
        return buf.getvalue().rstrip("\n")
    return _table(projected, fields)


def _table(rows: list[dict[str, Any]], fields: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    width = shutil.get_terminal_size((160, 20)).columns
    cells = [[_cell(r[f]) for f in fields] for r in rows]
    natural = [max(len(f), *(_longest(c[i], "\n") for c in cells)) for i, f in enumerate(fields)]
    # Wrapped at spaces only: an address, a reference or a word stays whole (up to
    # MAX_WORD), and times are never wrapped (a date split from its hour reads as two values).
    floors = [
        n if f.endswith("_at")
        else min(n, max(MIN_COLUMN, len(f), *(min(_longest(c[i]), MAX_WORD) for c in cells)))
        for i, (f, n) in enumerate(zip(fields, natural, strict=True))
    ]
    widths = _fit(natural, floors, width - len(GAP) * (len(fields) - 1))
    lines = _row_lines(list(fields), widths) + _row_lines(["-" * w for w in widths], widths)
    for row in cells:
        lines += _row_lines(row, widths)
    return "\n".join(lines)


def _longest(text: str, separator: str | None = None) -> int:
    """The longest line (separator "\n") or word (None: any whitespace) of `text`."""
    return max((len(part) for part in text.split(separator)), default=0)


def _fit(natural: list[int], floors: list[int], room: int) -> list[int]:
    """Narrow the widest columns, one character at a time, until the row fits `room` or every
    column is at its floor (then the table is wider than the terminal, but complete)."""
    widths = list(natural)
    while sum(widths) > room:
        shrinkable = [i for i, w in enumerate(widths) if w > floors[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _row_lines(values: Sequence[str], widths: Sequence[int]) -> list[str]:
    """One table row as one or more lines: each cell wrapped to its column's width."""
    wrapped = [_wrap(value, width) for value, width in zip(values, widths, strict=True)]
    height = max(len(lines) for lines in wrapped)
    return [
        GAP.join((lines[n] if n < len(lines) else "").ljust(width)
                 for lines, width in zip(wrapped, widths, strict=True)).rstrip()
        for n in range(height)
    ]


def _wrap(value: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in value.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, width, break_on_hyphens=False) or [""]
    return lines
