"""The schema: numbered migrations and `migrate`, which brings any older store to the newest.

SQLite-only (sqlite-utils builds the tables). sqlite-utils' own `Migrations` is not used: it
records names in `_sqlite_migrations`, where every existing store records versions in
`schema_migrations`, and `Store.schema_version` is that number.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

import sqlite_utils

from mailrelay.store.timestamps import to_iso

log = logging.getLogger(__name__)


def _migration_1(db: sqlite_utils.Database) -> None:
    """Inbound mail, shipments, invitations, suppressions and trigger senders."""
    _create_messages(db)
    _create_shipments(db)
    _create_invitations(db)
    _create_suppressions(db)


def _create_messages(db: sqlite_utils.Database) -> None:
    db.table("messages").create(
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
    db.table("messages").create_index(["dedupe_key"], unique=True)
    db.execute("CREATE INDEX idx_messages_pending ON messages(id) WHERE state = 'received'")


def _create_shipments(db: sqlite_utils.Database) -> None:
    db.table("shipments").create(
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
    db.table("shipments").create_index(["message_row_id"], unique=True)
    db.table("shipments").create_index(["shop", "reference"])
    db.table("shipments").create_index(["status"])


def _create_invitations(db: sqlite_utils.Database) -> None:
    db.table("invitations").create(
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
    db.table("invitations").create_index(["token"], unique=True)
    db.table("invitations").create_index(["shop", "customer_email"])
    db.table("invitations").create_index(["status", "due_at"])
    # One invitation per order: the natural key that makes a retried trigger harmless.
    db.execute(
        "CREATE UNIQUE INDEX idx_invitations_order ON invitations(shop, reference) "
        "WHERE reference IS NOT NULL"
    )


def _create_suppressions(db: sqlite_utils.Database) -> None:
    db.table("suppressions").create(
        {"shop": str, "email": str, "created_at": str, "reason": str},
        pk=("shop", "email"),
    )
    db.table("trigger_senders").create(
        {"shop": str, "sender": str, "first_seen_at": str, "last_seen_at": str, "count": int},
        pk=("shop", "sender"),
    )


def _migration_2(db: sqlite_utils.Database) -> None:
    """The outbox: every outgoing message, rendered and stored before it is sent."""
    db.table("outbox").create(
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
    db.table("outbox").create_index(["message_id"], unique=True)
    db.table("outbox").create_index(["invitation_id"])
    db.execute("CREATE INDEX idx_outbox_due ON outbox(due_at) WHERE status = 'queued'")
    # One invitation mail and one reminder per invitation, whatever happens.
    db.execute(
        "CREATE UNIQUE INDEX idx_outbox_per_invitation ON outbox(kind, invitation_id)"
        " WHERE invitation_id IS NOT NULL AND kind IN ('invitation', 'reminder')"
    )
    db.table("invitations").add_column("outbox_id", int)
    db.table("invitations").add_column("reminder_sent_at", str)
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
    _create_reviews(db)
    _create_responses(db)
    _create_review_annotations(db)
    db.table("outbox").add_column("review_id", int)


def _create_reviews(db: sqlite_utils.Database) -> None:
    db.table("reviews").create(
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
    db.table("reviews").create_index(["shop", "created_at"])
    db.table("reviews").create_index(["customer_email"])
    db.execute("CREATE INDEX idx_reviews_ticket ON reviews(id) WHERE ticket_state = 'pending'")


def _create_responses(db: sqlite_utils.Database) -> None:
    """Public responses, with their history (a replaced one keeps `replaced_at`)."""
    db.table("responses").create(
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
    db.table("responses").create_index(["review_id"])


def _create_review_annotations(db: sqlite_utils.Database) -> None:
    """Internal notes, tags and the reply keys agents answer tickets with."""
    db.table("notes").create(
        {"id": int, "review_id": int, "body": str, "author": str, "created_at": str},
        pk="id",
        foreign_keys=[("review_id", "reviews", "id")],
    )
    db.table("notes").create_index(["review_id"])
    db.table("review_tags").create(
        {"review_id": int, "tag": str, "created_at": str},
        pk=("review_id", "tag"),
    )
    db.table("reply_keys").create(
        {"key": str, "review_id": int, "agent": str, "created_at": str, "ticket_message_id": str},
        pk="key",
    )
    db.table("reply_keys").create_index(["ticket_message_id"])


def _migration_4(db: sqlite_utils.Database) -> None:
    """Agent replies processed (once each), notices sent to agents, IMAP messages seen."""
    db.table("replies").create(
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
    db.table("replies").create_index(["dedupe_key"], unique=True)
    db.table("replies").create_index(["review_id"])
    db.table("reply_notices").create(
        {"address": str, "reason": str, "day": str, "created_at": str},
        pk=("address", "reason", "day"),
    )
    db.table("imap_seen").create(
        {"mailbox": str, "uidvalidity": int, "uid": int, "dedupe_key": str, "folder": str,
         "seen_at": str, "moved": int},
        pk=("mailbox", "uidvalidity", "uid"),
        defaults={"moved": 0},
    )
    db.execute("CREATE INDEX idx_outbox_tickets ON outbox(message_id) WHERE kind = 'ticket'")


def _migration_5(db: sqlite_utils.Database) -> None:
    """An audit trail of erasures (purge, retention, forget) and bounce bookkeeping."""
    db.table("audit").create(
        {"id": int, "at": str, "action": str, "actor": str, "detail": str},
        pk="id",
        not_null={"at", "action"},
    )
    db.table("outbox").add_column("bounced_at", str)
    db.table("outbox").add_column("bounce_status", str)
    db.table("bounces").create(
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


def _migration_7(db: sqlite_utils.Database) -> None:
    """A trigger block's `senderName` and `replyTo` (SPEC: the From display name and the
    Reply-To of that customer's invitation): parsed since the block was, stored from now on."""
    db.table("shipments").add_column("sender_name", str)
    db.table("shipments").add_column("reply_to", str)


