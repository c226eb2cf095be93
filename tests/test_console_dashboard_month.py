"""The dashboard of a calendar month (issue 14, "read the month's chart") over real HTTP, logged
in: `?month=YYYY-MM` a column per day in the shop's time zone (a day of 25 hours when Berlin
leaves summer time), the links to this month, last month, the previous and the next one (none
after the current month), each chart's CSV named by the month, what is counted said in every
locale, and a month there is not (the page shows the current month and says so; a CSV is
refused)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from markupsafe import escape

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.core.locales import BUILTIN_LOCALES
from mailrelay.edges.web.i18n import Strings
from mailrelay.services.dashboard import month_bounds, parse_month
from mailrelay.store import Queries

from .conftest import ConfigFactory, second_shop
from .console_figures import Seeder, seed_known
from .test_console_dashboard import logged_in, table_rows
from .test_console_login import base, get, registered

OWNER = "owner@acme.example"
BOLT_OWNER = "owner@bolt.example"


@pytest.fixture
def shops(make_config: ConfigFactory) -> Config:
    return make_config(more=second_shop())


@pytest.fixture
async def console(shops: Config, clock: FrozenClock) -> AsyncIterator[Daemon]:
    """The known store of two shops; the clock at Friday 20 November 2026."""
    async with Daemon(shops, clock) as daemon:
        daemon.store.write_sync(seed_known)
        await registered(daemon, shops, OWNER, "acme", "owner")
        yield daemon


async def month_csv(daemon: Daemon, email: str, chart: str, query: str,
                    shop: str = "acme") -> tuple[int, str, str]:
    """A chart's CSV: its status, its file name (or "") and its text."""
    async with await logged_in(daemon, email) as http, http.get(
            f"{base(daemon)}/console/{shop}/dashboard/{chart}.csv?{query}",
            allow_redirects=False) as resp:
        found = re.search(r'filename="([^"]+)"', resp.headers.get("Content-Disposition", ""))
        return resp.status, found[1] if found else "", await resp.text()


def day_rows(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.strip().split("\r\n")]


async def test_a_month_has_a_column_per_day_of_the_shop_s_own_reviews(console: Daemon) -> None:
    async with await logged_in(console) as http:
        status, html = await get(http, f"{base(console)}/console/acme/dashboard?month=2026-11")
    assert status == 200
    rows = table_rows(html, "reviews")
    assert rows[0] == ["Day", "Reviews", "Average stars"]
    assert len(rows) == 1 + 30 and rows[1][0] == "November 1, 2026"
    assert rows[-1] == ["November 30, 2026", "0", "–"]
    # acme's 2★, 5★ and 4★ of the 17th, its 1★ of the 10th (its reported 3★ is hidden);
    # bolt's 1★ reviews of the same days never count here.
    assert rows[17] == ["November 17, 2026", "3", "3.7"]
    assert rows[10] == ["November 10, 2026", "1", "1.0"]
    assert sum(int(row[1]) for row in rows[1:]) == 4
    assert table_rows(html, "responses")[17] == [
        "November 17, 2026", "3", "2", "66.7 %", "3.0"]
    assert table_rows(html, "funnel")[1:4] == [
        ["Shipments received", "4"], ["Invited", "2"], ["Reviewed", "1"]]
    assert table_rows(html, "products")[1:] == [["The hat", "2", "3.0"], ["The cap", "1", "4.0"]]
    assert table_rows(html, "tags")[1:] == [["late", "2", "1.5"], ["praise", "1", "4.0"]]
    assert "Reviews per day" in html and "Reviews per week" not in html
    assert html.count('role="img"') == 7 and "<script" not in html
    assert "From November 1, 2026 to November 30, 2026, day by day" in html
    assert ('Hidden reviews (a confirmed report, or erased by the customer) are not counted, '
            "as in <code>mailrelay stats</code>.") in html
    assert "/console/acme/dashboard/reviews.csv?month=2026-11" in html


async def test_the_day_axis_is_labelled_once_a_week_so_labels_fit_a_phone(
    console: Daemon,
) -> None:
    async with await logged_in(console) as http:
        _, html = await get(http, f"{base(console)}/console/acme/dashboard?month=2026-11")
    svg = html.split('id="chart-reviews"', 1)[1].split("</svg>", 1)[0]
    assert "<title id=" in svg and "<desc id=" in svg
    assert svg.count("<rect") == 30
    labels = re.findall(r'class="x-label"[^>]*>([^<]+)</text>', svg)
    assert labels == ["Nov 1", "Nov 8", "Nov 15", "Nov 22", "Nov 29"]


