"""Runs a worker only while this relay holds its role (the IMAP watcher's: one relay at a time
among those sharing a store): asks for the role every few seconds, starts the worker when it
gets it and stops it at once when it is lost. Also holds the relay's own id while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from mailrelay.core.errors import MailrelayError
from mailrelay.store.interface import Leadership

log = logging.getLogger("mailrelay.roles")

#: How often the role is asked for (taken when free, confirmed while held): a relay takes over
#: from a dead holder within this plus the server's noticing the death (at once for a killed
#: process; TCP keepalives, ~25 s, for a vanished host).
ROLE_RETRY_SECONDS = 2.0


#: How long a starting relay waits for its relay_id to come free (its own previous process
#: still stopping) before it gives up.
RELAY_ID_WAIT_SECONDS = 10.0


class RelayIdInUse(MailrelayError):
    """Another running relay on the store has this relay's `[store] relay_id`."""


async def hold_relay_id(identity: Leadership, relay_id: str, *,
                        wait: float | None = None, interval: float = 0.5) -> None:
    """Take this relay's id for as long as it runs (waiting up to `wait`, default
    RELAY_ID_WAIT_SECONDS), or raise RelayIdInUse: a second relay with the same id (a copied
    relay.toml) would requeue the first one's mail in flight as "its own" at start, and that
    mail would go out twice."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (RELAY_ID_WAIT_SECONDS if wait is None else wait)
    while not await identity.try_acquire():
        if loop.time() >= deadline:
            raise RelayIdInUse(
                f"another running relay has relay_id {relay_id!r} on this store: give each "
                "relay its own [store] relay_id (two with one id would send mail twice)")
        await asyncio.sleep(interval)


async def keep_relay_id(identity: Leadership, relay_id: str, *,
                        interval: float = ROLE_RETRY_SECONDS) -> None:
    """Confirm this relay's id every `interval`, and take it again once the store lost the
    session holding it (a database restart or failover), so that a relay with the same id
    started later still does not start. Warns once per spell without it."""
    warned = False
    while True:
        await asyncio.sleep(interval)
        try:
            held = await identity.try_acquire()
        except Exception:  # a bug must not end the loop: the id would stay unguarded
            log.exception("confirming relay_id %r failed", relay_id)
            continue
        if not held and not warned:
            log.warning("this relay does not hold its relay_id %r now: the store cannot be "
                        "reached, or another relay with that id started", relay_id)
        warned = not held


class RoleWorker:
    """`work` runs while `role` is held here; `what` names it in the log ("the IMAP mailbox").
    A store that cannot be reached counts as a lost role: two relays must never both work."""

    def __init__(self, role: Leadership, work: Callable[[], Coroutine[Any, Any, None]],
                 what: str, *, interval: float = ROLE_RETRY_SECONDS) -> None:
        self.role = role
        self.work = work
        self.what = what
        self.interval = interval
        #: How often this relay took the role (/metrics).
        self.taken = 0
        self._task: asyncio.Task[None] | None = None
        self._standby_told = False  # "stands by" is logged once per spell

    @property
    def active(self) -> bool:
        """Whether the worker runs here now."""
        return self._task is not None and not self._task.done()

    async def run(self) -> None:
        """Ask for the role until cancelled (`check` first, then every `interval`); then stop
        the worker and give the role up."""
        try:
            while True:
                await asyncio.sleep(self.interval)
                try:
                    await self.check()
                except Exception:  # a bug must not leave the role unwatched on every relay
                    log.exception("asking for the role of watching %s failed", self.what)
        finally:
            await self._stop()
            await self.role.release()

    async def check(self) -> None:
        """One look: start the worker on taking the role, stop it on losing it."""
        held = await self.role.try_acquire()
        if self._task is not None and self._task.done():
            self._task = None  # the worker ended by itself: started again below
        if held and self._task is None:
            self.taken += 1
            self._standby_told = False
            log.info("this relay now watches %s", self.what)
            self._task = asyncio.create_task(self.work(), name=f"role {self.what}")
        elif not held and self._task is not None:
            # Said before the worker is stopped (its logout may take a while): the log tells
            # when the relay learned it lost the role, as `active` does.
            self._standby_told = True
            log.warning("this relay stopped watching %s: another relay holds it (or the "
                        "store cannot be reached)", self.what)
            await self._stop()
        elif not held and not self._standby_told:
            self._standby_told = True
            log.info("this relay stands by: another relay watches %s", self.what)

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()
