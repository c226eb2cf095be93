"""The only SQLite access: schema migrations, one writer thread with group commit, reads.

Nothing outside this module writes SQL. Services pass functions that receive a `Queries` object;
the writer runs many of them inside one transaction so concurrent SMTP sessions share fsyncs.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import hashlib
import json
import logging
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import sqlite_utils

from mailrelay.core.errors import StoreError
from mailrelay.core.files import create_private_file
from mailrelay.core.models import (
    InvitationStatus,
    MessageState,
    OutboxKind,
    OutboxStatus,
    ShipmentStatus,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How many queued writes one transaction may take: enough to amortise an fsync over a burst,
#: small enough that one slow batch does not hold every SMTP session for long.
MAX_BATCH = 256
#: Longest a background job (intake) waits while other writes keep coming, in seconds.
BACKGROUND_MAX_WAIT = 0.02


#: The last two datetimes `to_iso` formatted, with their text, newest first. A writer job
#: passes the same `now` (and due time) to several statements; formatting costs about a
#: microsecond each time (bench/intake_path.py). Keyed by identity (the tuple keeps each object
#: alive, so its id is not reused) and swapped as one tuple: threads sharing it can only miss.
_iso_memo: tuple[tuple[datetime, str], ...] = ()


def to_iso(when: datetime | None) -> str | None:
    """UTC ISO-8601 text for a `*_at` column (DESIGN: house style 4)."""
    global _iso_memo
    if when is None:
        return None
    memo = _iso_memo
    for seen, text in memo:
        if seen is when:
            return text
    text = when.astimezone(UTC).isoformat(timespec="microseconds")
    _iso_memo = ((when, text), *memo[:1])
    return text


def from_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text)


# --- schema -----------------------------------------------------------------------------------


def _migration_1(db: sqlite_utils.Database) -> None:
    db["messages"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "received_at": str,
            "peer": str,
            "mail_from": str,
            "rcpt": str,
            "shop": str,
            "kind": str,
            "message_id": str,
            "dedupe_key": str,
            "raw": bytes,
            "size": int,
            "state": str,
            "processed_at": str,
            "result": str,
        },
        pk="id",
        not_null={"received_at", "rcpt", "shop", "kind", "dedupe_key", "raw", "state"},
    )
    db["messages"].create_index(["dedupe_key"], unique=True)  # type: ignore[union-attr]
    db.execute("CREATE INDEX idx_messages_pending ON messages(id) WHERE state = 'received'")
    db["shipments"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "message_row_id": int,
            "shop": str,
            "received_at": str,
            "message_id": str,
            "sender": str,
            "customer_email": str,
            "customer_name": str,
            "reference": str,
            "reference_rule": str,
            "locale": str,
            "send_at": str,
            "tags": str,
            "products": str,
            "source": str,
            "defects": str,
            "status": str,
            "reason": str,
        },
        pk="id",
        foreign_keys=[("message_row_id", "messages", "id")],
        not_null={"shop", "received_at", "status", "reason"},
    )
    db["shipments"].create_index(["message_row_id"], unique=True)  # type: ignore[union-attr]
    db["shipments"].create_index(["shop", "reference"])  # type: ignore[union-attr]
    db["shipments"].create_index(["status"])  # type: ignore[union-attr]
    db["invitations"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "shop": str,
            "shipment_id": int,
            "customer_email": str,
            "customer_name": str,
            "reference": str,
            "locale": str,
            "method": str,
            "status": str,
            "reason": str,
            "token": str,
            "created_at": str,
            "due_at": str,
            "sent_at": str,
            "reminder_due_at": str,
            "review_id": int,
        },
        pk="id",
        foreign_keys=[("shipment_id", "shipments", "id")],
        not_null={"shop", "customer_email", "method", "status", "token", "created_at"},
    )
    db["invitations"].create_index(["token"], unique=True)  # type: ignore[union-attr]
    db["invitations"].create_index(["shop", "customer_email"])  # type: ignore[union-attr]
    db["invitations"].create_index(["status", "due_at"])  # type: ignore[union-attr]
    # One invitation per order: the natural key that makes a retried trigger harmless.
    db.execute(
        "CREATE UNIQUE INDEX idx_invitations_order ON invitations(shop, reference) "
        "WHERE reference IS NOT NULL"
    )
    db["suppressions"].create(  # type: ignore[union-attr]
        {"shop": str, "email": str, "created_at": str, "reason": str},
        pk=("shop", "email"),
    )
    db["trigger_senders"].create(  # type: ignore[union-attr]
        {"shop": str, "sender": str, "first_seen_at": str, "last_seen_at": str, "count": int},
        pk=("shop", "sender"),
    )


def _migration_2(db: sqlite_utils.Database) -> None:
    """The outbox: every outgoing message, rendered and stored before it is sent."""
    db["outbox"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "kind": str,
            "shop": str,
            "invitation_id": int,
            "recipient": str,
            "envelope_from": str,
            "subject": str,
            "message_id": str,
            "raw": bytes,
            "status": str,
            "attempts": int,
            "created_at": str,
            "due_at": str,
            "claimed_at": str,
            "sent_at": str,
            "last_error": str,
        },
        pk="id",
        not_null={"kind", "recipient", "message_id", "raw", "status", "created_at", "due_at"},
        defaults={"attempts": 0},
    )
    db["outbox"].create_index(["message_id"], unique=True)  # type: ignore[union-attr]
    db["outbox"].create_index(["invitation_id"])  # type: ignore[union-attr]
    db.execute("CREATE INDEX idx_outbox_due ON outbox(due_at) WHERE status = 'queued'")
    # One invitation mail and one reminder per invitation, whatever happens.
    db.execute(
        "CREATE UNIQUE INDEX idx_outbox_per_invitation ON outbox(kind, invitation_id)"
        " WHERE invitation_id IS NOT NULL AND kind IN ('invitation', 'reminder')"
    )
    db["invitations"].add_column("outbox_id", int)  # type: ignore[union-attr]
    db["invitations"].add_column("reminder_sent_at", str)  # type: ignore[union-attr]
    db.execute(
        "CREATE INDEX idx_invitations_due ON invitations(due_at)"
        " WHERE status = 'scheduled' AND outbox_id IS NULL"
    )
    db.execute(
        "CREATE INDEX idx_invitations_reminder ON invitations(reminder_due_at)"
        " WHERE reminder_due_at IS NOT NULL"
    )


def _migration_3(db: sqlite_utils.Database) -> None:
    """Reviews, their public responses (with history), internal notes, tags and reply keys."""
    db["reviews"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "shop": str,
            "invitation_id": int,
            "method": str,
            "stars": int,
            "title": str,
            "text": str,
            "reviewer_name": str,
            "customer_email": str,
            "reference": str,
            "locale": str,
            "created_at": str,
            "updated_at": str,
            "edits": int,
            "reported": int,
            "report_reason": str,
            "reported_at": str,
            "response_id": int,
            "first_response_at": str,
            "ticket_state": str,
        },
        pk="id",
        foreign_keys=[("invitation_id", "invitations", "id")],
        not_null={"shop", "method", "stars", "created_at"},
        defaults={"edits": 0, "reported": 0},
    )
    db.execute(
        "CREATE UNIQUE INDEX idx_reviews_invitation ON reviews(invitation_id)"
        " WHERE invitation_id IS NOT NULL"
    )
    db["reviews"].create_index(["shop", "created_at"])  # type: ignore[union-attr]
    db["reviews"].create_index(["customer_email"])  # type: ignore[union-attr]
    db.execute("CREATE INDEX idx_reviews_ticket ON reviews(id) WHERE ticket_state = 'pending'")
    db["responses"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "review_id": int,
            "body": str,
            "author": str,
            "source": str,
            "created_at": str,
            "message_id": str,
            "emailed": int,
            "replaced_at": str,
        },
        pk="id",
        foreign_keys=[("review_id", "reviews", "id")],
        not_null={"review_id", "body", "created_at"},
    )
    db["responses"].create_index(["review_id"])  # type: ignore[union-attr]
    db["notes"].create(  # type: ignore[union-attr]
        {"id": int, "review_id": int, "body": str, "author": str, "created_at": str},
        pk="id",
        foreign_keys=[("review_id", "reviews", "id")],
    )
    db["notes"].create_index(["review_id"])  # type: ignore[union-attr]
    db["review_tags"].create(  # type: ignore[union-attr]
        {"review_id": int, "tag": str, "created_at": str},
        pk=("review_id", "tag"),
    )
    db["reply_keys"].create(  # type: ignore[union-attr]
        {"key": str, "review_id": int, "agent": str, "created_at": str, "ticket_message_id": str},
        pk="key",
    )
    db["reply_keys"].create_index(["ticket_message_id"])  # type: ignore[union-attr]
    db["outbox"].add_column("review_id", int)  # type: ignore[union-attr]


def _migration_4(db: sqlite_utils.Database) -> None:
    """Agent replies processed (once each), notices sent to agents, IMAP messages seen."""
    db["replies"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "received_at": str,
            "source": str,
            "dedupe_key": str,
            "message_id": str,
            "from_address": str,
            "review_id": int,
            "outcome": str,
            "reason": str,
        },
        pk="id",
        not_null={"received_at", "source", "dedupe_key", "outcome"},
    )
    db["replies"].create_index(["dedupe_key"], unique=True)  # type: ignore[union-attr]
    db["replies"].create_index(["review_id"])  # type: ignore[union-attr]
    db["reply_notices"].create(  # type: ignore[union-attr]
        {"address": str, "reason": str, "day": str, "created_at": str},
        pk=("address", "reason", "day"),
    )
    db["imap_seen"].create(  # type: ignore[union-attr]
        {"mailbox": str, "uidvalidity": int, "uid": int, "dedupe_key": str, "folder": str,
         "seen_at": str, "moved": int},
        pk=("mailbox", "uidvalidity", "uid"),
        defaults={"moved": 0},
    )
    db.execute("CREATE INDEX idx_outbox_tickets ON outbox(message_id) WHERE kind = 'ticket'")


def _migration_5(db: sqlite_utils.Database) -> None:
    """An audit trail of erasures (purge, retention, forget) and bounce bookkeeping."""
    db["audit"].create(  # type: ignore[union-attr]
        {"id": int, "at": str, "action": str, "actor": str, "detail": str},
        pk="id",
        not_null={"at", "action"},
    )
    db["outbox"].add_column("bounced_at", str)  # type: ignore[union-attr]
    db["outbox"].add_column("bounce_status", str)  # type: ignore[union-attr]
    db["bounces"].create(  # type: ignore[union-attr]
        {"email": str, "soft": int, "hard": int, "last_at": str, "last_status": str},
        pk="email",
        defaults={"soft": 0, "hard": 0},
    )


def _migration_6(db: sqlite_utils.Database) -> None:
    """Raw inbound mail in a table of its own. Marking a message processed rewrote its whole
    row, 5 KB of mail included, when only its state changed (bench/ingest.py)."""
    db.execute(
        "CREATE TABLE message_bodies (id INTEGER PRIMARY KEY, raw BLOB NOT NULL)")
    db.execute("INSERT INTO message_bodies (id, raw) SELECT id, raw FROM messages")
    db.execute("ALTER TABLE messages DROP COLUMN raw")


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migration_1, _migration_2, _migration_3, _migration_4, _migration_5, _migration_6,
)


#: How each kind of suppression is shown: in shipments' and invitations' reasons, tickets
#: and `reviews show`. None names a shop (issue 10 §4).
SUPPRESSION_TEXT = {
    "bounced": "address bounced",
    "unsubscribed": "customer has unsubscribed",
    "forgotten": "address erased on request",
}


def address_hash(email: str) -> str:
    """How a forgotten address is remembered for suppression: never in clear text."""
    return "sha256:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()


#: Characters that may stand next to an address's ends and still be part of a longer one:
#: `nn@example.com` is not named by `ann@example.com`, nor `ann@example.co`.
#: ('=' is left out: `?to=ann@…` in a link names ann; an address with '=' in it is rare.)
_LOCAL_CHARS = "A-Za-z0-9.!#$%&'*+/?^_`{|}~\\-"


def address_pattern(email: str) -> re.Pattern[str]:
    """A case-insensitive pattern finding `email` as a whole address inside text."""
    return re.compile(
        f"(?<![{_LOCAL_CHARS}\u0080-\U0010ffff]){re.escape(email.strip())}"
        "(?![A-Za-z0-9\\-\u0080-\U0010ffff]|\\.[A-Za-z0-9])", re.IGNORECASE)


def address_pattern_bytes(email: str) -> re.Pattern[bytes]:
    """`address_pattern` for raw mail (UTF-8 bytes)."""
    return re.compile(
        f"(?<![{_LOCAL_CHARS}\x80-\xff]){re.escape(email.strip())}"
        "(?![A-Za-z0-9\\-\x80-\xff]|\\.[A-Za-z0-9])".encode(), re.IGNORECASE)


def address_ref(email: str | None) -> str:
    """An address as logs show it: a short hash, the same each time (to follow one sender
    through the log) but not the address (issue 10 §6: logs name ids, not addresses)."""
    if not email:
        return "-"
    return address_hash(email)[:19]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; returns the version. Safe to call every start."""
    db = sqlite_utils.Database(conn)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at TEXT)"
    )
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    current = int(row[0] or 0)
    for version, step in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        with conn:
            step(db)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, to_iso(datetime.now(UTC))),
            )
        log.info("store migrated to schema version %d", version)
        current = version
    return current


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk when it returns, so the SMTP 250 that follows it is honest.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    # Deleted and overwritten content is zeroed, freed pages included, so an erasure
    # (`forget`, `purge`) leaves no copy in free space. Debian builds SQLite with this on
    # already (SQLITE_SECURE_DELETE); other builds default to off, or FAST, which leaves
    # freelist pages as they were. bench/forget.py measures it against VACUUM.
    conn.execute("PRAGMA secure_delete=ON")
    return conn


