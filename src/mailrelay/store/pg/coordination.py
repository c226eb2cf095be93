"""Relays sharing one PostgreSQL database agree here: one holder per role (a session advisory
lock on a dedicated connection), nudges (LISTEN/NOTIFY) and the values every relay must share
(the secret key). Daily jobs are claimed through the store's writer (`claim_job_day`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import zlib
from collections.abc import Awaitable, Callable, Container
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from mailrelay.config import StoreConfig
from mailrelay.core.errors import StoreError
from mailrelay.store.timestamps import to_iso

log = logging.getLogger("mailrelay.coordination")

AsyncConn = psycopg.AsyncConnection[TupleRow]
#: Opens a dedicated autocommit connection; the argument says what for (application_name).
Connect = Callable[[str], Awaitable[AsyncConn]]

#: The first key of the roles' advisory locks ("mrly"): apart from other applications' locks.
NAMESPACE: Final = 0x6D726C79
#: The first key of the relays' own locks ("mrlr"): one per relay_id, held while it runs.
RELAY_NAMESPACE: Final = 0x6D726C72
#: A channel is a PostgreSQL identifier; we keep to plain lower-case names.
CHANNEL: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Serialises `shared_value`'s first use (CREATE TABLE IF NOT EXISTS races otherwise): a first
#: key of its own ("mrlt"), so no role's name can collide with it.
SHARED_VALUES_LOCK: Final = (0x6D726C74, 1)
#: Values every relay must agree on (the secret key of links and forms), created on first use
#: (under SHARED_VALUES_LOCK) by the first relay to start.
SHARED_VALUES: Final = (
    'CREATE TABLE IF NOT EXISTS shared_values (name TEXT COLLATE "C" PRIMARY KEY,'
    ' value TEXT NOT NULL, relay TEXT COLLATE "C" NOT NULL,'
    ' created_at TEXT COLLATE "C" NOT NULL)')
#: TCP keepalives: a connection to a vanished server or host fails within ~25 s, not hours.
#: On both ends: libpq's for the relay (its server vanished), and the server's for its session
#: (`options`: the relay's host vanished), which otherwise holds the relay's advisory locks,
#: the IMAP watcher's role and the relay's id, for the server OS's default of over two hours.
KEEPALIVES: Final = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                     "keepalives_count": 3, "connect_timeout": 10,
                     "options": "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5"
                                " -c tcp_keepalives_count=3"}


def lock_key(name: str) -> int:
    """A stable signed 32-bit key for a role's name (the second key of the advisory lock)."""
    value = zlib.crc32(name.encode("utf-8"))
    return value - (1 << 32) if value >= 1 << 31 else value


def connect_args(config: StoreConfig, purpose: str) -> dict[str, Any]:
    """psycopg's keyword arguments beside the URL: the password (never in the URL), autocommit,
    and defaults for what the URL leaves out: keepalives, and an application_name saying which
    relay and what for (pg_stat_activity)."""
    given = conninfo_to_dict(config.url or "")
    defaults = {**KEEPALIVES, "application_name": f"mailrelay {config.relay_id} {purpose}"[:63]}
    args: dict[str, Any] = {key: value for key, value in defaults.items() if key not in given}
    args["autocommit"] = True
    if config.password is not None:
        args["password"] = config.password
    return args


def connector(config: StoreConfig) -> Connect:
    """A `Connect` for the store's URL."""
    if config.url is None:
        raise ValueError("PostgreSQL coordination needs [store] url")
    url = config.url

    async def connect(purpose: str) -> AsyncConn:
        return await psycopg.AsyncConnection.connect(url, **connect_args(config, purpose))

    return connect


