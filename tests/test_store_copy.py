"""`mailrelay store copy --to URL`: a SQLite store the real loop filled (two shops, products,
a response, notes, tags, a report, users, webhook events, suppressions, 8-bit and binary mail)
copied into an empty PostgreSQL database row for row and byte for byte; a relay started on the
copy serves what the SQLite one served; a target with rows is refused untouched; counts that
differ fail the command."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config, load
from mailrelay.core.clock import FrozenClock
from mailrelay.services import moderation
from mailrelay.store import NewMessage, Store
from mailrelay.store.pg.database import PgStore

from .cli_runner import cli, invoked
from .conftest import ConfigFactory, second_shop
from .mailtools import eventually, free_port, mails_to, send, settle, text_of, trigger, via_sink
from .sink import Sink
from .test_products import RATINGS, SOCKS, TRAIL_RUNNER, shipping_mail
from .test_webhooks import webhook_table
from .tickets import AGENT, Ticketed, agent_reply, ticket_of
from .web_forms import base, submit

#: Every byte value, twice, as a stored message body (no mail reader would take it: the store
#: must keep it anyway).
BINARY = bytes(range(256)) * 2
EIGHT_BIT = ("From: Bolt Bikes <shop@bolt.example>\r\nTo: Søren Ærø <soren@example.com>\r\n"
             "Subject: Din ordre #2040 er afsendt\r\nMessage-ID: <8bit-2040@bolt.example>\r\n"
             "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n\r\n"
             "Hej Søren, din pakke med én cykelhjelm er på vej. Ærligt talt: øl på mig.\r\n"
             ).encode()


@pytest.fixture
def sqlite_config(make_config: ConfigFactory, tmp_path: Path) -> Config:
    """Two shops on SQLite (whatever store the suite runs on), acme with a webhook whose
    receiver is down, so its events wait in the outbox."""
    key = tmp_path / "hook.key"
    key.write_text("copy-test-webhook-secret-0123456789\n")
    config = make_config(more=webhook_table(f"http://127.0.0.1:{free_port()}/hook", key)
                         + second_shop())
    if config.store.url is None:
        return config
    assert config.source is not None
    text = config.source.read_text()
    config.source.write_text(re.sub(r'url = "[^"]*"', 'path = "var/test.db"', text, count=1))
    return load(config.source)


def copy_config(config: Config, url: str) -> Config:
    """The same relay.toml (same secret key, shops, outbox) with `[store] url`."""
    assert config.source is not None
    text = config.source.read_text().replace('path = "var/test.db"', f'url = "{url}"', 1)
    path = config.source.with_name("relay-pg.toml")
    path.write_text(text)
    return load(path)


async def fill(config: Config, clock: FrozenClock, sink: Sink) -> None:
    """The real loop on SQLite: triggers at both shops (one with products, one 8-bit), the
    invitations, a review with product ratings, its ticket and the agent's reply, a note, a
    tag, a report, a suppression; then a console user and a binary message body."""
    async with Daemon(via_sink(config, sink), clock) as daemon:
        await send(daemon, shipping_mail("ann@example.com", "Ann Lee", "1057",
                                         [TRAIL_RUNNER, SOCKS]))
        await send(daemon, trigger(to="Bo Berg <bo@example.com>",
                                   subject="Order #77 has shipped"), "reviews+bolt@relay.test")
        await send(daemon, EIGHT_BIT, "reviews+bolt@relay.test")
        await settle(daemon)
        clock.advance(timedelta(days=7))
        await daemon.tick()
        await sink.wait_for(3)
        [mail] = mails_to(sink, "ann@example.com")
        token = re.search(r"http://reviews\.test/r/([A-Za-z0-9_-]+)", text_of(mail))
        assert token is not None
        async with aiohttp.ClientSession() as http:
            status, page = await submit(http, daemon, token.group(1), stars="4",
                                        title="Good shoes", text="Comfortable from day one.",
                                        **RATINGS)
        assert status == 200, page
        [review] = daemon.store.read(lambda q: q.list_reviews(shop="acme"))
        await daemon.tick()
        await eventually(lambda: has_ticket(sink, review.id))
        ticket = ticket_of(sink, review.id)
        await send(daemon, agent_reply(Ticketed(review.id, ticket, ""),
                                       "Thank you, Ann! Enjoy the trails."),
                   str(ticket["Reply-To"]), sender=AGENT)
        await settle(daemon)
        await daemon.tick()
        now = clock.now()
        await daemon.store.write(lambda q: q.add_note(review.id, "Asked about sizes.", AGENT, now))
        await daemon.store.write(lambda q: q.add_tag(review.id, "homepage", now))
        await daemon.store.write(lambda q: moderation.report(
            q, daemon.config, review, AGENT, "Names a staff member.", now))
        await daemon.store.write(lambda q: q.suppress("bolt", "no@example.com", now, "asked"))
    code, output = cli(config, "user", "add", "owner@acme.example", "--shop", "acme",
                       "--role", "owner")
    assert code == 0, output
    with Store(config.store.path) as store:
        store.write_sync(lambda q: q.insert_message(NewMessage(
            clock.now(), "127.0.0.1", "odd@example.com", "reviews+acme@relay.test", "acme",
            "shipment", None, "binary-body", BINARY)))


def has_ticket(sink: Sink, review_id: int) -> bool:
    try:
        ticket_of(sink, review_id)
    except StopIteration:
        return False
    return True


def table_rows(conn: Any, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    names = ", ".join(f'"{c}"' for c in columns)
    rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
            for row in conn.execute(f'SELECT {names} FROM "{table}"').fetchall()]  # noqa: S608
    return sorted(rows, key=repr)


def every_row(path: Path, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each table's rows (all columns, in one order) in SQLite and in PostgreSQL."""
    source = sqlite3.connect(path)
    tables = [t for (t,) in source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name != 'schema_migrations'")]
    columns = {t: [r[1] for r in source.execute(f'PRAGMA table_info("{t}")')] for t in tables}
    in_sqlite = {t: table_rows(source, t, columns[t]) for t in tables}
    source.close()
    with psycopg.connect(url) as conn:
        in_pg = {t: table_rows(conn, t, columns[t]) for t in tables}
    return in_sqlite, in_pg


async def served(config: Config, clock: FrozenClock) -> tuple[str, str, Any]:
    """What a relay on `config` serves: the public page, the product page, and the CLI's
    reviews as JSON."""
    async with Daemon(config, clock) as daemon, aiohttp.ClientSession() as http:
        pages = []
        for path in ("/s/acme", "/s/acme/p/TR-42"):
            async with http.get(base(daemon) + path) as resp:
                assert resp.status == 200
                pages.append(await resp.text())
    code, output = cli(config, "reviews", "--format", "json")
    assert code == 0, output
    return pages[0], pages[1], json.loads(output)


async def test_a_store_the_loop_filled_is_copied_row_for_row_and_a_relay_on_it_serves_the_same(
    sqlite_config: Config, clock: FrozenClock, sink: Sink, pg_database: str,
) -> None:
    await fill(sqlite_config, clock, sink)
    code, output = cli(sqlite_config, "store", "copy", "--to", pg_database)
    assert code == 0, output
    assert "counts match" in output
    in_sqlite, in_pg = every_row(sqlite_config.store.path, pg_database)
    for table in ("messages", "message_bodies", "shipments", "invitations", "reviews",
                  "responses", "notes", "review_tags", "review_reports", "product_reviews",
                  "users", "memberships", "password_links", "outbox", "suppressions", "audit"):
        assert in_sqlite[table], f"the loop left {table} empty: the test proves nothing there"
        assert re.search(rf"^{table} +{len(in_sqlite[table])} +{len(in_sqlite[table])}$",
                         output, re.M), output
    for table in in_sqlite:
        assert in_pg[table] == in_sqlite[table], table
    bodies = dict(in_pg["message_bodies"])
    assert BINARY in bodies.values() and EIGHT_BIT in {
        body[body.index(b"From: Bolt"):] for body in bodies.values() if b"From: Bolt" in body}
    assert any(kind == "webhook" for kind in (r[1] for r in in_pg["outbox"]))

    on_pg = copy_config(sqlite_config, pg_database)
    assert await served(on_pg, clock) == await served(sqlite_config, clock)
    # New rows take ids past the copied ones.
    async with Daemon(on_pg, clock) as daemon:
        assert isinstance(daemon.store, PgStore)
        await send(daemon, trigger(to="Cy Dahl <cy@example.com>", subject="Order #1099 sent"))
        await settle(daemon)
        ids = daemon.store.read(lambda q: [s.id for s in q.list_shipments(shop="acme")])
    assert len(set(ids)) == len(ids) and max(ids) > len(in_sqlite["shipments"]) - 1


def test_a_target_with_rows_is_refused_and_left_as_it_was(
    sqlite_config: Config, pg_database: str,
) -> None:
    Store(sqlite_config.store.path).close()
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id BIGINT, body TEXT)")
        conn.execute("INSERT INTO notes VALUES (1, 'someone else''s note')")
    code, output = cli(sqlite_config, "store", "copy", "--to", pg_database)
    assert code == 1
    assert "has rows in notes" in output and "empty database" in output
    with psycopg.connect(pg_database) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables"
                              " WHERE schemaname = 'public'").fetchall()
        assert tables == [("notes",)]
        assert conn.execute("SELECT * FROM notes").fetchall() == [(1, "someone else's note")]


