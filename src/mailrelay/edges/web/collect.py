"""The shop's own review links (issue 13): `/s/<shop>/write` (basic), `?via=page` (organic, from
the public page) and `/s/<shop>/write/embed` (embedded, framed by the shop's site).

Translates the form into `invitations.request_link` and back; the answer never says whether an
address was invited (no enumeration). The path alone decides the method, never a form field.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from mailrelay.config import ShopConfig
from mailrelay.core.models import Decision, InvitationMethod
from mailrelay.edges.web.forms import read_form
from mailrelay.edges.web.i18n import Translator, accept_languages
from mailrelay.edges.web.policy import frame_ancestors
from mailrelay.edges.web.ratelimit import FormLimits
from mailrelay.parsing import normalize_address
from mailrelay.services import invitations

if TYPE_CHECKING:
    from mailrelay.edges.web.server import WebApp

log = logging.getLogger("mailrelay.web")  # the name operators filter on

#: Requests per client address (IPv6: per /64) and per shop in RATE_WINDOW seconds.
POSTS_PER_ADDRESS = 10
POSTS_PER_SHOP = 300
RATE_WINDOW = 600.0
MAX_EMAIL = 254  # RFC 5321's path limit, less the brackets
#: A field people never see: a bot that fills every input fills this one too.
HONEYPOT = "website"
#: Where each field's error links to in the summary.
ANCHORS = {"email": "email", "name": "name"}


def _frame_policy(shop: ShopConfig) -> str:
    """The page's CSP: the site's own, with the shop's `embed_origins` allowed to frame it."""
    return frame_ancestors(shop)


def _form_errors(email: str, name: str) -> dict[str, str]:
    """Error codes per field: `required`, `invalid`, `too_long`."""
    errors: dict[str, str] = {}
    if not email.strip():
        errors["email"] = "required"
    elif len(email) > MAX_EMAIL or normalize_address(email.strip()) is None:
        errors["email"] = "invalid"
    if len(" ".join(name.split())) > invitations.MAX_REQUEST_NAME:
        errors["name"] = "too_long"
    return errors


