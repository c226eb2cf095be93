"""The owners' dashboard and ledgers (issue 14) over real HTTP, logged in: each chart's numbers
(as its table and its CSV) against a known store of two shops where nothing crosses, the
period selector, the ledgers' search and paging, and cancelling an invitation (owners only,
with CSRF, never another shop's)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.store import Queries

from .conftest import ConfigFactory, second_shop
from .console_figures import Seeder, seed_known
from .test_console_login import base, browser, csrf_of, get, log_in, post, registered

OWNER = "owner@acme.example"
AGENT = "agent@acme.example"


@pytest.fixture
def shops(make_config: ConfigFactory) -> Config:
    return make_config(more=second_shop())


@pytest.fixture
async def console(shops: Config, clock: FrozenClock) -> AsyncIterator[Daemon]:
    async with Daemon(shops, clock) as daemon:
        daemon.store.write_sync(seed_known)
        await registered(daemon, shops, OWNER, "acme", "owner")
        await registered(daemon, shops, AGENT, "acme", "agent")
        yield daemon


def _invitation_ids(q: Queries) -> dict[str, int]:
    ours, theirs = q.invitation_for_reference("acme", "ORD-77"), q.invitation_for_reference(
        "bolt", "BOLT-1")
    assert ours is not None and theirs is not None
    return {"to_cancel": ours.id, "bolt": theirs.id}


@pytest.fixture
def ids(console: Daemon) -> dict[str, int]:
    return console.store.read(_invitation_ids)


async def logged_in(daemon: Daemon, email: str = OWNER) -> aiohttp.ClientSession:
    http = browser()
    resp = await log_in(http, daemon, email)
    assert resp.status == 303
    return http


def table_rows(html: str, section: str) -> list[list[str]]:
    """The rows of a section's numbers table, each cell's text."""
    part = html.split(f'aria-labelledby="{section}-heading"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", part, re.S)
    return [[re.sub(r"<[^>]+>", "", cell).strip()
             for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)] for row in rows]


async def csv_of(http: aiohttp.ClientSession, daemon: Daemon, chart: str,
                 weeks: int = 4, shop: str = "acme") -> list[list[str]]:
    async with http.get(f"{base(daemon)}/console/{shop}/dashboard/{chart}.csv?weeks={weeks}",
                        allow_redirects=False) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv"
        assert "attachment" in resp.headers["Content-Disposition"]
        return list(csv.reader(io.StringIO(await resp.text())))


async def test_each_chart_shows_the_shop_s_own_numbers_as_svg_table_and_csv(
    console: Daemon,
) -> None:
    async with await logged_in(console) as http:
        status, html = await get(http, f"{base(console)}/console/acme/dashboard?weeks=4")
        assert status == 200
        assert html.count('role="img"') == 7 and "<title id=" in html and "<desc id=" in html
        assert "<script" not in html
        assert table_rows(html, "reviews")[1:] == [
            ["October 26, 2026", "0", "–"], ["November 2, 2026", "0", "–"],
            ["November 9, 2026", "1", "1.0"], ["November 16, 2026", "3", "3.7"]]
        assert table_rows(html, "responses")[-2:] == [
            ["November 9, 2026", "1", "0", "0.0 %", "–"],
            ["November 16, 2026", "3", "2", "66.7 %", "3.0"]]
        assert table_rows(html, "funnel")[1:] == [
            ["Shipments received", "4"], ["Invited", "2"], ["Reviewed", "1"],
            ["Skipped: already invited", "1"], ["Skipped: customer opted out", "1"]]
        assert table_rows(html, "products")[1:] == [["The hat", "2", "3.0"],
                                                    ["The cap", "1", "4.0"]]
        assert table_rows(html, "tags")[1:] == [["late", "2", "1.5"], ["praise", "1", "4.0"]]
        assert await csv_of(http, console, "reviews") == [
            ["week_start", "reviews", "average_stars"], ["2026-10-26", "0", ""],
            ["2026-11-02", "0", ""], ["2026-11-09", "1", "1.0"], ["2026-11-16", "3", "3.67"]]
        responses = await csv_of(http, console, "responses")
        assert responses[-1] == ["2026-11-16", "3", "2", "0.6667", "3.0"]
        assert await csv_of(http, console, "funnel") == [
            ["stage", "count"], ["shipments", "4"], ["invited", "2"], ["reviewed", "1"],
            ["skipped_duplicate", "1"], ["skipped_suppressed", "1"]]
        assert await csv_of(http, console, "products") == [
            ["sku", "product", "ratings", "average_stars"], ["HAT", "The hat", "2", "3.0"],
            ["CAP", "The cap", "1", "4.0"]]
        assert await csv_of(http, console, "tags") == [
            ["tag", "ratings", "average_stars"], ["late", "2", "1.5"], ["praise", "1", "4.0"]]


async def test_the_period_selector_widens_the_weeks_and_defaults_to_twelve(
    console: Daemon,
) -> None:
    async with await logged_in(console) as http:
        _, html = await get(http, f"{base(console)}/console/acme/dashboard")
        assert '<option value="12" selected>' in html
        rows = table_rows(html, "reviews")[1:]
        assert len(rows) == 12 and ["October 12, 2026", "1", "5.0"] in rows
        _, html = await get(http, f"{base(console)}/console/acme/dashboard?weeks=52")
        assert len(table_rows(html, "reviews")) == 53
        assert len(await csv_of(http, console, "reviews", 52)) == 53
        _, html = await get(http, f"{base(console)}/console/acme/dashboard?weeks=7")
        assert len(table_rows(html, "reviews")) == 13  # not a period on offer: the default


async def test_an_agent_sees_the_dashboard_and_nobody_sees_another_shop_s(
    console: Daemon,
) -> None:
    async with await logged_in(console, AGENT) as http:
        status, _ = await get(http, f"{base(console)}/console/acme/dashboard")
        assert status == 200
        for path in ("dashboard", "dashboard/reviews.csv", "ledgers/invitations",
                     "ledgers/shipments"):
            status, _ = await get(http, f"{base(console)}/console/bolt/{path}")
            assert status == 404, path
        status, _ = await get(http, f"{base(console)}/console/acme/dashboard/secrets.csv")
        assert status == 404
    async with browser() as http:
        status, _ = await get(http, f"{base(console)}/console/acme/dashboard/reviews.csv")
        assert status == 303  # not logged in: to the login page


async def test_the_ledgers_search_filter_and_page_the_shop_s_own_rows(console: Daemon) -> None:
    async with await logged_in(console) as http:
        url = f"{base(console)}/console/acme/ledgers/invitations"
        status, html = await get(http, url)
        assert status == 200
        assert "Matching: 68" in html
        assert "BOLT-1" not in html
        assert "Page 1 of 2" in html and 'rel="next"' in html
        _, page2 = await get(http, url + "?page=2")
        assert page2.count("<tr>") == 1 + 18 and 'rel="prev"' in page2
        _, html = await get(http, url + "?q=zoe%40example")
        assert "Matching: 1" in html and "ORD-77" in html
        _, html = await get(http, url + "?q=BULK-0&status=scheduled")
        assert "Matching: 10" in html
        _, html = await get(http, url + "?status=sent")
        assert "Matching: 7" in html and "BULK" not in html
        _, html = await get(http, f"{base(console)}/console/acme/ledgers/shipments")
        assert "Matching: 4" in html and "no customer address" not in html
        _, html = await get(http, f"{base(console)}/console/acme/ledgers/shipments"
                                  "?status=duplicate")
        assert "Matching: 1" in html and "already invited for this order" in html


async def test_an_owner_cancels_an_invitation_from_the_ledger_with_csrf(
    console: Daemon, ids: dict[str, int],
) -> None:
    async with await logged_in(console) as http:
        url = f"{base(console)}/console/acme/ledgers/invitations"
        _, html = await get(http, url + "?q=ORD-77")
        action = f"/console/acme/ledgers/invitations/{ids['to_cancel']}/cancel"
        assert action in html
        resp = await post(http, base(console) + action, {"csrf": "forged"})
        assert resp.status == 400
        resp = await post(http, base(console) + action, {"csrf": csrf_of(html)})
        assert resp.status == 303
        row = console.store.read(lambda q: q.get_invitation(ids["to_cancel"]))
        assert row is not None and row.status == "cancelled"
        assert row.reason == f"cancelled in the console by {OWNER}"
        status, html = await get(http, base(console) + resp.headers["Location"])
        assert f"Invitation {ids['to_cancel']} is cancelled" in html
        other = f"/console/acme/ledgers/invitations/{ids['bolt']}/cancel"
        resp = await post(http, base(console) + other, {"csrf": csrf_of(html)})
        assert resp.status == 404
        resp = await post(http, f"{base(console)}/console/bolt/ledgers/invitations/"
                                f"{ids['bolt']}/cancel", {"csrf": csrf_of(html)})
        assert resp.status == 404
        row = console.store.read(lambda q: q.get_invitation(ids["bolt"]))
        assert row is not None and row.status == "scheduled"


async def test_an_agent_cannot_cancel_an_invitation(console: Daemon, ids: dict[str, int]) -> None:
    async with await logged_in(console, AGENT) as http:
        _, html = await get(http, f"{base(console)}/console/acme/ledgers/invitations")
        assert "/cancel" not in html
        resp = await post(http, f"{base(console)}/console/acme/ledgers/invitations/"
                                f"{ids['to_cancel']}/cancel", {"csrf": csrf_of(html)})
        assert resp.status == 403
    row = console.store.read(lambda q: q.get_invitation(ids["to_cancel"]))
    assert row is not None and row.status == "scheduled"


async def test_weeks_follow_the_shop_s_time_zone(make_config: ConfigFactory,
                                                 clock: FrozenClock) -> None:
    """Sunday 22:00 in New York is Monday 03:00 UTC: the review counts for the week before."""
    shops = make_config(more=second_shop(timezone="America/New_York"))
    late_sunday = datetime(2026, 11, 16, 3, 0, tzinfo=UTC)
    async with Daemon(shops, clock) as daemon:
        daemon.store.write_sync(lambda q: Seeder(q).review("bolt", 4, late_sunday))
        await registered(daemon, shops, "owner@bolt.example", "bolt", "owner")
        async with await logged_in(daemon, "owner@bolt.example") as http:
            rows = await csv_of(http, daemon, "reviews", shop="bolt")
    assert rows[-2:] == [["2026-11-09", "1", "4.0"], ["2026-11-16", "0", ""]]
