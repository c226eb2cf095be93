"""Due invitations and reminders → rendered mail in the outbox; delivery results and opt-outs.

It never sends: `delivery` does. Rendering happens before storing, so a resend is identical.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import jinja2

from mailrelay.config import Config, ShopConfig
from mailrelay.core.clock import Clock
from mailrelay.core.models import InvitationStatus, OutboxKind, OutboxStatus, ShipmentStatus
from mailrelay.core.tokens import TokenSigner
from mailrelay.render import RenderedMail, Templates, invitation_mail
from mailrelay.services.links import review_url, unsubscribe_url
from mailrelay.services.outbox import envelope_sender
from mailrelay.store import (
    SUPPRESSION_TEXT,
    DueInvitation,
    InvitationRow,
    NewMail,
    OutboxRow,
    Queries,
    Store,
)

log = logging.getLogger("mailrelay.invitations")  # the name operators filter on


@dataclass(frozen=True)
class PendingMail:
    invitation: DueInvitation
    kind: OutboxKind
    mail: RenderedMail


class Inviter:
    """Turns due invitations and reminders into outbox rows."""

    def __init__(self, config: Config, store: Store, templates: Templates, signer: TokenSigner,
                 clock: Clock, *, batch_size: int = 500) -> None:
        self.config = config
        self.store = store
        self.templates = templates
        self.signer = signer
        self.clock = clock
        self.batch_size = batch_size
        self.unrenderable: list[tuple[int, OutboxKind, str]] = []

    async def queue_due(self, max_batches: int | None = None) -> int:
        """Render and store due invitations and reminders; returns how many were queued.

        `max_batches` lets the dispatcher interleave rendering with sending, so a large
        backlog starts leaving at once instead of after everything is rendered.
        """
        total = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            batches += 1
            now = self.clock.now()
            invitations = await self.store.aread(
                partial(Queries.due_invitations, now=now, limit=self.batch_size))
            reminders = await self.store.aread(
                partial(Queries.due_reminders, now=now, limit=self.batch_size))
            if not invitations and not reminders:
                return total
            pending = await asyncio.to_thread(self._render_all, invitations, reminders, now)
            await self._record_unrenderable()
            results = await asyncio.gather(
                *(self.store.write(partial(self._enqueue, pending=p, now=now))
                  for p in pending),
                return_exceptions=True,
            )
            for item, result in zip(pending, results, strict=True):
                if isinstance(result, BaseException):
                    log.error("invitation=%s %s could not be queued: %r",
                              item.invitation.id, item.kind, result)
                    # Leave a record instead of retrying a broken row forever.
                    await self.store.write(partial(
                        Queries.set_invitation_status, invitation_id=item.invitation.id,
                        status=InvitationStatus.FAILED,
                        reason=f"could not be queued: {result!r}"))
                elif result:
                    total += 1
            if len(invitations) < self.batch_size and len(reminders) < self.batch_size:
                return total
        return total

    async def _record_unrenderable(self) -> None:
        failures, self.unrenderable = self.unrenderable, []
        for inv_id, kind, error in failures:
            if kind == OutboxKind.INVITATION:
                await self.store.write(partial(
                    Queries.set_invitation_status, invitation_id=inv_id,
                    status=InvitationStatus.FAILED, reason=f"cannot be rendered: {error}"))
            else:
                await self.store.write(partial(Queries.mark_reminder_queued,
                                               invitation_id=inv_id))

    async def queue_one(self, invitation_id: int) -> int | None:
        """Render one scheduled invitation now (`send-now`); returns its outbox id."""
        now = self.clock.now()
        row = await self.store.aread(lambda q: q.unqueued_invitation(invitation_id))
        if row is not None:
            pending = self._render_all([row], [], now)
            await self._record_unrenderable()
            for item in pending:
                await self.store.write(partial(self._enqueue, pending=item, now=now))
        current = await self.store.aread(lambda q: q.get_invitation(invitation_id))
        if current is None or current.status != InvitationStatus.SCHEDULED:
            return None
        return current.outbox_id

    def _render_all(self, invitations: list[DueInvitation], reminders: list[DueInvitation],
                    now: datetime) -> list[PendingMail]:
        out: list[PendingMail] = []
        for kind, rows in ((OutboxKind.INVITATION, invitations),
                           (OutboxKind.REMINDER, reminders)):
            for row in rows:
                shop = self.config.shop(row.shop)
                if shop is None:
                    log.warning("invitation=%s shop=%s is no longer configured; left as is",
                                row.id, row.shop)
                    continue
                try:
                    mail = self.render(shop, row, kind, now)
                except (ValueError, jinja2.TemplateError) as exc:
                    # One bad address or template must not hold back the rest of the batch.
                    log.error("invitation=%s %s cannot be rendered: %s", row.id, kind, exc)
                    self.unrenderable.append((row.id, kind, str(exc)))
                    continue
                out.append(PendingMail(row, kind, mail))
        return out

    def render(self, shop: ShopConfig, row: DueInvitation, kind: OutboxKind,
               now: datetime) -> RenderedMail:
        return invitation_mail(
            self.templates, self.config, shop, purpose=str(kind),
            to_email=row.customer_email, to_name=row.customer_name,
            locale=row.locale, reference=row.reference,
            review_url=review_url(self.config, row.token),
            unsubscribe_url=unsubscribe_url(self.config, self.signer, row.token),
            products=row.products, now=now,
            extra_headers={"X-Mailrelay-Invitation": str(row.id)},
        )

    def _enqueue(self, q: Queries, pending: PendingMail, now: datetime) -> bool:
        inv = pending.invitation
        shop = self.config.shop(inv.shop)
        if shop is None:
            return False
        if pending.kind == OutboxKind.REMINDER and not q.mark_reminder_queued(inv.id):
            return False  # cancelled (review, unsubscribe) since we read it
        suppressed_by = q.suppression(shop.id, inv.customer_email)
        if suppressed_by is not None:
            if pending.kind == OutboxKind.INVITATION:
                reason = ("customer unsubscribed before sending" if suppressed_by ==
                          "unsubscribed" else SUPPRESSION_TEXT[suppressed_by])
                q.set_invitation_status(inv.id, InvitationStatus.SUPPRESSED, reason)
                if inv.shipment_id:  # its shipment says so too (issue 10 §4)
                    q.set_shipment_status(inv.shipment_id, ShipmentStatus.SUPPRESSED, reason)
            return False
        try:
            outbox_id = q.enqueue(NewMail(
                kind=pending.kind, shop=shop.id, recipient=pending.mail.to,
                envelope_from=envelope_sender(shop), subject=pending.mail.subject,
                message_id=pending.mail.message_id, raw=pending.mail.raw, created_at=now,
                due_at=now, invitation_id=inv.id))
        except sqlite3.IntegrityError:
            return False  # already queued by an earlier pass (one mail per kind)
        if pending.kind == OutboxKind.INVITATION and not q.attach_invitation_mail(
            inv.id, outbox_id
        ):
            q.finish_mail(outbox_id, OutboxStatus.CANCELLED, now, "invitation no longer scheduled")
            return False
        return True


def record_delivery(config: Config, q: Queries, mail: OutboxRow, status: OutboxStatus,
                    now: datetime, error: str | None) -> None:
    """Carry a delivery result over to the invitation it belongs to (inside the writer)."""
    inv_id = mail.invitation_id
    if not inv_id:
        return
    if mail.kind == OutboxKind.INVITATION:
        if status == OutboxStatus.SENT:
            shop = config.shop(mail.shop) if mail.shop else None
            after = shop.reminder_after if shop else None
            q.invitation_mail_sent(inv_id, now, now + after if after else None)
        elif status == OutboxStatus.FAILED:
            q.set_invitation_status(inv_id, InvitationStatus.FAILED, error)
    elif mail.kind == OutboxKind.REMINDER and status == OutboxStatus.SENT:
        q.reminder_sent(inv_id, now)


def unsubscribe(q: Queries, invitation: InvitationRow, now: datetime) -> int:
    """Suppress the address for the shop and cancel what is pending; returns cancelled count."""
    shop, email = invitation.shop, invitation.customer_email
    if not email:
        return 0  # erased by retention or `forget`: nothing left to suppress
    q.suppress(shop, email, now, f"unsubscribe link of invitation {invitation.id}")
    cancelled = 0
    for row in q.scheduled_invitations(shop, email=email):
        if q.cancel_invitation(row.id, "customer unsubscribed"):
            cancelled += 1
            if row.shipment_id:
                q.set_shipment_status(row.shipment_id, ShipmentStatus.SUPPRESSED,
                                      "customer unsubscribed")
    cancelled += q.cancel_reminders_of(shop, email)
    return cancelled
