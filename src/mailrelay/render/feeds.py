"""Google Merchant Center's Product Reviews feed (schema version 2.3) as UTF-8 XML bytes, built
with lxml from typed views the caller fills in. Chooses nothing: which reviews are published, and
their URLs, are the caller's; no SQL, no HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from lxml import etree

from mailrelay.core.models import InvitationMethod

SCHEMA_VERSION: Final = "2.3"
SCHEMA_LOCATION: Final = (
    "http://www.google.com/shopping/reviews/schema/product/2.3/product_reviews.xsd")
XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
#: Our stars: Google asks for the scale with every rating (`<overall min max>`).
MIN_RATING: Final = 1
MAX_RATING: Final = 5
#: What `<name is_anonymous="true">` says when the reviewer gave no name (Google's own sample
#: uses the same word; the element may not be empty).
ANONYMOUS: Final = "Anonymous"

#: The docs know two collection methods: "unsolicited" (the reviewer answered no particular
#: request) and "post_fulfillment" (answered a request made after the order was fulfilled).
#: `link` is a review link the shop hands out for one order: a request about that order, so the
#: nearer of the two is post_fulfillment; `basic`, `organic` and `embedded` start from the
#: customer, who asked for the form themselves.
COLLECTION_METHODS: Final[dict[str, str]] = {
    InvitationMethod.AUTOMATIC: "post_fulfillment",
    InvitationMethod.MANUAL: "post_fulfillment",
    InvitationMethod.LINK: "post_fulfillment",
    InvitationMethod.BASIC: "unsolicited",
    InvitationMethod.ORGANIC: "unsolicited",
    InvitationMethod.EMBEDDED: "unsolicited",
}

#: Characters XML 1.0 cannot carry at all (not even escaped): C0 controls but tab, LF and CR,
#: lone surrogates, U+FFFE and U+FFFF. lxml refuses them; one such review must not sink a feed.
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class FeedPublisher:
    """Who publishes the reviews: the shop (`favicon` a URL to a small image, when known)."""

    name: str
    favicon: str | None = None


@dataclass(frozen=True)
class FeedProduct:
    """The product a review is about, with whatever identifiers the shop gave for it."""

    url: str
    name: str | None = None
    gtin: str | None = None
    mpn: str | None = None
    sku: str | None = None
    brand: str | None = None


@dataclass(frozen=True)
class FeedReview:
    """One published product review as Google is to see it.

    `reviewer_name` None means anonymous; `written_at` must carry its time zone; `method` is the
    review's collection method as stored (see `COLLECTION_METHODS`); `url_type` says whether
    `url` shows this review alone ("singleton") or among others ("group").
    """

    review_id: str
    reviewer_name: str | None
    written_at: datetime
    content: str
    url: str
    rating: int
    product: FeedProduct
    title: str | None = None
    method: str | None = None
    url_type: Literal["singleton", "group"] = "singleton"


def collection_method(method: str | None) -> str | None:
    """The feed's `collection_method` for a stored review method; None when we cannot say."""
    return COLLECTION_METHODS.get(method) if method else None


def xml_text(text: str) -> str:
    """`text` without the characters XML 1.0 cannot hold; escaping is lxml's job."""
    return _NOT_XML.sub("", text)


def feed_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with an explicit zone, as `review_timestamp` (xs:dateTime) wants it."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a feed timestamp needs a time zone: {moment!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def product_reviews_feed(publisher: FeedPublisher, reviews: Iterable[FeedReview],
                         aggregator: str | None = None) -> bytes:
    """The whole feed: Google treats it as complete, so a review left out is one withdrawn.

    A review whose text is empty (once cleaned) is left out: `<content>` is required.
    """
    feed = etree.Element("feed", nsmap={"xsi": XSI})
    feed.set(f"{{{XSI}}}noNamespaceSchemaLocation", SCHEMA_LOCATION)
    _child(feed, "version", SCHEMA_VERSION)
    if aggregator:
        _child(etree.SubElement(feed, "aggregator"), "name", aggregator)
    publisher_element = etree.SubElement(feed, "publisher")
    _child(publisher_element, "name", publisher.name)
    if publisher.favicon:
        _child(publisher_element, "favicon", publisher.favicon)
    container = None
    for review in reviews:
        if not xml_text(review.content).strip():
            continue
        if container is None:
            # <reviews> may be absent but never empty: it holds one <review> or more.
            container = etree.SubElement(feed, "reviews")
        container.append(_review(review))
    # The declaration written out: lxml's own uses single quotes, Google's samples double.
    return XML_DECLARATION + etree.tostring(feed, encoding="UTF-8", pretty_print=True)


def _review(review: FeedReview) -> etree._Element:
    """One <review>, its children in the order the schema's sequence requires."""
    if not MIN_RATING <= review.rating <= MAX_RATING:
        raise ValueError(f"review {review.review_id}: rating {review.rating} is off our scale")
    element = etree.Element("review")
    _child(element, "review_id", review.review_id)
    reviewer = etree.SubElement(element, "reviewer")
    name = xml_text(review.reviewer_name or "").strip()
    _child(reviewer, "name", name or ANONYMOUS).set("is_anonymous", "false" if name else "true")
    _child(element, "review_timestamp", feed_timestamp(review.written_at))
    if review.title and xml_text(review.title).strip():
        _child(element, "title", review.title)
    _child(element, "content", review.content)
    _child(element, "review_url", review.url).set("type", review.url_type)
    ratings = etree.SubElement(element, "ratings")
    overall = _child(ratings, "overall", str(review.rating))
    overall.set("min", str(MIN_RATING))
    overall.set("max", str(MAX_RATING))
    etree.SubElement(element, "products").append(_product(review.product))
    method = collection_method(review.method)
    if method:
        _child(element, "collection_method", method)
    return element


def _product(product: FeedProduct) -> etree._Element:
    element = etree.Element("product")
    identifiers = [(plural, single, value) for plural, single, value in (
        ("gtins", "gtin", product.gtin), ("mpns", "mpn", product.mpn),
        ("skus", "sku", product.sku), ("brands", "brand", product.brand),
    ) if value and xml_text(value).strip()]
    if identifiers:
        ids = etree.SubElement(element, "product_ids")
        for plural, single, value in identifiers:
            _child(etree.SubElement(ids, plural), single, value)
    if product.name and xml_text(product.name).strip():
        _child(element, "product_name", product.name)
    _child(element, "product_url", product.url)
    return element


def _child(parent: etree._Element, tag: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = xml_text(text).strip()
    return element
