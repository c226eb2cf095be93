"""Invitations: the facts that decide one, its schedule, its mail and its reminder.

SQL only; the lifecycle is decided in services.invitations.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Any

from mailrelay.core.models import (
    InvitationStatus,
    OutboxKind,
    OutboxStatus,
    ShipmentStatus,
)
from mailrelay.store import channels
from mailrelay.store.addresses import address_hash
from mailrelay.store.connection import Bound, Row
from mailrelay.store.rows import DecisionFacts, DueInvitation, InvitationRow, NewInvitation
from mailrelay.store.suppressions import SUPPRESSION_SQL
from mailrelay.store.timestamps import from_iso, to_iso

_DECISION_FACTS = (
    "SELECT"  # noqa: S608 - our own constant, no input
    " (SELECT id FROM invitations WHERE shop = ?1 AND reference = ?2),"
    " (SELECT id FROM shipments WHERE shop = ?1 AND reference = ?2 AND status != ?3"
    "  ORDER BY id LIMIT 1),"
    f" ({SUPPRESSION_SQL.format(shop='?1', email='?4', hashed='?5')}),"
    " (SELECT id FROM invitations WHERE shop = ?1 AND customer_email = ?4"
    "  AND created_at >= ?6 AND status IN (?7, ?8) ORDER BY id DESC LIMIT 1)"
)


#: The columns of `invitations` in `InvitationRow` order: SELECT them, then `InvitationRow(*row)`.
_INVITATION_FIELDS = tuple(f.name for f in fields(InvitationRow))
INVITATION_COLUMNS = ", ".join(_INVITATION_FIELDS)
_SELECT_INVITATION = f"SELECT {INVITATION_COLUMNS} FROM invitations WHERE "  # noqa: S608
#: Invitations with their shipment's products, sender name and Reply-To, to render; the
#: caller adds the condition.
_SELECT_DUE = (
    "SELECT "  # noqa: S608 - our own constant, no input
    + ", ".join(f"i.{f.name}" for f in fields(InvitationRow))
    + ", s.products, s.sender_name, s.reply_to"
    " FROM invitations i LEFT JOIN shipments s ON s.id = i.shipment_id WHERE "
)


def _due(row: Row) -> DueInvitation:
    """A `_SELECT_DUE` row: the invitation, then its shipment's products (JSON), sender name
    and Reply-To."""
    products, sender_name, reply_to = row[-3:]
    return DueInvitation(**dict(zip(_INVITATION_FIELDS, row, strict=False)),
                         products=json.loads(products or "[]"), sender_name=sender_name,
                         reply_to=reply_to)


#: The next invitation id: SQLite's one writer may count (nothing inserts meanwhile); on
#: PostgreSQL, relays insert side by side, so the id comes from the column's own sequence.
_NEXT_ID = {
    "sqlite": "SELECT COALESCE(MAX(id), 0) + 1 FROM invitations",
    "postgresql": "SELECT nextval(pg_get_serial_sequence('invitations', 'id'))",
}


class InvitationQueries(Bound):
    """Invitations: the facts that decide one, its schedule, its mail and its reminder."""

    def decision_facts(
        self, shop: str, reference: str | None, email: str, since: datetime
    ) -> DecisionFacts:
        """Everything `invitations.decide` looks up, in one statement: the invitation and the
        earliest non-rejected shipment holding `reference` (none when it is None), whether
        `email` is suppressed, and its newest live invitation created since `since`."""
        row = self.conn.execute(
            _DECISION_FACTS,
            (shop, reference, ShipmentStatus.REJECTED, email, address_hash(email),
             to_iso(since), InvitationStatus.SCHEDULED, InvitationStatus.SENT),
        ).fetchone()
        return DecisionFacts(row[0], row[1], row[2] is not None, row[3], row[2])

    def next_invitation_id(self) -> int:
        """The id the next invitation gets when inserted with it (inside the writer only:
        nothing else inserts between this and that INSERT)."""
        return int(self.conn.execute(_NEXT_ID[self.backend]).fetchone()[0])

    def _one_invitation(self, condition: str, params: tuple[object, ...]) -> InvitationRow | None:
        row = self.conn.execute(_SELECT_INVITATION + condition, params).fetchone()
        return InvitationRow(*row) if row else None

    def invitation_for_reference(self, shop: str, reference: str) -> InvitationRow | None:
        return self._one_invitation("shop = ? AND reference = ?", (shop, reference))

    def insert_invitation(self, new: NewInvitation) -> int:
        row: dict[str, Any] = {} if new.id is None else {"id": new.id}
        row.update(
            shop=new.shop, shipment_id=new.shipment_id, customer_email=new.customer_email,
            customer_name=new.customer_name, reference=new.reference, locale=new.locale,
            method=new.method, status=new.status, reason=None, token=new.token,
            created_at=to_iso(new.created_at), due_at=to_iso(new.due_at),
            sent_at=to_iso(new.sent_at))
        invitation_id = self._insert("invitations", row)
        if new.status == InvitationStatus.SCHEDULED and new.due_at <= new.created_at:
            # Due at once (`invite --delay 0s` from the CLI, another relay's intake): every
            # relay's dispatcher looks at its commit, not at its next poll.
            self._nudge(channels.DISPATCH)
        return invitation_id

    def get_invitation(self, invitation_id: int) -> InvitationRow | None:
        return self._one_invitation("id = ?", (invitation_id,))

    def invitation_by_token(self, token: str) -> InvitationRow | None:
        return self._one_invitation("token = ?", (token,))

    def scheduled_invitations(
        self, shop: str, reference: str | None = None, email: str | None = None
    ) -> list[InvitationRow]:
        return self._invitations_in(InvitationStatus.SCHEDULED, shop, reference, email)

    def sent_invitations(
        self, shop: str, reference: str | None = None, email: str | None = None
    ) -> list[InvitationRow]:
        return self._invitations_in(InvitationStatus.SENT, shop, reference, email)

    def _invitations_in(self, status: InvitationStatus, shop: str, reference: str | None,
                        email: str | None) -> list[InvitationRow]:
        sql = _SELECT_INVITATION + "shop = ? AND status = ?"
        args: list[Any] = [shop, status]
        if reference is not None:
            sql += " AND reference = ?"
            args.append(reference)
        if email is not None:
            sql += " AND customer_email = ?"
            args.append(email)
        return [InvitationRow(*r) for r in self.conn.execute(sql, args)]

    def cancel_invitation(self, invitation_id: int, reason: str) -> bool:
        """Cancel a scheduled invitation and any of its mail not yet handed to a server."""
        cur = self.conn.execute(
            "UPDATE invitations SET status = ?, reason = ?, reminder_due_at = NULL"
            " WHERE id = ? AND status = ?",
            (InvitationStatus.CANCELLED, reason, invitation_id, InvitationStatus.SCHEDULED),
        )
        self.cancel_queued_mail(invitation_id, reason)
        return cur.rowcount == 1

    def cancel_queued_mail(self, invitation_id: int, reason: str) -> None:
        self.conn.execute(
            "UPDATE outbox SET status = ?, last_error = ? WHERE invitation_id = ? AND status = ?",
            (OutboxStatus.CANCELLED, f"cancelled: {reason}", invitation_id, OutboxStatus.QUEUED),
        )


    def cancel_reminder(self, invitation_id: int, reason: str) -> bool:
        """Stop a sent invitation's reminder, planned or rendered and not yet handed to a
        server, and put `reason` on the invitation; False when none was pending."""
        queued = self.conn.execute(
            "UPDATE outbox SET status = ?, last_error = ? WHERE invitation_id = ? AND kind = ?"
            " AND status = ?",
            (OutboxStatus.CANCELLED, f"cancelled: {reason}", invitation_id, OutboxKind.REMINDER,
             OutboxStatus.QUEUED),
        ).rowcount
        planned = self.conn.execute(
            "UPDATE invitations SET reminder_due_at = NULL, reason = ?"
            " WHERE id = ? AND status = ? AND (reminder_due_at IS NOT NULL OR ?)",
            (reason, invitation_id, InvitationStatus.SENT, queued > 0),
        ).rowcount
        return planned == 1

    def cancel_reminders_of(self, shop: str, email: str) -> int:
        cur = self.conn.execute(
            "UPDATE invitations SET reminder_due_at = NULL"
            " WHERE shop = ? AND customer_email = ? AND reminder_due_at IS NOT NULL",
            (shop, email),
        )
        self.conn.execute(
            "UPDATE outbox SET status = ?, last_error = 'cancelled: unsubscribed'"
            " WHERE status = ? AND kind = ? AND invitation_id IN"
            " (SELECT id FROM invitations WHERE shop = ? AND customer_email = ?)",
            (OutboxStatus.CANCELLED, OutboxStatus.QUEUED, OutboxKind.REMINDER, shop, email),
        )
        return cur.rowcount

    def _select_due(self, condition: str, params: tuple[object, ...]) -> list[DueInvitation]:
        return [_due(r) for r in self.conn.execute(_SELECT_DUE + condition, params)]

    def due_invitations(self, now: datetime, limit: int, *, relay: str | None = None,
                        expired: datetime | None = None) -> list[DueInvitation]:
        """Scheduled invitations whose time has come and whose mail is not rendered yet; with
        `relay`, only those no other relay has held since `expired` (`hold_invitations`)."""
        held, args = _not_held_by_others(relay, expired)
        return self._select_due(
            f"i.status = ? AND i.outbox_id IS NULL AND i.due_at <= ?{held}"
            " ORDER BY i.due_at LIMIT ?",
            (InvitationStatus.SCHEDULED, to_iso(now), *args, limit),
        )

    def hold_invitations(self, ids: list[int], now: datetime, expired: datetime, *,
                         relay: str) -> set[int]:
        """Hold invitations for `relay` while it renders their mail (or reminder); returns the
        ids it holds: not those another relay has held since `expired`. Only saves work: the
        outbox keeps one mail per invitation and kind whoever renders it."""
        return {invitation_id for invitation_id in ids if self.conn.execute(
            "UPDATE invitations SET claimed_by = ?, claimed_at = ? WHERE id = ?"
            " AND (claimed_by IS NULL OR claimed_by = ? OR claimed_at < ?)",
            (relay, to_iso(now), invitation_id, relay, to_iso(expired)),
        ).rowcount}

    def unqueued_invitation(self, invitation_id: int) -> DueInvitation | None:
        """A scheduled invitation whose mail is not rendered yet, with its products."""
        rows = self._select_due(
            "i.id = ? AND i.status = ? AND i.outbox_id IS NULL",
            (invitation_id, InvitationStatus.SCHEDULED),
        )
        return rows[0] if rows else None

    def due_reminders(self, now: datetime, limit: int, *, relay: str | None = None,
                      expired: datetime | None = None) -> list[DueInvitation]:
        """Sent invitations without a review whose single reminder is due; with `relay`, as
        `due_invitations`."""
        held, args = _not_held_by_others(relay, expired)
        return self._select_due(
            "i.reminder_due_at IS NOT NULL AND i.reminder_due_at <= ?"
            # `+status`: keep SQLite on the reminder index; the status index would scan
            # every sent invitation (measured: 400 ms at 1M rows, 0.01 ms this way).
            f" AND +i.status = ? AND i.review_id IS NULL{held}"
            " ORDER BY i.reminder_due_at LIMIT ?",
            (to_iso(now), InvitationStatus.SENT, *args, limit),
        )

    def next_due(self) -> datetime | None:
        """The earliest moment any invitation, reminder or queued mail becomes due (webhook
        POSTs have their own timer: `next_webhook_due`)."""
        row = self.conn.execute(
            "SELECT MIN(t) FROM ("
            " SELECT MIN(due_at) AS t FROM invitations INDEXED BY idx_invitations_due"
            "  WHERE status = 'scheduled' AND outbox_id IS NULL"
            " UNION ALL SELECT MIN(reminder_due_at) FROM invitations"
            "  WHERE reminder_due_at IS NOT NULL"
            " UNION ALL SELECT MIN(due_at) FROM outbox WHERE status = 'queued'"
            "  AND kind != 'webhook')"
        ).fetchone()
        return from_iso(row[0]) if row and row[0] else None

    def set_invitation_status(self, invitation_id: int, status: InvitationStatus,
                              reason: str | None = None) -> None:
        self.conn.execute(
            "UPDATE invitations SET status = ?, reason = COALESCE(?, reason) WHERE id = ?",
            (status, reason, invitation_id),
        )

    def attach_invitation_mail(self, invitation_id: int, outbox_id: int) -> bool:
        cur = self.conn.execute(
            "UPDATE invitations SET outbox_id = ?"
            " WHERE id = ? AND outbox_id IS NULL AND status = ?",
            (outbox_id, invitation_id, InvitationStatus.SCHEDULED),
        )
        return cur.rowcount == 1

    def mark_reminder_queued(self, invitation_id: int) -> bool:
        cur = self.conn.execute(
            "UPDATE invitations SET reminder_due_at = NULL WHERE id = ?"
            " AND reminder_due_at IS NOT NULL",
            (invitation_id,),
        )
        return cur.rowcount == 1

    def invitation_mail_sent(self, invitation_id: int, now: datetime,
                             reminder_due: datetime | None) -> None:
        self.conn.execute(
            "UPDATE invitations SET status = ?, sent_at = ?, reminder_due_at = ?"
            " WHERE id = ? AND status = ?",
            (InvitationStatus.SENT, to_iso(now), to_iso(reminder_due), invitation_id,
             InvitationStatus.SCHEDULED),
        )

    def reminder_sent(self, invitation_id: int, now: datetime) -> None:
        self.conn.execute(
            "UPDATE invitations SET reminder_sent_at = ? WHERE id = ?",
            (to_iso(now), invitation_id),
        )

    def invitation_message_id(self, invitation_id: int) -> str | None:
        row = self.conn.execute(
            "SELECT message_id FROM outbox WHERE invitation_id = ? AND kind = ? LIMIT 1",
            (invitation_id, OutboxKind.INVITATION),
        ).fetchone()
        return row[0] if row else None

    def count_invitations(self, status: str | None = None) -> int:
        if status:
            row = self.conn.execute(
                "SELECT COUNT(*) FROM invitations WHERE status = ?", (status,)
            ).fetchone()
        else:
            row = self.conn.execute("SELECT COUNT(*) FROM invitations").fetchone()
        return int(row[0])


def _not_held_by_others(relay: str | None,
                        expired: datetime | None) -> tuple[str, tuple[object, ...]]:
    """The condition (and its arguments) that leaves out invitations another relay holds."""
    if relay is None:
        return "", ()
    return (" AND (i.claimed_by IS NULL OR i.claimed_by = ? OR i.claimed_at < ?)",
            (relay, to_iso(expired) if expired else ""))
