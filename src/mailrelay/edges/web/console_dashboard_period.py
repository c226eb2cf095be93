"""The dashboard's choice of period: links to this month and last month, and in a month's
view its previous and next month (none after the current one), with the month's name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from mailrelay.edges.web.i18n import Translator
from mailrelay.render.charts import month_name
from mailrelay.services import dashboard
from mailrelay.services.dashboard import Period


@dataclass(frozen=True)
class MonthLink:
    """A link to a month's dashboard: its query string and the month's name."""

    query: str
    name: str


@dataclass(frozen=True)
class PeriodChoice:
    """What the page offers around the period shown."""

    this_month: MonthLink
    last_month: MonthLink
    shown: MonthLink | None  # the month shown, if a month is
    previous: MonthLink | None
    next: MonthLink | None


def _link(first: date, t: Translator) -> MonthLink:
    return MonthLink(Period(month=first).query, month_name(first, t.locale))


def period_choice(span: Period, now: datetime, zone: tzinfo, t: Translator) -> PeriodChoice:
    current = dashboard.this_month(now, zone)
    shown = span.month
    before = dashboard.month_before(shown) if shown else None
    return PeriodChoice(
        this_month=_link(current, t),
        last_month=_link(dashboard.month_before(current), t),
        shown=_link(shown, t) if shown else None,
        previous=(_link(before, t) if before and before >= dashboard.EARLIEST_MONTH
                  else None),
        next=_link(dashboard.month_after(shown), t) if shown and shown < current else None,
    )
