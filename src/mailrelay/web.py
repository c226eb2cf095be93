"""HTTP edge (aiohttp, in the daemon's loop): unsubscribe pages and health; thin over services.

Pages are Jinja2 templates with autoescaping; tokens are verified before any look-up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from . import invitations
from .clock import Clock
from .config import Config
from .store import Store
from .tokens import REVIEW, UNSUBSCRIBE, TokenSigner

log = logging.getLogger(__name__)

WEB_TEMPLATES = Path(__file__).parent / "templates" / "web"


def mask(email: str) -> str:
    """Show enough of an address to recognise it, not enough to harvest it."""
    local, _, domain = email.partition("@")
    return f"{local[:2]}…@{domain}" if domain else "…"


class WebApp:
    """The aiohttp application and its runner."""

    def __init__(self, config: Config, store: Store, signer: TokenSigner, clock: Clock,
                 health: Callable[[], Awaitable[dict[str, Any]]] | None = None) -> None:
        self.config = config
        self.store = store
        self.signer = signer
        self.clock = clock
        self.health = health
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(WEB_TEMPLATES),
            autoescape=jinja2.select_autoescape(["html.j2", "html"]),
        )
        self.app = web.Application(client_max_size=64 * 1024)
        self.app.add_routes([
            web.get("/healthz", self.healthz),
            web.get("/u/{token}", self.unsubscribe_page),
            web.post("/u/{token}", self.unsubscribe),
        ])
        self._runner: web.AppRunner | None = None
        self.port = config.http.port

    def page(self, name: str, status: int = 200, **context: Any) -> web.Response:
        html = self.env.get_template(name).render(**context)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def not_found(self) -> web.Response:
        return self.page("not_found.html.j2", 404, title="Link not valid",
                         message="This link is not valid.")

    async def _invitation(self, request: web.Request) -> dict[str, Any] | None:
        review_token = self.signer.convert(request.match_info["token"], UNSUBSCRIBE, REVIEW)
        if review_token is None:
            return None
        return await self.store.aread(lambda q: q.invitation_by_token(review_token))

    async def healthz(self, request: web.Request) -> web.Response:
        report = await self.health() if self.health else {"status": "ok"}
        return web.json_response(report, status=200 if report.get("status") == "ok" else 503)

    async def unsubscribe_page(self, request: web.Request) -> web.Response:
        # GET never unsubscribes: link scanners fetch every URL in a mail (RFC 8058 section 1).
        inv = await self._invitation(request)
        if inv is None:
            return self.not_found()
        shop = self.config.shop(inv["shop"])
        suppressed = await self.store.aread(
            lambda q: q.is_suppressed(inv["shop"], inv["customer_email"]))
        return self.page("unsubscribe.html.j2", title="Unsubscribe", done=suppressed,
                         shop_name=shop.name if shop else inv["shop"],
                         email=mask(inv["customer_email"]))

    async def unsubscribe(self, request: web.Request) -> web.Response:
        """RFC 8058 one-click: a POST with List-Unsubscribe=One-Click, or the page's button."""
        inv = await self._invitation(request)
        if inv is None:
            return self.not_found()
        now = self.clock.now()
        cancelled = await self.store.write(lambda q: invitations.unsubscribe(q, inv, now))
        log.info("invitation=%s unsubscribed shop=%s cancelled=%d", inv["id"], inv["shop"],
                 cancelled)
        shop = self.config.shop(inv["shop"])
        return self.page("unsubscribe.html.j2", title="Unsubscribed", done=True,
                         shop_name=shop.name if shop else inv["shop"],
                         email=mask(inv["customer_email"]))

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # noqa: SLF001
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("web listening on %s:%d", self.config.http.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
