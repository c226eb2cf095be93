"""The owners' dashboard (issue 14): a period of whole weeks in the shop's time zone and the
figures of that period, each as a table of numbers that both a chart and its CSV are made of.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from mailrelay.store import Queries
from mailrelay.store.dashboard import FunnelFigures, GroupStars, WeekFigures

#: The periods an owner can choose, in weeks, and the one shown first.
PERIODS = (4, 12, 52)
DEFAULT_PERIOD = 12
#: Rows of the per-product and per-tag tables (the most rated first).
TOP = 15
#: The figures a dashboard has, each read by its own query.
PARTS = frozenset({"weeks", "funnel", "products", "tags"})


@dataclass(frozen=True)
class Week:
    """A week of the period: its Monday in the shop's zone and its figures."""

    start: date
    figures: WeekFigures


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard shows for one shop and one period [since, until)."""

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


def dashboard(q: Queries, shop: str, zone: tzinfo, now: datetime,
              weeks: int = DEFAULT_PERIOD, parts: frozenset[str] = PARTS) -> Dashboard:
    """The figures of the `weeks` last weeks of `shop` (the current one included); only those
    of `parts` (one chart's CSV needs one), the others left empty."""
    bounds = week_bounds(now, zone, weeks)
    since, until = bounds[0], bounds[-1]
    figures = q.weekly_figures(shop, bounds) if "weeks" in parts else []
    return Dashboard(
        since=since, until=until,
        weeks=[Week(bounds[f.n].date(), f) for f in figures],
        funnel=(q.invitation_funnel(shop, since, until) if "funnel" in parts
                else FunnelFigures(0, {}, 0, 0)),
        products=q.stars_by_product(shop, since, until, TOP) if "products" in parts else [],
        tags=q.stars_by_tag(shop, since, until, TOP) if "tags" in parts else [],
    )


def period(value: str | None) -> int:
    """The period asked for in the query string, else the default."""
    return int(value) if value in {str(p) for p in PERIODS} else DEFAULT_PERIOD
