"""The review journey in a real browser (Chromium via Playwright), on a phone-sized screen.

Mail in, invitation out to a real SMTP sink, the link from that mail opened in Chromium, the form
filled with the keyboard only, the ticket out to the agents, the review on the public page.
Screenshots of every page land in tests/artifacts/ for a human to look at.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock

from .browser import browser_page, require_browser, screenshot
from .mailtools import free_port, parsed, send, settle, sink_outbound, text_of, trigger
from .sink import Sink

if TYPE_CHECKING:  # typing only: the tests skip (or fail in CI) when playwright is missing
    from playwright.async_api import Page

TITLE = "Arrived late"
TEXT = "The shoes fit well, but the parcel took two weeks."


@pytest.fixture(autouse=True)
def _browser_available() -> None:
    require_browser()


def live(config: Config, sink: Sink) -> Config:
    """Outbound mail to the sink; the web on a known port, so that links in mails really work."""
    port = free_port()
    http = replace(config.http, host="127.0.0.1", port=port, base_url=f"http://127.0.0.1:{port}")
    outbound = sink_outbound(config, sink, rate_per_minute=60000)
    return replace(config, http=http, outbound=outbound)


async def invitation_link(daemon: Daemon, clock: FrozenClock, sink: Sink) -> str:
    """A shipping mail in by SMTP, a week later the invitation out: its review link."""
    await send(daemon, trigger(to="John Smith <john.smith@example.com>"))
    await settle(daemon)
    clock.advance(timedelta(days=7))
    assert await daemon.tick() == 1
    await sink.wait_for(1)
    _, rcpts, raw = sink.messages[0]
    assert rcpts == ["john.smith@example.com"]
    base = daemon.config.http.base_url
    match = re.search(rf"{re.escape(base)}/r/[A-Za-z0-9_-]+", text_of(parsed(raw)))
    assert match, text_of(parsed(raw))
    return match.group(0)


async def h1(page: Page) -> str:
    headings = page.locator("h1")
    assert await headings.count() == 1
    return (await headings.inner_text()).strip()


async def focused(page: Page, attribute: str) -> str | None:
    return await page.evaluate(f"() => document.activeElement?.getAttribute({attribute!r})")


async def tab_to(page: Page, attribute: str, value: str, limit: int = 12) -> None:
    """Press Tab until the focused element has attribute=value (as a keyboard user would)."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await focused(page, attribute) == value:
            return
    raise AssertionError(f"Tab never reached [{attribute}={value}]")


