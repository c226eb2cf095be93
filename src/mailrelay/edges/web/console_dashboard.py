"""The owners' dashboard (issue 14): `/console/{shop}/dashboard` with server-drawn SVG charts,
each with its numbers as a table, and `/console/{shop}/dashboard/<chart>.csv` of those numbers;
`?weeks=N` for the last N weeks, `?month=YYYY-MM` for a calendar month day by day.

Protocol only: the figures are services.dashboard's, the drawing render.charts'.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web
from markupsafe import Markup

from mailrelay.config import ShopConfig
from mailrelay.edges.web.console import CONSOLE_HEADERS
from mailrelay.edges.web.console_dashboard_period import period_choice
from mailrelay.edges.web.i18n import Translator
from mailrelay.render import charts
from mailrelay.render.charts import Bar
from mailrelay.services import dashboard
from mailrelay.services.dashboard import Dashboard, Period

if TYPE_CHECKING:
    from mailrelay.edges.web.server import WebApp

#: Each chart and the figures it is drawn from.
CHARTS = {"reviews": "weeks", "responses": "weeks", "funnel": "funnel", "products": "products",
          "tags": "tags"}
#: A month's day columns are labelled every week (the 1st, 8th, 15th…): readable on a phone.
DAYS_PER_LABEL = 7
MONTH_REJECTED = ("month must be a month from 2000-01 to the current one, written YYYY-MM"
                  " (for example month=2026-11).\n")


@dataclass
class Section:
    """One chart on the page: its heading, SVGs, and the same numbers as a table."""

    id: str
    heading: str
    charts: list[tuple[str, Markup]] = field(default_factory=list)  # (its title, its SVG)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def csv_table(d: Dashboard, chart: str, daily: bool = False) -> list[list[object]]:
    """A chart's numbers, header first, as plain machine-readable values (ISO dates, dots);
    `daily`: a column per day (a month's), not per week."""
    start = "day" if daily else "week_start"
    if chart == "reviews":
        header: list[object] = [start, "reviews", "average_stars"]
        return [header] + [
            [w.start.isoformat(), w.figures.reviews, _round(w.figures.average)] for w in d.weeks]
    if chart == "responses":
        header = [start, "reviews", "answered", "response_rate",
                  "median_hours_to_first_answer"]
        return [header] + [
            [w.start.isoformat(), w.figures.reviews, w.figures.answered,
             _round(w.figures.answered / w.figures.reviews if w.figures.reviews else None, 4),
             _round(w.figures.median_hours)] for w in d.weeks]
    if chart == "funnel":
        f = d.funnel
        return [["stage", "count"], ["shipments", f.shipments], ["invited", f.invited],
                ["reviewed", f.reviewed],
                *([f"skipped_{status}", count] for status, count in f.skipped.items())]
    groups = d.products if chart == "products" else d.tags
    key = "sku" if chart == "products" else "tag"
    names: list[object] = [key, "product"] if chart == "products" else [key]
    return [[*names, "ratings", "average_stars"]] + [
        [g.key, g.label, g.reviews, _round(g.average)] if chart == "products"
        else [g.key, g.reviews, _round(g.average)] for g in groups]


def _round(value: float | None, digits: int = 2) -> object:
    return "" if value is None else round(value, digits)


class DashboardPages:
    """The dashboard page and its CSVs, for the owners and agents of the shop."""

    def __init__(self, app: WebApp) -> None:
        self.app = app

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/console/{shop}/dashboard", self.page),
            web.get("/console/{shop}/dashboard/{chart}.csv", self.csv),
        ]

    async def _figures(self, request: web.Request, shop: ShopConfig, now: datetime,
                       parts: frozenset[str] = dashboard.PARTS,
                       ) -> tuple[Dashboard, Period, bool]:
        """The figures of the period asked for, that period, and whether the query asked for
        a month there is not (the current month is shown instead)."""
        span, rejected = dashboard.asked_period(
            request.query.get("weeks"), request.query.get("month"), now, shop.timezone)
        figures = await self.app.store.aread(
            lambda q: dashboard.for_period(q, shop.id, shop.timezone, now, span, parts))
        return figures, span, rejected

    def _shop(self, shop_id: str) -> ShopConfig:
        shop = self.app.config.shop(shop_id)
        if shop is None:
            raise web.HTTPNotFound()
        return shop

    async def page(self, request: web.Request) -> web.Response:
        shop_id = request.match_info["shop"]
        user = await self.app.console.require(request, shop_id)
        shop = self._shop(shop_id)
        t = self.app.console.translator(request)
        now = self.app.clock.now()
        figures, span, rejected = await self._figures(request, shop, now)
        since = t.date(figures.since.date())
        until = t.date(figures.until.date() - timedelta(days=1))
        return self.app.console.page(
            "console_dashboard.html.j2", t, user=user, csrf=self.app.console.csrf_token(request),
            shop=shop, span=span, weeks=span.weeks, periods=dashboard.PERIODS, since=since,
            until=until, zone=shop.timezone.key,
            choice=period_choice(span, now, shop.timezone, t),
            rejected=request.query.get("month", "")[:20] if rejected else None,
            sections=sections(figures, t, since, until, daily=span.month is not None))

    async def csv(self, request: web.Request) -> web.Response:
        shop_id = request.match_info["shop"]
        await self.app.console.require(request, shop_id)
        shop = self._shop(shop_id)
        chart = request.match_info["chart"]
        if chart not in CHARTS:
            raise web.HTTPNotFound()
        figures, span, rejected = await self._figures(
            request, shop, self.app.clock.now(), frozenset({CHARTS[chart]}))
        if rejected:  # a program asked: never numbers of another month than it named
            raise web.HTTPBadRequest(text=MONTH_REJECTED, headers=CONSOLE_HEADERS)
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows(
            csv_table(figures, chart, daily=span.month is not None))
        name = (f"{shop.id}-{chart}-{span.name}.csv" if span.month else
                f"{shop.id}-{chart}-{figures.since.date().isoformat()}-{span.name}.csv")
        return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8",
                            headers={**CONSOLE_HEADERS,
                                     "Content-Disposition": f'attachment; filename="{name}"'})


