"""HTTP edge (aiohttp, in the daemon's loop): review form, public review pages, unsubscribe, health.

Translates HTTP into calls on `reviews`, `invitations` and store queries and back; decides
nothing itself and runs no SQL. Pages are autoescaped Jinja2 templates; tokens are verified
before any look-up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode

from aiohttp import web
from markupsafe import Markup

from mailrelay.config import Config, ShopConfig
from mailrelay.core.clock import Clock
from mailrelay.core.models import InvitationMethod, verified
from mailrelay.core.tokens import REVIEW, UNSUBSCRIBE, TokenSigner
from mailrelay.edges.web import product_form, structured
from mailrelay.edges.web.collect import CollectPages
from mailrelay.edges.web.console import Console
from mailrelay.edges.web.console_dashboard import DashboardPages
from mailrelay.edges.web.console_inbox import InboxPages
from mailrelay.edges.web.console_ledgers import LedgerPages
from mailrelay.edges.web.console_moderation import ModerationPages, removed_json, removed_line
from mailrelay.edges.web.embeds import Embeds
from mailrelay.edges.web.feeds import FeedRoutes
from mailrelay.edges.web.forms import FORM_FIELDS, read_form
from mailrelay.edges.web.i18n import Strings, Translator, accept_languages, with_local_dates
from mailrelay.edges.web.look import brand_for, policy_with_logo
from mailrelay.edges.web.policy import SITE_POLICY
from mailrelay.edges.web.products import ProductPages
from mailrelay.edges.web.ratelimit import ClientAddresses, FormLimits
from mailrelay.edges.web.share import SharePages
from mailrelay.metrics import CONTENT_TYPE_LATEST
from mailrelay.render import WebTemplates
from mailrelay.services import invitations, links, products, reviews
from mailrelay.services.replies import Replier
from mailrelay.store import (
    InvitationRow,
    QueryInterface,
    RatingSummary,
    ReviewRow,
    StoreBackend,
    from_iso,
)

log = logging.getLogger("mailrelay.web")  # the name operators filter on

WEB_TEMPLATES = Path(__file__).parents[2] / "templates" / "web"

#: Every HTML page: no script at all, no framing, and no Referer, because review and unsubscribe
#: tokens are in our URLs and must not leak to the shop's site or any other link target.
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": SITE_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
#: Token pages hold personal data (the customer's name, their review): never cached, never indexed.
PRIVATE_HEADERS: Mapping[str, str] = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
PUBLIC_HEADERS: Mapping[str, str] = {"Cache-Control": "public, max-age=60"}

CSRF_MAX_AGE = 24 * 3600
PAGE_SIZE = 10
#: Where each field's error links to in the summary (the first radio stands for the fieldset).
FIELD_ANCHORS = {"stars": "stars-1", "title": "title", "text": "text", "name": "name"}


def mask(email: str) -> str:
    """Show enough of an address to recognise it, not enough to harvest it."""
    local, _, domain = email.partition("@")
    return f"{local[:2]}…@{domain}" if domain else "…"


def script_json(data: Any) -> str:
    """JSON that is inert inside <script>: no `</script>`, `<!--` or `&` can survive in it."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _invitation_and_review(
    q: QueryInterface, token: str,
) -> tuple[InvitationRow | None, ReviewRow | None]:
    invitation = q.invitation_by_token(token)
    review = None
    if invitation is not None and invitation.review_id:
        review = q.get_review(invitation.review_id)
    return invitation, review


@dataclass(frozen=True)
class Listing:
    """One page of a shop's public reviews."""

    summary: RatingSummary
    total: int  # reviews matching the star filter
    pages: int
    rows: list[ReviewRow]
    #: Public reason → reviews an owner's confirmed report hides (issue 14: said on the page).
    removed: dict[str, int]


def _listing(q: QueryInterface, shop_id: str, stars: int | None, page: int,
             tag: str | None = None) -> Listing:
    summary = q.rating_summary(shop_id)
    total = int(summary.distribution.get(str(stars), 0)) if stars else int(summary.count)
    if tag:  # only the reviews with that tag (a shop curating its widgets and JSON)
        total = len(q.list_reviews(shop=shop_id, stars=(stars, stars) if stars else None,
                                   reported=False, tag=tag))
    pages = max(1, math.ceil(total / PAGE_SIZE))
    rows: list[ReviewRow] = []
    if page <= pages and total:
        rows = q.list_reviews(shop=shop_id, stars=(stars, stars) if stars else None,
                              reported=False, tag=tag, limit=PAGE_SIZE,
                              offset=(page - 1) * PAGE_SIZE, newest_first=True)
    return Listing(summary, total, pages, rows, q.removed_counts(shop_id))


