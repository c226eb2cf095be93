"""Daily jobs run once a day across the relays that share one store (issue 15): the relay that
claims the day first runs the job, the others skip it (the digest claims its own day)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from mailrelay.store import StoreBackend

log = logging.getLogger("mailrelay.daily")  # the name operators filter on

#: The job names `job_days` records.
RETENTION = "retention"


async def claim_today(store: StoreBackend, name: str, now: datetime, relay: str) -> bool:
    """True when `relay` runs job `name` today (UTC): it claimed the day, now or in an earlier
    try; False when another relay did. A relay that dies mid-job leaves the rest of that day's
    work to the next day's run (the retention purge erases everything older than its cutoff)."""
    day = now.astimezone(UTC).date().isoformat()
    mine = await store.write(lambda q: q.claim_job_day(name, day, now, relay=relay))
    if not mine:
        log.info("%s of %s runs on another relay", name, day)
    return mine