@dataclass(frozen=True)
class Unit:
    """What a column is: the suffix of its texts' keys, its table's first header, how many
    columns each axis label is apart (None: as few as fit)."""

    suffix: str = ""
    header: str = "dashboard.col_week"
    every: int | None = None


def sections(d: Dashboard, t: Translator, since: str, until: str,
             daily: bool = False) -> list[Section]:
    """The page's sections; `daily`: the columns are a month's days, not weeks."""
    unit = Unit("_day", "dashboard.col_day", DAYS_PER_LABEL) if daily else Unit()
    return [_reviews(d, t, since, until, unit), _responses(d, t, unit), _funnel(d, t),
            _groups(d, t, "products"), _groups(d, t, "tags")]


def _week_label(d: Dashboard, t: Translator) -> list[str]:
    return [charts.month_day(w.start, t.locale) for w in d.weeks]


def _reviews(d: Dashboard, t: Translator, since: str, until: str, unit: Unit) -> Section:
    labels = _week_label(d, t)
    section = Section("reviews", t("dashboard.reviews_heading"))
    counts = [Bar(label, w.figures.reviews, str(w.figures.reviews))
              for label, w in zip(labels, d.weeks, strict=True)]
    stars = [Bar(label, w.figures.average or 0.0,
                 t.decimal(w.figures.average) if w.figures.average is not None else "–")
             for label, w in zip(labels, d.weeks, strict=True)]
    reviews_title, stars_title = t(f"dashboard.reviews_title{unit.suffix}"), t(
        f"dashboard.stars_title{unit.suffix}")
    section.charts = [
        (reviews_title, charts.columns(
            "chart-reviews", reviews_title,
            t(f"dashboard.reviews_desc{unit.suffix}", since=since, until=until), counts,
            every=unit.every)),
        (stars_title, charts.columns(
            "chart-stars", stars_title,
            t(f"dashboard.stars_desc{unit.suffix}", since=since, until=until), stars, 5.0,
            every=unit.every)),
    ]
    section.headers = [t(unit.header), t("dashboard.col_reviews"), t("dashboard.col_average")]
    section.rows = [[t.date(w.start), c.text, s.text]
                    for w, c, s in zip(d.weeks, counts, stars, strict=True)]
    return section


