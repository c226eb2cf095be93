"""Delivery status notifications back at `bounce+<id>.<tag>@…` → the message marked bounced; a hard
bounce (or repeated soft ones) suppresses the address so we stop mailing it."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from mailrelay.core.clock import Clock
from mailrelay.core.models import DeliveryReport, OutboxStatus, RecipientStatus
from mailrelay.core.routing import bounce_recipient_id
from mailrelay.core.tokens import TokenSigner
from mailrelay.parsing import parse_dsn
from mailrelay.store import QueryInterface, StoreBackend

log = logging.getLogger("mailrelay.bounces")  # the name operators filter on

#: Soft bounces (4.x.x, or "delayed") for one address before we stop mailing it.
SOFT_LIMIT = 3


def _matching(report: DeliveryReport, recipient: str) -> RecipientStatus | None:
    for status in report.recipients:
        if status.recipient == recipient.lower():
            return status
    return report.recipients[0] if len(report.recipients) == 1 else None


def record(q: QueryInterface, outbox_id: int, report: DeliveryReport, now: datetime) -> str:
    """Apply one DSN to the message it names; returns what was done, for the log."""
    mail = q.get_mail(outbox_id)
    if mail is None:
        return f"no message {outbox_id}; ignored"
    # Anyone can mail bounce+<n>@: only a report about *our* message (its Message-ID, or
    # the very recipient) may change anything.
    if report.original_message_id and report.original_message_id != mail.message_id:
        return "report names another message; ignored"
    status = _matching(report, mail.recipient)
    if status is None:
        return "no status for our recipient; ignored"
    if not report.original_message_id and status.recipient != str(mail.recipient).lower():
        return "report names another recipient; ignored"
    if status.action not in ("failed", "delayed"):
        return f"action {status.action}: nothing to do"
    email = str(mail.recipient).lower()
    # The address is dead whichever shop mailed it: suppressed for every shop of the relay
    # ('*'), shown there as "address bounced" without naming this one (issue 10 §4). The
    # result names the message, not the address: it is logged.
    if status.hard:
        q.mark_bounced(outbox_id, status.status, now)
        q.note_bounce(email, True, status.status, now)
        q.suppress("*", email, now, f"hard bounce {status.status}")
        return f"hard bounce {status.status}: recipient of message {outbox_id} suppressed"
    soft = q.note_bounce(email, False, status.status, now)
    if status.action == "failed":
        q.mark_bounced(outbox_id, status.status, now)
    if soft >= SOFT_LIMIT:
        q.suppress("*", email, now, f"{soft} soft bounces")
        return (f"soft bounce {status.status} ({soft}): recipient of message {outbox_id}"
                " suppressed")
    return f"soft bounce {status.status} ({soft} of {SOFT_LIMIT})"


class Bouncer:
    """Processes bounces that reach the SMTP listener."""

    def __init__(self, store: StoreBackend, clock: Clock, signer: TokenSigner) -> None:
        self.store = store
        self.clock = clock
        self.signer = signer
        self.counts: dict[str, int] = {}

    async def process(self, rcpt: str, raw: bytes) -> str:
        # The listener refused unsigned and altered addresses at RCPT already; checked again
        # here so that no other path into this handler can suppress anyone (issue 10).
        outbox_id = bounce_recipient_id(rcpt, self.signer.bounce_valid)
        report = await asyncio.to_thread(parse_dsn, raw) if outbox_id is not None else None
        if outbox_id is None:
            result = "bounce address not signed by us; ignored"
        elif report is None:
            result = "not a delivery status notification; ignored"
        else:
            now = self.clock.now()
            result = await self.store.write(lambda q: record(q, outbox_id, report, now))
        kind = "hard" if result.startswith("hard") else "soft" if result.startswith(
            "soft") else "ignored"
        self.counts[kind] = self.counts.get(kind, 0) + 1
        log.info("bounce rcpt=%s result=%r", rcpt, result)
        return result


__all__ = ["SOFT_LIMIT", "Bouncer", "OutboxStatus", "record"]
