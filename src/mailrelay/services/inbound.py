"""Inbound mail → its handler, by one {shipment, cancel, reply, bounce} → handler table.

The SMTP edge routes and stores through here, the IMAP watcher hands agent replies in here; the
decisions stay with intake, invitations, replies and bounces.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from mailrelay.config import Config
from mailrelay.core.clock import Clock
from mailrelay.core.models import MessageKind
from mailrelay.core.relays import LEASE
from mailrelay.core.routing import Route
from mailrelay.core.tokens import TokenSigner
from mailrelay.services.bounces import Bouncer
from mailrelay.services.intake import (
    Dispatch,
    HandOver,
    InBatch,
    Intake,
    RawHandler,
    process_cancel,
    process_shipment,
)
from mailrelay.services.replies import Replier, ReplyResult
from mailrelay.store import InboundMessage, StoreBackend


def dispatch_table(signer: TokenSigner, *, reply: RawHandler | None = None,
                   bounce: RawHandler | None = None) -> Dispatch:
    """Each kind of stored message → what handles it. Triggers and cancellations are parsed and
    written in intake's batches; replies and bounces go whole to their services (left out when
    not given: intake then marks them unhandled)."""
    table: dict[str, InBatch | HandOver] = {
        MessageKind.SHIPMENT: InBatch(partial(process_shipment, signer=signer)),
        MessageKind.CANCEL: InBatch(process_cancel),
    }
    if reply is not None:
        table[MessageKind.REPLY] = HandOver(reply)
    if bounce is not None:
        table[MessageKind.BOUNCE] = HandOver(bounce)
    return table


class Inbound:
    """The way in for every inbound message, over intake's durable receipt and worker."""

    def __init__(
        self, config: Config, store: StoreBackend, signer: TokenSigner, clock: Clock, *,
        replier: Replier, bouncer: Bouncer, on_outbox: Callable[[], None],
        on_scheduled: Callable[[datetime], None] | None = None,
        busy: Callable[[], bool] | None = None, on_progress: Callable[[], None] | None = None,
        relay: str | None = None, lease: timedelta = LEASE,
    ) -> None:
        self.config = config
        self.replier = replier
        self.bouncer = bouncer
        #: Told when a reply may have queued mail (a customer email, a notice to the agent).
        self.on_outbox = on_outbox
        self.intake = Intake(
            config, store, signer, clock,
            dispatch=dispatch_table(signer, reply=self._reply_by_smtp, bounce=self._bounce),
            on_scheduled=on_scheduled, busy=busy, on_progress=on_progress, relay=relay,
            lease=lease)

    def route(self, address: str) -> Route | None:
        """Where an RCPT address leads; None when it is not ours."""
        return self.intake.recipients.route(address)

    async def receive(self, peer: str, mail_from: str, routes: list[Route],
                      raw: bytes) -> list[int | None]:
        """Store the message once per route; returns when it is on disk (then answer 250)."""
        return await self.intake.receive(peer, mail_from, routes, raw)

    async def reply_by_imap(self, raw: bytes) -> ReplyResult:
        """An agent reply fetched by the IMAP watcher."""
        result = await self.replier.process(raw, source="imap")
        self.on_outbox()
        return result

    async def _reply_by_smtp(self, msg: InboundMessage) -> str:
        # Authentication-Results are believed only from the MTA in front (issue 10 §3).
        result = await self.replier.process(
            msg.raw, source="smtp", envelope_sender=msg.mail_from,
            trusted=self.config.smtp.trusts(msg.peer))
        self.on_outbox()  # a customer email or a notice may be waiting in the outbox
        return f"{result.outcome} {result.reason}"

    async def _bounce(self, msg: InboundMessage) -> str:
        return await self.bouncer.process(msg.rcpt, msg.raw)
