"""SQLite connections as mailrelay opens them (the PRAGMAs), and what every aggregate's queries
share: the bound connection, savepoint steps and INSERT building.

The aggregates write SQLite's SQL to any `SqlConnection`: a sqlite3 connection, or
`store.pg.connection.PgConnection`, which translates it for PostgreSQL.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from mailrelay.core.errors import DuplicateKey, StoreError, StoreUnavailable

T = TypeVar("T")

#: A result row: indexable by position (and by column name where a module needs it).
Row = Any


class SqlCursor(Protocol):
    """What the aggregates read from an executed statement (sqlite3.Cursor has it)."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SqlConnection(Protocol):
    """What the aggregates call on a connection (sqlite3.Connection has it)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> SqlCursor: ...


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the PRAGMAs every store connection needs (writer and readers)."""
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



@functools.lru_cache(maxsize=64)
def insert_sql(table: str, cols: tuple[str, ...]) -> str:
    """The INSERT for one table and column list (few distinct ones: built once each)."""
    marks = ", ".join("?" for _ in cols)
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"  # noqa: S608


def status_and_shop(status: str | None, shop: str | None) -> tuple[str, list[Any]]:
    """The optional `status` and `shop` filters of a listing, as SQL and its arguments."""
    where, args = "", []
    if status:
        where += " AND status = ?"
        args.append(status)
    if shop:
        where += " AND shop = ?"
        args.append(shop)
    return where, args


class Bound:
    """One connection (a writer transaction or a reader's snapshot) that queries run on."""

    def __init__(self, conn: SqlConnection) -> None:
        self.conn = conn
        #: "sqlite" or "postgresql": picks a statement's variant where one rule cannot do.
        self.backend: str = getattr(conn, "backend", "sqlite")

    def _nudge(self, channel: str) -> None:
        """Wake the workers listening on `channel` (store.channels) on every relay once this
        transaction commits: PostgreSQL's NOTIFY, sent once per channel and commit. Nothing on
        SQLite, whose only relay is woken by its services' own in-process nudges."""
        nudge = getattr(self.conn, "nudge", None)
        if nudge is not None:
            nudge(channel)

    def each(self, step: Callable[[Self], T]) -> T | BaseException:
        """Run one unit of a batched job in its own savepoint: its failure is returned, and
        undone, without undoing its neighbours."""
        self.conn.execute("SAVEPOINT step")
        try:
            result = step(self)
        except Exception as exc:  # noqa: BLE001 - handed back to the caller
            self.conn.execute("ROLLBACK TO step")
            self.conn.execute("RELEASE step")
            if isinstance(exc, sqlite3.OperationalError):  # the disk, not the data
                return StoreUnavailable(str(exc))
            return exc
        self.conn.execute("RELEASE step")
        return result

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        """INSERT one row; table and column names come from our code, never from input."""
        try:
            cur = self.conn.execute(insert_sql(table, tuple(row)), tuple(row.values()))
        except sqlite3.IntegrityError as exc:  # callers see the backend-neutral error
            raise DuplicateKey(f"{table}: {exc}") from exc
        if cur.lastrowid is None:
            raise StoreError(f"insert into {table} returned no row id")
        return cur.lastrowid
