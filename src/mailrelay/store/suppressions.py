"""Who gets no mail: unsubscribes, bounces and erased addresses (by hash).

SQL only; when to suppress is decided in services.
"""

from __future__ import annotations

from datetime import datetime

from mailrelay.store.addresses import address_hash
from mailrelay.store.connection import Bound
from mailrelay.store.timestamps import to_iso

#: How each kind of suppression is shown: in shipments' and invitations' reasons, tickets
#: and `reviews show`. None names a shop (issue 10 §4).
SUPPRESSION_TEXT = {
    "bounced": "address bounced",
    "unsubscribed": "customer has unsubscribed",
    "forgotten": "address erased on request",
}


#: The kind of suppression that applies to (shop, email): a bounce (recorded for every shop,
#: '*'; before issue 10 a hard bounce was recorded for its shop only, but `bounces` counts it
#: for the address), then this shop's unsubscribe, then `forget` (a hash, also '*').
#: Primary-key look-ups only: this runs for every shipment.
SUPPRESSION_SQL = (
    "SELECT kind FROM (SELECT CASE WHEN reason LIKE 'hard bounce%'"
    " OR reason LIKE '% soft bounces' THEN 'bounced' WHEN shop = '*' THEN 'forgotten'"
    " ELSE 'unsubscribed' END AS kind FROM suppressions"
    " WHERE email IN ({email}, {hashed}) AND shop IN ({shop}, '*')"
    " UNION ALL SELECT 'bounced' FROM bounces WHERE email = {email} AND hard > 0)"
    " ORDER BY kind = 'bounced' DESC, kind = 'unsubscribed' DESC LIMIT 1"
)


class SuppressionQueries(Bound):
    """Who gets no mail: unsubscribes, bounces and erased addresses (by hash)."""

    def suppression(self, shop: str, email: str) -> str | None:
        """Why `email` gets no mail from `shop`: "bounced" (a bounce at any shop of the relay:
        the address is dead for all of them), "unsubscribed" (from this shop only),
        "forgotten" (`forget`), or None."""
        row = self.conn.execute(
            SUPPRESSION_SQL.format(shop="?1", email="?2", hashed="?3"),
            (shop, email, address_hash(email)),
        ).fetchone()
        return str(row[0]) if row else None

    def is_suppressed(self, shop: str, email: str) -> bool:
        return self.suppression(shop, email) is not None

    def unsubscribed(self, shop: str, email: str) -> bool:
        """Whether the customer unsubscribed from this very shop (the unsubscribe page)."""
        return self.conn.execute(
            "SELECT 1 FROM suppressions WHERE shop = ? AND email = ? LIMIT 1", (shop, email)
        ).fetchone() is not None

    def suppress(self, shop: str, email: str, now: datetime, reason: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO suppressions (shop, email, created_at, reason) VALUES (?,?,?,?)",
            (shop, email, to_iso(now), reason),
        )

    def note_bounce(self, email: str, hard: bool, status: str, now: datetime) -> int:
        """Count a bounce for an address; returns its soft (or hard) bounce count now."""
        column = "hard" if hard else "soft"
        self.conn.execute(
            f"INSERT INTO bounces (email, {column}, last_at, last_status) VALUES (?, 1, ?, ?)"  # noqa: S608
            f" ON CONFLICT(email) DO UPDATE SET {column} = bounces.{column} + 1,"
            " last_at = excluded.last_at, last_status = excluded.last_status",
            (email, to_iso(now), status))
        row = self.conn.execute(f"SELECT {column} FROM bounces WHERE email = ?",  # noqa: S608
                                (email,)).fetchone()
        return int(row[0])
