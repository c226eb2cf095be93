"""The dashboard and the ledgers in a real Chromium (issue 14): an owner logs in, reads the
charts (their tables opened), changes the period with the keyboard-usable GET form, opens this
month's and last month's day-by-day charts, searches a ledger and cancels an invitation;
axe-core finds 0 violations at 360 px and 1280 px, and screenshots land in tests/artifacts/
(console-dashboard-360.png, console-dashboard-month-360.png, …)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock

from .accessibility import check_at_widths
from .browser import browser_page, require_browser
from .conftest import ConfigFactory, second_shop
from .console_figures import seed_known
from .test_console_login import PASSWORD, base, registered

OWNER = "owner@acme.example"


@pytest.fixture
def shops(make_config: ConfigFactory) -> Config:
    require_browser()
    return make_config(more=second_shop())


@pytest.fixture
async def console(shops: Config, clock: FrozenClock) -> AsyncIterator[Daemon]:
    async with Daemon(shops, clock) as daemon:
        daemon.store.write_sync(seed_known)
        await registered(daemon, shops, OWNER, "acme", "owner")
        yield daemon


async def test_an_owner_reads_the_charts_and_works_the_ledgers_with_no_axe_violations(
    console: Daemon,
) -> None:
    found: list[str] = []
    async with browser_page() as page:
        await page.goto(base(console) + "/console/login")
        await page.fill("#email", OWNER)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.goto(base(console) + "/console/acme/dashboard")
        assert await page.locator("svg[role=img]").count() == 7
        await page.select_option("#weeks", "4")
        await page.click(".filters button[type=submit]")
        assert page.url.endswith("/console/acme/dashboard?weeks=4")
        for summary in await page.locator("summary").all():
            await summary.click()
        assert await page.locator("details[open] table").count() == 5
        numbers = page.locator("section[aria-labelledby=reviews-heading] details")
        assert "November 16, 2026" in await numbers.inner_text()
        found += await check_at_widths(page, "console-dashboard")

        await page.get_by_role("link", name="This month").click()
        assert page.url.endswith("/console/acme/dashboard?month=2026-11")
        assert await page.locator("svg[role=img]").count() == 7
        for summary in await page.locator("summary").all():
            await summary.click()
        numbers = page.locator("section[aria-labelledby=reviews-heading] details")
        assert "November 17, 2026" in await numbers.inner_text()
        assert "not counted, as in mailrelay stats" in await page.inner_text("main")
        found += await check_at_widths(page, "console-dashboard-month")
        await page.get_by_role("link", name="Previous month: October 2026").click()
        assert page.url.endswith("/console/acme/dashboard?month=2026-10")
        assert await page.locator("a[rel=next]").get_attribute("href") == "?month=2026-11"
        found += await check_at_widths(page, "console-dashboard-last-month")
        await page.select_option("#weeks", "52")
        await page.click(".filters button[type=submit]")
        assert page.url.endswith("/console/acme/dashboard?weeks=52")

        await page.goto(base(console) + "/console/acme/ledgers/invitations")
        await page.fill("#q", "ORD-77")
        await page.click(".filters button[type=submit]")
        assert "Matching: 1" in await page.inner_text("main")
        found += await check_at_widths(page, "console-invitations")
        await page.click("td button[type=submit]")
        assert "is cancelled" in await page.inner_text("main")
        found += await check_at_widths(page, "console-invitations-cancelled")

        await page.goto(base(console) + "/console/acme/ledgers/shipments")
        found += await check_at_widths(page, "console-shipments")
    assert not found, "\n".join(found)
