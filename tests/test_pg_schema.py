"""The PostgreSQL schema is SQLite's: the same tables, columns (types mapped), NOT NULLs and
indexes at the same version, so a SQLite migration without its PostgreSQL twin fails here; and
relays starting together migrate once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mailrelay import store
from mailrelay.store import Store
from mailrelay.store.pg import schema as pg_schema
from mailrelay.store.pg.database import PgStore

#: SQLite's declared types → PostgreSQL's.
TYPES = {"INTEGER": "bigint", "TEXT": "text", "BLOB": "bytea", "": "text"}

Shape = dict[str, Any]


def sqlite_shape(path: Path) -> Shape:
    """SQLite's tables, `job_days` included (made on first use there, at every start on
    PostgreSQL)."""
    with Store(path) as opened:
        opened.write_sync(lambda q: q.claim_job_day("shape", "2026-12-05",
                                                    datetime(2026, 12, 5, tzinfo=UTC), relay="a"))
        return opened.read(lambda q: _sqlite_shape(q.conn))


def _sqlite_shape(conn: Any) -> Shape:
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    indexes: dict[str, tuple[str, tuple[str | None, ...], bool]] = {}
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                 " AND name NOT LIKE 'sqlite_%'").fetchall():
        pk = {r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[5]}
        tables[table] = {
            r[1]: (TYPES[r[2].upper()], bool(r[3]) or r[1] in pk)
            for r in conn.execute(f"PRAGMA table_info({table})")}
        for r in conn.execute(f"PRAGMA index_list({table})").fetchall():
            if r[3] != "c":  # primary keys and UNIQUE constraints: compared as NOT NULL, pk
                continue
            columns = tuple(c[2] for c in conn.execute(f"PRAGMA index_info({r[1]})"))
            indexes[r[1]] = (table, columns, bool(r[2]))
    return {"tables": tables, "indexes": indexes}


def pg_shape(url: str) -> Shape:
    with psycopg.connect(url) as conn:
        tables: dict[str, dict[str, tuple[str, bool]]] = {}
        for table, column, data_type, nullable in conn.execute(
                "SELECT table_name, column_name, data_type, is_nullable"
                " FROM information_schema.columns WHERE table_schema = 'public'"):
            tables.setdefault(table, {})[column] = (data_type, nullable == "NO")
        indexes = {}
        for name, table, columns, unique in conn.execute(
                "SELECT i.relname, t.relname, ARRAY(SELECT CASE WHEN k = 0 THEN NULL ELSE"
                " a.attname END FROM unnest(x.indkey) WITH ORDINALITY u(k, n) LEFT JOIN"
                " pg_attribute a ON a.attrelid = t.oid AND a.attnum = u.k ORDER BY u.n),"
                " x.indisunique FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                " JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace s"
                " ON s.oid = t.relnamespace WHERE s.nspname = 'public' AND NOT x.indisprimary"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)"):
            indexes[name] = (table, tuple(columns), unique)
    return {"tables": tables, "indexes": indexes}


def test_the_postgresql_schema_has_every_table_column_and_index_of_sqlites(
    tmp_path: Path, pg_database: str,
) -> None:
    with PgStore(pg_database) as opened:
        assert opened.schema_version == len(store.MIGRATIONS), (
            f"SQLite migration {len(store.MIGRATIONS)} has no PostgreSQL twin: add it to "
            "MIGRATIONS in store/pg/schema.py")
    sqlite, pg = sqlite_shape(tmp_path / "s.db"), pg_shape(pg_database)
    assert sorted(pg["tables"]) == sorted(sqlite["tables"])
    for table, columns in sqlite["tables"].items():
        assert pg["tables"][table] == columns, table
    assert pg["indexes"] == sqlite["indexes"]


def test_relays_starting_together_on_an_empty_database_migrate_it_once(
    pg_database: str,
) -> None:
    versions: list[int] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            with PgStore(pg_database) as opened:
                versions.append(opened.schema_version)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    relays = [threading.Thread(target=start) for _ in range(3)]
    for relay in relays:
        relay.start()
    for relay in relays:
        relay.join(60)
    assert errors == []
    assert versions == [pg_schema.newest_version()] * 3
    with psycopg.connect(pg_database) as conn:
        recorded = [r[0] for r in conn.execute(
            "SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == list(range(1, pg_schema.newest_version() + 1))


def test_a_relay_restarting_on_a_migrated_database_finds_it_at_the_newest_version(
    pg_database: str,
) -> None:
    with PgStore(pg_database) as first:
        first.write_sync(lambda q: q.audit("test", {"n": 1}, datetime(2026, 12, 5, tzinfo=UTC)))
    with PgStore(pg_database) as again:
        assert again.schema_version == pg_schema.newest_version()
        count = again.read(lambda q: q.conn.execute("SELECT COUNT(*) FROM audit").fetchone())
        assert count[0] == 1


def test_a_relay_older_than_the_schema_starts_and_says_to_upgrade_it(
    pg_database: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Upgrading one relay at a time (README): the other, still on the old release, keeps
    working on the newer schema, and its log says it is next."""
    PgStore(pg_database).close()
    newer = pg_schema.newest_version() + 1
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (%s, 'a newer release')", (newer,))
    with PgStore(pg_database) as older:
        assert older.schema_version == newer
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning == (f"the store is at schema version {newer}, newer than this mailrelay's "
                       f"{newer - 1}: another relay was upgraded; upgrade this one next")


def test_migration_13_fills_each_reviews_first_answer_by_a_person_from_its_responses(
    pg_database: str,
) -> None:
    """A database at version 12 (the baseline) with answered reviews: migration 13's twin gives
    each the seconds to its first response by a person, as SQLite's does."""
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY,"
                     " applied_at TEXT)")
        for statement in pg_schema.BASELINE:
            conn.execute(statement)
        for version in range(1, pg_schema.BASELINE_VERSION + 1):
            conn.execute("INSERT INTO schema_migrations VALUES (%s, 'then')", (version,))
        for review, created in ((1, "2026-11-01T10:00:00.000000+00:00"),
                                (2, "2026-11-02T10:00:00.000000+00:00")):
            conn.execute("INSERT INTO reviews (id, shop, method, stars, created_at)"
                         " VALUES (%s, 'acme', 'automatic', 2, %s)", (review, created))
        for review, source, at in (
                (1, "auto", "2026-11-01T10:00:05.000000+00:00"),
                (1, "agent", "2026-11-01T11:30:00.000000+00:00"),
                (1, "console", "2026-11-02T10:00:00.000000+00:00"),
                (2, "auto", "2026-11-02T10:00:05.000000+00:00")):
            conn.execute("INSERT INTO responses (review_id, body, source, created_at)"
                         " VALUES (%s, 'Thanks', %s, %s)", (review, source, at))
    with PgStore(pg_database) as migrated:
        assert migrated.schema_version >= 13
        secs = migrated.read(lambda q: q.conn.execute(
            "SELECT id, first_answer_secs FROM reviews ORDER BY id").fetchall())
    assert [tuple(row) for row in secs] == [(1, 5400), (2, None)]
