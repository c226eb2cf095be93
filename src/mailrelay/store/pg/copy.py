"""`copy_store`: a SQLite store into an empty PostgreSQL database. The target is migrated to
the same schema version, every table is copied with COPY in foreign-key order keeping its ids,
each identity is set past the largest id, and the rows are counted on both sides.
"""

from __future__ import annotations

import graphlib
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from mailrelay.config import StoreConfig
from mailrelay.core.errors import StoreError
from mailrelay.store.pg.coordination import connect_args
from mailrelay.store.pg.schema import JOB_DAYS, MIGRATION_LOCK, migrate, newest_version
from mailrelay.store.schema import MIGRATIONS

#: Rows fetched from SQLite at a time; tables with blobs (raw mail) in smaller batches.
BATCH_ROWS = 2000
BLOB_BATCH_ROWS = 100
#: Tables some relays create on first use rather than by a migration: their PostgreSQL DDL.
LAZY_TABLES = {"job_days": JOB_DAYS}
#: Recorded by `migrate` on the target; never copied.
VERSIONS = "schema_migrations"
#: Where relays keep what they must agree on (the secret key): written at a relay's first start.
SHARED_TABLE = "shared_values"

PgConn = psycopg.Connection[Any]


class CopyRefused(StoreError):
    """The copy did not start: the source or the target is not fit for it (the message says
    why and what to do); the target was not written."""


@dataclass(frozen=True)
class TableCount:
    """One table's rows in the SQLite store and in PostgreSQL after the copy."""

    table: str
    sqlite: int
    postgresql: int

    @property
    def matches(self) -> bool:
        return self.sqlite == self.postgresql


@dataclass(frozen=True)
class CopyResult:
    counts: list[TableCount]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(count.postgresql for count in self.counts)

    @property
    def differences(self) -> list[TableCount]:
        return [count for count in self.counts if not count.matches]


def open_source(path: Path) -> sqlite3.Connection:
    """The SQLite store at `path`, inside one read transaction: every table is read from the
    same snapshot (WAL), whatever a relay still writes meanwhile."""
    if not path.is_file():
        raise CopyRefused(f"no SQLite store at {path}")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    conn.execute("BEGIN")
    conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # the snapshot starts here
    return conn


def source_version(source: sqlite3.Connection, path: Path) -> int:
    """The source's schema version; refused unless it is this mailrelay's newest."""
    try:
        row = source.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    except sqlite3.DatabaseError as exc:
        raise CopyRefused(f"{path} is not a mailrelay store: {exc}") from exc
    version, newest = int(row[0] or 0), len(MIGRATIONS)
    if version < newest:
        raise CopyRefused(
            f"the SQLite store {path} is at schema version {version}, this mailrelay's is "
            f"{newest}: start the relay once on it (it migrates at start), stop it, then copy")
    if version > newest:
        raise CopyRefused(f"the SQLite store {path} is at schema version {version}, newer than "
                          f"this mailrelay's {newest}: copy it with the mailrelay that made it")
    if newest_version() != newest:
        raise CopyRefused(f"this mailrelay's PostgreSQL schema is at version {newest_version()}, "
                          f"its SQLite schema at {newest}: upgrade mailrelay")
    return version


