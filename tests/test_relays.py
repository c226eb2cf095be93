"""Several relays on one store (issue 15): every claim names its relay and holds for a lease, so
no mail goes out twice, a restarting relay requeues only its own rows, a dead relay's rows are
taken over once their lease ran out, a late result never overwrites the relay that took over,
messages handed to another service are handled by one relay, and daily jobs run once a day.

The store is a fixture (`shared_store`, a location any relay opens): SQLite today, PostgreSQL
as a second parameter once that backend is in. Delivery sends over loopback to tests/sink.py;
"two processes" are real ones (tests/relay_worker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config, ShopConfig
from mailrelay.core.clock import FrozenClock
from mailrelay.core.models import InvitationMethod, MessageKind, OutboxKind, OutboxStatus
from mailrelay.core.relays import LEASE
from mailrelay.core.tokens import TokenSigner
from mailrelay.edges.mailer import SmtpTransport
from mailrelay.render import RenderedMail, Templates
from mailrelay.services.delivery import CLAIM_LEASE, Delivery
from mailrelay.services.inbound import dispatch_table
from mailrelay.services.intake import MESSAGE_LEASE, HandOver, Intake
from mailrelay.services.invitations import Candidate, Inviter, create_invitation
from mailrelay.services.reviews import Reviewer, TicketBatch
from mailrelay.store import (
    DueInvitation,
    InboundMessage,
    NewMail,
    NewMessage,
    NewReview,
    OutboxRow,
    Queries,
    ReviewText,
    Store,
    open_store,
)

from .cli_runner import cli
from .conftest import ConfigFactory, second_shop
from .mailtools import eventually, send, settle, trigger, via_sink
from .relay_worker import open_shared, to_sink
from .sink import Sink, running_sink

ROOT = Path(__file__).resolve().parent.parent
#: The backends the relays' store can be in (PostgreSQL: fixture `pg_database` of
#: tests/postgres.py, a fresh database per test).
STORE_KINDS = ["sqlite", "postgresql"]
#: Every wait on another process or the sink is bounded by this.
WAIT_S = 60.0


@pytest.fixture(params=STORE_KINDS)
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the relays' one store lives: what each relay (process) opens."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_database")
        return url
    return str(tmp_path / "relays.db")


def parcel_mail(n: int, now: datetime) -> NewMail:
    message_id = f"<parcel-{n}@relays.test>"
    raw = (f"From: Acme <shop@acme.example>\r\nTo: <customer{n}@example.com>\r\n"
           f"Subject: Parcel {n} is on its way\r\nMessage-ID: {message_id}\r\n\r\n"
           f"Your parcel {n} left our warehouse today.\r\n").encode()
    return NewMail(kind=OutboxKind.INVITATION, shop="acme", recipient=f"customer{n}@example.com",
                   envelope_from="bounce@acme.example", subject=f"Parcel {n} is on its way",
                   message_id=message_id, raw=raw, created_at=now, due_at=now)


def queue(location: str, count: int, now: datetime) -> list[int]:
    with open_shared(location) as store:
        ids: list[int] = store.write_sync(
            lambda q: [q.enqueue(parcel_mail(n, now)) for n in range(count)])
        return ids


def rows(store: Store, ids: list[int]) -> list[OutboxRow]:
    found = store.read(lambda q: [q.get_mail(i) for i in ids])
    return [row for row in found if row is not None]


def copies(sink: Sink) -> Counter[str]:
    """How often the sink received each Message-ID."""
    return Counter(str(BytesHeaderParser().parsebytes(raw)["Message-ID"])
                   for _sender, _rcpts, raw in sink.messages)


@contextlib.asynccontextmanager
async def sending(store: Store, relay: str, sink: Sink, clock: FrozenClock, *,
                  connections: int = 1, rate_per_minute: int = 600_000,
                  **options: Any) -> AsyncIterator[Delivery]:
    """One relay's delivery worker in this process, sending to the sink over `connections`
    connections (one transport each)."""
    transports = [SmtpTransport(to_sink(sink.port), local_hostname=f"{relay}.test")
                  for _ in range(connections)]
    try:
        yield Delivery(store, transports if connections > 1 else transports[0], clock,
                       rate_per_minute=rate_per_minute, sign_sender=str, relay=relay,
                       **options)
    finally:
        for transport in transports:
            await transport.close()


async def first_send_held(
    delivery: Delivery, sink: Sink
) -> tuple[asyncio.Event, asyncio.Task[int]]:
    """Start `delivery`'s round with the sink holding its first DATA unanswered; returns the
    event that releases it and the round (its count of mail attempted)."""
    release = sink.hold_next()
    round_ = asyncio.create_task(delivery.deliver_due())
    await asyncio.wait_for(sink.held.wait(), WAIT_S)
    return release, round_


async def restart_and_send_the_one_left(store: Store, sink: Sink, clock: FrozenClock) -> None:
    """relay-a starts again: the one row it left `sending` goes back to the queue and out."""
    async with sending(store, "relay-a", sink, clock) as again:
        assert await again.recover() == 1
        assert await again.deliver_due() == 1


async def start_worker(location: str, relay: str, sink: Sink,
                       now: datetime) -> asyncio.subprocess.Process:
    """tests/relay_worker.py as a process; returns once it is ready to send (`go` starts it)."""
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.relay_worker", location, relay, str(sink.port),
        now.isoformat(), cwd=ROOT, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert worker.stdout is not None
    line = await asyncio.wait_for(worker.stdout.readline(), WAIT_S)
    assert line == b"ready\n", line
    return worker


async def go(worker: asyncio.subprocess.Process) -> None:
    assert worker.stdin is not None
    worker.stdin.write(b"go\n")
    await worker.stdin.drain()


async def attempted_by(worker: asyncio.subprocess.Process) -> int:
    out, err = await asyncio.wait_for(worker.communicate(), WAIT_S)
    assert worker.returncode == 0, err.decode()
    return int(out.decode().split()[-1])


async def test_two_relays_in_two_processes_send_every_mail_exactly_once(
    shared_store: str, clock: FrozenClock
) -> None:
    ids = queue(shared_store, 300, clock.now())
    async with running_sink() as sink:
        workers = [await start_worker(shared_store, relay, sink, clock.now())
                   for relay in ("relay-a", "relay-b")]
        for worker in workers:
            await go(worker)
        attempted = [await attempted_by(worker) for worker in workers]
    assert sum(attempted) == 300
    assert min(attempted) > 0, "one relay did all the work: nothing ran side by side"
    seen = copies(sink)
    assert len(seen) == 300
    assert set(seen.values()) == {1}, "a message went out twice"
    with open_shared(shared_store) as store:
        done = rows(store, ids)
    assert {row.status for row in done} == {OutboxStatus.SENT}
    by_relay = Counter(row.claimed_by for row in done)
    assert by_relay == {"relay-a": attempted[0], "relay-b": attempted[1]}


async def test_a_restarting_relay_requeues_only_its_own_rows_and_leaves_another_relays_send(
    shared_store: str, clock: FrozenClock
) -> None:
    ids = queue(shared_store, 4, clock.now())
    with open_shared(shared_store) as store:
        # relay-a claimed two rows, then died: its claims are what a crash leaves behind.
        store.write_sync(lambda q: q.claim_due_mail(clock.now(), 2, relay="relay-a"))
        async with running_sink() as sink, sending(store, "relay-b", sink, clock) as b:
            release, b_sends = await first_send_held(b, sink)  # the other two; the first is held
            async with sending(store, "relay-a", sink, clock) as a:  # relay-a starts again
                assert await a.recover() == 2
                assert await a.deliver_due() == 2
            b_rows = [row for row in rows(store, ids) if row.claimed_by == "relay-b"]
            assert [row.status for row in b_rows] == [OutboxStatus.SENDING] * 2
            release.set()
            assert await b_sends == 2
    assert copies(sink) == Counter({f"<parcel-{n}@relays.test>": 1 for n in range(4)})


async def test_a_dead_relays_rows_are_taken_over_after_the_lease_and_sent_once(
    shared_store: str, clock: FrozenClock
) -> None:
    ids = queue(shared_store, 10, clock.now())
    async with running_sink() as sink:
        release = sink.hold_next()
        worker = await start_worker(shared_store, "relay-a", sink, clock.now())
        await go(worker)
        await asyncio.wait_for(sink.held.wait(), WAIT_S)
        worker.kill()  # SIGKILL mid-send: its batch stays claimed, its first DATA unanswered
        await worker.wait()
        with open_shared(shared_store) as store:
            assert {(row.status, row.claimed_by) for row in rows(store, ids)} == {
                (OutboxStatus.SENDING, "relay-a")}
            async with sending(store, "relay-b", sink, clock) as b:
                clock.advance(timedelta(minutes=1))
                assert await b.deliver_due() == 0, "relay-b took rows whose lease still ran"
                clock.advance(CLAIM_LEASE)
                assert await b.deliver_due() == 10
            assert {(row.status, row.claimed_by) for row in rows(store, ids)} == {
                (OutboxStatus.SENT, "relay-b")}
        # Every message once: the dead relay's DATA in flight was never acknowledged.
        assert copies(sink) == Counter({f"<parcel-{n}@relays.test>": 1 for n in range(10)})
        release.set()


class HeldResults:
    """A store whose delivery results (`submit`) commit only once `release` is set: a relay
    whose result writes are slow, or that is about to be killed before they commit."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def submit(self, fn: Callable[[Queries], Any], **options: Any) -> Future[Any]:
        outcome: Future[Any] = Future()

        def later() -> None:
            self.release.wait(WAIT_S)
            # As the store's writer does: a write whose caller gave up before it began is not.
            if outcome.set_running_or_notify_cancel():
                chain_future(self._store.submit(fn, **options), outcome)

        threading.Thread(target=later, daemon=True).start()
        return outcome