def _responses(d: Dashboard, t: Translator, unit: Unit) -> Section:
    labels = _week_label(d, t)
    section = Section("responses", t("dashboard.responses_heading"))
    rates, hours = [], []
    for label, w in zip(labels, d.weeks, strict=True):
        rate = 100.0 * w.figures.answered / w.figures.reviews if w.figures.reviews else None
        rates.append(Bar(label, rate or 0.0, _percent(t, rate)))
        median = w.figures.median_hours
        hours.append(Bar(label, median or 0.0, t.decimal(median) if median is not None else "–"))
    rate_title, hours_title = t(f"dashboard.rate_title{unit.suffix}"), t(
        f"dashboard.hours_title{unit.suffix}")
    section.charts = [
        (rate_title, charts.columns(
            "chart-rate", rate_title, t(f"dashboard.rate_desc{unit.suffix}"), rates, 100.0,
            "100 %", every=unit.every)),
        (hours_title, charts.columns(
            "chart-hours", hours_title, t(f"dashboard.hours_desc{unit.suffix}"), hours,
            every=unit.every)),
    ]
    section.headers = [t(unit.header), t("dashboard.col_reviews"),
                       t("dashboard.col_answered"), t("dashboard.col_rate"),
                       t("dashboard.col_hours")]
    section.rows = [[t.date(w.start), str(w.figures.reviews), str(w.figures.answered), r.text,
                     h.text] for w, r, h in zip(d.weeks, rates, hours, strict=True)]
    return section


def _percent(t: Translator, rate: float | None) -> str:
    return "–" if rate is None else f"{t.decimal(rate)} %"


def _funnel(d: Dashboard, t: Translator) -> Section:
    f = d.funnel
    stages = [(t("dashboard.stage_shipments"), f.shipments),
              (t("dashboard.stage_invited"), f.invited),
              (t("dashboard.stage_reviewed"), f.reviewed),
              *((t(f"dashboard.skipped_{status}"), count) for status, count in f.skipped.items())]
    rows = [Bar(label, count, str(count)) for label, count in stages]
    section = Section("funnel", t("dashboard.funnel_heading"))
    section.charts = [(t("dashboard.funnel_title"), charts.bars(
        "chart-funnel", t("dashboard.funnel_title"), t("dashboard.funnel_desc"), rows))]
    section.headers = [t("dashboard.col_stage"), t("dashboard.col_count")]
    section.rows = [[row.label, row.text] for row in rows]
    return section


def _groups(d: Dashboard, t: Translator, chart: str) -> Section:
    groups = d.products if chart == "products" else d.tags
    rows = [Bar(g.label, g.average, t.decimal(g.average)) for g in groups]
    section = Section(chart, t(f"dashboard.{chart}_heading"))
    if rows:
        section.charts = [(t(f"dashboard.{chart}_title"), charts.bars(
            f"chart-{chart}", t(f"dashboard.{chart}_title"), t(f"dashboard.{chart}_desc"),
            rows, 5.0))]
    section.headers = [t(f"dashboard.col_{chart}"), t("dashboard.col_ratings"),
                       t("dashboard.col_average")]
    section.rows = [[g.label, str(g.reviews), r.text] for g, r in zip(groups, rows, strict=True)]
    return section

