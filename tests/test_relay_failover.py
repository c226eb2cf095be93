"""Two `mailrelay serve` processes on one PostgreSQL database and a real IMAP server (pymap):
only one watches the mailbox; SIGKILLed, the other takes over within 10 seconds and publishes
the agent's reply that arrived meanwhile, once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from mailrelay.app import Daemon
from mailrelay.config import load
from mailrelay.core.clock import FrozenClock

from .conftest import ConfigFactory
from .imap_servers import ImapServer
from .mailtools import customer_mails, eventually
from .serve_process import Serve, reaping, relays_toml
from .sink import Sink
from .tickets import agent_reply, ticketed

pytestmark = pytest.mark.postgresql

WATCHING = "this relay now watches the IMAP mailbox"
STANDING_BY = "this relay stands by: another relay watches the IMAP mailbox"


def relay_file(text: str, tmp_path: Path, name: str) -> Path:
    """relay.toml for relay `name`: its relay_id and key file of its own."""
    text = text.replace("[store]\n", f'[store]\nrelay_id = "{name}"\n', 1)
    text = text.replace('secret_file = "var/secret.key"', f'secret_file = "var/{name}.key"', 1)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


async def logged(serve: Serve, line: str, within: float) -> float:
    """Wait for `line` in the relay's log; returns when it was seen (monotonic)."""
    await eventually(lambda: line in serve.output(), limit=within, what=repr(line))
    return time.monotonic()


async def test_the_standby_relay_takes_over_the_mailbox_within_10_s_of_a_sigkill(
    make_config: ConfigFactory, pymap: ImapServer, sink: Sink, tmp_path: Path,
) -> None:
    config = make_config(more=pymap.toml())
    text = relays_toml(config, sink.port)
    a_file, b_file = (relay_file(text, tmp_path, name) for name in ("relay-a", "relay-b"))
    clock = FrozenClock(datetime.now(UTC))
    # The ticket the agent answers, made by a relay that then stops.
    async with Daemon(load(a_file), clock) as first:
        t = await ticketed(first, clock, sink)
    reply = agent_reply(t, "Sorry about the delay, Ann!\n\nWe have refunded the shipping.")
    with reaping() as daemons:
        a = Serve(a_file, tmp_path / "a.log")
        daemons.append(a)
        await a.ready()
        await logged(a, WATCHING, 10)
        b = Serve(b_file, tmp_path / "b.log")
        daemons.append(b)
        await b.ready()
        await logged(b, STANDING_BY, 10)
        assert WATCHING not in b.output()
        a.kill()
        killed = time.monotonic()
        await pymap.append(reply)  # arrives while no relay watches
        took_over = await logged(b, WATCHING, 15)
        assert took_over - killed < 10, b.output()
        await eventually(lambda: len(customer_mails(sink)) == 1, limit=20,
                         what="the answer mailed to the customer")
        await asyncio.sleep(2)  # time for a second copy, were there one
        assert len(customer_mails(sink)) == 1
        with psycopg.connect(config.store.url or "") as conn:
            outcomes = conn.execute("SELECT outcome FROM replies").fetchall()
            responses = conn.execute("SELECT body FROM responses WHERE review_id = %s",
                                     (t.review_id,)).fetchall()
        assert outcomes == [("published",)]
        [(body,)] = responses
        assert "refunded the shipping" in body
        assert await b.terminate() == 0