def test_copying_twice_into_the_same_database_is_refused_the_second_time(
    sqlite_config: Config, pg_database: str,
) -> None:
    with Store(sqlite_config.store.path) as store:
        store.write_sync(lambda q: q.suppress("acme", "a@example.com", FrozenClock().now(), "x"))
    assert cli(sqlite_config, "store", "copy", "--to", pg_database)[0] == 0
    code, output = cli(sqlite_config, "store", "copy", "--to", pg_database)
    assert code == 1 and "has rows in suppressions" in output


def test_counts_that_differ_are_shown_and_fail_the_command(
    sqlite_config: Config, pg_database: str,
) -> None:
    """A trigger on the target swallows every suppression: the copy commits, the count shows
    it."""
    with Store(sqlite_config.store.path) as store:
        now = FrozenClock().now()
        for email in ("a@example.com", "b@example.com"):
            store.write_sync(lambda q, email=email: q.suppress("acme", email, now, "asked"))
    PgStore(pg_database).close()  # migrated and empty: a valid target
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION swallow() RETURNS trigger LANGUAGE plpgsql"
                     " AS $$ BEGIN RETURN NULL; END $$")
        conn.execute("CREATE TRIGGER swallow BEFORE INSERT ON suppressions"
                     " FOR EACH ROW EXECUTE FUNCTION swallow()")
    code, output = cli(sqlite_config, "store", "copy", "--to", pg_database)
    assert code == 1
    assert re.search(r"^suppressions +2 +0  DIFFERS$", output, re.M), output
    assert "the counts differ in suppressions" in output


