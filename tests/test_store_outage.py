"""Relays whose PostgreSQL stops or restarts mid-run: while the server is down a trigger is
deferred (an SMTP 4xx, never a 250), a review form is not thanked, and nothing accepted before
is lost (mail due waits in the outbox, a reply in the mailbox); once it is back the relay
accepts again, one relay watches the IMAP mailbox again and wake-ups arrive again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import aiosmtplib
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.core.errors import StoreError
from mailrelay.core.models import OutboxKind
from mailrelay.store import NewMail
from mailrelay.store.pg.database import PgStore

from .conftest import ConfigFactory
from .imap_servers import ImapServer
from .mailtools import ACME_BCC, customer_mails, eventually, send, settle, trigger, via_sink
from .postgres import PostgresServer
from .sink import Sink
from .test_console_login import csrf_of
from .test_relay_roles import queue_alert, relay, relays
from .tickets import agent_reply, ticketed
from .web_forms import form_page, invite
from .web_forms import post as post_review

pytestmark = pytest.mark.postgresql


def shipped_orders(daemon: Daemon) -> list[str]:
    return sorted(str(row[0]) for row in daemon.store.read(lambda q: q.conn.execute(
        "SELECT reference FROM shipments").fetchall()))


async def test_a_trigger_is_deferred_while_postgresql_is_down_and_none_accepted_is_lost(
    config: Config, clock: FrozenClock, postgres_server: PostgresServer,
) -> None:
    async with Daemon(config, clock) as daemon:
        await send(daemon, trigger(subject="A shipment from order #2001 is on the way"))
        await settle(daemon)
        postgres_server.stop()
        try:
            started = time.monotonic()
            with pytest.raises(aiosmtplib.SMTPResponseException) as deferred:
                await aiosmtplib.send(
                    trigger(subject="A shipment from order #2002 is on the way"),
                    sender="platform@shop.example", recipients=[ACME_BCC],
                    hostname="127.0.0.1", port=daemon.smtp_port, timeout=60)
            assert 400 <= deferred.value.code < 500, deferred.value
            assert time.monotonic() - started < 30, "the client waited out the store"
        finally:
            postgres_server.start()

        async def accepted_again() -> bool:
            try:
                await send(daemon, trigger(subject="A shipment from order #2003 is on the way"))
            except aiosmtplib.SMTPResponseException as exc:
                assert 400 <= exc.code < 500, exc
                await asyncio.sleep(0.5)
                return False
            return True

        await eventually(accepted_again, limit=30, what="a 250 once PostgreSQL is back")
        await settle(daemon)
        await eventually(lambda: shipped_orders(daemon) == ["2001", "2003"], limit=10,
                         what="the triggers answered 250, each one shipment")


async def test_after_a_database_restart_one_relay_watches_the_mailbox_and_wakeups_reach_it(
    make_config: ConfigFactory, pymap: ImapServer, clock: FrozenClock, sink: Sink,
    postgres_server: PostgresServer, tmp_path: Path,
) -> None:
    """A restart (or failover) of PostgreSQL ends every session: the advisory lock of the
    IMAP watcher's role and the LISTEN connections. Afterwards one relay watches again, and
    mail queued by another writer wakes a relay at once, not at its 30-second poll."""
    config = via_sink(make_config(more=pymap.toml()), sink)
    assert config.store.url is not None
    async with relays(relay(config, tmp_path, "relay-a"), relay(config, tmp_path, "relay-b"),
                      clock=clock) as both:
        await eventually(lambda: any(d.watching_imap for d in both), what="a watcher")

        await asyncio.to_thread(postgres_server.restart)

        def one_watcher_connected() -> bool:
            watching = [d for d in both if d.watching_imap]
            return len(watching) == 1 and watching[0].imap is not None \
                and watching[0].imap.connected
        await eventually(one_watcher_connected, limit=15, what="one relay watching again")
        await eventually(lambda: all(getattr(d.coordination.wakeups, "listening", False)
                                     for d in both), limit=15, what="both listening again")
        other = PgStore(config.store.url, relay_id="elsewhere")  # another relay's writes
        try:
            await queue_alert(other, clock.now(), "Queued after the restart",
                              "<restart@relay.test>")
            await sink.wait_for(1, timeout=5)
        finally:
            other.close()
        assert [to for _f, to, _raw in sink.messages] == [["ops@acme.example"]]


async def test_a_review_posted_while_postgresql_is_down_is_not_thanked_and_goes_in_once_after(
    config: Config, clock: FrozenClock, postgres_server: PostgresServer,
) -> None:
    """The customer must not read "thank you" for a review the store never took, nor wait
    half a minute to learn it; the same form posted again once the server is back stores it,
    once."""
    async with Daemon(config, clock) as daemon, aiohttp.ClientSession() as http:
        invitation = await invite(daemon)
        html = await form_page(http, daemon, invitation.token)
        fields = {"stars": "4", "title": "Sturdy", "text": "Posted during the outage.",
                  "name": "John S.", "csrf": csrf_of(html)}
        postgres_server.stop()
        try:
            started = time.monotonic()
            status, page, _ = await post_review(http, daemon, invitation.token, fields)
            assert status == 500, page
            assert "Please try again in a few minutes." in page
            # Not after the pool's 30 s wait for a connection: the server is probed.
            assert time.monotonic() - started < 10
        finally:
            postgres_server.start()

        async def stored() -> bool:
            status, _page, _ = await post_review(http, daemon, invitation.token, fields)
            return status == 200
        await eventually(stored, limit=30, what="the review taken once the server is back")
        [review] = daemon.store.read(lambda q: q.list_reviews(shop="acme"))
        assert review.text == "Posted during the outage."


async def test_an_agent_reply_arriving_while_postgresql_is_down_is_published_once_after(
    make_config: ConfigFactory, pymap: ImapServer, clock: FrozenClock, sink: Sink,
    postgres_server: PostgresServer,
) -> None:
    """The watcher stops with its role while the store is unreachable; the reply stays in the
    mailbox, and the relay watching after the restart publishes it and mails the customer,
    once."""
    config = via_sink(make_config(more=pymap.toml()), sink)
    daemon = Daemon(config, clock)
    daemon.role_interval = 0.1
    async with daemon:
        await eventually(lambda: daemon.watching_imap, what="watching")
        t = await ticketed(daemon, clock, sink)
        postgres_server.stop()
        try:
            await pymap.append(agent_reply(t, "Sorry, Ann! The refund is on its way."))
            await eventually(lambda: not daemon.watching_imap, limit=10,
                             what="the watcher stopped with the store")
        finally:
            postgres_server.start()
        await eventually(lambda: len(customer_mails(sink)) == 1, limit=30,
                         what="the reply published and mailed")
        await asyncio.sleep(0.5)  # time for a second copy, were there one
        assert len(customer_mails(sink)) == 1
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None and "The refund is on its way." in review.response


async def test_mail_due_while_postgresql_is_down_waits_in_the_outbox_and_goes_once_after(
    config: Config, clock: FrozenClock, sink: Sink, postgres_server: PostgresServer,
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        now = clock.now()
        await daemon.store.write(lambda q: q.enqueue(NewMail(
            kind=OutboxKind.ALERT, shop="acme", invitation_id=None, review_id=None,
            recipient="ops@acme.example", envelope_from="bounces@relay.test",
            subject="Due in the outage", message_id="<outage@relay.test>",
            raw=b"Subject: Due in the outage\r\n\r\nQueued before it.\r\n",
            created_at=now, due_at=now + timedelta(minutes=5))))
        postgres_server.stop()
        try:
            clock.advance(timedelta(minutes=10))
            with contextlib.suppress(StoreError):
                await daemon.tick()  # the dispatcher cannot claim it: nothing is sent
            await asyncio.sleep(0.5)
            assert sink.messages == []
        finally:
            postgres_server.start()

        async def sent() -> bool:
            with contextlib.suppress(StoreError):
                await daemon.tick()
            return len(sink.messages) >= 1
        await eventually(sent, limit=30, what="the mail sent once the server is back")
        await asyncio.sleep(0.5)  # time for a second copy, were there one
    assert [rcpts for _f, rcpts, _raw in sink.messages] == [["ops@acme.example"]]
