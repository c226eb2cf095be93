"""The Google Merchant Center Product Reviews feed: the builder's XML against our XSD of Google's
published 2.3 schema, with hard text, missing identifiers and anonymous reviewers."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from lxml import etree

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.core.models import InvitationMethod
from mailrelay.render.feeds import (
    FeedProduct,
    FeedPublisher,
    FeedReview,
    collection_method,
    product_reviews_feed,
)
from mailrelay.services.feeds import feed_review
from mailrelay.store import NewProductReview, ProductReviewListing, ProductReviewRow

from .conftest import ConfigFactory, second_shop
from .feed_schema import read_reviews, schema_errors, valid_feed
from .web_forms import base, invite, submit

WRITTEN = datetime(2026, 11, 3, 14, 5, 9, tzinfo=UTC)
PUBLISHER = FeedPublisher("ACME Shoes", "https://acme.example/favicon.png")


def product(sku: str = "TRAIL-42", **fields: str | None) -> FeedProduct:
    values: dict[str, str | None] = {
        "url": f"https://acme.example/p/{sku}", "name": "Trail runner", "gtin": "4006381333931",
        "mpn": "TR-42-BLK", "sku": sku, "brand": "Acme",
    }
    values.update(fields)
    url = values.pop("url")
    assert url is not None
    return FeedProduct(url, **values)


def review(review_id: str = "1", **fields: Any) -> FeedReview:
    base = FeedReview(
        review_id, reviewer_name="Ann Walker", written_at=WRITTEN,
        content="Light, and dry after a day in the rain.",
        url=f"https://reviews.test/s/acme/p/TRAIL-42#product-review-{review_id}",
        rating=5, product=product(), title="Dry feet", method="automatic",
    )
    return replace(base, **fields)


def test_a_feed_of_several_products_and_reviews_is_valid_and_carries_each_review() -> None:
    reviews = [
        review("1"),
        review("2", reviewer_name="Ben", rating=3, product=product("BAG-7", name="Day bag"),
               method="manual", content="Roomy, but the strap frays."),
        review("3", rating=1, product=product("BAG-7", name="Day bag"), method="organic",
               title=None, content="Fell apart in a week."),
    ]
    root = valid_feed(product_reviews_feed(PUBLISHER, reviews))
    assert root.findtext("version") == "2.3"
    assert root.findtext("publisher/name") == "ACME Shoes"
    assert root.findtext("publisher/favicon") == "https://acme.example/favicon.png"
    assert root.find("aggregator") is None  # one merchant's own feed names no aggregator
    read = read_reviews(root)
    assert [r.review_id for r in read] == ["1", "2", "3"]
    assert [r.rating for r in read] == ["5", "3", "1"]
    assert [r.skus for r in read] == [["TRAIL-42"], ["BAG-7"], ["BAG-7"]]
    assert [r.method for r in read] == ["post_fulfillment", "post_fulfillment", "unsolicited"]
    assert read[0].timestamp == "2026-11-03T14:05:09Z"
    assert read[0].url_type == "singleton"
    assert read[2].title is None
    assert read[0].gtins == ["4006381333931"] and read[0].mpns == ["TR-42-BLK"]
    assert read[0].brands == ["Acme"] and read[0].product_name == "Trail runner"
    overall = root.find("reviews/review/ratings/overall")
    assert overall is not None and (overall.get("min"), overall.get("max")) == ("1", "5")


def test_an_anonymous_reviewer_is_marked_and_never_blank() -> None:
    root = valid_feed(product_reviews_feed(PUBLISHER, [
        review("1", reviewer_name=None), review("2", reviewer_name="  "),
        review("3", reviewer_name="Cleo"),
    ]))
    read = read_reviews(root)
    assert [(r.reviewer, r.anonymous) for r in read] == [
        ("Anonymous", True), ("Anonymous", True), ("Cleo", False)]
    names = root.findall("reviews/review/reviewer/name")
    assert [n.get("is_anonymous") for n in names] == ["true", "true", "false"]


def test_missing_optional_identifiers_are_left_out_not_sent_empty() -> None:
    root = valid_feed(product_reviews_feed(PUBLISHER, [
        review("1", product=product("ONLY-SKU", gtin=None, mpn=None, brand=None, name=None)),
        review("2", product=FeedProduct("https://acme.example/p/plain")),
        review("3", product=product("BRANDED", gtin="", mpn=None)),
    ]))
    first, second, third = root.findall("reviews/review/products/product")
    assert [e.tag for e in first.iterfind("product_ids/*")] == ["skus"]
    assert first.find("product_name") is None
    assert second.find("product_ids") is None
    assert second.findtext("product_url") == "https://acme.example/p/plain"
    assert [e.tag for e in third.iterfind("product_ids/*")] == ["skus", "brands"]


def test_german_polish_and_japanese_text_arrive_as_utf8_unchanged() -> None:
    texts = {
        "1": ("Jürgen Weiß", "Größe passt, Sohle rutschfest – sehr gut für Schotterwege."),
        "2": ("Łucja Żółkiewska", "Świetne buty 👟, zażółć gęślą jaźń, polecam każdemu."),
        "3": ("山田 花子", "とても軽くて履きやすいです。雨の日でも足が濡れませんでした。"),
    }
    body = product_reviews_feed(FeedPublisher("Schuhhaus Müller & Söhne"), [
        review(rid, reviewer_name=name, content=text, title=text[:12],
               product=product(name="靴 Größe 42"))
        for rid, (name, text) in texts.items()
    ])
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<feed ')
    for name, text in texts.values():
        assert text.encode("utf-8") in body and name.encode("utf-8") in body  # not &#…; refs
    read = read_reviews(valid_feed(body))
    assert [(r.reviewer, r.content) for r in read] == list(texts.values())
    assert read[2].product_name == "靴 Größe 42"
    assert valid_feed(body).findtext("publisher/name") == "Schuhhaus Müller & Söhne"


def test_markup_ampersands_and_cdata_ends_in_text_are_escaped_and_read_back_exactly() -> None:
    hostile = "a < b && c > d ]]> <![CDATA[x]]> </content><content>injected"
    body = product_reviews_feed(FeedPublisher("R&D <Shop>"), [
        review("1", content=hostile, title="<b>bold</b> & ]]>", reviewer_name="<Eve & Co>",
               product=product(name="Boot ]]> & <Strap>", brand="A&B"),
               url="https://reviews.test/s/acme/p/X?a=1&b=2"),
    ])
    assert b"]]>" not in body and b"<![CDATA[" not in body and b"<b>" not in body
    root = valid_feed(body)
    [read] = read_reviews(root)
    assert read.content == hostile
    assert read.title == "<b>bold</b> & ]]>"
    assert read.reviewer == "<Eve & Co>"
    assert read.product_name == "Boot ]]> & <Strap>" and read.brands == ["A&B"]
    assert read.url == "https://reviews.test/s/acme/p/X?a=1&b=2"
    assert len(root.findall("reviews/review/content")) == 1


def test_characters_xml_cannot_carry_are_dropped_instead_of_breaking_the_feed() -> None:
    body = product_reviews_feed(PUBLISHER, [
        review("1", content="bell\x07 and nul\x00 and tab\tstay", reviewer_name="Dan\x1b"),
    ])
    [read] = read_reviews(valid_feed(body))
    assert read.content == "bell and nul and tab\tstay"
    assert read.reviewer == "Dan"


def test_timestamps_are_utc_with_their_zone_and_a_naive_one_is_refused() -> None:
    berlin = timezone(timedelta(hours=1))
    body = product_reviews_feed(PUBLISHER, [
        review("1", written_at=datetime(2026, 12, 24, 18, 30, tzinfo=berlin))])
    assert read_reviews(valid_feed(body))[0].timestamp == "2026-12-24T17:30:00Z"
    with pytest.raises(ValueError, match="time zone"):
        product_reviews_feed(PUBLISHER, [review("1", written_at=datetime(2026, 12, 24))])


def test_a_review_without_text_is_left_out_because_google_requires_content() -> None:
    body = product_reviews_feed(PUBLISHER, [review("1", content=" \n"), review("2")])
    assert [r.review_id for r in read_reviews(valid_feed(body))] == ["2"]


def test_a_feed_with_no_reviews_is_valid_and_has_no_empty_reviews_element() -> None:
    root = valid_feed(product_reviews_feed(FeedPublisher("Quiet Shop"), []))
    assert root.find("reviews") is None
    assert root.find("publisher/favicon") is None


def test_every_review_method_maps_to_a_collection_method_google_knows() -> None:
    expected = {
        "automatic": "post_fulfillment", "manual": "post_fulfillment",
        "link": "post_fulfillment", "basic": "unsolicited", "organic": "unsolicited",
        "embedded": "unsolicited",
    }
    assert {m.value: collection_method(m) for m in InvitationMethod} == expected
    assert collection_method(None) is None and collection_method("carrier pigeon") is None
    body = product_reviews_feed(PUBLISHER, [
        review(str(n), method=m.value) for n, m in enumerate(InvitationMethod, 1)]
        + [review("99", method=None)])
    read = read_reviews(valid_feed(body))
    assert [r.method for r in read] == [*expected.values(), None]


def test_a_rating_off_our_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="off our scale"):
        product_reviews_feed(PUBLISHER, [review("1", rating=6)])


# --- the schema can fail ------------------------------------------------------------------------

Mutation = Callable[[bytes], bytes]


def _swap_content_and_title(body: bytes) -> bytes:
    return re.sub(rb"(<title>.*?</title>)(\s*)(<content>.*?</content>)", rb"\3\2\1", body,
                  count=1, flags=re.S)


BROKEN: dict[str, Mutation] = {
    "elements out of the schema's order": _swap_content_and_title,
    "a required element missing": lambda b: re.sub(rb"<content>.*?</content>", b"", b,
                                                   count=1, flags=re.S),
    "a collection method Google does not know": lambda b: b.replace(
        b"post_fulfillment", b"after_delivery", 1),
    "two reviews with one id": lambda b: b.replace(b"<review_id>2<", b"<review_id>1<", 1),
    "a timestamp without a zone": lambda b: b.replace(b"14:05:09Z", b"14:05:09", 1),
    "a review URL without its type": lambda b: b.replace(b' type="singleton"', b"", 1),
    "a rating without its scale": lambda b: b.replace(b' min="1"', b"", 1),
    "an empty identifier list": lambda b: re.sub(rb"<gtin>[^<]*</gtin>", b"", b, count=1),
    "an empty reviewer name": lambda b: re.sub(rb"(<name is_anonymous=\"false\">)[^<]*", rb"\1",
                                               b, count=1),
    "a wrong schema version": lambda b: b.replace(b"<version>2.3<", b"<version>2.4<", 1),
    "an element the schema has not": lambda b: b.replace(b"</content>",
                                                          b"</content><mood>great</mood>", 1),
}


@pytest.mark.parametrize("fault", sorted(BROKEN))
def test_the_schema_rejects_a_broken_feed(fault: str) -> None:
    body = product_reviews_feed(PUBLISHER, [review("1"), review("2")])
    assert schema_errors(body) == []
    broken = BROKEN[fault](body)
    assert broken != body, "the mutation must change the document"
    assert schema_errors(broken), f"{fault}: the schema let it through"


def test_the_schema_file_is_itself_a_valid_xml_schema() -> None:
    from .feed_schema import SCHEMA_FILE
    etree.XMLSchema(etree.parse(str(SCHEMA_FILE)))  # raises XMLSchemaParseError otherwise


# --- the route, over HTTP against the whole daemon ----------------------------------------------

FEED = "/s/{shop}/feeds/google-product-reviews.xml"
BOOTS = NewProductReview(n=1, stars=5, text=None, sku="BOOT-42", name="Trail boot",
                         url="https://acme.example/boot", gtin="4006381333931", mpn="TB-42",
                         brand="Acme")
SOCKS = NewProductReview(n=2, stars=4, text=None, sku="SOCK 7/blue", name="Wool socks")


async def reviewed(http: aiohttp.ClientSession, daemon: Daemon, shop: str, name: str | None,
                   products: list[NewProductReview]) -> int:
    """A review written through the form, then its product ratings stored with it."""
    email = f"{(name or 'nobody').split()[0].lower()}@example.com"
    invitation = await invite(daemon, email, name, shop_id=shop)
    fields = {"name": name} if name else {"name": ""}
    status, _page = await submit(http, daemon, invitation.token, **fields)
    assert status == 200, _page
    row = daemon.store.read(lambda q: q.get_invitation(invitation.id))
    assert row is not None and row.review_id is not None
    review_id = row.review_id
    now = daemon.clock.now()
    await daemon.store.write(lambda q: q.save_product_reviews(review_id, shop, products, now))
    return review_id


async def fetch(http: aiohttp.ClientSession, daemon: Daemon, shop: str,
                **headers: str) -> tuple[aiohttp.ClientResponse, bytes]:
    async with http.get(base(daemon) + FEED.format(shop=shop), headers=headers) as resp:
        return resp, await resp.read()


async def test_the_feed_route_serves_each_shop_only_its_own_published_product_reviews(
        make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession) -> None:
    config = make_config(more=second_shop())
    async with Daemon(config, clock) as daemon:
        hard = "Größe passt & <Sohle> hält ]]> – 雨でも大丈夫 – zażółć"
        ann = await reviewed(http, daemon, "acme", "Ann Walker",
                             [replace(BOOTS, text=hard), replace(SOCKS, text=None)])
        await reviewed(http, daemon, "acme", None, [replace(SOCKS, stars=2, text="Thin.")])
        reported = await reviewed(http, daemon, "acme", "Carl",
                                  [replace(BOOTS, stars=1, text="Reported text.")])
        await reviewed(http, daemon, "acme", "Dora",
                       [replace(BOOTS, stars=2, text="Forgotten text.")])
        await reviewed(http, daemon, "bolt", "Eve",
                       [replace(BOOTS, text="Bolt's own boot, same SKU.")])
        now = clock.now()
        await daemon.store.write(lambda q: q.report_review(reported, "abusive", now))
        await daemon.store.write(lambda q: q.forget("dora@example.com", now))

        resp, body = await fetch(http, daemon, "acme")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/xml; charset=utf-8"
        assert resp.headers["Cache-Control"] == "public, max-age=300"
        root = valid_feed(body)
        assert root.findtext("publisher/name") == "ACME Shoes"
        read = read_reviews(root)
        # Newest first; the rating without text, the reported and the forgotten are not sent.
        assert [(r.content, r.rating) for r in read] == [("Thin.", "2"), (hard, "5")]
        thin, boots = read
        assert (thin.reviewer, thin.anonymous) == ("Anonymous", True)
        assert (boots.reviewer, boots.anonymous) == ("Ann Walker", False)
        assert boots.skus == ["BOOT-42"] and boots.gtins == ["4006381333931"]
        assert boots.product_url == "https://acme.example/boot"
        assert boots.url == "http://reviews.test/s/acme/p/BOOT-42" and boots.url_type == "group"
        # No address from the trigger: our product page is the product's URL too.
        assert thin.product_url == thin.url == "http://reviews.test/s/acme/p/SOCK%207%2Fblue"
        assert {r.method for r in read} == {"post_fulfillment"}  # invited by hand
        assert boots.review_id == str(daemon.store.read(
            lambda q: q.product_reviews_of(ann))[0].id)
        assert b"Bolt" not in body and b"Reported" not in body and b"Forgotten" not in body

        resp, bolt = await fetch(http, daemon, "bolt")
        assert resp.status == 200
        [eve] = read_reviews(valid_feed(bolt))
        assert eve.content == "Bolt's own boot, same SKU." and eve.reviewer == "Eve"
        assert valid_feed(bolt).findtext("publisher/name") == "Bolt Bikes"

        resp, _ = await fetch(http, daemon, "nobody")
        assert resp.status == 404


async def test_the_feed_answers_304_to_its_etag_until_a_review_changes_it(
        make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession) -> None:
    async with Daemon(make_config(), clock) as daemon:
        await reviewed(http, daemon, "acme", "Ann", [replace(BOOTS, text="Warm and dry.")])
        resp, body = await fetch(http, daemon, "acme")
        tag = resp.headers["ETag"]
        assert resp.status == 200 and tag.startswith('"') and body
        resp, again = await fetch(http, daemon, "acme", **{"If-None-Match": tag})
        assert resp.status == 304 and again == b""
        assert resp.headers["ETag"] == tag
        resp, _ = await fetch(http, daemon, "acme", **{"If-None-Match": f'"other", W/{tag}'})
        assert resp.status == 304
        await reviewed(http, daemon, "acme", "Ben", [replace(BOOTS, text="Too narrow.")])
        resp, newer = await fetch(http, daemon, "acme", **{"If-None-Match": tag})
        assert resp.status == 200 and resp.headers["ETag"] != tag
        assert len(read_reviews(valid_feed(newer))) == 2


# --- what the feed takes from a stored product review -------------------------------------------


def listing(sku: str | None = "BOOT-42", url: str | None = "https://acme.example/boot",
            text: str | None = "Warm.", method: str = "basic") -> ProductReviewListing:
    stored = "2026-12-04T09:00:00.000000+00:00"
    row = ProductReviewRow(
        id=7, review_id=3, shop="acme", sku=sku, n=1, name="Trail boot", url=url, image=None,
        gtin=None, mpn=None, brand=None, stars=4, text=text, created_at=stored,
        updated_at=stored)
    return ProductReviewListing(row, "Ann", method, "en", stored, None, None, None, [])


def test_a_stored_product_review_becomes_a_feed_review_with_our_product_page(
        config: Config) -> None:
    review = feed_review(config, listing())
    assert review is not None
    assert (review.review_id, review.rating, review.content) == ("7", 4, "Warm.")
    assert review.url == "http://reviews.test/s/acme/p/BOOT-42" and review.url_type == "group"
    assert review.product.url == "https://acme.example/boot"
    assert review.written_at == datetime(2026, 12, 4, 9, tzinfo=UTC)
    assert collection_method(review.method) == "unsolicited"


def test_a_product_address_that_is_not_http_is_replaced_by_our_product_page(
        config: Config) -> None:
    for odd in ("javascript:alert(1)", "acme.example/boot", "", None):
        review = feed_review(config, listing(url=odd))
        assert review is not None and review.product.url == review.url, odd


def test_a_product_without_sku_keeps_the_shops_address_and_links_the_shop_page(
        config: Config) -> None:
    review = feed_review(config, listing(sku=None))
    assert review is not None
    assert review.product.url == "https://acme.example/boot"
    assert review.url == "http://reviews.test/s/acme"
    valid_feed(product_reviews_feed(PUBLISHER, [review]))


def test_what_the_feed_cannot_carry_is_left_out(config: Config) -> None:
    assert feed_review(config, listing(text=None)) is None
    assert feed_review(config, listing(text="")) is None
    assert feed_review(config, listing(sku=None, url=None)) is None
