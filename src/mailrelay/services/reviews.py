"""Review recorded → ticket to the shop's agents, or an automatic response for positive ones.

Validation and the submit rule (edit until answered) live here; the web only translates.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import jinja2

from mailrelay.config import Config, ShopConfig
from mailrelay.core.models import InvitationStatus, OutboxKind
from mailrelay.core.routing import reply_address
from mailrelay.core.tokens import REPLY
from mailrelay.render import (
    RenderedMail,
    ResponseView,
    ReviewView,
    TicketView,
    auto_response_text,
    response_mail,
    ticket_mail,
)
from mailrelay.services import drafts, events, products
from mailrelay.services.links import public_url
from mailrelay.services.outbox import MailProducer, enqueue_mail
from mailrelay.store import (
    CustomerContext,
    InvitationRow,
    NewProductReview,
    NewReview,
    QueryInterface,
    ReviewRow,
    ReviewText,
    ShipmentRow,
)

log = logging.getLogger("mailrelay.reviews")  # the name operators filter on

MAX_TITLE = 120
MAX_TEXT = 5000
MAX_NAME = 80
MIN_TEXT = 2
MAX_TAG = 40  # as an agent's #tag (services.replies)
_TAG_GAPS = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class ReviewForm:
    """What a customer submitted, validated."""

    stars: int
    title: str
    text: str
    name: str
    #: The language the form spoke, for an invitation without one of its own (a generated
    #: link follows the browser's); None keeps the invitation's.
    locale: str | None = None
    #: The products the customer rated (None: the form did not ask, stored ones stay).
    products: tuple[NewProductReview, ...] | None = None


def _clean(value: str | None) -> str:
    """Form text: no control characters except newlines and tabs, trimmed."""
    text = (value or "").replace("\r\n", "\n")
    return "".join(ch for ch in text if ch in "\n\t" or (ch >= " " and ch != "\x7f")).strip()


def _stars(raw: str) -> int:
    """The number a stars field holds, 0 when it is none."""
    # isdigit() alone admits "²" and 5,000-digit numbers, which int() refuses (issue 10).
    well_formed = raw.isascii() and raw.isdigit() and len(raw) <= 2
    return int(raw) if well_formed else 0


def validate(data: Mapping[str, str], offered: Sequence[products.OfferedProduct] = (),
             ) -> tuple[ReviewForm | None, dict[str, str]]:
    """The form, or error codes per field (`required`, `range`, `too_short`, `too_long`).
    `offered`: the products of the order the form asked about (each optional)."""
    errors: dict[str, str] = {}
    raw_stars = (data.get("stars") or "").strip()
    stars = _stars(raw_stars)
    if not raw_stars:
        errors["stars"] = "required"
    elif not 1 <= stars <= 5:
        errors["stars"] = "range"
    title = _clean(data.get("title"))
    text = _clean(data.get("text"))
    name = " ".join(_clean(data.get("name")).split())
    if len(title) > MAX_TITLE:
        errors["title"] = "too_long"
    if not text:
        errors["text"] = "required"
    elif len(text) < MIN_TEXT:
        errors["text"] = "too_short"
    elif len(text) > MAX_TEXT:
        errors["text"] = "too_long"
    if len(name) > MAX_NAME:
        errors["name"] = "too_long"
    ratings = _validate_products(data, offered, errors)
    if errors:
        return None, errors
    return ReviewForm(stars, title, text, name, products=ratings if offered else None), {}


def _validate_products(data: Mapping[str, str], offered: Sequence[products.OfferedProduct],
                       errors: dict[str, str]) -> tuple[NewProductReview, ...]:
    """Each product's optional rating; text without stars is refused (`required`), so no
    words are lost unseen."""
    ratings: list[NewProductReview] = []
    for product in offered:
        raw_stars = (data.get(product.stars_field) or "").strip()
        stars = _stars(raw_stars)
        text = _clean(data.get(product.text_field))
        if len(text) > products.MAX_PRODUCT_TEXT:
            errors[product.text_field] = "too_long"
        if not raw_stars:
            if text:
                errors[product.stars_field] = "required"
        elif not 1 <= stars <= 5:
            errors[product.stars_field] = "range"
        elif product.text_field not in errors:
            ratings.append(product.rating(stars, text or None))
    return tuple(ratings)


class SubmitOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    LOCKED = "locked"


#: How long a review link stays usable after the invitation was created.
LINK_MAX_AGE = timedelta(days=365)


def link_usable(invitation: InvitationRow, now: datetime) -> bool:
    """False for cancelled or erased invitations and for links older than a year."""
    created = invitation.created_at
    too_old = bool(created) and now - datetime.fromisoformat(str(created)) > LINK_MAX_AGE
    return not (invitation.status == InvitationStatus.CANCELLED
                or not invitation.customer_email or too_old)


def submit_review(q: QueryInterface, invitation: InvitationRow, form: ReviewForm,
                  now: datetime, config: Config | None = None) -> tuple[SubmitOutcome, int | None]:
    """Store the review of an invitation; a second submit edits it until it is answered.
    With `config`, the shop's webhooks hear of it (review.created / review.updated).

    The name is stored as given: a customer who clears it stays anonymous on the page.
    """
    name = form.name
    text = ReviewText(form.stars, form.title, form.text, name)
    if invitation.review_id:
        review = q.get_review(invitation.review_id)
        if review is not None:
            if review.response_id is not None:
                return SubmitOutcome.LOCKED, review.id
            unchanged = (review.stars, review.title or "", review.text or "",
                         review.reviewer_name or "") == (form.stars, form.title, form.text,
                                                            name)
            if unchanged and form.products is not None:
                unchanged = products.unchanged(q.product_reviews_of(review.id), form.products)
            if unchanged:  # a reload of the thank-you page: no new ticket for the same text
                return SubmitOutcome.UPDATED, review.id
            q.edit_review(review.id, text, now)
            _save_products(q, review.id, invitation.shop, form, now)
            if config is not None:
                events.emit(q, config, invitation.shop, "review.updated", now,
                              review_id=review.id, extra={"change": "edited"})
            return SubmitOutcome.UPDATED, review.id
    review_id = q.insert_review(NewReview(
        shop=invitation.shop, invitation_id=invitation.id, method=invitation.method, text=text,
        customer_email=invitation.customer_email, reference=invitation.reference,
        locale=form.locale or invitation.locale, created_at=now))
    q.link_review(invitation.id, review_id)
    _save_products(q, review_id, invitation.shop, form, now)
    shipment = q.shipment_of_invitation(invitation.id) if invitation.shipment_id else None
    for tag in block_tags(shipment.tags if shipment else ()):
        q.add_tag(review_id, tag, now)  # the trigger block's tags, as an agent's #tag would
    if config is not None:
        events.emit(q, config, invitation.shop, "review.created", now, review_id=review_id,
                      invitation_id=invitation.id)
    return SubmitOutcome.CREATED, review_id


def _save_products(q: QueryInterface, review_id: int, shop: str, form: ReviewForm,
                   now: datetime) -> None:
    """The product ratings go with the review, in its transaction (before its event)."""
    if form.products is not None:
        q.save_product_reviews(review_id, shop, form.products, now)


def unreport(q: QueryInterface, config: Config, review_id: int, now: datetime) -> bool:
    """Show a reported review again (an operator's decision); the webhooks hear of it."""
    review = q.get_review(review_id)
    if review is None or not q.unreport_review(review_id):
        return False
    events.emit(q, config, review.shop, "review.updated", now, review_id=review_id,
                  extra={"change": "unreported"})
    return True


def block_tags(tags: Iterable[object]) -> list[str]:
    """A trigger block's tags in the form of an agent's `#tag`: lower case, at most 40
    characters, spaces and list separators (`,` `;`, which exports join on) as "-"."""
    out: list[str] = []
    for tag in tags:
        name = _TAG_GAPS.sub("-", str(tag).strip().lower())[:MAX_TAG].strip("-")
        if name and name not in out:
            out.append(name)
    return out


def first_name(name: str | None) -> str | None:
    parts = (name or "").split()
    return parts[0] if parts else None


def review_view(review: ReviewRow) -> ReviewView:
    """What a ticket or response mail shows of a stored review."""
    return ReviewView(
        id=review.id, stars=review.stars, title=review.title, text=review.text,
        reviewer_name=review.reviewer_name, customer_email=review.customer_email,
        reference=review.reference, method=review.method, locale=review.locale,
        created_at=review.created_at,
    )


@dataclass(frozen=True)
class TicketBatch:
    """Everything rendered for one review, written in one transaction."""

    review: ReviewRow
    tickets: list[tuple[str, str, bool, RenderedMail]]  # (agent, key, new key, mail)
    auto_response: str | None
    customer_mail: RenderedMail | None


class Reviewer(MailProducer):
    """Turns new (or edited) reviews into tickets, and answers positive ones when configured."""

    async def queue_tickets(self) -> int:
        """Render and store tickets for every review waiting for one; returns reviews handled."""
        total = 0
        while True:
            read, held = await self._hold_pending()
            for review_id in held:
                await self._handle(review_id)
                total += 1
            if read < self.batch_size:
                return total

    async def _hold_pending(self) -> tuple[int, list[int]]:
        """How many reviews wait for tickets (up to a batch), and those of them this relay
        renders: held for it, so that one relay renders each (and runs the shop's draft
        command once), whichever relays share the store."""
        now, relay, expired = self.clock.now(), self.relay, self.clock.now() - self.lease
        ids = await self.store.aread(lambda q: q.pending_tickets(
            self.batch_size, relay=relay, expired=expired))
        if not ids:
            return 0, []
        held = await self.store.write(lambda q: q.hold_reviews(ids, now, expired,
                                                                relay=relay))
        return len(ids), [review_id for review_id in ids if review_id in held]

    async def _handle(self, review_id: int) -> None:
        now = self.clock.now()
        facts = await self.store.aread(lambda q: self._facts(q, review_id))
        if facts is None:
            return
        shop = self.config.shop(facts["review"].shop)
        if shop is None:
            log.warning("review=%s shop is no longer configured; no ticket", review_id)
            await self.store.write(lambda q: q.mark_ticket_queued(review_id,
                                                                  facts["review"].edits))
            return
        try:
            batch = await asyncio.to_thread(self._render_tickets, shop, facts, now)
        except (ValueError, jinja2.TemplateError) as exc:
            log.error("review=%s ticket cannot be rendered: %s", review_id, exc)
            await self.store.write(lambda q: q.mark_ticket_queued(review_id,
                                                                  facts["review"].edits))
            return
        await self.store.write(lambda q: self._store_tickets(q, shop, batch, now))

    def _facts(self, q: QueryInterface, review_id: int) -> dict[str, Any] | None:
        review = q.get_review(review_id)
        if review is None:
            return None
        invitation = q.get_invitation(review.invitation_id) if review.invitation_id else None
        shipment = (q.shipment_of_invitation(review.invitation_id)
                    if review.invitation_id else None)
        email = review.customer_email or ""
        context = (q.customer_context(review.shop, email, review_id) if email
                   else CustomerContext())
        keys = {agent: q.key_for(review_id, agent) for agent in self._agents(review.shop)}
        threads = {agent: q.first_ticket_message_id(review_id, agent) for agent in keys}
        invitation_mid = (q.invitation_message_id(review.invitation_id)
                          if review.invitation_id else None)
        return {"review": review, "invitation": invitation, "shipment": shipment,
                "draft": drafts.draft_facts(self.config, q, review_id),
                "context": context, "keys": keys, "threads": threads,
                "invitation_message_id": invitation_mid,
                "product_reviews": [{"n": r.n, "sku": r.sku, "name": r.name, "stars": r.stars,
                                     "text": r.text} for r in q.product_reviews_of(review_id)]}

    def _agents(self, shop_id: str) -> tuple[str, ...]:
        shop = self.config.shop(shop_id)
        return shop.agents if shop else ()

    def _auto_eligible(self, shop: ShopConfig, review: ReviewRow) -> bool:
        minimum = shop.auto_reply_min_stars
        return bool(minimum) and review.stars >= minimum and review.response_id is None

    def _render_tickets(self, shop: ShopConfig, facts: dict[str, Any],
                        now: datetime) -> TicketBatch:
        review = facts["review"]
        auto_text: str | None = None
        customer_mail: RenderedMail | None = None
        if self._auto_eligible(shop, review):
            auto_text = auto_response_text(self.templates, shop, review.locale,
                                           first_name=first_name(review.reviewer_name),
                                           stars=review.stars)
            if review.customer_email:
                customer_mail = self.render_response(shop, review, auto_text,
                                                     facts["invitation_message_id"], now)
        shipment: ShipmentRow | None = facts["shipment"]
        products = shipment.products if shipment else []
        received_at = shipment.received_at if shipment else None
        suggestion = (drafts.compose_or_none(self.config, facts["draft"])
                      if facts["draft"] is not None and facts["keys"] else None)
        tickets = []
        for agent, known_key in facts["keys"].items():
            key = known_key or self.signer.issue_key(REPLY)
            view = TicketView(
                to_email=agent, reply_to=reply_address(key, shop.reply_domain), key=key,
                review=review_view(review), received_at=received_at, products=products,
                product_reviews=facts["product_reviews"],
                context=asdict(facts["context"]), public_url=public_url(self.config, shop.id),
                review_url=public_url(self.config, shop.id, review.id),
                answered_by="auto" if auto_text else None, auto_response=auto_text,
                updated=bool(review.edits), in_reply_to=facts["threads"].get(agent),
                suggested_answer=suggestion,
            )
            mail = ticket_mail(self.templates, self.config, shop, view, now=now)
            tickets.append((agent, key, known_key is None, mail))
        return TicketBatch(review, tickets, auto_text, customer_mail)

    def render_response(self, shop: ShopConfig, review: ReviewRow, body: str,
                        invitation_message_id: str | None, now: datetime) -> RenderedMail:
        """The customer's copy of a public response, threaded under the invitation."""
        refs = [invitation_message_id] if invitation_message_id else []
        view = ResponseView(
            to_email=review.customer_email or "", to_name=review.reviewer_name,
            locale=review.locale, body=body, review=review_view(review),
            public_url=public_url(self.config, shop.id, review.id),
            in_reply_to=invitation_message_id, references=refs,
        )
        return response_mail(self.templates, self.config, shop, view, now=now)

    def _store_tickets(self, q: QueryInterface, shop: ShopConfig, batch: TicketBatch,
                       now: datetime) -> bool:
        review = batch.review
        if not q.mark_ticket_queued(review.id, review.edits):
            return False  # edited again meanwhile: the next pass renders the newer text
        for agent, key, new_key, mail in batch.tickets:
            if new_key:
                q.insert_reply_key(key, review.id, agent, now, mail.message_id)
            enqueue_mail(q, shop, OutboxKind.TICKET, mail, now, review_id=review.id)
        if batch.auto_response is not None:
            current = q.get_review(review.id)
            if current is not None and current.response_id is None:
                q.add_response(review.id, batch.auto_response, "auto", "auto", now,
                               emailed=batch.customer_mail is not None)
                events.emit(q, self.config, shop.id, "response.published", now,
                              review_id=review.id, extra={"response": events.response_payload(
                                  batch.auto_response, "auto", now, automatic=True,
                                  emailed=batch.customer_mail is not None)})
                if batch.customer_mail is not None:
                    enqueue_mail(q, shop, OutboxKind.RESPONSE, batch.customer_mail, now,
                                 review_id=review.id)
        log.info("review=%s tickets=%d auto_response=%s", review.id, len(batch.tickets),
                 batch.auto_response is not None)
        return True