# --- rows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundMessage:
    """A raw inbound message as stored by the listener, waiting for a worker."""

    id: int
    received_at: datetime
    shop: str
    kind: str
    rcpt: str
    mail_from: str
    message_id: str | None
    raw: bytes
    peer: str = ""  # "ip:port" of the SMTP client


@dataclass(frozen=True)
class NewMessage:
    """What the listener hands to the store for one accepted recipient."""

    received_at: datetime
    peer: str
    mail_from: str
    rcpt: str
    shop: str
    kind: str
    message_id: str | None
    dedupe_key: str
    raw: bytes


@dataclass(frozen=True)
class Erasure:
    """What `Queries.forget` erased: rows per table, and the Message-IDs of the outgoing mail
    it emptied (their delivered copies in a Maildir outbox go too)."""

    counts: dict[str, int]
    message_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """What `Queries.decision_facts` found (ids of the rows that decide a candidate's fate)."""

    reference_invitation: int | None
    reference_shipment: int | None
    suppressed: bool
    recent_invitation: int | None
    #: Why `suppressed`: "bounced", "unsubscribed" or "forgotten" (see `Queries.suppression`).
    suppressed_by: str | None = None


# --- queries ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, cols: tuple[str, ...]) -> str:
    """The INSERT for one table and column list (few distinct ones: built once each)."""
    marks = ", ".join("?" for _ in cols)
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"  # noqa: S608