def chain_future(source: Future[Any], target: Future[Any]) -> None:
    def copy(done: Future[Any]) -> None:
        error = done.exception()
        if error is None:
            target.set_result(done.result())
        else:
            target.set_exception(error)
    source.add_done_callback(copy)


async def test_the_next_mail_goes_out_only_once_the_last_ones_result_is_stored(
    shared_store: str, clock: FrozenClock
) -> None:
    """So the receiver sees our next command (its 250 was read) only for a row already `sent`:
    a relay killed at any moment resends only mail whose 250 had not reached it (issue 15)."""
    ids = queue(shared_store, 3, clock.now())
    with open_shared(shared_store) as store:
        held = HeldResults(store)
        async with running_sink() as sink:
            async with sending(held, "relay-a", sink, clock) as a:
                sends = asyncio.create_task(a.deliver_due())
                await sink.wait_for(1, timeout=WAIT_S)
                await asyncio.sleep(0.5)  # time to send the next two, were it allowed to
                assert len(sink.messages) == 1 and sink.acknowledged == [False]
                assert {row.status for row in rows(store, ids)} == {OutboxStatus.SENDING}
                held.release.set()
                assert await sends == 3
            assert sink.acknowledged == [True, True, True]  # the last by QUIT, at the close
        assert {row.status for row in rows(store, ids)} == {OutboxStatus.SENT}


