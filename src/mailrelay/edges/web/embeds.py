"""What a shop puts on its own site: the badge (SVG) and the review widgets (HTML for an iframe).

Each answers in `?locale=` or the shop's language, `?tag=` picks reviews by tag; framing is
allowed to the shop's `embed_origins` only. ETags, 304s and caching: `embed_cache`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from mailrelay.config import ShopConfig
from mailrelay.core.models import verified
from mailrelay.edges.web.embed_cache import EmbedCache
from mailrelay.edges.web.i18n import Translator
from mailrelay.edges.web.look import policy_with_logo
from mailrelay.edges.web.policy import frame_ancestors
from mailrelay.render.brand import brand_of
from mailrelay.services import links
from mailrelay.store import (
    ProductFigures,
    ProductReviewListing,
    QueryInterface,
    RatingSummary,
    ReviewRow,
    from_iso,
)

if TYPE_CHECKING:
    from mailrelay.edges.web.server import WebApp

WIDGET = "/s/{shop}/widget"
PRODUCT_WIDGET = "/s/{shop}/p/{sku}/widget"
BADGE = "/s/{shop}/badge.svg"
#: Widgets and badge: revalidated on every use (the 304 is cheap, and a change shows at once).
EMBED_CACHE_CONTROL = "public, no-cache"
DEFAULT_LIMIT = 3
MAX_LIMIT = 10
MAX_TAG = 64
#: The badge's size in CSS pixels: a site footer or an email signature.
BADGE_SIZE = (200, 56)
STAR_PATH = ("M10 .5L12.41 7.18L19.51 7.41L13.9 11.77L15.88 18.59L10 14.6L4.12 18.59L6.1 11.77"
             "L.49 7.41L7.59 7.18Z")


@dataclass(frozen=True)
class Score:
    """A score as shown: the average in the locale, each star's filled part, the count."""

    average: str
    fills: tuple[float, ...]
    count: int
    count_text: str


def star_fills(average: float | None) -> tuple[float, ...]:
    """How much of each of the five stars is filled (4.3 → 1, 1, 1, 1, 0.3)."""
    value = average or 0.0
    return tuple(round(min(1.0, max(0.0, value - n)), 2) for n in range(5))


def score(t: Translator, count: int, average: float | None) -> Score:
    """The numbers and the plural the locale's way ("1 234 omdömen", "4,5")."""
    return Score(t.decimal(average) if average is not None else "", star_fills(average), count,
                 t.plural("embeds.reviews", count))


def _query_text(request: web.Request, name: str, limit: int) -> str | None:
    value = request.query.get(name, "").strip()
    return value[:limit] if value else None


def _limit(request: web.Request) -> int:
    value = request.query.get("limit", "")
    if value.isascii() and value.isdigit() and len(value) <= 2:
        return max(1, min(MAX_LIMIT, int(value)))
    return DEFAULT_LIMIT


def _latest(q: QueryInterface, shop: str, tag: str | None,
            limit: int) -> tuple[RatingSummary, list[ReviewRow]]:
    return q.rating_summary(shop), q.list_reviews(shop=shop, reported=False, tag=tag,
                                                  limit=limit, newest_first=True)


def _latest_of_product(q: QueryInterface, shop: str, sku: str, tag: str | None, limit: int,
                       ) -> tuple[ProductFigures | None, list[ProductReviewListing]]:
    figures = q.product_rating(shop, sku)
    if figures is None:
        return None, []
    return figures, q.product_reviews(shop, sku, tag=tag, limit=limit)