#: The kind of suppression that applies to (shop, email): a bounce (recorded for every shop,
#: '*'; before issue 10 a hard bounce was recorded for its shop only, but `bounces` counts it
#: for the address), then this shop's unsubscribe, then `forget` (a hash, also '*').
#: Primary-key look-ups only: this runs for every shipment.
_SUPPRESSION = (
    "SELECT kind FROM (SELECT CASE WHEN reason LIKE 'hard bounce%'"
    " OR reason LIKE '% soft bounces' THEN 'bounced' WHEN shop = '*' THEN 'forgotten'"
    " ELSE 'unsubscribed' END AS kind FROM suppressions"
    " WHERE email IN ({email}, {hashed}) AND shop IN ({shop}, '*')"
    " UNION ALL SELECT 'bounced' FROM bounces WHERE email = {email} AND hard > 0)"
    " ORDER BY kind = 'bounced' DESC, kind = 'unsubscribed' DESC LIMIT 1"
)


_DECISION_FACTS = (
    "SELECT"  # noqa: S608 - our own constant, no input
    " (SELECT id FROM invitations WHERE shop = ?1 AND reference = ?2),"
    " (SELECT id FROM shipments WHERE shop = ?1 AND reference = ?2 AND status != ?3"
    "  ORDER BY id LIMIT 1),"
    f" ({_SUPPRESSION.format(shop='?1', email='?4', hashed='?5')}),"
    " (SELECT id FROM invitations WHERE shop = ?1 AND customer_email = ?4"
    "  AND created_at >= ?6 AND status IN (?7, ?8) ORDER BY id DESC LIMIT 1)"
)


def _status_and_shop(status: str | None, shop: str | None) -> tuple[str, list[Any]]:
    """The optional `status` and `shop` filters of a listing, as SQL and its arguments."""
    where, args = "", []
    if status:
        where += " AND status = ?"
        args.append(status)
    if shop:
        where += " AND shop = ?"
        args.append(shop)
    return where, args


