"""Checks a Product Reviews feed against our XSD of Google's published 2.3 schema
(tests/google_product_reviews.xsd) and reads it back for the tests' assertions."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

from lxml import etree

SCHEMA_FILE = Path(__file__).with_name("google_product_reviews.xsd")


@cache
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_FILE)))


def schema_errors(body: bytes) -> list[str]:
    """What the schema finds wrong with `body` (empty when it is a valid feed)."""
    document = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    checker = schema()
    if checker.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in checker.error_log]


def valid_feed(body: bytes) -> etree._Element:
    """The parsed feed, after the schema and the checks XSD 1.0 cannot express."""
    errors = schema_errors(body)
    assert not errors, "\n".join(errors)
    root = etree.fromstring(body)
    for review in root.iterfind("reviews/review"):
        overall = review.find("ratings/overall")
        assert overall is not None and overall.text is not None
        low, high = int(overall.get("min", "")), int(overall.get("max", ""))
        assert low < high and low <= Decimal(overall.text) <= high, etree.tostring(review)
        assert review.findtext("review_id"), "we always give a review its id"
    return root


@dataclass(frozen=True)
class ReadReview:
    """One <review> of a feed, read back."""

    review_id: str
    reviewer: str
    anonymous: bool
    timestamp: str
    title: str | None
    content: str
    url: str
    url_type: str
    rating: str
    skus: list[str]
    gtins: list[str]
    mpns: list[str]
    brands: list[str]
    product_name: str | None
    product_url: str
    method: str | None


def read_reviews(root: etree._Element) -> list[ReadReview]:
    found = []
    for r in root.iterfind("reviews/review"):
        name = r.find("reviewer/name")
        url = r.find("review_url")
        assert name is not None and url is not None
        found.append(ReadReview(
            review_id=r.findtext("review_id") or "", reviewer=name.text or "",
            anonymous=name.get("is_anonymous") == "true",
            timestamp=r.findtext("review_timestamp") or "", title=r.findtext("title"),
            content=r.findtext("content") or "", url=url.text or "",
            url_type=url.get("type", ""), rating=r.findtext("ratings/overall") or "",
            skus=[e.text or "" for e in r.iterfind("products/product/product_ids/skus/sku")],
            gtins=[e.text or "" for e in r.iterfind("products/product/product_ids/gtins/gtin")],
            mpns=[e.text or "" for e in r.iterfind("products/product/product_ids/mpns/mpn")],
            brands=[e.text or ""
                    for e in r.iterfind("products/product/product_ids/brands/brand")],
            product_name=r.findtext("products/product/product_name"),
            product_url=r.findtext("products/product/product_url") or "",
            method=r.findtext("collection_method"),
        ))
    return found
