"""Shipments (one per trigger mail) and the senders that triggered them.

SQL only; eligibility is decided in services.intake.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mailrelay.core.models import (
    ShipmentStatus,
)
from mailrelay.store.connection import Bound
from mailrelay.store.timestamps import to_iso


class ShipmentQueries(Bound):
    """Shipments (one per trigger mail) and the senders that triggered them."""

    def insert_shipment(self, row: dict[str, Any]) -> int:
        """Insert a shipment; its JSON columns come as lists, or already as JSON text."""
        row = dict(row)
        for key in ("tags", "products", "defects"):
            value = row.get(key)
            if not isinstance(value, str):
                row[key] = json.dumps(value, ensure_ascii=False) if value else "[]"
        return self._insert("shipments", row)

    def set_shipment_status(self, shipment_id: int, status: ShipmentStatus, reason: str) -> None:
        self.conn.execute(
            "UPDATE shipments SET status = ?, reason = ? WHERE id = ?",
            (status, reason, shipment_id),
        )

    def count_shipments(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM shipments").fetchone()[0])

    def shipment_of_invitation(self, invitation_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT s.* FROM shipments s JOIN invitations i ON i.shipment_id = s.id"
            " WHERE i.id = ?", (invitation_id,)).fetchone()
        if row is None:
            return None
        d = dict(row)
        d["products"] = json.loads(d["products"] or "[]")
        return d

    def note_trigger_sender(self, shop: str, sender: str, now: datetime) -> bool:
        """Record that `sender` triggered for `shop`; True when it is the first time.

        One UPSERT (SQLite >= 3.35 for RETURNING): a row starts at count 1 and only ever
        grows, so a returned count of 1 means the row was just inserted.
        """
        at = to_iso(now)
        row = self.conn.execute(
            "INSERT INTO trigger_senders (shop, sender, first_seen_at, last_seen_at, count)"
            " VALUES (?1, ?2, ?3, ?3, 1) ON CONFLICT (shop, sender) DO UPDATE"
            " SET last_seen_at = excluded.last_seen_at, count = count + 1 RETURNING count",
            (shop, sender, at),
        ).fetchone()
        return row is not None and row[0] == 1