class Queries:
    """Every SQL statement mailrelay runs, bound to one connection (a transaction or a reader)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def each(self, step: Callable[[Queries], T]) -> T | BaseException:
        """Run one unit of a batched job in its own savepoint: its failure is returned, and
        undone, without undoing its neighbours."""
        self.conn.execute("SAVEPOINT step")
        try:
            result = step(self)
        except Exception as exc:  # noqa: BLE001 - handed back to the caller
            self.conn.execute("ROLLBACK TO step")
            self.conn.execute("RELEASE step")
            return exc
        self.conn.execute("RELEASE step")
        return result

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        """INSERT one row; table and column names come from our code, never from input."""
        cur = self.conn.execute(_insert_sql(table, tuple(row)), tuple(row.values()))
        if cur.lastrowid is None:
            raise StoreError(f"insert into {table} returned no row id")
        return cur.lastrowid

    # messages
    def insert_message(self, msg: NewMessage) -> int | None:
        """Store a raw message once per dedupe key; returns the new row id or None if known."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO messages (received_at, peer, mail_from, rcpt, shop, kind,"
            " message_id, dedupe_key, size, state) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
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
            ),
        )
        if not cur.rowcount:
            return None
        self.conn.execute("INSERT INTO message_bodies (id, raw) VALUES (?, ?)",
                          (cur.lastrowid, msg.raw))
        return cur.lastrowid

    def pending_messages(self, limit: int, after: int = 0) -> list[InboundMessage]:
        """Messages still waiting for a worker, oldest first, with ids above `after`."""
        rows = self.conn.execute(
            "SELECT m.id, received_at, shop, kind, rcpt, mail_from, message_id, peer,"
            " COALESCE(b.raw, x'') AS raw FROM messages m LEFT JOIN message_bodies b"
            " ON b.id = m.id WHERE state = ? AND m.id > ? ORDER BY m.id LIMIT ?",
            (MessageState.RECEIVED, after, limit),
        ).fetchall()
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

    def erase_message_body(self, message_row_id: int) -> None:
        """Drop one message's raw bytes (a trigger naming an address erased by `forget`)."""
        self.conn.execute("DELETE FROM message_bodies WHERE id = ?", (message_row_id,))

    def count_messages(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    # shipments
    def insert_shipment(self, row: dict[str, Any]) -> int:
        """Insert a shipment; its JSON columns come as lists, or already as JSON text."""
        row = dict(row)
        for key in ("tags", "products", "defects"):
            value = row.get(key)
            if not isinstance(value, str):
                row[key] = json.dumps(value, ensure_ascii=False) if value else "[]"
        return self._insert("shipments", row)

    def set_shipment_status(self, shipment_id: int, status: ShipmentStatus, reason: str) -> None:
        self.conn.execute(
            "UPDATE shipments SET status = ?, reason = ? WHERE id = ?",
            (status, reason, shipment_id),
        )

    def list_shipments(
        self, status: str | None = None, shop: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, shop, received_at, message_id, sender, customer_email, customer_name,"
            " reference, reference_rule, locale, send_at, tags, products, source, defects, status,"
            " reason FROM shipments WHERE 1=1"
        )
        where, args = _status_and_shop(status, shop)
        sql += where + " ORDER BY id"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        out = []
        for r in self.conn.execute(sql, args):
            d = dict(r)
            for key in ("tags", "products", "defects"):
                d[key] = json.loads(d[key] or "[]")
            out.append(d)
        return out

    def count_shipments(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM shipments").fetchone()[0])

    def decision_facts(
        self, shop: str, reference: str | None, email: str, since: datetime
    ) -> DecisionFacts:
        """Everything `intake.decide` looks up, in one statement: the invitation and the
        earliest non-rejected shipment holding `reference` (none when it is None), whether
        `email` is suppressed, and its newest live invitation created since `since`."""
        row = self.conn.execute(
            _DECISION_FACTS,
            (shop, reference, ShipmentStatus.REJECTED, email, address_hash(email),
             to_iso(since), InvitationStatus.SCHEDULED, InvitationStatus.SENT),
        ).fetchone()
        return DecisionFacts(row[0], row[1], row[2] is not None, row[3], row[2])

    # invitations
    def next_invitation_id(self) -> int:
        """The id the next invitation gets when inserted with it (inside the writer only:
        nothing else inserts between this and that INSERT)."""
        return int(self.conn.execute(
            "SELECT COALESCE(MAX(id), 0) + 1 FROM invitations").fetchone()[0])

    def invitation_for_reference(self, shop: str, reference: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM invitations WHERE shop = ? AND reference = ?", (shop, reference)
        ).fetchone()
        return dict(row) if row else None

    def insert_invitation(self, row: dict[str, Any]) -> int:
        return self._insert("invitations", row)

    def get_invitation(self, invitation_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM invitations WHERE id = ?", (invitation_id,)
        ).fetchone()
        return dict(row) if row else None

    def invitation_by_token(self, token: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM invitations WHERE token = ?", (token,)).fetchone()
        return dict(row) if row else None

    def scheduled_invitations(
        self, shop: str, reference: str | None = None, email: str | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM invitations WHERE shop = ? AND status = ?"
        args: list[Any] = [shop, InvitationStatus.SCHEDULED]
        if reference is not None:
            sql += " AND reference = ?"
            args.append(reference)
        if email is not None:
            sql += " AND customer_email = ?"
            args.append(email)
        return [dict(r) for r in self.conn.execute(sql, args)]

    def cancel_invitation(self, invitation_id: int, reason: str) -> bool:
        """Cancel a scheduled invitation and any of its mail not yet handed to a server."""
        cur = self.conn.execute(
            "UPDATE invitations SET status = ?, reason = ?, reminder_due_at = NULL"
            " WHERE id = ? AND status = ?",
            (InvitationStatus.CANCELLED, reason, invitation_id, InvitationStatus.SCHEDULED),
        )
        self.cancel_queued_mail(invitation_id, reason)
        return cur.rowcount == 1

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

    def cancel_queued_mail(self, invitation_id: int, reason: str) -> None:
        self.conn.execute(
            "UPDATE outbox SET status = ?, last_error = ? WHERE invitation_id = ? AND status = ?",
            (OutboxStatus.CANCELLED, f"cancelled: {reason}", invitation_id, OutboxStatus.QUEUED),
        )

    # due work
    def due_invitations(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Scheduled invitations whose time has come and whose mail is not rendered yet."""
        return [
            dict(r)
            for r in self.conn.execute(
                "SELECT i.*, s.products AS products FROM invitations i"
                " LEFT JOIN shipments s ON s.id = i.shipment_id"
                " WHERE i.status = ? AND i.outbox_id IS NULL AND i.due_at <= ?"
                " ORDER BY i.due_at LIMIT ?",
                (InvitationStatus.SCHEDULED, to_iso(now), limit),
            )
        ]

    def unqueued_invitation(self, invitation_id: int) -> dict[str, Any] | None:
        """A scheduled invitation whose mail is not rendered yet, with its products."""
        row = self.conn.execute(
            "SELECT i.*, s.products AS products FROM invitations i"
            " LEFT JOIN shipments s ON s.id = i.shipment_id"
            " WHERE i.id = ? AND i.status = ? AND i.outbox_id IS NULL",
            (invitation_id, InvitationStatus.SCHEDULED),
        ).fetchone()
        return dict(row) if row else None

    def due_reminders(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Sent invitations without a review whose single reminder is due."""
        return [
            dict(r)
            for r in self.conn.execute(
                "SELECT i.*, s.products AS products FROM invitations i"
                " LEFT JOIN shipments s ON s.id = i.shipment_id"
                " WHERE i.reminder_due_at IS NOT NULL AND i.reminder_due_at <= ?"
                # `+status`: keep SQLite on the reminder index; the status index would scan
                # every sent invitation (measured: 400 ms at 1M rows, 0.01 ms this way).
                " AND +i.status = ? AND i.review_id IS NULL ORDER BY i.reminder_due_at LIMIT ?",
                (to_iso(now), InvitationStatus.SENT, limit),
            )
        ]

    def next_due(self) -> datetime | None:
        """The earliest moment any invitation, reminder or queued mail becomes due."""
        row = self.conn.execute(
            "SELECT MIN(t) FROM ("
            " SELECT MIN(due_at) AS t FROM invitations INDEXED BY idx_invitations_due"
            "  WHERE status = 'scheduled' AND outbox_id IS NULL"
            " UNION ALL SELECT MIN(reminder_due_at) FROM invitations"
            "  WHERE reminder_due_at IS NOT NULL"
            " UNION ALL SELECT MIN(due_at) FROM outbox WHERE status = 'queued')"
        ).fetchone()
        return from_iso(row[0]) if row and row[0] else None

    def set_invitation_status(self, invitation_id: int, status: InvitationStatus,
                              reason: str | None = None) -> None:
        self.conn.execute(
            "UPDATE invitations SET status = ?, reason = COALESCE(?, reason) WHERE id = ?",
            (status, reason, invitation_id),
        )

    # outbox
    def enqueue(self, row: dict[str, Any]) -> int:
        """Store a rendered message; it is sent byte-identically however often it is retried."""
        row = {"status": OutboxStatus.QUEUED, "attempts": 0, **row}
        outbox_id = self._insert("outbox", row)
        sender = str(row.get("envelope_from") or "")
        if "{id}" in sender:  # VERP: the row id is only known now
            self.conn.execute("UPDATE outbox SET envelope_from = ? WHERE id = ?",
                              (sender.replace("{id}", str(outbox_id)), outbox_id))
        return outbox_id

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

    def claim_due_mail(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Claim due queued mail for sending: a conditional UPDATE, so no row is sent twice."""
        ids = [
            r[0]
            for r in self.conn.execute(
                "SELECT id FROM outbox WHERE status = ? AND due_at <= ? ORDER BY due_at, id"
                " LIMIT ?",
                (OutboxStatus.QUEUED, to_iso(now), limit),
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
            dict(r)
            for r in self.conn.execute(
                f"SELECT * FROM outbox WHERE id IN ({marks}) ORDER BY due_at, id",  # noqa: S608
                claimed,
            )
        ]

    def claim_mail(self, outbox_id: int, now: datetime) -> dict[str, Any] | None:
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

    def count_pending_messages(self) -> int:
        """Inbound messages no worker has processed yet (for /healthz)."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM messages WHERE state = ?", (MessageState.RECEIVED,)).fetchone()
        return int(row[0])

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

    def get_mail(self, outbox_id: int) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM outbox WHERE id = ?", (outbox_id,)).fetchone()
        return dict(row) if row else None

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

    def list_mail(self, status: str | None = None, shop: str | None = None
                  ) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, kind, shop, recipient AS \"to\", subject, message_id, status, attempts,"
            " due_at, sent_at, last_error FROM outbox WHERE 1=1"
        )
        where, args = _status_and_shop(status, shop)
        return [dict(r) for r in self.conn.execute(sql + where + " ORDER BY id", args)]

    # reviews
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

    def reply_key(self, key: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM reply_keys WHERE key = ?", (key,)).fetchone()
        return dict(row) if row else None

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

    _REVIEW_LIST = (
        "SELECT r.id, r.shop, r.stars, r.title, r.text, r.reviewer_name, r.customer_email,"
        " r.reference, r.method, r.created_at, r.updated_at, r.locale, r.invitation_id,"
        " p.body AS response, p.created_at AS responded_at, r.first_response_at, r.reported,"
        " r.report_reason, (SELECT group_concat(tag, ',') FROM (SELECT tag FROM review_tags t"
        " WHERE t.review_id = r.id ORDER BY tag)) AS tags"
        " FROM reviews r LEFT JOIN responses p ON p.id = r.response_id"
    )

    def list_reviews(
        self, *, shop: str | None = None, stars: tuple[int, int] | None = None,
        replied: bool | None = None, reported: bool | None = None, tag: str | None = None,
        search: str | None = None, since: datetime | None = None, until: datetime | None = None,
        limit: int | None = None, offset: int = 0, newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Reviews with their current response, filtered as the CLI and the web ask."""
        where: list[str] = []
        args: list[Any] = []
        if shop:
            where.append("r.shop = ?")
            args.append(shop)
        if stars:
            where.append("r.stars BETWEEN ? AND ?")
            args.extend(stars)
        if replied is not None:
            where.append("r.response_id IS NOT NULL" if replied else "r.response_id IS NULL")
        if reported is not None:
            where.append("r.reported = ?")
            args.append(int(reported))
        if tag:
            where.append("EXISTS (SELECT 1 FROM review_tags t WHERE t.review_id = r.id"
                         " AND t.tag = ?)")
            args.append(tag)
        if search:
            where.append("(r.title LIKE ? ESCAPE '\\' OR r.text LIKE ? ESCAPE '\\'"
                         " OR r.reviewer_name LIKE ? ESCAPE '\\' OR r.customer_email LIKE ?"
                         " ESCAPE '\\' OR r.reference LIKE ? ESCAPE '\\')")
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace(
                "_", "\\_") + "%"
            args.extend([pattern] * 5)
        if since:
            where.append("r.created_at >= ?")
            args.append(to_iso(since))
        if until:
            where.append("r.created_at < ?")
            args.append(to_iso(until))
        sql = self._REVIEW_LIST + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY r.created_at DESC, r.id DESC" if newest_first else " ORDER BY r.id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args.extend([limit, offset])
        rows = []
        for r in self.conn.execute(sql, args):
            d = dict(r)
            d["tags"] = d["tags"].split(",") if d["tags"] else []
            d["reported"] = bool(d["reported"])
            rows.append(d)
        return rows

    def rating_summary(self, shop: str) -> dict[str, Any]:
        """Count, average and star distribution of a shop's public (not reported) reviews."""
        dist = {str(n): 0 for n in range(1, 6)}
        for stars, count in self.conn.execute(
            "SELECT stars, COUNT(*) FROM reviews WHERE shop = ? AND reported = 0 GROUP BY stars",
            (shop,),
        ):
            dist[str(stars)] = count
        total = sum(dist.values())
        average = (sum(int(k) * v for k, v in dist.items()) / total) if total else None
        return {"count": total, "average": average, "distribution": dist}

    def customer_context(self, shop: str, email: str, exclude_review: int,
                         limit: int = 3) -> dict[str, list[dict[str, Any]]]:
        """The customer's most recent other reviews, invitations and replies at `shop`, and
        whether mail to them is stopped (for tickets and `reviews show`).

        Only this shop's rows: one shop's agents never see what the customer did at another
        (issue 10 §4). A bounce elsewhere shows as "address bounced", naming no shop.
        """
        reviews = [dict(r) for r in self.conn.execute(
            "SELECT id, shop, stars, title, created_at FROM reviews WHERE shop = ?"
            " AND customer_email = ? AND id != ? ORDER BY created_at DESC LIMIT ?",
            (shop, email, exclude_review, limit))]
        invitations = [dict(r) for r in self.conn.execute(
            "SELECT id, shop, reference, status, sent_at, created_at FROM invitations"
            " WHERE shop = ? AND customer_email = ? AND (review_id IS NULL OR review_id != ?)"
            " ORDER BY created_at DESC LIMIT ?", (shop, email, exclude_review, limit))]
        replies = [dict(r) for r in self.conn.execute(
            "SELECT p.review_id, p.body, p.created_at FROM responses p"
            " JOIN reviews r ON r.id = p.review_id WHERE r.shop = ? AND r.customer_email = ?"
            " AND r.id != ? ORDER BY p.created_at DESC LIMIT ?",
            (shop, email, exclude_review, limit))]
        kind = self.suppression(shop, email)
        status = [{"kind": kind, "mail": SUPPRESSION_TEXT[kind]}] if kind else []
        return {"reviews": reviews, "invitations": invitations, "replies": replies,
                "status": status}

    def shipment_of_invitation(self, invitation_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT s.* FROM shipments s JOIN invitations i ON i.shipment_id = s.id"
            " WHERE i.id = ?", (invitation_id,)).fetchone()
        if row is None:
            return None
        d = dict(row)
        d["products"] = json.loads(d["products"] or "[]")
        return d

    def invitation_message_id(self, invitation_id: int) -> str | None:
        row = self.conn.execute(
            "SELECT message_id FROM outbox WHERE invitation_id = ? AND kind = ? LIMIT 1",
            (invitation_id, OutboxKind.INVITATION),
        ).fetchone()
        return row[0] if row else None

    # replies
    def reply_outcome(self, dedupe_key: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM replies WHERE dedupe_key = ?", (dedupe_key,)).fetchone()
        return dict(row) if row else None

    def record_reply(self, row: dict[str, Any]) -> int:
        """Raises sqlite3.IntegrityError when this reply was processed before."""
        return self._insert("replies", row)

    def ticket_recipient(self, message_id: str) -> tuple[int, str] | None:
        """(review id, agent) of a ticket we sent, found by its Message-ID."""
        row = self.conn.execute(
            "SELECT review_id, recipient FROM outbox WHERE kind = 'ticket' AND message_id = ?",
            (message_id,),
        ).fetchone()
        return (int(row[0]), str(row[1])) if row and row[0] is not None else None

    def replies_by_outcome(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT outcome, COUNT(*) FROM replies GROUP BY outcome")}

    # imap
    def imap_seen(self, mailbox: str, uidvalidity: int, uid: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM imap_seen WHERE mailbox = ? AND uidvalidity = ? AND uid = ?",
            (mailbox, uidvalidity, uid)).fetchone()
        return dict(row) if row else None

    def mark_imap_seen(self, mailbox: str, uidvalidity: int, uid: int, dedupe_key: str,
                       folder: str, now: datetime) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO imap_seen (mailbox, uidvalidity, uid, dedupe_key, folder,"
            " seen_at, moved) VALUES (?,?,?,?,?,?,0)",
            (mailbox, uidvalidity, uid, dedupe_key, folder, to_iso(now)))

    def mark_imap_moved(self, mailbox: str, uidvalidity: int, uid: int) -> None:
        self.conn.execute(
            "UPDATE imap_seen SET moved = 1 WHERE mailbox = ? AND uidvalidity = ? AND uid = ?",
            (mailbox, uidvalidity, uid))

    # bounces
    def mark_bounced(self, outbox_id: int, status: str, now: datetime) -> None:
        self.conn.execute(
            "UPDATE outbox SET status = ?, bounced_at = ?, bounce_status = ? WHERE id = ?",
            (OutboxStatus.BOUNCED, to_iso(now), status, outbox_id))

    def note_bounce(self, email: str, hard: bool, status: str, now: datetime) -> int:
        """Count a bounce for an address; returns its soft (or hard) bounce count now."""
        column = "hard" if hard else "soft"
        self.conn.execute(
            f"INSERT INTO bounces (email, {column}, last_at, last_status) VALUES (?, 1, ?, ?)"  # noqa: S608
            f" ON CONFLICT(email) DO UPDATE SET {column} = {column} + 1,"
            " last_at = excluded.last_at, last_status = excluded.last_status",
            (email, to_iso(now), status))
        row = self.conn.execute(f"SELECT {column} FROM bounces WHERE email = ?",  # noqa: S608
                                (email,)).fetchone()
        return int(row[0])

    def purge_before(self, shop: str, cutoff: datetime) -> int:
        """Erase personal data of a shop's records older than `cutoff`; keeps rows for counts."""
        c = to_iso(cutoff)
        erased = 0
        old_messages = (
            "SELECT id FROM messages WHERE shop = ? AND received_at < ? AND state != ?")
        erased += self.conn.execute(
            f"UPDATE message_bodies SET raw = x'' WHERE id IN ({old_messages})"  # noqa: S608
            " AND length(raw) > 0",
            (shop, c, MessageState.RECEIVED),
        ).rowcount
        self.conn.execute(
            f"UPDATE messages SET mail_from = NULL, peer = NULL WHERE id IN ({old_messages})"  # noqa: S608
            " AND (mail_from IS NOT NULL OR peer IS NOT NULL)",
            (shop, c, MessageState.RECEIVED),
        )
        erased += self.conn.execute(
            "UPDATE shipments SET customer_email = NULL, customer_name = NULL"
            " WHERE shop = ? AND received_at < ? AND customer_email IS NOT NULL",
            (shop, c),
        ).rowcount
        erased += self.conn.execute(
            "UPDATE invitations SET customer_email = '', customer_name = NULL"
            " WHERE shop = ? AND created_at < ? AND status != ? AND customer_email != ''",
            (shop, c, InvitationStatus.SCHEDULED),
        ).rowcount
        erased += self.conn.execute(
            "UPDATE outbox SET raw = x'', recipient = '' WHERE shop = ? AND created_at < ?"
            " AND status IN (?, ?, ?) AND recipient != ''",
            (shop, c, OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.CANCELLED),
        ).rowcount
        # Published reviews stay public; what links them to a person, and hidden text, goes.
        erased += self.conn.execute(
            "UPDATE reviews SET customer_email = NULL WHERE shop = ? AND created_at < ?"
            " AND customer_email IS NOT NULL", (shop, c)).rowcount
        erased += self.conn.execute(
            "UPDATE reviews SET title = NULL, text = NULL, reviewer_name = NULL"
            " WHERE shop = ? AND created_at < ? AND reported = 1 AND text IS NOT NULL",
            (shop, c)).rowcount
        erased += self.conn.execute(
            "UPDATE notes SET body = '' WHERE created_at < ? AND body != '' AND review_id IN"
            " (SELECT id FROM reviews WHERE shop = ?)", (c, shop)).rowcount
        return erased

    # erasure (the decisions live in privacy.py; these are its statements)
    def stored_mail(self, table: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """(id, raw) of stored raw mail, inbound (`message_bodies`) or outgoing (`outbox`),
        in id order after `after`: `forget` decodes each to find a person."""
        if table not in ("message_bodies", "outbox"):
            raise ValueError(f"no raw mail in {table!r}")
        return [(int(r[0]), bytes(r[1])) for r in self.conn.execute(
            f"SELECT id, raw FROM {table} WHERE id > ? AND length(raw) > 0"  # noqa: S608
            " ORDER BY id LIMIT ?", (after, limit))]

    def forget(self, email: str, now: datetime, *, messages: Iterable[int] = (),
               outbox: Iterable[int] = ()) -> Erasure:
        """Erase one person's data everywhere (GDPR art. 17) and suppress the address by hash.

        `messages` and `outbox` are the ids of stored raw mail found to name the person
        (privacy.py decodes every part to find them); the mail stored for their shipments,
        about their reviews and to their address goes too. Their reviews keep only the star
        rating; the responses, notes and tags on them, and the keys to answer them, go.
        Rows stay, with the personal fields emptied, so counts survive.
        """
        email = email.strip().lower()
        counts: dict[str, int] = {}

        def run(name: str, sql: str, args: tuple[Any, ...]) -> None:
            counts[name] = counts.get(name, 0) + self.conn.execute(sql, args).rowcount

        def ids(sql: str, args: tuple[Any, ...]) -> list[int]:
            return [int(r[0]) for r in self.conn.execute(sql, args) if r[0] is not None]

        reviews = ids("SELECT id FROM reviews WHERE lower(customer_email) = ?", (email,))
        invitations = ids("SELECT id FROM invitations WHERE lower(customer_email) = ?", (email,))
        review_list, invitation_list = json.dumps(reviews), json.dumps(invitations)
        # Inbound mail: named in its bytes, a trigger of their shipments, a reply about their
        # reviews (by Message-ID: an agent's reply need not repeat the address), or sent by them.
        message_ids = set(messages) | set(ids(
            "SELECT message_row_id FROM shipments WHERE lower(customer_email) = ?1"
            " UNION SELECT id FROM messages WHERE lower(mail_from) = ?1"
            " UNION SELECT m.id FROM messages m JOIN replies p ON p.message_id = m.message_id"
            " WHERE p.review_id IN (SELECT value FROM json_each(?2))", (email, review_list)))
        mentioned = json.dumps(sorted(message_ids))
        run("messages", "UPDATE messages SET mail_from = NULL, peer = NULL, state = ?,"
            " processed_at = COALESCE(processed_at, ?), result = CASE WHEN state = ?"
            " THEN 'erased on request' ELSE result END"
            " WHERE id IN (SELECT value FROM json_each(?))",
            (MessageState.PROCESSED, to_iso(now), MessageState.RECEIVED, mentioned))
        self.conn.execute("DELETE FROM message_bodies WHERE id IN (SELECT value FROM json_each(?))",
                          (mentioned,))
        run("shipments", "UPDATE shipments SET customer_email = NULL, customer_name = NULL"
            " WHERE lower(customer_email) = ?", (email,))
        self.conn.execute("UPDATE shipments SET sender = NULL WHERE lower(sender) = ?", (email,))
        for invitation_id in ids("SELECT id FROM invitations WHERE id IN"
                                 " (SELECT value FROM json_each(?)) AND status = ?",
                                 (invitation_list, InvitationStatus.SCHEDULED)):
            self.cancel_invitation(invitation_id, "erased on request")
        run("invitations", "UPDATE invitations SET customer_email = '', customer_name = NULL,"
            " reminder_due_at = NULL, reason = 'erased on request'"
            " WHERE id IN (SELECT value FROM json_each(?))", (invitation_list,))
        # Outgoing mail: to them, about their invitations and reviews (tickets, notices,
        # responses), or naming them anywhere.
        outbox_ids = json.dumps(sorted(set(outbox) | set(ids(
            "SELECT id FROM outbox WHERE lower(recipient) = ?1"
            " OR invitation_id IN (SELECT value FROM json_each(?2))"
            " OR review_id IN (SELECT value FROM json_each(?3))",
            (email, invitation_list, review_list)))))
        erased_mail = frozenset(str(r[0]) for r in self.conn.execute(
            "SELECT message_id FROM outbox WHERE id IN (SELECT value FROM json_each(?))",
            (outbox_ids,)))
        run("outbox", "UPDATE outbox SET raw = x'', recipient = '', subject = NULL,"
            " last_error = NULL,"
            " status = CASE WHEN status IN ('queued', 'sending') THEN 'cancelled' ELSE status END"
            " WHERE id IN (SELECT value FROM json_each(?))", (outbox_ids,))
        # Their reviews keep an anonymous star rating, hidden; what was said about them goes.
        run("reviews", "UPDATE reviews SET customer_email = NULL, reviewer_name = NULL,"
            " title = NULL, text = NULL, reference = NULL, reported = 1,"
            " report_reason = 'erased on request', response_id = NULL, ticket_state = NULL"
            " WHERE id IN (SELECT value FROM json_each(?))", (review_list,))
        for table in ("responses", "notes", "review_tags", "reply_keys"):
            run(table, f"DELETE FROM {table} WHERE review_id IN"  # noqa: S608
                " (SELECT value FROM json_each(?))", (review_list,))
        run("replies", "UPDATE replies SET from_address = NULL WHERE lower(from_address) = ?",
            (email,))
        run("reply_notices", "DELETE FROM reply_notices WHERE lower(address) = ?", (email,))
        run("bounces", "DELETE FROM bounces WHERE lower(email) = ?", (email,))
        run("suppressions", "DELETE FROM suppressions WHERE lower(email) = ?", (email,))
        run("trigger_senders", "DELETE FROM trigger_senders WHERE lower(sender) = ?", (email,))
        counts["other fields"] = self._scrub_text(email)
        self.conn.execute(
            "INSERT OR IGNORE INTO suppressions (shop, email, created_at, reason)"
            " VALUES ('*', ?, ?, 'forgotten on request')", (address_hash(email), to_iso(now)))
        return Erasure(counts, erased_mail)

    def _scrub_text(self, email: str) -> int:
        """The address wherever else a text column holds it (an error text, someone else's
        note quoting it), cut out: the targeted statements above cannot know every column."""
        pattern = address_pattern(email)
        changed = 0
        tables = [str(r[0]) for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            columns = [str(r[1]) for r in self.conn.execute(
                f"PRAGMA table_info({table})") if str(r[2]).upper() in ("TEXT", "")]
            for column in columns:
                rows = self.conn.execute(
                    f"SELECT rowid, {column} FROM {table}"  # noqa: S608
                    f" WHERE typeof({column}) = 'text' AND instr(lower({column}), ?) > 0",
                    (email,)).fetchall()
                update = f"UPDATE {table} SET {column} = ? WHERE rowid = ?"  # noqa: S608
                for rowid, value in rows:
                    if not pattern.search(value):
                        continue  # only part of a longer address
                    try:
                        self.conn.execute(update, (pattern.sub("[erased]", value), rowid))
                    except sqlite3.IntegrityError:  # a unique key (a Message-ID) stays unique
                        self.conn.execute(update, (f"[erased {table} {rowid}]", rowid))
                    changed += 1
        return changed

    def audit(self, action: str, detail: dict[str, Any], now: datetime,
              actor: str = "mailrelay") -> None:
        self.conn.execute(
            "INSERT INTO audit (at, action, actor, detail) VALUES (?,?,?,?)",
            (to_iso(now), action, actor, json.dumps(detail, sort_keys=True)))

    # stats
    def stats(self, shop: str, since: datetime | None,
              until: datetime | None = None) -> dict[str, Any]:
        """The numbers `mailrelay stats` prints for one shop; purged rows still count."""
        lo = to_iso(since) if since else ""
        hi = to_iso(until) if until else "9999"
        shipments = {r[0]: r[1] for r in self.conn.execute(
            "SELECT status, COUNT(*) FROM shipments WHERE shop = ? AND received_at >= ?"
            " AND received_at < ? GROUP BY status ORDER BY status", (shop, lo, hi))}
        sent = int(self.conn.execute(
            "SELECT COUNT(*) FROM invitations WHERE shop = ? AND sent_at IS NOT NULL"
            " AND sent_at >= ? AND sent_at < ? AND method != 'link'", (shop, lo, hi)
        ).fetchone()[0])
        rows = self.conn.execute(
            "SELECT stars, created_at, first_response_at FROM reviews WHERE shop = ?"
            " AND created_at >= ? AND created_at < ?", (shop, lo, hi)).fetchall()
        stars = {str(n): 0 for n in range(1, 6)}
        delays: list[float] = []
        for star, created, first in rows:
            stars[str(star)] += 1
            if first:
                delays.append((datetime.fromisoformat(first)
                               - datetime.fromisoformat(created)).total_seconds())
        count = len(rows)
        delays.sort()
        median = None
        if delays:
            mid = len(delays) // 2
            median = delays[mid] if len(delays) % 2 else (delays[mid - 1] + delays[mid]) / 2
        return {
            "shop": shop,
            "shipments": shipments,
            "invitations_sent": sent,
            "reviews": count,
            "conversion": round(count / sent, 4) if sent else None,
            "stars": stars,
            "average": round(sum(int(k) * v for k, v in stars.items()) / count, 2)
            if count else None,
            "response_rate": round(len(delays) / count, 4) if count else None,
            "median_first_response_s": median,
        }

    def counts(self, table: str, column: str) -> dict[str, int]:
        """Row counts grouped by one column (for /metrics); names come from our code."""
        return {str(k): int(v) for k, v in self.conn.execute(
            f"SELECT {column}, COUNT(*) FROM {table} GROUP BY {column}")}  # noqa: S608

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

    def list_invitations(
        self, status: str | None = None, shop: str | None = None
    ) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, shop, shipment_id, customer_email, customer_name, reference, method,"
            " status, due_at, sent_at, reminder_due_at, review_id, locale, reason"
            " FROM invitations WHERE 1=1"
        )
        where, args = _status_and_shop(status, shop)
        return [dict(r) for r in self.conn.execute(sql + where + " ORDER BY id", args)]

    def count_invitations(self, status: str | None = None) -> int:
        if status:
            row = self.conn.execute(
                "SELECT COUNT(*) FROM invitations WHERE status = ?", (status,)
            ).fetchone()
        else:
            row = self.conn.execute("SELECT COUNT(*) FROM invitations").fetchone()
        return int(row[0])

    # suppressions and senders
    def suppression(self, shop: str, email: str) -> str | None:
        """Why `email` gets no mail from `shop`: "bounced" (a bounce at any shop of the relay:
        the address is dead for all of them), "unsubscribed" (from this shop only),
        "forgotten" (`forget`), or None."""
        row = self.conn.execute(
            _SUPPRESSION.format(shop="?1", email="?2", hashed="?3"),
            (shop, email, address_hash(email)),
        ).fetchone()
        return str(row[0]) if row else None

    def is_suppressed(self, shop: str, email: str) -> bool:
        return self.suppression(shop, email) is not None

    def unsubscribed(self, shop: str, email: str) -> bool:
        """Whether the customer unsubscribed from this very shop (the unsubscribe page)."""
        return self.conn.execute(
            "SELECT 1 FROM suppressions WHERE shop = ? AND email = ? LIMIT 1", (shop, email)
        ).fetchone() is not None

    def suppress(self, shop: str, email: str, now: datetime, reason: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO suppressions (shop, email, created_at, reason) VALUES (?,?,?,?)",
            (shop, email, to_iso(now), reason),
        )

    def note_trigger_sender(self, shop: str, sender: str, now: datetime) -> bool:
        """Record that `sender` triggered for `shop`; True when it is the first time.

        One UPSERT (SQLite >= 3.35 for RETURNING): a row starts at count 1 and only ever
        grows, so a returned count of 1 means the row was just inserted.
        """
        at = to_iso(now)
        row = self.conn.execute(
            "INSERT INTO trigger_senders (shop, sender, first_seen_at, last_seen_at, count)"
            " VALUES (?1, ?2, ?3, ?3, 1) ON CONFLICT (shop, sender) DO UPDATE"
            " SET last_seen_at = excluded.last_seen_at, count = count + 1 RETURNING count",
            (shop, sender, at),
        ).fetchone()
        return row is not None and row[0] == 1


# --- the store --------------------------------------------------------------------------------


class _Job(NamedTuple):
    """A queued write and where its outcome goes: a `concurrent.futures.Future` from `submit`
    (for threads) or an `asyncio.Future` of the caller's loop from `write`."""

    fn: Callable[[Queries], Any]
    future: concurrent.futures.Future[Any] | asyncio.Future[Any]
    small: bool  # see `Store.submit`
    pure: bool  # see `Store.submit`


#: A finished job: its future, whether it succeeded, and its value or exception.
_Done = tuple[concurrent.futures.Future[Any] | asyncio.Future[Any], bool, Any]


class _Wake:
    """Put on the writer's queue for each background job (those wait in their own deque)."""


_WAKE = _Wake()


class _Rerun(Exception):
    """A pure job failed outside a savepoint: the transaction must be run again, guarded."""


def _still_wanted(fut: concurrent.futures.Future[Any] | asyncio.Future[Any]) -> bool:
    """False when the caller gave up before the writer began (nothing was promised)."""
    if isinstance(fut, concurrent.futures.Future):
        return fut.set_running_or_notify_cancel()
    # Read from the writer thread without the loop's help: at worst a cancel that lands just
    # after this check lets the write run, as with a begun job.
    return not fut.cancelled()


def _settle_in_loop(done: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """Hand a committed batch's outcomes to their awaiting tasks (runs in their event loop)."""
    for fut, ok, value in done:
        if fut.done():
            continue  # its task was cancelled meanwhile; the write stands all the same
        if ok:
            fut.set_result(value)
        elif isinstance(value, StopIteration):
            # An asyncio future refuses StopIteration (TypeError): it would never resolve.
            fut.set_exception(RuntimeError(f"write raised {value!r}"))
        else:
            fut.set_exception(value)


class Store:
    """SQLite in WAL mode; every write goes through one thread that commits in groups."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # 0600 from the start; SQLite gives the -wal and -shm files the database's mode.
            create_private_file(path)
        except OSError as exc:
            raise StoreError(f"cannot create store {path}: {exc}") from exc
        try:
            conn = _connect(path)
            self.schema_version = migrate(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        self._writer_conn = conn
        self._journal_in_memory = False  # the writer's temp_store: see `_commit_batch`
        self._queue: queue.SimpleQueue[_Job | _Wake | None] = queue.SimpleQueue()
        #: Background jobs with when they were queued (see `_run_writer`).
        self._background: collections.deque[tuple[_Job, float]] = collections.deque()
        self.background_max_wait = BACKGROUND_MAX_WAIT
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self.commits = 0
        self.batched_writes = 0
        self._thread = threading.Thread(target=self._run_writer, name="store-writer", daemon=True)
        self._thread.start()

    # writes
    def submit(
        self, fn: Callable[[Queries], T], *, small: bool = False, background: bool = False,
        pure: bool = False,
    ) -> concurrent.futures.Future[T]:
        """Queue `fn` to run inside the next group transaction (from any thread).

        `small`: `fn` changes a bounded number of pages (a few messages' worth), so the
        transaction may keep its undo pages in memory (see `_commit_batch`).
        `background`: work nobody is waiting on (intake turning stored mail into shipments);
        it runs in a transaction of its own after the writes queued before it, so an SMTP
        250 never waits for a batch of intake's (see `_run_writer`).
        `pure`: `fn` does nothing but SQL through its `Queries`, so it may run a second time
        after a rollback; it then goes without a savepoint of its own (see `_run_jobs`).
        """
        if self._closed:
            raise StoreError("store is closed")
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._enqueue(_Job(fn, fut, small, pure), background)
        return fut

    async def write(
        self, fn: Callable[[Queries], T], *, small: bool = False, background: bool = False,
        pure: bool = False,
    ) -> T:
        """Run `fn` in the writer thread; returns after its transaction is committed to disk.

        The writer resolves the awaited future itself, with one `call_soon_threadsafe` for all
        of a batch's writes from this loop (not a `concurrent.futures.Future` plus
        `wrap_future` per write: that was a wake-up of the loop per write; bench/intake_path.py).
        Cancelling the caller: a write the writer has not begun yet is skipped; one it has
        begun still commits, the caller just does not hear of it (as with `wrap_future`).
        `small`, `background` and `pure` as for `submit`.
        """
        if self._closed:
            raise StoreError("store is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue(_Job(fn, fut, small, pure), background)
        return await fut

    def write_sync(self, fn: Callable[[Queries], T], *, small: bool = False) -> T:
        return self.submit(fn, small=small).result()

    def _enqueue(self, job: _Job, background: bool) -> None:
        if background:
            self._background.append((job, time.monotonic()))
            self._queue.put(_WAKE)  # after the append: a woken writer finds the job
        else:
            self._queue.put(job)

    def _run_writer(self) -> None:
        """Commit whatever is queued as one group; a background job only when nothing else
        is waiting, or once it has waited `background_max_wait` (a steady stream of 250s
        must not starve intake)."""
        conn = self._writer_conn
        tx = Queries(conn)
        stop = False
        while not stop:
            item: _Job | _Wake | None
            if self._background:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = _WAKE
            else:
                item = self._queue.get()
            batch: list[_Job] = []
            while True:
                if item is None:
                    stop = True
                    break
                if not isinstance(item, _Wake):
                    batch.append(item)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit_batch(conn, tx, batch)
            if self._background and (
                    not batch
                    or time.monotonic() - self._background[0][1] >= self.background_max_wait):
                self._commit_batch(conn, tx, [self._background.popleft()[0]])
        while self._background:  # closing: every queued job still runs
            self._commit_batch(conn, tx, [self._background.popleft()[0]])
        conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, tx: Queries, batch: list[_Job]) -> None:
        cur = conn.cursor()  # one cursor for the batch's own statements
        # The savepoint around each job (and each `Queries.each` step) keeps the original of
        # every page the job changes in a sub-journal. Past 64 KiB, within one intake batch
        # (Debian's SQLite also zeroes freed pages: secure_delete), SQLite spills it to a
        # temporary file, written page by page and deleted again in every such transaction:
        # half of intake's writer CPU when a claim still rewrote the raw message
        # (bench/intake_path.py). Kept in memory it costs a page of RAM per page changed until
        # the job's RELEASE, which only jobs marked `small` may spend: the daily purge would
        # hold a day of mail (200 MB for 40,000 5 KB messages). temp_store applies per
        # transaction and may only change between them. Durability is untouched: the WAL and
        # its fsync are no temporary storage.
        in_memory = all(job.small for job in batch)
        live = [job for job in batch if _still_wanted(job.future)]
        try:
            if in_memory != self._journal_in_memory:
                cur.execute(f"PRAGMA temp_store={'MEMORY' if in_memory else 'DEFAULT'}")
                self._journal_in_memory = in_memory
            try:
                done = self._run_jobs(cur, tx, live, guard_all=False)
            except _Rerun:
                # A pure job failed without a savepoint: undo the lot, run it again guarded.
                cur.execute("ROLLBACK")
                done = self._run_jobs(cur, tx, live, guard_all=True)
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("store commit failed: %s", exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = StoreError(f"commit failed: {exc}")
            self._settle([(job.future, False, error) for job in live])
            return
        finally:
            cur.close()
        self.commits += 1
        self.batched_writes += len(batch)
        self._settle(done)

    @staticmethod
    def _run_jobs(
        cur: sqlite3.Cursor, tx: Queries, jobs: list[_Job], *, guard_all: bool
    ) -> list[_Done]:
        """One transaction's jobs, each in a savepoint (one failing job must not undo its
        neighbours' writes) unless it is pure.

        Every statement hands the GIL back and must win it again from the busy event loop
        (a 5 ms wait at worst, each time), so a savepoint's two statements per job were a
        third of a 250's commit latency under load (bench/ingest.py). A failing pure job
        raises `_Rerun` instead, and the caller runs the whole batch again guarded.
        """
        done: list[_Done] = []
        cur.execute("BEGIN IMMEDIATE")
        for fn, fut, _small, pure in jobs:
            if pure and not guard_all:
                try:
                    value = fn(tx)
                except BaseException as exc:  # noqa: BLE001 - rerun guarded, reported then
                    raise _Rerun from exc
                done.append((fut, True, value))
                continue
            cur.execute("SAVEPOINT job")
            try:
                value = fn(tx)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
                cur.execute("ROLLBACK TO job")
                cur.execute("RELEASE job")
                done.append((fut, False, exc))
            else:
                cur.execute("RELEASE job")
                done.append((fut, True, value))
        return done

    @staticmethod
    def _settle(done: list[_Done]) -> None:
        """Tell every caller of a finished batch (only after its COMMIT, or its failure)."""
        loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for fut, ok, value in done:
            if isinstance(fut, concurrent.futures.Future):
                try:
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
                except concurrent.futures.InvalidStateError:
                    pass  # cancelled while still pending (a failed BEGIN): nobody waits
            else:
                loops.setdefault(fut.get_loop(), []).append((fut, ok, value))
        for loop, items in loops.items():
            try:
                loop.call_soon_threadsafe(_settle_in_loop, items)
            except RuntimeError:  # that loop is closed: nobody is left to tell
                log.debug("store: %d write(s) committed for a closed event loop", len(items))

    # reads
    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def read(self, fn: Callable[[Queries], T]) -> T:
        """Run `fn` against a consistent snapshot on this thread's read connection."""
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            return fn(Queries(conn))
        finally:
            conn.execute("COMMIT")

    async def aread(self, fn: Callable[[Queries], T]) -> T:
        return await asyncio.to_thread(self.read, fn)

    def checkpoint_and_truncate(self) -> bool:
        """Copy the WAL into the database and cut it to zero bytes, so the old page images it
        holds (an erased address, for one) are gone from disk; True when it was truncated.

        Runs on a connection of its own, outside any transaction; waits (busy_timeout) for
        readers of other processes, such as a running daemon, to finish their snapshot.
        """
        conn = _connect(self.path)
        try:
            busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"checkpoint of {self.path} failed: {exc}") from exc
        finally:
            conn.close()
        return not busy

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        with self._readers_lock:
            for conn in self._readers:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:  # closed from its own thread already
                    pass
            self._readers.clear()

