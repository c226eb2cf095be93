"""`PgConnection`: one psycopg connection offering the part of sqlite3's API our store modules
use (`execute` → a cursor with `fetchone`, `fetchall`, iteration, `rowcount`, `lastrowid`),
their SQL translated, rows indexable by position and by name, errors as `core.errors`'.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg import errors as pg_errors
from psycopg.abc import Buffer
from psycopg.pq import TransactionStatus
from psycopg.rows import RowMaker
from psycopg.types.numeric import FloatLoader
from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

from mailrelay.core.errors import DuplicateKey, StoreError, StoreUnavailable
from mailrelay.store.pg.dialect import translate
from mailrelay.store.pg.schema import IDENTITY_TABLES
from mailrelay.store.pg.sightings import Sightings, count_sightings

#: Tables a service inserts into and, on DuplicateKey, carries on in the same transaction:
#: invitations (an order invited twice: intake, `invite`) and the outbox (that mail is queued
#: already). Their INSERTs run in a savepoint, which PostgreSQL needs to go on after an error.
#: A duplicate in another table fails its job, which its own savepoint undoes.
GUARDED_TABLES = frozenset({"invitations", "outbox"})
_INSERT_INTO = re.compile(r"^\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(\w+)", re.IGNORECASE)


class Statement(NamedTuple):
    """One statement as PostgreSQL runs it: its text, whether it returns the new row's id
    (`lastrowid`), and whether it runs in a savepoint of its own (see GUARDED_TABLES)."""

    text: str
    returns_id: bool
    guarded: bool


@functools.lru_cache(maxsize=2048)
def statement(sql: str) -> Statement:
    text = translate(sql)
    insert = _INSERT_INTO.match(sql)
    if insert is None:
        return Statement(text, False, False)
    returns_id = insert.group(1) in IDENTITY_TABLES and " RETURNING " not in text.upper()
    if returns_id:
        text += " RETURNING id"
    guarded = insert.group(1) in GUARDED_TABLES and "ON CONFLICT" not in text.upper()
    return Statement(text, returns_id, guarded)


class PgRow(tuple[Any, ...]):
    """A result row: a tuple that is also indexable by column name, as sqlite3.Row is."""

    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[PgRow]:
    names = {col.name: i for i, col in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> PgRow:
        row = PgRow(values)
        row._names = names
        return row

    return make


#: PostgreSQL's text cannot hold NUL, which SQLite's can and hostile mail carries (a NUL in a
#: Message-ID or a name): the relays' text keeps U+FFFD in its place, as a decoder does for a
#: byte it cannot read. The raw mail itself is bytes (BYTEA) and keeps every byte. (`store
#: copy` does not replace: it stops and names the table, so the operator decides.)
NUL, NUL_STANDS_IN = "\x00", "\ufffd"


def _nul_free(text: str) -> str:
    return text.replace(NUL, NUL_STANDS_IN) if NUL in text else text


class NulFreeStrDumper(StrDumperUnknown):
    """Text parameters, NUL replaced (see NUL)."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(_nul_free(obj))


class NulFreeStrBinaryDumper(StrBinaryDumper):
    """Text parameters in binary format, NUL replaced (see NUL)."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(_nul_free(obj))


def keep_text_nul_free(conn: psycopg.Connection[Any]) -> None:
    """Text this connection sends has U+FFFD for NUL (see NUL)."""
    conn.adapters.register_dumper(str, NulFreeStrDumper)
    conn.adapters.register_dumper(str, NulFreeStrBinaryDumper)


def configure(conn: psycopg.Connection[Any]) -> None:
    """What every store connection needs: numeric results as float (SQLite's REAL: AVG, SUM,
    the epoch arithmetic), rows like sqlite3.Row, text without NUL."""
    conn.adapters.register_loader("numeric", FloatLoader)
    keep_text_nul_free(conn)
    conn.row_factory = _row_factory


def store_error(exc: psycopg.Error) -> StoreError:
    """The backend-neutral error for a psycopg one."""
    if isinstance(exc, pg_errors.IntegrityError):
        return DuplicateKey(str(exc).strip()) if isinstance(
            exc, pg_errors.UniqueViolation) else StoreError(str(exc).strip())
    if isinstance(exc, psycopg.OperationalError | pg_errors.SerializationFailure
                  | pg_errors.DeadlockDetected | pg_errors.LockNotAvailable):
        return StoreUnavailable(str(exc).strip())
    return StoreError(str(exc).strip())


class PgCursor:
    """A statement's outcome: its rows (fetched on demand), `rowcount` and `lastrowid`."""

    def __init__(self, cur: psycopg.Cursor[PgRow], lastrowid: int | None) -> None:
        self._cur = cur
        self.rowcount = cur.rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> PgRow | None:
        return self._cur.fetchone() if self._cur.description else None

    def fetchall(self) -> list[PgRow]:
        return self._cur.fetchall() if self._cur.description else []

    def __iter__(self) -> Iterator[PgRow]:
        return iter(self.fetchall())

    def close(self) -> None:
        self._cur.close()


