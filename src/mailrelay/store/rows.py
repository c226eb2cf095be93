"""The rows the store takes and returns: frozen dataclasses, one per kind of row.

Plain data; no SQL here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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

