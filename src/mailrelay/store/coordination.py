"""Coordination on SQLite, where a store has one relay: it always holds every role, nudges stay
in the process, and daily jobs are claimed in `job_days` like on PostgreSQL (store/pg/).
`coordination_for` picks the backend's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from mailrelay.config import StoreConfig
from mailrelay.store.connection import SqlConnection
from mailrelay.store.database import Store
from mailrelay.store.interface import Coordination, StoreBackend
from mailrelay.store.pg.coordination import CHANNEL, PgCoordination
from mailrelay.store.pg.coordination import shared_secret as pg_shared_secret
from mailrelay.store.pg.database import PgStore
from mailrelay.store.queries import Queries
from mailrelay.store.timestamps import to_iso

log = logging.getLogger("mailrelay.coordination")

#: Coordination's own table, created on first use (no migration: it holds no mail data).
JOB_DAYS = ("CREATE TABLE IF NOT EXISTS job_days (name TEXT NOT NULL, day TEXT NOT NULL,"
            " relay TEXT NOT NULL, done_at TEXT NOT NULL, PRIMARY KEY (name, day))")


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


def claim_day(conn: SqlConnection, name: str, day: str, relay: str,
              now: datetime) -> bool:
    """Whether `relay` runs job `name` on `day`: it claimed the day now or in an earlier try
    (its retry of a failed run goes ahead); False when another relay did."""
    conn.execute(JOB_DAYS)
    conn.execute(
        "INSERT OR IGNORE INTO job_days (name, day, relay, done_at) VALUES (?, ?, ?, ?)",
        (name, day, relay, to_iso(now)))
    row = conn.execute(
        "SELECT relay FROM job_days WHERE name = ? AND day = ?", (name, day)).fetchone()
    return row is not None and row[0] == relay


class LocalCoordination:
    """The SQLite `Coordination`; daily jobs are claimed through the store's writer."""

    def __init__(self, store: Store, relay_id: str = "") -> None:
        self.store = store
        self.relay_id = relay_id
        self.wakeups = LocalWakeups()

    def leadership(self, name: str) -> LocalLeadership:
        return LocalLeadership(name)

    def identity(self) -> LocalLeadership:
        """This relay's id: a SQLite store has no other relay to share it with."""
        return LocalLeadership(f"relay id {self.relay_id}")

    async def once_per_day(self, name: str, day: str) -> bool:
        now = datetime.now(UTC)

        def claim(q: Queries) -> bool:
            return claim_day(q.conn, name, day, self.relay_id, now)

        return await self.store.write(claim, small=True)

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


def coordination_for(config: StoreConfig, store: StoreBackend) -> Coordination:
    """PostgreSQL's coordination for `[store] url`, else the local one of the SQLite `store`."""
    if config.url is not None:
        if isinstance(store, PgStore):  # its own nudges are not delivered back to it
            return PgCoordination(config, own_nudges=lambda: store.writer_pids)
        return PgCoordination(config)
    if not isinstance(store, Store):
        raise TypeError(f"a store without [store] url is SQLite's, not {type(store).__name__}")
    return LocalCoordination(store, config.relay_id)
