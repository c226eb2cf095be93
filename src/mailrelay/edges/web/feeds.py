"""Feeds for other sites (issue 13): `/s/<shop>/feeds/google-product-reviews.xml`, the shop's
Google Merchant Center product reviews feed. HTTP only: `services.feeds` says what it holds.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from aiohttp import web

from mailrelay.services import feeds

if TYPE_CHECKING:
    from mailrelay.edges.web.server import WebApp

#: Google fetches a feed once a day at most; five minutes spares us a crawler's repeats and
#: still shows a new review soon.
FEED_CACHE = "public, max-age=300"


def entity_tag(body: bytes) -> str:
    """A strong ETag of the body: equal bytes, equal tag."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def none_match(header: str | None, tag: str) -> bool:
    """Whether `If-None-Match` names `tag` (weak comparison, RFC 9110 section 13.1.2)."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(candidate.strip().removeprefix("W/") == tag for candidate in header.split(","))


class FeedRoutes:
    """The feed routes of the web app."""

    def __init__(self, app: WebApp) -> None:
        self.app = app

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/s/{shop}/feeds/google-product-reviews.xml",
                        self.google_product_reviews)]

    async def google_product_reviews(self, request: web.Request) -> web.Response:
        config = self.app.config
        shop = config.shop(request.match_info["shop"])
        if shop is None:
            raise web.HTTPNotFound()
        body = await self.app.store.aread(
            lambda q: feeds.google_product_reviews(q, config, shop))
        tag = entity_tag(body)
        headers = {"Cache-Control": FEED_CACHE, "ETag": tag}
        if none_match(request.headers.get("If-None-Match"), tag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, headers=headers, content_type="application/xml",
                            charset="utf-8")