def _query_int(value: str | None, low: int, high: int) -> int | None:
    """A small decimal number from the query string, or None (never int() on long input)."""
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 6:
        return None
    number = int(value)
    return number if low <= number <= high else None


class ReviewVisit(NamedTuple):
    """A review link's request: its token, invitation, review, language and shop."""

    token: str
    invitation: InvitationRow | None
    review: ReviewRow | None
    t: Translator
    shop: ShopConfig | None


class WebApp:
    """The aiohttp application and its runner."""

    def __init__(self, config: Config, store: StoreBackend, signer: TokenSigner, clock: Clock,
                 health: Callable[[], Awaitable[dict[str, Any]]] | None = None, *,
                 on_review: Callable[[], None] | None = None,
                 metrics: Callable[[], Awaitable[bytes]] | None = None,
                 posts_per_token: int = 10, posts_per_ip: int = 30,
                 unknown_posts_per_ip: int = 30, rate_window: float = 600.0) -> None:
        self.config = config
        self.store = store
        self.signer = signer
        self.clock = clock
        self.health = health
        self.on_review = on_review
        self.metrics = metrics
        self.limits = FormLimits(posts_per_token, posts_per_ip, unknown_posts_per_ip,
                                 rate_window)
        self.addresses = ClientAddresses(config.http.trusted_proxies)
        self.strings = Strings()
        self.templates = WebTemplates()  # per shop: its templates_dir may replace pages
        self.env = self.templates.environment()
        self.embeds = Embeds(self, SECURITY_HEADERS["Content-Security-Policy"])
        self.console = Console(self)
        self.replier: Replier | None = None  # set by the daemon: console answers
        # 5000 characters of review text are up to ~60 KB once percent-encoded (4-byte emoji).
        self.app = web.Application(client_max_size=128 * 1024,
                                   middlewares=[self._guard, self.embeds.cache.middleware])
        self.app.add_routes([
            web.get("/healthz", self.healthz),
            web.get("/metrics", self.metrics_page),
            web.get("/r/{token}", self.review_form),
            web.post("/r/{token}", self.review_submit),
            web.get("/r/{token}/thanks", self.review_thanks),
            web.get("/s/{shop}", self.shop_page),
            web.get("/s/{shop}/reviews.json", self.shop_json),
            *ProductPages(self).routes(),
            web.get("/u/{token}", self.unsubscribe_page),
            web.post("/u/{token}", self.unsubscribe),
            *FeedRoutes(self).routes(),
            *CollectPages(self).routes(),
            *SharePages(self).routes(),
            *self.console.routes(),
            *ModerationPages(self).routes(),
            *InboxPages(self).routes(),
            *DashboardPages(self).routes(),
            *LedgerPages(self).routes(),
            *self.embeds.routes(),
        ])
        self._runner: web.AppRunner | None = None
        self.port = config.http.port

    # -- plumbing

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                     ) -> web.StreamResponse:
        """Security headers on every response; friendly pages instead of bare errors."""
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            response = self.not_found(self.strings.translator())
        except web.HTTPException as exc:
            exc.headers.update(SECURITY_HEADERS)
            raise
        except Exception:
            # The route, not the path: paths carry tokens, which do not belong in logs.
            route = request.match_info.route.resource
            log.exception("web %s %s failed", request.method,
                          route.canonical if route is not None else "?")
            t = self.strings.translator()
            response = self.message(500, t, t("error.title"), t("error.body"))
        for name, value in SECURITY_HEADERS.items():
            # A page made to be framed (a widget) sets its own frame-ancestors: kept.
            response.headers.setdefault(name, value)
        return response

    def client(self, request: web.Request) -> str | None:
        """The client's address for rate limits and logs."""
        return self.addresses.client(request.remote, request.headers.getall("X-Forwarded-For", []))

    def _rate_limited(self, request: web.Request, t: Translator, token: str,
                      known: bool) -> web.Response | None:
        """A 429 page when this post is over the form's limits (see `FormLimits`)."""
        wait = self.limits.wait(self.client(request), token, known,
                                self.clock.now().timestamp())
        if wait is None:
            return None
        return self.message(429, t, t("ratelimit.title"), t("ratelimit.body"),
                            headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def page(self, name: str, status: int, t: Translator,
             headers: Mapping[str, str] | None = None, **context: Any) -> web.Response:
        """Template `name` of the page's `shop` (its templates_dir first), in its look: pass
        shop=ShopConfig for every page of a shop; without one the page looks neutral."""
        shop: ShopConfig | None = context.setdefault("shop", None)
        env = self.templates.environment(shop)
        html = env.get_template(name).render(t=t, lang=t.locale, brand=brand_for(shop),
                                             **context)
        response = web.Response(text=html, status=status, content_type="text/html",
                                charset="utf-8")
        if headers:
            response.headers.update(headers)
        # The shop's logo is allowed by whatever policy the page ends up with (its own, for a
        # page that may be framed or shows product pictures; else the site's).
        policy = response.headers.get("Content-Security-Policy",
                                      SECURITY_HEADERS["Content-Security-Policy"])
        with_logo = policy_with_logo(policy, shop)
        if with_logo is not None:
            response.headers["Content-Security-Policy"] = with_logo
        return response

    def not_found(self, t: Translator, shop: ShopConfig | None = None) -> web.Response:
        return self.page("not_found.html.j2", 404, t, PRIVATE_HEADERS, shop=shop)

    def message(self, status: int, t: Translator, heading: str, *paragraphs: str,
                link: tuple[str, str] | None = None,
                headers: Mapping[str, str] | None = None,
                shop: ShopConfig | None = None) -> web.Response:
        return self.page("message.html.j2", status, t, {**PRIVATE_HEADERS, **(headers or {})},
                         heading=heading, paragraphs=list(paragraphs), link=link, shop=shop)

    def _shop_of(self, invitation: InvitationRow | None) -> ShopConfig | None:
        return self.config.shop(invitation.shop) if invitation is not None else None

    def _translator_for(self, invitation: InvitationRow | None,
                        request: web.Request | None = None) -> Translator:
        """The invitation's language; a generated link (which has none of its own: the shop's
        was filled in) follows the browser's Accept-Language first (SPEC, issue 12)."""
        shop = self._shop_of(invitation)
        browser = (accept_languages(request.headers.get("Accept-Language"))
                   if request is not None and invitation is not None
                   and invitation.method == InvitationMethod.LINK else [])
        strings = self.strings.for_shop(shop.templates_dir if shop else None)
        return strings.translator(*browser, invitation.locale if invitation else None,
                                  shop.locale if shop else None)

    def _expired(self, invitation: InvitationRow) -> bool:
        """Cancelled, erased by retention (or `forget`), or simply too old to be honest."""
        return not reviews.link_usable(invitation, self.clock.now())

    def _notify(self) -> None:
        if self.on_review is None:
            return
        try:
            self.on_review()
        except Exception:
            # The review is stored; the ticket worker also finds it on its next pass.
            log.exception("on_review callback failed")

    # -- health

    async def healthz(self, request: web.Request) -> web.Response:
        report = await self.health() if self.health else {"status": "ok"}
        return web.json_response(report, status=200 if report.get("status") == "ok" else 503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        if self.metrics is None:
            raise web.HTTPNotFound()
        body = await self.metrics()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- the review form

    async def _visit(self, request: web.Request) -> ReviewVisit:
        """What a request to /r/<token>… is about, in the language to answer it in."""
        token = request.match_info["token"]
        invitation, review = await self._review_target(token)
        return ReviewVisit(token, invitation, review, self._translator_for(invitation, request),
                           self._shop_of(invitation))

    def _unusable(self, visit: ReviewVisit) -> web.Response | None:
        """404 for a link we do not know (or whose shop is gone), 410 for an expired one."""
        if visit.invitation is None or visit.shop is None:
            return self.not_found(visit.t)
        if self._expired(visit.invitation):
            t = visit.t
            return self.message(410, t, t("expired.title"), t("expired.body"),
                                shop=visit.shop)
        return None

    async def _review_target(
        self, token: str,
    ) -> tuple[InvitationRow | None, ReviewRow | None]:
        # The signature is checked first: a forged token never costs a database read.
        if not self.signer.verify(token, REVIEW):
            return None, None
        return await self.store.aread(lambda q: _invitation_and_review(q, token))

    def _csrf(self, token: str) -> str:
        return self.signer.form_token(token, int(self.clock.now().timestamp()))

    def _csrf_valid(self, value: object, token: str) -> bool:
        # compare_digest refuses non-ASCII str, and "²".isdigit() is true: check before.
        return (isinstance(value, str) and value.isascii() and len(value) <= 128
                and self.signer.form_token_valid(value, token,
                                                 int(self.clock.now().timestamp()),
                                                 CSRF_MAX_AGE))

    def _locked(self, t: Translator, shop: ShopConfig, review_id: int | None,
                status: int) -> web.Response:
        return self.message(
            status, t, t("locked.title"), t("locked.body", shop=shop.name),
            link=(links.public_url(self.config, shop.id, review_id),
                  t("done.public_link", shop=shop.name)), shop=shop)

    def _form(self, t: Translator, token: str, shop: ShopConfig, invitation: InvitationRow,
              review: ReviewRow | None, values: Mapping[str, str],
              errors: Mapping[str, str] | None = None, status: int = 200,
              notice: str | None = None,
              offered: Sequence[products.OfferedProduct] = ()) -> web.Response:
        maxima = {"title": reviews.MAX_TITLE, "text": reviews.MAX_TEXT, "name": reviews.MAX_NAME}
        messages = {}
        for field in FORM_FIELDS:
            code = (errors or {}).get(field)
            if code:
                key = f"error.{field}.{code}"
                messages[field] = t(key if key in t.fallback else f"error.{code}",
                                    max=maxima.get(field, 0), min=reviews.MIN_TEXT)
        product_messages, product_anchors = product_form.product_errors(t, offered, errors or {})
        messages.update(product_messages)
        headers = PRIVATE_HEADERS
        if product_form.shows_images(offered):  # the products' pictures, from the shop
            headers = {**PRIVATE_HEADERS, "Content-Security-Policy": product_form.with_https_images(
                SECURITY_HEADERS["Content-Security-Policy"])}
        created = from_iso(review.created_at) if review else None
        edit_notice = None
        if created is not None:
            edit_notice = t("form.edit_notice", shop=shop.name,
                            date=t.date(created.astimezone(shop.timezone)))
        return self.page(
            "review_form.html.j2", status, t, headers, shop=shop,
            shop_name=shop.name, reference=invitation.reference or "",
            verified=verified(invitation.method),
            values=values, errors=messages, anchors={**FIELD_ANCHORS, **product_anchors},
            products=product_form.form_products(t, offered, values),
            csrf=self._csrf(token), fresh_url=f"/r/{token}", notice=notice,
            edit_notice=edit_notice, editing=review is not None, maxima=maxima,
        )

    async def review_form(self, request: web.Request) -> web.Response:
        visit = await self._visit(request)
        token, invitation, review, t, shop = visit
        refused = self._unusable(visit)
        if refused is not None or invitation is None or shop is None:
            return refused or self.not_found(t)
        if review is not None and review.response_id is not None:
            return self._locked(t, shop, review.id, 200)
        offered, rated = await self.store.aread(lambda q: (
            products.products_of_invitation(q, invitation),
            products.form_values(q.product_reviews_of(review.id)) if review else {}))
        if review is not None:
            values = {"stars": str(review.stars), "title": review.title or "",
                      "text": review.text or "", "name": review.reviewer_name or "", **rated}
        else:
            values = {"stars": "", "title": "", "text": "",
                      "name": invitation.customer_name or ""}
        return self._form(t, token, shop, invitation, review, values, offered=offered)

    async def review_submit(self, request: web.Request) -> web.Response:
        visit = await self._visit(request)
        token, invitation, review, t, shop = visit
        limited = self._rate_limited(request, t, token, invitation is not None and shop is not None)
        if limited is not None:
            return limited
        refused = self._unusable(visit)
        if refused is not None or invitation is None or shop is None:
            return refused or self.not_found(t)
        problem, values, csrf = await read_form(request)
        offered = await self.store.aread(
            lambda q: products.products_of_invitation(q, invitation))
        if problem is not None:
            # Nothing is stored, so this answer needs no CSRF check first.
            log.info("invitation=%s review form refused: %s", invitation.id, problem)
            return self._form(t, token, shop, invitation, review, values, status=400,
                              notice=t("form.unreadable"), offered=offered)
        if not self._csrf_valid(csrf, token):
            log.info("invitation=%s review form refused: CSRF token missing or stale",
                     invitation.id)
            return self._form(t, token, shop, invitation, review, values, status=403,
                              notice=t("form.csrf"), offered=offered)
        if review is not None and review.response_id is not None:
            return self._locked(t, shop, review.id, 409)
        form, errors = reviews.validate(values, offered)
        if form is None:
            return self._form(t, token, shop, invitation, review, values, errors, status=400,
                              offered=offered)
        if invitation.method == InvitationMethod.LINK:
            form = replace(form, locale=t.locale)
        now = self.clock.now()
        # Re-read the invitation inside the write: a concurrent first submit has linked a review.
        outcome, review_id = await self.store.write(
            lambda q: reviews.submit_review(q, q.invitation_by_token(token) or invitation, form,
                                            now, self.config))
        log.info("invitation=%s review=%s %s stars=%d", invitation.id, review_id, outcome,
                 form.stars)
        if outcome == reviews.SubmitOutcome.LOCKED:
            return self._locked(t, shop, review_id, 409)
        self._notify()
        # Post/Redirect/Get: a reload of the thanks page must not send the form again.
        raise web.HTTPSeeOther(f"/r/{token}/thanks", headers=PRIVATE_HEADERS)

    async def review_thanks(self, request: web.Request) -> web.Response:
        """The thank-you page the form's POST redirects to: the review as stored (the service
        may fill in the name), in the invitation's language."""
        visit = await self._visit(request)
        token, invitation, review, t, shop = visit
        refused = self._unusable(visit)
        if refused is not None or invitation is None or shop is None:
            return refused or self.not_found(t)
        if review is None:
            raise web.HTTPSeeOther(f"/r/{token}", headers=PRIVATE_HEADERS)
        rated = await self.store.aread(lambda q: q.product_reviews_of(review.id))
        return self.page(
            "review_done.html.j2", 200, t, PRIVATE_HEADERS, shop=shop, shop_name=shop.name,
            updated=review.edits > 0, verified=verified(invitation.method),
            review=review, public_url=links.public_url(self.config, shop.id, review.id),
            product_reviews=product_form.rated_products(self.config, shop.id, rated),
        )

    # -- public pages

    def _public_review(self, row: ReviewRow) -> dict[str, Any]:
        """The public fields of one review: never its email address or order reference."""
        response = None
        if row.response:
            response = {"text": row.response, "created_at": row.responded_at}
        return {"id": row.id, "stars": row.stars, "title": row.title or "",
                "text": row.text or "", "reviewer_name": row.reviewer_name or "",
                "created_at": row.created_at, "verified": verified(row.method),
                "method": row.method,
                "response": response}

    async def _shop_listing(
        self, request: web.Request,
    ) -> tuple[ShopConfig | None, int | None, int, Listing | None]:
        shop = self.config.shop(request.match_info["shop"])
        stars = _query_int(request.query.get("stars"), 1, 5)
        page = _query_int(request.query.get("page", "1"), 1, 999_999) or 1
        if shop is None:
            return None, stars, page, None
        tag = request.query.get("tag", "").strip()[:64] or None
        listing = await self.store.aread(lambda q: _listing(q, shop.id, stars, page, tag))
        return shop, stars, page, listing

    async def shop_page(self, request: web.Request) -> web.Response:
        shop, stars, page, listing = await self._shop_listing(request)
        t = self.strings.for_shop(shop.templates_dir if shop else None).translator(
            shop.locale if shop else None)
        if shop is None or listing is None or page > listing.pages:
            return self.not_found(t, shop)
        summary = listing.summary
        count = int(summary.count)
        average = summary.average

        def link(filter_stars: int | None, to_page: int = 1) -> str:
            query = [(k, v) for k, v in (("stars", filter_stars), ("page", to_page))
                     if v is not None and not (k == "page" and v == 1)]
            return f"/s/{shop.id}" + ("?" + urlencode(query) if query else "")

        distribution = []
        for n in range(5, 0, -1):
            amount = int(summary.distribution.get(str(n), 0))
            distribution.append({
                "stars": n, "count": amount, "label": t.plural("star", n),
                "percent": round(100 * amount / count) if count else 0,
                "url": link(n), "current": stars == n,
            })
        items = []
        for row in listing.rows:
            items.append(with_local_dates(self._public_review(row), t, shop.timezone))
        jsonld = None
        if count:
            jsonld = Markup(script_json(self._jsonld(shop, summary, items)))  # noqa: S704
        return self.page(
            "public.html.j2", 200, t, PUBLIC_HEADERS, shop=shop, shop_name=shop.name,
            count=count,
            average=t.decimal(average) if average is not None else "",
            average_value=average or 0, distribution=distribution, reviews=items, stars=stars,
            all_url=link(None), page_number=page, pages=listing.pages,
            prev_url=link(stars, page - 1) if page > 1 else None,
            next_url=link(stars, page + 1) if page < listing.pages else None,
            jsonld=jsonld, write_url=f"/s/{shop.id}/write?via=page", review_base=f"/s/{shop.id}/r/",
            removed_line=removed_line(t, listing.removed),
        )

    def _jsonld(self, shop: ShopConfig, summary: RatingSummary,
                items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """schema.org Organization with its AggregateRating and the reviews on this page."""
        data: dict[str, Any] = {
            "@context": "https://schema.org",
            "@type": "Organization",
            "name": shop.name,
            "url": links.public_url(self.config, shop.id),
            "aggregateRating": structured.aggregate_rating(summary.average, int(summary.count)),
        }
        if items:
            data["review"] = [structured.review(item) for item in items]
        return data

    async def shop_json(self, request: web.Request) -> web.Response:
        shop, _stars, page, listing = await self._shop_listing(request)
        if shop is None or listing is None or page > listing.pages:
            return self._json({"error": "not found"}, 404)
        summary = listing.summary
        average = summary.average
        return self._json({
            "shop": {"id": shop.id, "name": shop.name},
            "summary": {"count": summary.count,
                        "average": round(average, 2) if average is not None else None,
                        "distribution": summary.distribution},
            "page": page,
            "pages": listing.pages,
            "reviews": [self._public_review(row) for row in listing.rows],
            "removed": removed_json(listing.removed),
        }, 200, PUBLIC_HEADERS)

    def _json(self, data: Any, status: int,
              headers: Mapping[str, str] | None = None) -> web.Response:
        # Escaped like the JSON-LD: even a browser that sniffs cannot find markup in it.
        response = web.Response(text=script_json(data), status=status,
                                content_type="application/json", charset="utf-8")
        if headers:
            response.headers.update(headers)
        return response

    # -- unsubscribe

    async def _unsubscribe_target(self, request: web.Request) -> InvitationRow | None:
        review_token = self.signer.convert(request.match_info["token"], UNSUBSCRIBE, REVIEW)
        if review_token is None:
            return None
        return await self.store.aread(lambda q: q.invitation_by_token(review_token))

    def _unsubscribe_page(self, invitation: InvitationRow, done: bool) -> web.Response:
        t = self._translator_for(invitation)
        shop = self._shop_of(invitation)
        return self.page("unsubscribe.html.j2", 200, t, PRIVATE_HEADERS, done=done, shop=shop,
                         shop_name=shop.name if shop else invitation.shop,
                         email=mask(invitation.customer_email))

    async def unsubscribe_page(self, request: web.Request) -> web.Response:
        # GET never unsubscribes: link scanners fetch every URL in a mail (RFC 8058 section 1).
        inv = await self._unsubscribe_target(request)
        if inv is None:
            return self.not_found(self.strings.translator())
        suppressed = await self.store.aread(
            lambda q: q.unsubscribed(inv.shop, inv.customer_email))
        return self._unsubscribe_page(inv, suppressed)

    async def unsubscribe(self, request: web.Request) -> web.Response:
        """RFC 8058 one-click: a POST with List-Unsubscribe=One-Click, or the page's button."""
        inv = await self._unsubscribe_target(request)
        if inv is None:
            return self.not_found(self.strings.translator())
        now = self.clock.now()
        cancelled = await self.store.write(lambda q: invitations.unsubscribe(q, inv, now))
        log.info("invitation=%s unsubscribed shop=%s cancelled=%d", inv.id, inv.shop,
                 cancelled)
        return self._unsubscribe_page(inv, True)

    # -- lifecycle

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port)
        await site.start()
        server = site._server  # noqa: SLF001 - the only way to learn the port bound for port 0
        sockets = server.sockets if isinstance(server, asyncio.Server) else ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("web listening on %s:%d", self.config.http.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
