"""The moderation page in a real Chromium (issue 14): an owner logs in, reads a pending report,
picks the public reason, writes a note and confirms it by keyboard; axe-core finds 0 violations
on the list, the audit trail, the public page's removed line and the owner's mail, at 360 px and
1280 px (screenshots in tests/artifacts/)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.render import Templates
from mailrelay.render.moderation import PendingReportView, report_pending_mail
from mailrelay.services import moderation
from mailrelay.services.moderation import Decision

from .accessibility import MAIL_RULES, check_at_widths
from .browser import browser_page, require_browser
from .conftest import ConfigFactory, second_shop
from .rendered import rendered_html
from .test_console_login import PASSWORD, base, registered
from .tickets import invited_now, submitted

if TYPE_CHECKING:
    from playwright.async_api import Page

OWNER = "boss@acme.example"


async def reported_review(daemon: Daemon, clock: FrozenClock, email: str, title: str,
                          reason: str) -> tuple[int, int]:
    """A 1★ review of acme and an agent's pending report of it: (review id, report id)."""
    invitation = await invited_now(daemon, clock, shop_id="acme", email=email,
                                   name="Kim Dale", reference=f"R-{title[:3]}")
    review_id = await submitted(daemon, clock, invitation, stars="1", title=title,
                                text="Arrived broken and nobody answered my mails.",
                                name="Kim Dale")
    review = daemon.store.read(lambda q: q.get_review(review_id))
    assert review is not None
    now = clock.now()
    report_id = await daemon.store.write(lambda q: moderation.report(
        q, daemon.config, review, "support@acme.example", reason, now))
    return review_id, report_id


async def log_in(page: Page, daemon: Daemon) -> None:
    await page.goto(base(daemon) + "/console/login")
    await page.fill("#email", OWNER)
    await page.fill("#password", PASSWORD)
    async with page.expect_navigation():
        await page.press("#password", "Enter")


async def test_an_owner_confirms_a_report_by_keyboard_and_axe_finds_nothing(
    make_config: ConfigFactory, clock: FrozenClock,
) -> None:
    require_browser()
    config: Config = make_config(more=second_shop())
    found: list[str] = []
    async with Daemon(config, clock) as daemon, browser_page() as page:
        await registered(daemon, config, OWNER, "acme")
        first, report = await reported_review(daemon, clock, "kim@example.com",
                                              "Broken on arrival", "insults the courier")
        second, second_report = await reported_review(
            daemon, clock, "lee@example.com", "Never again", "contains a phone number")
        now = clock.now()
        first_row = daemon.store.read(lambda q: q.get_review(first))
        assert first_row is not None
        attached = await daemon.store.write(lambda q: moderation.report(  # a second agent's
            q, config, first_row, "kim@acme.example", "rude about our courier", now))
        assert attached == report
        await daemon.store.write(lambda q: moderation.decide(
            q, config, "acme", second_report, Decision(True, OWNER, "Phone number.",
                                                    "personal_data"), now))
        await log_in(page, daemon)
        response = await page.goto(base(daemon) + "/console/acme/moderation")
        assert response is not None and response.status == 200
        assert "kim@acme.example: rude about our courier" in await page.inner_text("main")
        found += await check_at_widths(page, "axe-console-moderation")

        # Keyboard only: the public reason, the note, then the confirm button.
        await page.focus(f"#category-{report}")
        await page.keyboard.press("Home")  # the first reason: spam
        await page.keyboard.press("Tab")
        await page.keyboard.type("Courier insulted by name.")
        await page.keyboard.press("Tab")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        assert "The report is confirmed" in await page.inner_text("main")
        found += await check_at_widths(page, "axe-console-moderation-decided")

        await page.goto(base(daemon) + f"/console/acme/moderation/review/{first}")
        assert "Courier insulted by name." in await page.inner_text("main")
        found += await check_at_widths(page, "axe-console-moderation-trail")

        await page.goto(base(daemon) + "/s/acme")
        removed = await page.inner_text(".removed")
        assert removed == "2 reviews removed: 1 personal data, 1 spam or advertising", removed
        found += await check_at_widths(page, "axe-public-removed")

        await show_owner_mail(page, config, second)
        found += await check_at_widths(page, "axe-report-pending-email", MAIL_RULES)
        review = daemon.store.read(lambda q: q.get_review(first))
        assert review is not None and review.reported
    assert not found, "\n".join(found)


async def show_owner_mail(page: Page, config: Config, review_id: int) -> None:
    shop = config.shop("acme")
    assert shop is not None
    view = PendingReportView(
        to_email=OWNER, review_id=review_id, stars=1, title="Never again",
        text="Arrived broken and nobody answered my mails.", reporter="support@acme.example",
        reason="contains a phone number",
        moderation_url="http://reviews.test/console/acme/moderation")
    mail = report_pending_mail(Templates(config), config, shop, view,
                               now=datetime(2026, 12, 5, 9, 30, tzinfo=UTC))
    await page.set_content(rendered_html(mail))
