"""Keeps the background workers alive: a worker that raises backs off and runs again.

It knows nothing about what a worker does; it records failures and progress so /healthz and
the systemd watchdog can tell a failing or stuck worker (issue 10 §6: a full disk once
stopped intake for good while /healthz said ok).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from enum import StrEnum

from mailrelay.core.clock import Clock

log = logging.getLogger("mailrelay.supervisor")  # the name operators filter on

#: First wait after a failure; it doubles with every failure in a row up to BACKOFF_MAX.
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 60.0
#: A worker with work pending that made no progress for this long is stuck.
STUCK_AFTER = timedelta(minutes=10)


class WorkerState(StrEnum):
    OK = "ok"
    FAILING = "failing"
    STUCK = "stuck"


class WorkerHealth:
    """One worker's record: failures in a row, the last progress, and its state."""

    def __init__(self, name: str, clock: Clock, *, stuck_after: timedelta = STUCK_AFTER) -> None:
        self.name = name
        self.clock = clock
        self.stuck_after = stuck_after
        self.failures = 0  # since start, for /metrics
        self.streak = 0  # failures since the last progress
        self.failing_since: datetime | None = None
        self.last_progress = clock.now()

    def progress(self) -> None:
        """The worker finished a unit of work, or found none: it is alive and well."""
        now = self.clock.now()
        self.last_progress = now
        if self.failing_since is not None:
            # DESIGN house style 5: one INFO when the outage ends.
            log.info("%s worker recovered after %d failure(s) in %s", self.name, self.streak,
                     now - self.failing_since)
            self.failing_since = None
        self.streak = 0

    def failed(self, error: BaseException) -> None:
        """The worker raised; one WARNING when a streak starts, not one per retry."""
        self.failures += 1
        self.streak += 1
        if self.failing_since is None:
            self.failing_since = self.clock.now()
            log.warning("%s worker failing (retrying with backoff): %r", self.name, error,
                        exc_info=error)
        else:
            log.debug("%s worker still failing (%d in a row): %r", self.name, self.streak, error)

    def state(self, pending: bool = False) -> WorkerState:
        """`failing` in a streak of failures; `stuck` when work is pending and nothing moved."""
        if self.failing_since is not None:
            return WorkerState.FAILING
        if pending and self.clock.now() - self.last_progress > self.stuck_after:
            return WorkerState.STUCK
        return WorkerState.OK

    def backoff(self, initial: float = BACKOFF_INITIAL, cap: float = BACKOFF_MAX) -> float:
        """How long to wait before the next try: doubles with each failure in a row."""
        return float(min(initial * 2 ** min(max(self.streak - 1, 0), 30), cap))


async def supervise(health: WorkerHealth, work: Callable[[], Awaitable[None]], *,
                    initial: float = BACKOFF_INITIAL, cap: float = BACKOFF_MAX) -> None:
    """Run `work` until it returns or is cancelled; when it raises, wait and run it again.

    `work` reports its own progress (`health.progress()`); that ends a failure streak.
    """
    while True:
        try:
            await work()
            return
        except Exception as exc:  # noqa: BLE001 - every failure is retried, never the end
            health.failed(exc)
        await asyncio.sleep(health.backoff(initial, cap))
