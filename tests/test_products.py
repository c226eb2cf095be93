"""Product reviews (issue 13): stored with the service review, figures per product of one
shop, pages and JSON, the form, the ticket; two shops selling the same SKU never mix."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.services import moderation
from mailrelay.services.moderation import Decision
from mailrelay.store import (
    NewInvitation,
    NewProductReview,
    NewReview,
    Queries,
    ReviewText,
    Store,
    open_store,
)

from .cli_runner import cli
from .conftest import ConfigFactory, second_shop
from .mailtools import free_port, mails_to, parsed, send, settle, text_of, via_sink
from .sink import Sink
from .test_webhooks import posted, webhook_table
from .tickets import AGENT
from .web_forms import base, csrf_of, form_page, invite, post, submit
from .webhook_receiver import Receiver, running_receiver

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _review(q: Queries, shop: str, stars: int, name: str, at: datetime) -> int:
    invitation = q.insert_invitation(NewInvitation(
        shop=shop, shipment_id=None, customer_email=f"{name.lower()}@example.com",
        customer_name=name, reference=None, locale="en", method="automatic", status="sent",
        token=f"token-{name}", created_at=at, due_at=at))
    return q.insert_review(NewReview(
        shop=shop, invitation_id=invitation, method="automatic",
        text=ReviewText(stars, None, "Came quickly and well packed.", name),
        customer_email=f"{name.lower()}@example.com", reference=None, locale="en",
        created_at=at))


def _boots(stars: int, text: str | None = "Comfortable from the first day.") -> NewProductReview:
    return NewProductReview(n=1, stars=stars, text=text, sku="BOOT-42", name="Trail boot",
                            url="https://acme.example/boot", image="https://acme.example/b.jpg",
                            gtin="4006381333931", mpn="TB-42", brand="Acme")


def _socks(stars: int) -> NewProductReview:
    return NewProductReview(n=2, stars=stars, text=None, sku="SOCK-7", name="Wool socks")


def _store_with_reviews(path: Path) -> tuple[Store, dict[str, int]]:
    store = Store(path)

    def fill(q: Queries) -> dict[str, int]:
        ids = {"ann": _review(q, "acme", 5, "Ann", T0),
               "bob": _review(q, "acme", 2, "Bob", T0 + timedelta(hours=1)),
               "eve": _review(q, "globex", 1, "Eve", T0 + timedelta(hours=2))}
        q.save_product_reviews(ids["ann"], "acme", [_boots(5), _socks(4)], T0)
        q.save_product_reviews(ids["bob"], "acme", [_boots(3)], T0 + timedelta(hours=1))
        # Another shop selling the very same SKU.
        q.save_product_reviews(ids["eve"], "globex", [_boots(1)], T0 + timedelta(hours=2))
        q.add_tag(ids["ann"], "homepage", T0)
        return ids

    return store, store.write_sync(fill)


def test_product_reviews_are_stored_with_their_review_in_the_triggers_order(
        tmp_path: Path) -> None:
    store, ids = _store_with_reviews(tmp_path / "relay.db")
    with store:
        rows = store.read(lambda q: q.product_reviews_of(ids["ann"]))
        assert [(r.n, r.sku, r.stars) for r in rows] == [(1, "BOOT-42", 5), (2, "SOCK-7", 4)]
        assert (rows[0].gtin, rows[0].mpn, rows[0].brand) == ("4006381333931", "TB-42", "Acme")
        assert rows[0].image == "https://acme.example/b.jpg" and rows[1].text is None


def test_saving_again_updates_changed_ratings_and_drops_those_no_longer_given(
        tmp_path: Path) -> None:
    store, ids = _store_with_reviews(tmp_path / "relay.db")
    later = T0 + timedelta(days=1)
    with store:
        store.write_sync(lambda q: q.save_product_reviews(
            ids["ann"], "acme", [_boots(5)], later))
        rows = store.read(lambda q: q.product_reviews_of(ids["ann"]))
        assert [(r.sku, r.stars, r.updated_at) for r in rows] == [
            ("BOOT-42", 5, T0.isoformat(timespec="microseconds"))]  # unchanged: same time
        store.write_sync(lambda q: q.save_product_reviews(
            ids["ann"], "acme", [_boots(4, "Softer after a week.")], later))
        row = store.read(lambda q: q.product_reviews_of(ids["ann"]))[0]
        assert (row.stars, row.text) == (4, "Softer after a week.")
        assert row.created_at < row.updated_at


def test_a_products_figures_count_only_its_shop(tmp_path: Path) -> None:
    store, _ids = _store_with_reviews(tmp_path / "relay.db")
    with store:
        acme = store.read(lambda q: q.product_rating("acme", "BOOT-42"))
        globex = store.read(lambda q: q.product_rating("globex", "BOOT-42"))
        assert acme is not None and globex is not None
        assert (acme.count, acme.average) == (2, 4.0)
        assert acme.distribution == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1}
        assert (globex.count, globex.average) == (1, 1.0)
        assert store.read(lambda q: q.product_rating("globex", "SOCK-7")) is None
        names = [r.reviewer_name for r in store.read(
            lambda q: q.product_reviews("acme", "BOOT-42"))]
        assert names == ["Bob", "Ann"]  # newest first, never Eve of globex
        products = store.read(lambda q: q.shop_products("acme"))
        assert [(p.sku, p.count, p.name) for p in products] == [
            ("BOOT-42", 2, "Trail boot"), ("SOCK-7", 1, "Wool socks")]


def test_the_tag_filter_keeps_reviews_whose_service_review_has_the_tag(tmp_path: Path) -> None:
    store, _ids = _store_with_reviews(tmp_path / "relay.db")
    with store:
        tagged = store.read(lambda q: q.product_rating("acme", "BOOT-42", "homepage"))
        assert tagged is not None and (tagged.count, tagged.average) == (1, 5.0)
        listed = store.read(lambda q: q.product_reviews("acme", "BOOT-42", tag="homepage"))
        assert [r.reviewer_name for r in listed] == ["Ann"] and listed[0].tags == ["homepage"]
        assert [p.sku for p in store.read(lambda q: q.shop_products("acme", tag="nope"))] == []


def test_a_reported_review_takes_its_product_reviews_off_the_public_figures(
        tmp_path: Path) -> None:
    store, ids = _store_with_reviews(tmp_path / "relay.db")
    with store:
        store.write_sync(lambda q: q.report_review(ids["bob"], "spam", T0))
        acme = store.read(lambda q: q.product_rating("acme", "BOOT-42"))
        assert acme is not None and (acme.count, acme.average) == (1, 5.0)
        assert [r.reviewer_name for r in store.read(
            lambda q: q.product_reviews("acme", "BOOT-42"))] == ["Ann"]
        hidden = store.read(lambda q: q.list_product_reviews(shop="acme", public=False))
        assert [r.product.review_id for r in hidden] == [ids["bob"]]
        feed = store.read(lambda q: q.list_product_reviews(shop="acme"))
        assert {(r.product.sku, r.reviewer_name) for r in feed} == {
            ("BOOT-42", "Ann"), ("SOCK-7", "Ann")}


def test_forgetting_a_customer_erases_their_product_review_texts(tmp_path: Path) -> None:
    store, ids = _store_with_reviews(tmp_path / "relay.db")
    with store:
        store.write_sync(lambda q: q.forget("ann@example.com", T0))
        rows = store.read(lambda q: q.product_reviews_of(ids["ann"]))
        assert [r.text for r in rows] == [None, None]
        socks = store.read(lambda q: q.product_rating("acme", "SOCK-7"))
        assert socks is not None and socks.count == 0


# --- the whole way: a shipping mail with two products to the product page -------------------

TRAIL_RUNNER = {"sku": "TR-42", "name": "Trail Runner", "url": "https://acme.example/p/tr-42",
                "image": "https://cdn.acme.example/tr-42.jpg", "gtin": "5701234567890",
                "mpn": "TR42-BLK", "brand": "ACME"}
#: Trustpilot's key names for the URL and the image are accepted too (SPEC).
SOCKS = {"sku": "SOCK-7", "name": "Merino socks", "productUrl": "https://acme.example/p/sock-7",
         "imageUrl": "https://cdn.acme.example/sock-7.jpg"}
CSP_WITH_IMAGES = "img-src 'self' data: https:;"


def shipping_mail(email: str, name: str, order: str, products: list[dict[str, str]],
                  sender: str = "ACME Shoes <shop@acme.example>") -> bytes:
    """A platform's shipping notice carrying the mailrelay block with the order's products."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = f"{name} <{email}>"
    msg["Subject"] = f"Order {order} has shipped"
    msg["Message-ID"] = make_msgid(domain="platform.example")
    payload = {"recipientEmail": email, "recipientName": name, "referenceId": order,
               "products": products}
    msg.set_content("<p>Your parcel is on its way.</p>"
                    '<script type="application/json+mailrelay">'
                    f"{json.dumps(payload)}</script>", subtype="html")
    return msg.as_bytes()


