"""Relays sharing one PostgreSQL database (issue 15): one holder per role, taken over within
seconds when the holder's session dies; NOTIFY on one connection wakes listeners on others, also
after their connection was dropped; a daily job claimed once however many relays race for it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from mailrelay.config import StoreConfig
from mailrelay.store.pg.coordination import (
    PgCoordination,
    connect_args,
    notify,
)

from .conftest import missing
from .mailtools import eventually
from .postgres import NOT_FOUND, binaries, running_postgres

DAY = "2026-12-05"
CoordinationFactory = Callable[[str], PgCoordination]


@pytest.fixture
async def relays(pg_database: str, tmp_path: Path) -> AsyncIterator[CoordinationFactory]:
    """Coordination objects of relays named by the caller, all on one fresh database."""
    made: list[PgCoordination] = []

    def relay(relay_id: str) -> PgCoordination:
        config = StoreConfig(path=tmp_path / "unused.db", url=pg_database, relay_id=relay_id)
        made.append(PgCoordination(config))
        return made[-1]

    yield relay
    for coordination in made:
        await coordination.close()


def terminate(url: str, pid: int | None) -> None:
    """What a crashed relay host or a DBA's pg_terminate_backend does to a session."""
    assert pid is not None
    with psycopg.connect(url, autocommit=True) as admin:
        ended = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
    assert ended == (True,)


async def test_one_relay_at_a_time_holds_a_role(relays: CoordinationFactory) -> None:
    first, second = relays("relay-a").leadership("imap"), relays("relay-b").leadership("imap")

    assert await first.try_acquire()
    assert not await second.try_acquire()
    assert await first.try_acquire()  # confirming the role keeps it
    assert (first.held, second.held) == (True, False)


async def test_roles_are_independent(relays: CoordinationFactory) -> None:
    relay_a, relay_b = relays("relay-a"), relays("relay-b")

    assert await relay_a.leadership("imap").try_acquire()
    assert await relay_b.leadership("retention").try_acquire()


async def test_a_released_role_is_taken_by_the_next_relay_at_once(
        relays: CoordinationFactory) -> None:
    first, second = relays("relay-a").leadership("imap"), relays("relay-b").leadership("imap")
    assert await first.try_acquire()

    await first.release()

    assert not first.held
    assert await second.try_acquire()


async def test_when_the_holders_session_dies_another_relay_takes_over_within_seconds(
        relays: CoordinationFactory, pg_database: str) -> None:
    holder, waiting = relays("relay-a").leadership("imap"), relays("relay-b").leadership("imap")
    assert await holder.try_acquire()
    assert not await waiting.try_acquire()

    terminate(pg_database, holder.backend_pid)
    started = time.monotonic()
    while not await waiting.try_acquire():  # the watcher's retry loop, every half second
        assert time.monotonic() - started < 5, "nobody took over the role"
        await asyncio.sleep(0.5)

    assert waiting.held
    assert not await holder.try_acquire()  # the old holder learns it at its next check
    assert not holder.held
    assert not await holder.try_acquire()  # and, reconnected, finds the role taken


async def test_a_holder_whose_session_died_takes_the_role_again_when_nobody_else_did(
        relays: CoordinationFactory, pg_database: str) -> None:
    holder = relays("relay-a").leadership("imap")
    assert await holder.try_acquire()
    terminate(pg_database, holder.backend_pid)

    assert not await holder.try_acquire()
    assert await holder.try_acquire()


async def test_a_second_running_relay_with_the_same_id_cannot_take_it(
        relays: CoordinationFactory) -> None:
    first, twin, other = relays("relay-a"), relays("relay-a"), relays("relay-b")

    assert await first.identity().try_acquire()
    assert not await twin.identity().try_acquire()
    assert await other.identity().try_acquire()
    await first.close()  # stopped: a restart may take its id again
    assert await twin.identity().try_acquire()


async def test_each_connection_names_its_relay_and_purpose(
        relays: CoordinationFactory, pg_database: str) -> None:
    role = relays("relay-a").leadership("imap")
    assert await role.try_acquire()

    with psycopg.connect(pg_database) as admin:
        name = admin.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s",
                             (role.backend_pid,)).fetchone()

    assert name == ("mailrelay relay-a role imap",)