async def test_a_relay_stopping_right_after_the_receivers_250_still_records_the_mail_sent(
    shared_store: str, clock: FrozenClock
) -> None:
    """A SIGTERM cancels delivery while the result of the mail just sent waits for the store:
    the row still ends `sent`, so the next start does not send it again."""
    ids = queue(shared_store, 2, clock.now())
    with open_shared(shared_store) as store:
        held = HeldResults(store)
        async with running_sink() as sink:
            async with sending(held, "relay-a", sink, clock) as a:
                sends = asyncio.create_task(a.deliver_due())
                await sink.wait_for(1, timeout=WAIT_S)
                await asyncio.sleep(0.2)  # the 250 is read; its result waits for the store
                sends.cancel()  # the daemon stops its workers
                await asyncio.gather(sends, return_exceptions=True)
            held.release.set()
            await eventually(lambda: rows(store, ids)[0].status == OutboxStatus.SENT,
                             limit=WAIT_S, what="the first mail recorded as sent")
            assert rows(store, ids)[1].status == OutboxStatus.SENDING  # requeued at the start
            await restart_and_send_the_one_left(store, sink, clock)
    assert copies(sink) == Counter({f"<parcel-{n}@relays.test>": 1 for n in range(2)})


async def test_each_connection_sends_its_next_mail_only_once_its_last_result_is_stored(
    shared_store: str, clock: FrozenClock
) -> None:
    """With several connections, each is a lane of its own: one mail in flight per connection
    until its result is committed, so the receiver never sees one acknowledged early."""
    ids = queue(shared_store, 7, clock.now())
    with open_shared(shared_store) as store:
        held = HeldResults(store)
        async with running_sink() as sink:
            async with sending(held, "relay-a", sink, clock, connections=3) as a:
                sends = asyncio.create_task(a.deliver_due())
                await sink.wait_for(3, timeout=WAIT_S)
                await asyncio.sleep(0.5)  # time to send more, were it allowed to
                assert len(sink.messages) == 3 and sink.acknowledged == [False] * 3
                assert sink.connections == 3
                assert {row.status for row in rows(store, ids)} == {OutboxStatus.SENDING}
                held.release.set()
                assert await sends == 7
            assert sink.connections == 3 and all(sink.acknowledged)
        assert {row.status for row in rows(store, ids)} == {OutboxStatus.SENT}
    assert copies(sink) == Counter({f"<parcel-{n}@relays.test>": 1 for n in range(7)})


