"""A real browser for tests: Debian's Chromium driven by Playwright, in the test's own event loop.

Chromium comes from the Debian package `chromium` (/usr/bin/chromium), never from
`playwright install`: the machine has no network beyond loopback, and the flags below keep
Chromium from trying to reach one (updates, sync, QUIC probes, first-run pages).
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .conftest import missing, require_program

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: A phone: the pages must work at this size first.
PHONE = {"width": 390, "height": 844}
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
#: A broken page fails the test in seconds, not after Playwright's default 30 s.
TIMEOUT_MS = 5_000


def require_browser() -> str:
    """Path of Chromium after checking that Playwright is importable; skip (fail in CI) if not."""
    if importlib.util.find_spec("playwright") is None:
        missing("playwright not installed: pip install playwright (the test extra has it)")
    return require_program("chromium", "chromium")


@asynccontextmanager
async def browser_page(**context_options: Any) -> AsyncIterator[Page]:
    """A fresh page in a phone-sized browser context; `context_options` go to new_context()
    (e.g. java_script_enabled=False). Everything is closed again on exit."""
    executable = require_browser()
    from playwright.async_api import async_playwright

    options: dict[str, Any] = {"viewport": PHONE, "device_scale_factor": 1, "is_mobile": True,
                               "has_touch": True, "locale": "en-US", **context_options}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable,
                                                   args=CHROMIUM_ARGS, timeout=15_000)
        try:
            context = await browser.new_context(**options)
            try:
                context.set_default_timeout(TIMEOUT_MS)
                page = await context.new_page()
                yield page
            finally:
                await context.close()
        finally:
            await browser.close()


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as tests/artifacts/<name>.png (to look at; git ignores it)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
