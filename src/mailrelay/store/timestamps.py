"""Datetimes as the store keeps them: UTC ISO-8601 text in `*_at` columns, and back.

Pure conversion; no SQL here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

#: The last two datetimes `to_iso` formatted, with their text, newest first. A writer job
#: passes the same `now` (and due time) to several statements; formatting costs about a
#: microsecond each time (bench/intake_path.py). Keyed by identity (the tuple keeps each object
#: alive, so its id is not reused) and swapped as one tuple: threads sharing it can only miss.
_iso_memo: tuple[tuple[datetime, str], ...] = ()


@overload
def to_iso(when: datetime) -> str: ...


@overload
def to_iso(when: None) -> None: ...


@overload
def to_iso(when: datetime | None) -> str | None: ...


def to_iso(when: datetime | None) -> str | None:
    """UTC ISO-8601 text for a `*_at` column (DESIGN: house style 4)."""
    global _iso_memo
    if when is None:
        return None
    memo = _iso_memo
    for seen, text in memo:
        if seen is when:
            return text
    text = when.astimezone(UTC).isoformat(timespec="microseconds")
    _iso_memo = ((when, text), *memo[:1])
    return text


def from_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text)
