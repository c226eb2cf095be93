"""Listing output for the CLI: table, JSON or CSV over the SPEC's contract fields."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

FORMATS = ("table", "json", "csv")


def localize(rows: list[dict[str, Any]], tz_of: Mapping[str, tzinfo]) -> list[dict[str, Any]]:
    """Show `*_at` times in the row's shop timezone, ISO 8601 with offset (SPEC: CLI)."""
    out = []
    for row in rows:
        tz = tz_of.get(str(row.get("shop")))
        new = dict(row)
        for key, value in row.items():
            if key.endswith("_at") and isinstance(value, str) and value:
                when = datetime.fromisoformat(value)
                new[key] = (when.astimezone(tz) if tz else when).isoformat(timespec="seconds")
        out.append(new)
    return out


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
    cells = [[_cell(r[f]).replace("\n", " ") for f in fields] for r in rows]
    widths = [max(len(f), *(len(c[i]) for c in cells)) for i, f in enumerate(fields)]
    cap = max(12, width // max(len(fields), 1))
    widths = [min(w, cap) for w in widths]

    def line(values: Sequence[str]) -> str:
        parts = [
            (v if len(v) <= w else v[: w - 1] + "…").ljust(w)
            for v, w in zip(values, widths, strict=True)
        ]
        return "  ".join(parts).rstrip()

    header = [line(list(fields)), line(["-" * w for w in widths])]
    return "\n".join(header + [line(c) for c in cells])
