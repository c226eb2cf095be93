"""One published review on its own page for sharing (issue 13): `/s/<shop>/r/<id>` with Open
Graph and Twitter card tags and plain share links, and its preview image (`.png`, `.svg`).

Translates store reads into pages; a reported (so also a forgotten) review, another shop's or
an unknown one is a 404. No script anywhere, ours or a network's.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from aiohttp import web

from mailrelay.config import ShopConfig
from mailrelay.core.models import verified
from mailrelay.edges.web.i18n import Translator
from mailrelay.render.preview import HEIGHT, WIDTH, PreviewView, preview_png, preview_svg
from mailrelay.store import QueryInterface, RatingSummary, ReviewRow, from_iso

if TYPE_CHECKING:
    from mailrelay.edges.web.server import WebApp

#: The last images drawn (each takes tens of milliseconds): a shared link is fetched by every
#: network's crawler and every chat app at once. Keyed by everything the image shows.
_drawn_png = lru_cache(maxsize=128)(preview_png)
#: As the public pages: a shared review changes only when it is answered or edited.
PUBLIC_HEADERS = {"Cache-Control": "public, max-age=60"}
DESCRIPTION = 200  # characters of the review in og:description
EXCERPT = 400  # characters of the review in the image (it shows what fits)


def _shown(q: QueryInterface, shop_id: str,
           review_id: int) -> tuple[ReviewRow | None, RatingSummary]:
    review = q.get_review(review_id)
    if review is not None and (review.shop != shop_id or review.reported):
        review = None
    return review, q.rating_summary(shop_id)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def share_links(url: str, title: str, t: Translator, shop: ShopConfig) -> list[dict[str, str]]:
    """Plain links to each network's own share page: no script, no embed, no tracking pixel."""
    subject = t("share.email_subject", shop=shop.name)
    return [
        {"name": t("share.facebook"),
         "href": "https://www.facebook.com/sharer/sharer.php?" + urlencode({"u": url})},
        {"name": t("share.x"),
         "href": "https://x.com/intent/post?" + urlencode({"url": url, "text": title})},
        {"name": t("share.linkedin"),
         "href": "https://www.linkedin.com/sharing/share-offsite/?" + urlencode({"url": url})},
        {"name": t("share.whatsapp"),
         "href": "https://wa.me/?" + urlencode({"text": f"{title} {url}"})},
        {"name": t("share.email"),
         "href": f"mailto:?subject={quote(subject)}&body={quote(title + chr(10) + url)}"},
    ]


class SharePages:
    """The review's page and its preview images."""

    def __init__(self, app: WebApp) -> None:
        self.app = app

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(r"/s/{shop}/r/{review:\d{1,12}}", self.page),
            web.get(r"/s/{shop}/r/{review:\d{1,12}}.png", self.png),
            web.get(r"/s/{shop}/r/{review:\d{1,12}}.svg", self.svg),
        ]

    async def _target(self, request: web.Request,
                      ) -> tuple[ShopConfig, ReviewRow, RatingSummary, Translator]:
        shop = self.app.config.shop(request.match_info["shop"])
        if shop is None:
            raise web.HTTPNotFound()
        review_id = int(request.match_info["review"])
        review, summary = await self.app.store.aread(lambda q: _shown(q, shop.id, review_id))
        if review is None:
            raise web.HTTPNotFound()
        return shop, review, summary, self.app.strings.translator(shop.locale)

    def _url(self, shop: ShopConfig, review: ReviewRow, suffix: str = "") -> str:
        return f"{self.app.config.http.base_url}/s/{shop.id}/r/{review.id}{suffix}"

    def _preview(self, shop: ShopConfig, review: ReviewRow, summary: RatingSummary,
                 t: Translator) -> PreviewView:
        created = from_iso(review.created_at)
        date = t.date(created.astimezone(shop.timezone)) if created else ""
        name = review.reviewer_name or t("public.anonymous")
        average = t.decimal(summary.average) if summary.average is not None else "–"
        return PreviewView(
            shop_name=shop.name, stars=review.stars, title=review.title or "",
            excerpt=_shorten(review.text or "", EXCERPT), byline=f"{name} · {date}",
            score=f"{average} / 5 · {t.plural('public.count', int(summary.count))}",
            accent=shop.accent_color)

    async def page(self, request: web.Request) -> web.Response:
        shop, review, summary, t = await self._target(request)
        stars = t.plural("star", review.stars)
        title = t("share.title", shop=shop.name, stars=stars)
        if review.title:
            title = f"{title} – {review.title}"
        created = from_iso(review.created_at)
        answered = from_iso(review.responded_at) if review.responded_at else None
        url = self._url(shop, review)
        context: dict[str, Any] = {
            "shop": shop, "shop_name": shop.name, "review": review, "title": title,
            "description": _shorten(review.text or "", DESCRIPTION), "url": url,
            "image": self._url(shop, review, ".png"), "image_width": WIDTH,
            "image_height": HEIGHT, "verified": verified(review.method),
            "date": t.date(created.astimezone(shop.timezone)) if created else "",
            "datetime": created.isoformat() if created else "",
            "response_date": t.date(answered.astimezone(shop.timezone)) if answered else "",
            "count": int(summary.count),
            "average": t.decimal(summary.average) if summary.average is not None else "",
            "all_url": f"/s/{shop.id}", "links": share_links(url, title, t, shop),
            "png_url": f"/s/{shop.id}/r/{review.id}.png",
        }
        return self.app.page("share.html.j2", 200, t, PUBLIC_HEADERS, **context)

    async def png(self, request: web.Request) -> web.Response:
        shop, review, summary, t = await self._target(request)
        # Drawing takes tens of milliseconds: off the event loop.
        body = await asyncio.to_thread(_drawn_png, self._preview(shop, review, summary, t))
        return web.Response(body=body, content_type="image/png", headers=PUBLIC_HEADERS)

    async def svg(self, request: web.Request) -> web.Response:
        shop, review, summary, t = await self._target(request)
        body = preview_svg(self._preview(shop, review, summary, t))
        return web.Response(text=body, content_type="image/svg+xml", charset="utf-8",
                            headers=PUBLIC_HEADERS)
