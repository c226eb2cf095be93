"""The agents' inbox and answering in the browser (issue 14): `/console/{shop}/` lists the
reviews awaiting an answer, `/console/{shop}/r/{id}` shows one with the customer's context and
answers it through services.replies, the same path as an emailed reply.

Protocol only: what an answer does is services.replies; the SQL is store.inbox.
"""

from __future__ import annotations

import email.policy
import logging
from dataclasses import dataclass, replace
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from mailrelay.edges.web.console import CONSOLE_HEADERS
from mailrelay.edges.web.forms import read_fields
from mailrelay.edges.web.i18n import Translator
from mailrelay.render import RenderedMail
from mailrelay.services import drafts
from mailrelay.services.accounts import ConsoleUser
from mailrelay.services.moderation import was_attached
from mailrelay.services.replies import ReplyOutcome, console_directives
from mailrelay.store import CustomerContext, InboxFilter, QueryInterface, ReviewRow

if TYPE_CHECKING:
    from mailrelay.edges.web.server import WebApp

log = logging.getLogger("mailrelay.web")

PAGE_SIZE = 25
ANSWER_FIELDS = ("csrf", "do", "body", "tags", "reason")
#: The status line after an action (`?done=` on the redirect), by outcome.
DONE = {ReplyOutcome.PUBLISHED: "published", ReplyOutcome.NOTE: "note",
        ReplyOutcome.REPORTED: "reported", ReplyOutcome.TAGGED: "tagged"}
REPORTED_AGAIN = "reported_again"
_MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class MailPreview:
    """The customer's email as it would be sent: recipient, subject and text part."""

    to: str
    subject: str
    text: str


def mail_preview(mail: RenderedMail) -> MailPreview:
    message = BytesParser(policy=email.policy.default).parsebytes(mail.raw)
    part = message.get_body(preferencelist=("plain",))
    text = part.get_content() if part is not None else ""
    return MailPreview(mail.to, str(message.get("Subject", "")), str(text))


def _number(value: str, low: int, high: int) -> int | None:
    return int(value) if value.isdigit() and len(value) < 10 and low <= int(value) <= high \
        else None


def inbox_filter(query: Any) -> InboxFilter:
    """The inbox's filters from the query string; what is not a valid value is ignored."""
    def text(name: str, size: int) -> str | None:
        value = " ".join(str(query.get(name, "")).split())[:size]
        return value or None
    return InboxFilter(stars=_number(str(query.get("stars", "")), 1, 5),
                       tag=(text("tag", 40) or "").lower() or None, sku=text("sku", 100),
                       search=text("q", 200))


@dataclass(frozen=True)
class ReviewFacts:
    """What the review page shows beside the form."""

    review: ReviewRow
    context: CustomerContext
    product_reviews: list[Any]
    notes: list[Any]
    responses: list[Any]
    invitation_message_id: str | None
    draft: str


