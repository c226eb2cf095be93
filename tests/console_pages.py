"""Openers for the console's pages in tests/test_accessibility.py: an agent of the scene's shop
is created (once) and logged in through the login form, then the page is opened."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mailrelay.services import accounts

if TYPE_CHECKING:
    from playwright.async_api import Page

PASSWORD = "a long and quiet afternoon"


async def log_in_agent(scene: Any, page: Page) -> None:
    """The scene's shop's agent, logged in (created and given a password the first time)."""
    daemon, email = scene.daemon, f"axe-agent@{scene.shop}.example"
    now = daemon.clock.now()
    if await daemon.store.aread(lambda q: q.user_by_email(email)) is None:
        link = await daemon.store.write(lambda q: accounts.add_user(
            q, daemon.config, email, scene.shop, "agent", now))
        token = link.rsplit("/", 1)[1]
        await daemon.store.write(lambda q: accounts.set_password(q, token, PASSWORD, now))
    await page.goto(scene.base + "/console/")
    if page.url.endswith("/console/login"):
        await page.get_by_label("Email address").fill(email)
        await page.get_by_label("Password").fill(PASSWORD)
        async with page.expect_navigation():
            await page.get_by_role("button", name="Log in").click()


async def console_inbox(scene: Any, page: Page) -> None:
    await log_in_agent(scene, page)
    response = await page.goto(f"{scene.base}/console/{scene.shop}/")
    assert response is not None and response.status == 200


def console_review(action: str | None = None) -> Callable[[Any, Page], Awaitable[None]]:
    """The first review of the inbox; with `action` ("preview"), its answer form sent so."""

    async def opener(scene: Any, page: Page) -> None:
        await console_inbox(scene, page)
        async with page.expect_navigation():
            await page.locator("ul.queue a").first.click()
        if action is not None:
            await page.locator("#body").fill("Thank you for the kind words.")
            async with page.expect_navigation():
                await page.locator(f"button[value={action}]").click()

    return opener
