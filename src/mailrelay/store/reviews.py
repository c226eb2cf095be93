"""Reviews with their responses (and history), internal notes, tags and tickets.

SQL only; moderation and publishing are decided in services.reviews.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

from mailrelay.core.models import (
    OutboxKind,
    OutboxStatus,
)
from mailrelay.store import channels
from mailrelay.store.connection import Bound, Row
from mailrelay.store.rows import NewReview, NoteRow, ResponseRow, ReviewRow, ReviewText
from mailrelay.store.timestamps import to_iso

#: A review's columns, then its current response's, in `ReviewRow` order (then the tags).
_REVIEW_FIELDS = tuple(f.name for f in fields(ReviewRow))
_JOINED = {"response": "p.body", "responded_at": "p.created_at",
           "response_author": "p.author", "response_source": "p.source"}
REVIEW_SELECT = "SELECT " + ", ".join(
    _JOINED.get(name, f"r.{name}") for name in _REVIEW_FIELDS[:-1])
REVIEW_JOIN = "reviews r LEFT JOIN responses p ON p.id = r.response_id"
_RESPONSE_COLUMNS = ", ".join(f.name for f in fields(ResponseRow))
_NOTE_COLUMNS = ", ".join(f.name for f in fields(NoteRow))
#: A review's current response (?1, made at ?2), its first response, and its first answer by a
#: person when ?4 (an automatic response, source 'auto', is no answer): `first_answer_secs`
#: keeps the least delay in whole seconds (the dashboard's weekly figures read it).
_SET_RESPONSE = (
    "UPDATE reviews SET response_id = ?1, first_response_at = COALESCE(first_response_at, ?2),"
    " first_answer_secs = CASE WHEN ?4 THEN min(COALESCE(first_answer_secs,"
    " CAST(round((julianday(?2) - julianday(created_at)) * 86400) AS INTEGER)),"
    " CAST(round((julianday(?2) - julianday(created_at)) * 86400) AS INTEGER))"
    " ELSE first_answer_secs END WHERE id = ?3"
)


def review_row(row: Row, tags: list[str]) -> ReviewRow:
    """A `REVIEW_SELECT` row as a `ReviewRow` (columns after it are the caller's)."""
    values = dict(zip(_REVIEW_FIELDS[:-1], row, strict=False))
    values["reported"] = bool(values["reported"])
    return ReviewRow(**values, tags=tags)


class ReviewQueries(Bound):
    """Reviews with their responses (and history), internal notes, tags and tickets."""

    def insert_review(self, new: NewReview) -> int:
        created = to_iso(new.created_at)
        self._nudge(channels.DISPATCH)  # its ticket is the dispatcher's
        return self._insert("reviews", {
            "shop": new.shop, "invitation_id": new.invitation_id, "method": new.method,
            "stars": new.text.stars, "title": new.text.title, "text": new.text.text,
            "reviewer_name": new.text.reviewer_name, "customer_email": new.customer_email,
            "reference": new.reference, "locale": new.locale, "created_at": created,
            "updated_at": created, "ticket_state": "pending",
        })

    def get_review(self, review_id: int) -> ReviewRow | None:
        row = self.conn.execute(
            f"{REVIEW_SELECT} FROM {REVIEW_JOIN} WHERE r.id = ?",  # noqa: S608
            (review_id,),
        ).fetchone()
        if row is None:
            return None
        return review_row(row, self.tags_of(review_id))

    def edit_review(self, review_id: int, edit: ReviewText, now: datetime) -> None:
        """A customer's second submit: new text, ticket to agents again."""
        self.conn.execute(
            "UPDATE reviews SET stars = ?, title = ?, text = ?, reviewer_name = ?,"
            " updated_at = ?, edits = edits + 1, ticket_state = 'pending' WHERE id = ?",
            (edit.stars, edit.title, edit.text, edit.reviewer_name, to_iso(now), review_id),
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

    def pending_tickets(self, limit: int, *, relay: str | None = None,
                        expired: datetime | None = None) -> list[int]:
        """Reviews waiting for their tickets; with `relay`, only those no other relay has
        held since `expired` (`hold_reviews`)."""
        if relay is None:
            return [r[0] for r in self.conn.execute(
                "SELECT id FROM reviews WHERE ticket_state = 'pending' ORDER BY id LIMIT ?",
                (limit,))]
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM reviews WHERE ticket_state = 'pending'"
            " AND (claimed_by IS NULL OR claimed_by = ? OR claimed_at < ?) ORDER BY id LIMIT ?",
            (relay, to_iso(expired) if expired else "", limit))]

    def hold_reviews(self, ids: list[int], now: datetime, expired: datetime, *,
                     relay: str) -> set[int]:
        """Hold reviews for `relay` while it renders their tickets (and a shop's draft command
        runs once); returns the ids it holds: not those another relay has held since
        `expired`. Only saves work: `mark_ticket_queued` queues each version's tickets once."""
        return {review_id for review_id in ids if self.conn.execute(
            "UPDATE reviews SET claimed_by = ?, claimed_at = ? WHERE id = ?"
            " AND (claimed_by IS NULL OR claimed_by = ? OR claimed_at < ?)",
            (relay, to_iso(now), review_id, relay, to_iso(expired)),
        ).rowcount}

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
        """Publish a response; the previous one stays in the history, marked replaced. A
        person's response (any `source` but 'auto') sets the review's first answer."""
        self.conn.execute(
            "UPDATE responses SET replaced_at = ? WHERE review_id = ? AND replaced_at IS NULL",
            (to_iso(now), review_id),
        )
        response_id = self._insert("responses", {
            "review_id": review_id, "body": body, "author": author, "source": source,
            "created_at": to_iso(now), "message_id": message_id, "emailed": int(emailed),
        })
        self.conn.execute(
            _SET_RESPONSE, (response_id, to_iso(now), review_id, source != "auto"),
        )
        return response_id

    def responses_of(self, review_id: int) -> list[ResponseRow]:
        return [ResponseRow(*r) for r in self.conn.execute(
            f"SELECT {_RESPONSE_COLUMNS} FROM responses WHERE review_id = ? ORDER BY id",  # noqa: S608
            (review_id,))]

    def add_note(self, review_id: int, body: str, author: str, now: datetime) -> int:
        return self._insert("notes", {"review_id": review_id, "body": body, "author": author,
                                      "created_at": to_iso(now)})

    def notes_of(self, review_id: int) -> list[NoteRow]:
        return [NoteRow(*r) for r in self.conn.execute(
            f"SELECT {_NOTE_COLUMNS} FROM notes WHERE review_id = ? ORDER BY id",  # noqa: S608
            (review_id,))]

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
