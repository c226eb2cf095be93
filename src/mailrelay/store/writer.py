"""The one writer: a thread that runs queued write jobs and commits them in groups.

Concurrent SMTP sessions share fsyncs this way (Datasette's pattern). It knows transactions
and futures, not tables: the jobs bring their SQL through `Queries`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from mailrelay.core.errors import StoreError
from mailrelay.store.queries import Queries

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How many queued writes one transaction may take: enough to amortise an fsync over a burst,
#: small enough that one slow batch does not hold every SMTP session for long.
MAX_BATCH = 256
#: Longest a background job (intake) waits while other writes keep coming, in seconds.
BACKGROUND_MAX_WAIT = 0.02


class _Job(NamedTuple):
    """A queued write and where its outcome goes: a `concurrent.futures.Future` from `submit`
    (for threads) or an `asyncio.Future` of the caller's loop from `write`."""

    fn: Callable[[Queries], Any]
    future: concurrent.futures.Future[Any] | asyncio.Future[Any]
    small: bool  # see `Store.submit`
    pure: bool  # see `Store.submit`


#: A finished job: its future, whether it succeeded, and its value or exception.
_Done = tuple[concurrent.futures.Future[Any] | asyncio.Future[Any], bool, Any]


class _Wake:
    """Put on the writer's queue for each background job (those wait in their own deque)."""


_WAKE = _Wake()


class _Rerun(Exception):
    """A pure job failed outside a savepoint: the transaction must be run again, guarded."""


def _still_wanted(fut: concurrent.futures.Future[Any] | asyncio.Future[Any]) -> bool:
    """False when the caller gave up before the writer began (nothing was promised)."""
    if isinstance(fut, concurrent.futures.Future):
        return fut.set_running_or_notify_cancel()
    # Read from the writer thread without the loop's help: at worst a cancel that lands just
    # after this check lets the write run, as with a begun job.
    return not fut.cancelled()