class WriterCursor:
    """`PgConnection.cursor()`: its statements run on the connection; `close` is a no-op
    (a batch's cursor closed must not close the writer's connection, and with it the next
    batch's BEGIN would open a new one each time)."""

    def __init__(self, conn: PgConnection) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PgCursor:
        return self._conn.execute(sql, parameters)

    def close(self) -> None:
        """Nothing to close: the statements' cursors are closed with their results."""


class PgConnection:
    """What our store modules call on a connection, for PostgreSQL (one psycopg connection in
    autocommit mode: the store issues BEGIN and COMMIT itself, as with SQLite)."""

    backend = "postgresql"

    def __init__(self, raw: psycopg.Connection[Any],
                 reconnect: Callable[[], psycopg.Connection[Any]] | None = None) -> None:
        self.raw = raw
        self._reconnect = reconnect
        #: The channels to NOTIFY when the open transaction commits (`nudge`).
        self._nudges: set[str] = set()
        #: Known trigger senders' sightings, counted when the open transaction commits.
        self.sightings = Sightings()

    def nudge(self, channel: str) -> None:
        """NOTIFY `channel` just before the open transaction's COMMIT: one statement per
        channel and batch, however many of its jobs queued work (a job undone by its savepoint
        may leave a needless nudge: it only makes the listeners look again)."""
        self._nudges.add(channel)

    def count_sighting(self, shop: str, sender: str, at: str) -> None:
        """Count a known trigger sender's sighting just before the open transaction's COMMIT
        (store/shipments.py `_FIRST_SIGHTING` says why), unless its savepoint is undone."""
        self.sightings.note(shop, sender, at)

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PgCursor:
        found = statement(sql)
        if found.text == "BEGIN" or found.text.startswith("BEGIN "):
            self.sightings.begin()
            return self._begin(found.text)
        if found.text == "COMMIT":
            self._write_sightings()
            self._send_nudges()
            cursor = self._run(found, parameters)
            self.sightings.committed()
            return cursor
        self._follow_savepoints(found.text)
        return self._run(found, parameters)

    def _follow_savepoints(self, text: str) -> None:
        """Keep the sightings in step with the transaction: undone with their savepoint."""
        if text == "ROLLBACK":
            self._nudges.clear()
            self.sightings.rollback()
        elif text.startswith("SAVEPOINT "):
            self.sightings.savepoint()
        elif text.startswith("ROLLBACK TO "):
            self.sightings.rollback_to_savepoint()
        elif text.startswith("RELEASE "):
            self.sightings.release_savepoint()

    def _run(self, found: Statement, parameters: Sequence[Any]) -> PgCursor:
        cur: psycopg.Cursor[PgRow] = psycopg.RawCursor(self.raw, row_factory=_row_factory)
        try:
            if found.guarded and self.in_transaction:
                with self.raw.transaction():
                    cur.execute(found.text, tuple(parameters))
            else:
                cur.execute(found.text, tuple(parameters))
        except psycopg.Error as exc:
            raise store_error(exc) from exc
        lastrowid = None
        if found.returns_id:
            row = cur.fetchone()
            lastrowid = int(row[0]) if row else None
        return PgCursor(cur, lastrowid)

    def _write_sightings(self) -> None:
        """Count the transaction's sightings (and those carried from earlier commits), each
        sender's row locked from here to the COMMIT only; a row another transaction holds
        (another relay's commit) is not waited for: its sightings go to the next commit."""
        rows = self.sightings.take()
        if rows:
            self.sightings.carry(count_sightings(self, rows, wait=self.sightings.last))

    def _send_nudges(self) -> None:
        """Queue the nudges in the transaction: the server delivers them at COMMIT, never
        for work rolled back."""
        nudges, self._nudges = sorted(self._nudges), set()
        for channel in nudges:
            self.execute("SELECT pg_notify(?, '')", (channel,))

    def cursor(self) -> WriterCursor:
        """The writer's cursor for one batch: this connection, but closing it leaves the
        connection open (the writer closes each batch's cursor)."""
        return WriterCursor(self)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status in (TransactionStatus.INTRANS,
                                                    TransactionStatus.INERROR)

    def _begin(self, sql: str) -> PgCursor:
        """Start a transaction. A connection the server dropped (a restart, a failover, an
        idle timeout) is opened anew, when we know how: nothing ran on it yet."""
        try:
            if self._reconnect is not None and (self.raw.closed or self.raw.broken):
                self.raw = self._reconnect()
            return PgCursor(self.raw.execute(sql), None)
        except psycopg.OperationalError as exc:
            if self._reconnect is None:
                raise store_error(exc) from exc
        try:  # the server had dropped it: once more, on a new connection
            self.raw = self._reconnect()
            return PgCursor(self.raw.execute(sql), None)
        except psycopg.Error as exc:
            raise store_error(exc) from exc

    def close(self) -> None:
        self.raw.close()
