"""The senders that triggered for a shop: each sighting counted once, `last_seen_at` never going
back, on both backends; on PostgreSQL also while two relays' writers note the same sender in
batches of their own at once, or while another transaction holds the sender's row."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from mailrelay.store import QueryInterface, Store, StoreBackend, to_iso
from mailrelay.store.pg.database import PgStore

from .store_backends import StoreOpener, new_store

__all__ = ["new_store"]  # the fixture, for pytest

SHOP = "acme"
SENDER = "shipping@acme.example"
NOON = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
Noting = Callable[[QueryInterface], bool]


def noting(sender: str, at: datetime, shop: str = SHOP) -> Noting:
    return lambda q: q.note_trigger_sender(shop, sender, at)


def seen(store: StoreBackend) -> tuple[int, str, str]:
    """(count, first_seen_at, last_seen_at) of SENDER at SHOP, read from the database (no
    statement of the services reads them)."""
    sql = "SELECT count, first_seen_at, last_seen_at FROM trigger_senders WHERE shop = {0}" \
          " AND sender = {0}"
    if isinstance(store, PgStore):
        with psycopg.connect(store.url) as conn:
            [row] = conn.execute(sql.format("%s"), (SHOP, SENDER)).fetchall()
    else:
        assert isinstance(store, Store)
        with sqlite3.connect(store.path) as db:
            [row] = db.execute(sql.format("?"), (SHOP, SENDER)).fetchall()
    return int(row[0]), str(row[1]), str(row[2])


def test_each_sighting_counts_once_and_the_latest_stays_the_last_seen(
    new_store: StoreOpener,
) -> None:
    with new_store() as store:
        assert store.write_sync(noting(SENDER, NOON)) is True  # the first sighting
        # An intake pass that read its clock earlier commits later (or the clock stepped back).
        assert store.write_sync(noting(SENDER, NOON - timedelta(minutes=5))) is False
        assert store.write_sync(noting(SENDER, NOON + timedelta(minutes=1))) is False
        assert store.write_sync(noting(SENDER, NOON + timedelta(seconds=30))) is False
        assert seen(store) == (4, to_iso(NOON), to_iso(NOON + timedelta(minutes=1)))


def test_a_sighting_in_a_write_that_failed_is_not_counted(new_store: StoreOpener) -> None:
    def note_then_fail(q: QueryInterface) -> None:
        q.note_trigger_sender(SHOP, SENDER, NOON)
        raise RuntimeError("the shipment could not be stored")

    with new_store() as store:
        store.write_sync(noting(SENDER, NOON))
        futures = [store.submit(note_then_fail), store.submit(noting(SENDER, NOON))]
        with pytest.raises(RuntimeError):
            futures[0].result(timeout=30)
        assert futures[1].result(timeout=30) is False
        assert seen(store)[0] == 2


@pytest.mark.postgresql
def test_two_relays_noting_the_same_senders_at_once_count_every_sighting(
    pg_database: str,
) -> None:
    """Each relay's writer commits its own batches of notes; the two shops' senders in opposite
    orders on the two relays (the order that deadlocked row locks taken mid-batch). The senders
    are known (a brand-new sender's row is inserted at once, and may wait)."""
    rounds, per_round = 40, 25
    senders = [("acme", SENDER), ("globex", "dispatch@globex.example")]
    relays = [PgStore(pg_database, relay_id=f"relay-{n}") for n in range(2)]
    for shop, sender in senders:
        assert relays[0].write_sync(noting(sender, NOON, shop)) is True
    start = threading.Barrier(len(relays))

    def relay_notes(store: PgStore, order: list[tuple[str, str]]) -> list[bool]:
        start.wait()
        firsts: list[bool] = []
        for n in range(rounds):
            at = NOON + timedelta(seconds=n)
            batch: list[Future[bool]] = [store.submit(noting(sender, at, shop))
                                         for _ in range(per_round) for shop, sender in order]
            firsts += [note.result(timeout=60) for note in batch]
        return firsts

    try:
        with ThreadPoolExecutor(len(relays)) as pool:
            runs = [pool.submit(relay_notes, relays[0], senders),
                    pool.submit(relay_notes, relays[1], senders[::-1])]
            firsts = [first for run in runs for first in run.result(timeout=300)]
    finally:
        for store in relays:
            store.close()
    assert not any(firsts)
    with psycopg.connect(pg_database) as conn:
        counts = conn.execute(
            "SELECT shop, count, last_seen_at FROM trigger_senders ORDER BY shop").fetchall()
    last = to_iso(NOON + timedelta(seconds=rounds - 1))
    assert [(shop, count) for shop, count, _ in counts] == [
        ("acme", 1 + 2 * rounds * per_round), ("globex", 1 + 2 * rounds * per_round)]
    assert {at for _, _, at in counts} == {last}


@pytest.mark.postgresql
def test_a_sighting_a_locked_row_held_back_is_counted_when_the_relay_stops(
    pg_database: str,
) -> None:
    store = PgStore(pg_database)
    try:
        store.write_sync(noting(SENDER, NOON))
        with psycopg.connect(pg_database) as other:
            other.execute("SELECT 1 FROM trigger_senders FOR UPDATE")  # an operator's session
            assert store.write_sync(noting(SENDER, NOON + timedelta(minutes=1))) is False
            other.rollback()
        assert seen(store) == (1, to_iso(NOON), to_iso(NOON))
    finally:
        store.close()
    assert seen(store) == (2, to_iso(NOON), to_iso(NOON + timedelta(minutes=1)))