async def test_a_daemon_sends_over_its_configured_outbound_connections(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    config = via_sink(make_config(), sink)
    config = replace(config, outbound=replace(config.outbound, connections=2))
    async with Daemon(config, clock, relay_id="relay-a") as daemon:
        for n in range(6):
            await send(daemon, trigger(to=f"Customer {n} <customer{n}@example.com>",
                                       subject=f"A shipment from order #{4000 + n} is on the way"))
        await settle(daemon)
        clock.advance(timedelta(days=7))
        await daemon.tick()
        await sink.wait_for(6, timeout=WAIT_S)
    assert sink.connections == 2
    assert len(copies(sink)) == 6


async def test_several_connections_keep_to_the_configured_pace(
    shared_store: str, clock: FrozenClock
) -> None:
    queue(shared_store, 6, clock.now())
    with open_shared(shared_store) as store:
        async with (running_sink() as sink,
                    sending(store, "relay-a", sink, clock, connections=3,
                            rate_per_minute=240) as a):  # 4 a second, bursts of 4
            began = time.monotonic()
            assert await a.deliver_due() == 6
            assert time.monotonic() - began >= 0.45  # the burst of 4, then 2 at 0.25 s steps


async def test_a_relay_stopping_mid_data_waits_for_the_250_and_records_the_mail_sent(
    shared_store: str, clock: FrozenClock
) -> None:
    """A SIGTERM while the receiver has our whole message but not yet answered: the daemon's
    stop (which cancels again every half second) waits for the 250 and stores the result, so
    the next start does not send that mail a second time."""
    ids = queue(shared_store, 2, clock.now())
    with open_shared(shared_store) as store:
        async with running_sink() as sink:
            release = sink.hold_next()
            async with sending(store, "relay-a", sink, clock) as a:
                sends = asyncio.create_task(a.deliver_due())
                await asyncio.wait_for(sink.held.wait(), WAIT_S)
                stopping = asyncio.create_task(stop_like_the_daemon(sends))
                await asyncio.sleep(1.2)  # three cancellations while the DATA is unanswered
                assert not stopping.done()
                release.set()
                await asyncio.wait_for(stopping, WAIT_S)
            [first, second] = rows(store, ids)
            assert first.status == OutboxStatus.SENT
            assert second.status == OutboxStatus.SENDING  # never attempted: requeued at start
            assert sink.acknowledged == [True]
            await restart_and_send_the_one_left(store, sink, clock)
    assert copies(sink) == Counter({f"<parcel-{n}@relays.test>": 1 for n in range(2)})


async def test_a_relay_stopping_mid_data_waits_for_the_250_only_so_long(
    shared_store: str, clock: FrozenClock
) -> None:
    ids = queue(shared_store, 1, clock.now())
    with open_shared(shared_store) as store:
        async with running_sink() as sink:
            release = sink.hold_next()
            async with sending(store, "relay-a", sink, clock) as a:
                a.finish_on_stop = 0.5
                sends = asyncio.create_task(a.deliver_due())
                await asyncio.wait_for(sink.held.wait(), WAIT_S)
                began = time.monotonic()
                await stop_like_the_daemon(sends)
                assert time.monotonic() - began < 3
            assert rows(store, ids)[0].status == OutboxStatus.SENDING  # requeued at the start
            release.set()


async def stop_like_the_daemon(task: asyncio.Task[Any]) -> None:
    """What the daemon's stop does to its workers (app._cancel): cancel, again every 0.5 s."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_with_a_short_lease_a_dead_relays_mail_is_taken_over_soon_after_it(
    shared_store: str, clock: FrozenClock
) -> None:
    ids = queue(shared_store, 2, clock.now())
    lease = timedelta(seconds=20)
    with open_shared(shared_store) as store:
        # relay-a claimed both and died.
        store.write_sync(lambda q: q.claim_due_mail(clock.now(), 2, relay="relay-a"))
        async with running_sink() as sink, sending(store, "relay-b", sink, clock,
                                                  lease=lease) as b:
            assert await b.deliver_due() == 0
            clock.advance(timedelta(seconds=21))  # not a whole minute (EXPIRY_CHECK)
            assert await b.deliver_due() == 2
        assert {(row.status, row.claimed_by) for row in rows(store, ids)} == {
            (OutboxStatus.SENT, "relay-b")}


async def test_a_slow_relay_renews_its_claims_and_is_not_overtaken(
    shared_store: str, clock: FrozenClock
) -> None:
    ids = queue(shared_store, 3, clock.now())
    with open_shared(shared_store) as store:
        async with (running_sink() as sink,
                    sending(store, "relay-a", sink, clock, renew_every=0.05) as a,
                    sending(store, "relay-b", sink, clock) as b):
            release, a_sends = await first_send_held(a, sink)
            clock.advance(CLAIM_LEASE * 2)  # the held send has taken longer than a lease
            await asyncio.sleep(0.3)  # relay-a renews meanwhile
            assert await b.deliver_due() == 0
            release.set()
            assert await a_sends == 3
        assert {(row.status, row.claimed_by) for row in rows(store, ids)} == {
            (OutboxStatus.SENT, "relay-a")}
    assert set(copies(sink).values()) == {1}


async def test_a_clock_stepped_past_the_lease_never_makes_a_relay_resend_its_own_mail_in_flight(
    shared_store: str, clock: FrozenClock
) -> None:
    """The clock jumps (an NTP step) while a send waits for its 250, before the relay's next
    renewal: the relay's own next round renews what it has in flight instead of taking it
    over and sending it a second time."""
    ids = queue(shared_store, 3, clock.now())
    with open_shared(shared_store) as store:
        async with (running_sink() as sink,
                    sending(store, "relay-a", sink, clock, renew_every=3600) as a):
            release, first_round = await first_send_held(a, sink)
            clock.advance(CLAIM_LEASE * 2)
            assert await a.deliver_due() == 0  # nothing expired: its claims were renewed
            release.set()
            assert await first_round == 3
        assert {(row.status, row.claimed_by) for row in rows(store, ids)} == {
            (OutboxStatus.SENT, "relay-a")}
    assert set(copies(sink).values()) == {1}


async def test_a_late_result_after_a_takeover_leaves_the_row_to_the_relay_that_took_it_over(
    shared_store: str, clock: FrozenClock
) -> None:
    [outbox_id] = queue(shared_store, 1, clock.now())
    results: list[tuple[str, str]] = []

    def noting(relay: str) -> Callable[..., None]:
        return lambda _q, _mail, status, _now, _error: results.append((relay, status))

    with open_shared(shared_store) as store:
        async with (running_sink() as sink,
                    # relay-a renews too late: as if its store connection hung for a while.
                    sending(store, "relay-a", sink, clock, renew_every=3600,
                            on_result=noting("relay-a")) as a,
                    sending(store, "relay-b", sink, clock, on_result=noting("relay-b")) as b):
            release, a_sends = await first_send_held(a, sink)
            clock.advance(CLAIM_LEASE + timedelta(minutes=1))
            assert await b.deliver_due() == 1
            release.set()  # relay-a's send is acknowledged now, after the takeover
            assert await a_sends == 1
        [row] = rows(store, [outbox_id])
    assert (row.status, row.claimed_by, row.attempts) == (OutboxStatus.SENT, "relay-b", 2)
    assert results == [("relay-b", OutboxStatus.SENT)]
    # At least once: the copy relay-a had in flight, unacknowledged at the takeover, arrived
    # too; byte for byte the same, so the receiver's duplicate check collapses them.
    assert len(sink.messages) == 2 and sink.messages[0][2] == sink.messages[1][2]


async def test_a_relay_whose_renewals_did_not_commit_sends_no_more_of_its_batch(
    shared_store: str, clock: FrozenClock
) -> None:
    queue(shared_store, 3, clock.now())
    with open_shared(shared_store) as store:
        async with (running_sink() as sink,
                    # relay-a's renewals never commit in time: its store hangs for a while.
                    sending(store, "relay-a", sink, clock, renew_every=3600) as a,
                    sending(store, "relay-b", sink, clock) as b):
            release, a_sends = await first_send_held(a, sink)
            clock.advance(CLAIM_LEASE + timedelta(minutes=1))
            assert await b.deliver_due() == 3  # took the batch over, the held one included
            release.set()
            await a_sends  # the send in flight ends; relay-a sends none of the other two
    # Only the copy relay-a had in flight at the takeover arrived twice.
    assert copies(sink) == Counter({"<parcel-0@relays.test>": 2, "<parcel-1@relays.test>": 1,
                                    "<parcel-2@relays.test>": 1})


async def test_a_batch_left_for_unrenewed_claims_still_its_own_is_sent_at_once_not_after_the_lease(
    shared_store: str, clock: FrozenClock
) -> None:
    """Nobody took the rows over: the relay puts the rest of its batch back in the queue and
    sends it in its next round, rather than leaving it claimed until the lease runs out."""
    queue(shared_store, 3, clock.now())
    with open_shared(shared_store) as store:
        async with (running_sink() as sink,
                    sending(store, "relay-a", sink, clock, renew_every=3600) as a):
            release, a_sends = await first_send_held(a, sink)
            clock.advance(CLAIM_LEASE * 2 / 3 + timedelta(seconds=1))  # less than the lease
            release.set()
            await a_sends
    assert copies(sink) == Counter({"<parcel-0@relays.test>": 1, "<parcel-1@relays.test>": 1,
                                    "<parcel-2@relays.test>": 1})


def test_requeueing_expired_claims_on_postgresql_skips_a_row_another_relay_holds_right_now(
    pg_database: str, clock: FrozenClock
) -> None:
    """Not waited for (a multi-row UPDATE waiting on rows another relay locks in another
    order deadlocked): its relay is renewing or finishing it this very moment."""
    ids = queue(pg_database, 2, clock.now())
    later = clock.now() + CLAIM_LEASE + timedelta(minutes=1)
    with open_shared(pg_database) as store:
        store.write_sync(lambda q: q.claim_due_mail(clock.now(), 2, relay="relay-a"))
        with psycopg.connect(pg_database) as other, ThreadPoolExecutor(1) as pool:
            other.execute("SELECT id FROM outbox WHERE id = %s FOR UPDATE", (ids[0],))
            requeue = pool.submit(store.write_sync,
                                  lambda q: q.requeue_expired(later, CLAIM_LEASE))
            try:
                assert requeue.result(timeout=10) == 1
            finally:
                other.rollback()
        assert [row.status for row in rows(store, ids)] == [OutboxStatus.SENDING,
                                                           OutboxStatus.QUEUED]


def test_noting_a_known_trigger_sender_on_postgresql_never_waits_for_another_relays_batch(
    pg_database: str, clock: FrozenClock
) -> None:
    """Every intake batch notes its shops' senders: waiting for another relay's batch to commit
    queued the relays' writers behind each other (and their 250s with them). The sighting is
    not lost: the next commit counts it."""
    def note(q: Queries) -> bool:
        return q.note_trigger_sender("acme", "shop@acme.example", clock.now())

    def count() -> int:
        with psycopg.connect(pg_database) as conn:
            [(found,)] = conn.execute("SELECT count FROM trigger_senders").fetchall()
        return int(found)

    with open_shared(pg_database) as store:
        assert store.write_sync(note) is True  # a new sender
        assert store.write_sync(note) is False
        with psycopg.connect(pg_database) as other, ThreadPoolExecutor(1) as pool:
            # A transaction holding the sender's row, as a relay of the version that counted
            # sightings mid-batch did until its batch committed.
            other.execute("UPDATE trigger_senders SET count = count + 1 WHERE shop = 'acme'")
            noted = pool.submit(store.write_sync, note)
            try:
                assert noted.result(timeout=10) is False
            finally:
                other.rollback()
        assert count() == 2  # the sighting during the other batch is not counted yet: no wait
        # (the other batch's own sighting was rolled back here)
        assert store.write_sync(note) is False
        assert count() == 4  # the next commit counts it with its own


def test_each_channel_requeues_its_own_expired_claims_mail_or_webhook_posts(
    shared_store: str, clock: FrozenClock
) -> None:
    hook = replace(parcel_mail(99, clock.now()), kind=OutboxKind.WEBHOOK,
                   recipient="https://hooks.acme.example/reviews", message_id="<event-1>")
    later = clock.now() + CLAIM_LEASE + timedelta(minutes=1)
    with open_shared(shared_store) as store:
        store.write_sync(lambda q: [q.enqueue(parcel_mail(1, clock.now())), q.enqueue(hook)])
        for webhooks in (False, True):  # relay-a claims one of each, then dies
            assert len(store.write_sync(lambda q, w=webhooks: q.claim_due_mail(
                clock.now(), 5, w, relay="relay-a"))) == 1
        assert store.write_sync(lambda q: q.requeue_expired(later, CLAIM_LEASE)) == 1
        assert store.write_sync(lambda q: q.requeue_expired(later, CLAIM_LEASE, True)) == 1
        assert store.write_sync(lambda q: q.requeue_expired(later, CLAIM_LEASE, True)) == 0


def test_the_outbox_listing_names_the_relay_holding_a_message_in_flight(
    config: Config, clock: FrozenClock
) -> None:
    with open_store(config.store) as store:
        store.write_sync(lambda q: [q.enqueue(parcel_mail(n, clock.now())) for n in range(2)])
        store.write_sync(lambda q: q.claim_due_mail(clock.now(), 1, relay="relay-a"))
    code, out = cli(config, "outbox", "--format", "json")
    assert code == 0, out
    assert [(row["status"], row["claimed_by"]) for row in json.loads(out)] == [
        ("sending", "relay-a"), ("queued", None)]


def test_a_late_result_settles_a_row_whose_lease_ran_out_while_no_relay_claimed_it_again(
    shared_store: str, clock: FrozenClock
) -> None:
    queue(shared_store, 1, clock.now())
    later = clock.now() + CLAIM_LEASE + timedelta(minutes=1)
    with open_shared(shared_store) as store:
        [row] = store.write_sync(lambda q: q.claim_due_mail(clock.now(), 5, relay="relay-a"))
        assert store.write_sync(lambda q: q.requeue_expired(later, CLAIM_LEASE)) == 1
        assert not store.write_sync(lambda q: q.finish_mail(
            row.id, OutboxStatus.SENT, later, relay="relay-b", attempt=row.attempts))
        assert store.write_sync(lambda q: q.finish_mail(
            row.id, OutboxStatus.SENT, later, relay="relay-a", attempt=row.attempts))
        # It went out: no relay sends it again.
        assert store.write_sync(lambda q: q.claim_due_mail(later, 5, relay="relay-b")) == []


def reply_message(n: int, now: datetime) -> NewMessage:
    raw = f"Message-ID: <answer-{n}@agents.test>\r\nSubject: Re: review\r\n\r\nThanks!\r\n"
    return NewMessage(received_at=now, peer="127.0.0.1", mail_from="agent@acme.example",
                      rcpt="reply+key@reply.acme.example", shop="acme", kind=MessageKind.REPLY,
                      message_id=f"<answer-{n}@agents.test>", dedupe_key=f"answer-{n}",
                      raw=raw.encode())


def intake(config: Config, store: Store, clock: FrozenClock, relay: str,
           handle: Callable[[InboundMessage], Awaitable[str]]) -> Intake:
    return Intake(config, store, TokenSigner(b"k" * 32), clock, relay=relay,
                  dispatch={MessageKind.REPLY: HandOver(handle)})


async def test_a_reply_one_relay_is_handling_is_left_alone_by_the_others(
    shared_store: str, config: Config, clock: FrozenClock
) -> None:
    handled: list[str] = []
    gate = asyncio.Event()

    async def slowly(_msg: InboundMessage) -> str:
        handled.append("relay-a")
        await gate.wait()
        return "answered"

    async def quickly(_msg: InboundMessage) -> str:
        handled.append("relay-b")
        return "answered"

    with open_shared(shared_store) as store:
        store.write_sync(lambda q: q.insert_message(reply_message(1, clock.now())))
        a_pass = asyncio.create_task(intake(config, store, clock, "relay-a", slowly)
                                     .process_pending())
        while not handled:  # noqa: ASYNC110 - relay-a's handler says when it runs
            await asyncio.sleep(0.01)
        await intake(config, store, clock, "relay-b", quickly).process_pending()
        gate.set()
        await a_pass
        assert store.read(Queries.count_pending_messages) == 0
    assert handled == ["relay-a"]


async def test_a_dead_relays_reply_is_taken_over_after_the_lease_and_its_own_at_its_restart(
    shared_store: str, config: Config, clock: FrozenClock
) -> None:
    handled: list[tuple[str, int]] = []

    def by(relay: str) -> Callable[[InboundMessage], Awaitable[str]]:
        async def handle(msg: InboundMessage) -> str:
            handled.append((relay, msg.id))
            return "answered"
        return handle

    with open_shared(shared_store) as store:
        # relay-a and relay-c each died while handling a reply.
        first, second = store.write_sync(lambda q: [
            q.insert_message(reply_message(n, clock.now())) for n in (1, 2)])
        for row_id, relay in ((first, "relay-a"), (second, "relay-c")):
            assert store.write_sync(lambda q, i=row_id, r=relay: q.claim_message_handling(
                i, clock.now(), MESSAGE_LEASE, relay=r))
        await intake(config, store, clock, "relay-b", by("relay-b")).process_pending()
        assert handled == []
        await intake(config, store, clock, "relay-a", by("relay-a")).process_pending()
        assert handled == [("relay-a", first)]  # its own hold, from before its restart
        clock.advance(MESSAGE_LEASE + timedelta(minutes=1))
        await intake(config, store, clock, "relay-b", by("relay-b")).process_pending()
        assert handled == [("relay-a", first), ("relay-b", second)]
        assert store.read(Queries.count_pending_messages) == 0


def trigger_message(n: int, now: datetime, relay: str) -> NewMessage:
    raw = trigger(to=f"Customer {n} <customer{n}@example.com>",
                  subject=f"A shipment from order #{2000 + n} is on the way",
                  message_id=f"<order-{n}@platform.example>")
    return NewMessage(received_at=now, peer="127.0.0.1", mail_from="shop@acme.example",
                      rcpt="reviews+acme@relay.test", shop="acme", kind=MessageKind.SHIPMENT,
                      message_id=f"<order-{n}@platform.example>", dedupe_key=f"order-{n}",
                      raw=raw, relay=relay)


async def test_a_trigger_is_processed_by_the_relay_that_accepted_it_or_after_the_lease(
    shared_store: str, config: Config, clock: FrozenClock
) -> None:
    signer = TokenSigner(b"k" * 32)
    with open_shared(shared_store) as store:

        def relay(name: str) -> Intake:
            return Intake(config, store, signer, clock, relay=name,
                          dispatch=dispatch_table(signer))

        # relay-a and relay-c each accepted a trigger (250) and died before processing it.
        store.write_sync(lambda q: [q.insert_message(trigger_message(n, clock.now(), name))
                                    for n, name in ((1, "relay-a"), (2, "relay-c"))])
        assert await relay("relay-b").process_pending() == 0  # neither is relay-b's yet
        assert await relay("relay-a").process_pending() == 1  # its own, at its restart
        clock.advance(MESSAGE_LEASE + timedelta(minutes=1))
        assert await relay("relay-b").process_pending() == 1  # relay-c's, after the lease
        assert store.read(Queries.count_pending_messages) == 0
        assert sorted(row.reference for row in store.read(lambda q: q.list_shipments())) == [
            "2001", "2002"]


#: How often each invitation's mail was rendered, by any relay.
RENDERED: Counter[int] = Counter()


class CountingInviter(Inviter):
    """The inviter, counting each invitation's renders in RENDERED."""

    def render_mail(self, shop: ShopConfig, row: DueInvitation, kind: OutboxKind,
                    now: datetime) -> RenderedMail:
        RENDERED[row.id] += 1
        return super().render_mail(shop, row, kind, now)


def schedule(store: Store, config: Config, count: int, now: datetime) -> list[int]:
    shop = config.shop("acme")
    assert shop is not None
    ids: list[int] = store.write_sync(lambda q: [create_invitation(
        q, shop, Candidate(f"customer{n}@example.com", f"Customer {n}", f"R{n}", "en", None,
                           InvitationMethod.AUTOMATIC), TokenSigner(b"k" * 32), now, due=now)
        for n in range(count)])
    return ids


async def test_two_relays_render_each_due_invitation_once(
    shared_store: str, config: Config, clock: FrozenClock
) -> None:
    RENDERED.clear()
    with open_shared(shared_store) as store:
        ids = schedule(store, config, 40, clock.now())
        relays = [CountingInviter(config, store, Templates(config), TokenSigner(b"k" * 32),
                                  clock, relay=name, batch_size=10)
                  for name in ("relay-a", "relay-b")]
        queued = await asyncio.gather(*(relay.queue_due() for relay in relays))
        assert sum(queued) == 40
        outbox = store.read(lambda q: [q.get_invitation(i) for i in ids])
    assert all(row is not None and row.outbox_id for row in outbox)
    assert sorted(RENDERED) == ids and set(RENDERED.values()) == {1}, "rendered twice"


async def test_invitations_a_dead_relay_held_are_rendered_by_another_after_the_lease(
    shared_store: str, config: Config, clock: FrozenClock
) -> None:
    RENDERED.clear()
    with open_shared(shared_store) as store:
        ids = schedule(store, config, 3, clock.now())
        # relay-a held them for rendering, then died.
        assert store.write_sync(lambda q: q.hold_invitations(
            ids, clock.now(), clock.now() - LEASE, relay="relay-a")) == set(ids)
        relay_b = CountingInviter(config, store, Templates(config), TokenSigner(b"k" * 32),
                                  clock, relay="relay-b")
        assert await relay_b.queue_due() == 0
        clock.advance(LEASE + timedelta(minutes=1))
        assert await relay_b.queue_due() == 3
    assert sorted(RENDERED) == ids


#: How often each review's tickets were rendered, by any relay.
TICKETS_RENDERED: Counter[int] = Counter()


class CountingReviewer(Reviewer):
    """The reviewer, counting each review's ticket renders in TICKETS_RENDERED."""

    def _render_tickets(self, shop: ShopConfig, facts: dict[str, Any],
                        now: datetime) -> TicketBatch:
        TICKETS_RENDERED[facts["review"].id] += 1
        return super()._render_tickets(shop, facts, now)


async def test_two_relays_render_each_reviews_tickets_once(
    shared_store: str, config: Config, clock: FrozenClock
) -> None:
    TICKETS_RENDERED.clear()
    with open_shared(shared_store) as store:
        invitations = schedule(store, config, 12, clock.now())
        reviews = store.write_sync(lambda q: [q.insert_review(NewReview(
            shop="acme", invitation_id=i, method="automatic",
            text=ReviewText(4, None, "Arrived a day early.", f"Customer {n}"),
            customer_email=f"customer{n}@example.com", reference=f"R{n}", locale="en",
            created_at=clock.now())) for n, i in enumerate(invitations)])
        relays = [CountingReviewer(config, store, Templates(config), TokenSigner(b"k" * 32),
                                   clock, relay=name, batch_size=4)
                  for name in ("relay-a", "relay-b")]
        handled = await asyncio.gather(*(relay.queue_tickets() for relay in relays))
        assert sum(handled) == 12
        assert store.read(lambda q: q.pending_tickets(100)) == []
        tickets = store.read(lambda q: q.list_mail(kind=OutboxKind.TICKET))
    assert sorted(TICKETS_RENDERED) == reviews and set(TICKETS_RENDERED.values()) == {1}
    assert len(tickets) == 12  # one agent, one ticket per review


async def test_two_daemons_on_one_store_invite_each_customer_of_both_shops_once(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    config = via_sink(make_config(more=second_shop()), sink)
    async with (Daemon(config, clock, relay_id="relay-a") as a,
                Daemon(config, clock, relay_id="relay-b") as b):
        for n in range(24):  # triggers for both shops, reaching either relay
            await send((a, b)[n % 2], trigger(
                to=f"Customer {n} <customer{n}@example.com>",
                subject=f"A shipment from order #{3000 + n} is on the way"),
                ("reviews+acme@relay.test", "reviews+bolt@relay.test")[n // 12])
        await settle(a)
        await settle(b)
        clock.advance(timedelta(days=7))
        await asyncio.gather(a.tick(), b.tick(), a.tick(), b.tick())
        await sink.wait_for(24, timeout=30)

        def statuses() -> list[tuple[str, str]]:
            return sorted((row.shop, row.status)
                          for row in a.store.read(lambda q: q.list_invitations()))

        # The sink has a mail before its relay records the 250: wait for the results.
        await eventually(lambda: statuses() == [("acme", "sent")] * 12 + [("bolt", "sent")] * 12,
                         limit=30, what="every invitation recorded as sent")
    seen = copies(sink)
    assert len(seen) == 24 and set(seen.values()) == {1}, "an invitation went out twice"
    senders = Counter(str(BytesHeaderParser().parsebytes(raw)["From"]).split("@")[-1]
                      for _sender, _rcpts, raw in sink.messages)
    assert senders == {"acme.example>": 12, "bolt.example>": 12}


async def test_a_daemons_lease_says_when_it_takes_over_a_dead_relays_accepted_trigger(
    config: Config, clock: FrozenClock
) -> None:
    async with Daemon(config, clock, relay_id="relay-b", lease=timedelta(seconds=30)) as b:
        await dead_relays_trigger_waits_out(b, clock, timedelta(seconds=30))


async def dead_relays_trigger_waits_out(b: Daemon, clock: FrozenClock, lease: timedelta) -> None:
    """relay-a accepted a trigger (250) and died before processing it: relay `b` leaves it
    alone until `lease` has passed, then makes its shipment."""
    b.store.write_sync(lambda q: q.insert_message(trigger_message(1, clock.now(), "relay-a")))
    clock.advance(lease - timedelta(seconds=1))
    b.intake.wake()
    await asyncio.sleep(0.3)
    assert b.store.read(Queries.count_pending_messages) == 1
    clock.advance(timedelta(seconds=2))
    await settle(b)
    [shipment] = b.store.read(lambda q: q.list_shipments())
    assert shipment.reference == "2001"


async def test_the_configured_lease_is_the_daemons_lease(
    config: Config, clock: FrozenClock
) -> None:
    configured = replace(config, store=replace(config.store, lease=timedelta(seconds=20)))
    async with Daemon(configured, clock, relay_id="relay-b") as b:
        assert b.lease == b.delivery.lease == b.intake.lease == timedelta(seconds=20)
        await dead_relays_trigger_waits_out(b, clock, timedelta(seconds=20))


async def test_the_retention_purge_runs_on_one_relay_a_day(
    make_config: ConfigFactory, clock: FrozenClock
) -> None:
    config = make_config(shop_extra='retention = "30d"')
    purges: list[int] = []

    async def purge_as(relay: str) -> None:
        async with Daemon(config, clock, relay_id=relay) as daemon:
            purges.append(await daemon.purge())

    async with Daemon(config, clock, relay_id="relay-a") as daemon:
        await send(daemon, trigger(to="Private Person <private@example.com>"))
        await settle(daemon)
    clock.advance(timedelta(days=29, hours=23))
    await purge_as("relay-a")  # today's run: nothing is 30 days old yet
    clock.advance(timedelta(minutes=90))  # the same UTC day; the shipment is older now
    await purge_as("relay-b")  # relay-a ran today's purge: relay-b does not
    await purge_as("relay-a")  # relay-a again (a retry of its own day's run) does
    clock.advance(timedelta(days=1))
    await purge_as("relay-b")  # the next day is relay-b's, since it claimed it first
    assert purges[:3] == [0, 0, purges[2]] and purges[2] > 0
    with open_store(config.store) as store:
        day = clock.now().date().isoformat()
        assert not store.write_sync(lambda q: q.claim_job_day("retention", day, clock.now(),
                                                              relay="relay-a"))
