"""How a rendered message enters the outbox: its envelope sender and its row.

Shared by every service that sends mail; delivery takes it from there.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from email.utils import parseaddr

from .config import ShopConfig
from .models import OutboxKind
from .render import RenderedMail
from .store import Queries, to_iso


def envelope_sender(shop: ShopConfig) -> str:
    """The SMTP MAIL FROM of a shop's mail (a VERP bounce address once bounces are handled)."""
    return parseaddr(shop.from_address)[1]


def enqueue_mail(q: Queries, shop: ShopConfig, kind: OutboxKind, mail: RenderedMail,
                 now: datetime, *, review_id: int | None = None,
                 invitation_id: int | None = None) -> int | None:
    """Store one rendered message for delivery; None when that mail is already queued."""
    try:
        return q.enqueue({
            "kind": kind, "shop": shop.id, "invitation_id": invitation_id,
            "review_id": review_id, "recipient": mail.to,
            "envelope_from": envelope_sender(shop), "subject": mail.subject,
            "message_id": mail.message_id, "raw": mail.raw, "created_at": to_iso(now),
            "due_at": to_iso(now),
        })
    except sqlite3.IntegrityError:
        return None