def source_tables(source: sqlite3.Connection) -> list[str]:
    return [name for (name,) in source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name != ? ORDER BY name", (VERSIONS,))]


def target_problem(target: PgConn, secret: bytes | None = None) -> str | None:
    """Why the target is not an empty database to copy into, or None. Migrated by mailrelay
    at the newest version but without rows is empty; any row in any table is not, except the
    secret key a relay stored at its first start (shared_values) when it is `secret`, the key
    of the relay being copied: links it mailed open on the copy."""
    tables = [name for (name,) in target.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")]
    filled = [table for table in tables if table != VERSIONS and target.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
    ).fetchone() == (True,)]
    if filled == [SHARED_TABLE]:
        return _shared_key_problem(target, secret)
    if filled:
        return (f"has rows in {', '.join(filled)}: store copy only writes into an empty "
                "database (create a new one, or drop these tables if they are a failed try)")
    if tables and VERSIONS not in tables:
        return (f"has tables ({', '.join(tables[:5])}) that mailrelay did not make: "
                "give an empty database")
    if VERSIONS in tables:
        row = target.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        if version != newest_version():
            return (f"is at schema version {version}, not {newest_version()}: "
                    "give an empty database")
    return None


def _shared_key_problem(target: PgConn, secret: bytes | None) -> str | None:
    """None when the only shared value is the secret key `secret`, else why not."""
    rows = target.execute("SELECT name, value, relay FROM shared_values").fetchall()
    if secret is not None and [(name, value) for name, value, _ in rows] == [
            ("secret_key", secret.decode())]:
        return None
    relays = ", ".join(sorted({str(relay) for _, _, relay in rows}))
    return (f"holds the secret key relay {relays} stored at its first start, not this "
            "relay's [security] secret_file: links this relay mailed would not open on the "
            "copy. Give an empty database (start no relay on it before the copy, or start "
            "it with this relay's key file)")


def copy_order(target: PgConn, tables: list[str]) -> list[str]:
    """`tables` with every table after those its foreign keys point to."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(
        {table: () for table in tables})
    for child, parent in target.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
            " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"):
        if child in tables and parent in tables and child != parent:
            sorter.add(child, parent)
    return list(sorter.static_order())


def _quoted(name: str) -> str:
    """A SQLite identifier, quoted (names come from the source's own catalogue)."""
    return '"' + name.replace('"', '""') + '"'


def _columns(source: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in source.execute(f"PRAGMA table_info({_quoted(table)})")]


def _target_types(target: PgConn, table: str) -> dict[str, str]:
    return {name: kind for name, kind in target.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s", (table,))}


def copy_table(source: sqlite3.Connection, target: PgConn, table: str) -> int:
    """Every row of `table` with COPY (binary: blobs go byte for byte); the rows written."""
    columns = _columns(source, table)
    types = _target_types(target, table)
    missing = [column for column in columns if column not in types]
    if missing:
        raise CopyRefused(f"PostgreSQL's {table} has no column {', '.join(missing)}: "
                          "upgrade mailrelay")
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    batch = BLOB_BATCH_ROWS if "bytea" in (types[c] for c in columns) else BATCH_ROWS
    names = ", ".join(map(_quoted, columns))
    rows = source.execute(f"SELECT {names} FROM {_quoted(table)}")  # noqa: S608 - quoted names
    written = 0
    try:
        with target.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types([types[column] for column in columns])
            while chunk := rows.fetchmany(batch):
                for row in chunk:
                    copy.write_row(row)
                written += len(chunk)
    except (psycopg.Error, TypeError, ValueError) as exc:
        # A value PostgreSQL cannot hold as SQLite did (a NUL in text, text in a number).
        raise StoreError(f"copy failed in {table} after {written} rows, nothing was kept: "
                         f"{exc}") from exc
    return written


def set_identities(target: PgConn, tables: list[str]) -> None:
    """Each identity column's next value past the largest id copied (new rows never collide)."""
    for table, sequence in target.execute(
            "SELECT table_name, pg_get_serial_sequence(quote_ident(table_name), column_name)"
            " FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND column_name = 'id' AND table_name = ANY(%s)", (tables,)).fetchall():
        if sequence is None:
            continue
        target.execute(sql.SQL("SELECT setval(%s, COALESCE((SELECT MAX(id) FROM {}), 0) + 1,"
                               " false)").format(sql.Identifier(table)), (sequence,))


def count_rows(source: sqlite3.Connection, target: PgConn, tables: list[str]) -> list[TableCount]:
    counts = []
    for table in tables:
        (in_sqlite,) = source.execute(
            f"SELECT COUNT(*) FROM {_quoted(table)}").fetchone()  # noqa: S608 - quoted
        in_pg = target.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(
            sql.Identifier(table))).fetchone()
        counts.append(TableCount(table, int(in_sqlite), int(in_pg[0]) if in_pg else 0))
    return counts


def copy_store(path: Path, connect: Callable[[], PgConn],
               on_table: Callable[[str, int], None] | None = None, *,
               secret: bytes | None = None) -> CopyResult:
    """Copy the SQLite store at `path` into the empty database `connect` opens (autocommit);
    refused (CopyRefused) before writing anything when either side is unfit (`secret`: the
    copied relay's key, which a relay started on the target may have stored already). One
    transaction for the rows: a failure leaves the target migrated and empty, ready for
    another try."""
    started = time.monotonic()
    source = open_source(path)
    try:
        source_version(source, path)
        tables = source_tables(source)
        with connect() as target:
            _refuse_unfit(target, secret)
            migrate(target)
            with target.transaction():
                target.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                _refuse_unfit(target, secret)  # a relay that started meanwhile wrote nothing yet
                _create_lazy_tables(target, tables)
                order = copy_order(target, tables)
                for table in order:
                    rows = copy_table(source, target, table)
                    if on_table is not None:
                        on_table(table, rows)
                set_identities(target, order)
            counts = count_rows(source, target, sorted(tables))
    except psycopg.Error as exc:
        raise StoreError(f"copy failed, nothing was kept: {exc}") from exc
    finally:
        source.close()
    return CopyResult(counts, time.monotonic() - started)


def _refuse_unfit(target: PgConn, secret: bytes | None) -> None:
    problem = target_problem(target, secret)
    if problem is not None:
        raise CopyRefused(f"the target database {problem}")


def _create_lazy_tables(target: PgConn, tables: list[str]) -> None:
    """Tables the source made on first use (job_days): made on the target too. Any other
    table the migrated target lacks stops the copy."""
    present = {name for (name,) in target.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    for table in tables:
        if table in present:
            continue
        if table not in LAZY_TABLES:
            raise CopyRefused(f"the SQLite store's table {table} has no PostgreSQL twin: "
                              "upgrade mailrelay")
        target.execute(LAZY_TABLES[table])


def connector(url: str, password: str | None) -> Callable[[], PgConn]:
    """Opens the target like a relay does (keepalives, application_name, the password beside
    the URL, else libpq's PGPASSWORD or ~/.pgpass), in autocommit."""
    config = StoreConfig(path=Path(), url=url, password=password,
                         relay_id=socket.gethostname()[:40] or "copy")
    args = connect_args(config, "store copy")

    def connect() -> PgConn:
        try:
            return psycopg.connect(url, **args)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {url}: {exc}") from exc

    return connect