def test_options_in_the_url_win_over_the_connection_defaults(tmp_path: Path) -> None:
    config = StoreConfig(path=tmp_path / "unused.db", password="from-the-file",
                         url="postgresql://relay@db.test/relay?connect_timeout=3"
                             "&application_name=eu-1", relay_id="relay-a")

    args = connect_args(config, "wakeups")

    assert "connect_timeout" not in args and "application_name" not in args
    assert (args["password"], args["keepalives"], args["autocommit"]) == (
        "from-the-file", 1, True)


def test_the_server_drops_a_vanished_relays_session_within_seconds_not_hours(
    pg_database: str, tmp_path: Path,
) -> None:
    """The server's own keepalives, set per session: a relay host that vanishes (power, the
    network) would otherwise hold its advisory locks, the IMAP watcher's role and its id,
    until the server OS's default of two hours."""
    config = StoreConfig(path=tmp_path / "unused.db", url=pg_database, relay_id="relay-a")
    with psycopg.connect(pg_database, **connect_args(config, "roles")) as conn:
        settings = [conn.execute(f"SHOW tcp_keepalives_{name}").fetchone()
                    for name in ("idle", "interval", "count")]
    assert settings == [("10",), ("5",), ("3",)]  # seconds


async def test_a_notify_committed_on_one_connection_wakes_listeners_on_another(
        relays: CoordinationFactory, pg_database: str) -> None:
    wakeups = relays("relay-b").wakeups
    outbox, intake = asyncio.Event(), asyncio.Event()
    wakeups.subscribe("outbox", outbox.set)
    wakeups.subscribe("intake", intake.set)
    await wakeups.start()

    with psycopg.connect(pg_database) as conn:  # a store transaction on another relay
        with conn.transaction():
            notify(conn, "outbox")
            await asyncio.sleep(0.3)
            assert not outbox.is_set(), "delivered before COMMIT"
    await asyncio.wait_for(outbox.wait(), 5)

    assert not intake.is_set()


async def test_a_notify_in_a_rolled_back_transaction_wakes_nobody(
        relays: CoordinationFactory, pg_database: str) -> None:
    wakeups = relays("relay-b").wakeups
    woken = asyncio.Event()
    wakeups.subscribe("outbox", woken.set)
    await wakeups.start()

    with psycopg.connect(pg_database) as conn:
        notify(conn, "outbox")
        conn.rollback()
    await relays("relay-c").wakeups.notify("intake")  # a later nudge on another channel
    await asyncio.sleep(0.5)

    assert not woken.is_set()


async def test_wakeups_reconnect_after_the_server_drops_the_listener(
        relays: CoordinationFactory, pg_database: str) -> None:
    wakeups = relays("relay-b").wakeups
    nudges: list[str] = []
    wakeups.subscribe("outbox", lambda: nudges.append("outbox"))
    await wakeups.start()
    first = wakeups.backend_pid

    terminate(pg_database, first)
    await eventually(lambda: wakeups.connections == 2 and wakeups.listening, 10,
                     "the listener reconnected")
    assert nudges == ["outbox"]  # once on reconnecting: nudges may have been missed meanwhile
    await relays("relay-a").wakeups.notify("outbox")
    await eventually(lambda: len(nudges) == 2, 5, "the nudge after reconnecting")

    assert wakeups.backend_pid not in (None, first)


async def test_a_nudge_goes_out_after_the_senders_connection_was_dropped(
        relays: CoordinationFactory, pg_database: str) -> None:
    listener, sender = relays("relay-b").wakeups, relays("relay-a").wakeups
    nudges: list[str] = []
    listener.subscribe("outbox", lambda: nudges.append("outbox"))
    await listener.start()
    await sender.notify("outbox")
    await eventually(lambda: len(nudges) == 1, 5, "the first nudge")

    with psycopg.connect(pg_database, autocommit=True) as admin:
        ended = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                              " WHERE application_name = 'mailrelay relay-a notify'").fetchall()
    assert ended == [(True,)]
    await sender.notify("outbox")

    await eventually(lambda: len(nudges) == 2, 5, "the nudge on a new connection")


