"""The owners' dashboard (issue 14): a period of whole weeks, or a calendar month day by day, in
the shop's time zone, and the figures of that period, each as a table of numbers that both a
chart and its CSV are made of.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from mailrelay.store import QueryInterface
from mailrelay.store.dashboard import FunnelFigures, GroupStars, WeekFigures

#: The periods an owner can choose, in weeks, and the one shown first.
PERIODS = (4, 12, 52)
DEFAULT_PERIOD = 12
#: Rows of the per-product and per-tag tables (the most rated first).
TOP = 15
#: The figures a dashboard has, each read by its own query.
PARTS = frozenset({"weeks", "funnel", "products", "tags"})
#: The first month the dashboard shows: nothing was reviewed with mailrelay before.
EARLIEST_MONTH = date(2000, 1, 1)
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


@dataclass(frozen=True)
class Week:
    """A column of the period: its first day in the shop's zone (a week's Monday, or the day
    itself in a month) and its figures."""

    start: date
    figures: WeekFigures


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard shows for one shop and one period [since, until); `weeks` are
    the period's columns (days in a month's dashboard)."""

    since: datetime
    until: datetime
    weeks: list[Week]
    funnel: FunnelFigures
    products: list[GroupStars]
    tags: list[GroupStars]


def week_bounds(now: datetime, zone: tzinfo, count: int) -> list[datetime]:
    """count + 1 local midnights of Mondays: the period's weeks, the last one holding `now`."""
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    first = monday - timedelta(weeks=count - 1)
    return [datetime.combine(first + timedelta(weeks=n), time(), zone) for n in range(count + 1)]


def month_bounds(first: date, zone: tzinfo) -> list[datetime]:
    """The local midnights of each day of the month of `first` and of the next month's first
    day: 29 to 32 bounds (a day of a clock change is 23 or 25 hours long)."""
    first = first.replace(day=1)
    days = calendar.monthrange(first.year, first.month)[1]
    return [datetime.combine(first + timedelta(days=n), time(), zone) for n in range(days + 1)]


def dashboard(q: QueryInterface, shop: str, zone: tzinfo, now: datetime,
              weeks: int = DEFAULT_PERIOD, parts: frozenset[str] = PARTS) -> Dashboard:
    """The figures of the `weeks` last weeks of `shop` (the current one included); only those
    of `parts` (one chart's CSV needs one), the others left empty."""
    return figures(q, shop, week_bounds(now, zone, weeks), parts)


def month_dashboard(q: QueryInterface, shop: str, zone: tzinfo, first: date,
                    parts: frozenset[str] = PARTS) -> Dashboard:
    """The figures of `shop` in the calendar month of `first`, a column per day."""
    return figures(q, shop, month_bounds(first, zone), parts)


def figures(q: QueryInterface, shop: str, bounds: Sequence[datetime],
            parts: frozenset[str] = PARTS) -> Dashboard:
    """The figures of the period from bounds[0] to bounds[-1], a column between each two
    consecutive bounds (the store's `weekly_figures` takes any increasing bounds)."""
    since, until = bounds[0], bounds[-1]
    columns = q.weekly_figures(shop, bounds) if "weeks" in parts else []
    return Dashboard(
        since=since, until=until,
        weeks=[Week(bounds[f.n].date(), f) for f in columns],
        funnel=(q.invitation_funnel(shop, since, until) if "funnel" in parts
                else FunnelFigures(0, {}, 0, 0)),
        products=q.stars_by_product(shop, since, until, TOP) if "products" in parts else [],
        tags=q.stars_by_tag(shop, since, until, TOP) if "tags" in parts else [],
    )


def period(value: str | None) -> int:
    """The period asked for in the query string, else the default."""
    return int(value) if value in {str(p) for p in PERIODS} else DEFAULT_PERIOD


@dataclass(frozen=True)
class Period:
    """What a dashboard shows: the last `weeks` weeks, or the calendar month starting on
    `month` day by day."""

    weeks: int = DEFAULT_PERIOD
    month: date | None = None

    @property
    def query(self) -> str:
        """Its query string: "weeks=12", "month=2026-11"."""
        return f"month={self.month:%Y-%m}" if self.month else f"weeks={self.weeks}"

    @property
    def name(self) -> str:
        """Its part of a file name: "12w", "2026-11"."""
        return f"{self.month:%Y-%m}" if self.month else f"{self.weeks}w"


def asked_period(weeks: str | None, month: str | None, now: datetime,
                 zone: tzinfo) -> tuple[Period, bool]:
    """The period the query string asks for and whether it asked for a month there is not
    (then the current month): `month=YYYY-MM` before `weeks=N`, else the default weeks."""
    if month is None:
        return Period(weeks=period(weeks)), False
    current = this_month(now, zone)
    found = parse_month(month, current)
    return Period(month=found or current), found is None


def for_period(q: QueryInterface, shop: str, zone: tzinfo, now: datetime, span: Period,
               parts: frozenset[str] = PARTS) -> Dashboard:
    """The figures of `span`: its weeks up to now, or its month."""
    if span.month is not None:
        return month_dashboard(q, shop, zone, span.month, parts)
    return dashboard(q, shop, zone, now, span.weeks, parts)


def this_month(now: datetime, zone: tzinfo) -> date:
    """The first day of the month that holds `now` in the shop's zone."""
    return now.astimezone(zone).date().replace(day=1)


def month_before(first: date) -> date:
    return (first.replace(day=1) - timedelta(days=1)).replace(day=1)


def month_after(first: date) -> date:
    return (first.replace(day=1) + timedelta(days=31)).replace(day=1)


def parse_month(value: str, current: date) -> date | None:
    """The month "YYYY-MM" as its first day; None for anything else, for a month that does not
    exist (2026-13), one before EARLIEST_MONTH, or one after `current` (nothing happened yet)."""
    found = _MONTH.fullmatch(value.strip())
    if found is None or not 1 <= int(found[2]) <= 12:
        return None
    first = date(int(found[1]), int(found[2]), 1)
    return first if EARLIEST_MONTH <= first <= current.replace(day=1) else None