class CollectPages:
    """The generic, organic and embedded request forms and their "check your mail" page."""

    def __init__(self, app: WebApp) -> None:
        self.app = app
        self.limits = FormLimits(POSTS_PER_SHOP, POSTS_PER_ADDRESS, POSTS_PER_ADDRESS,
                                 RATE_WINDOW)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/s/{shop}/write", self.form),
            web.post("/s/{shop}/write", self.submit),
            web.get("/s/{shop}/write/sent", self.sent),
            web.get("/s/{shop}/write/embed", self.form),
            web.post("/s/{shop}/write/embed", self.submit),
            web.get("/s/{shop}/write/embed/sent", self.sent),
        ]

    # -- what a request is about

    def _shop(self, request: web.Request) -> ShopConfig:
        shop = self.app.config.shop(request.match_info["shop"])
        if shop is None:
            raise web.HTTPNotFound()
        return shop

    @staticmethod
    def _embedded(request: web.Request) -> bool:
        return request.path.rstrip("/").split("/")[4:5] == ["embed"]

    def _method(self, request: web.Request) -> InvitationMethod:
        """The path decides: the embed path, else the public page's `?via=page`, else basic.
        Only these three are reachable, all unverified: nothing here can make a buyer."""
        if self._embedded(request):
            return InvitationMethod.EMBEDDED
        if request.query.get("via") == "page":
            return InvitationMethod.ORGANIC
        return InvitationMethod.BASIC

    def _translator(self, request: web.Request, shop: ShopConfig) -> Translator:
        browser = accept_languages(request.headers.get("Accept-Language"))
        return self.app.strings.translator(*browser, shop.locale)

    def _path(self, request: web.Request, shop: ShopConfig, end: str = "") -> str:
        base = f"/s/{shop.id}/write" + ("/embed" if self._embedded(request) else "")
        via = "?via=page" if self._method(request) == InvitationMethod.ORGANIC else ""
        return base + end + via

    def _headers(self, request: web.Request, shop: ShopConfig) -> dict[str, str]:
        """Never cached (a CSRF token is in it); the embed pages may be framed by the shop."""
        headers = {"Cache-Control": "no-store"}
        if self._embedded(request):
            headers["Content-Security-Policy"] = _frame_policy(shop)
        return headers

    def _csrf_subject(self, shop: ShopConfig, method: InvitationMethod) -> str:
        return f"write\0{shop.id}\0{method}"

    # -- pages

    def _page(self, request: web.Request, shop: ShopConfig, t: Translator, *,
              values: Mapping[str, str], errors: Mapping[str, str] | None = None,
              status: int = 200, notice: str | None = None) -> web.Response:
        method = self._method(request)
        now = int(self.app.clock.now().timestamp())
        messages = {field: t(f"write.error.{field}.{code}", max=invitations.MAX_REQUEST_NAME)
                    for field, code in (errors or {}).items()}
        return self.app.page(
            "write_form.html.j2", status, t, self._headers(request, shop), shop=shop,
            shop_name=shop.name, values=values, errors=messages, anchors=ANCHORS,
            csrf=self.app.signer.form_token(self._csrf_subject(shop, method), now),
            honeypot=HONEYPOT, notice=notice, embedded=self._embedded(request),
            public_url=f"/s/{shop.id}", max_name=invitations.MAX_REQUEST_NAME,
            max_email=MAX_EMAIL,
        )

    async def form(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        t = self._translator(request, shop)
        return self._page(request, shop, t, values={"email": "", "name": ""})

    async def sent(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        t = self._translator(request, shop)
        return self.app.page(
            "write_sent.html.j2", 200, t, self._headers(request, shop), shop=shop,
            shop_name=shop.name, again_url=self._path(request, shop),
            embedded=self._embedded(request), public_url=f"/s/{shop.id}")

    def _limited(self, request: web.Request, shop: ShopConfig,
                 t: Translator) -> web.Response | None:
        wait = self.limits.wait(self.app.client(request), f"write:{shop.id}", True,
                                self.app.clock.now().timestamp())
        if wait is None:
            return None
        return self.app.message(429, t, t("ratelimit.title"), t("ratelimit.body"), headers={
            **self._headers(request, shop), "Retry-After": str(max(1, math.ceil(wait)))})

    async def submit(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        t = self._translator(request, shop)
        limited = self._limited(request, shop, t)
        if limited is not None:
            return limited
        method = self._method(request)
        problem, values, fields, csrf = await self._read(request)
        if problem is not None:
            log.info("shop=%s write form refused: %s", shop.id, problem)
            return self._page(request, shop, t, values=fields, status=400,
                              notice=t("write.unreadable"))
        if not self._csrf_valid(csrf, shop, method):
            log.info("shop=%s write form refused: CSRF token missing or stale", shop.id)
            return self._page(request, shop, t, values=fields, status=403,
                              notice=t("write.csrf"))
        errors = _form_errors(fields["email"], fields["name"])
        if errors:
            return self._page(request, shop, t, values=fields, errors=errors, status=400)
        if values.get(HONEYPOT):
            log.info("shop=%s write form: honeypot filled, nothing sent", shop.id)
        else:
            await self._request(shop, fields, t.locale, method)
        # Post/Redirect/Get, and the same page whatever was decided (no enumeration). Returned,
        # not raised: the guard would put its own frame-ancestors on a raised one.
        return web.Response(status=303, headers={
            **self._headers(request, shop), "Location": self._path(request, shop, "/sent")})

    async def _read(self, request: web.Request,
                    ) -> tuple[str | None, dict[str, str], dict[str, str], object]:
        """(why the body is not our form, every field given, email and name, the CSRF value)."""
        problem, _review_fields, csrf = await read_form(request)
        fields = {"email": "", "name": ""}
        values: dict[str, str] = {}
        if problem is not None:
            return problem, values, fields, csrf
        data = await request.post()  # read and checked by read_form: no second body read
        for name in (*fields, HONEYPOT):
            given = data.getall(name, [])
            if len(given) > 1 or (given and not isinstance(given[0], str)):
                return f"{name} given twice or as a file", values, fields, csrf
            if given and isinstance(given[0], str):
                values[name] = given[0]
        fields.update({name: values.get(name, "") for name in fields})
        return None, values, fields, csrf

    def _csrf_valid(self, value: object, shop: ShopConfig, method: InvitationMethod) -> bool:
        return (isinstance(value, str) and value.isascii() and len(value) <= 128
                and self.app.signer.form_token_valid(
                    value, self._csrf_subject(shop, method),
                    int(self.app.clock.now().timestamp()), 24 * 3600))

    async def _request(self, shop: ShopConfig, fields: Mapping[str, str], locale: str,
                       method: InvitationMethod) -> None:
        now = self.app.clock.now()
        link = invitations.LinkRequest(fields["email"].strip(), fields["name"] or None, locale,
                                       method)
        decision: Decision = await self.app.store.write(
            lambda q: invitations.request_link(q, shop, self.app.signer, now, link))
        # The decision goes to the log only; the address does not (it is the customer's).
        log.info("shop=%s write form (%s): %s %s", shop.id, method, decision.status,
                 decision.reason)
        if decision.invitation_id is not None:
            self.app._notify()  # noqa: SLF001 - wakes the dispatcher, as a review does
