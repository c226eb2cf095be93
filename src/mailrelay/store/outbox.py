"""The outbox: every outgoing message, stored rendered before it is sent, and its claims.

SQL only; retries and backoff are decided in services.delivery.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime, timedelta

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

#: Claiming the first `limit` due rows for a relay: one UPDATE. On PostgreSQL, rows another
#: relay's claim has locked are skipped rather than waited for: after the wait they are taken,
#: and the relay would claim nothing while mail is still due. SQLite's writers take turns.
_CLAIM_DUE = {
    "sqlite": (
        "UPDATE outbox SET status = ?, claimed_at = ?, claimed_by = ?, attempts = attempts + 1"
        " WHERE id IN (SELECT id FROM outbox WHERE status = ? AND due_at <= ?"
        " AND (kind = ?) = ? ORDER BY due_at, id LIMIT ?) RETURNING id"),
    "postgresql": (
        "UPDATE outbox SET status = ?, claimed_at = ?, claimed_by = ?, attempts = attempts + 1"
        " WHERE id IN (SELECT id FROM outbox WHERE status = ? AND due_at <= ?"
        " AND (kind = ?) = ? ORDER BY due_at, id LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING id"),
}

#: Claims whose lease ran out go back to the queue. On PostgreSQL rows another transaction has
#: locked (their relay renewing or finishing them right now) are skipped, not waited for: a
#: multi-row UPDATE waiting on a relay that renews rows in another order deadlocked.
_REQUEUE_EXPIRED = {
    "sqlite": ("UPDATE outbox SET status = ? WHERE status = ? AND claimed_at < ?"
               " AND (kind = ?) = ?"),
    "postgresql": (
        "UPDATE outbox SET status = ? WHERE id IN (SELECT id FROM outbox WHERE status = ?"
        " AND claimed_at < ? AND (kind = ?) = ? ORDER BY id FOR UPDATE SKIP LOCKED)"),
}


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

    def claim_due_mail(self, now: datetime, limit: int, webhooks: bool = False, *,
                       relay: str) -> list[OutboxRow]:
        """Claim due queued mail (or, with `webhooks`, due webhook POSTs) for sending, in the
        name of `relay`: one UPDATE of rows still queued, so no row is claimed twice."""
        claimed = [row[0] for row in self.conn.execute(
            _CLAIM_DUE[getattr(self.conn, "backend", "sqlite")],
            (OutboxStatus.SENDING, to_iso(now), relay, OutboxStatus.QUEUED, to_iso(now),
             OutboxKind.WEBHOOK, webhooks, limit),
        )]
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

    def _claim(self, outbox_id: int, now: datetime, relay: str) -> bool:
        """One queued row → `sending`, held by `relay` from `now`; its attempt is counted."""
        return bool(self.conn.execute(
            "UPDATE outbox SET status = ?, claimed_at = ?, claimed_by = ?,"
            " attempts = attempts + 1 WHERE id = ? AND status = ?",
            (OutboxStatus.SENDING, to_iso(now), relay, outbox_id, OutboxStatus.QUEUED),
        ).rowcount)

    def claim_mail(self, outbox_id: int, now: datetime, *, relay: str) -> OutboxRow | None:
        """Claim one queued row whatever its due time (an operator's `send-now`)."""
        return self.get_mail(outbox_id) if self._claim(outbox_id, now, relay) else None

    def requeue_interrupted(self, relay: str, ids: Iterable[int] | None = None) -> int:
        """Mail `relay` left in `sending` (its previous life's, killed while sending; or only
        its rows `ids`) goes back to the queue, unchanged. Rows claimed before claims named
        their relay (claimed_by NULL) count as this relay's: one relay ran then.

        Other relays' rows are left alone: they may be in flight right now."""
        if ids is None:
            return int(self.conn.execute(
                "UPDATE outbox SET status = ? WHERE status = ?"
                " AND (claimed_by = ? OR claimed_by IS NULL)",
                (OutboxStatus.QUEUED, OutboxStatus.SENDING, relay),
            ).rowcount)
        return sum(self.conn.execute(
            "UPDATE outbox SET status = ? WHERE id = ? AND status = ? AND claimed_by = ?",
            (OutboxStatus.QUEUED, outbox_id, OutboxStatus.SENDING, relay),
        ).rowcount for outbox_id in ids)

    def requeue_expired(self, now: datetime, lease: timedelta, webhooks: bool = False) -> int:
        """Mail (or, with `webhooks`, webhook POSTs) claimed longer than `lease` ago goes back
        to the queue whoever claimed it: its relay died for good, or lost the store. The
        claim's relay stays recorded, so its own late result can still settle the row until
        another relay claims it again (`finish_mail`)."""
        return int(self.conn.execute(
            _REQUEUE_EXPIRED[getattr(self.conn, "backend", "sqlite")],
            (OutboxStatus.QUEUED, OutboxStatus.SENDING, to_iso(now - lease),
             OutboxKind.WEBHOOK, webhooks),
        ).rowcount)

    def renew_claims(self, ids: Iterable[int], now: datetime, *, relay: str) -> set[int]:
        """Restart the lease of `relay`'s rows `ids` still `sending` at `now`; returns the ids
        it still holds (the others were taken over after their lease, or are settled)."""
        return {outbox_id for outbox_id in ids if self.conn.execute(
            "UPDATE outbox SET claimed_at = ? WHERE id = ? AND status = ? AND claimed_by = ?",
            (to_iso(now), outbox_id, OutboxStatus.SENDING, relay),
        ).rowcount}

    def finish_mail(self, outbox_id: int, status: OutboxStatus, now: datetime,
                    error: str | None = None, retry_at: datetime | None = None, *,
                    relay: str, attempt: int) -> bool:
        """Record the result of `relay`'s claim number `attempt` of a row; False (nothing
        written) when the claim is no longer its own: another relay claimed the row again
        after the lease, and that relay's result is the one that counts.

        A row requeued after the lease but not claimed again (still queued, still this claim)
        takes the late result: mail that went out is not sent a second time."""
        # sent_at only when it went out, due_at only for a retry: else both keep their value.
        sent_at, due_at = (to_iso(now) if status == OutboxStatus.SENT else None,
                           to_iso(retry_at or now) if status == OutboxStatus.QUEUED else None)
        return self.conn.execute(
            "UPDATE outbox SET status = ?, last_error = ?, sent_at = COALESCE(?, sent_at),"
            " due_at = COALESCE(?, due_at) WHERE id = ? AND claimed_by = ? AND attempts = ?"
            " AND status IN (?, ?)",
            (status, error, sent_at, due_at, outbox_id, relay, attempt, OutboxStatus.SENDING,
             OutboxStatus.QUEUED),
        ).rowcount == 1

    def cancel_mail(self, outbox_id: int, reason: str) -> bool:
        """Cancel a queued row no relay has claimed (its invitation changed meanwhile)."""
        return self.conn.execute(
            "UPDATE outbox SET status = ?, last_error = ? WHERE id = ? AND status = ?",
            (OutboxStatus.CANCELLED, reason, outbox_id, OutboxStatus.QUEUED),
        ).rowcount == 1

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
            # The failure's reason goes with it, as the outbox row's last_error does.
            self.conn.execute(
                "UPDATE invitations SET status = ?, reason = NULL WHERE status = ? AND id ="
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
