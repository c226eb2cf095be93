"""APScheduler 3 as a clock only: one wake-up re-armed to the earliest due time, a safety poll,
the daily retention purge and a minute's tick for the agents' digests. Never one job per
invitation; the database is the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from mailrelay.core.clock import Clock

log = logging.getLogger("mailrelay.scheduler")  # the name operators filter on

WAKEUP = "wakeup"


class Clockwork:
    """Wakes the dispatcher when something becomes due; knows nothing about what is due."""

    def __init__(self, clock: Clock, next_due: Callable[[], Awaitable[datetime | None]],
                 wake: Callable[[], None], purge: Callable[[], Awaitable[object]], *,
                 poll_interval: timedelta = timedelta(seconds=30),
                 digest: Callable[[], Awaitable[object]] | None = None) -> None:
        self.clock = clock
        self.next_due = next_due
        self.wake = wake
        self.purge = purge
        self.poll_interval = poll_interval
        self.digest = digest  # asked every minute: the shops' digests know their own times
        self.armed_for: datetime | None = None
        self._scheduler = AsyncIOScheduler(timezone=UTC)

    def start(self) -> None:
        self._scheduler.start()
        # A safety net: rows written by the CLI in another process, or a missed wake-up.
        self._scheduler.add_job(self.wake, IntervalTrigger(seconds=self.poll_interval.seconds),
                                id="poll", coalesce=True, max_instances=1)
        self._scheduler.add_job(self.purge, CronTrigger(hour=3, minute=17, timezone=UTC),
                                id="retention", coalesce=True, max_instances=1)
        if self.digest is not None:
            self._scheduler.add_job(self.digest, IntervalTrigger(minutes=1), id="digest",
                                    coalesce=True, max_instances=1)

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    async def rearm(self) -> None:
        """Point the single wake-up job at the earliest due row."""
        due = await self.next_due()
        self.arm(due)

    def arm(self, due: datetime | None) -> None:
        self.armed_for = due
        if due is None:
            if self._scheduler.get_job(WAKEUP):
                self._scheduler.remove_job(WAKEUP)
            return
        # The injected clock says how far away `due` is; the scheduler counts real seconds.
        delay = max((due - self.clock.now()).total_seconds(), 0.0)
        run_at = datetime.now(UTC) + timedelta(seconds=delay)
        self._scheduler.add_job(self.wake, DateTrigger(run_date=run_at), id=WAKEUP,
                                replace_existing=True, misfire_grace_time=None)

    def note_due(self, due: datetime) -> None:
        """A new row became due at `due`: re-arm when it is earlier than the armed time."""
        if self.armed_for is None or due < self.armed_for:
            self.arm(due)
