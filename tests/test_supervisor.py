"""The supervisor keeps a worker alive through any exception, backing off, and logs one WARNING
per failure streak and one INFO when it ends (DESIGN house style 5; issue 10 §6)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from mailrelay.core.clock import FrozenClock
from mailrelay.services.supervisor import WorkerHealth, WorkerState, supervise


async def test_a_worker_that_raises_is_run_again_until_it_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mailrelay.supervisor")
    health = WorkerHealth("sorter", FrozenClock())
    runs = 0
    seen: list[WorkerState] = []

    async def work() -> None:
        nonlocal runs
        runs += 1
        seen.append(health.state())
        if runs <= 3:
            raise (OSError, ValueError, KeyError)[runs - 1]("no space left on the shelf")
        health.progress()

    await asyncio.wait_for(supervise(health, work, initial=0.01, cap=0.02), 5)
    assert runs == 4
    assert seen == [WorkerState.OK, WorkerState.FAILING, WorkerState.FAILING, WorkerState.FAILING]
    assert health.state() == WorkerState.OK
    assert health.failures == 3 and health.streak == 0
    by_level = [(r.levelname, r.getMessage().split(" (")[0]) for r in caplog.records
                if r.levelno >= logging.INFO]
    assert by_level == [("WARNING", "sorter worker failing"),
                        ("INFO", "sorter worker recovered after 3 failure(s) in 0:00:00")]


def test_the_wait_doubles_with_each_failure_up_to_the_cap() -> None:
    health = WorkerHealth("sorter", FrozenClock())
    waits = []
    for _ in range(6):
        health.failed(RuntimeError("down"))
        waits.append(health.backoff(1.0, 10.0))
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    health.progress()
    health.failed(RuntimeError("down again"))
    assert health.backoff(1.0, 10.0) == 1.0  # a new streak starts over


def test_a_worker_is_stuck_only_with_work_pending_and_no_progress_past_the_threshold() -> None:
    clock = FrozenClock()
    health = WorkerHealth("sorter", clock, stuck_after=timedelta(minutes=10))
    clock.advance(timedelta(minutes=11))
    assert health.state(pending=False) == WorkerState.OK
    assert health.state(pending=True) == WorkerState.STUCK
    health.progress()
    assert health.state(pending=True) == WorkerState.OK


async def test_cancelling_a_supervised_worker_ends_it_without_a_retry() -> None:
    health = WorkerHealth("sorter", FrozenClock())
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(supervise(health, work))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert health.failures == 0