async def test_this_month_last_month_and_the_months_around_are_links(console: Daemon) -> None:
    async with await logged_in(console) as http:
        _, html = await get(http, f"{base(console)}/console/acme/dashboard")
        assert '<a href="?month=2026-11">This month</a>' in html
        assert '<a href="?month=2026-10">Last month</a>' in html
        assert 'rel="prev"' not in html  # the weeks' view has no months to page
        _, html = await get(http, f"{base(console)}/console/acme/dashboard?month=2026-11")
        assert '<a href="?month=2026-11" aria-current="page">This month</a>' in html
        assert '<a href="?month=2026-10" rel="prev">Previous month: October 2026</a>' in html
        assert 'rel="next"' not in html  # nothing after the current month
        assert "<strong>November 2026</strong>" in html
        # the weeks' menu shows the month until another period is picked
        assert '<option value="" selected disabled hidden>November 2026</option>' in html
        assert '<option value="12" selected>' not in html
        _, html = await get(http, f"{base(console)}/console/acme/dashboard?month=2026-10")
        assert '<a href="?month=2026-10" aria-current="page">Last month</a>' in html
        assert '<a href="?month=2026-11" rel="next">Next month: November 2026</a>' in html
        assert '<a href="?month=2026-09" rel="prev">' in html
        rows = table_rows(html, "reviews")
        assert len(rows) == 1 + 31 and rows[13] == ["October 13, 2026", "1", "5.0"]
        _, html = await get(http, f"{base(console)}/console/acme/dashboard?month=2026-02")
        assert len(table_rows(html, "reviews")) == 1 + 28
        assert "aria-current" not in html.split('class="months"', 1)[1].split("</nav>", 1)[0]


async def test_months_before_the_first_review_are_zero_and_2000_has_no_previous(
    console: Daemon,
) -> None:
    async with await logged_in(console) as http:
        status, html = await get(http, f"{base(console)}/console/acme/dashboard?month=2000-01")
    assert status == 200
    rows = table_rows(html, "reviews")[1:]
    assert len(rows) == 31 and {(r[1], r[2]) for r in rows} == {("0", "–")}
    assert 'rel="prev"' not in html and 'rel="next"' in html


async def test_a_month_s_csvs_are_its_days_and_named_by_the_month(console: Daemon) -> None:
    status, name, text = await month_csv(console, OWNER, "reviews", "month=2026-11")
    assert (status, name) == (200, "acme-reviews-2026-11.csv")
    rows = day_rows(text)
    assert rows[0] == ["day", "reviews", "average_stars"] and len(rows) == 1 + 30
    assert rows[17] == ["2026-11-17", "3", "3.67"] and rows[1] == ["2026-11-01", "0", ""]
    status, name, text = await month_csv(console, OWNER, "responses", "month=2026-11")
    assert (status, name) == (200, "acme-responses-2026-11.csv")
    assert day_rows(text)[0][0] == "day"
    assert day_rows(text)[17] == ["2026-11-17", "3", "2", "0.6667", "3.0"]
    status, name, text = await month_csv(console, OWNER, "funnel", "month=2026-10")
    assert (status, name) == (200, "acme-funnel-2026-10.csv")
    assert day_rows(text) == [["stage", "count"], ["shipments", "0"], ["invited", "0"],
                              ["reviewed", "0"]]
    status, name, text = await month_csv(console, OWNER, "tags", "month=2026-11")
    assert (status, name) == (200, "acme-tags-2026-11.csv")
    assert day_rows(text) == [["tag", "ratings", "average_stars"], ["late", "2", "1.5"],
                              ["praise", "1", "4.0"]]
    _, name, _ = await month_csv(console, OWNER, "reviews", "weeks=4")
    assert name == "acme-reviews-2026-10-26-4w.csv"  # the weeks' files keep their names


async def test_another_shop_s_month_is_its_own_and_closed_to_us(
    console: Daemon, shops: Config,
) -> None:
    await registered(console, shops, BOLT_OWNER, "bolt", "owner")
    _, _, text = await month_csv(console, BOLT_OWNER, "reviews", "month=2026-11", shop="bolt")
    counted = {row[0]: row[1] for row in day_rows(text)[1:] if row[1] != "0"}
    assert counted == {"2026-11-10": "1", "2026-11-17": "1"}
    status, _, _ = await month_csv(console, OWNER, "reviews", "month=2026-11", shop="bolt")
    assert status == 404
    async with await logged_in(console) as http:
        status, _ = await get(http, f"{base(console)}/console/bolt/dashboard?month=2026-11")
    assert status == 404


@pytest.mark.parametrize("asked", ["2026-13", "1999-01", "2026-1", "last", "2026-11-01",
                                   "2027-01", "0000-00"])
