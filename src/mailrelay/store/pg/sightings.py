"""Sightings of known trigger senders on PostgreSQL, counted just before their transaction's
COMMIT: the sender's row is then locked for the commit only, not for the rest of a batch, and
the sightings of a row another relay's commit holds are left to the next commit, so relays never
wait for each other and every sighting is counted (`count_sightings`).
"""

from __future__ import annotations

from collections.abc import Sequence

from mailrelay.store.connection import SqlConnection
from mailrelay.store.shipments import COUNT_SIGHTINGS, Sighting

#: Add a known sender's sightings unless another transaction holds its row (another relay
#: committing its own): then they wait for a later commit, and nobody waits.
_COUNT_IF_FREE = (
    "UPDATE trigger_senders SET count = count + ?4, last_seen_at = max(last_seen_at, ?3)"
    " WHERE (shop, sender) IN (SELECT shop, sender FROM trigger_senders"
    " WHERE shop = ?1 AND sender = ?2 FOR UPDATE SKIP LOCKED) RETURNING count")
_SENDER_KNOWN = "SELECT 1 FROM trigger_senders WHERE shop = ? AND sender = ?"

#: (shop, sender) → (sightings, earliest, latest) of one or more transactions.
Tally = dict[tuple[str, str], tuple[int, str, str]]


def _add(tally: Tally, shop: str, sender: str, count: int, first: str, last: str) -> None:
    known = tally.get((shop, sender))
    if known is not None:
        count, first, last = known[0] + count, min(known[1], first), max(known[2], last)
    tally[shop, sender] = (count, first, last)


class Sightings:
    """The sightings noted in the open transaction, undone with its savepoints and its
    ROLLBACK; and those a commit could not write (another transaction held the row), which the
    next commit writes with its own."""

    def __init__(self) -> None:
        self._noted: list[tuple[str, str, str]] = []
        #: How many sightings were noted when each open savepoint was set, innermost last.
        self._savepoints: list[int] = []
        self._carried: Tally = {}
        #: The carried sightings the open transaction writes: carried again if its COMMIT
        #: does not succeed (the sightings noted in it go with their jobs, which failed too).
        self._writing: Tally = {}
        #: The next commit is the relay's last: it waits for rows another transaction holds.
        self.last = False

    @property
    def carried(self) -> bool:
        """Whether sightings wait for a later commit."""
        return bool(self._carried)

    def begin(self) -> None:
        """A transaction starts: the previous one did not commit the carried sightings it
        took (its COMMIT failed), so they wait for this one's."""
        self.rollback()
        for (shop, sender), (count, first, last) in self._writing.items():
            _add(self._carried, shop, sender, count, first, last)
        self._writing = {}

    def committed(self) -> None:
        self._writing = {}

    def note(self, shop: str, sender: str, at: str) -> None:
        self._noted.append((shop, sender, at))

    def savepoint(self) -> None:
        self._savepoints.append(len(self._noted))

    def rollback_to_savepoint(self) -> None:
        """ROLLBACK TO the innermost savepoint (which stays set, as in SQL)."""
        if self._savepoints:
            del self._noted[self._savepoints[-1]:]

    def release_savepoint(self) -> None:
        if self._savepoints:
            self._savepoints.pop()

    def rollback(self) -> None:
        self._noted.clear()
        self._savepoints.clear()

    def take(self) -> list[Sighting]:
        """What the committing transaction writes, as parameters of `COUNT_SIGHTINGS` (shop,
        sender, first seen, last seen, count), in key order: two relays' commits lock the rows
        they share in the same order, so they cannot deadlock."""
        self._writing, self._carried = self._carried, {}
        tally = dict(self._writing)
        for shop, sender, at in self._noted:
            _add(tally, shop, sender, 1, at, at)
        self.rollback()
        return [(shop, sender, first, last, count)
                for (shop, sender), (count, first, last) in sorted(tally.items())]

    def carry(self, rows: list[Sighting]) -> None:
        """Keep `take`'s rows for the next commit (this one could not write them)."""
        for shop, sender, first, last, count in rows:
            self._writing.pop((shop, sender), None)
            _add(self._carried, shop, sender, count, first, last)


def count_sightings(conn: SqlConnection, rows: Sequence[Sighting], *,
                    wait: bool = False) -> list[Sighting]:
    """Just before COMMIT: count known senders' sightings (`rows` in key order); returns
    those whose row another transaction holds, for a later commit. With `wait` (a relay's
    last commit) none: it waits for the rows. A row erased meanwhile (`forget`) is inserted
    anew, as the sender's triggering again after it would."""
    held = []
    for row in rows:
        shop, sender, _first, last, count = row
        if not wait:
            if conn.execute(_COUNT_IF_FREE, (shop, sender, last, count)).fetchone():
                continue
            if conn.execute(_SENDER_KNOWN, (shop, sender)).fetchone():
                held.append(row)
                continue
        conn.execute(COUNT_SIGHTINGS, row)
    return held