def _settle_in_loop(done: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """Hand a committed batch's outcomes to their awaiting tasks (runs in their event loop)."""
    for fut, ok, value in done:
        if fut.done():
            continue  # its task was cancelled meanwhile; the write stands all the same
        if ok:
            fut.set_result(value)
        elif isinstance(value, StopIteration):
            # An asyncio future refuses StopIteration (TypeError): it would never resolve.
            fut.set_exception(RuntimeError(f"write raised {value!r}"))
        else:
            fut.set_exception(value)


class GroupCommitWriter:
    """Owns the writer connection and its thread; every write goes through here.

    SQLite's by default; another backend sets what differs (`_BEGIN`, `_DB_ERRORS`,
    `_set_temp_store`) and brings a connection with the same few methods.
    """

    #: How a batch's transaction starts (IMMEDIATE: SQLite's write lock now, not mid-batch).
    _BEGIN = "BEGIN IMMEDIATE"
    #: What the connection raises when a statement or the COMMIT fails.
    _DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, conn: Any) -> None:
        self._writer_conn = conn
        self._journal_in_memory = False  # the writer's temp_store: see `_commit_batch`
        self._queue: queue.SimpleQueue[_Job | _Wake | None] = queue.SimpleQueue()
        #: Background jobs with when they were queued (see `_run_writer`).
        self._background: collections.deque[tuple[_Job, float]] = collections.deque()
        self.background_max_wait = BACKGROUND_MAX_WAIT
        self._closed = False
        self.commits = 0
        self.batched_writes = 0
        self._thread = threading.Thread(target=self._run_writer, name="store-writer", daemon=True)
        self._thread.start()

    # writes
    def submit(
        self, fn: Callable[[Queries], T], *, small: bool = False, background: bool = False,
        pure: bool = False,
    ) -> concurrent.futures.Future[T]:
        """Queue `fn` to run inside the next group transaction (from any thread).

        `small`: `fn` changes a bounded number of pages (a few messages' worth), so the
        transaction may keep its undo pages in memory (see `_commit_batch`).
        `background`: work nobody is waiting on (intake turning stored mail into shipments);
        it runs in a transaction of its own after the writes queued before it, so an SMTP
        250 never waits for a batch of intake's (see `_run_writer`).
        `pure`: `fn` does nothing but SQL through its `Queries`, so it may run a second time
        after a rollback; it then goes without a savepoint of its own (see `_run_jobs`).
        """
        if self._closed:
            raise StoreError("store is closed")
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._enqueue(_Job(fn, fut, small, pure), background)
        return fut

    async def write(
        self, fn: Callable[[Queries], T], *, small: bool = False, background: bool = False,
        pure: bool = False,
    ) -> T:
        """Run `fn` in the writer thread; returns after its transaction is committed to disk.

        The writer resolves the awaited future itself, with one `call_soon_threadsafe` for all
        of a batch's writes from this loop (not a `concurrent.futures.Future` plus
        `wrap_future` per write: that was a wake-up of the loop per write; bench/intake_path.py).
        Cancelling the caller: a write the writer has not begun yet is skipped; one it has
        begun still commits, the caller just does not hear of it (as with `wrap_future`).
        `small`, `background` and `pure` as for `submit`.
        """
        if self._closed:
            raise StoreError("store is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue(_Job(fn, fut, small, pure), background)
        return await fut

    def write_sync(self, fn: Callable[[Queries], T], *, small: bool = False) -> T:
        return self.submit(fn, small=small).result()

    def _enqueue(self, job: _Job, background: bool) -> None:
        if background:
            self._background.append((job, time.monotonic()))
            self._queue.put(_WAKE)  # after the append: a woken writer finds the job
        else:
            self._queue.put(job)

    def _run_writer(self) -> None:
        """Commit whatever is queued as one group; a background job only when nothing else
        is waiting, or once it has waited `background_max_wait` (a steady stream of 250s
        must not starve intake)."""
        conn = self._writer_conn
        tx = Queries(conn)
        stop = False
        while not stop:
            item: _Job | _Wake | None
            if self._background:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = _WAKE
            else:
                item = self._queue.get()
            batch: list[_Job] = []
            while True:
                if item is None:
                    stop = True
                    break
                if not isinstance(item, _Wake):
                    batch.append(item)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit_batch(conn, tx, batch)
            if self._background and (
                    not batch
                    or time.monotonic() - self._background[0][1] >= self.background_max_wait):
                self._commit_batch(conn, tx, [self._background.popleft()[0]])
        while self._background:  # closing: every queued job still runs
            self._commit_batch(conn, tx, [self._background.popleft()[0]])
        conn.close()

    def _set_temp_store(self, cur: Any, in_memory: bool) -> None:
        """SQLite's temp_store for the next transaction (see `_commit_batch`)."""
        cur.execute(f"PRAGMA temp_store={'MEMORY' if in_memory else 'DEFAULT'}")

    def _commit_batch(self, conn: Any, tx: Queries, batch: list[_Job]) -> None:
        cur = conn.cursor()  # one cursor for the batch's own statements
        # The savepoint around each job (and each `Queries.each` step) keeps the original of
        # every page the job changes in a sub-journal. Past 64 KiB, within one intake batch
        # (Debian's SQLite also zeroes freed pages: secure_delete), SQLite spills it to a
        # temporary file, written page by page and deleted again in every such transaction:
        # half of intake's writer CPU when a claim still rewrote the raw message
        # (bench/intake_path.py). Kept in memory it costs a page of RAM per page changed until
        # the job's RELEASE, which only jobs marked `small` may spend: the daily purge would
        # hold a day of mail (200 MB for 40,000 5 KB messages). temp_store applies per
        # transaction and may only change between them. Durability is untouched: the WAL and
        # its fsync are no temporary storage.
        in_memory = all(job.small for job in batch)
        live = [job for job in batch if _still_wanted(job.future)]
        try:
            if in_memory != self._journal_in_memory:
                self._set_temp_store(cur, in_memory)
                self._journal_in_memory = in_memory
            try:
                done = self._run_jobs(cur, tx, live, guard_all=False)
            except _Rerun:
                # A pure job failed without a savepoint: undo the lot, run it again guarded.
                cur.execute("ROLLBACK")
                done = self._run_jobs(cur, tx, live, guard_all=True)
            cur.execute("COMMIT")
        except self._DB_ERRORS as exc:
            log.error("store commit failed: %s", exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = StoreError(f"commit failed: {exc}")
            self._settle([(job.future, False, error) for job in live])
            return
        finally:
            cur.close()
        self.commits += 1
        self.batched_writes += len(batch)
        self._settle(done)

    def _run_jobs(
        self, cur: Any, tx: Queries, jobs: list[_Job], *, guard_all: bool
    ) -> list[_Done]:
        """One transaction's jobs, each in a savepoint (one failing job must not undo its
        neighbours' writes) unless it is pure.

        Every statement hands the GIL back and must win it again from the busy event loop
        (a 5 ms wait at worst, each time), so a savepoint's two statements per job were a
        third of a 250's commit latency under load (bench/ingest.py). A failing pure job
        raises `_Rerun` instead, and the caller runs the whole batch again guarded.
        """
        done: list[_Done] = []
        cur.execute(self._BEGIN)
        for fn, fut, _small, pure in jobs:
            if pure and not guard_all:
                try:
                    value = fn(tx)
                except BaseException as exc:  # noqa: BLE001 - rerun guarded, reported then
                    raise _Rerun from exc
                done.append((fut, True, value))
                continue
            cur.execute("SAVEPOINT job")
            try:
                value = fn(tx)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
                cur.execute("ROLLBACK TO job")
                cur.execute("RELEASE job")
                done.append((fut, False, exc))
            else:
                cur.execute("RELEASE job")
                done.append((fut, True, value))
        return done

    @staticmethod
    def _settle(done: list[_Done]) -> None:
        """Tell every caller of a finished batch (only after its COMMIT, or its failure)."""
        loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for fut, ok, value in done:
            if isinstance(fut, concurrent.futures.Future):
                try:
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
                except concurrent.futures.InvalidStateError:
                    pass  # cancelled while still pending (a failed BEGIN): nobody waits
            else:
                loops.setdefault(fut.get_loop(), []).append((fut, ok, value))
        for loop, items in loops.items():
            try:
                loop.call_soon_threadsafe(_settle_in_loop, items)
            except RuntimeError:  # that loop is closed: nobody is left to tell
                log.debug("store: %d write(s) committed for a closed event loop", len(items))

    def _stop_writer(self) -> bool:
        """Finish queued writes and close the writer connection; False when already closed."""
        if self._closed:
            return False
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        return True
