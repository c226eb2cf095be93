"""A review as a ticket to one agent, as exact bytes: REPLY_MARKER first, "[mr:<key>]" last,
the customer's recent history beside it. Never sends, never stores.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from email.headerregistry import Address
from email.utils import format_datetime
from typing import Any, Final

from mailrelay.config import Config, ShopConfig
from mailrelay.core.reply_marker import REPLY_MARKER
from mailrelay.render.content import (
    checked_stars,
    clean_display_text,
    clean_products,
    customer_name,
    defang,
    format_time,
    headline,
    paragraphs,
    review_id,
    shorten,
    stars_bar,
    valid_stars,
)
from mailrelay.render.headers import (
    aware,
    checked_address,
    checked_message_id,
    checked_url,
    clean_header,
    optional_url,
    shop_name,
    shop_sender,
)
from mailrelay.render.message import RenderedMail, compose, rendered
from mailrelay.render.templates import Templates, normalize_locale
from mailrelay.render.threads import thread, threading_headers
from mailrelay.render.views import TicketView

__all__ = ["ticket_mail"]

_KEY: Final = re.compile(r"[a-z0-9]{1,128}")  # reply keys are lowercase base32
_CONTEXT_ITEMS: Final = 3


def ticket_mail(
    templates: Templates,
    config: Config,
    shop: ShopConfig,
    view: TicketView,
    *,
    now: datetime,
    message_id: str | None = None,
) -> RenderedMail:
    """A review as a ticket to one agent, in the shop's language; answered by replying to it.

    The text part starts with REPLY_MARKER and ends with "[mr:<key>]"; the HTML part carries
    the key hidden in a data-mailrelay-key element. `view.review_url` defaults to
    `view.public_url`. Raises ValueError for an unusable address, key, link, star count,
    review id or Message-ID.
    """
    agent = checked_address(view.to_email)
    reply_address = checked_address(view.reply_to)
    key = view.key
    if _KEY.fullmatch(key) is None:
        raise ValueError(f"invalid reply key {key!r}")
    review = review_id(view.review)
    message_id = checked_message_id(config, message_id)
    now = aware(now)
    _template, language = templates.first_template(
        shop, shop.locale, lambda step: f"mail/{step}/ticket.txt.j2")
    values = _ticket_values(shop, view, language)
    subject, text, html, used = templates.render_text(shop, "ticket", shop.locale, **values)
    parent, references = thread(view.in_reply_to, [])
    head: list[tuple[str, Any]] = [
        ("From", shop_sender(shop)),
        ("To", Address(addr_spec=agent)),
        ("Subject", subject or values["shop_name"]),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        ("Reply-To", reply_address),
        *threading_headers(parent, references, message_id, now),
        ("Auto-Submitted", "auto-generated"),  # RFC 3834
    ]
    tail = [
        ("Content-Language", used),
        ("X-Mailrelay-Shop", shop.id),
        ("X-Mailrelay-Review", review),
        ("X-Mailrelay-Key", key),
    ]
    msg = compose(head, _frame_ticket_text(text, key), html, tail)
    return rendered(msg, message_id, agent)


def _ticket_values(shop: ShopConfig, view: TicketView, language: str) -> dict[str, Any]:
    """The context of the ticket templates (see templates/mail/README.md); times written the
    way `language` (the ticket template's locale) writes them."""
    review = view.review
    count = checked_stars(review.stars)
    text = defang(clean_display_text(review.text))
    automatic = view.answered_by == "auto"
    answer = defang(clean_display_text(view.auto_response)) if automatic else ""
    suggestion = defang(clean_display_text(view.suggested_answer))
    public = checked_url(view.public_url or "", "public_url")
    when = _Times(shop.timezone, language)
    return {
        "shop_name": shop_name(shop),
        "key": view.key,
        "marker": REPLY_MARKER,
        "updated": bool(view.updated),
        "stars": count,
        "stars_bar": stars_bar(count),
        "title": defang(clean_header(review.title, limit=300)) or None,
        "headline": defang(headline(review.title, review.text)) or None,
        "text": text,
        "paragraphs": paragraphs(text),
        "reviewer_name": defang(customer_name(review.reviewer_name) or "") or None,
        "customer_email": clean_header(review.customer_email, limit=254) or None,
        "reference": clean_header(review.reference, limit=100) or None,
        "method": clean_header(review.method, limit=40) or None,
        "review_locale": normalize_locale(review.locale),
        "created_at": when.moment(review.created_at),
        "received_at": when.day(view.received_at),
        # From the trigger's block: whoever reaches the BCC address wrote them (issue 13).
        "products": [{key: defang(value) if isinstance(value, str) else value
                      for key, value in product.items()}
                     for product in clean_products(view.products)],
        "product_reviews": _product_reviews(view.product_reviews),
        "public_url": public,
        "review_url": optional_url(view.review_url, "review_url") or public,
        "customer_context": _clean_context(view.context, when),
        "answered_by": "auto" if automatic else None,
        "auto_response": answer or None,
        "auto_paragraphs": paragraphs(answer),
        "suggested_answer": suggestion or None,
        "suggested_paragraphs": paragraphs(suggestion),
    }


def _product_reviews(items: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """The customer's product ratings, cleaned like the review's own text; one whose stars
    are out of range is left out rather than refusing the ticket."""
    out: list[dict[str, Any]] = []
    for item in items or ():
        count = valid_stars(item.get("stars")) if isinstance(item, Mapping) else None
        if count is None:
            continue
        text = defang(clean_display_text(item.get("text")))
        out.append({
            "name": defang(clean_header(item.get("name") or item.get("sku"), limit=300)),
            "sku": defang(clean_header(item.get("sku"), limit=100)) or None,
            "stars": count, "stars_bar": stars_bar(count),
            "text": text, "paragraphs": paragraphs(text),
        })
    return out


def _frame_ticket_text(text: str, key: str) -> str:
    """The text part with REPLY_MARKER as its first line and [mr:<key>] as its last, even
    when a shop's own ticket.txt.j2 forgot them: the reply parser depends on both."""
    if text.split("\n", 1)[0].strip() != REPLY_MARKER:
        text = f"{REPLY_MARKER}\n\n{text}"
    reference = f"[mr:{key}]"
    if text.rstrip("\n").rsplit("\n", 1)[-1].strip() != reference:
        text = f"{text.rstrip(chr(10))}\n\n{reference}\n"
    return text


# --------------------------------------------------------------------------- customer context


class _Times:
    """Times of one ticket: in the shop's zone, written the ticket's language's way."""

    def __init__(self, zone: tzinfo, language: str) -> None:
        self.zone, self.language = zone, language

    def moment(self, value: Any) -> str | None:
        return format_time(value, self.zone, locale=self.language)

    def day(self, value: Any) -> str | None:
        return format_time(value, self.zone, date_only=True, locale=self.language)


def _clean_context(
    context: Mapping[str, Sequence[Mapping[str, Any]]], when: _Times
) -> dict[str, list[dict[str, Any]]]:
    """The customer's other reviews, invitations and replies: at most three of each, cleaned.

    A star count out of range is shown without stars rather than refusing the whole ticket.
    """
    return {
        "reviews": [_context_review(item, when) for item in _items(context, "reviews")],
        "invitations": [_context_invitation(item, when)
                        for item in _items(context, "invitations")],
        "replies": [_context_reply(item, when) for item in _items(context, "replies")],
        "status": [{"kind": clean_header(item.get("kind"), limit=20),
                    "mail": clean_header(item.get("mail"), limit=60)}
                   for item in _items(context, "status")],  # "address bounced": names no shop
    }  # fmt: skip


def _context_review(item: Mapping[str, Any], when: _Times) -> dict[str, Any]:
    count = valid_stars(item.get("stars"))
    return {
        "id": clean_header(str(item.get("id") or ""), limit=64),
        "stars": count,
        "stars_bar": stars_bar(count) if count else "",
        "title": defang(clean_header(item.get("title"), limit=120)),
        "date": when.day(item.get("created_at")),
    }


def _context_invitation(item: Mapping[str, Any], when: _Times) -> dict[str, Any]:
    return {
        "id": clean_header(str(item.get("id") or ""), limit=64),
        "reference": clean_header(item.get("reference"), limit=100) or None,
        "status": clean_header(item.get("status"), limit=40),
        "date": when.day(item.get("sent_at")),
    }


def _context_reply(item: Mapping[str, Any], when: _Times) -> dict[str, Any]:
    return {
        "review_id": clean_header(str(item.get("review_id") or ""), limit=64),
        "snippet": defang(shorten(clean_header(item.get("body"), limit=1000), 100)),
        "date": when.day(item.get("created_at")),
    }


def _items(context: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    values = context.get(kind) or ()
    return [item for item in values if isinstance(item, Mapping)][:_CONTEXT_ITEMS]