async def test_a_failing_callback_does_not_stop_the_others(
        relays: CoordinationFactory) -> None:
    wakeups = relays("relay-b").wakeups
    woken = asyncio.Event()

    def broken() -> None:
        raise RuntimeError("a subscriber's bug")

    wakeups.subscribe("outbox", broken)
    wakeups.subscribe("outbox", woken.set)
    await wakeups.start()
    await relays("relay-a").wakeups.notify("outbox")

    await asyncio.wait_for(woken.wait(), 5)
    assert wakeups.listening


def test_relays_claiming_their_first_daily_job_at_once_on_a_new_database_all_get_an_answer(
    pg_database: str,
) -> None:
    """The retention job's claim goes through each relay's store writer; on a database no
    relay has claimed a day in yet, four at the same moment once failed three ways with
    'duplicate key … pg_type_typname_nsp_index' (a racing CREATE TABLE IF NOT EXISTS)."""
    from mailrelay.store.pg.database import PgStore

    stores = [PgStore(pg_database) for _ in range(4)]
    start = threading.Barrier(len(stores))
    answers: list[bool | str] = []

    def claim(number: int) -> None:
        start.wait()
        try:
            answers.append(stores[number].write_sync(lambda q: q.claim_job_day(
                "retention", DAY, datetime.now(UTC), relay=f"relay-{number}")))
        except Exception as exc:  # noqa: BLE001 - the answer the test looks at
            answers.append(repr(exc))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(len(stores))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        for store in stores:
            store.close()
    assert sorted(answers, key=str) == [False, False, False, True]


#: A relay in another process that takes the role, says so, and waits to be killed.
HOLDER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from mailrelay.config import StoreConfig
    from mailrelay.store.pg.coordination import PgCoordination

    async def main() -> None:
        config = StoreConfig(path=Path("unused.db"), url=sys.argv[1], relay_id="doomed")
        role = PgCoordination(config).leadership("imap")
        assert await role.try_acquire()
        print("holding", flush=True)
        await asyncio.sleep(120)

    asyncio.run(main())
""")


@pytest.fixture
def holder_process(pg_database: str) -> Iterator[subprocess.Popen[str]]:
    """A relay process that holds the "imap" role once it printed "holding"."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, pg_database],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline() == "holding\n"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


async def test_a_sigkilled_holder_process_hands_the_role_over_within_seconds(
        relays: CoordinationFactory, holder_process: subprocess.Popen[str]) -> None:
    survivor = relays("relay-b").leadership("imap")
    assert not await survivor.try_acquire()

    os.kill(holder_process.pid, signal.SIGKILL)
    killed = time.monotonic()
    while not await survivor.try_acquire():
        assert time.monotonic() - killed < 5, "the role outlived its holder"
        await asyncio.sleep(0.2)

    assert survivor.held


async def test_roles_and_wakeups_survive_a_server_restart(tmp_path: Path) -> None:
    bindir = binaries()
    if bindir is None:
        missing(NOT_FOUND)
    with running_postgres(bindir) as server:
        config = StoreConfig(path=tmp_path / "unused.db", url=server.url, relay_id="relay-a")
        coordination = PgCoordination(config)
        try:
            role, wakeups = coordination.leadership("imap"), coordination.wakeups
            nudges: list[str] = []
            wakeups.subscribe("outbox", lambda: nudges.append("outbox"))
            await wakeups.start()
            assert await role.try_acquire()

            await asyncio.to_thread(server.restart)  # every session is cut

            assert not await role.try_acquire()
            assert await role.try_acquire()
            await eventually(lambda: wakeups.listening and nudges == ["outbox"], 10,
                             "listening again, with one nudge for what it missed")
            await coordination.wakeups.notify("outbox")
            await eventually(lambda: len(nudges) == 2, 5, "a nudge after the restart")
        finally:
            await coordination.close()
