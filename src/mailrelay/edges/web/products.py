"""Product pages (issue 13): `/s/<shop>/p/<sku>` with its score, distribution, reviews and
schema.org `Product` JSON-LD, the same as JSON, and a shop's products as JSON.

Translates HTTP into the store's product queries and back; a product review is shown exactly
when its service review is on the public page. `?tag=` and `?page=` on every route.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from markupsafe import Markup

from mailrelay.config import ShopConfig
from mailrelay.core.models import verified

# The server module imports this one to register the routes; `server.…` names are read at
# request time, when both are loaded.
from mailrelay.edges.web import server, structured
from mailrelay.edges.web.i18n import Translator, with_local_dates
from mailrelay.edges.web.product_form import with_https_images
from mailrelay.services import links
from mailrelay.services.products import page_url
from mailrelay.store import ProductFigures, ProductReviewListing, QueryInterface

if TYPE_CHECKING:
    from mailrelay.edges.web.server import WebApp

PAGE_SIZE = 10
PRODUCTS_PAGE_SIZE = 50
NOT_FOUND = {"error": "not found"}


@dataclass(frozen=True)
class ProductListing:
    """One page of one product's public reviews (`product` None: an unknown SKU)."""

    product: ProductFigures | None
    pages: int
    rows: list[ProductReviewListing]


def _listing(q: QueryInterface, shop_id: str, sku: str, tag: str | None,
             page: int) -> ProductListing:
    product = q.product_rating(shop_id, sku, tag)
    if product is None:
        return ProductListing(None, 1, [])
    pages = max(1, math.ceil(product.count / PAGE_SIZE))
    rows = []
    if page <= pages and product.count:
        rows = q.product_reviews(shop_id, sku, tag=tag, limit=PAGE_SIZE,
                                 offset=(page - 1) * PAGE_SIZE)
    return ProductListing(product, pages, rows)


def _page_number(request: web.Request) -> int | None:
    """`?page=` (default 1), or None when it is no page number (never int() on long input)."""
    value = request.query.get("page", "1")
    if not (value.isascii() and value.isdigit()) or len(value) > 6 or int(value) < 1:
        return None
    return int(value)


def _tag(request: web.Request) -> str | None:
    return request.query.get("tag", "").strip().lower() or None