async def test_a_month_there_is_not_shows_the_current_month_and_says_so(
    console: Daemon, asked: str,
) -> None:
    async with await logged_in(console) as http:
        status, html = await get(http, f"{base(console)}/console/acme/dashboard?month={asked}")
    assert status == 200
    assert f"There is no month “{asked}” to show" in html and 'role="status"' in html
    assert "<strong>November 2026</strong>" in html
    assert len(table_rows(html, "reviews")) == 1 + 30
    assert "reviews.csv?month=2026-11" in html


async def test_a_csv_of_a_month_there_is_not_is_refused(console: Daemon) -> None:
    for asked in ("2026-13", "1999-01", "2027-01", "garbage", ""):
        status, name, text = await month_csv(console, OWNER, "reviews", f"month={asked}")
        assert (status, name) == (400, ""), asked
        assert "YYYY-MM" in text


async def test_the_page_says_what_is_counted_in_every_locale(console: Daemon) -> None:
    strings = Strings()
    async with await logged_in(console) as http:
        for locale in BUILTIN_LOCALES:
            t = strings.translator(locale)
            async with http.get(f"{base(console)}/console/acme/dashboard?month=2026-11",
                                headers={"Accept-Language": locale}) as resp:
                html = await resp.text()
            before, after = t("dashboard.counted").split("{command}")
            assert f"{escape(before)}<code>mailrelay stats</code>{escape(after)}" in html, locale
            assert t("dashboard.this_month") in html and t("dashboard.col_day") in html, locale
    assert len({Strings().translator(loc)("dashboard.counted") for loc in BUILTIN_LOCALES}) == 11


def test_a_berlin_month_has_a_day_of_25_hours_when_summer_time_ends() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    bounds = month_bounds(date(2026, 10, 1), berlin)
    assert len(bounds) == 32
    # (in UTC: Python subtracts two times of one zone by their wall clocks)
    lengths = {b.date(): (after.astimezone(UTC) - b.astimezone(UTC)).total_seconds() / 3600
               for b, after in zip(bounds, bounds[1:], strict=False)}
    assert lengths[date(2026, 10, 25)] == 25
    assert sum(lengths.values()) == 31 * 24 + 1
    assert bounds[24].astimezone(UTC) == datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    assert bounds[25].astimezone(UTC) == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)
    spring = month_bounds(date(2026, 3, 1), berlin)
    assert spring[29].astimezone(UTC) - spring[28].astimezone(UTC) == timedelta(hours=23)


def test_a_month_is_year_dash_month_from_2000_to_the_current_one() -> None:
    current = date(2026, 11, 20)
    assert parse_month("2026-11", current) == date(2026, 11, 1)
    assert parse_month("2000-01", current) == date(2000, 1, 1)
    for bad in ("2026-12", "1999-12", "2026-00", "2026-13", "26-11", "2026/11", "", "٢٠٢٦-١١"):
        assert parse_month(bad, current) is None, bad


async def test_a_berlin_shop_s_days_run_midnight_to_midnight_across_the_clock_change(
    make_config: ConfigFactory, clock: FrozenClock,
) -> None:
    """25 October 2026 in Berlin runs from 22:00 UTC on the 24th (summer time) to 23:00 UTC on
    the 25th (winter time): a review at each edge of it counts on that day, none beyond."""
    shops = make_config(more=second_shop(timezone="Europe/Berlin"))
    at = [datetime(2026, 10, 24, 21, 30, tzinfo=UTC),   # 23:30 on the 24th, summer time
          datetime(2026, 10, 24, 22, 30, tzinfo=UTC),   # 00:30 on the 25th, summer time
          datetime(2026, 10, 25, 22, 30, tzinfo=UTC),   # 23:30 on the 25th, winter time
          datetime(2026, 10, 25, 23, 30, tzinfo=UTC)]   # 00:30 on the 26th
    async with Daemon(shops, clock) as daemon:
        def seed(q: Queries) -> None:
            s = Seeder(q)
            for n, when in enumerate(at):
                s.review("bolt", 1 + n, when)
                s.review("acme", 5, when)  # UTC days, and never at bolt
        daemon.store.write_sync(seed)
        await registered(daemon, shops, BOLT_OWNER, "bolt", "owner")
        _, name, text = await month_csv(daemon, BOLT_OWNER, "reviews", "month=2026-10",
                                        shop="bolt")
    assert name == "bolt-reviews-2026-10.csv"
    counted = {row[0]: (row[1], row[2]) for row in day_rows(text)[1:] if row[1] != "0"}
    assert counted == {"2026-10-24": ("1", "1.0"), "2026-10-25": ("2", "2.5"),
                       "2026-10-26": ("1", "4.0")}
