"""How a rendered message enters the outbox: its one row, with the VERP envelope sender.

Shared by every service that sends mail; delivery takes it from there.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from mailrelay.config import ShopConfig
from mailrelay.core.models import OutboxKind
from mailrelay.core.routing import unsigned_bounce_address
from mailrelay.render import RenderedMail
from mailrelay.store import NewMail, Queries


def enqueue_mail(q: Queries, shop: ShopConfig, kind: OutboxKind, mail: RenderedMail,
                 now: datetime, *, review_id: int | None = None,
                 invitation_id: int | None = None) -> int | None:
    """Store one rendered message for delivery; None when that mail is already queued."""
    try:
        return q.enqueue(NewMail(
            kind=kind, shop=shop.id, recipient=mail.to,
            envelope_from=unsigned_bounce_address(shop.reply_domain), subject=mail.subject,
            message_id=mail.message_id, raw=mail.raw, created_at=now, due_at=now,
            invitation_id=invitation_id, review_id=review_id))
    except sqlite3.IntegrityError:
        return None