def test_a_store_behind_the_codes_schema_is_refused_before_the_target_is_touched(
    sqlite_config: Config, pg_database: str,
) -> None:
    Store(sqlite_config.store.path).close()
    with sqlite3.connect(sqlite_config.store.path) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version ="
                     " (SELECT MAX(version) FROM schema_migrations)")
    code, output = cli(sqlite_config, "store", "copy", "--to", pg_database)
    assert code == 1 and "start the relay once on it" in output
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM pg_tables"
                            " WHERE schemaname = 'public'").fetchone() == (0,)


def test_a_url_with_a_password_is_refused_as_store_url_is() -> None:
    code, output = invoked("store", "copy", "--to", "postgresql://relay:hunter2@db/mailrelay")
    assert code == 2 and "must not carry a password" in output
    assert "hunter2" not in output


def test_the_password_comes_from_the_file_given(
    sqlite_config: Config, postgres_url: str, pg_database: str, tmp_path: Path,
) -> None:
    Store(sqlite_config.store.path).close()
    name = pg_database.rsplit("/", 1)[1]
    role = f"copier_{name}"  # roles are the cluster's: one per test database
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'copy-pass-4417'")
        conn.execute(f"ALTER DATABASE {name} OWNER TO {role}")
    url = pg_database.replace("mailrelay@", f"{role}@", 1)
    secret = tmp_path / "db.pass"
    secret.write_text("copy-pass-4417\n")
    code, output = cli(sqlite_config, "store", "copy", "--to", url)
    assert code == 1 and "password" in output
    code, output = cli(sqlite_config, "store", "copy", "--to", url, "--password-file",
                       str(secret))
    assert code == 0, output
    assert "copy-pass-4417" not in output
    assert (f'counts match: in relay.toml set [store] url = "{url}" and password_file = '
            f'"{secret}" instead of path, and start the relay') in output



