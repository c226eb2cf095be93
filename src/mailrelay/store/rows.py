"""The rows the store takes and returns: frozen dataclasses, one per kind of row.

Plain data; no SQL here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailrelay.core.models import Product


@dataclass(frozen=True)
class InboundMessage:
    """A raw inbound message as stored by the listener, waiting for a worker."""

    id: int
    received_at: datetime
    shop: str
    kind: str
    rcpt: str
    mail_from: str
    message_id: str | None
    raw: bytes
    peer: str = ""  # "ip:port" of the SMTP client


@dataclass(frozen=True)
class NewMessage:
    """What the listener hands to the store for one accepted recipient."""

    received_at: datetime
    peer: str
    mail_from: str
    rcpt: str
    shop: str
    kind: str
    message_id: str | None
    dedupe_key: str
    raw: bytes
    #: The relay that accepted it: its intake processes it; another only after the lease.
    relay: str | None = None


@dataclass(frozen=True)
class Erasure:
    """What `Queries.forget` erased: rows per table, and the Message-IDs of the outgoing mail
    it emptied (their delivered copies in a Maildir outbox go too)."""

    counts: dict[str, int]
    message_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """What `Queries.decision_facts` found (ids of the rows that decide a candidate's fate)."""

    reference_invitation: int | None
    reference_shipment: int | None
    suppressed: bool
    recent_invitation: int | None
    #: Why `suppressed`: "bounced", "unsubscribed" or "forgotten" (see `Queries.suppression`).
    suppressed_by: str | None = None



# Columns the store keeps as text stay text here: `*_at` times are UTC ISO-8601 strings (as
# `to_iso` wrote them), states are the `StrEnum` values' text. Rows read are frozen; what goes
# in (`New…`) is not: a frozen dataclass's __init__ costs three times as much, and intake
# builds two of them per trigger mail (bench/intake_path.py).


@dataclass(frozen=True, slots=True)
class InvitationRow:
    """One `invitations` row: a customer to invite for one order (or one manual link)."""

    id: int
    shop: str
    shipment_id: int | None
    customer_email: str
    customer_name: str | None
    reference: str | None
    locale: str | None
    method: str
    status: str
    reason: str | None
    token: str
    created_at: str
    due_at: str | None
    sent_at: str | None
    reminder_due_at: str | None
    review_id: int | None
    outbox_id: int | None
    reminder_sent_at: str | None


@dataclass(frozen=True, slots=True)
class DueInvitation(InvitationRow):
    """An invitation (or its reminder) to render, with what its shipment's trigger block said
    about it: the products, and the From display name and Reply-To (None: the shop's own)."""

    products: list[dict[str, Any]]
    sender_name: str | None = None
    reply_to: str | None = None


@dataclass(slots=True)
class NewInvitation:
    """What intake hands the store for one invitation; `id` only when allotted before."""

    shop: str
    shipment_id: int | None
    customer_email: str
    customer_name: str | None
    reference: str | None
    locale: str
    method: str
    status: str
    token: str
    created_at: datetime
    due_at: datetime
    sent_at: datetime | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """One review with its current public response (None while unanswered) and its tags."""

    id: int
    shop: str
    invitation_id: int | None
    method: str
    stars: int
    title: str | None
    text: str | None
    reviewer_name: str | None
    customer_email: str | None
    reference: str | None
    locale: str | None
    created_at: str
    updated_at: str | None
    edits: int
    reported: bool
    report_reason: str | None
    reported_at: str | None
    response_id: int | None
    first_response_at: str | None
    ticket_state: str | None
    response: str | None
    responded_at: str | None
    response_author: str | None
    response_source: str | None
    tags: list[str]


@dataclass(slots=True)
class ReviewText:
    """What a customer writes on the review form (a first submit or an edit)."""

    stars: int
    title: str | None
    text: str | None
    reviewer_name: str | None


@dataclass(slots=True)
class NewReview:
    """A first submit of the review form for one invitation."""

    shop: str
    invitation_id: int
    method: str
    text: ReviewText
    customer_email: str
    reference: str | None
    locale: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ResponseRow:
    """One public response to a review; a replaced one keeps `replaced_at` (the history)."""

    id: int
    review_id: int
    body: str
    author: str | None
    source: str | None
    created_at: str
    message_id: str | None
    emailed: int  # 0 or 1, as stored (and as `reviews show` prints it)
    replaced_at: str | None


@dataclass(frozen=True, slots=True)
class NoteRow:
    """An internal note on a review (agents only, never public)."""

    id: int
    review_id: int
    body: str
    author: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One outgoing message as stored, rendered, before it is sent (and after)."""

    id: int
    kind: str
    shop: str | None
    invitation_id: int | None
    recipient: str
    envelope_from: str | None
    subject: str | None
    message_id: str
    raw: bytes
    status: str
    attempts: int
    created_at: str
    due_at: str
    claimed_at: str | None
    sent_at: str | None
    last_error: str | None
    review_id: int | None
    bounced_at: str | None
    bounce_status: str | None
    #: The relay of the latest claim (`[store] relay_id`); None before any claim.
    claimed_by: str | None = None


@dataclass(frozen=True, slots=True)
class MailListing:
    """An outbox row as `mailrelay outbox` lists it: without the message itself."""

    id: int
    kind: str
    shop: str | None
    recipient: str
    subject: str | None
    message_id: str
    status: str
    attempts: int
    due_at: str
    sent_at: str | None
    last_error: str | None
    #: The relay of the latest claim: which one holds a message in `sending` (issue 15).
    claimed_by: str | None = None


@dataclass(slots=True)
class NewMail:
    """A rendered message for the outbox. `envelope_from` may hold `{id}`: the store fills in
    the row id (VERP)."""

    kind: str
    shop: str
    recipient: str
    envelope_from: str
    subject: str
    message_id: str
    raw: bytes
    created_at: datetime
    due_at: datetime
    invitation_id: int | None = None
    review_id: int | None = None


@dataclass(frozen=True, slots=True)
class ShipmentRow:
    """One trigger mail read as a shipment, with why it did or did not yield an invitation."""

    id: int
    message_row_id: int | None
    shop: str
    received_at: str
    message_id: str | None
    sender: str | None
    customer_email: str | None
    customer_name: str | None
    reference: str | None
    reference_rule: str | None
    locale: str | None
    send_at: str | None
    tags: list[str]
    products: list[dict[str, Any]]
    source: str | None
    defects: list[str]
    status: str
    reason: str
    sender_name: str | None
    reply_to: str | None


@dataclass(slots=True)
class NewShipment:
    """What intake read from one trigger mail, and its decision, for the `shipments` table."""

    message_row_id: int
    shop: str
    received_at: datetime
    message_id: str | None
    sender: str | None
    customer_email: str | None
    customer_name: str | None
    reference: str | None
    reference_rule: str | None
    locale: str | None
    send_at: datetime | None
    tags: tuple[str, ...]
    products: tuple[Product, ...]
    source: str
    defects: tuple[str, ...]
    status: str
    reason: str
    sender_name: str | None = None
    reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyKeyRow:
    """The key in one agent's `reply+<key>` address for one review's ticket."""

    key: str
    review_id: int
    agent: str
    created_at: str
    ticket_message_id: str | None


@dataclass(frozen=True, slots=True)
class ReplyRow:
    """What became of one agent reply (recorded once per dedupe key)."""

    id: int
    received_at: str
    source: str
    dedupe_key: str
    message_id: str | None
    from_address: str | None
    review_id: int | None
    outcome: str
    reason: str | None


@dataclass(slots=True)
class NewReply:
    """An agent reply's outcome, to record under its dedupe key."""

    received_at: datetime
    source: str
    dedupe_key: str
    message_id: str | None
    from_address: str | None
    review_id: int | None
    outcome: str
    reason: str


@dataclass(frozen=True, slots=True)
class ImapSeenRow:
    """An IMAP message the watcher has handled, and the folder it goes (or went) to."""

    mailbox: str
    uidvalidity: int
    uid: int
    dedupe_key: str | None
    folder: str | None
    seen_at: str | None
    moved: int


@dataclass(frozen=True, slots=True)
class RatingSummary:
    """A shop's public (not reported) reviews: how many, their average, stars "1".."5"."""

    count: int
    average: float | None
    distribution: dict[str, int]


@dataclass(frozen=True, slots=True)
class ShopStats:
    """The numbers `mailrelay stats` prints for one shop (SPEC "Operators (issue 9)").

    `reviews` and what follows count the public page's reviews; `reviews_hidden` the reported
    and forgotten ones left out. `conversion` is `reviews_from_invitations` (public reviews of
    the invitations mailed) over `invitations_sent`. The response rate and the median count
    people's responses; `auto_responses` the reviews answered automatically.
    """

    shop: str
    shipments: dict[str, int]
    invitations_sent: int
    reviews: int
    reviews_by_method: dict[str, int]
    reviews_from_invitations: int
    conversion: float | None
    stars: dict[str, int]
    average: float | None
    response_rate: float | None
    median_first_response_s: float | None
    auto_responses: int
    reviews_hidden: int


@dataclass(frozen=True, slots=True)
class EarlierReview:
    id: int
    shop: str
    stars: int
    title: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class EarlierInvitation:
    id: int
    shop: str
    reference: str | None
    status: str
    sent_at: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class EarlierReply:
    review_id: int
    body: str
    created_at: str


@dataclass(frozen=True, slots=True)
class MailStop:
    """Why mail to the customer is stopped: the kind, and how tickets show it."""

    kind: str
    mail: str


@dataclass(frozen=True, slots=True)
class CustomerContext:
    """A customer's other recent reviews, invitations and replies at one shop, newest first,
    and whether mail to them is stopped (tickets and `reviews show`)."""

    reviews: list[EarlierReview] = field(default_factory=list)
    invitations: list[EarlierInvitation] = field(default_factory=list)
    replies: list[EarlierReply] = field(default_factory=list)
    status: list[MailStop] = field(default_factory=list)


@dataclass(slots=True)
class NewProductReview:
    """A customer's rating of one product of the order, as the review form gave it; `n` is
    the product's 1-based position in the trigger's list, the rest the product as named."""

    n: int
    stars: int
    text: str | None
    sku: str | None = None
    name: str | None = None
    url: str | None = None
    image: str | None = None
    gtin: str | None = None
    mpn: str | None = None
    brand: str | None = None


@dataclass(frozen=True, slots=True)
class ProductReviewRow:
    """One `product_reviews` row: a product's rating within one service review."""

    id: int
    review_id: int
    shop: str
    sku: str | None
    n: int
    name: str | None
    url: str | None
    image: str | None
    gtin: str | None
    mpn: str | None
    brand: str | None
    stars: int
    text: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class ProductReviewListing:
    """A product review with what pages and feeds show of its service review: the reviewer's
    name, how the review came (`method`), when it was written and its public response."""

    product: ProductReviewRow
    reviewer_name: str | None
    method: str
    locale: str | None
    review_created_at: str
    review_updated_at: str | None
    response: str | None
    responded_at: str | None
    tags: list[str]
    #: The order it reviews, and whether it is hidden (reported or forgotten): for exports.
    reference: str | None = None
    reported: bool = False


@dataclass(frozen=True, slots=True)
class ProductFigures:
    """One product of a shop with the figures of its public product reviews: how many, their
    average, stars "1".."5", the newest one's time. Name, url, image and identifiers are the
    newest ones the shop's triggers gave."""

    shop: str
    sku: str
    name: str | None
    url: str | None
    image: str | None
    gtin: str | None
    mpn: str | None
    brand: str | None
    count: int
    average: float | None
    distribution: dict[str, int]
    last_reviewed_at: str | None


@dataclass(frozen=True, slots=True)
class UserRow:
    """A console account: its address, hashed password (None until the link was used) and
    TOTP secret (None: no second factor), with its shops and roles."""

    id: int
    email: str
    password_hash: str | None
    totp_secret: str | None
    created_at: str
    password_set_at: str | None
    roles: dict[str, str] = field(default_factory=dict)  # shop id → "owner" | "agent"


@dataclass(frozen=True, slots=True)
class UserListing:
    """One membership as `mailrelay user list` shows it."""

    email: str
    shop: str
    role: str
    password_set: bool
    totp: bool
    created_at: str



@dataclass(frozen=True, slots=True)
class ReportRow:
    """An agent's report of a review (issue 14): pending until an owner confirms (the review
    is hidden, `category` the public reason) or rejects it (it stays public)."""

    id: int
    review_id: int
    shop: str
    reporter: str
    reason: str
    created_at: str
    state: str  # "pending" | "confirmed" | "rejected"
    decided_by: str | None
    decided_at: str | None
    decision_note: str | None
    category: str | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit trail: when, what, by whom, and its details."""

    at: str
    action: str
    actor: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InboxFilter:
    """What the console's inbox narrows to: a star count, a tag, a product SKU, a phrase."""

    stars: int | None = None
    tag: str | None = None
    sku: str | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class InboxPage:
    """One page of reviews awaiting an answer, and how many wait per star count (the other
    filters applied, the star filter not)."""

    reviews: list[ReviewRow]
    waiting_by_stars: dict[int, int]

    @property
    def waiting(self) -> int:
        return sum(self.waiting_by_stars.values())