class InboxPages:
    """`/console/{shop}/` and `/console/{shop}/r/{id}`."""

    def __init__(self, app: WebApp) -> None:
        self.app = app

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/console/{shop}/", self.inbox),
            web.get(r"/console/{shop}/r/{id:\d{1,19}}", self.review_page),
            web.post(r"/console/{shop}/r/{id:\d{1,19}}", self.answer),
        ]

    def _context(self, request: web.Request, user: ConsoleUser, shop_id: str,
                 t: Translator) -> dict[str, Any]:
        shop = self.app.config.shop(shop_id)
        return {"user": user, "csrf": self.app.console.csrf_token(request), "t": t,
                "shop_id": shop_id, "shop_name": shop.name if shop else shop_id}

    # -- the inbox

    async def inbox(self, request: web.Request) -> web.Response:
        shop_id = request.match_info["shop"]
        user = await self.app.console.require(request, shop_id)
        t = self.app.console.translator(request)
        wanted = inbox_filter(request.query)
        page = _number(request.query.get("page", "1"), 1, 100_000) or 1
        found = await self.app.store.aread(
            lambda q: q.inbox(shop_id, wanted, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE))
        base = {k: v for k, v in (("stars", wanted.stars), ("tag", wanted.tag),
                                  ("sku", wanted.sku), ("q", wanted.search)) if v}

        def link(**change: object) -> str:
            values = {k: v for k, v in {**base, **change}.items() if v}
            return "?" + urlencode(values) if values else "?"
        context = self._context(request, user, shop_id, t)
        context.pop("t")
        return self.app.console.page(
            "console_inbox.html.j2", t, **context, wanted=wanted,
            reviews=found.reviews[:PAGE_SIZE], counts=found.waiting_by_stars,
            waiting=found.waiting, page=page, link=link,
            next_link=link(page=page + 1) if len(found.reviews) > PAGE_SIZE else None,
            previous_link=link(page=page - 1 if page > 2 else None) if page > 1 else None)

    # -- one review

    async def _facts(self, shop_id: str, raw_id: str) -> ReviewFacts:
        review_id = int(raw_id)
        if review_id > _MAX_ID:
            raise web.HTTPNotFound()
        config = self.app.config

        def read(q: QueryInterface) -> ReviewFacts | None:
            review = q.get_review(review_id)
            if review is None or review.shop != shop_id:
                return None  # another shop's review: as if it did not exist
            email_address = review.customer_email or ""
            return ReviewFacts(
                review,
                q.customer_context(shop_id, email_address, review_id) if email_address
                else CustomerContext(),
                q.product_reviews_of(review_id), q.notes_of(review_id),
                q.responses_of(review_id),
                q.invitation_message_id(int(review.invitation_id))
                if review.invitation_id else None, "")
        facts = await self.app.store.aread(read)
        if facts is None:
            raise web.HTTPNotFound()
        if facts.review.response is not None:
            return facts
        # Drafted off the reader and the event loop: a `[drafts] command` may take seconds.
        draft = await drafts.suggest_async(config, self.app.store, review_id)
        return replace(facts, draft=draft or "")

    def _review(self, request: web.Request, user: ConsoleUser, shop_id: str, t: Translator,
                facts: ReviewFacts, status: int = 200, **form: Any) -> web.Response:
        context = self._context(request, user, shop_id, t)
        context.pop("t")
        done = request.query.get("done", "")
        form = {"body": facts.draft, "tags": "", "reason": "", "error": None,
                "preview": None, "previewed": False, **form}
        return self.app.console.page(
            "console_review.html.j2", t, status, **context, facts=facts, r=facts.review,
            done=done if done in (*DONE.values(), REPORTED_AGAIN) else None, form=form)

    async def review_page(self, request: web.Request) -> web.Response:
        shop_id = request.match_info["shop"]
        user = await self.app.console.require(request, shop_id)
        t = self.app.console.translator(request)
        facts = await self._facts(shop_id, request.match_info["id"])
        return self._review(request, user, shop_id, t, facts)

    async def answer(self, request: web.Request) -> web.Response:
        shop_id = request.match_info["shop"]
        user = await self.app.console.require(request, shop_id)
        t = self.app.console.translator(request)
        facts = await self._facts(shop_id, request.match_info["id"])
        form = await read_fields(request, ANSWER_FIELDS)
        kept = {"body": form["body"], "tags": form["tags"], "reason": form["reason"]}
        if not self.app.console.csrf_valid(request, form["csrf"]):
            return self._review(request, user, shop_id, t, facts, 400,
                                error=t("console.csrf"), **kept)
        if form["do"] == "preview":
            return self._preview(request, user, shop_id, t, facts, kept)
        directives = console_directives(form["do"], form["body"], form["tags"],
                                        form["reason"])
        if isinstance(directives, str):
            return self._review(request, user, shop_id, t, facts, 400,
                                error=t(f"inbox.problem_{directives}"), **kept)
        replier = self.app.replier
        if replier is None:
            raise web.HTTPServiceUnavailable()
        result = await replier.answer_in_console(facts.review.id, directives, user.email)
        if result.outcome not in DONE:
            return self._review(request, user, shop_id, t, facts, 400,
                                error=t("inbox.problem_empty"), **kept)
        if self.app.on_review is not None:
            self.app.on_review()  # the customer's mail and the events go out now
        done = DONE[result.outcome]
        if result.outcome == ReplyOutcome.REPORTED and was_attached(result.reason):
            done = REPORTED_AGAIN  # attached to the report an owner has yet to decide
        raise web.HTTPSeeOther(f"/console/{shop_id}/r/{facts.review.id}?done={done}",
                               headers=CONSOLE_HEADERS)

    def _preview(self, request: web.Request, user: ConsoleUser, shop_id: str, t: Translator,
                 facts: ReviewFacts, kept: dict[str, str]) -> web.Response:
        body = kept["body"].strip()
        replier = self.app.replier
        if not body:
            return self._review(request, user, shop_id, t, facts, 400,
                                error=t("inbox.problem_empty"), **kept)
        mail = (replier.preview(facts.review, body, facts.invitation_message_id)
                if replier is not None else None)
        return self._review(request, user, shop_id, t, facts, 200,
                            preview=mail_preview(mail) if mail is not None else None,
                            previewed=True, **kept)
