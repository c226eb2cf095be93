"""axe-core finds 0 violations on every page a customer sees and on the invitation email, at
360 px and 1280 px, for two shops with very different accents (a pale yellow and a near-black,
both with a logo served from another origin). Screenshots land in tests/artifacts/.

To check another page, add one line to PAGES: a name and how to open it, e.g.
    AxePage("widget", path(lambda s: f"/s/{s.shop}/widget")),
`Scene` has the shop, a fresh review link, a reviewed one and its unsubscribe link.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.core.tokens import REVIEW, UNSUBSCRIBE
from mailrelay.render import InvitationView, Templates, invitation_mail
from mailrelay.services import accounts

from .accessibility import MAIL_RULES, PAGE_RULES, check_at_widths
from .browser import browser_page, require_browser
from .conftest import ConfigFactory, second_shop
from .console_pages import console_inbox, console_review
from .mailtools import free_port
from .rendered import rendered_html
from .web_forms import base, invite, submit

if TYPE_CHECKING:  # typing only: the test skips (or fails in CI) when playwright is missing
    from playwright.async_api import Page

LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="160" height="40" viewBox="0 0 160 40">'
        '<rect width="160" height="40" rx="6" fill="#1f2937"/>'
        '<text x="80" y="26" font-family="sans-serif" font-size="18" fill="#ffffff" '
        'text-anchor="middle">{name}</text></svg>')
#: A pale yellow and a near-black: the button text flips, the link colour moves a long way.
SHOPS = {"acme": "#fef08a", "bolt": "#111111"}


@dataclass(frozen=True)
class Scene:
    """What the pages under test need: one shop of a running daemon, with data."""

    daemon: Daemon
    shop: str  # the shop's id
    base: str  # http://127.0.0.1:port
    token: str  # a review link not used yet
    reviewed: str  # a review link whose review was sent (the thank-you page)
    unsubscribe: str  # the unsubscribe token of `token`


Opener = Callable[[Scene, "Page"], Awaitable[None]]


CONSOLE_PASSWORD = "a long enough console password"


@dataclass(frozen=True)
class AxePage:
    name: str
    open: Opener
    rules: dict[str, object] | None = PAGE_RULES
    logo: bool = True  # a page of the shop: its logo must show (False: a neutral page)


def path(where: Callable[[Scene], str], status: int = 200) -> Opener:
    """Open the path `where(scene)` of the daemon and expect `status`."""

    async def opener(scene: Scene, page: Page) -> None:
        response = await page.goto(scene.base + where(scene))
        assert response is not None and response.status == status, where(scene)

    return opener


async def form_with_errors(scene: Scene, page: Page) -> None:
    """The form sent with nothing filled in (past the browser's own checks): the server's
    error summary and the fields marked invalid."""
    await path(lambda s: f"/r/{s.token}")(scene, page)
    await page.locator("form.card").evaluate("form => { form.noValidate = true; }")
    async with page.expect_navigation():
        await page.locator("button[type=submit]").click()
    assert await page.locator("#error-summary").count() == 1


async def console_home(scene: Scene, page: Page) -> None:
    """Log in as the shop's owner through the login form; the console's home page."""
    email = f"owner@{scene.shop}.example"
    now = scene.daemon.clock.now()
    link = await scene.daemon.store.write(lambda q: accounts.add_user(
        q, scene.daemon.config, email, scene.shop, "owner", now))
    token = link.rpartition("/")[2]
    assert await scene.daemon.store.write(
        lambda q: accounts.set_password(q, token, CONSOLE_PASSWORD, now))
    await page.goto(scene.base + "/console/login")
    await page.fill("#email", email)
    await page.fill("#password", CONSOLE_PASSWORD)
    async with page.expect_navigation():
        await page.locator("button[type=submit]").click()
    assert page.url.endswith("/console/"), page.url


def email(purpose: str) -> Opener:
    """The invitation (or reminder) email's HTML part as rendered for the shop."""

    async def opener(scene: Scene, page: Page) -> None:
        await show_email(scene, page, purpose)

    return opener


async def show_email(scene: Scene, page: Page, purpose: str) -> None:
    config = scene.daemon.config
    shop = config.shop(scene.shop)
    assert shop is not None
    view = InvitationView(
        purpose=purpose, to_email="jane@customer.example", to_name="Jane Doe",
        locale=None, reference="#2111", review_url=f"{scene.base}/r/{scene.token}",
        unsubscribe_url=f"{scene.base}/u/{scene.unsubscribe}",
        products=[{"name": "Trail shoes"}, {"name": "Wool socks"}])
    mail = invitation_mail(Templates(config), config, shop, view,
                           now=datetime(2026, 11, 20, 9, 30, tzinfo=UTC))
    # Shown as a webmail would: a page of its own (not under our pages' CSP), here on the
    # logo's origin, since Chromium keeps an opaque origin from fetching loopback images.
    origin = urlsplit(shop.logo_url or scene.base)
    inbox = f"{origin.scheme}://{origin.netloc}/inbox/{purpose}"
    html = rendered_html(mail)
    await page.route(inbox, lambda route: route.fulfill(body=html, content_type="text/html"))
    await page.goto(inbox, wait_until="load")


PAGES = [
    AxePage("review-form", path(lambda s: f"/r/{s.token}")),
    AxePage("review-form-errors", form_with_errors),
    AxePage("thank-you", path(lambda s: f"/r/{s.reviewed}/thanks")),
    AxePage("public", path(lambda s: f"/s/{s.shop}")),
    AxePage("unsubscribe", path(lambda s: f"/u/{s.unsubscribe}")),
    AxePage("not-found", path(lambda s: f"/s/{s.shop}/no-such-page", 404), logo=False),
    AxePage("not-found-in-shop", path(lambda s: f"/s/{s.shop}?page=99", 404)),
    AxePage("console-login", path(lambda s: "/console/login"), logo=False),
    AxePage("console-home", lambda s, p: console_home(s, p), logo=False),
    AxePage("invitation-email", email("invitation"), MAIL_RULES),
    AxePage("reminder-email", email("reminder"), MAIL_RULES),
    AxePage("console-inbox", console_inbox, logo=False),
    AxePage("console-review-preview", console_review("preview"), logo=False),
]


@pytest.fixture
async def logo_origin() -> AsyncIterator[str]:
    """A second origin serving each shop's logo, as a shop's CDN would."""

    async def logo(request: web.Request) -> web.Response:
        return web.Response(text=LOGO.format(name=request.match_info["shop"].upper()),
                            content_type="image/svg+xml")

    app = web.Application()
    app.add_routes([web.get("/{shop}/logo.svg", logo)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def looks(make_config: ConfigFactory, logos: str) -> Config:
    acme = (f'site_url = "https://acme.example/"\nlogo_url = "{logos}/acme/logo.svg"\n'
            f'accent_color = "{SHOPS["acme"]}"\n')
    bolt = second_shop(site_url="https://bolt.example/", logo_url=f"{logos}/bolt/logo.svg",
                       accent_color=SHOPS["bolt"])
    return make_config(shop_extra=acme, more=bolt)


async def scene_of(daemon: Daemon, shop: str, http: aiohttp.ClientSession) -> Scene:
    fresh = await invite(daemon, email=f"fresh@{shop}.example", shop_id=shop)
    done = await invite(daemon, email=f"done@{shop}.example", shop_id=shop)
    status, _html = await submit(http, daemon, done.token, stars="4", title="Quick and kind",
                                 text="The parcel came a day early, well packed.",
                                 name="Jo Example")
    assert status == 200
    unsubscribe = daemon.web.signer.convert(fresh.token, REVIEW, UNSUBSCRIBE)
    assert unsubscribe is not None
    return Scene(daemon, shop, base(daemon), fresh.token, done.token, unsubscribe)


@pytest.mark.parametrize("shop", sorted(SHOPS))
async def test_axe_finds_no_violation_on_any_page_at_phone_and_desktop_width(
    make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession,
    logo_origin: str, shop: str,
) -> None:
    require_browser()
    config = looks(make_config, logo_origin)
    found: list[str] = []
    async with Daemon(config, clock) as daemon, browser_page() as page:
        scene = await scene_of(daemon, shop, http)
        for item in PAGES:
            await item.open(scene, page)
            # The logo came from its own origin (through the pages' CSP).
            loaded = await page.evaluate(
                "() => [...document.images].map(i => i.complete && i.naturalWidth > 0)")
            assert all(loaded) and (bool(loaded) or not item.logo), f"{item.name}: no logo"
            found += await check_at_widths(page, f"axe-{shop}-{item.name}", item.rules)
    assert not found, "\n".join(found)
