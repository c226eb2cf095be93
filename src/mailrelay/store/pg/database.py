"""The PostgreSQL store: migrates the database, hands writes to this relay's one writer
(batches in one transaction, each job in a savepoint, as with SQLite) and serves reads from a
connection pool, each on a REPEATABLE READ READ ONLY snapshot.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from mailrelay.config import StoreConfig
from mailrelay.core.errors import StoreError, StoreUnavailable, StoreUnreachable
from mailrelay.store.database import Store
from mailrelay.store.pg.connection import PgConnection, configure, store_error
from mailrelay.store.pg.coordination import PgCoordination, connect_args
from mailrelay.store.pg.schema import migrate
from mailrelay.store.queries import Queries
from mailrelay.store.writer import GroupCommitWriter

if TYPE_CHECKING:
    from mailrelay.store.interface import Coordination, QueryInterface, StoreBackend

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Read connections per relay: the web's and the workers' reads run side by side.
POOL_SIZE = 8
#: How long a read waits for a free connection.
WAIT_SECONDS = 30.0
#: A read that found no free connection within this long asks whether the server answers at
#: all, and fails at once if not: waiting out WAIT_SECONDS while the server is down would hold
#: the web's requests (and the few threads reads run on) for 30 s each.
PROBE_AFTER_SECONDS = 1.0
#: How long a failed probe stands for every read (one probe, not one per waiting read).
PROBE_VALID_SECONDS = 1.0
#: The tables `forget` and the retention purge empty fields of.
_VACUUM = ("VACUUM messages, message_bodies, shipments, invitations, outbox, reviews,"
           " product_reviews, responses, notes, review_tags, reply_keys, replies,"
           " reply_notices, bounces, suppressions, trigger_senders")


class PgStore(Store):
    """PostgreSQL at `url`; every write of this relay goes through one writer connection,
    committed in groups; reads come from a pool.

    A subclass of SQLite's `Store` to share code, not for the services (they hold a
    `StoreBackend`): the group-commit writer, and `close` (finish the writes, wait for the
    reads, then `_close_readers`) with the context manager. SQLite's own parts are replaced.
    """

    _BEGIN = "BEGIN"
    _DB_ERRORS: tuple[type[Exception], ...] = (StoreError,)

    def __init__(self, url: str, *, password: str | None = None, relay_id: str | None = None,
                 pool_size: int = POOL_SIZE) -> None:
        self.url = url
        config = StoreConfig(path=Path(), url=url, password=password,
                             relay_id=relay_id or socket.gethostname())
        self._connect_args = connect_args(config, "store writer")
        #: The server processes of the writer's latest connections (see `writer_pids`).
        self._writer_pids: collections.deque[int] = collections.deque(maxlen=4)
        try:
            raw = self._connect()
        except psycopg.Error as exc:
            raise StoreUnreachable(f"cannot open store {self.shown_url}: {exc}") from exc
        try:
            self.schema_version = migrate(raw)
        except psycopg.Error as exc:
            raw.close()
            raise StoreError(f"cannot migrate store {self.shown_url}: {exc}") from exc
        self._pool = ConnectionPool(url, kwargs=connect_args(config, "store reads"),
                                    configure=configure,
                                    min_size=1, max_size=pool_size, timeout=WAIT_SECONDS,
                                    name="mailrelay-reads", open=True)
        self._closed = False
        #: Reads running now: `close` waits for them (a worker's read at shutdown).
        self._reads_done = threading.Condition()
        self._active_reads = 0
        self._probe_lock = threading.Lock()
        self._unreachable_until = 0.0  # time.monotonic(): until then reads fail at once
        self._probe_args = connect_args(config, "store probe")
        GroupCommitWriter.__init__(self, PgConnection(raw, reconnect=self._connect))

    @property
    def shown_url(self) -> str:
        """The URL as messages show it (it never carries a password: config refuses one)."""
        return self.url

    @property
    def writer_pids(self) -> tuple[int, ...]:
        """The server processes of this relay's writer connection and of the few before it
        (a nudge sent just before a reconnection arrives after it): the nudges (NOTIFY) they
        send wake the other relays; this one's services nudge their workers themselves."""
        return tuple(self._writer_pids)

    def _connect(self) -> psycopg.Connection[Any]:
        raw = psycopg.connect(self.url, **self._connect_args)
        configure(raw)
        self._writer_pids.append(raw.info.backend_pid)
        return raw

    def _set_temp_store(self, cur: Any, in_memory: bool) -> None:
        """SQLite's concern only: PostgreSQL keeps undo data in its own way."""

    # reads
    def read(self, fn: Callable[[Queries], T]) -> T:
        """Run `fn` against a consistent snapshot on a pooled connection."""
        with self._reads_done:
            if self._closed:
                raise StoreError(f"store {self.shown_url} is closed")
            self._active_reads += 1
        try:
            return self._read(fn)
        finally:
            with self._reads_done:
                self._active_reads -= 1
                self._reads_done.notify_all()

    def _read(self, fn: Callable[[Queries], T], *, retry: bool = True) -> T:
        try:
            raw = self._pooled_connection()
            try:
                if self._begin_read(raw, retry):
                    try:
                        return fn(Queries(PgConnection(raw)))
                    finally:
                        if not raw.closed and not raw.broken:
                            raw.execute("ROLLBACK")
            finally:
                self._pool.putconn(raw)
        except PoolTimeout as exc:
            raise StoreUnavailable(f"no database connection within {WAIT_SECONDS}s") from exc
        except psycopg.Error as exc:
            raise store_error(exc) from exc
        # The server had ended that connection while it was idle in the pool (a restart), and
        # most likely those beside it: the pool replaces them, and the read runs once more.
        self._pool.check()
        return self._read(fn, retry=False)

    def _pooled_connection(self) -> psycopg.Connection[Any]:
        """A connection of the pool; StoreUnreachable at once while the server is down."""
        try:
            return self._pool.getconn(timeout=PROBE_AFTER_SECONDS)
        except PoolTimeout:
            self._probe()
        return self._pool.getconn(timeout=WAIT_SECONDS - PROBE_AFTER_SECONDS)

    def _probe(self) -> None:
        """Raise StoreUnreachable when a new connection to the server fails (now, or in the
        probe of the last PROBE_VALID_SECONDS); return when the pool is merely busy."""
        with self._probe_lock:
            if time.monotonic() < self._unreachable_until:
                raise StoreUnreachable(f"store {self.shown_url} does not answer")
            try:
                psycopg.connect(self.url, **self._probe_args).close()
            except psycopg.Error as exc:
                self._unreachable_until = time.monotonic() + PROBE_VALID_SECONDS
                raise StoreUnreachable(f"store {self.shown_url} does not answer: {exc}") from exc

    @staticmethod
    def _begin_read(raw: psycopg.Connection[Any], retry: bool) -> bool:
        """BEGIN a read-only snapshot; False when the connection turned out dropped (and a
        retry is allowed)."""
        try:
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        except psycopg.OperationalError:
            if not retry:
                raise
            return False
        return True

    async def aread(self, fn: Callable[[Queries], T]) -> T:
        return await asyncio.to_thread(self.read, fn)

    def finalize_erasure(self) -> bool:
        """VACUUM the tables an erasure empties, so the old row versions holding the erased
        data are freed for reuse now rather than at autovacuum's next pass; False when it
        failed. (PostgreSQL has no secure_delete: freed space is overwritten by later rows,
        and the WAL archive and backups keep their copies until they expire.)"""
        try:
            with self._pool.connection() as raw:
                raw.execute(_VACUUM)
        except (psycopg.Error, PoolTimeout):
            return False
        return True

    def coordination(self, config: StoreConfig) -> Coordination:
        """Advisory locks, LISTEN/NOTIFY and `job_days` in the database of `config`; the
        nudges of this store's own writer are not delivered back to this relay."""
        return PgCoordination(config, own_nudges=lambda: self.writer_pids)

    def close(self) -> None:
        """Finish queued writes, with a last commit for trigger senders' sightings that a lock
        kept from theirs (store/pg/sightings.py); then release every connection."""
        sightings = self._writer_conn.sightings
        sightings.last = True  # the commits from here on wait for rows another one holds
        if not self._closed and sightings.carried:
            try:
                self.write_sync(lambda q: None)
            except StoreError as exc:
                log.warning("trigger sender sightings not counted at close: %s", exc)
        super().close()

    def _close_readers(self) -> None:
        """The reads' pool (`Store.close` finished the writes and waited for the reads)."""
        self._pool.close()


if TYPE_CHECKING:
    # mypy proves here that the PostgreSQL store implements the backend interface.
    _STORE: type[StoreBackend] = PgStore
    _QUERIES: type[QueryInterface] = Queries