def _average(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


class ProductPages:
    """The product routes of one `WebApp` (its store, config, texts and page rendering)."""

    def __init__(self, app: WebApp) -> None:
        self.app = app

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/s/{shop}/p/{sku}", self.product_page),
            web.get("/s/{shop}/p/{sku}/reviews.json", self.product_json),
            web.get("/s/{shop}/products.json", self.products_json),
        ]

    async def _product(self, request: web.Request,
                       ) -> tuple[ShopConfig | None, str | None, int, ProductListing | None]:
        """The shop, tag, page and that page of the product's reviews; None where unknown."""
        shop = self.app.config.shop(request.match_info["shop"])
        sku = request.match_info["sku"]
        tag = _tag(request)
        page = _page_number(request)
        if shop is None or page is None:
            return shop, tag, page or 1, None
        listing = await self.app.store.aread(lambda q: _listing(q, shop.id, sku, tag, page))
        if listing.product is None or page > listing.pages:
            return shop, tag, page, None
        return shop, tag, page, listing

    def _json(self, data: Any, status: int = 200) -> web.Response:
        # Escaped like the JSON-LD: even a browser that sniffs cannot find markup in it.
        response = web.Response(text=server.script_json(data), status=status,
                                content_type="application/json", charset="utf-8")
        if status == 200:
            response.headers.update(server.PUBLIC_HEADERS)
        return response

    def _product_json(self, shop: ShopConfig, product: ProductFigures) -> dict[str, Any]:
        return {"sku": product.sku, "name": product.name, "url": product.url,
                "image": product.image, "gtin": product.gtin, "mpn": product.mpn,
                "brand": product.brand, "count": product.count,
                "average": _average(product.average),
                "page_url": page_url(self.app.config, shop.id, product.sku)}

    @staticmethod
    def _review_json(row: ProductReviewListing) -> dict[str, Any]:
        """The public fields of one product review: never an email address or an order."""
        response = None
        if row.response:
            response = {"text": row.response, "created_at": row.responded_at}
        return {"id": row.product.id, "review_id": row.product.review_id,
                "stars": row.product.stars, "text": row.product.text or "",
                "reviewer_name": row.reviewer_name or "",
                "created_at": row.product.created_at, "verified": verified(row.method),
                "response": response}

    async def product_json(self, request: web.Request) -> web.Response:
        shop, _tag_name, page, listing = await self._product(request)
        if shop is None or listing is None or listing.product is None:
            return self._json(NOT_FOUND, 404)
        product = listing.product
        return self._json({
            "shop": {"id": shop.id, "name": shop.name},
            "product": self._product_json(shop, product),
            "summary": {"count": product.count, "average": _average(product.average),
                        "distribution": product.distribution},
            "page": page,
            "pages": listing.pages,
            "reviews": [self._review_json(row) for row in listing.rows],
        })

    async def products_json(self, request: web.Request) -> web.Response:
        shop = self.app.config.shop(request.match_info["shop"])
        tag = _tag(request)
        page = _page_number(request)
        if shop is None or page is None:
            return self._json(NOT_FOUND, 404)
        found = await self.app.store.aread(lambda q: q.shop_products(shop.id, tag=tag))
        pages = max(1, math.ceil(len(found) / PRODUCTS_PAGE_SIZE))
        if page > pages:
            return self._json(NOT_FOUND, 404)
        start = (page - 1) * PRODUCTS_PAGE_SIZE
        return self._json({
            "shop": {"id": shop.id, "name": shop.name},
            "page": page,
            "pages": pages,
            "products": [self._product_json(shop, product)
                         for product in found[start:start + PRODUCTS_PAGE_SIZE]],
        })

    async def product_page(self, request: web.Request) -> web.Response:
        shop, tag, page, listing = await self._product(request)
        t = self.app.strings.translator(shop.locale if shop else None)
        if shop is None or listing is None or listing.product is None:
            return self.app.not_found(t)
        product = listing.product
        label = product.name or product.sku
        here = page_url(self.app.config, shop.id, product.sku)
        path = here.removeprefix(self.app.config.http.base_url)

        def link(to_page: int) -> str:
            query = [(k, v) for k, v in (("tag", tag), ("page", str(to_page)))
                     if v and not (k == "page" and to_page == 1)]
            return path + ("?" + urlencode(query) if query else "")

        items = [self._shown(t, shop, row) for row in listing.rows]
        jsonld = None  # a Product with neither rating nor review is invalid structured data
        if product.count:
            jsonld = Markup(server.script_json(self._jsonld(product, label, items)))  # noqa: S704
        count = product.count
        headers = dict(server.PUBLIC_HEADERS)
        if (product.image or "").lower().startswith("https://"):  # the shop's picture
            headers["Content-Security-Policy"] = with_https_images(
                server.SECURITY_HEADERS["Content-Security-Policy"])
        return self.app.page(
            "product.html.j2", 200, t, headers, shop=shop, shop_name=shop.name,
            product=product, label=label, count=count,
            average=t.decimal(product.average) if product.average is not None else "",
            average_value=product.average or 0, distribution=self._distribution(t, product),
            reviews=items, tag=tag, untagged_url=path if tag else None,
            shop_url=links.public_url(self.app.config, shop.id).removeprefix(
                self.app.config.http.base_url),
            page_number=page, pages=listing.pages,
            prev_url=link(page - 1) if page > 1 else None,
            next_url=link(page + 1) if page < listing.pages else None, jsonld=jsonld,
        )

    @staticmethod
    def _distribution(t: Translator, product: ProductFigures) -> list[dict[str, Any]]:
        count = product.count
        return [{"stars": n, "count": product.distribution.get(str(n), 0),
                 "label": t.plural("star", n),
                 "percent": round(100 * product.distribution.get(str(n), 0) / count)
                 if count else 0} for n in range(5, 0, -1)]

    def _shown(self, t: Translator, shop: ShopConfig,
               row: ProductReviewListing) -> dict[str, Any]:
        """One review as the page shows it: the public fields and local dates."""
        return with_local_dates(self._review_json(row), t, shop.timezone)

    def _jsonld(self, product: ProductFigures, label: str,
                items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """schema.org Product with its AggregateRating (it has reviews: the page sends no
        JSON-LD without) and the reviews on this page; identifiers only when given."""
        data: dict[str, Any] = {"@context": "https://schema.org", "@type": "Product",
                                "name": label, "sku": product.sku}
        for key in ("image", "gtin", "mpn"):
            value = getattr(product, key)
            if value:
                data[key] = value
        if product.url:
            data["url"] = product.url
        if product.brand:
            data["brand"] = {"@type": "Brand", "name": product.brand}
        data["aggregateRating"] = structured.aggregate_rating(product.average, product.count)
        if items:
            data["review"] = [structured.review(item) for item in items]
        return data
