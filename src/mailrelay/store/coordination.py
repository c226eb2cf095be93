"""Coordination on SQLite, where a store has one relay: it always holds every role, nudges stay
in the process (daily jobs are claimed through the store's writer on both backends).
Each backend hands out its own (`StoreBackend.coordination`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mailrelay.config import StoreConfig
from mailrelay.store.pg.coordination import CHANNEL
from mailrelay.store.pg.coordination import shared_secret as pg_shared_secret

log = logging.getLogger("mailrelay.coordination")


class LocalLeadership:
    """The only relay of a SQLite store holds every role."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    async def try_acquire(self) -> bool:
        self._held = True
        return True

    async def release(self) -> None:
        self._held = False


class LocalWakeups:
    """Nudges within the process: `notify` from the loop or any thread (the store's writer)
    calls the channel's callbacks on the event loop `start` ran on."""

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[[], None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        if CHANNEL.fullmatch(channel) is None:  # as on PostgreSQL, so no name works here only
            raise ValueError(f"{channel!r} is no channel name (lower-case letters, digits, _)")
        self._callbacks.setdefault(channel, []).append(callback)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    def notify_threadsafe(self, channel: str) -> None:
        """`notify` for code outside the event loop; a no-op before `start` or after `close`."""
        loop = self._loop
        if loop is None:
            return
        for callback in self._callbacks.get(channel, ()):
            try:
                loop.call_soon_threadsafe(callback)
            except RuntimeError:  # the loop closed meanwhile
                return

    async def notify(self, channel: str) -> None:
        self.notify_threadsafe(channel)

    async def close(self) -> None:
        self._loop = None


class LocalCoordination:
    """The SQLite `Coordination`: one relay, so roles are always held and nudges stay in the
    process (daily jobs are claimed through the store's writer, `claim_job_day`)."""

    def __init__(self, relay_id: str = "") -> None:
        self.relay_id = relay_id
        self.wakeups = LocalWakeups()

    def leadership(self, name: str) -> LocalLeadership:
        return LocalLeadership(name)

    def identity(self) -> LocalLeadership:
        """This relay's id: a SQLite store has no other relay to share it with."""
        return LocalLeadership(f"relay id {self.relay_id}")

    async def shared_secret(self, offered: bytes) -> bytes:
        """The key file's: a SQLite store has one relay."""
        return offered

    async def close(self) -> None:
        await self.wakeups.close()


def shared_secret(config: StoreConfig, offered: bytes) -> bytes:
    """The secret key the relays of `config`'s store sign with (`Coordination.shared_secret`),
    for a process that runs no relay (the CLI): `offered` itself on SQLite."""
    if config.url is None:
        return offered
    return pg_shared_secret(config, offered)

