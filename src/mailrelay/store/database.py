"""The SQLite store: opens (and migrates) the file, hands writes to the one writer, serves reads
from a connection per thread, and truncates the WAL after an erasure.

SQLite-only; what the services may ask of any store is `interface.StoreBackend`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Self, TypeVar

from mailrelay.config.model import StoreConfig
from mailrelay.core.errors import StoreError
from mailrelay.core.files import create_private_file
from mailrelay.store.connection import connect
from mailrelay.store.coordination import LocalCoordination
from mailrelay.store.queries import Queries
from mailrelay.store.schema import migrate
from mailrelay.store.writer import GroupCommitWriter

if TYPE_CHECKING:
    from mailrelay.store.interface import Coordination, QueryInterface, StoreBackend

T = TypeVar("T")


class Store(GroupCommitWriter):
    """SQLite in WAL mode; every write goes through one thread that commits in groups."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # 0600 from the start; SQLite gives the -wal and -shm files the database's mode.
            create_private_file(path)
        except OSError as exc:
            raise StoreError(f"cannot create store {path}: {exc}") from exc
        try:
            conn = connect(path)
            self.schema_version = migrate(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        #: Reads running now: `close` waits for them, since closing a connection another
        #: thread is reading from crashes SQLite (a worker's read in flight at shutdown).
        self._reads_done = threading.Condition(self._readers_lock)
        self._active_reads = 0
        self._closed = False
        super().__init__(conn)

    # reads
    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def read(self, fn: Callable[[Queries], T]) -> T:
        """Run `fn` against a consistent snapshot on this thread's read connection."""
        with self._reads_done:
            if self._closed:
                raise StoreError(f"store {self.path} is closed")
            self._active_reads += 1
        try:
            conn = self._reader()
            conn.execute("BEGIN")
            try:
                return fn(Queries(conn))
            finally:
                conn.execute("COMMIT")
        finally:
            with self._reads_done:
                self._active_reads -= 1
                self._reads_done.notify_all()

    async def aread(self, fn: Callable[[Queries], T]) -> T:
        return await asyncio.to_thread(self.read, fn)

    def finalize_erasure(self) -> bool:
        """Leave no old copy of erased data on disk: copy the WAL into the database and cut it
        to zero bytes, so the old page images it holds (an erased address, for one) are gone;
        True when it was truncated.

        Runs on a connection of its own, outside any transaction; waits (busy_timeout) for
        readers of other processes, such as a running daemon, to finish their snapshot.
        """
        conn = connect(self.path)
        try:
            busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"checkpoint of {self.path} failed: {exc}") from exc
        finally:
            conn.close()
        return not busy

    def coordination(self, config: StoreConfig) -> Coordination:
        """The local one: a SQLite store has one relay."""
        return LocalCoordination(config.relay_id)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if not self._stop_writer():
            return
        with self._reads_done:
            self._closed = True
            # A read is a snapshot query, milliseconds long; the bound only guards a hang.
            self._reads_done.wait_for(lambda: self._active_reads == 0, timeout=30)
            self._close_readers()

    def _close_readers(self) -> None:
        """Close the read connections (no read is running: `close` waited for them)."""
        for conn in self._readers:
            try:
                conn.close()
            except sqlite3.ProgrammingError:  # closed from its own thread already
                pass
        self._readers.clear()


if TYPE_CHECKING:
    # mypy proves here that the SQLite store implements the interface a second backend must
    # (tests/test_store_interface.py checks the names and parameters at run time).
    _STORE: type[StoreBackend] = Store
    _QUERIES: type[QueryInterface] = Queries
