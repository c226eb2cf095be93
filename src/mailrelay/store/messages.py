"""Inbound mail as the listener stored it: the queue intake works through.

SQL only; what a message means is decided in services.intake.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mailrelay.core.models import (
    MessageState,
)
from mailrelay.store import channels
from mailrelay.store.connection import Bound
from mailrelay.store.rows import InboundMessage, NewMessage
from mailrelay.store.timestamps import to_iso

_COLUMNS_AND_VALUES = ("messages (received_at, peer, mail_from, rcpt, shop, kind, message_id,"
                      " dedupe_key, size, state, claimed_by, claimed_at)"
                      " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")
_INSERT_OR_IGNORE = f"INSERT OR IGNORE INTO {_COLUMNS_AND_VALUES}"
#: PostgreSQL: the message and its body in one statement (one round trip on the 250's path,
#: not two); the body goes in only when the message did.
_INSERT_WITH_BODY = (
    f"WITH m AS (INSERT INTO {_COLUMNS_AND_VALUES} ON CONFLICT DO NOTHING RETURNING id),"  # noqa: S608 - our own constant
    " b AS (INSERT INTO message_bodies (id, raw) SELECT id, ? FROM m) SELECT id FROM m"
)
#: Pending messages, oldest first: all of them, or those a relay may take (issue 15).
_PENDING = (
    "SELECT m.id, received_at, shop, kind, rcpt, mail_from, message_id, peer,"
    " COALESCE(b.raw, x'') AS raw FROM messages m LEFT JOIN message_bodies b"
    " ON b.id = m.id WHERE state = ? AND m.id > ? ORDER BY m.id LIMIT ?")
_PENDING_FOR_RELAY = (
    "SELECT m.id, received_at, shop, kind, rcpt, mail_from, message_id, peer,"
    " COALESCE(b.raw, x'') AS raw FROM messages m LEFT JOIN message_bodies b"
    " ON b.id = m.id WHERE state = ? AND m.id > ?"
    " AND (claimed_by IS NULL OR claimed_by = ? OR claimed_at < ?) ORDER BY m.id LIMIT ?")


class MessageQueries(Bound):
    """Inbound mail as the listener stored it: the queue intake works through."""

    def insert_message(self, msg: NewMessage) -> int | None:
        """Store a raw message once per dedupe key; returns the new row id or None if known."""
        values = (
            to_iso(msg.received_at),
            msg.peer,
            msg.mail_from,
            msg.rcpt,
            msg.shop,
            msg.kind,
            msg.message_id,
            msg.dedupe_key,
            len(msg.raw),
            MessageState.RECEIVED,
            msg.relay,
            to_iso(msg.received_at) if msg.relay else None,
        )
        if self.backend == "postgresql":
            row = self.conn.execute(_INSERT_WITH_BODY, (*values, msg.raw)).fetchone()
            if row is None:
                return None
            self._nudge(channels.INTAKE)
            return int(row[0])
        cur = self.conn.execute(_INSERT_OR_IGNORE, values)
        if not cur.rowcount:
            return None
        self.conn.execute("INSERT INTO message_bodies (id, raw) VALUES (?, ?)",
                          (cur.lastrowid, msg.raw))
        return cur.lastrowid

    def pending_messages(self, limit: int, after: int = 0, *, relay: str | None = None,
                         expired: datetime | None = None) -> list[InboundMessage]:
        """Messages still waiting for a worker, oldest first, with ids above `after`. With
        `relay`: only those no relay holds, `relay`'s own, and those held since before
        `expired` (their relay died, or cannot keep up)."""
        if relay is None:
            rows = self.conn.execute(_PENDING, (MessageState.RECEIVED, after, limit)).fetchall()
        else:
            rows = self.conn.execute(_PENDING_FOR_RELAY, (
                MessageState.RECEIVED, after, relay, to_iso(expired) if expired else "",
                limit)).fetchall()
        return [
            InboundMessage(
                id=r["id"],
                received_at=datetime.fromisoformat(r["received_at"]),
                shop=r["shop"],
                kind=r["kind"],
                rcpt=r["rcpt"],
                mail_from=r["mail_from"] or "",
                message_id=r["message_id"],
                raw=bytes(r["raw"]),
                peer=r["peer"] or "",
            )
            for r in rows
        ]

    def claim_message(self, message_row_id: int, now: datetime, result: str) -> bool:
        """Mark a message processed; False when another pass already did (idempotence)."""
        cur = self.conn.execute(
            "UPDATE messages SET state = ?, processed_at = ?, result = ?"
            " WHERE id = ? AND state = ?",
            (MessageState.PROCESSED, to_iso(now), result, message_row_id, MessageState.RECEIVED),
        )
        return cur.rowcount == 1

    def claim_message_handling(self, message_row_id: int, now: datetime, lease: timedelta, *,
                               relay: str) -> bool:
        """Hold an unprocessed message for `relay` while another service handles it (a reply,
        a bounce: their work is written before the message is marked processed); False while
        another relay's hold is younger than `lease`. The relay's own hold, from a life a
        crash ended, is taken again at once."""
        return self.conn.execute(
            "UPDATE messages SET claimed_by = ?, claimed_at = ? WHERE id = ? AND state = ?"
            " AND (claimed_by IS NULL OR claimed_by = ? OR claimed_at < ?)",
            (relay, to_iso(now), message_row_id, MessageState.RECEIVED, relay,
             to_iso(now - lease)),
        ).rowcount == 1

    def erase_message_body(self, message_row_id: int) -> None:
        """Drop one message's raw bytes (a trigger naming an address erased by `forget`)."""
        self.conn.execute("DELETE FROM message_bodies WHERE id = ?", (message_row_id,))

    def count_messages(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def count_pending_messages(self) -> int:
        """Inbound messages no worker has processed yet (for /healthz)."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM messages WHERE state = ?", (MessageState.RECEIVED,)).fetchone()
        return int(row[0])