async def invited_by_mail(daemon: Daemon, clock: FrozenClock, sink: Sink,
                          *orders: tuple[str, bytes]) -> list[str]:
    """Each (BCC address, shipping mail) over SMTP, the invitations mailed a week later; the
    review tokens from the links in those mails, in order."""
    for bcc, raw in orders:
        await send(daemon, raw, bcc)
    await settle(daemon)
    clock.advance(timedelta(days=7))
    await daemon.tick()
    await sink.wait_for(len(orders))
    tokens = []
    for _bcc, raw in orders:
        customer = str(parsed(raw)["To"]).split("<")[1].rstrip(">")
        [mail] = mails_to(sink, customer)
        match = re.search(r"http://reviews\.test/r/([A-Za-z0-9_-]+)", text_of(mail))
        assert match, text_of(mail)
        tokens.append(match.group(1))
    return tokens


async def get_json(http: aiohttp.ClientSession, daemon: Daemon, path: str,
                   status: int = 200) -> Any:
    async with http.get(base(daemon) + path) as resp:
        assert resp.status == status, await resp.text()
        assert resp.content_type == "application/json"
        return await resp.json()


async def get_page(http: aiohttp.ClientSession, daemon: Daemon, path: str,
                   status: int = 200) -> tuple[str, aiohttp.ClientResponse]:
    async with http.get(base(daemon) + path) as resp:
        assert resp.status == status
        return await resp.text(), resp


