"""What a shop embeds on its own site: the badge, the widgets, CORS on the JSON routes, and
their ETags, 304s and cache, over real HTTP against the whole daemon (two shops wherever data
could cross)."""

from __future__ import annotations

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.core.tokens import TokenSigner
from mailrelay.edges.web.embeds import star_fills
from mailrelay.edges.web.server import WebApp
from mailrelay.render.brand import brand_of
from mailrelay.services import reviews
from mailrelay.store import NewProductReview, ReviewText, Store

from .conftest import ConfigFactory, second_shop
from .test_web_reviews import CSP, Page
from .web_forms import base, invite

SITE = "https://acme.example"
OTHER_SITE = "https://evil.example"
SVG = "{http://www.w3.org/2000/svg}"
EMBED_CSP = CSP.replace("frame-ancestors 'none'", f"frame-ancestors {SITE}")


@pytest.fixture
def config(make_config: ConfigFactory) -> Config:
    """acme lets its own site embed it; bolt (same relay) lets no one."""
    return make_config(shop_extra=f'embed_origins = ["{SITE}"]\naccent_color = "#ffcc00"',
                       more=second_shop(locale="de"))


async def add_review(daemon: Daemon, n: int, stars: int = 5, *, shop: str = "acme",
                     text: str | None = None) -> int:
    inv = await invite(daemon, email=f"buyer{n}@example.com", name=f"Buyer {n}", shop_id=shop)
    form = reviews.ReviewForm(stars, f"Headline {n}", text or f"Our words for review {n}",
                              f"Buyer {n}")
    now = daemon.clock.now()
    outcome, review_id = await daemon.store.write(
        lambda q: reviews.submit_review(q, inv, form, now))
    assert outcome == reviews.SubmitOutcome.CREATED and review_id is not None
    assert isinstance(daemon.clock, FrozenClock)
    daemon.clock.advance(timedelta(minutes=1))
    return review_id


async def get(http: aiohttp.ClientSession, daemon: Daemon, path: str,
              **headers: str) -> tuple[int, CIMultiDict[str], str]:
    async with http.get(base(daemon) + path,
                        headers={k.replace("_", "-"): v for k, v in headers.items()}) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.text()


def badge_parts(svg: str) -> tuple[ET.Element, str, list[str]]:
    """The parsed badge (it must be well-formed XML), its title and its texts."""
    root = ET.fromstring(svg)  # noqa: S314 - our own badge, parsed to prove it well-formed
    title = root.find(f"{SVG}title")
    assert title is not None and title.text
    return root, title.text, [t.text or "" for t in root.iter(f"{SVG}text")]


def widths_of_filled_stars(root: ET.Element) -> list[float]:
    clip = root.find(f".//{SVG}clipPath")
    assert clip is not None
    return [float(rect.get("width", "")) for rect in clip]


# --- the badge ----------------------------------------------------------------------------------


