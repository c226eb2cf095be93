"""A relay whose PostgreSQL stops mid-run: while the server is down a trigger is deferred (an
SMTP 4xx, never a 250), nothing answered 250 before is lost, and once the server is back the
relay accepts again and every trigger it took becomes one shipment."""

from __future__ import annotations

import asyncio
import time

import aiosmtplib
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock

from .mailtools import ACME_BCC, eventually, send, settle, trigger
from .postgres import PostgresServer

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
