"""The outbox: every outgoing message, stored rendered before it is sent, and its claims.

SQL only; retries and backoff are decided in services.delivery.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime

from mailrelay.core.models import (
    InvitationStatus,
    OutboxKind,
    OutboxStatus,
)
from mailrelay.store import channels
from mailrelay.store.connection import Bound
from mailrelay.store.rows import NewMail, OutboxRow
from mailrelay.store.timestamps import from_iso, to_iso

#: The columns of `outbox` in `OutboxRow` order.
_COLUMNS = ", ".join(f.name for f in fields(OutboxRow))


class OutboxQueries(Bound):
    """The outbox: every outgoing message, stored rendered before it is sent, and its claims."""

    def enqueue(self, mail: NewMail) -> int:
        """Store a rendered message; it is sent byte-identically however often it is retried."""
        outbox_id = self._insert("outbox", {
            "status": OutboxStatus.QUEUED, "attempts": 0, "kind": mail.kind, "shop": mail.shop,
            "invitation_id": mail.invitation_id, "review_id": mail.review_id,
            "recipient": mail.recipient, "envelope_from": mail.envelope_from,
            "subject": mail.subject, "message_id": mail.message_id, "raw": mail.raw,
            "created_at": to_iso(mail.created_at), "due_at": to_iso(mail.due_at),
        })
        if "{id}" in mail.envelope_from:  # VERP: the row id is only known now
            self.conn.execute("UPDATE outbox SET envelope_from = ? WHERE id = ?",
                              (mail.envelope_from.replace("{id}", str(outbox_id)), outbox_id))
        self._nudge(channels.WEBHOOKS if mail.kind == OutboxKind.WEBHOOK else channels.DISPATCH)
        return outbox_id

    def claim_due_mail(self, now: datetime, limit: int,
                       webhooks: bool = False) -> list[OutboxRow]:
        """Claim due queued mail (or, with `webhooks`, due webhook POSTs) for sending: a
        conditional UPDATE, so no row is sent twice."""
        ids = [
            r[0]
            for r in self.conn.execute(
                "SELECT id FROM outbox WHERE status = ? AND due_at <= ? AND (kind = ?) = ?"
                " ORDER BY due_at, id LIMIT ?",
                (OutboxStatus.QUEUED, to_iso(now), OutboxKind.WEBHOOK, webhooks, limit),
            )
        ]
        claimed = []
        for outbox_id in ids:
            cur = self.conn.execute(
                "UPDATE outbox SET status = ?, claimed_at = ?, attempts = attempts + 1"
                " WHERE id = ? AND status = ?",
                (OutboxStatus.SENDING, to_iso(now), outbox_id, OutboxStatus.QUEUED),
            )
            if cur.rowcount:
                claimed.append(outbox_id)
        if not claimed:
            return []
        marks = ",".join("?" for _ in claimed)
        return [
            OutboxRow(*r)
            for r in self.conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE id IN ({marks})"  # noqa: S608
                " ORDER BY due_at, id",
                claimed,
            )
        ]

    def claim_mail(self, outbox_id: int, now: datetime) -> OutboxRow | None:
        """Claim one queued row whatever its due time (an operator's `send-now`)."""
        cur = self.conn.execute(
            "UPDATE outbox SET status = ?, claimed_at = ?, attempts = attempts + 1"
            " WHERE id = ? AND status = ?",
            (OutboxStatus.SENDING, to_iso(now), outbox_id, OutboxStatus.QUEUED),
        )
        return self.get_mail(outbox_id) if cur.rowcount else None

    def requeue_interrupted(self, ids: Iterable[int] | None = None) -> int:
        """Mail left in `sending` by a crash (or only the rows `ids`) goes back to the queue,
        unchanged."""
        if ids is None:
            cur = self.conn.execute(
                "UPDATE outbox SET status = ? WHERE status = ?",
                (OutboxStatus.QUEUED, OutboxStatus.SENDING),
            )
            return cur.rowcount
        return sum(self.conn.execute(
            "UPDATE outbox SET status = ? WHERE id = ? AND status = ?",
            (OutboxStatus.QUEUED, outbox_id, OutboxStatus.SENDING),
        ).rowcount for outbox_id in ids)

    def finish_mail(self, outbox_id: int, status: OutboxStatus, now: datetime,
                    error: str | None = None, retry_at: datetime | None = None) -> None:
        if status == OutboxStatus.SENT:
            self.conn.execute(
                "UPDATE outbox SET status = ?, sent_at = ?, last_error = ? WHERE id = ?",
                (status, to_iso(now), error, outbox_id),
            )
        elif status == OutboxStatus.QUEUED:
            self.conn.execute(
                "UPDATE outbox SET status = ?, due_at = ?, last_error = ? WHERE id = ?",
                (status, to_iso(retry_at or now), error, outbox_id),
            )
        else:
            self.conn.execute(
                "UPDATE outbox SET status = ?, last_error = ? WHERE id = ?",
                (status, error, outbox_id),
            )

    def get_mail(self, outbox_id: int) -> OutboxRow | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (outbox_id,)  # noqa: S608
        ).fetchone()
        return OutboxRow(*row) if row else None

    def retry_mail(self, outbox_id: int, now: datetime) -> bool:
        """Put failed (or waiting) mail back in the queue, due now (`outbox retry`)."""
        cur = self.conn.execute(
            "UPDATE outbox SET status = ?, due_at = ?, last_error = NULL"
            " WHERE id = ? AND status IN (?, ?)",
            (OutboxStatus.QUEUED, to_iso(now), outbox_id, OutboxStatus.FAILED,
             OutboxStatus.QUEUED),
        )
        if cur.rowcount:
            self.conn.execute(
                "UPDATE invitations SET status = ? WHERE status = ? AND id ="
                " (SELECT invitation_id FROM outbox WHERE id = ? AND kind = ?)",
                (InvitationStatus.SCHEDULED, InvitationStatus.FAILED, outbox_id,
                 OutboxKind.INVITATION),
            )
        return cur.rowcount == 1

    def mark_bounced(self, outbox_id: int, status: str, now: datetime) -> None:
        self.conn.execute(
            "UPDATE outbox SET status = ?, bounced_at = ?, bounce_status = ? WHERE id = ?",
            (OutboxStatus.BOUNCED, to_iso(now), status, outbox_id))

    def next_webhook_due(self) -> datetime | None:
        """When the earliest queued webhook POST is due (the webhook worker's timer)."""
        row = self.conn.execute(
            "SELECT MIN(due_at) FROM outbox WHERE status = ? AND kind = ?",
            (OutboxStatus.QUEUED, OutboxKind.WEBHOOK)).fetchone()
        return from_iso(row[0]) if row and row[0] else None

    def oldest_due_mail(self) -> datetime | None:
        row = self.conn.execute(
            "SELECT MIN(due_at) FROM outbox WHERE status = ?", (OutboxStatus.QUEUED,)).fetchone()
        return from_iso(row[0]) if row and row[0] else None

    def outbox_depth(self) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE status IN (?, ?)",
            (OutboxStatus.QUEUED, OutboxStatus.SENDING),
        ).fetchone()
        return int(row[0])