class Embeds:
    """The badge and widget routes, and the cache middleware in front of them."""

    def __init__(self, app: WebApp, policy: str) -> None:
        """`policy`: the site's Content-Security-Policy, to allow framing in."""
        self.web = app
        self.policy = policy
        self.cache = EmbedCache(
            app.config, lambda shop: app.store.aread(lambda q: q.shop_revision(shop)),
            (WIDGET, PRODUCT_WIDGET, BADGE))

    def routes(self) -> list[web.RouteDef]:
        return [web.get(WIDGET, self.widget), web.get(PRODUCT_WIDGET, self.product_widget),
                web.get(BADGE, self.badge)]

    def _shop_and_language(self, request: web.Request) -> tuple[ShopConfig, Translator]:
        shop = self.web.config.shop(request.match_info["shop"])
        if shop is None:
            raise web.HTTPNotFound()
        strings = self.web.strings.for_shop(shop.templates_dir)
        t = strings.translator(request.query.get("locale"), shop.locale)
        return shop, t

    def _headers(self, shop: ShopConfig) -> dict[str, str]:
        policy = frame_ancestors(shop, self.policy)
        return {"Content-Security-Policy": policy_with_logo(policy, shop) or policy,
                "Cache-Control": EMBED_CACHE_CONTROL}

    def _colors(self, shop: ShopConfig) -> dict[str, str]:
        """The shop's accent made AA-safe, as on every other page (render/brand.py)."""
        brand = brand_of(shop.accent_color)
        return {"accent_text": brand.link, "accent_stars": brand.star}

    async def badge(self, request: web.Request) -> web.Response:
        shop, t = self._shop_and_language(request)
        summary = await self.web.store.aread(lambda q: q.rating_summary(shop.id))
        shown = score(t, summary.count, summary.average)
        svg = self.web.env.get_template("embed_badge.svg.j2").render(
            t=t, lang=t.locale, shop=shop, score=shown, star_path=STAR_PATH,
            width=BADGE_SIZE[0], height=BADGE_SIZE[1], **self._colors(shop))
        response = web.Response(text=svg, content_type="image/svg+xml", charset="utf-8")
        response.headers.update(self._headers(shop))
        return response

    async def widget(self, request: web.Request) -> web.Response:
        shop, t = self._shop_and_language(request)
        tag, limit = _query_text(request, "tag", MAX_TAG), _limit(request)
        summary, rows = await self.web.store.aread(lambda q: _latest(q, shop.id, tag, limit))
        return self.render_widget(
            t, shop, score(t, summary.count, summary.average),
            [self._item(t, shop, row) for row in rows],
            full_url=links.public_url(self.web.config, shop.id),
            title=t("embeds.title", shop=shop.name))

    async def product_widget(self, request: web.Request) -> web.Response:
        shop, t = self._shop_and_language(request)
        sku = request.match_info["sku"]
        tag, limit = _query_text(request, "tag", MAX_TAG), _limit(request)
        figures, listings = await self.web.store.aread(
            lambda q: _latest_of_product(q, shop.id, sku, tag, limit))
        if figures is None:
            raise web.HTTPNotFound()
        page = f"{links.public_url(self.web.config, shop.id)}/p/{quote(sku, safe='')}"
        return self.render_widget(
            t, shop, score(t, figures.count, figures.average),
            [self._product_item(t, shop, listing, page) for listing in listings],
            full_url=page, title=t("embeds.product_title", product=figures.name or sku))

    def render_widget(self, t: Translator, shop: ShopConfig, shown: Score,
                      items: Sequence[dict[str, Any]], *, full_url: str,
                      title: str) -> web.Response:
        """The widget page: a score and the latest reviews, each linking to the full page."""
        return self.web.page(
            "embed_widget.html.j2", 200, t, self._headers(shop), shop=shop, title=title,
            score=shown, reviews=items, full_url=full_url, star_path=STAR_PATH,
            **self._colors(shop))

    def _when(self, t: Translator, shop: ShopConfig, stamp: str) -> dict[str, str]:
        created = from_iso(stamp)
        local = created.astimezone(shop.timezone) if created else None
        return {"date": t.date(local) if local else "",
                "datetime": local.isoformat() if local else ""}

    def _product_item(self, t: Translator, shop: ShopConfig, listing: ProductReviewListing,
                      page: str) -> dict[str, Any]:
        product = listing.product
        return {"id": f"p{product.id}", "stars": product.stars, "title": "",
                "text": product.text or "", "response": listing.response or "",
                "name": listing.reviewer_name or t("public.anonymous"),
                "verified": verified(listing.method), "url": page,
                "fills": star_fills(product.stars),
                **self._when(t, shop, listing.review_created_at)}

    def _item(self, t: Translator, shop: ShopConfig, row: ReviewRow) -> dict[str, Any]:
        return {"id": row.id, "stars": row.stars, "title": row.title or "",
                "text": row.text or "", "response": row.response or "",
                "name": row.reviewer_name or t("public.anonymous"),
                "verified": verified(row.method),
                "url": links.public_url(self.web.config, shop.id, row.id),
                "fills": star_fills(row.stars), **self._when(t, shop, row.created_at)}
