"""Each relay on a shared store holds its own `[store] relay_id` while it runs: a second relay
started with the same id (a relay.toml copied to another host unchanged) does not start, since
at start it would requeue the first one's mail in flight as its own and send it twice; the
same relay restarting (its old process still stopping) waits for its id."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from mailrelay import app
from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.services import roles
from mailrelay.services.roles import RelayIdInUse

from .mailtools import eventually
from .postgres import PostgresServer

pytestmark = pytest.mark.postgresql


def named(config: Config, relay_id: str) -> Config:
    return replace(config, store=replace(config.store, relay_id=relay_id))


async def test_a_second_relay_with_a_running_relays_id_does_not_start(
    config: Config, clock: FrozenClock, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(roles, "RELAY_ID_WAIT_SECONDS", 0.5)
    async with Daemon(named(config, "relay1"), clock):
        with pytest.raises(RelayIdInUse, match="another running relay has relay_id 'relay1'"):
            async with Daemon(named(config, "relay1"), clock):
                pass
        # Exit status 1, restarted by systemd: the holder may be this relay's own session from
        # before a crash that the server has not noticed yet (a vanished host).
        assert await app.run(named(config, "relay1")) == app.EXIT_UNREACHABLE
        failed, why = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert failed.startswith("startup failed: another running relay has relay_id 'relay1'")
        assert why == "its id in use: exit status 1, so that systemd starts the relay again"
        async with Daemon(named(config, "relay2"), clock):  # another id starts beside it
            pass


async def test_a_relay_restarting_waits_for_its_old_process_to_let_go_of_its_id(
    config: Config, clock: FrozenClock,
) -> None:
    old = Daemon(named(config, "relay1"), clock)
    await old.__aenter__()

    async def stop_later() -> None:
        await asyncio.sleep(1.0)
        await old.__aexit__(None, None, None)

    old_id = old.coordination.identity()
    stopping = asyncio.create_task(stop_later())
    try:
        async with Daemon(named(config, "relay1"), clock) as new:
            assert new.relay_id == "relay1"
            assert not old_id.held  # started once the old process had let go, not before
    finally:
        await stopping


async def test_a_relay_takes_its_id_again_after_a_database_restart(
    config: Config, clock: FrozenClock, postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The restart ends the session holding the id; the relay takes it again, so a relay
    with the same id started afterwards still does not start."""
    monkeypatch.setattr(roles, "RELAY_ID_WAIT_SECONDS", 0.5)
    daemon = Daemon(named(config, "relay1"), clock)
    daemon.role_interval = 0.1
    async with daemon:
        identity = daemon.coordination.identity()
        await asyncio.to_thread(postgres_server.restart)
        await asyncio.sleep(0.5)  # a few looks: the first finds the session gone
        await eventually(lambda: identity.held, limit=10, what="the id taken again")
        with pytest.raises(RelayIdInUse):
            async with Daemon(named(config, "relay1"), clock):
                pass
