"""The console's "done when" (issue 14) as one journey in a real Chromium: an owner added with
`mailrelay user add` sets a password through the link, logs in, answers a 2★ review from its
suggested draft, confirms an agent's report (sent by mail, as agents do), and reads the
month's chart (this calendar month, day by day, the hidden review not counted) — every step
through links and buttons, no URL typed after the login page."""

from __future__ import annotations

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.render.localized import long_date

from .browser import browser_page, require_browser
from .conftest import ConfigFactory, second_shop
from .mailtools import customer_mails, eventually, send, settle, via_sink
from .sink import Sink
from .test_console_login import PASSWORD, base, registered
from .tickets import AGENT, agent_reply, invited_now, submitted, ticketed

OWNER = "owner@acme.example"


async def test_a_new_owner_answers_from_a_draft_confirms_a_report_and_reads_the_chart(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink,
) -> None:
    require_browser()
    config: Config = via_sink(make_config(more=second_shop()), sink)
    async with Daemon(config, clock) as daemon, browser_page() as page:
        await registered(daemon, config, OWNER, "acme")  # `user add`, then the link
        reported = await ticketed(daemon, clock, sink, ref="2201", customer="kim@example.com")
        await send(daemon, agent_reply(reported, "#report spam"), reported.reply_to,
                   sender=AGENT)
        await settle(daemon)
        invitation = await invited_now(daemon, clock, shop_id="acme", email="ann@example.com",
                                       name="Ann Lee", reference="2202")
        review_id = await submitted(daemon, clock, invitation, stars="2", title="Late",
                                    text="The parcel arrived a week late.", name="Ann Lee")

        await page.goto(base(daemon) + "/console/login")
        await page.fill("#email", OWNER)
        await page.fill("#password", PASSWORD)
        async with page.expect_navigation():
            await page.press("#password", "Enter")
        assert page.url.endswith("/console/")

        # The inbox, from the home page; the 2★ review's answer starts as its draft.
        async with page.expect_navigation():
            await page.get_by_role("link", name="Inbox of ACME Shoes").click()
        async with page.expect_navigation():
            await page.locator(f'ul.queue a[href$="/r/{review_id}"]').click()
        draft = await page.input_value("#body")
        # The late-delivery paragraph, chosen from the review's words, with the order.
        assert draft.startswith("Hello Ann") and "order 2202" in draft, draft
        assert "took longer than it should have" in draft, draft
        async with page.expect_navigation():
            await page.locator("button[value=email]").click()
        review = daemon.store.read(lambda q: q.get_review(review_id))
        assert review is not None and review.response == draft.strip()
        await daemon.tick()
        # Ann got the answer by mail (from this tick, or the dispatcher the answer woke, which
        # may hold the mail a moment longer: it stores each result before its next send).
        await eventually(lambda: bool(customer_mails(sink)), what="Ann's answer at the sink")

        # The agent's report, confirmed by the owner on the moderation page.
        await page.goto(base(daemon) + "/console/")
        async with page.expect_navigation():
            await page.get_by_role("link", name="Reported reviews").click()
        async with page.expect_navigation():
            await page.locator("button[value=confirm]").first.click()
        hidden = daemon.store.read(lambda q: q.get_review(reported.review_id))
        assert hidden is not None and hidden.reported

        # The month's chart.
        await page.goto(base(daemon) + "/console/")
        async with page.expect_navigation():
            await page.locator('a[href="/console/acme/dashboard"]').click()
        charts = page.locator("svg.chart[role=img]")
        assert await charts.count() >= 4
        assert "Reviews per week" in await page.inner_text("main")
        async with page.expect_navigation():
            await page.get_by_role("link", name="This month").click()
        today = clock.now().date()  # acme's time zone is UTC
        assert page.url.endswith(f"/console/acme/dashboard?month={today:%Y-%m}")
        main = await page.inner_text("main")
        assert "Reviews per day" in main and "are not counted, as in mailrelay stats" in main
        assert await charts.count() >= 4
        numbers = page.locator("section[aria-labelledby=reviews-heading] details")
        await numbers.locator("summary").click()
        row = numbers.locator("tbody tr", has_text=long_date(today, "en"))
        # today's 2★ review counts; the reported one, hidden once confirmed, does not
        assert [cell.strip() for cell in await row.locator("th, td").all_inner_texts()] == [
            long_date(today, "en"), "1", "2.0"]
