"""The embeds on a shop's own site, in a real browser (Chromium via Playwright).

A page served by a second aiohttp server on another loopback port (another origin) frames the
widget, shows the badge as an image and fetches the JSON; the same page from an origin the shop
did not list gets the frame refused and the JSON unreadable. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock

from .browser import browser_page, require_browser, screenshot
from .conftest import ConfigFactory
from .mailtools import free_port
from .test_embeds import add_review, rate_product

if TYPE_CHECKING:  # typing only: the tests skip (or fail in CI) when playwright is missing
    from playwright.async_api import Page

SHOP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Trail boots – the shop</title></head>
<body>
<h1>Our trail boots</h1>
<iframe id="widget" name="widget" title="Customer reviews" src="{relay}/s/acme/widget"
        width="360" height="580" style="border:0"></iframe>
<footer><a href="{relay}/s/acme"><img id="badge" src="{relay}/s/acme/badge.svg"
        width="200" height="56" alt="Our customer reviews"></a></footer>
</body></html>
"""


@pytest.fixture(autouse=True)
def _browser_available() -> None:
    require_browser()


@asynccontextmanager
async def shop_site(port: int, relay: str) -> AsyncIterator[str]:
    """The shop's own site on 127.0.0.1:`port`: one page embedding the relay."""

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=SHOP_PAGE.format(relay=relay), content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def ports() -> tuple[int, int, int]:
    """The relay's, the shop site's (listed) and a stranger's (not listed)."""
    return free_port(), free_port(), free_port()


@pytest.fixture
def config(make_config: ConfigFactory, ports: tuple[int, int, int]) -> Config:
    relay, site, _stranger = ports
    loaded = make_config(shop_extra=f'embed_origins = ["http://127.0.0.1:{site}"]')
    http = replace(loaded.http, host="127.0.0.1", port=relay,
                   base_url=f"http://127.0.0.1:{relay}")
    return replace(loaded, http=http)


FETCH_JSON = """async (url) => {
  try { const r = await fetch(url); return (await r.json()).summary.count; }
  catch (e) { return "refused"; }
}"""


async def test_the_widget_and_badge_render_on_the_shops_site_and_not_elsewhere(
    daemon: Daemon, clock: FrozenClock, ports: tuple[int, int, int],
) -> None:
    for n, stars in enumerate((5, 4, 5), 1):
        await add_review(daemon, n, stars)
    relay = daemon.config.http.base_url
    _relay_port, site_port, stranger_port = ports
    async with shop_site(site_port, relay) as site, \
            shop_site(stranger_port, relay) as stranger, browser_page() as page:
        await page.goto(site + "/")
        frame = page.frame(name="widget")
        assert frame is not None
        await frame.wait_for_selector("h1")
        assert await frame.inner_text("h1") == "Customer reviews of ACME Shoes"
        assert "3 reviews" in await frame.inner_text("header")
        assert await frame.locator("article").count() == 3
        await page.wait_for_function(
            "document.getElementById('badge').complete")
        size = await page.evaluate(
            "[document.getElementById('badge').naturalWidth,"
            " document.getElementById('badge').naturalHeight]")
        assert size == [200, 56]
        assert await page.evaluate(FETCH_JSON, f"{relay}/s/acme/reviews.json") == 3
        await screenshot(page, "embeds-on-the-shops-site")

        refusals: list[str] = []
        page.on("console", lambda message: refusals.append(message.text))
        await page.goto(stranger + "/")
        await page.wait_for_function("document.getElementById('badge').complete")
        frame = page.frame(name="widget")
        assert frame is not None
        await page.wait_for_timeout(300)
        # Chromium shows its own error page in the frame instead of the widget.
        assert frame.url.startswith("chrome-error://"), frame.url
        assert "Customer reviews" not in await frame.inner_text("body")
        assert await frame.locator("article").count() == 0
        assert any("frame-ancestors" in text for text in refusals), refusals
        # The badge is only an image: it shows anywhere (a mail signature, too).
        assert await page.evaluate("document.getElementById('badge').naturalWidth") == 200
        assert await page.evaluate(FETCH_JSON, f"{relay}/s/acme/reviews.json") == "refused"
        await screenshot(page, "embeds-refused-on-another-origin")


async def axe_violations(page: Page) -> list[str]:
    """axe-core (bundled in axe-playwright-python, injected by Playwright) on the page."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page, options={"resultTypes": ["violations"]})
    return [f"{violation['id']}: {', '.join(map(str, node['target']))}"
            for violation in results.response["violations"] for node in violation["nodes"]]


async def test_the_widgets_have_no_axe_violations_at_phone_and_desktop_width(
    make_config: ConfigFactory, clock: FrozenClock,
) -> None:
    # A pale yellow accent: the widget darkens it for text and stars.
    config = make_config(shop_extra='accent_color = "#ffe14d"')
    async with Daemon(config, clock) as daemon:
        first = await add_review(daemon, 1, 4)
        await add_review(daemon, 2, 5)
        await rate_product(daemon, first, "acme", 4, "Warm and dry on a wet day")
        await daemon.store.write(lambda q: q.add_response(
            first, "Thank you for the kind words!", "agent", "agent", daemon.clock.now()))
        relay = f"http://127.0.0.1:{daemon.http_port}"
        found: list[str] = []
        async with browser_page() as page:
            for path in ("/s/acme/widget", "/s/acme/p/BOOT-42/widget"):
                await page.goto(relay + path)
                for width in (360, 1280):
                    await page.set_viewport_size({"width": width, "height": 800})
                    name = path.strip("/").replace("/", "-")
                    await screenshot(page, f"embeds-{name}-{width}")
                    found += [f"{path} @{width}px: {line}"
                              for line in await axe_violations(page)]
    assert not found, "\n".join(found)