async def test_a_customer_reviews_with_the_keyboard_and_the_review_goes_to_agents_and_public(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(live(config, sink), clock) as daemon:
        review_url = await invitation_link(daemon, clock, sink)
        assert review_url.startswith(f"http://127.0.0.1:{daemon.http_port}/r/")
        async with browser_page() as page:
            response = await page.goto(review_url)
            assert response is not None and response.status == 200
            assert await h1(page) == "Review your order at ACME Shoes"
            await screenshot(page, "1-review-form")

            # Stars with the keyboard: Tab into the radio group, then arrow to the second star.
            await tab_to(page, "name", "stars")
            assert await focused(page, "id") == "stars-1"
            await page.keyboard.press("ArrowRight")
            assert await focused(page, "id") == "stars-2"
            assert await page.locator("input[name=stars]:checked").get_attribute("value") == "2"
            await screenshot(page, "1b-review-form-star-focused")
            await page.keyboard.press("Tab")
            assert await focused(page, "id") == "title"
            await page.keyboard.type(TITLE)
            await page.keyboard.press("Tab")
            assert await focused(page, "id") == "text"
            await page.keyboard.type(TEXT)
            await page.keyboard.press("Tab")
            assert await focused(page, "id") == "name"
            assert await page.get_by_label("Your name").input_value() == "John Smith"
            await screenshot(page, "2-review-form-filled")
            await tab_to(page, "type", "submit", limit=2)
            async with page.expect_navigation():
                await page.keyboard.press("Enter")

            assert await h1(page) == "Thank you for your review!"
            await page.get_by_text(TEXT).wait_for()
            assert await page.get_by_role("img", name="Rated 2 out of 5 stars").is_visible()
            await screenshot(page, "3-thank-you")

            # The ticket: to the agents, with a signed reply address.
            await daemon.tick()
            await sink.wait_for(2)
            tickets = [m for m in (parsed(raw) for _, _, raw in sink.messages[1:])
                       if m["X-Mailrelay-Key"]]
            assert [m["To"] for m in tickets] == ["support@acme.example"]
            ticket = tickets[0]
            local, _, domain = ticket["Reply-To"].partition("@")
            assert domain == "relay.test" and local.startswith("reply+")
            assert daemon.web.signer.key_valid(local.removeprefix("reply+"))
            assert TITLE in ticket["Subject"]
            assert TEXT in text_of(ticket)

            # The public page: reached from the thank-you page's own link.
            async with page.expect_navigation():
                await page.get_by_role("link", name="See all reviews of ACME Shoes").click()
            assert page.url.startswith(f"http://127.0.0.1:{daemon.http_port}/s/acme")
            assert await h1(page) == "Reviews of ACME Shoes"
            review = page.locator("li.review")
            assert await review.count() == 1
            assert await review.get_by_role("heading", name=TITLE).is_visible()
            assert await review.get_by_text(TEXT).is_visible()
            assert await review.get_by_role("img", name="Rated 2 out of 5 stars").is_visible()
            assert await review.locator(".rating").inner_text() == "★★☆☆☆"
            assert await page.get_by_text("1 review", exact=True).is_visible()
            await screenshot(page, "4-public-page")


async def test_review_form_works_without_javascript_in_the_browser(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(live(config, sink), clock) as daemon:
        review_url = await invitation_link(daemon, clock, sink)
        async with browser_page(java_script_enabled=False) as page:
            await page.goto(review_url)
            assert await page.locator("script").count() == 0  # nothing that could be missing
            # A tap on the fourth star (the label: the radios themselves are visually hidden).
            await page.locator("label[for=stars-4]").tap()
            assert await page.get_by_label("4 stars", exact=True).is_checked()
            await page.get_by_label("Your review").fill("Good shoes, no script needed.")
            async with page.expect_navigation():
                await page.get_by_role("button", name="Send review").click()
            assert await h1(page) == "Thank you for your review!"
        [row] = daemon.store.read(lambda q: q.list_reviews())
        assert (row.stars, row.text) == (4, "Good shoes, no script needed.")


async def test_review_form_is_accessible_in_the_browser(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(live(config, sink), clock) as daemon:
        review_url = await invitation_link(daemon, clock, sink)
        async with browser_page() as page:
            await page.goto(review_url)
            await h1(page)  # exactly one
            # Every visible control has a label of its own (not just a placeholder).
            unlabelled = await page.locator(
                "input:not([type=hidden]), textarea, select").evaluate_all(
                "els => els.filter(e => e.labels.length === 0).map(e => e.outerHTML)")
            assert unlabelled == []
            for label in ("Title (optional)", "Your review", "Your name"):
                assert await page.get_by_label(label, exact=True).count() == 1
            for n, label in enumerate(["1 star", "2 stars", "3 stars", "4 stars", "5 stars"], 1):
                star = page.get_by_label(label, exact=True)
                assert await star.get_attribute("value") == str(n)
                assert await page.get_by_role("radio", name=label, exact=True).count() == 1
            assert await page.get_by_role("group", name="Your rating").count() == 1

            # The browser itself refuses a form without stars...
            await page.get_by_label("Your review").fill("No stars from me.")
            await page.get_by_role("button", name="Send review").click()
            assert await page.locator("input[name=stars]:invalid").count() == 5
            assert await h1(page) == "Review your order at ACME Shoes"
            # ...and without that check, the server explains it, in an alert that has focus.
            await page.locator("form").evaluate("form => { form.noValidate = true; }")
            async with page.expect_navigation():
                await page.get_by_role("button", name="Send review").click()
            alert = page.get_by_role("alert")
            assert await alert.count() == 1
            assert await alert.is_visible()
            assert "Please choose from 1 to 5 stars." in await alert.inner_text()
            assert await page.evaluate(
                "() => document.activeElement?.getAttribute('role')") == "alert"
            stars = page.locator("input[name=stars]")
            assert await stars.count() == 5
            for n in range(5):
                assert await stars.nth(n).get_attribute("aria-invalid") == "true"
                assert "stars-error" in (await stars.nth(n).get_attribute("aria-describedby")
                                         or "")
            assert await page.get_by_label("Your review").input_value() == "No stars from me."
            await screenshot(page, "5-review-form-error")
            # The summary links to the stars: following it lands the keyboard there.
            await page.keyboard.press("Tab")
            assert await focused(page, "href") == "#stars-1"
            await page.keyboard.press("Enter")
            assert await focused(page, "id") == "stars-1"
            await page.keyboard.press("ArrowRight")
            assert await page.locator("input[name=stars]:checked").get_attribute("value") == "2"
        assert daemon.store.read(lambda q: q.list_reviews()) == []