def _migration_8(db: sqlite_utils.Database) -> None:
    """Product reviews (issue 13): a star rating and text per product of the order, given with
    the service review and linked to it; `n` is the product's 1-based position in the
    trigger's list, the identity columns are the product as the trigger named it."""
    db.execute(
        "CREATE TABLE product_reviews (id INTEGER PRIMARY KEY,"
        " review_id INTEGER NOT NULL REFERENCES reviews(id), shop TEXT NOT NULL, sku TEXT,"
        " n INTEGER NOT NULL, name TEXT, url TEXT, image TEXT, gtin TEXT, mpn TEXT,"
        " brand TEXT, stars INTEGER NOT NULL, text TEXT, created_at TEXT NOT NULL,"
        " updated_at TEXT NOT NULL)")
    db.execute("CREATE UNIQUE INDEX idx_product_reviews_review ON product_reviews(review_id, n)")
    # A product page: one product of one shop, newest first.
    db.execute(
        "CREATE INDEX idx_product_reviews_sku ON product_reviews(shop, sku, created_at)")
    # A shop's figures per product, read from the index alone, and the reviews' hidden flag
    # without reading their text: 250 ms → 57 ms for 100,000 product reviews of 2,000 SKUs.
    db.execute("CREATE INDEX idx_product_reviews_figures"
               " ON product_reviews(shop, sku, stars, created_at, review_id)")
    db.execute("CREATE INDEX idx_reviews_reported ON reviews(id, reported)")
    # A shop's feed, newest first: 185 ms → 1 ms for the newest 1,000 of those.
    db.execute("CREATE INDEX idx_product_reviews_time ON product_reviews(shop, created_at)")


def _migration_9(db: sqlite_utils.Database) -> None:
    """The console's accounts (issue 14): users, their shops and roles, sessions, and the
    one-time links that set a password. Tokens are stored as SHA-256 hashes only."""
    db.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
        " password_hash TEXT, totp_secret TEXT, created_at TEXT NOT NULL, password_set_at TEXT)")
    db.execute(
        "CREATE TABLE memberships (user_id INTEGER NOT NULL REFERENCES users(id),"
        " shop TEXT NOT NULL, role TEXT NOT NULL, created_at TEXT NOT NULL,"
        " PRIMARY KEY (user_id, shop))")
    db.execute("CREATE INDEX idx_memberships_shop ON memberships(shop, role)")
    db.execute(
        "CREATE TABLE sessions (token_hash TEXT PRIMARY KEY,"
        " user_id INTEGER NOT NULL REFERENCES users(id), created_at TEXT NOT NULL,"
        " expires_at TEXT NOT NULL)")
    db.execute("CREATE INDEX idx_sessions_user ON sessions(user_id)")
    db.execute(
        "CREATE TABLE password_links (token_hash TEXT PRIMARY KEY,"
        " user_id INTEGER NOT NULL REFERENCES users(id), created_at TEXT NOT NULL,"
        " expires_at TEXT NOT NULL, used_at TEXT)")
    db.execute("CREATE INDEX idx_password_links_user ON password_links(user_id)")


def _migration_10(db: sqlite_utils.Database) -> None:
    """Moderation (issue 14): an agent's report waits for an owner's decision before the
    review is hidden. One row per report: who, why, when, and the decision (who, when, note)."""
    db.execute(
        "CREATE TABLE review_reports (id INTEGER PRIMARY KEY,"
        " review_id INTEGER NOT NULL REFERENCES reviews(id), shop TEXT NOT NULL,"
        " reporter TEXT NOT NULL, reason TEXT NOT NULL, created_at TEXT NOT NULL,"
        " state TEXT NOT NULL DEFAULT 'pending', decided_by TEXT, decided_at TEXT,"
        " decision_note TEXT, category TEXT)")
    db.execute("CREATE INDEX idx_review_reports_shop ON review_reports(shop, state, id)")
    db.execute("CREATE INDEX idx_review_reports_review ON review_reports(review_id)")


