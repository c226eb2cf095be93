"""The daemon on PostgreSQL (`[store] url`), through its real listeners: a trigger over SMTP,
the invitation after the delay, the review form over HTTP, the ticket to the agent."""

from __future__ import annotations

import re
from datetime import timedelta

import aiohttp
import psycopg
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.store.pg.database import PgStore

from .mailtools import eventually, parsed, send, settle, text_of, trigger, via_sink
from .sink import Sink
from .web_forms import submit

pytestmark = pytest.mark.postgresql


async def test_trigger_invitation_review_and_ticket_run_on_postgresql(
    config: Config, clock: FrozenClock, sink: Sink,
) -> None:
    assert config.store.url is not None
    async with Daemon(via_sink(config, sink), clock) as daemon:
        assert isinstance(daemon.store, PgStore)
        await send(daemon, trigger(to="John Smith <john.smith@example.com>"))
        await settle(daemon)
        clock.advance(timedelta(days=6, hours=23))
        assert await daemon.tick() == 0
        clock.advance(timedelta(hours=1))
        assert await daemon.tick() == 1
        await sink.wait_for(1)
        invitation = parsed(sink.messages[0][2])
        assert sink.messages[0][1] == ["john.smith@example.com"]
        match = re.search(r"http://reviews\.test/r/([A-Za-z0-9_-]+)", text_of(invitation))
        assert match, text_of(invitation)
        async with aiohttp.ClientSession() as http:
            status, page = await submit(http, daemon, match.group(1), stars="2",
                                        title="Late", text="It took two weeks.")
        assert status == 200, page
        await daemon.tick()
        await sink.wait_for(2)
        ticket = parsed(sink.messages[1][2])
        assert ticket["To"] == "support@acme.example"
        assert "It took two weeks." in text_of(ticket)
        [review] = daemon.store.read(lambda q: q.list_reviews(shop="acme"))
        assert (review.stars, review.text) == (2, "It took two weeks.")
    # The rows are in PostgreSQL, not in a SQLite file beside the config.
    with psycopg.connect(config.store.url) as conn:
        counts = conn.execute("SELECT (SELECT COUNT(*) FROM shipments),"
                              " (SELECT COUNT(*) FROM reviews),"
                              " (SELECT COUNT(*) FROM outbox WHERE status = 'sent')").fetchone()
    assert counts == (1, 1, 2)
    assert not config.store.path.exists()


async def test_two_relays_on_one_database_share_the_loop_each_doing_a_step(
    config: Config, clock: FrozenClock, sink: Sink,
) -> None:
    """The trigger reaches relay one, relay two renders the invitation (either sends it), the
    customer's form is served by relay two and the ticket leaves from either: no step needs the
    relay that did the one before, and each mail leaves once."""
    relay_config = via_sink(config, sink)
    async with (Daemon(relay_config, clock, relay_id="relay-one") as one,
                Daemon(relay_config, clock, relay_id="relay-two") as two):
        await send(one, trigger(to="John Smith <john.smith@example.com>"))
        await settle(one)
        clock.advance(timedelta(days=7))
        # Relay two renders the invitation; its commit wakes both dispatchers (NOTIFY), so
        # either relay may send it: once.
        assert await two.tick() + await one.tick() <= 1
        await sink.wait_for(1)
        assert one.delivery.sent + two.delivery.sent == 1
        match = re.search(r"http://reviews\.test/r/([A-Za-z0-9_-]+)",
                          text_of(parsed(sink.messages[0][2])))
        assert match
        async with aiohttp.ClientSession() as http:
            status, page = await submit(http, two, match.group(1), stars="5",
                                        title="Great", text="Fast and well packed.")
        assert status == 200, page
        await one.tick()
        await two.tick()
        await sink.wait_for(2)
        assert [rcpts for _, rcpts, _ in sink.messages] == [
            ["john.smith@example.com"], ["support@acme.example"]]
        # The sink reads a 250 before the relay has stored that mail's result.
        await eventually(lambda: one.store.read(lambda q: q.outbox_depth()) == 0,
                         what="both results stored")
