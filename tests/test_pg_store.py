"""What the PostgreSQL store does beyond the shared store tests: a duplicate caught inside a job
keeps the rest of the job, rows read like sqlite3's, two relays draw different invitation ids,
a writer whose connection the server dropped reconnects, and a read waits for a busy pool but
not for a server that is down."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest

from mailrelay.core.errors import DuplicateKey, StoreUnreachable
from mailrelay.store import NewMail, NewMessage, NewReply, Queries
from mailrelay.store.pg.database import PgStore

NOW = datetime(2026, 12, 5, tzinfo=UTC)


def reply(key: str) -> NewReply:
    return NewReply(received_at=NOW, source="smtp", dedupe_key=key, message_id=key,
                    from_address="support@acme.example", review_id=None, outcome="rejected",
                    reason="no key")


def test_a_duplicate_caught_inside_a_job_leaves_the_rest_of_the_job_to_commit(
    pg_database: str,
) -> None:
    """Services catch DuplicateKey and carry on in the same transaction (mail already queued,
    an order invited twice); PostgreSQL would abort the whole transaction without the
    INSERT's savepoint."""
    def mail(message_id: str) -> NewMail:
        return NewMail(kind="ticket", shop="acme", recipient="support@acme.example",
                       envelope_from="bounce@relay.test", subject="Ticket",
                       message_id=message_id, raw=b"mail", created_at=NOW, due_at=NOW)

    def job(q: Queries) -> str:
        q.enqueue(mail("<a@x>"))
        try:
            q.enqueue(mail("<a@x>"))
        except DuplicateKey:
            q.enqueue(mail("<b@x>"))
            return "caught"
        return "not raised"

    with PgStore(pg_database) as store:
        assert store.write_sync(job) == "caught"
        assert [m.message_id for m in store.read(lambda q: q.list_mail())] == ["<a@x>", "<b@x>"]


def test_rows_read_by_position_and_by_name_and_averages_as_floats(pg_database: str) -> None:
    with PgStore(pg_database) as store:
        store.write_sync(lambda q: [q.record_reply(reply(f"<{n}@x>")) for n in range(3)])
        row = store.read(lambda q: q.conn.execute(
            "SELECT id, dedupe_key, AVG(id) OVER () AS mean FROM replies ORDER BY id"
            " LIMIT 1").fetchone())
        assert (row[0], row["dedupe_key"], row["mean"]) == (1, "<0@x>", 2.0)
        assert isinstance(row["mean"], float)


def test_two_relays_on_one_database_never_draw_the_same_invitation_id(
    pg_database: str,
) -> None:
    with PgStore(pg_database) as one, PgStore(pg_database) as two:
        ids = [store.write_sync(lambda q: q.next_invitation_id())
               for store in (one, two, one, two)]
    assert len(set(ids)) == 4


def test_the_writer_reconnects_after_the_server_dropped_its_connection(
    pg_database: str,
) -> None:
    """A database restart or failover ends the relay's sessions; the next write opens a new
    one instead of failing for good."""
    with PgStore(pg_database) as store:
        store.write_sync(lambda q: q.record_reply(reply("<before@x>")))
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = current_database() AND pid != pg_backend_pid()")
            for _ in range(100):
                others = admin.execute(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid != pg_backend_pid()").fetchone()
                if others == (0,):
                    break
                time.sleep(0.05)
        store.write_sync(lambda q: q.record_reply(reply("<after@x>")))
        keys = store.read(lambda q: [r[0] for r in q.conn.execute(
            "SELECT dedupe_key FROM replies ORDER BY id")])
    assert keys == ["<before@x>", "<after@x>"]


def test_a_read_waits_for_a_busy_pool_but_fails_at_once_while_the_server_is_down(
    pg_database: str,
) -> None:
    """A read finding no free connection within a second probes the server: a busy pool is
    waited for (up to 30 s), a server that does not answer fails the read now."""
    with PgStore(pg_database, pool_size=1) as store:
        holding = threading.Event()

        def hold_the_only_connection(q: Queries) -> None:
            holding.set()
            time.sleep(2.5)

        busy = threading.Thread(target=store.read, args=(hold_the_only_connection,))
        busy.start()
        assert holding.wait(5)
        started = time.monotonic()
        assert store.read(lambda q: q.schema_version()) > 0  # waited for the busy one
        assert 1.5 < time.monotonic() - started < 10
        busy.join()

        # The server gone, as the probe sees it (stopping it: tests/test_store_outage.py).
        store.url = pg_database.rsplit(":", 1)[0] + ":1/nowhere"
        holding.clear()
        busy = threading.Thread(target=store.read, args=(hold_the_only_connection,))
        busy.start()
        assert holding.wait(5)
        started = time.monotonic()
        with pytest.raises(StoreUnreachable, match="does not answer"):
            store.read(lambda q: q.schema_version())
        assert time.monotonic() - started < 5
        busy.join()


def test_text_with_a_nul_is_stored_with_u_fffd_in_its_place_and_the_raw_mail_whole(
    pg_database: str,
) -> None:
    """PostgreSQL's text cannot hold NUL (SQLite's can): hostile mail with a NUL in its
    Message-ID was deferred with 451 for ever. The raw mail, bytes, keeps every byte."""
    raw = b"Message-ID: <a\x00b@platform.example>\r\nSubject: x\r\n\r\nbody\x00\r\n"
    with PgStore(pg_database) as store:
        store.write_sync(lambda q: q.insert_message(NewMessage(
            datetime(2026, 12, 5, tzinfo=UTC), "127.0.0.1", "orders@platform.example",
            "reviews+acme@relay.test", "acme", "shipment", "<a\x00b@platform.example>",
            "mid:<a\x00b@platform.example>", raw)))
        [message] = store.read(lambda q: q.pending_messages(10))
        found = store.read(lambda q: q.conn.execute(
            "SELECT COUNT(*) FROM messages WHERE message_id = ?",
            ("<a\x00b@platform.example>",)).fetchone()[0])
    assert message.message_id == "<a\ufffdb@platform.example>"
    assert bytes(message.raw) == raw
    assert found == 1  # a NUL in a query's text is replaced the same way
