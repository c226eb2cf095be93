"""Shipments (one per trigger mail) and the senders that triggered them.

SQL only; eligibility is decided in services.intake.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Protocol, cast

from mailrelay.core.models import Product, ShipmentStatus
from mailrelay.store.connection import Bound, Row
from mailrelay.store.rows import NewShipment, ShipmentRow
from mailrelay.store.timestamps import to_iso

#: Count `count` sightings of a sender between two times: one UPSERT, whichever order
#: sightings arrive in (`last_seen_at` never goes back: an intake pass that read the clock
#: earlier may commit later, on another relay too). Parameters: shop, sender, first seen,
#: last seen, count. SQLite runs it for each sighting; PostgreSQL counts the sightings of a
#: transaction just before its COMMIT (store/pg/sightings.py `count_sightings`).
COUNT_SIGHTINGS = (
    "INSERT INTO trigger_senders (shop, sender, first_seen_at, last_seen_at, count)"
    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (shop, sender) DO UPDATE"
    " SET last_seen_at = max(trigger_senders.last_seen_at, excluded.last_seen_at),"
    " count = trigger_senders.count + excluded.count RETURNING count")
#: A sender's first sighting on PostgreSQL, inserted at once (intake alerts on it); None when
#: the sender is known. Counting a known sender here would lock its row until this relay's
#: batch commits, so the relays' batches (and the 250s their writers commit with them) queued
#: behind each other, or deadlocked taking two shops' rows in opposite orders. A known sender
#: (read first: a read never waits) is not inserted again (an INSERT waits for another
#: transaction's new version of the row): only a sender's very first triggers can wait (two
#: relays' batches inserting two new senders in opposite orders deadlock: PostgreSQL fails
#: one message's step, which intake leaves pending and tries again).
_FIRST_SIGHTING = (
    "WITH known AS (SELECT 1 FROM trigger_senders WHERE shop = ?1 AND sender = ?2)"
    " INSERT INTO trigger_senders (shop, sender, first_seen_at, last_seen_at, count)"
    " SELECT ?1, ?2, ?3, ?3, 1 WHERE NOT EXISTS (SELECT 1 FROM known)"
    " ON CONFLICT (shop, sender) DO NOTHING RETURNING count")


#: `COUNT_SIGHTINGS`'s parameters: shop, sender, first seen, last seen, count.
Sighting = tuple[str, str, str, str, int]


class _CountsAtCommit(Protocol):
    """PostgreSQL's writer connection: sightings it counts just before COMMIT."""

    def count_sighting(self, shop: str, sender: str, at: str) -> None: ...

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

        SQLite: one UPSERT (SQLite >= 3.35 for RETURNING); a row starts at count 1 and only
        ever grows, so a returned count of 1 means the row was just inserted. PostgreSQL: the
        first sighting inserts the row, later ones are counted at COMMIT (`_FIRST_SIGHTING`).
        """
        at = to_iso(now)
        if self.backend == "sqlite":
            row = self.conn.execute(COUNT_SIGHTINGS, (shop, sender, at, at, 1)).fetchone()
            return row is not None and row[0] == 1
        if self.conn.execute(_FIRST_SIGHTING, (shop, sender, at)).fetchone() is not None:
            return True
        # Known, or inserted meanwhile by another relay (whose transaction committed first).
        cast(_CountsAtCommit, self.conn).count_sighting(shop, sender, at)
        return False

    def first_trigger_sender(self, shop: str) -> str | None:
        row = self.conn.execute(
            "SELECT sender FROM trigger_senders WHERE shop = ?"
            " ORDER BY first_seen_at, rowid LIMIT 1", (shop,)).fetchone()
        return str(row[0]) if row else None
