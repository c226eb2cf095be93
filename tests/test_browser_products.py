"""Product reviews in a real browser (Chromium via Playwright) on a phone: a shipping mail with
two products, the form showing both with their pictures (served over https by a server of our
own), rated by tapping, then the product page; axe-core finds nothing at 360 px or 1280 px.
Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock

from .browser import browser_page, require_browser, screenshot
from .mailtools import free_port, parsed, send, settle, text_of
from .sink import Sink
from .test_browser import live
from .test_products import SOCKS, TRAIL_RUNNER, shipping_mail

if TYPE_CHECKING:
    from playwright.async_api import Page

#: A picture of a product, as a shop's CDN would serve it.
PICTURE = ('<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
           '<rect width="96" height="96" fill="#e0f2fe"/><path d="M14 62h52l16 10v8H14z"'
           ' fill="{colour}"/></svg>')
WIDTHS = (360, 1280)


@pytest.fixture(autouse=True)
def _browser_available() -> None:
    require_browser()


@pytest.fixture
async def pictures(certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    """An https server with the products' pictures; its base URL."""
    app = web.Application()
    for name, colour in (("tr-42", "#1d4ed8"), ("sock-7", "#b45309")):
        body = PICTURE.format(colour=colour)

        async def serve(_request: web.Request, body: str = body) -> web.Response:
            return web.Response(text=body, content_type="image/svg+xml")

        app.router.add_get(f"/{name}.svg", serve)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def review_link(daemon: Daemon, clock: FrozenClock, sink: Sink,
                      products: list[dict[str, str]]) -> str:
    await send(daemon, shipping_mail("ann@example.com", "Ann Lee", "1057", products))
    await settle(daemon)
    clock.advance(timedelta(days=7))
    assert await daemon.tick() == 1
    await sink.wait_for(1)
    body = text_of(parsed(sink.messages[0][2]))
    match = re.search(rf"{re.escape(daemon.config.http.base_url)}/r/[A-Za-z0-9_-]+", body)
    assert match, body
    return match.group(0)


async def axe_at_widths(page: Page, name: str) -> list[str]:
    """axe-core's violations at each width (a screenshot of each), one line per element."""
    from axe_playwright_python.async_playwright import Axe

    found: list[str] = []
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 800})
        await screenshot(page, f"{name}-{width}")
        results = await Axe().run(page, options={"resultTypes": ["violations"]})
        violations: list[dict[str, Any]] = results.response["violations"]
        found += [f"{name} @{width}px: {v['id']}: {', '.join(map(str, node['target']))}"
                  for v in violations for node in v["nodes"]]
    return found


async def pictures_loaded(page: Page) -> list[int]:
    return list(await page.locator("img").evaluate_all(
        "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)"))


async def test_a_customer_rates_two_products_on_a_phone_and_sees_one_on_its_page(
    config: Config, clock: FrozenClock, sink: Sink, pictures: str,
) -> None:
    products = [{**TRAIL_RUNNER, "image": f"{pictures}/tr-42.svg"},
                {**SOCKS, "imageUrl": f"{pictures}/sock-7.svg"}]
    async with Daemon(live(config, sink), clock) as daemon:
        url = await review_link(daemon, clock, sink, products)
        async with browser_page(ignore_https_errors=True,
                                viewport={"width": 360, "height": 780}) as page:
            await page.goto(url)
            assert await page.locator("script").count() == 0
            assert await pictures_loaded(page) == [96, 96]
            for name in ("Trail Runner", "Merino socks"):
                product = page.get_by_role("group", name=name, exact=True)
                assert await product.count() == 1
                rating = product.get_by_role("group", name=f"Your rating of {name} (optional)")
                assert await rating.get_by_role("radio").count() == 6  # 1–5 and "No rating"
                assert await product.get_by_role("radio", name="No rating").is_checked()
                assert await product.get_by_label(
                    f"What do you think of {name}? (optional)").count() == 1
            await screenshot(page, "products-1-review-form")
            assert await axe_at_widths(page, "products-review-form") == []
            await page.set_viewport_size({"width": 360, "height": 780})

            await page.locator("label[for=stars-4]").tap()
            await page.get_by_label("Your review", exact=True).fill("Quick and well packed.")
            await page.locator("label[for=product-1-stars-5]").tap()
            assert await page.get_by_role("group", name="Trail Runner", exact=True).get_by_role(
                "radio", name="5 stars").is_checked()
            await page.get_by_label("What do you think of Trail Runner? (optional)").fill(
                "Grippy on wet rock.")
            await page.locator("label[for=product-2-stars-3]").tap()
            await screenshot(page, "products-2-review-form-filled")
            async with page.expect_navigation():
                await page.get_by_role("button", name="Send review").click()
            assert (await page.locator("h1").inner_text()).strip() == (
                "Thank you for your review!")
            assert await axe_at_widths(page, "products-thank-you") == []

            await page.goto(f"{daemon.config.http.base_url}/s/acme/p/TR-42")
            assert "Grippy on wet rock." in await page.locator("main").inner_text()
            assert await pictures_loaded(page) == [96]
            assert await axe_at_widths(page, "products-3-product-page") == []
        [review] = daemon.store.read(lambda q: q.list_reviews())
        rated = daemon.store.read(lambda q: q.product_reviews_of(review.id))
        assert [(r.sku, r.stars, r.text) for r in rated] == [
            ("TR-42", 5, "Grippy on wet rock."), ("SOCK-7", 3, None)]
