"""Webhooks: sends the queued events of `services.events` as signed JSON POSTs (at least
once, with the mail's backoff and give-up), on their own worker and at their own pace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

from mailrelay.config import Config, WebhookConfig
from mailrelay.core.clock import Clock
from mailrelay.core.errors import PermanentFailure
from mailrelay.services.delivery import CLAIM_LEASE, Delivery, Sender
from mailrelay.services.events import SIGNATURE_HEADER, signature
from mailrelay.store import OutboxRow, StoreBackend

#: POSTs per minute across all webhooks: a burst of events drains in seconds, not a flood.
WEBHOOK_RATE_PER_MINUTE = 600


def webhook_of(config: Config, shop_id: str | None, url: str) -> WebhookConfig | None:
    """The shop's webhook for `url` as configured now (None: removed since it was queued)."""
    shop = config.shop(shop_id) if shop_id else None
    return next((hook for hook in shop.webhooks if hook.url == url), None) if shop else None


class Poster(Protocol):
    """The HTTP side (edges.webhook_client.WebhookClient)."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str],
                   time_limit: float) -> str: ...


class WebhookDelivery(Delivery):
    """Sends queued webhook rows, signed at send time, with the mail's backoff and give-up.

    Its own worker and its own pace: a slow receiver never holds up an invitation."""

    channel = "webhook delivery"
    webhooks = True

    def __init__(self, config: Config, store: StoreBackend, client: Poster, clock: Clock, *,
                 rate_per_minute: int = WEBHOOK_RATE_PER_MINUTE,
                 on_progress: Callable[[], None] | None = None,
                 relay: str | None = None, lease: timedelta = CLAIM_LEASE) -> None:
        super().__init__(store, None, clock, rate_per_minute=rate_per_minute, sign_sender=str,
                         on_progress=on_progress, relay=relay, lease=lease)
        self.config = config
        self.client = client

    async def _transmit(self, mail: OutboxRow, transport: Sender | None = None) -> Any:
        hook = webhook_of(self.config, mail.shop, mail.recipient)
        if hook is None:
            raise PermanentFailure(
                f"shop {mail.shop} has no webhook {mail.recipient or '(erased)'} any more: it "
                "was removed from the config after this event was queued")
        if not mail.raw:
            raise PermanentFailure("the event was erased (privacy) before it was sent")
        timestamp = int(self.clock.now().timestamp())
        headers = {
            SIGNATURE_HEADER: signature(hook.secret, timestamp, mail.raw),
            "Mailrelay-Event": str(mail.subject or ""),
            "Mailrelay-Event-Id": mail.message_id,
        }
        return await self.client.post(mail.recipient, mail.raw, headers,
                                      hook.timeout.total_seconds())