def test_a_value_postgresql_cannot_hold_names_its_table_and_keeps_nothing(
    sqlite_config: Config, pg_database: str,
) -> None:
    """SQLite keeps a NUL inside text; PostgreSQL's text cannot: the copy stops, says where,
    and leaves the target empty for another try once the row is mended."""
    with Store(sqlite_config.store.path) as store:
        now = FrozenClock().now()
        store.write_sync(lambda q: q.suppress("acme", "a@example.com", now, "asked"))
        store.write_sync(lambda q: q.suppress("acme", "b@example.com", now, "as\x00ked"))
    code, output = cli(sqlite_config, "store", "copy", "--to", pg_database)
    assert code == 1 and "copy failed in suppressions" in output, output
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM suppressions").fetchone() == (0,)
    with sqlite3.connect(sqlite_config.store.path) as conn:
        conn.execute("UPDATE suppressions SET reason = 'asked'")
    assert cli(sqlite_config, "store", "copy", "--to", pg_database)[0] == 0


def test_the_help_says_to_stop_the_relay_and_why() -> None:
    code, output = invoked("store", "copy", "--help")
    assert code == 0
    assert "Stop the relay first" in output and "one snapshot" in output


def test_the_copy_reads_one_snapshot_so_rows_written_meanwhile_are_not_half_in_it(
    sqlite_config: Config, pg_database: str,
) -> None:
    """A relay still writing during the copy (here: after the first table) changes neither
    what is copied nor the counts: every table as of the copy's start."""
    from mailrelay.store.pg.copy import connector, copy_store

    path = sqlite_config.store.path
    now = FrozenClock().now()
    with Store(path) as store:
        store.write_sync(lambda q: q.suppress("acme", "a@example.com", now, "asked"))
    written: list[str] = []

    def meanwhile(table: str, rows: int) -> None:
        if not written:
            with Store(path) as store:
                store.write_sync(lambda q: q.suppress("bolt", "late@example.com", now, "late"))
                store.write_sync(lambda q: q.audit("late.write", {}, now))
            written.append(table)

    result = copy_store(path, connector(pg_database, None), meanwhile)
    assert written and not result.differences
    counts = {count.table: count.postgresql for count in result.counts}
    assert (counts["suppressions"], counts["audit"]) == (1, 0)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM suppressions").fetchone() == (2,)



async def test_a_database_a_relay_started_on_with_this_relays_key_is_copied_into(
    sqlite_config: Config, pg_database: str, clock: FrozenClock,
) -> None:
    """A relay started on the new database first (with this relay.toml: the same key file)
    stored its key there, and wrote nothing else: the copy goes ahead, links keep working."""
    with Store(sqlite_config.store.path) as store:
        store.write_sync(lambda q: q.suppress("acme", "a@example.com", clock.now(), "x"))
    async with Daemon(copy_config(sqlite_config, pg_database), clock):
        pass
    code, output = cli(sqlite_config, "store", "copy", "--to", pg_database)
    assert code == 0, output
    assert re.search(r"suppressions +1 +1", output), output


async def test_a_database_holding_another_relays_key_is_refused_untouched(
    sqlite_config: Config, pg_database: str, clock: FrozenClock, tmp_path: Path,
) -> None:
    """Copied there, the links the SQLite relay mailed would not open: the relays would sign
    with the key the other relay stored."""
    Store(sqlite_config.store.path).close()
    other = copy_config(sqlite_config, pg_database)
    other = replace(other, security=replace(other.security, secret_file=tmp_path / "other.key"))
    async with Daemon(other, clock):
        pass
    code, output = cli(sqlite_config, "store", "copy", "--to", pg_database)
    assert code == 1, output
    assert "holds the secret key relay" in output and "stored at its first start" in output
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM suppressions").fetchone() == (0,)