async def test_the_badge_is_an_accessible_svg_with_score_partial_stars_and_count(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    for n, stars in enumerate((5, 4, 4), 1):
        await add_review(daemon, n, stars)
    status, headers, svg = await get(http, daemon, "/s/acme/badge.svg")
    assert status == 200
    assert headers["Content-Type"] == "image/svg+xml; charset=utf-8"
    root, title, texts = badge_parts(svg)
    assert root.get("role") == "img" and root.get("aria-labelledby") == "badge-title"
    assert (root.get("width"), root.get("height")) == ("200", "56")
    assert title == "ACME Shoes: rated 4.3 out of 5 from 3 reviews"
    assert texts == ["4.3", "3 reviews"]
    # 4.33 stars: four whole stars and a third of the fifth, not a rounded 4 or 4.5.
    assert widths_of_filled_stars(root) == [20, 20, 20, 20, 6.6]


async def test_the_badge_speaks_the_shops_language_or_the_one_asked_for(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await add_review(daemon, 1, 4, shop="bolt")
    _status, _headers, svg = await get(http, daemon, "/s/bolt/badge.svg")
    _root, title, texts = badge_parts(svg)
    assert texts == ["4,0", "1 Bewertung"]
    assert title == "Bolt Bikes: 4,0 von 5 Sternen bei 1 Bewertung"
    await add_review(daemon, 2, 5, shop="bolt")
    _status, _headers, svg = await get(http, daemon, "/s/bolt/badge.svg?locale=da")
    root, _title, texts = badge_parts(svg)
    assert texts == ["4,5", "2 anmeldelser"]
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "da"
    _status, _headers, svg = await get(http, daemon, "/s/acme/badge.svg?locale=de")
    _root, title, texts = badge_parts(svg)
    assert texts == ["–", "Noch keine Bewertungen"]
    assert title == "ACME Shoes: noch keine Bewertungen"


def test_counts_are_grouped_and_stars_filled_per_locale() -> None:
    from mailrelay.edges.web.embeds import score
    from mailrelay.edges.web.i18n import Strings

    strings = Strings()
    assert score(strings.translator("en"), 1234567, 4.25).count_text == "1,234,567 reviews"
    assert score(strings.translator("de"), 1234, 4.25).count_text == "1.234 Bewertungen"
    assert score(strings.translator("sv"), 1234, None).count_text == "1\xa0234 omdömen"
    polish = strings.translator("pl")
    assert [score(polish, n, 4.0).count_text for n in (1, 3, 5, 22)] == [
        "1 opinia", "3 opinie", "5 opinii", "22 opinie"]
    assert score(strings.translator("fr"), 1, 4.25).average == "4,2"
    assert star_fills(None) == (0, 0, 0, 0, 0)
    assert star_fills(3.75) == (1, 1, 1, 0.75, 0)


async def test_a_shop_name_with_markup_stays_text_in_the_badge(
    make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession,
) -> None:
    config = make_config(more=second_shop(name='Bolt <b>&</b> "Co"'))
    async with Daemon(config, clock) as daemon:
        _status, _headers, svg = await get(http, daemon, "/s/bolt/badge.svg")
    _root, title, _texts = badge_parts(svg)
    assert title == 'Bolt <b>&</b> "Co": no reviews yet'


# --- the widget ---------------------------------------------------------------------------------


async def test_the_widget_shows_the_score_and_latest_reviews_in_the_accent_colour(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    for n in range(1, 6):
        await add_review(daemon, n, 5 if n % 2 else 3)
    status, headers, html = await get(http, daemon, "/s/acme/widget")
    assert status == 200
    assert headers["Content-Security-Policy"] == EMBED_CSP
    page = Page(html)
    assert re.findall(r"<h2><a [^>]*>([^<]*)</a></h2>", html) == [
        "Headline 5", "Headline 4", "Headline 3"]
    assert "5 reviews" in html and ">4.2<" in html
    # #ffcc00 on white is unreadable: links and stars get it darkened to 4.5:1, as on every
    # other page of the shop.
    brand = brand_of("#ffcc00")
    assert brand.link != "#ffcc00"
    assert f"a {{ color: {brand.link}; }}" in html
    assert f'fill="{brand.star}"' in html
    for link in page.find("a"):
        assert link["target"] == "_blank" and link["rel"] == "noopener"
        assert link["href"].startswith("http://reviews.test/s/acme")
    assert page.find("a", href="http://reviews.test/s/acme")
    assert page.find("svg", role="img", **{"aria-label": "4.2 out of 5"})
    status, _headers, html = await get(http, daemon, "/s/acme/widget?limit=1")
    assert html.count("<article>") == 1 and "Headline 5" in html


async def test_only_the_widgets_and_badge_may_be_framed_and_only_by_the_shops_origins(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await add_review(daemon, 1)
    for path in ("/s/acme/widget", "/s/acme/badge.svg"):
        _status, headers, _body = await get(http, daemon, path)
        assert headers["Content-Security-Policy"] == EMBED_CSP, path
    for path in ("/s/bolt/widget", "/s/bolt/badge.svg", "/s/acme", "/s/acme/reviews.json",
                 "/s/nobody/widget"):
        _status, headers, _body = await get(http, daemon, path)
        assert headers["Content-Security-Policy"] == CSP, path


async def test_unknown_shops_get_404_from_every_embed(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    for path in ("/s/nobody/widget", "/s/nobody/badge.svg", "/s/nobody/reviews.json"):
        status, headers, _body = await get(http, daemon, path, Origin=SITE)
        assert status == 404, path
        assert "Access-Control-Allow-Origin" not in headers


# --- tags ---------------------------------------------------------------------------------------


async def test_a_tag_picks_the_reviews_of_widget_and_json(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    ids = [await add_review(daemon, n) for n in range(1, 5)]
    bolt = await add_review(daemon, 9, shop="bolt")
    now = daemon.clock.now()
    for review_id in (ids[0], ids[2], bolt):
        await daemon.store.write(lambda q, r=review_id: q.add_tag(r, "homepage", now))
    _status, _headers, html = await get(http, daemon, "/s/acme/widget?tag=homepage")
    assert html.count("<article>") == 2
    assert "Headline 1" in html and "Headline 3" in html and "Headline 9" not in html
    _status, _headers, text = await get(http, daemon, "/s/acme/reviews.json?tag=homepage")
    data = json.loads(text)
    assert [r["id"] for r in data["reviews"]] == [ids[2], ids[0]]
    assert data["pages"] == 1
    _status, _headers, text = await get(http, daemon, "/s/acme/reviews.json?tag=nothing")
    assert json.loads(text)["reviews"] == []
    _status, _headers, text = await get(http, daemon, "/s/acme/reviews.json")
    assert len(json.loads(text)["reviews"]) == 4


# --- CORS ---------------------------------------------------------------------------------------


async def test_json_routes_answer_cors_only_to_the_shops_own_origins(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await add_review(daemon, 1)
    status, headers, _body = await get(http, daemon, "/s/acme/reviews.json", Origin=SITE)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == SITE
    assert headers["Vary"] == "Origin"
    assert "ETag" in headers["Access-Control-Expose-Headers"]
    for shop, origin in (("acme", OTHER_SITE), ("bolt", SITE), ("acme", "null")):
        _status, headers, _body = await get(http, daemon, f"/s/{shop}/reviews.json",
                                            Origin=origin)
        assert "Access-Control-Allow-Origin" not in headers, (shop, origin)
        assert headers["Vary"] == "Origin"
    # The widget is framed, not fetched: no CORS there.
    _status, headers, _body = await get(http, daemon, "/s/acme/widget", Origin=SITE)
    assert "Access-Control-Allow-Origin" not in headers


async def test_a_preflight_for_if_none_match_is_allowed_to_listed_origins_only(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    ask = {"Access-Control-Request-Method": "GET",
           "Access-Control-Request-Headers": "if-none-match"}
    async with http.options(f"{base(daemon)}/s/acme/reviews.json",
                            headers={"Origin": SITE, **ask}) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == SITE
        assert resp.headers["Access-Control-Allow-Headers"] == "If-None-Match"
    async with http.options(f"{base(daemon)}/s/acme/reviews.json",
                            headers={"Origin": OTHER_SITE, **ask}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers


# --- ETag, 304 and the cache --------------------------------------------------------------------

EMBED_PATHS = ("/s/acme/widget", "/s/acme/badge.svg", "/s/acme/reviews.json",
               "/s/acme/widget?tag=homepage", "/s/acme/reviews.json?tag=homepage")


async def etags(http: aiohttp.ClientSession, daemon: Daemon,
                paths: tuple[str, ...] = EMBED_PATHS) -> dict[str, str]:
    found = {}
    for path in paths:
        status, headers, _body = await get(http, daemon, path)
        assert status == 200 and headers["Cache-Control"], path
        found[path] = headers["ETag"]
    return found


async def test_a_matching_if_none_match_gets_304_without_a_body(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await add_review(daemon, 1)
    for path, etag in (await etags(http, daemon)).items():
        status, headers, body = await get(http, daemon, path, If_None_Match=etag, Origin=SITE)
        assert (status, body) == (304, ""), path
        assert headers["ETag"] == etag
        assert headers["Cache-Control"], path
        if path.startswith("/s/acme/reviews.json"):
            assert headers["Access-Control-Allow-Origin"] == SITE
        status, _headers, _body = await get(http, daemon, path,
                                            If_None_Match=f'"other", W/{etag}')
        assert status == 304, path
        status, _headers, body = await get(http, daemon, path, If_None_Match='"other"')
        assert status == 200 and body, path
    assert len(set((await etags(http, daemon)).values())) == len(EMBED_PATHS)


#: What a change leaves as it was (a new ETag all the same: the revision is the shop's).
UNCHANGED = {
    ("a new review", "/s/acme/widget?tag=homepage"),
    ("a new review", "/s/acme/reviews.json?tag=homepage"),
    ("a response", "/s/acme/badge.svg"),  # nothing is tagged before "a tag":
    ("a response", "/s/acme/widget?tag=homepage"),
    ("a response", "/s/acme/reviews.json?tag=homepage"),
    ("a tag", "/s/acme/badge.svg"), ("a tag", "/s/acme/widget"),
    ("a tag", "/s/acme/reviews.json"),
}


async def test_every_change_to_the_reviews_changes_every_etag_and_body_at_once(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    """Nothing is served stale: not from the body cache, not as a 304."""
    first = await add_review(daemon, 1)
    now = daemon.clock.now()
    config = daemon.config

    async def second_review() -> object:
        return await add_review(daemon, 2, 3)

    changes = {
        "a new review": second_review,
        "a response": lambda: daemon.store.write(
            lambda q: q.add_response(first, "Thank you, we did our best.", "agent", "agent",
                                     now)),
        "a tag": lambda: daemon.store.write(lambda q: q.add_tag(first, "homepage", now)),
        "a report": lambda: daemon.store.write(
            lambda q: q.report_review(first, "not about us", now)),
        "an unreport": lambda: daemon.store.write(
            lambda q: reviews.unreport(q, config, first, now)),
        "an edit": lambda: daemon.store.write(lambda q: q.edit_review(
            first, ReviewText(2, "Changed mind", "Our new words here", "Buyer 1"),
            now + timedelta(hours=1))),
    }
    bodies = {}
    seen = await etags(http, daemon)
    bolt_before = await etags(http, daemon, ("/s/bolt/widget", "/s/bolt/badge.svg"))
    for what, change in changes.items():
        for path in EMBED_PATHS:
            bodies[path] = (await get(http, daemon, path))[2]
        await change()
        now_tags = await etags(http, daemon)
        for path, etag in seen.items():
            assert now_tags[path] != etag, (what, path)
            status, _headers, body = await get(http, daemon, path, If_None_Match=etag)
            assert status == 200, (what, path)
            if (what, path) not in UNCHANGED:
                assert body != bodies[path], (what, path)
        seen = now_tags
    # The other shop's embeds never moved: its revision is its own.
    assert await etags(http, daemon, ("/s/bolt/widget", "/s/bolt/badge.svg")) == bolt_before


async def test_two_shops_never_share_an_etag_or_a_cached_body(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await add_review(daemon, 1, 5, text="Only the acme customer wrote this")
    await add_review(daemon, 2, 1, shop="bolt", text="Only the bolt customer wrote this")
    for embed in ("widget", "badge.svg", "reviews.json"):
        _s, acme_headers, acme = await get(http, daemon, f"/s/acme/{embed}")
        _s, bolt_headers, bolt = await get(http, daemon, f"/s/bolt/{embed}")
        assert acme_headers["ETag"] != bolt_headers["ETag"]
        status, _h, _b = await get(http, daemon, f"/s/bolt/{embed}",
                                   If_None_Match=acme_headers["ETag"])
        assert status == 200
        assert "bolt" not in acme and "acme" not in bolt.replace("acme.example", "")
        if embed != "badge.svg":
            assert "Only the acme" in acme and "Only the bolt" in bolt
            assert "Only the bolt" not in acme and "Only the acme" not in bolt


async def test_a_burst_of_widget_requests_shares_revision_reads_and_renders_once(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await add_review(daemon, 1)
    reads = 0
    read = daemon.web.embeds.cache.revisions._read  # noqa: SLF001 - counting the store reads

    async def counting(shop: str) -> str:
        nonlocal reads
        reads += 1
        return await read(shop)

    daemon.web.embeds.cache.revisions._read = counting  # noqa: SLF001
    answers = await asyncio.gather(*(get(http, daemon, "/s/acme/widget") for _ in range(40)))
    assert {status for status, _h, _b in answers} == {200}
    assert len({headers["ETag"] for _s, headers, _b in answers}) == 1
    assert reads < 40
    cached = daemon.web.embeds.cache.bodies
    assert len(cached._entries) == 1  # noqa: SLF001


async def test_a_revision_read_started_before_a_request_is_never_its_answer() -> None:
    from mailrelay.edges.web.revisions import ShopRevisions

    state = {"value": "old"}
    started: list[str] = []
    gate, reading = asyncio.Event(), asyncio.Event()

    async def read(shop: str) -> str:
        value = state["value"]
        started.append(value)
        reading.set()
        await gate.wait()
        return value

    revisions = ShopRevisions(read)
    early = asyncio.ensure_future(revisions.get("acme"))
    await reading.wait()
    state["value"] = "new"  # a write commits while the first read runs
    late = [asyncio.ensure_future(revisions.get("acme")) for _ in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    gate.set()
    assert await early == "old"
    assert {await r for r in late} == {"new"}
    assert started == ["old", "new"]  # the five late ones shared one read
    assert await revisions.get("acme") == "new"


# --- the product widget -------------------------------------------------------------------------


async def rate_product(daemon: Daemon, review_id: int, shop: str, stars: int, text: str,
                       sku: str = "BOOT-42") -> None:
    now = daemon.clock.now()
    item = NewProductReview(n=1, stars=stars, text=text, sku=sku, name="Trail boot")
    await daemon.store.write(lambda q: q.save_product_reviews(review_id, shop, [item], now))


async def test_the_product_widget_shows_that_products_score_and_reviews_only(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await rate_product(daemon, await add_review(daemon, 1), "acme", 5, "Boots fit like a glove")
    await rate_product(daemon, await add_review(daemon, 2), "acme", 4, "Good boots, stiff laces")
    await rate_product(daemon, await add_review(daemon, 3), "acme", 2, "Socks wore thin",
                       sku="SOCK-7")
    await rate_product(daemon, await add_review(daemon, 4, shop="bolt"), "bolt", 1,
                       "Bolt sells a boot of the same SKU")
    status, headers, html = await get(http, daemon, "/s/acme/p/BOOT-42/widget")
    assert status == 200
    assert headers["Content-Security-Policy"] == EMBED_CSP
    assert "Customer reviews of Trail boot" in html
    assert "2 reviews" in html and ">4.5<" in html
    assert "Boots fit like a glove" in html and "stiff laces" in html
    assert "Socks wore thin" not in html and "Bolt sells" not in html
    assert Page(html).find("a", href="http://reviews.test/s/acme/p/BOOT-42")
    status, _headers, html = await get(http, daemon, "/s/bolt/p/BOOT-42/widget")
    assert "Bolt sells" in html and "Boots fit" not in html
    assert "1 Bewertung" in html
    for path in ("/s/acme/p/NO-SUCH/widget", "/s/nobody/p/BOOT-42/widget"):
        status, _headers, _body = await get(http, daemon, path)
        assert status == 404, path


async def test_a_product_review_changes_the_product_widgets_etag_and_body(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    first = await add_review(daemon, 1)
    await rate_product(daemon, first, "acme", 5, "Boots fit like a glove")
    path = "/s/acme/p/BOOT-42/widget"
    _status, headers, before = await get(http, daemon, path)
    status, _headers, _body = await get(http, daemon, path, If_None_Match=headers["ETag"])
    assert status == 304
    assert isinstance(daemon.clock, FrozenClock)
    daemon.clock.advance(timedelta(days=30))
    await rate_product(daemon, first, "acme", 3, "After a month: they pinch")
    status, after_headers, after = await get(http, daemon, path, If_None_Match=headers["ETag"])
    assert status == 200 and after_headers["ETag"] != headers["ETag"]
    assert "they pinch" in after and "glove" not in after


async def test_a_json_route_added_later_gets_cors_etag_and_304_without_knowing(
    config: Config, clock: FrozenClock, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    """Another feature's /s/<shop>/….json route is covered by the middleware, not by itself."""
    calls = 0

    async def extra(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response({"shop": request.match_info["shop"]})

    with Store(tmp_path / "extra.db") as store:
        app = WebApp(replace(config, http=replace(config.http, port=0)), store,
                     TokenSigner(b"k" * 32), clock)
        app.app.router.add_get("/s/{shop}/extra.json", extra)
        await app.start()
        try:
            url = f"http://127.0.0.1:{app.port}/s/acme/extra.json"
            async with http.get(url, headers={"Origin": SITE}) as resp:
                assert resp.status == 200
                assert resp.headers["Access-Control-Allow-Origin"] == SITE
                assert resp.headers["Vary"] == "Origin"
                etag = resp.headers["ETag"]
            async with http.get(url, headers={"If-None-Match": etag}) as resp:
                assert resp.status == 304
            async with http.get(url) as resp:
                assert resp.status == 200 and await resp.json() == {"shop": "acme"}
            assert calls == 1  # the second 200 came from the cache
        finally:
            await app.stop()


async def test_an_origin_written_in_capitals_in_the_config_still_matches(
    make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession,
) -> None:
    config = make_config(shop_extra='embed_origins = ["https://Shop.ACME.example"]')
    async with Daemon(config, clock) as daemon:
        _status, headers, _body = await get(http, daemon, "/s/acme/reviews.json",
                                            Origin="https://shop.acme.example")
    assert headers["Access-Control-Allow-Origin"] == "https://shop.acme.example"


def test_the_demo_shop_lets_the_walk_through_site_frame_its_widget() -> None:
    """README step 11: a page served on 127.0.0.1:8000 embeds the demo shop's widget."""
    from mailrelay.config import defaults

    [demo] = defaults().shops
    assert demo.embed_origins == ("http://127.0.0.1:8000",)


async def test_a_304_repeats_its_own_shops_headers_never_another_shops(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    for path in ("/s/bolt/widget", "/s/acme/widget"):
        status, headers, _body = await get(http, daemon, path)
    _status, bolt, _body = await get(http, daemon, "/s/bolt/widget")
    await get(http, daemon, "/s/acme/widget")  # acme's was rendered last
    status, headers, _body = await get(http, daemon, "/s/bolt/widget",
                                       If_None_Match=bolt["ETag"])
    assert status == 304
    assert headers["Content-Security-Policy"] == CSP  # bolt's: framed by no one
    assert headers["Cache-Control"] == "public, no-cache"


async def test_head_gets_the_headers_and_etag_without_a_body(
    daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await add_review(daemon, 1)
    _status, got, _body = await get(http, daemon, "/s/acme/badge.svg")
    async with http.head(f"{base(daemon)}/s/acme/badge.svg") as resp:
        assert resp.status == 200
        assert resp.headers["ETag"] == got["ETag"]
        assert await resp.read() == b""
