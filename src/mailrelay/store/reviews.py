"""Reviews with their responses (and history), internal notes, tags and tickets.

SQL only; moderation and publishing are decided in services.reviews.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailrelay.core.models import (
    OutboxKind,
    OutboxStatus,
)
from mailrelay.store.connection import Bound
from mailrelay.store.timestamps import to_iso


class ReviewQueries(Bound):
    """Reviews with their responses (and history), internal notes, tags and tickets."""

    def insert_review(self, row: dict[str, Any]) -> int:
        return self._insert("reviews", row)

    def get_review(self, review_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT r.*, p.body AS response, p.created_at AS responded_at,"
            " p.author AS response_author, p.source AS response_source"
            " FROM reviews r LEFT JOIN responses p ON p.id = r.response_id WHERE r.id = ?",
            (review_id,),
        ).fetchone()
        if row is None:
            return None
        review = dict(row)
        review["tags"] = self.tags_of(review_id)
        return review

    def edit_review(self, review_id: int, fields: dict[str, Any], now: datetime) -> None:
        """A customer's second submit: new text, ticket to agents again."""
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(
            f"UPDATE reviews SET {sets}, updated_at = ?, edits = edits + 1,"  # noqa: S608
            " ticket_state = 'pending' WHERE id = ?",
            (*fields.values(), to_iso(now), review_id),
        )

    def link_review(self, invitation_id: int, review_id: int) -> None:
        """The invitation has its review: no reminder any more."""
        self.conn.execute(
            "UPDATE invitations SET review_id = ?, reminder_due_at = NULL WHERE id = ?",
            (review_id, invitation_id),
        )
        self.conn.execute(
            "UPDATE outbox SET status = ?, last_error = 'cancelled: reviewed'"
            " WHERE invitation_id = ? AND kind = ? AND status = ?",
            (OutboxStatus.CANCELLED, invitation_id, OutboxKind.REMINDER, OutboxStatus.QUEUED),
        )

    def pending_tickets(self, limit: int) -> list[int]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT id FROM reviews WHERE ticket_state = 'pending' ORDER BY id LIMIT ?",
                (limit,),
            )
        ]

    def mark_ticket_queued(self, review_id: int, edits: int) -> bool:
        """Only when the review was not edited again meanwhile (then it is rendered anew)."""
        cur = self.conn.execute(
            "UPDATE reviews SET ticket_state = 'queued' WHERE id = ? AND edits = ?"
            " AND ticket_state = 'pending'",
            (review_id, edits),
        )
        return cur.rowcount == 1

    def add_response(self, review_id: int, body: str, author: str, source: str, now: datetime,
                     message_id: str | None = None, emailed: bool = True) -> int:
        """Publish a response; the previous one stays in the history, marked replaced."""
        self.conn.execute(
            "UPDATE responses SET replaced_at = ? WHERE review_id = ? AND replaced_at IS NULL",
            (to_iso(now), review_id),
        )
        response_id = self._insert("responses", {
            "review_id": review_id, "body": body, "author": author, "source": source,
            "created_at": to_iso(now), "message_id": message_id, "emailed": int(emailed),
        })
        self.conn.execute(
            "UPDATE reviews SET response_id = ?, first_response_at = COALESCE(first_response_at,"
            " ?) WHERE id = ?",
            (response_id, to_iso(now), review_id),
        )
        return response_id

    def responses_of(self, review_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            "SELECT * FROM responses WHERE review_id = ? ORDER BY id", (review_id,))]

    def add_note(self, review_id: int, body: str, author: str, now: datetime) -> int:
        return self._insert("notes", {"review_id": review_id, "body": body, "author": author,
                                      "created_at": to_iso(now)})

    def notes_of(self, review_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            "SELECT * FROM notes WHERE review_id = ? ORDER BY id", (review_id,))]

    def add_tag(self, review_id: int, tag: str, now: datetime) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO review_tags (review_id, tag, created_at) VALUES (?,?,?)",
            (review_id, tag, to_iso(now)),
        )

    def tags_of(self, review_id: int) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT tag FROM review_tags WHERE review_id = ? ORDER BY tag", (review_id,))]

    def report_review(self, review_id: int, reason: str, now: datetime) -> None:
        self.conn.execute(
            "UPDATE reviews SET reported = 1, report_reason = ?, reported_at = ? WHERE id = ?",
            (reason, to_iso(now), review_id),
        )

    def unreport_review(self, review_id: int) -> bool:
        cur = self.conn.execute(
            "UPDATE reviews SET reported = 0 WHERE id = ? AND reported = 1", (review_id,)
        )
        return cur.rowcount == 1
