"""What each mail says, as frozen view models the caller builds from what it holds (rows,
links, a reply); render cleans and checks every value. Plain data: no I/O, no rendering.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["InvitationView", "NoticeView", "ResponseView", "ReviewView", "TicketView"]

#: Products from the trigger mail (JSON objects: "name", "sku", "productUrl", …), as given.
Products = Sequence[Mapping[str, Any]]


@dataclass(frozen=True, kw_only=True)
class InvitationView:
    """An invitation or reminder to one customer (`purpose` names the templates)."""

    purpose: str  # "invitation" or "reminder": mail/<locale>/<purpose>.*.j2
    to_email: str
    to_name: str | None
    locale: str | None
    reference: str | None
    review_url: str
    unsubscribe_url: str
    products: Products | None = ()
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    sender_name: str | None = None  # the trigger block's senderName: From's display name
    reply_to: str | None = None  # the trigger block's replyTo


@dataclass(frozen=True, kw_only=True)
class ReviewView:
    """The review a ticket shows; a response names its id, stars and title."""

    id: int | str
    stars: int  # 1 to 5; anything else is refused when rendering
    title: str | None = None
    text: str | None = None
    reviewer_name: str | None = None
    customer_email: str | None = None
    reference: str | None = None
    method: str | None = None  # how the invitation came about: "automatic", "link", …
    locale: str | None = None
    created_at: str | datetime | None = None


@dataclass(frozen=True, kw_only=True)
class TicketView:
    """A review as a ticket to one agent, answered by replying to `reply_to`.

    `context` holds the customer's other "reviews", "invitations", "replies" and "status"
    items (see templates/mail/README.md); `review_url` defaults to `public_url`.
    """

    to_email: str  # the agent
    reply_to: str  # reply+<key>@<reply domain>
    key: str
    review: ReviewView
    public_url: str
    review_url: str | None = None
    received_at: str | datetime | None = None  # when the shipment arrived, if there was one
    products: Products | None = ()
    #: The customer's ratings of products of the order: "n", "sku", "name", "stars", "text".
    product_reviews: Products | None = ()
    context: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    answered_by: str | None = None  # "auto" when the review was answered automatically
    auto_response: str | None = None
    updated: bool = False
    in_reply_to: str | None = None  # the first ticket of this review to this agent
    #: A suggested answer for the agent to edit (1–3★; services/drafts.py), or None.
    suggested_answer: str | None = None


@dataclass(frozen=True, kw_only=True)
class ResponseView:
    """The shop's published response, emailed to the customer under their invitation."""

    to_email: str
    to_name: str | None
    locale: str | None
    body: str
    review: ReviewView
    public_url: str
    in_reply_to: str | None
    references: Sequence[str] = ()


@dataclass(frozen=True, kw_only=True)
class NoticeView:
    """Why an agent's reply was not published, with what they wrote.

    `code` (the refusal's metric label) and `detail` let a template say the reason in the
    shop's language; `reason` and `explanation` are the English fallback.
    """

    to_email: str
    reason: str
    explanation: str
    original_subject: str | None
    original_text: str | None
    in_reply_to: str | None
    code: str = ""
    detail: str = ""
