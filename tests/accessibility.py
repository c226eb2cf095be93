"""axe-core in a real Chromium: run it on a page, save a screenshot, report every violation.

axe-core comes bundled in the `axe-playwright-python` package (its axe.min.js is injected
into the page by Playwright, which the page's CSP does not govern), so this works offline
with Debian's Chromium from tests/browser.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .browser import screenshot

if TYPE_CHECKING:
    from playwright.async_api import Page

#: The widths every page is checked at: a small phone and a desktop.
WIDTHS = (360, 1280)
#: Pages: every rule axe runs by default (WCAG 2.0–2.2 A/AA and best practices).
PAGE_RULES: dict[str, Any] | None = None
#: A mail's HTML is shown inside a mail client's own page: WCAG A/AA only, not the best
#: practices about a page's landmarks and its one h1 (a message is neither).
MAIL_RULES: dict[str, Any] = {"type": "tag", "values": [
    "wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]}


async def axe_violations(page: Page, run_only: dict[str, Any] | None = None) -> list[str]:
    """axe-core's violations on the page as it is now, one readable line per element."""
    from axe_playwright_python.async_playwright import Axe

    options: dict[str, Any] = {"resultTypes": ["violations"]}
    if run_only is not None:
        options["runOnly"] = run_only
    results = await Axe().run(page, options=options)
    lines = []
    for violation in results.response["violations"]:
        for node in violation["nodes"]:
            lines.append(f"{violation['id']} ({violation['impact']}): "
                         f"{', '.join(map(str, node['target']))}: {node['failureSummary']}")
    return lines


async def check_at_widths(page: Page, name: str,
                          run_only: dict[str, Any] | None = None) -> list[str]:
    """axe at each of WIDTHS, a screenshot of each in tests/artifacts/<name>-<width>.png;
    the violations found, each line prefixed with the page and width."""
    found: list[str] = []
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 800})
        await screenshot(page, f"{name}-{width}")
        found += [f"{name} @{width}px: {line}" for line in await axe_violations(page, run_only)]
    return found
