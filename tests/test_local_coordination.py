"""Coordination on SQLite (one relay per store): every role is ours, nudges stay in the process
(from the loop or the writer's thread), a daily job is claimed once, also across a restart; and
each store hands out its own backend's coordination."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailrelay.config import StoreConfig
from mailrelay.store import Store
from mailrelay.store.coordination import LocalCoordination, LocalLeadership, LocalWakeups
from mailrelay.store.pg.coordination import PgCoordination
from mailrelay.store.pg.database import PgStore

from .store_backends import StoreOpener, new_store

__all__ = ["new_store"]  # the fixture, for pytest

DAY = "2026-12-05"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "relay.db") as opened:
        yield opened


async def test_the_only_relay_of_a_sqlite_store_holds_every_role() -> None:
    role = LocalLeadership("imap")
    assert not role.held

    assert await role.try_acquire()
    assert role.held
    await role.release()
    assert not role.held


async def test_the_relay_of_a_sqlite_store_always_holds_its_id(store: Store) -> None:
    identity = LocalCoordination("relay-a").identity()

    assert await identity.try_acquire()
    assert identity.held


async def test_a_nudge_from_the_loop_or_another_thread_calls_the_channels_callbacks() -> None:
    wakeups = LocalWakeups()
    outbox, intake = asyncio.Event(), asyncio.Event()
    wakeups.subscribe("outbox", outbox.set)
    wakeups.subscribe("intake", intake.set)
    await wakeups.start()

    await wakeups.notify("outbox")
    await asyncio.wait_for(outbox.wait(), 2)
    outbox.clear()
    writer = threading.Thread(target=wakeups.notify_threadsafe, args=("outbox",))
    writer.start()
    writer.join()
    await asyncio.wait_for(outbox.wait(), 2)

    assert not intake.is_set()
    await wakeups.close()
    wakeups.notify_threadsafe("outbox")  # after close: nobody left to wake, no error


@pytest.mark.parametrize("channel", ["Outbox", "out-box", "", "x" * 64])
def test_a_channel_name_postgresql_would_refuse_is_refused_here_too(
        channel: str, tmp_path: Path) -> None:
    config = StoreConfig(path=tmp_path / "relay.db", url="postgresql://relay@db.test/relay")
    for wakeups in (LocalWakeups(), PgCoordination(config).wakeups):
        with pytest.raises(ValueError, match="is no channel name"):
            wakeups.subscribe(channel, lambda: None)


def test_a_daily_job_is_run_by_the_relay_that_claimed_it_also_after_a_restart(
        new_store: StoreOpener) -> None:
    """`claim_job_day`, as the retention job asks it (services/daily.py) on either backend:
    the first relay to claim a job's day runs it, its retry goes ahead, the others skip it."""
    now = datetime(2026, 12, 5, 3, tzinfo=UTC)

    def claim(store: Store, relay: str, job: str = "retention", day: str = DAY) -> bool:
        return store.write_sync(lambda q: q.claim_job_day(job, day, now, relay=relay))

    with new_store() as store:
        claims = [claim(store, f"relay-{n}") for n in range(4)]
        assert claims == [True, False, False, False]
    with new_store() as reopened:
        assert claim(reopened, "relay-0")  # its retry of a failed run goes ahead
        assert not claim(reopened, "relay-9")
        assert claim(reopened, "relay-9", day="2026-12-06")  # the next day
        assert claim(reopened, "relay-9", job="digest")  # another job


def test_a_sqlite_store_hands_out_the_local_coordination(store: Store, tmp_path: Path) -> None:
    coordination = store.coordination(StoreConfig(path=tmp_path / "relay.db", relay_id="a"))

    assert isinstance(coordination, LocalCoordination)
    assert coordination.relay_id == "a"


@pytest.mark.postgresql
async def test_a_postgresql_store_hands_out_postgresqls_coordination(
    pg_database: str, tmp_path: Path,
) -> None:
    config = StoreConfig(path=tmp_path / "unused.db", url=pg_database, relay_id="a")
    with PgStore(pg_database) as store:
        coordination = store.coordination(config)
        try:
            assert isinstance(coordination, PgCoordination)
        finally:
            await coordination.close()
