"""Product reviews: a rating and text per product of the order, linked to the service review,
and the read views the product pages, feeds and CLI need (figures per product of a shop).

SQL only. A product review is public exactly when its service review is (not reported, so not
forgotten either), as on the public page; validation lives in services.products.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from mailrelay.store.connection import Bound, Row
from mailrelay.store.rows import (
    NewProductReview,
    ProductFigures,
    ProductReviewListing,
    ProductReviewRow,
)
from mailrelay.store.timestamps import to_iso

_ROW_FIELDS = tuple(f.name for f in fields(ProductReviewRow))
_PR_COLUMNS = ", ".join(f"pr.{name}" for name in _ROW_FIELDS)
#: What a product review's INSERT sets from `NewProductReview` (beside the review and times).
_NEW_FIELDS = tuple(f.name for f in fields(NewProductReview))
_IDENTITY = ("name", "url", "image", "gtin", "mpn", "brand")
#: A product review with its service review's public side and tags (in one column: a tag
#: holding a comma would split, as in `list_reviews`).
_LISTING = (
    f"SELECT {_PR_COLUMNS}, r.reviewer_name, r.method, r.locale, r.created_at, r.updated_at,"  # noqa: S608
    " p.body, p.created_at, (SELECT group_concat(tag, ',') FROM (SELECT tag FROM review_tags t"
    " WHERE t.review_id = r.id ORDER BY tag)), r.reference, r.reported FROM product_reviews pr"
    " JOIN reviews r ON r.id = pr.review_id LEFT JOIN responses p ON p.id = r.response_id"
)
_HAS_TAG = "EXISTS (SELECT 1 FROM review_tags t WHERE t.review_id = pr.review_id AND t.tag = ?)"
_UPSERT = (
    "INSERT INTO product_reviews (review_id, shop, created_at, updated_at, "  # noqa: S608
    + ", ".join(_NEW_FIELDS) + ") VALUES (?, ?, ?, ?, " + ", ".join("?" for _ in _NEW_FIELDS)
    + ") ON CONFLICT (review_id, n) DO UPDATE SET stars = excluded.stars,"
    " text = excluded.text, updated_at = excluded.updated_at, "
    + ", ".join(f"{name} = excluded.{name}" for name in ("sku", *_IDENTITY))
    + " WHERE product_reviews.stars IS NOT excluded.stars"
    " OR product_reviews.text IS NOT excluded.text"
)


def _listing(row: Row) -> ProductReviewListing:
    count = len(_ROW_FIELDS)
    product = ProductReviewRow(*row[:count])
    (reviewer_name, method, locale, created_at, updated_at, response, responded_at,
     tags, reference, reported) = row[count:]
    return ProductReviewListing(product, reviewer_name, method, locale, created_at, updated_at,
                                response, responded_at, tags.split(",") if tags else [],
                                reference, bool(reported))


@dataclass(slots=True)
class _Filter:
    """The WHERE of a product review query, built up with its arguments."""

    where: list[str]
    args: list[Any]

    def add(self, condition: str, *args: Any) -> None:
        self.where.append(condition)
        self.args.extend(args)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.where) if self.where else ""


def _public_filter(shop: str | None, sku: str | None, tag: str | None,
                   since: datetime | None, until: datetime | None,
                   public: bool | None = True) -> _Filter:
    found = _Filter([], [])
    if public is not None:
        found.add("r.reported = ?", int(not public))
    if shop:
        found.add("pr.shop = ?", shop)
    if sku is not None:
        found.add("pr.sku = ?", sku)
    if tag:
        found.add(_HAS_TAG, tag)
    if since:
        found.add("pr.created_at >= ?", to_iso(since))
    if until:
        found.add("pr.created_at < ?", to_iso(until))
    return found


def _figures(identity: Sequence[Any], shop: str, sku: str,
             counts: dict[str, int], last: str | None) -> ProductFigures:
    dist = {str(n): counts.get(str(n), 0) for n in range(1, 6)}
    total = sum(dist.values())
    average = sum(int(k) * v for k, v in dist.items()) / total if total else None
    name, url, image, gtin, mpn, brand = identity
    return ProductFigures(shop, sku, name, url, image, gtin, mpn, brand, count=total,
                          average=average, distribution=dist, last_reviewed_at=last)


class ProductReviewQueries(Bound):
    """Product reviews, linked to their service review, and their figures per product."""

    def save_product_reviews(self, review_id: int, shop: str,
                             items: Sequence[NewProductReview], now: datetime) -> None:
        """Set a review's product reviews to `items` (by position `n`): new ones inserted,
        changed ones updated (`updated_at` moves only when stars or text changed), and those
        the customer no longer rates removed."""
        at = to_iso(now)
        for item in items:
            self.conn.execute(_UPSERT, (review_id, shop, at, at,
                                        *(getattr(item, name) for name in _NEW_FIELDS)))
        kept = [item.n for item in items]
        self.conn.execute(
            "DELETE FROM product_reviews WHERE review_id = ?"  # noqa: S608
            f" AND n NOT IN ({', '.join('?' for _ in kept) or 'NULL'})", (review_id, *kept))

    def product_reviews_of(self, review_id: int) -> list[ProductReviewRow]:
        """A service review's product reviews, in the trigger's order."""
        return [ProductReviewRow(*r) for r in self.conn.execute(
            f"SELECT {_PR_COLUMNS} FROM product_reviews pr WHERE pr.review_id = ?"  # noqa: S608
            " ORDER BY pr.n", (review_id,))]

    def product_rating(self, shop: str, sku: str,
                       tag: str | None = None) -> ProductFigures | None:
        """One product's figures from its public reviews (those tagged `tag` only, if given);
        None when no review at `shop` ever rated `sku` (an unknown product)."""
        identity = self.conn.execute(
            f"SELECT {', '.join(_IDENTITY)} FROM product_reviews"  # noqa: S608
            " WHERE shop = ? AND sku = ? ORDER BY id DESC LIMIT 1", (shop, sku)).fetchone()
        if identity is None:
            return None
        found = _public_filter(shop, sku, tag, None, None)
        counts: dict[str, int] = {}
        last: str | None = None
        for stars, count, newest in self.conn.execute(
            "SELECT pr.stars, COUNT(*), MAX(pr.created_at) FROM product_reviews pr"  # noqa: S608
            f" JOIN reviews r ON r.id = pr.review_id{found.sql()} GROUP BY pr.stars",
            found.args,
        ):
            counts[str(stars)] = int(count)
            last = max(last or newest, newest)
        return _figures(tuple(identity), shop, sku, counts, last)

    def product_reviews(self, shop: str, sku: str, *, tag: str | None = None,
                        limit: int | None = None,
                        offset: int = 0) -> list[ProductReviewListing]:
        """One product's public reviews at `shop`, newest first, a page at a time."""
        return self.list_product_reviews(shop=shop, sku=sku, tag=tag, limit=limit,
                                         offset=offset)

    def shop_products(self, shop: str, *, tag: str | None = None,
                      since: datetime | None = None,
                      until: datetime | None = None) -> list[ProductFigures]:
        """A shop's products that have public reviews (written in the window, tagged `tag`
        if given), with their figures; most reviewed first, then by SKU."""
        found = _public_filter(shop, None, tag, since, until)
        found.add("pr.sku IS NOT NULL")
        counts: dict[str, dict[str, int]] = {}
        last: dict[str, str] = {}
        for sku, stars, count, newest in self.conn.execute(
            "SELECT pr.sku, pr.stars, COUNT(*), MAX(pr.created_at) FROM product_reviews pr"  # noqa: S608
            f" JOIN reviews r ON r.id = pr.review_id{found.sql()} GROUP BY pr.sku, pr.stars",
            found.args,
        ):
            counts.setdefault(sku, {})[str(stars)] = int(count)
            last[sku] = max(last.get(sku, newest), newest)
        identities = {r[0]: tuple(r[1:]) for r in self.conn.execute(
            f"SELECT sku, {', '.join(_IDENTITY)} FROM product_reviews WHERE id IN"  # noqa: S608
            " (SELECT MAX(id) FROM product_reviews WHERE shop = ? AND sku IS NOT NULL"
            " GROUP BY sku)", (shop,))}
        products = [_figures(identities[sku], shop, sku, stars, last.get(sku))
                    for sku, stars in counts.items()]
        return sorted(products, key=lambda p: (-p.count, p.sku))

    def list_product_reviews(
        self, *, shop: str | None = None, sku: str | None = None, tag: str | None = None,
        public: bool | None = True, since: datetime | None = None,
        until: datetime | None = None, limit: int | None = None, offset: int = 0,
    ) -> list[ProductReviewListing]:
        """Product reviews with their service review's reviewer, method, time, response and
        tags, newest first (feeds, the CLI). `public`: True those of the public page, False
        the reported and forgotten ones, None all."""
        found = _public_filter(shop, sku, tag, since, until, public)
        sql = _LISTING + found.sql() + " ORDER BY pr.created_at DESC, pr.id DESC"
        args = list(found.args)
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args.extend([limit, offset])
        return [_listing(r) for r in self.conn.execute(sql, args)]
