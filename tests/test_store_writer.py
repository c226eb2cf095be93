"""The store's writer thread: group commits, and background work that never delays a 250."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from mailrelay.store import Queries, Store


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


def test_writes_queued_behind_background_work_commit_first(tmp_path: Path) -> None:
    busy, release = threading.Event(), threading.Event()
    order: list[str] = []
    with Store(tmp_path / "s.db") as store:
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
    tmp_path: Path,
) -> None:
    busy, release = threading.Event(), threading.Event()
    order: list[str] = []
    with Store(tmp_path / "s.db") as store:
        store.background_max_wait = 0.0  # any wait is long enough: no starvation
        blocker = store.submit(hold(busy, release))
        assert busy.wait(10)
        intake = store.submit(recorder(order, "intake"), background=True)
        smtp = store.submit(recorder(order, "smtp"))
        release.set()
        for fut in (blocker, intake, smtp):
            fut.result(10)
        assert order == ["intake:True", "smtp:True"]


def test_closing_the_store_runs_queued_background_work(tmp_path: Path) -> None:
    busy, release = threading.Event(), threading.Event()
    order: list[str] = []
    store = Store(tmp_path / "s.db")
    store.submit(hold(busy, release))
    assert busy.wait(10)
    futures = [store.submit(recorder(order, f"intake{n}"), background=True) for n in range(3)]
    closer = threading.Thread(target=store.close)
    closer.start()
    release.set()
    closer.join(10)
    assert [f.result(0) for f in futures] == ["intake0", "intake1", "intake2"]
