"""The agents' inbox and answer form in a real Chromium (issue 14): log in, open the inbox,
open a 2★ review, preview the customer's email, publish — at 360 px and 1280 px, with a
screenshot of each step in tests/artifacts/ and axe-core finding 0 violations; and the same
with the keyboard only (Tab, Enter and Space), focus moving and each action happening."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from mailrelay.app import Daemon
from mailrelay.core.clock import FrozenClock

from .accessibility import axe_violations
from .browser import browser_page, require_browser, screenshot
from .conftest import ConfigFactory, second_shop
from .mailtools import customer_mails, drain, via_sink
from .sink import Sink
from .test_console_inbox import AGENT, Seeded, seed
from .test_console_login import PASSWORD, base, registered

if TYPE_CHECKING:
    from playwright.async_api import Page

ANSWER = "Sorry the parcel was late, Bob. We have refunded the shipping."


@pytest.fixture
async def console(make_config: ConfigFactory, clock: FrozenClock,
                  sink: Sink) -> AsyncIterator[tuple[Daemon, Seeded]]:
    require_browser()
    shops = make_config(more=second_shop())
    async with Daemon(via_sink(shops, sink), clock) as daemon:
        ids = await daemon.store.write(seed)
        await registered(daemon, shops, AGENT, "acme", "agent")
        yield daemon, ids


async def checked(page: Page, name: str, width: int) -> list[str]:
    """A screenshot tests/artifacts/console-<name>-<width>.png and axe's violations."""
    await screenshot(page, f"console-{name}-{width}")
    return [f"{name} at {width}px: {line}" for line in await axe_violations(page)]


async def log_in(page: Page, daemon: Daemon) -> None:
    await page.goto(base(daemon) + "/console/login")
    await page.get_by_label("Email address").fill(AGENT)
    await page.get_by_label("Password").fill(PASSWORD)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Log in").click()


@pytest.mark.parametrize("width", [360, 1280])
async def test_an_agent_answers_a_two_star_review_from_the_inbox_after_a_preview(
        console: tuple[Daemon, Seeded], sink: Sink, width: int) -> None:
    daemon, ids = console
    found: list[str] = []
    async with browser_page(viewport={"width": width, "height": 800}) as page:
        await log_in(page, daemon)
        found += await checked(page, "home", width)
        async with page.expect_navigation():
            await page.get_by_role("link", name="ACME Shoes").click()
        assert page.url.endswith("/console/acme/")
        await page.get_by_text("3 reviews are waiting for an answer.").wait_for()
        found += await checked(page, "inbox", width)
        async with page.expect_navigation():
            await page.get_by_role("link", name="2 stars: Slow").click()
        assert page.url.endswith(f"/console/acme/r/{ids.bob2}")
        found += await checked(page, "review", width)
        await page.get_by_label("Answer", exact=True).fill(ANSWER)
        async with page.expect_navigation():
            await page.get_by_role("button", name="Preview the email").click()
        preview = page.locator("section.preview")
        await preview.get_by_text("bob@example.com").wait_for()
        assert "We have refunded the shipping." in await preview.inner_text()
        found += await checked(page, "preview", width)
        async with page.expect_navigation():
            await page.get_by_role("button", name="Publish and email the customer").click()
        await page.get_by_role("status").get_by_text("Your answer is published.").wait_for()
        found += await checked(page, "published", width)
    assert not found, "\n".join(found)
    await drain(daemon)
    review = await daemon.store.aread(lambda q: q.get_review(ids.bob2))
    assert review is not None and review.response == ANSWER
    assert len(customer_mails(sink, "bob@example.com")) == 1


async def focused(page: Page, attribute: str) -> str | None:
    value: str | None = await page.evaluate(
        f"() => document.activeElement && document.activeElement.getAttribute('{attribute}')")
    return value


async def tab_until(page: Page, attribute: str, value: str, limit: int = 40) -> int:
    """Press Tab until the focused element's `attribute` is `value`; each press must move
    the focus. Returns the number of presses."""
    before = await page.evaluate("() => document.activeElement && document.activeElement.outerHTML")
    for presses in range(1, limit + 1):
        await page.keyboard.press("Tab")
        now = await page.evaluate(
            "() => document.activeElement && document.activeElement.outerHTML")
        assert now != before, f"Tab did not move the focus from {before}"
        before = now
        if await focused(page, attribute) == value:
            return presses
    raise AssertionError(f"no element with {attribute}={value!r} within {limit} Tabs")


async def test_the_inbox_and_the_answer_form_work_with_the_keyboard_only(
        console: tuple[Daemon, Seeded], sink: Sink) -> None:
    daemon, ids = console
    async with browser_page(viewport={"width": 1280, "height": 800}, is_mobile=False,
                            has_touch=False) as page:
        await log_in(page, daemon)
        await page.goto(base(daemon) + "/console/acme/")
        # The text filter: Tab to it, type, Enter submits the GET form.
        await tab_until(page, "id", "f-q")
        await page.keyboard.type("late")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        assert page.url.endswith("&q=late")
        assert await page.locator("ul.queue > li").count() == 1
        # The review: Tab to its link, Enter opens it.
        await tab_until(page, "href", f"/console/acme/r/{ids.bob2}")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        assert page.url.endswith(f"/console/acme/r/{ids.bob2}")
        # The answer: Tab to the field, type, Tab to "Preview" and press Space.
        await tab_until(page, "id", "body")
        await page.keyboard.press("Control+A")  # the suggested draft, replaced by our words
        await page.keyboard.type(ANSWER)
        await tab_until(page, "value", "preview", limit=5)
        async with page.expect_navigation():
            await page.keyboard.press("Space")
        assert await focused(page, "id") == "preview-heading"  # the preview is announced
        assert await page.locator("#body").input_value() == ANSWER  # kept for sending
        await tab_until(page, "value", "noemail")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await page.get_by_role("status").get_by_text("Your answer is published.").wait_for()
        await screenshot(page, "console-keyboard-published-1280")
    await drain(daemon)
    review = await daemon.store.aread(lambda q: q.get_review(ids.bob2))
    assert review is not None and review.response == ANSWER
    assert customer_mails(sink, "bob@example.com") == []  # published without email
