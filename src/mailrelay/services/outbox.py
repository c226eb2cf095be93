"""How a rendered message enters the outbox: its one row, with the VERP envelope sender, and
what every service that renders mail in batches holds. Delivery takes it from there.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta

from mailrelay.config import Config, ShopConfig
from mailrelay.core.clock import Clock
from mailrelay.core.errors import DuplicateKey
from mailrelay.core.models import OutboxKind
from mailrelay.core.relays import LEASE, local_relay_id
from mailrelay.core.routing import unsigned_bounce_address
from mailrelay.core.tokens import TokenSigner
from mailrelay.render import RenderedMail, Templates
from mailrelay.store import NewMail, QueryInterface, StoreBackend


@dataclass(eq=False, repr=False)
class MailProducer:
    """What a service that renders mail into the outbox in batches works with (identity
    equality and the plain object repr, as before it was a dataclass), and the relay whose
    holds the rows it renders carry (issue 15)."""

    config: Config
    store: StoreBackend
    templates: Templates
    signer: TokenSigner
    clock: Clock
    _: KW_ONLY
    batch_size: int = 100
    relay: str = field(default_factory=local_relay_id)
    lease: timedelta = LEASE


def enqueue_mail(q: QueryInterface, shop: ShopConfig, kind: OutboxKind, mail: RenderedMail,
                 now: datetime, *, review_id: int | None = None,
                 invitation_id: int | None = None) -> int | None:
    """Store one rendered message for delivery; None when that mail is already queued."""
    try:
        return q.enqueue(NewMail(
            kind=kind, shop=shop.id, recipient=mail.to,
            envelope_from=unsigned_bounce_address(shop.reply_domain), subject=mail.subject,
            message_id=mail.message_id, raw=mail.raw, created_at=now, due_at=now,
            invitation_id=invitation_id, review_id=review_id))
    except DuplicateKey:
        return None
