"""The store's writer thread: group commits, and background work that never delays a 250."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from mailrelay.core.errors import StoreError
from mailrelay.store import Queries

from .store_backends import StoreOpener, new_store

__all__ = ["new_store"]  # the fixture, for pytest


def recorder(log: list[str], name: str) -> Callable[[Queries], str]:
    def job(q: Queries) -> str:
        log.append(f"{name}:{q.conn.in_transaction}")
        return name
    return job


def hold(writer_busy: threading.Event, release: threading.Event) -> Callable[[Queries], None]:
    """A job that keeps the writer busy until released, so the test can queue behind it."""
    def job(q: Queries) -> None:
        writer_busy.set()
        assert release.wait(10)
    return job


def test_writes_queued_behind_background_work_commit_first(new_store: StoreOpener) -> None:
    busy, release = threading.Event(), threading.Event()
    order: list[str] = []
    with new_store() as store:
        store.background_max_wait = 60.0  # only "nothing else waiting" lets intake in
        blocker = store.submit(hold(busy, release))
        assert busy.wait(10)
        background = [store.submit(recorder(order, f"intake{n}"), background=True)
                      for n in (1, 2)]
        foreground = [store.submit(recorder(order, f"smtp{n}")) for n in (1, 2)]
        commits_before = store.commits
        release.set()
        for fut in [blocker, *background, *foreground]:
            fut.result(10)
        # Both 250s in one group commit, then each intake batch in its own transaction.
        assert order == ["smtp1:True", "smtp2:True", "intake1:True", "intake2:True"]
        assert store.commits - commits_before == 4  # the blocker's own included


def test_background_work_that_waited_long_enough_goes_before_the_next_group(
    new_store: StoreOpener,
) -> None:
    busy, release = threading.Event(), threading.Event()
    order: list[str] = []
    with new_store() as store:
        store.background_max_wait = 0.0  # any wait is long enough: no starvation
        blocker = store.submit(hold(busy, release))
        assert busy.wait(10)
        intake = store.submit(recorder(order, "intake"), background=True)
        smtp = store.submit(recorder(order, "smtp"))
        release.set()
        for fut in (blocker, intake, smtp):
            fut.result(10)
        assert order == ["intake:True", "smtp:True"]


def test_closing_the_store_runs_queued_background_work(new_store: StoreOpener) -> None:
    busy, release = threading.Event(), threading.Event()
    order: list[str] = []
    store = new_store()
    store.submit(hold(busy, release))
    assert busy.wait(10)
    futures = [store.submit(recorder(order, f"intake{n}"), background=True) for n in range(3)]
    closer = threading.Thread(target=store.close)
    closer.start()
    release.set()
    closer.join(10)
    assert [f.result(0) for f in futures] == ["intake0", "intake1", "intake2"]


def test_a_failing_pure_job_is_undone_whole_and_its_neighbours_still_commit(
    new_store: StoreOpener,
) -> None:
    busy, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def insert(name: str, fail: bool) -> Callable[[Queries], str]:
        def job(q: Queries) -> str:
            runs.append(name)
            q.conn.execute("INSERT INTO audit (at, action) VALUES ('now', ?)", (name,))
            if fail:
                raise ValueError(f"{name} failed after its first statement")
            return name
        return job

    with new_store() as store:
        blocker = store.submit(hold(busy, release))
        assert busy.wait(10)
        good = store.submit(insert("good", fail=False), pure=True)
        bad = store.submit(insert("bad", fail=True), pure=True)
        other = store.submit(insert("other", fail=False))
        release.set()
        blocker.result(10)
        assert good.result(10) == "good"
        assert other.result(10) == "other"
        with pytest.raises(ValueError, match="bad failed"):
            bad.result(10)
        actions = store.read(
            lambda q: [r[0] for r in q.conn.execute("SELECT action FROM audit ORDER BY id")])
    assert actions == ["good", "other"]
    # Without savepoints first; the failure sent the batch round again, guarded.
    assert runs == ["good", "bad", "good", "bad", "other"]


def test_closing_the_store_waits_for_a_read_in_flight_and_refuses_later_reads(
    new_store: StoreOpener,
) -> None:
    """A worker's read may still run in a thread when the daemon stops: closing its connection
    under it once crashed the process (SQLite used after close)."""
    store = new_store()
    started, release = threading.Event(), threading.Event()
    results: list[object] = []

    def slow_read(q: Queries) -> int:
        started.set()
        release.wait(5)
        return q.outbox_depth()

    reader = threading.Thread(target=lambda: results.append(store.read(slow_read)))
    reader.start()
    assert started.wait(5)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive()  # waiting for the read, not closing under it
    release.set()
    reader.join(5)
    closer.join(5)
    assert results == [0]
    with pytest.raises(StoreError, match="is closed"):
        store.read(lambda q: q.outbox_depth())