class Leadership:
    """One role held by one relay at a time: `pg_try_advisory_lock` on a connection of its
    own. The server drops the lock with the session, so a relay that dies (process killed,
    host gone: keepalives) frees it; the holder learns it lost it at its next `try_acquire`,
    which fails, and `held` turns False. Call `try_acquire` every few seconds."""

    def __init__(self, connect: Connect, name: str, *, timeout: float = 5.0,
                 namespace: int = NAMESPACE, what: str = "") -> None:
        self.name = name
        self.lock = (namespace, lock_key(name))
        self.what = what or f"role {name}"  # for the log and pg_stat_activity
        self._connect = connect
        self._timeout = timeout
        self._conn: AsyncConn | None = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    @property
    def backend_pid(self) -> int | None:
        """The server process of our connection (pg_terminate_backend in tests), if open."""
        return None if self._conn is None or self._conn.closed else self._conn.info.backend_pid

    async def try_acquire(self) -> bool:
        try:
            return await asyncio.wait_for(self._try(), self._timeout)
        except (psycopg.Error, OSError, TimeoutError) as error:
            if self._held:
                log.warning("lost %s: %s", self.what, error)
            await self._drop()
            return False

    async def _try(self) -> bool:
        if self._conn is None or self._conn.closed:
            self._held = False
            self._conn = await self._connect(self.what)
        if self._held:  # the lock lives as long as the session: a live session still holds it
            await self._conn.execute("SELECT 1")
            return True
        cursor = await self._conn.execute("SELECT pg_try_advisory_lock(%s, %s)", self.lock)
        row = await cursor.fetchone()
        self._held = bool(row and row[0])
        if self._held:
            log.info("took %s", self.what)
        return self._held

    async def release(self) -> None:
        """Give the role up, unlocking before closing (a closed session's locks are freed
        only once its server process has exited), so the next relay can take it at once."""
        if self._held and self._conn is not None:
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                await asyncio.wait_for(self._conn.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", self.lock), self._timeout)
            log.info("gave up %s", self.what)
        await self._drop()

    async def _drop(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()


class Wakeups:
    """LISTEN on a connection of its own, calling each channel's callbacks per NOTIFY. When the
    connection drops it reconnects (backing off to `max_retry`), LISTENs again and calls every
    callback once, for the nudges it may have missed meanwhile."""

    def __init__(self, connect: Connect, *, retry: float = 0.5, max_retry: float = 30.0,
                 own: Callable[[], Container[int]] = tuple) -> None:
        self._connect = connect
        #: The server processes whose nudges are this relay's own (its store's writer): the
        #: services woke their workers already, in the process.
        self._own = own
        self._retry = (retry, max_retry)
        self._callbacks: dict[str, list[Callable[[], None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._first_try = asyncio.Event()
        self._listener: AsyncConn | None = None
        self._sender: AsyncConn | None = None
        self.connections = 0  # how often LISTEN was set up (1 + reconnections)
        self._failing = False

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        if CHANNEL.fullmatch(channel) is None:
            raise ValueError(f"{channel!r} is no channel name (lower-case letters, digits, _)")
        if self._task is not None:
            raise RuntimeError("subscribe before start: LISTEN happens when connecting")
        self._callbacks.setdefault(channel, []).append(callback)

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.closed

    @property
    def backend_pid(self) -> int | None:
        """The listening connection's server process, if connected."""
        return self._listener.info.backend_pid if self.listening and self._listener else None

    async def start(self) -> None:
        """Start listening; returns once the first connection is listening (or has failed:
        it then keeps trying in the background)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="pg-wakeups")
        await self._first_try.wait()

    async def _run(self) -> None:
        delay = self._retry[0]
        while True:
            before = self.connections
            try:
                await self._listen()
            except (psycopg.Error, OSError) as error:
                self._failed(error, delay)
            finally:
                self._first_try.set()
                listener, self._listener = self._listener, None
                if listener is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await listener.close()
            if self.connections > before:  # it was listening: reconnect at once, then back off
                delay = self._retry[0]
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry[1])

    def _failed(self, error: Exception, delay: float) -> None:
        """One WARNING when listening stops, DEBUG while it keeps failing, INFO when back."""
        if self._failing:
            log.debug("wakeups: still cannot listen (%s)", error)
        else:
            log.warning("wakeups: not listening (%s); retrying, first in %.1fs", error, delay)
        self._failing = True

    async def _listen(self) -> None:
        self._listener = conn = await self._connect("wakeups")
        for channel in self._callbacks:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        self.connections += 1
        self._first_try.set()
        if self._failing:
            log.info("wakeups: listening again")
        self._failing = False
        if self.connections > 1:
            for channel in self._callbacks:
                self._call(channel)
        async for note in conn.notifies():  # raises when the connection breaks
            if note.pid not in self._own():
                self._call(note.channel)

    def _call(self, channel: str) -> None:
        for callback in self._callbacks.get(channel, ()):
            try:
                callback()
            except Exception:  # one broken subscriber must not stop the others' nudges
                log.exception("wakeups: the callback for %s failed", channel)

    async def notify(self, channel: str) -> None:
        """NOTIFY now (outside any transaction); inside a store transaction use `notify`."""
        for attempt in (1, 2):  # a sender connection that went stale is replaced once
            try:
                if self._sender is None or self._sender.closed:
                    self._sender = await self._connect("notify")
                await self._sender.execute("SELECT pg_notify(%s, '')", (channel,))
                return
            except psycopg.OperationalError:
                stale, self._sender = self._sender, None
                if stale is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await stale.close()
                if attempt == 2:
                    raise

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for conn in (self._listener, self._sender):
            if conn is not None:
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()
        self._listener = self._sender = None


def notify(conn: psycopg.Connection[Any], channel: str) -> None:
    """Queue a nudge in the current transaction: the server delivers it at COMMIT (never for
    work that was rolled back), once per channel and transaction."""
    conn.execute("SELECT pg_notify(%s, '')", (channel,))


def shared_value(conn: psycopg.Connection[Any], name: str, offered: str, relay: str = "",
                 now: datetime | None = None) -> str:
    """The value of `name` every relay uses: the first relay's `offered` one, stored once."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", SHARED_VALUES_LOCK)
        conn.execute(SHARED_VALUES)
        conn.execute(
            "INSERT INTO shared_values (name, value, relay, created_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (name) DO NOTHING",
            (name, offered, relay, to_iso(now or datetime.now(UTC))))
        row = conn.execute("SELECT value FROM shared_values WHERE name = %s",
                           (name,)).fetchone()
    return offered if row is None else str(row[0])  # None: never (inserted or found, locked)


def shared_secret(config: StoreConfig, offered: bytes) -> bytes:
    """`shared_value` of the secret key, on a short connection of its own (at start, and
    for the CLI's links)."""
    try:
        with psycopg.connect(config.url or "", **connect_args(config, "shared values")) as conn:
            return shared_value(conn, "secret_key", offered.decode(), config.relay_id).encode()
    except psycopg.Error as exc:
        raise StoreError(f"cannot read the shared secret key: {exc}") from exc


class PgCoordination:
    """The PostgreSQL `Coordination`: roles, wakeups and the shared key of the store at `url`."""

    def __init__(self, config: StoreConfig,
                 own_nudges: Callable[[], Container[int]] = tuple) -> None:
        """`own_nudges`: the server processes of this relay's store writer (its nudges are
        not delivered back to this relay)."""
        self.config = config
        self._connect = connector(config)  # refuses a config without url
        self.url = config.url or ""
        self.wakeups = Wakeups(self._connect, own=own_nudges)
        self._roles: list[Leadership] = []
        self._identity: Leadership | None = None

    def leadership(self, name: str) -> Leadership:
        """A role's lock on a connection of its own; released by `close`."""
        self._roles.append(Leadership(self._connect, name))
        return self._roles[-1]

    def identity(self) -> Leadership:
        """This relay's `relay_id`, held like a role while the relay runs: a first
        `try_acquire` that fails means another live relay uses the same id (two relays on one
        host that left relay_id at the host name), which must not start."""
        if self._identity is None:
            relay_id = self.config.relay_id
            self._identity = Leadership(self._connect, relay_id, namespace=RELAY_NAMESPACE,
                                        what=f"relay id {relay_id}")
            self._roles.append(self._identity)
        return self._identity

    async def shared_secret(self, offered: bytes) -> bytes:
        """The secret key of links and forms every relay signs with: the first relay's key
        file, stored in the database (the key files of the others are not used)."""
        value = await asyncio.to_thread(shared_secret, self.config, offered)
        if value != offered:
            log.info("using the relays' shared secret key from the database, not the key file")
        return value

    async def close(self) -> None:
        """Give up every role (the other relays take them at once) and stop listening."""
        for role in self._roles:
            await role.release()
        await self.wakeups.close()
