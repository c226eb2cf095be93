"""The agents' daily digest (issue 14): the last local date each shop's digest was done. SQL
only; when a digest is due and what it lists live in services.digest."""

from __future__ import annotations

from datetime import datetime

from mailrelay.store.connection import Bound
from mailrelay.store.timestamps import to_iso


class DigestQueries(Bound):
    """One row per shop: the day of its last digest."""

    def last_digest_date(self, shop: str) -> str | None:
        row = self.conn.execute(
            "SELECT last_date FROM digests WHERE shop = ?", (shop,)).fetchone()
        return str(row[0]) if row else None

    def claim_digest(self, shop: str, day: str, now: datetime) -> bool:
        """Record `day` (ISO, the shop's local date) as done; False when it already was (or a
        later day), so that each day's digest is queued once."""
        cursor = self.conn.execute(
            "INSERT INTO digests (shop, last_date, done_at) VALUES (?, ?, ?)"
            " ON CONFLICT(shop) DO UPDATE SET last_date = excluded.last_date,"
            " done_at = excluded.done_at WHERE digests.last_date < excluded.last_date",
            (shop, day, to_iso(now)))
        return cursor.rowcount > 0
