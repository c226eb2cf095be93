"""Schema migrations carry what an older store holds."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlite_utils

from mailrelay import store
from mailrelay.services import privacy
from mailrelay.store import Store

RAW = b"From: shop@acme.example\r\nTo: john@example.com\r\nSubject: Order #7\r\n\r\nbody\r\n"


def version_5_store(path: Path) -> None:
    """A store as schema version 5 left it: raw mail inside `messages`, one of it pending."""
    conn = sqlite3.connect(path, isolation_level=None)
    db = sqlite_utils.Database(conn)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
    for version, step in enumerate(store.MIGRATIONS[:5], start=1):
        step(db)
        conn.execute("INSERT INTO schema_migrations VALUES (?, '2026-11-01T00:00:00+00:00')",
                     (version,))
    for n, state in ((1, "processed"), (2, "received")):
        conn.execute(
            "INSERT INTO messages (id, received_at, rcpt, shop, kind, dedupe_key, raw, size,"
            " state) VALUES (?, '2026-11-01T00:00:00+00:00', 'reviews+acme@relay.test',"
            " 'acme', 'shipment', ?, ?, ?, ?)",
            (n, f"key-{n}", RAW + str(n).encode(), len(RAW) + 1, state))
    conn.close()


def test_migration_6_moves_raw_mail_out_of_messages_and_keeps_pending_mail(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    version_5_store(path)
    with Store(path) as migrated:
        assert migrated.schema_version == len(store.MIGRATIONS) >= 6
        [pending] = migrated.read(lambda q: q.pending_messages(10))
        assert (pending.id, pending.raw) == (2, RAW + b"2")
        columns = migrated.read(
            lambda q: [r[1] for r in q.conn.execute("PRAGMA table_info(messages)")])
        assert "raw" not in columns
        bodies = migrated.read(
            lambda q: q.conn.execute("SELECT id, raw FROM message_bodies ORDER BY id").fetchall())
        assert [(r[0], bytes(r[1])) for r in bodies] == [(1, RAW + b"1"), (2, RAW + b"2")]
        # Erasure reaches the moved mail.
        report = privacy.forget(migrated, "john@example.com", datetime(2026, 12, 1, tzinfo=UTC),
                                maildir=None)
        assert report.counts["messages"] == 2
        left = migrated.read(
            lambda q: q.conn.execute("SELECT COUNT(*) FROM message_bodies WHERE raw != x''")
            .fetchone()[0])
        assert left == 0


def version_12_store(path: Path) -> None:
    """A store as schema version 12 left it, with reviews answered in every way: by a person
    after an automatic response, by two people, only automatically, not at all."""
    conn = sqlite3.connect(path, isolation_level=None)
    db = sqlite_utils.Database(conn)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
    for version, step in enumerate(store.MIGRATIONS[:12], start=1):
        step(db)
        conn.execute("INSERT INTO schema_migrations VALUES (?, '2026-11-01T00:00:00+00:00')",
                     (version,))
    written = "2026-11-02T10:00:00.000000+00:00"
    for review in range(1, 5):
        conn.execute(
            "INSERT INTO reviews (id, shop, method, stars, created_at, reported, response_id)"
            " VALUES (?, 'acme', 'basic', 2, ?, 0, NULL)", (review, written))
    responses = [(1, "auto", "2026-11-02T10:00:00.000000+00:00"),
                 (1, "email", "2026-11-02T13:30:00.000000+00:00"),
                 (2, "console", "2026-11-03T10:00:00.000000+00:00"),
                 (2, "email", "2026-11-02T12:00:00.400000+00:00"),
                 (3, "auto", "2026-11-02T10:00:01.000000+00:00")]
    for review, source, at in responses:
        answer = conn.execute(
            "INSERT INTO responses (review_id, body, author, source, created_at)"
            " VALUES (?, 'Thank you', ?, ?, ?)", (review, source, source, at)).lastrowid
        conn.execute("UPDATE reviews SET response_id = ? WHERE id = ?", (answer, review))
    conn.close()


def test_migration_13_keeps_each_review_s_first_answer_by_a_person(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    version_12_store(path)
    with Store(path) as migrated:
        assert migrated.schema_version == len(store.MIGRATIONS) >= 13
        secs = migrated.read(lambda q: [tuple(r) for r in q.conn.execute(
            "SELECT id, first_answer_secs FROM reviews ORDER BY id")])
        assert secs == [(1, 3.5 * 3600), (2, 2 * 3600), (3, None), (4, None)]
        monday = datetime(2026, 11, 2, tzinfo=UTC)
        [week] = migrated.read(lambda q: q.weekly_figures(
            "acme", [monday, monday + timedelta(days=7)]))
        assert (week.reviews, week.answered, week.median_hours) == (4, 2, 2.75)
