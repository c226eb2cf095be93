"""Options and argument readers every command family shares: --config, --format, durations,
dates; expected failures become one-line messages with exit status 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from mailrelay.config import parse_duration
from mailrelay.core.errors import MailrelayError
from mailrelay.core.output import FORMATS

F = TypeVar("F", bound=Callable[..., Any])


def config_option(fn: F) -> F:
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
        help="Path to relay.toml (default: $MAILRELAY_CONFIG, else ./relay.toml, else built-in "
        "defaults).",
    )(fn)


def format_option(fn: F) -> F:
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS),
        help="Output format (default: table on a terminal, json otherwise). The table shows "
        "the main columns in full, times in the shop's zone; json and csv every field, ISO 8601.",
    )(fn)


def read_duration(value: str | None, name: str) -> timedelta | None:
    """An option's duration (`180d`), or a usage error naming the option `name`."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from exc


def user_errors(fn: F) -> F:
    """Turn expected failures into one-line messages and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MailrelayError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}") from exc

    return cast(F, wrapper)


def parse_when(text: str, now: datetime, tz: tzinfo, *, end: bool = False) -> datetime:
    """`2026-11-01` (a day in `tz`; as an end, the whole day counts) or a duration ago (`30d`).

    In UTC; a day at the calendar's edge (`--until 9999-12-31`, `--since 0001-01-01` east of
    Greenwich) means the edge, and a duration beyond 100 years is a usage error (issue 10).
    """
    text = text.strip()
    try:
        when = _when(text, now, tz, end)
    except ValueError as exc:
        hint = f" ({exc})" if "too long" in str(exc) else ""
        raise click.BadParameter(
            f"{_quoted(text)}: give a date like 2026-11-01 or a duration like 30d{hint}") from None
    try:
        return when.astimezone(UTC)
    except OverflowError:
        return (datetime.max if when.year == datetime.max.year else datetime.min).replace(
            tzinfo=UTC)


def _when(text: str, now: datetime, tz: tzinfo, end: bool) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = datetime.combine(day, time(0), tzinfo=tz)
        if end and day == date.max:
            return datetime.max.replace(tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return when if when.tzinfo else when.replace(tzinfo=tz)
    return now - parse_duration(text)


def _quoted(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:30] + "…")
