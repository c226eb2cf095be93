"""Each shop's look on its pages, over HTTP against the whole daemon: logo, link back to the
shop, accent colours made AA-safe, the CSP opened for the logo's origin only, and a shop's own
web templates (templates_dir/web/…) used for that shop's pages only."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import aiohttp

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.core.tokens import REVIEW, UNSUBSCRIBE
from mailrelay.edges.web.look import policy_with_logo
from mailrelay.render.brand import brand_of

from .conftest import ConfigFactory, second_shop
from .web_forms import base, invite, submit

LOOK = '''
site_url = "https://acme.example/shop"
logo_url = "https://cdn.acme.example/logo.png"
accent_color = "#FFFF00"
'''
CSP_IMG = "img-src 'self' data:;"


def properties(html: str) -> dict[str, str]:
    root = re.search(r":root \{([^}]*)\}", html)
    assert root, html[:500]
    return dict(re.findall(r"(--[a-z-]+): (#[0-9a-f]{6});", root.group(1)))


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str, str]:
    async with http.get(url) as resp:
        return resp.status, await resp.text(), resp.headers["Content-Security-Policy"]


async def test_every_page_of_a_shop_shows_its_logo_link_back_and_safe_colours(
    make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    config = make_config(shop_extra=LOOK, more=second_shop())
    async with Daemon(config, clock) as daemon:
        inv = await invite(daemon)
        unsubscribe = daemon.web.signer.convert(inv.token, REVIEW, UNSUBSCRIBE)
        pages = [f"/r/{inv.token}", "/s/acme", f"/u/{unsubscribe}"]
        status, _ = await submit(http, daemon, inv.token)
        assert status == 200  # the redirect followed to the thank-you page
        pages.append(f"/r/{inv.token}/thanks")
        expected = brand_of("#ffff00")
        for path in pages:
            status, html, csp = await get(http, base(daemon) + path)
            assert status == 200, path
            assert '<img class="logo" src="https://cdn.acme.example/logo.png" alt="ACME Shoes"' \
                in html, path
            assert '<a href="https://acme.example/shop">Back to ACME Shoes</a>' in html, path
            props = properties(html)
            assert props["--accent-link"] == expected.link != "#ffff00", path
            assert props["--accent-button"] == "#ffff00", path
            assert props["--accent-button-text"] == expected.button_text, path
            # The logo's origin, and no other image host.
            assert "img-src 'self' data: https://cdn.acme.example;" in csp, path
            assert "frame-ancestors 'none'" in csp


async def test_a_shop_without_look_settings_and_a_page_of_no_shop_stay_neutral(
    make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    config = make_config(shop_extra=LOOK, more=second_shop())
    async with Daemon(config, clock) as daemon:
        await invite(daemon, shop_id="bolt")
        status, html, csp = await get(http, base(daemon) + "/s/bolt")
        assert status == 200
        assert "acme.example" not in html and "<img" not in html
        assert '<span class="name">Bolt Bikes</span>' in html
        assert "Back to" not in html  # bolt has no site_url
        assert properties(html)["--accent-link"] == "#1d4ed8"
        assert CSP_IMG in csp
        status, html, csp = await get(http, base(daemon) + "/nowhere")
        assert status == 404
        assert 'class="shop-bar"' not in html and CSP_IMG in csp
        assert properties(html)["--accent-button"] == "#1d4ed8"


async def test_a_shops_templates_dir_replaces_its_web_page_and_not_another_shops(
    make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    folder = tmp_path / "bolt-templates"
    (folder / "web").mkdir(parents=True)
    (folder / "web" / "public.html.j2").write_text(
        '{% extends "base.html.j2" %}{% block title %}Our reviews{% endblock %}'
        '{% block content %}<h1>Our own page for {{ shop_name }}</h1>'
        '<p>{{ count }} reviews</p>{% endblock %}', encoding="utf-8")
    config = make_config(more=second_shop(templates_dir=str(folder),
                                          name="Bolt <Bikes> & Co", accent_color="#0a0a0a"))
    async with Daemon(config, clock) as daemon:
        status, html, _ = await get(http, base(daemon) + "/s/bolt")
        assert status == 200
        # autoescape stays on in a shop's own templates
        assert "<h1>Our own page for Bolt &lt;Bikes&gt; &amp; Co</h1>" in html
        assert "<p>0 reviews</p>" in html
        assert properties(html)["--accent-button"] == brand_of("#0a0a0a").button  # base kept
        status, html, _ = await get(http, base(daemon) + "/s/acme")
        assert status == 200 and "Our own page" not in html
        assert "<h1>Reviews of ACME Shoes</h1>" in html
        # The other pages of the same shop still come from the package.
        status, html, _ = await get(http, base(daemon) + "/s/bolt?page=9")
        assert status == 404 and "Our own page" not in html
        bolt = daemon.config.shop("bolt")
        assert daemon.web.templates.environment(bolt) is daemon.web.templates.environment(bolt)


def test_only_a_plain_origin_of_the_logo_ever_reaches_the_csp(config: Config) -> None:
    shop = config.shops[0]
    policy = "default-src 'none'; img-src 'self' data:; frame-ancestors 'none'"
    cases = {
        "https://cdn.acme.example/a/logo.png": "img-src 'self' data: https://cdn.acme.example;",
        "http://127.0.0.1:8080/logo.svg": "img-src 'self' data: http://127.0.0.1:8080;",
        "https://user:secret@cdn.acme.example/l.png": "data: https://cdn.acme.example;",
        "https://[::1]:8443/l.png": "img-src 'self' data: https://[::1]:8443;",
    }
    for url, expected in cases.items():
        changed = policy_with_logo(policy, replace(shop, logo_url=url))
        assert changed is not None and expected in changed, url
    for hostile in ("https://a.example;script-src:*/x.png", "https://a.example,b/x.png"):
        assert policy_with_logo(policy, replace(shop, logo_url=hostile)) is None
    assert policy_with_logo(policy, replace(shop, logo_url=None)) is None
    assert policy_with_logo(policy, None) is None


async def test_a_page_with_its_own_policy_still_shows_the_logo_and_keeps_its_framing(
    make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    """The embedded write form sets frame-ancestors of its own: the logo's origin is added to
    that policy, not lost with the site's."""
    config = make_config(shop_extra=LOOK + 'embed_origins = ["https://acme.example"]\n')
    async with Daemon(config, clock) as daemon:
        status, html, csp = await get(http, base(daemon) + "/s/acme/write/embed")
    assert status == 200
    assert "frame-ancestors https://acme.example" in csp
    assert "img-src 'self' data: https://cdn.acme.example;" in csp
    assert 'src="https://cdn.acme.example/logo.png"' in html
