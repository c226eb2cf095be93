"""Agents' replies: reply keys, each reply's outcome (once), tickets sent, IMAP messages seen.

SQL only; what a reply means is decided in services.replies.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

from mailrelay.store.connection import Bound
from mailrelay.store.rows import ImapSeenRow, NewReply, ReplyKeyRow, ReplyRow
from mailrelay.store.timestamps import to_iso

_KEY_COLUMNS = ", ".join(f.name for f in fields(ReplyKeyRow))
_REPLY_COLUMNS = ", ".join(f.name for f in fields(ReplyRow))
_SEEN_COLUMNS = ", ".join(f.name for f in fields(ImapSeenRow))


class ReplyQueries(Bound):
    """Agents' replies: reply keys, each reply's outcome, tickets sent, IMAP messages seen."""

    def key_for(self, review_id: int, agent: str) -> str | None:
        row = self.conn.execute(
            "SELECT key FROM reply_keys WHERE review_id = ? AND agent = ? ORDER BY created_at"
            " LIMIT 1", (review_id, agent)).fetchone()
        return row[0] if row else None

    def first_ticket_message_id(self, review_id: int, agent: str) -> str | None:
        row = self.conn.execute(
            "SELECT ticket_message_id FROM reply_keys WHERE review_id = ? AND agent = ?"
            " AND ticket_message_id IS NOT NULL ORDER BY created_at LIMIT 1",
            (review_id, agent),
        ).fetchone()
        return row[0] if row else None

    def insert_reply_key(self, key: str, review_id: int, agent: str, now: datetime,
                         ticket_message_id: str | None) -> None:
        self.conn.execute(
            "INSERT INTO reply_keys (key, review_id, agent, created_at, ticket_message_id)"
            " VALUES (?,?,?,?,?)",
            (key, review_id, agent, to_iso(now), ticket_message_id),
        )

    def reply_key(self, key: str) -> ReplyKeyRow | None:
        row = self.conn.execute(
            f"SELECT {_KEY_COLUMNS} FROM reply_keys WHERE key = ?", (key,)  # noqa: S608
        ).fetchone()
        return ReplyKeyRow(*row) if row else None

    def reply_outcome(self, dedupe_key: str) -> ReplyRow | None:
        row = self.conn.execute(
            f"SELECT {_REPLY_COLUMNS} FROM replies WHERE dedupe_key = ?",  # noqa: S608
            (dedupe_key,)).fetchone()
        return ReplyRow(*row) if row else None

    def record_reply(self, new: NewReply) -> int:
        """Raises DuplicateKey when this reply was processed before."""
        return self._insert("replies", {
            "received_at": to_iso(new.received_at), "source": new.source,
            "dedupe_key": new.dedupe_key, "message_id": new.message_id,
            "from_address": new.from_address, "review_id": new.review_id,
            "outcome": new.outcome, "reason": new.reason,
        })

    def ticket_recipient(self, message_id: str) -> tuple[int, str] | None:
        """(review id, agent) of a ticket we sent, found by its Message-ID."""
        row = self.conn.execute(
            "SELECT review_id, recipient FROM outbox WHERE kind = 'ticket' AND message_id = ?",
            (message_id,),
        ).fetchone()
        return (int(row[0]), str(row[1])) if row and row[0] is not None else None

    def imap_seen(self, mailbox: str, uidvalidity: int, uid: int) -> ImapSeenRow | None:
        row = self.conn.execute(
            f"SELECT {_SEEN_COLUMNS} FROM imap_seen"  # noqa: S608
            " WHERE mailbox = ? AND uidvalidity = ? AND uid = ?",
            (mailbox, uidvalidity, uid)).fetchone()
        return ImapSeenRow(*row) if row else None

    def mark_imap_seen(self, mailbox: str, uidvalidity: int, uid: int, dedupe_key: str,
                       folder: str, now: datetime) -> None:
        self.conn.execute(
            "INSERT INTO imap_seen (mailbox, uidvalidity, uid, dedupe_key, folder,"
            " seen_at, moved) VALUES (?,?,?,?,?,?,0) ON CONFLICT (mailbox, uidvalidity, uid)"
            " DO UPDATE SET dedupe_key = excluded.dedupe_key, folder = excluded.folder,"
            " seen_at = excluded.seen_at, moved = 0",
            (mailbox, uidvalidity, uid, dedupe_key, folder, to_iso(now)))

    def mark_imap_moved(self, mailbox: str, uidvalidity: int, uid: int) -> None:
        self.conn.execute(
            "UPDATE imap_seen SET moved = 1 WHERE mailbox = ? AND uidvalidity = ? AND uid = ?",
            (mailbox, uidvalidity, uid))
