"""Daily jobs across relays (issue 15): a row per job and day, so that whichever relay claims the
day first runs the job and the others skip it. SQL only; when a job runs is the daemon's.
"""

from __future__ import annotations

from datetime import datetime

from mailrelay.store.connection import Bound
from mailrelay.store.timestamps import to_iso

#: The table, created on first use: it holds no mail data (PostgreSQL's store makes it at
#: every start, store/pg/schema.py, where two first uses at once would collide).
JOB_DAYS = ("CREATE TABLE IF NOT EXISTS job_days (name TEXT NOT NULL, day TEXT NOT NULL,"
            " relay TEXT NOT NULL, done_at TEXT NOT NULL, PRIMARY KEY (name, day))")


class JobQueries(Bound):
    """`job_days`: which relay runs each daily job on each day."""

    def claim_job_day(self, name: str, day: str, now: datetime, *, relay: str) -> bool:
        """Record that `relay` runs job `name` on `day` (ISO date); False when another relay
        claimed that day. True again for the same relay, so that its retry of a failed run
        goes ahead."""
        self.conn.execute(JOB_DAYS)
        self.conn.execute(
            "INSERT OR IGNORE INTO job_days (name, day, relay, done_at) VALUES (?, ?, ?, ?)",
            (name, day, relay, to_iso(now)))
        row = self.conn.execute(
            "SELECT relay FROM job_days WHERE name = ? AND day = ?", (name, day)).fetchone()
        return row is not None and row[0] == relay
