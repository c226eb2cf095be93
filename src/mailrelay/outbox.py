"""How a rendered message enters the outbox: its envelope sender and its row.

Shared by every service that sends mail; delivery takes it from there.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime

from .config import ShopConfig
from .models import OutboxKind
from .render import RenderedMail
from .store import Queries, to_iso

# The two address forms we hand out: reply+<key> (tickets' Reply-To) and bounce+<outbox id>
# (the VERP envelope sender). Defined once; the listener, replies and bounces read them back.
_REPLY_LOCAL = re.compile(r"^reply\+([a-z0-9]{20,64})$")
_BOUNCE_LOCAL = re.compile(r"^bounce\+([0-9]{1,18})$")


def reply_key_of(local: str) -> str | None:
    """The key of a `reply+<key>` local part (case-insensitive), else None."""
    match = _REPLY_LOCAL.match(local.lower())
    return match.group(1) if match else None


def bounce_id_of(local: str) -> int | None:
    """The outbox id of a `bounce+<id>` local part, else None."""
    match = _BOUNCE_LOCAL.match(local.lower())
    return int(match.group(1)) if match else None


def envelope_sender(shop: ShopConfig) -> str:
    """The VERP envelope sender (`bounce+<outbox id>@<reply domain>`): a DSN that comes back
    names the exact message it is about. `{id}` is filled in by the store on insert."""
    return f"bounce+{{id}}@{shop.reply_domain}"


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
