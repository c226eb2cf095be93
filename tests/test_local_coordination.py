"""Coordination on SQLite (one relay per store): every role is ours, nudges stay in the process
(from the loop or the writer's thread), a daily job is claimed once, also across a restart; and
each store hands out its own backend's coordination."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailrelay.config import StoreConfig
from mailrelay.store import Store
from mailrelay.store.coordination import LocalCoordination, LocalLeadership, LocalWakeups
from mailrelay.store.pg.coordination import PgCoordination
from mailrelay.store.pg.database import PgStore

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
    identity = LocalCoordination(store, "relay-a").identity()

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


async def test_a_daily_job_is_run_by_the_relay_that_claimed_it_also_after_a_restart(
        tmp_path: Path) -> None:
    with Store(tmp_path / "relay.db") as store:
        relays = [LocalCoordination(store, f"relay-{n}") for n in range(4)]
        claims = await asyncio.gather(*(relay.once_per_day("retention", DAY)
                                        for relay in relays))
        assert sorted(claims) == [False, False, False, True]
        winner = relays[claims.index(True)].relay_id
    with Store(tmp_path / "relay.db") as reopened:
        assert await LocalCoordination(reopened, winner).once_per_day("retention", DAY)
        other = LocalCoordination(reopened, "relay-9")
        assert not await other.once_per_day("retention", DAY)
        assert await other.once_per_day("retention", "2026-12-06")
        assert await other.once_per_day("digest", DAY)


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
            assert await coordination.once_per_day("retention", DAY)
        finally:
            await coordination.close()