def _migration_11(db: sqlite_utils.Database) -> None:
    """The owners' dashboard, ledgers and inbox (issue 14), each read from an index alone
    (bench/console.py, 100,000 reviews): a shop's shipments by time and status and its
    invitations by time (the funnel: 300 ms → 70 ms); its reviews by time with their stars and
    hidden flag, and the first answer by a person (the weekly figures); its hidden reviews; its
    shipments by customer (the ledger's search); and its reviews awaiting an answer, 1–3★
    first, oldest first (the inbox's page: 80 ms → 0.1 ms)."""
    db.execute("CREATE INDEX idx_shipments_time ON shipments(shop, received_at, status)")
    db.execute("CREATE INDEX idx_shipments_customer ON shipments(shop, customer_email)")
    db.execute("CREATE INDEX idx_invitations_time"
               " ON invitations(shop, created_at, shipment_id, sent_at, review_id)")
    db.execute("CREATE INDEX idx_reviews_figures ON reviews(shop, created_at, reported, stars,"
               " response_id)")
    db.execute("CREATE INDEX idx_responses_first ON responses(review_id, source, created_at)")
    db.execute("CREATE INDEX idx_reviews_hidden ON reviews(shop, invitation_id)"
               " WHERE reported != 0")
    db.execute("CREATE INDEX idx_reviews_inbox ON reviews(shop, (stars > 3), created_at, stars)"
               " WHERE response_id IS NULL AND reported = 0")


def _migration_12(db: sqlite_utils.Database) -> None:
    """The agents' daily digest (issue 14): the last local date each shop's digest was done,
    so that a restart never mails a day's digest twice."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS digests (shop TEXT PRIMARY KEY, last_date TEXT NOT NULL,"
        " done_at TEXT NOT NULL)")


def _migration_13(db: sqlite_utils.Database) -> None:
    """The console with 100,000 reviews (issue 14, bench/console.py). Each review keeps when a
    person first answered it: `first_answer_secs`, the seconds from the review to its first
    response by a person (an automatic response, source 'auto', is no answer), NULL while
    there is none; filled from the responses stored. The weekly figures read it with the stars
    from one covering index instead of looking up the responses of every answered review
    (52 weeks: 83 ms → 12 ms); whole seconds rather than the time, since the median needs the
    delay and julianday() on every row cost 9 ms more. Indexes: the inbox's counts from its
    own index alone, and the funnel's shipments per status without sorting the period's."""
    db.execute("ALTER TABLE reviews ADD COLUMN first_answer_secs INTEGER")
    db.execute(
        "UPDATE reviews SET first_answer_secs = (SELECT CAST(round((julianday(MIN(p.created_at))"
        " - julianday(reviews.created_at)) * 86400) AS INTEGER) FROM responses p"
        " WHERE p.review_id = reviews.id AND p.source != 'auto')"
        " WHERE id IN (SELECT review_id FROM responses WHERE source != 'auto')")
    # Migration 11's index of the figures, with the new column before `response_id`: what it
    # covered it still covers.
    db.execute("DROP INDEX idx_reviews_figures")
    db.execute("CREATE INDEX idx_reviews_figures ON reviews(shop, created_at, reported, stars,"
               " first_answer_secs, response_id)")
    # The columns of its condition (NULL and 0 take no bytes) let the inbox count the waiting
    # reviews per star from the index alone: 9,500 waiting of 40,000, 6 ms → 1.6 ms.
    db.execute("DROP INDEX idx_reviews_inbox")
    db.execute("CREATE INDEX idx_reviews_inbox ON reviews(shop, (stars > 3), created_at, stars,"
               " response_id, reported) WHERE response_id IS NULL AND reported = 0")
    # The funnel's shipments per status: each status's count from one range (52 weeks:
    # 21 ms → 4 ms); idx_shipments_time stays for the retention purge's ranges.
    db.execute("CREATE INDEX idx_shipments_shop_status ON shipments(shop, status, received_at)")


def _migration_14(db: sqlite_utils.Database) -> None:
    """Several relays on one store (issue 15): each claim names the relay that holds it, so a
    restarting relay requeues only its own rows and another takes over a dead relay's rows
    once their lease (`claimed_at`) is old. Inbound messages are held by the relay that
    accepted them, and invitations and reviews by the relay rendering their mail (one relay
    renders each invitation, reminder and ticket).
    (`job_days`, the daily jobs' table, is created on first use.)"""
    db.execute("ALTER TABLE outbox ADD COLUMN claimed_by TEXT")
    # Rows in flight, by claim time: a relay's start and the periodic lease check find them.
    db.execute("CREATE INDEX idx_outbox_sending ON outbox(claimed_at) WHERE status = 'sending'")
    db.execute("ALTER TABLE messages ADD COLUMN claimed_by TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN claimed_at TEXT")
    db.execute("ALTER TABLE invitations ADD COLUMN claimed_by TEXT")
    db.execute("ALTER TABLE invitations ADD COLUMN claimed_at TEXT")
    db.execute("ALTER TABLE reviews ADD COLUMN claimed_by TEXT")
    db.execute("ALTER TABLE reviews ADD COLUMN claimed_at TEXT")


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migration_1, _migration_2, _migration_3, _migration_4, _migration_5, _migration_6,
    _migration_7, _migration_8, _migration_9, _migration_10, _migration_11, _migration_12,
    _migration_13,
    _migration_14,
)


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
