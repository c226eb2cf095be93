"""Frozen value types and the StrEnum states every part shares. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class MessageKind(StrEnum):
    """What an inbound message was addressed to (decided at RCPT time)."""

    SHIPMENT = "shipment"
    CANCEL = "cancel"
    REPLY = "reply"
    BOUNCE = "bounce"


class MessageState(StrEnum):
    """An inbound message waits as `received` until a worker has processed it."""

    RECEIVED = "received"
    PROCESSED = "processed"


class ShipmentStatus(StrEnum):
    """Why a shipment did or did not yield an invitation (SPEC: Inbound mail)."""

    SCHEDULED = "scheduled"
    DUPLICATE = "duplicate"
    CAPPED = "capped"
    SUPPRESSED = "suppressed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class InvitationStatus(StrEnum):
    """scheduled → sent, or cancelled / suppressed / duplicate / failed."""

    SCHEDULED = "scheduled"
    SENT = "sent"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    DUPLICATE = "duplicate"
    FAILED = "failed"


class OutboxStatus(StrEnum):
    """queued → sending → sent, or failed; `sending` left by a crash is re-sent on start."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BOUNCED = "bounced"


class OutboxKind(StrEnum):
    """What an outgoing message is, so its delivery result reaches the right record."""

    INVITATION = "invitation"
    REMINDER = "reminder"
    TICKET = "ticket"
    RESPONSE = "response"
    NOTICE = "notice"
    ALERT = "alert"
    #: The agents' daily list of a shop's unanswered 1–3★ reviews ([[shop]] digest).
    DIGEST = "digest"
    #: An agent reported a review: mailed to the shop's owners, who confirm or reject it.
    REPORT_PENDING = "report_pending"
    #: A shop's event as a signed JSON POST ([[shop.webhook]]); sent by its own worker.
    WEBHOOK = "webhook"


class InvitationMethod(StrEnum):
    """How the customer came to be invited (recorded on every review later)."""

    AUTOMATIC = "automatic"
    MANUAL = "manual"
    LINK = "link"
    #: The shop's generic link (/s/<shop>/write): the customer gave an email, got a one-time link.
    BASIC = "basic"
    #: The same, started from the public page's "Write a review".
    ORGANIC = "organic"
    #: The same, in an <iframe> on the shop's own site (/s/<shop>/write/embed).
    EMBEDDED = "embedded"


def verified(method: str) -> bool:
    """Reviews from our own invitations come from real orders; generated links may not."""
    return method in (InvitationMethod.AUTOMATIC, InvitationMethod.MANUAL)


#: The customer asked for the link on the shop's own form (issue 13): a proven address, no order.
REQUESTED_METHODS = frozenset({InvitationMethod.BASIC, InvitationMethod.ORGANIC,
                               InvitationMethod.EMBEDDED})


@dataclass(frozen=True)
class Product:
    """A product named in a structured trigger block."""

    sku: str | None = None
    gtin: str | None = None
    name: str | None = None
    product_url: str | None = None
    image_url: str | None = None
    brand: str | None = None
    #: The manufacturer's part number (Google's product reviews feed identifies products by it).
    mpn: str | None = None


@dataclass(frozen=True)
class ShipmentNotice:
    """What a trigger email says, as far as we could read it. Never raises to produce."""

    message_id: str | None
    sender: str | None
    subject: str | None
    customer_email: str | None
    customer_name: str | None
    reference: str | None
    reference_rule: str | None
    locale: str | None = None
    #: Where the locale came from: block, content-language, html-lang or detected (SPEC).
    locale_source: str | None = None
    send_at: datetime | None = None
    sender_name: str | None = None
    reply_to: str | None = None
    tags: tuple[str, ...] = ()
    products: tuple[Product, ...] = ()
    source: str = "headers"
    defects: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class AgentReply:
    """What an agent's reply mail says, as far as authorisation and publishing need it."""

    message_id: str | None
    from_address: str | None
    from_name: str | None
    subject: str | None
    recipients: tuple[str, ...]        # To, Cc, Delivered-To, X-Original-To (lowercased)
    in_reply_to: tuple[str, ...]       # In-Reply-To then References, newest first
    automatic: str | None              # why this is automatic mail (RFC 3834 etc.), or None
    authentication_results: tuple[str, ...]
    text: str | None                   # the text/plain part
    html: str | None                   # the text/html part
    ours: bool = False                 # carries our own X-Mailrelay headers (a loop)
    defects: tuple[str, ...] = ()
    # (name, value) of every Received, Authentication-Results and ARC-Authentication-Results
    # field, topmost first
    # (RFC 8601 section 5: their order says who wrote them).
    trace: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of an RFC 3464 delivery status notification."""

    recipient: str | None
    action: str
    status: str
    diagnostic: str | None = None

    @property
    def hard(self) -> bool:
        return self.action == "failed" and self.status.startswith("5")


@dataclass(frozen=True)
class DeliveryReport:
    """A DSN (RFC 3464) that came back to a VERP bounce address."""

    recipients: tuple[RecipientStatus, ...]
    original_message_id: str | None


@dataclass(frozen=True)
class Decision:
    """The outcome of intake for one shipment or manual invite."""

    status: ShipmentStatus
    reason: str
    invitation_id: int | None = None
    due_at: datetime | None = None