def json_ld(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.S)
    assert match, html
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def ticket_text(sink: Sink, review_id: int, agent: str = AGENT) -> str:
    ticket = next(m for m in mails_to(sink, agent)
                  if m["X-Mailrelay-Review"] == str(review_id))
    return text_of(ticket)


def review_id_of(daemon: Daemon, token: str) -> int:
    invitation = daemon.store.read(lambda q: q.invitation_by_token(token))
    assert invitation is not None and invitation.review_id
    return invitation.review_id


RATINGS = {"product-1-stars": "5", "product-1-text": "Grippy on wet rock, light on the feet.",
           "product-2-stars": "3"}


async def test_two_products_of_a_shipping_mail_are_rated_then_shown_on_ticket_and_pages(
    config: Config, clock: FrozenClock, sink: Sink, http: aiohttp.ClientSession,
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        [token] = await invited_by_mail(daemon, clock, sink, (
            "reviews+acme@relay.test",
            shipping_mail("ann@example.com", "Ann Lee", "1057", [TRAIL_RUNNER, SOCKS])))
        async with http.get(f"{base(daemon)}/r/{token}") as resp:
            form = await resp.text()
            assert CSP_WITH_IMAGES in resp.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        for n, product in ((1, "Trail Runner"), (2, "Merino socks")):
            assert f'name="product-{n}-stars"' in form and f'name="product-{n}-text"' in form
            assert f"<span>{product}</span></legend>" in form
        assert 'src="https://cdn.acme.example/tr-42.jpg"' in form
        assert 'src="https://cdn.acme.example/sock-7.jpg"' in form
        status, thanks = await submit(http, daemon, token, **RATINGS)
        assert status == 200
        assert '<a href="/s/acme/p/TR-42">Trail Runner</a>' in thanks
        assert "Grippy on wet rock, light on the feet." in thanks
        review_id = review_id_of(daemon, token)
        rows = daemon.store.read(lambda q: q.product_reviews_of(review_id))
        assert [(r.n, r.sku, r.stars, r.text) for r in rows] == [
            (1, "TR-42", 5, "Grippy on wet rock, light on the feet."), (2, "SOCK-7", 3, None)]
        assert (rows[0].gtin, rows[0].mpn, rows[0].brand, rows[0].url) == (
            "5701234567890", "TR42-BLK", "ACME", "https://acme.example/p/tr-42")
        assert rows[1].url == "https://acme.example/p/sock-7"

        await daemon.tick()
        await sink.wait_for(2)
        ticket = ticket_text(sink, review_id)
        assert "Trail Runner (SKU TR-42): ★★★★★ (5/5)" in ticket
        assert "    Grippy on wet rock, light on the feet." in ticket
        assert "Merino socks (SKU SOCK-7): ★★★☆☆ (3/5)" in ticket
        assert "Your reply answers the review as a whole" in ticket

        page, resp = await get_page(http, daemon, "/s/acme/p/TR-42")
        assert CSP_WITH_IMAGES in resp.headers["Content-Security-Policy"]
        assert "Grippy on wet rock" in page and "John S." in page
        data = json_ld(page)
        assert data["@type"] == "Product"
        assert (data["name"], data["sku"], data["gtin"], data["mpn"]) == (
            "Trail Runner", "TR-42", "5701234567890", "TR42-BLK")
        assert data["brand"] == {"@type": "Brand", "name": "ACME"}
        assert data["image"] == "https://cdn.acme.example/tr-42.jpg"
        assert data["aggregateRating"]["ratingValue"] == 5.0
        assert data["aggregateRating"]["reviewCount"] == 1
        [review] = data["review"]
        assert review["reviewRating"]["ratingValue"] == 5
        assert review["reviewBody"] == "Grippy on wet rock, light on the feet."

        listing = await get_json(http, daemon, "/s/acme/p/TR-42/reviews.json")
        assert listing["product"]["page_url"] == "http://reviews.test/s/acme/p/TR-42"
        assert listing["summary"]["count"] == 1 and listing["summary"]["average"] == 5.0
        assert listing["summary"]["distribution"]["5"] == 1
        assert [r["text"] for r in listing["reviews"]] == [
            "Grippy on wet rock, light on the feet."]
        assert listing["reviews"][0]["verified"] is True
        assert "customer_email" not in listing["reviews"][0]
        products = await get_json(http, daemon, "/s/acme/products.json")
        assert {(p["sku"], p["count"], p["average"], p["page_url"])
                for p in products["products"]} == {
            ("TR-42", 1, 5.0, "http://reviews.test/s/acme/p/TR-42"),
            ("SOCK-7", 1, 3.0, "http://reviews.test/s/acme/p/SOCK-7")}


async def test_unknown_shops_skus_and_pages_are_not_found(
    config: Config, clock: FrozenClock, sink: Sink, http: aiohttp.ClientSession,
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        [token] = await invited_by_mail(daemon, clock, sink, (
            "reviews+acme@relay.test",
            shipping_mail("ann@example.com", "Ann Lee", "1057", [TRAIL_RUNNER])))
        await submit(http, daemon, token, **{"product-1-stars": "4"})
        for path in ("/s/acme/p/NOPE/reviews.json", "/s/nope/p/TR-42/reviews.json",
                     "/s/nope/products.json", "/s/acme/p/TR-42/reviews.json?page=2",
                     "/s/acme/products.json?page=x"):
            assert await get_json(http, daemon, path, 404) == {"error": "not found"}
        for path in ("/s/acme/p/NOPE", "/s/nope/p/TR-42", "/s/acme/p/TR-42?page=2"):
            await get_page(http, daemon, path, 404)
        await get_page(http, daemon, "/s/acme/p/TR-42")


async def test_two_shops_selling_the_same_sku_never_mix_and_a_reported_review_leaves(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink, http: aiohttp.ClientSession,
) -> None:
    config = via_sink(make_config(more=second_shop()), sink)
    async with Daemon(config, clock) as daemon:
        acme, bolt = await invited_by_mail(
            daemon, clock, sink,
            ("reviews+acme@relay.test",
             shipping_mail("ann@example.com", "Ann Lee", "1057", [TRAIL_RUNNER])),
            ("reviews+bolt@relay.test",
             shipping_mail("bob@example.com", "Bob Berg", "B-88", [TRAIL_RUNNER],
                           sender="Bolt Bikes <shop@bolt.example>")))
        await submit(http, daemon, acme, **{"product-1-stars": "5",
                                            "product-1-text": "Holds the trail."})
        await submit(http, daemon, bolt, **{"product-1-stars": "1",
                                            "product-1-text": "The sole came off."})
        for shop, text, stars in (("acme", "Holds the trail.", 5),
                                  ("bolt", "The sole came off.", 1)):
            listing = await get_json(http, daemon, f"/s/{shop}/p/TR-42/reviews.json")
            assert [(r["text"], r["stars"]) for r in listing["reviews"]] == [(text, stars)]
            assert listing["shop"]["id"] == shop
            [product] = (await get_json(http, daemon, f"/s/{shop}/products.json"))["products"]
            assert (product["count"], product["average"]) == (1, float(stars))

        await daemon.tick()
        await sink.wait_for(4)
        review_id = review_id_of(daemon, acme)
        ticket = next(m for m in mails_to(sink, AGENT)
                      if m["X-Mailrelay-Review"] == str(review_id))
        await report_by_reply(daemon, ticket, "#report written by a competitor\n")
        # Issue 14: the report hides the review once an owner confirms it (the service).
        [pending] = daemon.store.read(lambda q: q.reports("acme"))
        decision = Decision(True, "owner@acme.example", None, "not_a_customer")
        await daemon.store.write(lambda q: moderation.decide(q, config, "acme", pending.id,
                                                             decision, clock.now()))
        listing = await get_json(http, daemon, "/s/acme/p/TR-42/reviews.json")
        assert (listing["summary"]["count"], listing["reviews"]) == (0, [])
        page, _ = await get_page(http, daemon, "/s/acme/p/TR-42")
        assert "Holds the trail." not in page and "application/ld+json" not in page
        assert (await get_json(http, daemon, "/s/acme/products.json"))["products"] == []
        listing = await get_json(http, daemon, "/s/bolt/p/TR-42/reviews.json")
        assert listing["summary"]["count"] == 1  # the other shop's review stays


async def report_by_reply(daemon: Daemon, ticket: EmailMessage, body: str) -> None:
    """The agent answers the ticket by mail (SMTP to its reply+ address)."""
    reply = EmailMessage()
    reply["From"] = f"Support <{AGENT}>"
    reply["To"] = str(ticket["Reply-To"])
    reply["Subject"] = "Re: " + str(ticket["Subject"])
    reply["Message-ID"] = make_msgid(domain="acme.example")
    reply["In-Reply-To"] = reply["References"] = str(ticket["Message-ID"])
    reply.set_content(body)
    await send(daemon, reply.as_bytes(), str(ticket["Reply-To"]), sender=AGENT)
    await settle(daemon)


async def test_a_manual_invitation_without_products_shows_no_product_section(
    config: Config, clock: FrozenClock, http: aiohttp.ClientSession,
) -> None:
    async with Daemon(config, clock) as daemon:
        invitation = await invite(daemon)
        async with http.get(f"{base(daemon)}/r/{invitation.token}") as resp:
            page = await resp.text()
            assert CSP_WITH_IMAGES not in resp.headers["Content-Security-Policy"]
        assert "product-" not in page and "products-title" not in page
        # A product field posted anyway (a stale or forged form) is ignored.
        status, _ = await submit(http, daemon, invitation.token, **{"product-1-stars": "5"})
        assert status == 200
        review_id = review_id_of(daemon, invitation.token)
        assert daemon.store.read(lambda q: q.product_reviews_of(review_id)) == []


async def test_product_text_without_stars_is_refused_with_a_linked_error_and_kept(
    config: Config, clock: FrozenClock, sink: Sink, http: aiohttp.ClientSession,
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        [token] = await invited_by_mail(daemon, clock, sink, (
            "reviews+acme@relay.test",
            shipping_mail("ann@example.com", "Ann Lee", "1057", [TRAIL_RUNNER, SOCKS])))
        csrf = csrf_of(await form_page(http, daemon, token))
        status, page, _ = await post(http, daemon, token, {
            "stars": "4", "text": "Quick delivery.", "csrf": csrf, "product-1-stars": "9",
            "product-2-text": "Warm, but they itch."})
        assert status == 400
        assert '<a href="#product-1-stars-1">Please choose from 1 to 5 stars for Trail Runner.' \
            in page
        assert '<a href="#product-2-stars-1">Please choose from 1 to 5 stars for Merino socks,' \
            in page
        assert 'id="product-2-stars-error"' in page
        assert re.search(r'id="product-2-stars-1"[^>]*aria-describedby="product-2-stars-error"'
                         r'[^>]*aria-invalid="true"', page)
        assert "Warm, but they itch.</textarea>" in page
        assert daemon.store.read(lambda q: q.list_reviews()) == []


async def test_editing_the_review_edits_its_product_ratings(
    config: Config, clock: FrozenClock, sink: Sink, http: aiohttp.ClientSession,
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        [token] = await invited_by_mail(daemon, clock, sink, (
            "reviews+acme@relay.test",
            shipping_mail("ann@example.com", "Ann Lee", "1057", [TRAIL_RUNNER, SOCKS])))
        await submit(http, daemon, token, **RATINGS)
        review_id = review_id_of(daemon, token)
        page = await form_page(http, daemon, token)
        assert re.search(r'id="product-1-stars-5"[^>]* checked', page)
        assert re.search(r'id="product-2-stars-3"[^>]* checked', page)
        assert "Grippy on wet rock, light on the feet.</textarea>" in page
        clock.advance(timedelta(hours=1))
        # The socks get "No rating" now, the runners four stars.
        status, _ = await submit(http, daemon, token, **{
            "product-1-stars": "4", "product-1-text": "Worn out after a month.",
            "product-2-stars": ""})
        assert status == 200
        rows = daemon.store.read(lambda q: q.product_reviews_of(review_id))
        assert [(r.sku, r.stars, r.text) for r in rows] == [
            ("TR-42", 4, "Worn out after a month.")]
        review = daemon.store.read(lambda q: q.get_review(review_id))
        assert review is not None and review.edits == 1


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver(free_port()) as running:
        yield running


async def test_the_webhook_review_payload_carries_the_product_ratings(
    make_config: ConfigFactory, tmp_path: Path, clock: FrozenClock, sink: Sink,
    http: aiohttp.ClientSession, receiver: Receiver,
) -> None:
    key = tmp_path / "hook.key"
    key.write_text("product-webhook-secret-0123456789\n")
    config = via_sink(make_config(more=webhook_table(receiver.url, key)), sink)
    async with Daemon(config, clock) as daemon:
        [token] = await invited_by_mail(daemon, clock, sink, (
            "reviews+acme@relay.test",
            shipping_mail("ann@example.com", "Ann Lee", "1057", [TRAIL_RUNNER, SOCKS])))
        await submit(http, daemon, token, **RATINGS)
        await posted(daemon)
    [delivery] = [d for d in receiver.received if d.event["type"] == "review.created"]
    assert delivery.event["data"]["review"]["products"] == [
        {"sku": "TR-42", "name": "Trail Runner", "stars": 5,
         "text": "Grippy on wet rock, light on the feet."},
        {"sku": "SOCK-7", "name": "Merino socks", "stars": 3, "text": ""}]


async def test_tag_filters_product_pages_and_json_by_the_service_reviews_tags(
    config: Config, clock: FrozenClock, sink: Sink, http: aiohttp.ClientSession,
) -> None:
    tagged = json.loads(json.dumps(TRAIL_RUNNER))
    async with Daemon(via_sink(config, sink), clock) as daemon:
        first, second = await invited_by_mail(
            daemon, clock, sink,
            ("reviews+acme@relay.test", tagged_mail("ann@example.com", "1057", ["Homepage"],
                                                    [tagged])),
            ("reviews+acme@relay.test", tagged_mail("bob@example.com", "1058", [],
                                                    [TRAIL_RUNNER])))
        await submit(http, daemon, first, **{"product-1-stars": "5",
                                             "product-1-text": "Best shoes I owned."})
        await submit(http, daemon, second, **{"product-1-stars": "2",
                                              "product-1-text": "Too narrow."})
        listing = await get_json(http, daemon, "/s/acme/p/TR-42/reviews.json?tag=homepage")
        assert [r["text"] for r in listing["reviews"]] == ["Best shoes I owned."]
        assert listing["summary"]["count"] == 1
        everything = await get_json(http, daemon, "/s/acme/p/TR-42/reviews.json")
        assert everything["summary"]["count"] == 2
        [product] = (await get_json(http, daemon, "/s/acme/products.json?tag=homepage"))[
            "products"]
        assert (product["count"], product["average"]) == (1, 5.0)
        page, _ = await get_page(http, daemon, "/s/acme/p/TR-42?tag=homepage")
        assert "Best shoes I owned." in page and "Too narrow." not in page
        assert json_ld(page)["aggregateRating"]["reviewCount"] == 1


def tagged_mail(email: str, order: str, tags: list[str],
                products: list[dict[str, str]]) -> bytes:
    """A shipping mail whose block also gives tags (they reach the review as #tags)."""
    raw = shipping_mail(email, email.split("@")[0].title(), order, products)
    return raw.replace(b'"products":', f'"tags": {json.dumps(tags)}, "products":'.encode())


# --- the CLI: reviews, export and stats with --sku and per-product figures -------------------


@pytest.fixture
def rated_shops(make_config: ConfigFactory) -> Config:
    """acme with two reviews rating its boots (one also its socks), bolt with one rating the
    same SKU: written straight into the store the CLI reads."""
    config = make_config(more=second_shop())

    def fill(q: Queries) -> None:
        ann = _review(q, "acme", 5, "Ann", T0)
        bob = _review(q, "acme", 2, "Bob", T0 + timedelta(hours=1))
        eve = _review(q, "bolt", 1, "Eve", T0 + timedelta(hours=2))
        q.save_product_reviews(ann, "acme", [_boots(5), _socks(4)], T0)
        q.save_product_reviews(bob, "acme", [_boots(3, "Pinches at the toe.")],
                               T0 + timedelta(hours=1))
        q.save_product_reviews(eve, "bolt", [_boots(1, "Sole came off.")],
                               T0 + timedelta(hours=2))

    with open_store(config.store) as store:
        store.write_sync(fill)
    return config


def test_reviews_sku_lists_the_reviews_that_rated_it_with_the_products_stars(
        rated_shops: Config) -> None:
    code, out = cli(rated_shops, "reviews", "--sku", "BOOT-42", "--shop", "acme",
                    "--format", "json")
    assert code == 0, out
    assert [(r["reviewer_name"], r["stars"], r["product_stars"], r["product_text"])
            for r in json.loads(out)] == [
        ("Ann", 5, 5, "Comfortable from the first day."), ("Bob", 2, 3, "Pinches at the toe.")]
    code, out = cli(rated_shops, "reviews", "--sku", "SOCK-7", "--format", "json")
    assert [r["reviewer_name"] for r in json.loads(out)] == ["Ann"]
    code, out = cli(rated_shops, "reviews", "--sku", "BOOT-42", "--format", "table")
    assert code == 0 and "product_stars" in out and "Eve" in out


def test_export_products_writes_one_row_per_product_review_for_a_spreadsheet(
        rated_shops: Config) -> None:
    code, out = cli(rated_shops, "export", "--products", "--shop", "acme")
    assert code == 0, out
    header, *rows = out.strip().splitlines()
    assert header == ("review_id,shop,sku,product_name,gtin,mpn,brand,product_url,stars,text,"
                      "reviewer_name,reference,method,created_at,updated_at,reported,tags")
    assert len(rows) == 3 and all(",acme," in row for row in rows)
    code, out = cli(rated_shops, "export", "--sku", "BOOT-42", "--format", "json")
    exported = json.loads(out)
    assert {(r["shop"], r["stars"], r["reviewer_name"]) for r in exported} == {
        ("acme", 5, "Ann"), ("acme", 3, "Bob"), ("bolt", 1, "Eve")}
    assert exported[0]["gtin"] == "4006381333931" and exported[0]["mpn"] == "TB-42"
    code, out = cli(rated_shops, "export")  # without them: one row per review, as before
    assert out.splitlines()[0].startswith("id,shop,stars,") and len(out.splitlines()) == 4


def test_stats_give_each_products_count_and_average_per_shop(rated_shops: Config) -> None:
    code, out = cli(rated_shops, "stats", "--format", "json")
    assert code == 0, out
    acme, bolt = json.loads(out)
    assert [(p["sku"], p["count"], p["average"]) for p in acme["products"]] == [
        ("BOOT-42", 2, 4.0), ("SOCK-7", 1, 4.0)]
    assert [(p["sku"], p["count"], p["average"]) for p in bolt["products"]] == [
        ("BOOT-42", 1, 1.0)]
    code, out = cli(rated_shops, "stats", "--shop", "acme", "--sku", "SOCK-7", "--format",
                    "json")
    assert [p["sku"] for p in json.loads(out)[0]["products"]] == ["SOCK-7"]
    code, out = cli(rated_shops, "stats", "--shop", "acme", "--format", "table")
    assert "product BOOT-42 (Trail boot): 2 reviews, average 4.0" in out
    code, out = cli(rated_shops, "stats", "--shop", "acme", "--format", "csv")
    assert "BOOT-42 2×4.0;SOCK-7 1×4.0" in out


async def test_a_sku_with_a_slash_and_a_space_has_a_working_page_url(
    config: Config, clock: FrozenClock, sink: Sink, http: aiohttp.ClientSession,
) -> None:
    odd = {"sku": "TR/42 blue", "name": "Trail Runner, blue"}
    async with Daemon(via_sink(config, sink), clock) as daemon:
        [token] = await invited_by_mail(daemon, clock, sink, (
            "reviews+acme@relay.test",
            shipping_mail("ann@example.com", "Ann Lee", "1057", [odd])))
        await submit(http, daemon, token, **{"product-1-stars": "4"})
        [product] = (await get_json(http, daemon, "/s/acme/products.json"))["products"]
        assert product["page_url"] == "http://reviews.test/s/acme/p/TR%2F42%20blue"
        path = product["page_url"].removeprefix("http://reviews.test")
        listing = await get_json(http, daemon, path + "/reviews.json")
        assert listing["product"]["sku"] == "TR/42 blue"
        page, _ = await get_page(http, daemon, path)
        assert json_ld(page)["sku"] == "TR/42 blue"


def test_reviews_show_lists_the_reviews_product_ratings(rated_shops: Config) -> None:
    code, out = cli(rated_shops, "reviews", "show", "1", "--format", "table")
    assert code == 0, out
    assert "Product Trail boot (BOOT-42): 5/5 Comfortable from the first day." in out
    assert "Product Wool socks (SOCK-7): 4/5" in out
    code, out = cli(rated_shops, "reviews", "show", "1", "--format", "json")
    assert [p["sku"] for p in json.loads(out)["products"]] == ["BOOT-42", "SOCK-7"]


async def test_a_product_text_cannot_fake_the_tickets_reply_marker_or_key(
    config: Config, clock: FrozenClock, sink: Sink, http: aiohttp.ClientSession,
) -> None:
    sneaky = {"sku": "X-1", "name": "Box [mr:abc123]"}
    async with Daemon(via_sink(config, sink), clock) as daemon:
        [token] = await invited_by_mail(daemon, clock, sink, (
            "reviews+acme@relay.test",
            shipping_mail("ann@example.com", "Ann Lee", "1057", [sneaky])))
        await submit(http, daemon, token, **{
            "product-1-stars": "2",
            "product-1-text": "##- Please type your reply above this line -##\n[mr:abc123]"})
        await daemon.tick()
        await sink.wait_for(2)
        ticket = ticket_text(sink, review_id_of(daemon, token))
        assert "    ## - Please type your reply above this line -##" in ticket
        assert "[mr:abc123]" not in ticket and "Box [mr :abc123]" in ticket


async def test_a_products_reviews_come_ten_a_page_with_links_that_keep_the_tag(
    make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession,
) -> None:
    config = make_config()

    def fill(q: Queries) -> None:
        for i in range(12):
            review = _review(q, "acme", 4, f"Reviewer{i:02d}", T0 + timedelta(hours=i))
            q.save_product_reviews(review, "acme", [_boots(1 + i % 5, f"Boot note {i:02d}")],
                                   T0 + timedelta(hours=i))
            q.add_tag(review, "trail", T0)

    with open_store(config.store) as store:
        store.write_sync(fill)
    async with Daemon(config, clock) as daemon:
        first = await get_json(http, daemon, "/s/acme/p/BOOT-42/reviews.json?tag=trail")
        second = await get_json(http, daemon, "/s/acme/p/BOOT-42/reviews.json?tag=trail&page=2")
        assert (first["pages"], len(first["reviews"]), len(second["reviews"])) == (2, 10, 2)
        assert first["reviews"][0]["text"] == "Boot note 11"  # newest first
        assert [r["text"] for r in second["reviews"]] == ["Boot note 01", "Boot note 00"]
        page, _ = await get_page(http, daemon, "/s/acme/p/BOOT-42?tag=trail")
        assert 'href="/s/acme/p/BOOT-42?tag=trail&amp;page=2" rel="next"' in page
        page, _ = await get_page(http, daemon, "/s/acme/p/BOOT-42?tag=trail&page=2")
        assert 'href="/s/acme/p/BOOT-42?tag=trail" rel="prev"' in page
        assert "Boot note 00" in page and "Boot note 11" not in page
        await get_page(http, daemon, "/s/acme/p/BOOT-42?tag=trail&page=3", 404)


@pytest.mark.parametrize(("locale", "title", "legend"), [
    ("de", "Ihre bestellten Produkte", "Ihre Bewertung von Trail Runner (freiwillig)"),
    ("da", "De produkter, du har bestilt", "Din bedømmelse af Trail Runner (frivilligt)"),
])
async def test_the_product_part_of_the_form_speaks_the_customers_language(
    config: Config, clock: FrozenClock, sink: Sink, http: aiohttp.ClientSession,
    locale: str, title: str, legend: str,
) -> None:
    raw = shipping_mail("ann@example.com", "Ann Lee", "1057", [TRAIL_RUNNER])
    raw = raw.replace(b'"products":', f'"locale": "{locale}", "products":'.encode())
    async with Daemon(via_sink(config, sink), clock) as daemon:
        [token] = await invited_by_mail(daemon, clock, sink, ("reviews+acme@relay.test", raw))
        page = await form_page(http, daemon, token)
        assert f'<html lang="{locale}">' in page
        assert title in page and legend in page
