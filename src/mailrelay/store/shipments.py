"""Shipments (one per trigger mail) and the senders that triggered them.

SQL only; eligibility is decided in services.intake.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime

from mailrelay.core.models import Product, ShipmentStatus
from mailrelay.store.connection import Bound, Row
from mailrelay.store.rows import NewShipment, ShipmentRow
from mailrelay.store.timestamps import to_iso

#: Note a trigger's sender: one UPSERT. On PostgreSQL every relay's intake batch would lock
#: each shop's sender row until its commit, so the relays' batches (and the 250s their writers
#: commit with them) queued behind each other, or deadlocked taking two shops' rows in
#: opposite orders. There a known sender (read first: a read never waits) is not inserted
#: again (an INSERT waits for another transaction's new version of the row), and its row is
#: updated only if no other transaction holds it (SKIP LOCKED): `last_seen_at` and `count` may
#: then miss a trigger, but nobody waits. Only a sender's very first triggers can wait.
_NOTE_SENDER = {
    "sqlite": (
        "INSERT INTO trigger_senders (shop, sender, first_seen_at, last_seen_at, count)"
        " VALUES (?1, ?2, ?3, ?3, 1) ON CONFLICT (shop, sender) DO UPDATE"
        " SET last_seen_at = excluded.last_seen_at, count = trigger_senders.count + 1"
        " RETURNING count"),
    "postgresql": (
        "WITH known AS (SELECT 1 FROM trigger_senders WHERE shop = ?1 AND sender = ?2),"
        " new AS (INSERT INTO trigger_senders (shop, sender, first_seen_at, last_seen_at,"
        " count) SELECT ?1, ?2, ?3, ?3, 1 WHERE NOT EXISTS (SELECT 1 FROM known)"
        " ON CONFLICT (shop, sender) DO NOTHING RETURNING count),"
        " seen AS (UPDATE trigger_senders SET last_seen_at = ?3, count = count + 1"
        " WHERE (shop, sender) IN (SELECT shop, sender FROM trigger_senders"
        " WHERE shop = ?1 AND sender = ?2 FOR UPDATE SKIP LOCKED)"
        " AND EXISTS (SELECT 1 FROM known)) SELECT count FROM new"),
}
_PRODUCT_FIELDS = tuple(f.name for f in fields(Product))
_NO_ITEMS = "[]"  # JSON of an empty list, the usual tags / products / defects
#: The columns of `shipments` in `ShipmentRow` order, and with the table's alias.
_FIELDS = tuple(f.name for f in fields(ShipmentRow))
SHIPMENT_COLUMNS = ", ".join(_FIELDS)
_S_COLUMNS = ", ".join(f"s.{name}" for name in _FIELDS)
_JSON_FIELDS = frozenset({"tags", "products", "defects"})
_NEW_FIELDS = tuple(f.name for f in fields(NewShipment))


def _json_list(items: Sequence[object]) -> str:
    return json.dumps(items, ensure_ascii=False) if items else _NO_ITEMS


def read_shipment(row: Row) -> ShipmentRow:
    """A `SHIPMENT_COLUMNS` row as a `ShipmentRow`, its JSON lists parsed."""
    values = dict(zip(_FIELDS, row, strict=True))
    for name in _JSON_FIELDS:
        values[name] = json.loads(values[name] or _NO_ITEMS)
    return ShipmentRow(**values)


class ShipmentQueries(Bound):
    """Shipments (one per trigger mail) and the senders that triggered them."""

    def insert_shipment(self, new: NewShipment) -> int:
        """Insert a shipment; its lists are stored as JSON text."""
        row = {name: getattr(new, name) for name in _NEW_FIELDS}
        row["received_at"] = to_iso(new.received_at)
        row["send_at"] = to_iso(new.send_at)
        row["tags"] = _json_list(new.tags)
        row["products"] = _json_list(
            [{f: getattr(p, f) for f in _PRODUCT_FIELDS} for p in new.products])
        row["defects"] = _json_list(new.defects)
        return self._insert("shipments", row)

    def set_shipment_status(self, shipment_id: int, status: ShipmentStatus, reason: str) -> None:
        self.conn.execute(
            "UPDATE shipments SET status = ?, reason = ? WHERE id = ?",
            (status, reason, shipment_id),
        )

    def count_shipments(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM shipments").fetchone()[0])

    def shipment_of_invitation(self, invitation_id: int) -> ShipmentRow | None:
        row = self.conn.execute(
            f"SELECT {_S_COLUMNS} FROM shipments s"  # noqa: S608
            " JOIN invitations i ON i.shipment_id = s.id WHERE i.id = ?",
            (invitation_id,)).fetchone()
        return read_shipment(row) if row else None

    def note_trigger_sender(self, shop: str, sender: str, now: datetime) -> bool:
        """Record that `sender` triggered for `shop`; True when it is the first time.

        One UPSERT (SQLite >= 3.35 for RETURNING): a row starts at count 1 and only ever
        grows, so a returned count of 1 means the row was just inserted.
        """
        row = self.conn.execute(_NOTE_SENDER[self.backend], (shop, sender, to_iso(now))).fetchone()
        return row is not None and row[0] == 1

    def first_trigger_sender(self, shop: str) -> str | None:
        row = self.conn.execute(
            "SELECT sender FROM trigger_senders WHERE shop = ?"
            " ORDER BY first_seen_at, rowid LIMIT 1", (shop,)).fetchone()
        return str(row[0]) if row else None
