"""How a rendered message enters the outbox: its envelope sender and its row.

Shared by every service that sends mail; delivery takes it from there.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import datetime

from mailrelay.config import ShopConfig
from mailrelay.core.models import OutboxKind
from mailrelay.render import RenderedMail
from mailrelay.store import NewMail, Queries

# The two address forms we hand out: reply+<key> (tickets' Reply-To) and bounce+<outbox id>.<tag>
# (the signed VERP envelope sender). Defined once; the listener, replies and bounces read them back.
_REPLY_LOCAL = re.compile(r"^reply\+([a-z0-9]{20,64})$")
_BOUNCE_LOCAL = re.compile(r"^bounce\+([0-9]{1,18})\.([a-z2-7]{16})$")
#: As stored in the outbox: the tag is added when the message is sent (`signed_sender`).
_UNSIGNED_BOUNCE_LOCAL = re.compile(r"^bounce\+([0-9]{1,18})$")


def reply_key_of(local: str) -> str | None:
    """The key of a `reply+<key>` local part (case-insensitive), else None."""
    match = _REPLY_LOCAL.match(local.lower())
    return match.group(1) if match else None


def bounce_id_of(local: str, valid: Callable[[int, str], bool]) -> int | None:
    """The outbox id of a `bounce+<id>.<tag>` local part whose tag `valid` accepts, else None.

    Unsigned `bounce+<id>` (what versions before issue 10 sent) and altered tags are refused:
    ids are sequential, so an unsigned id proves nothing about who sent the report.
    """
    match = _BOUNCE_LOCAL.match(local.lower())
    if match is None:
        return None
    outbox_id = int(match.group(1))
    return outbox_id if valid(outbox_id, match.group(2)) else None


def envelope_sender(shop: ShopConfig) -> str:
    """The VERP envelope sender as stored (`bounce+<outbox id>@<reply domain>`): a DSN that comes
    back names the exact message it is about. `{id}` is filled in by the store on insert, the
    signature by `signed_sender` when the message leaves."""
    return f"bounce+{{id}}@{shop.reply_domain}"


def signed_sender(envelope_from: str, tag: Callable[[int], str]) -> str:
    """`bounce+<id>@d` → `bounce+<id>.<tag>@d`; any other sender unchanged. Signed at send time,
    so mail queued before the upgrade leaves signed too."""
    local, at, domain = envelope_from.rpartition("@")
    match = _UNSIGNED_BOUNCE_LOCAL.match(local)
    if not at or match is None:
        return envelope_from
    return f"{local}.{tag(int(match.group(1)))}@{domain}"


def enqueue_mail(q: Queries, shop: ShopConfig, kind: OutboxKind, mail: RenderedMail,
                 now: datetime, *, review_id: int | None = None,
                 invitation_id: int | None = None) -> int | None:
    """Store one rendered message for delivery; None when that mail is already queued."""
    try:
        return q.enqueue(NewMail(
            kind=kind, shop=shop.id, recipient=mail.to, envelope_from=envelope_sender(shop),
            subject=mail.subject, message_id=mail.message_id, raw=mail.raw, created_at=now,
            due_at=now, invitation_id=invitation_id, review_id=review_id))
    except sqlite3.IntegrityError:
        return None
