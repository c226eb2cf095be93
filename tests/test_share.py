"""Issue 13: a published review on its own page, `/s/<shop>/r/<id>`, with Open Graph and
Twitter card tags, plain share links and a preview image (PNG and SVG), over real HTTP."""

from __future__ import annotations

import io
import struct
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import aiohttp
from PIL import Image

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock

from .conftest import ConfigFactory, second_shop
from .web_forms import base, invite, submit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Head(HTMLParser):
    """The page's <meta property|name=… content=…> tags and its links."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.links: list[str] = []
        self.scripts = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and values.get("content") is not None:
            key = values.get("property") or values.get("name")
            if key:
                self.meta[key] = values["content"] or ""
        elif tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")
        elif tag == "script":
            self.scripts += 1


async def published(daemon: Daemon, http: aiohttp.ClientSession, shop: str = "acme",
                    email: str = "ann@example.com", **fields: str) -> int:
    """A review written through a manual invitation; returns its id."""
    invitation = await invite(daemon, email, "Ann Berg", shop_id=shop)
    status, _html = await submit(http, daemon, invitation.token, **fields)
    assert status == 200
    row = daemon.store.read(lambda q: q.get_invitation(invitation.id))
    assert row is not None and row.review_id is not None
    return row.review_id


def two_shops(make_config: ConfigFactory) -> Config:
    return make_config(more=second_shop())


async def test_a_review_page_carries_open_graph_and_twitter_tags_and_share_links(
    make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    async with Daemon(two_shops(make_config), clock) as daemon:
        review_id = await published(daemon, http, stars="5", title="Fast & friendly",
                                    text="The shoes came in two days <and> fit well.")
        async with http.get(f"{base(daemon)}/s/acme/r/{review_id}") as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "public, max-age=60"
            html = await resp.text()
    head = Head(html)
    url = f"http://reviews.test/s/acme/r/{review_id}"
    assert head.meta["og:url"] == url
    assert head.meta["og:title"] == "Review of ACME Shoes: 5 stars – Fast & friendly"
    assert head.meta["og:description"] == "The shoes came in two days <and> fit well."
    assert head.meta["og:image"] == url + ".png"
    assert head.meta["og:image:width"] == "1200" and head.meta["og:image:height"] == "630"
    assert head.meta["twitter:card"] == "summary_large_image"
    assert head.meta["twitter:image"] == url + ".png"
    assert "robots" not in head.meta  # a shared review is meant to be found
    assert "&lt;and&gt;" in html and "<and>" not in html.split("</head>")[1]
    assert "Verified buyer" in html and "Response from" not in html
    assert head.scripts == 0
    assert "/s/acme" in head.links  # all reviews
    shares = {urlsplit(link).netloc or urlsplit(link).scheme: link for link in head.links
              if link.startswith(("https://", "mailto:"))}
    assert set(shares) == {"www.facebook.com", "x.com", "www.linkedin.com", "wa.me", "mailto"}
    assert parse_qs(urlsplit(shares["www.facebook.com"]).query)["u"] == [url]
    assert parse_qs(urlsplit(shares["x.com"]).query)["url"] == [url]
    assert parse_qs(urlsplit(shares["www.linkedin.com"]).query)["url"] == [url]
    assert url in parse_qs(urlsplit(shares["wa.me"]).query)["text"][0]
    assert "A%20review%20of%20ACME%20Shoes" in shares["mailto"]


async def test_the_public_page_links_each_review_to_its_own_page_with_the_response(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    review_id = await published(daemon, http)
    now = daemon.clock.now()
    await daemon.store.write(lambda q: q.add_response(
        review_id, "Thank you, Ann!", "support@acme.example", "email", now))
    async with http.get(f"{base(daemon)}/s/acme") as resp:
        assert f'href="/s/acme/r/{review_id}"' in await resp.text()
    async with http.get(f"{base(daemon)}/s/acme/r/{review_id}") as resp:
        html = await resp.text()
    assert "Response from ACME Shoes" in html and "Thank you, Ann!" in html
    assert "ACME Shoes is rated 4.0 out of 5 (1 review)." in html


async def test_the_preview_image_is_a_1200_by_630_png_and_an_svg(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    review_id = await published(daemon, http, title="Очень хорошо", text="Sehr gut – שלום")
    async with http.get(f"{base(daemon)}/s/acme/r/{review_id}.png") as resp:
        assert resp.status == 200 and resp.content_type == "image/png"
        assert resp.headers["Cache-Control"] == "public, max-age=60"
        body = await resp.read()
    assert body.startswith(PNG_SIGNATURE) and body[12:16] == b"IHDR"
    assert struct.unpack(">II", body[16:24]) == (1200, 630)
    with Image.open(io.BytesIO(body)) as image:
        assert image.size == (1200, 630)
        assert len(image.getcolors(maxcolors=1 << 16) or ()) > 10  # drawn, not blank
    async with http.get(f"{base(daemon)}/s/acme/r/{review_id}.svg") as resp:
        assert resp.status == 200 and resp.content_type == "image/svg+xml"
        svg = ET.fromstring(await resp.text())  # noqa: S314 - our own output, on loopback
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert (svg.get("width"), svg.get("height")) == ("1200", "630")
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "Очень хорошо" in texts and "ACME Shoes" in texts


async def test_reported_unknown_and_other_shops_reviews_are_not_found(
    make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    async with Daemon(two_shops(make_config), clock) as daemon:
        shown = await published(daemon, http)
        hidden = await published(daemon, http, email="bob@example.com")
        now = clock.now()
        await daemon.store.write(lambda q: q.report_review(hidden, "abusive", now))
        for path in (f"/s/acme/r/{hidden}", f"/s/acme/r/{hidden}.png", f"/s/acme/r/{hidden}.svg",
                     f"/s/bolt/r/{shown}", f"/s/bolt/r/{shown}.png", "/s/acme/r/999",
                     f"/s/nosuch/r/{shown}", "/s/acme/r/99999999999999999999"):
            async with http.get(base(daemon) + path) as resp:
                assert resp.status == 404, path
        async with http.get(f"{base(daemon)}/s/acme/r/{shown}") as resp:
            assert resp.status == 200
