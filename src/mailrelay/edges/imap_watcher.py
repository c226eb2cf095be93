"""IMAP edge: hand each new message of the replies mailbox to `process` once, then file it.

Tracks UIDVALIDITY + UID in the store (never \\Seen), moves a message only after its outcome is
committed, and outlives servers that vanish. It decides nothing about the mail itself.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from mailrelay.config import ImapConfig
from mailrelay.core.clock import Clock
from mailrelay.edges.imap_client import ImapError, Mailbox, describe, seconds_text
from mailrelay.store import ImapSeenRow, StoreBackend

log = logging.getLogger("mailrelay.imap_watcher")  # the name operators filter on

_MAX_PASSES = 5  # bounds the empty re-syncs a server sending needless EXISTS could cause
_STABLE = 60.0  # a session that lived this long resets the backoff; a flapping one does not


class Outcome(Protocol):
    """What `process` reports: which folder the message goes to, and its dedupe key."""

    @property
    def processed(self) -> bool: ...

    @property
    def dedupe_key(self) -> str: ...


Process = Callable[[bytes], Awaitable[Outcome]]


class ImapWatcher:
    """Watches `config.folder`: IDLE (or polling), UID tracking, move after commit, backoff."""

    def __init__(
        self,
        config: ImapConfig,
        store: StoreBackend,
        process: Process,
        clock: Clock,
        *,
        connect_timeout: float = 30,
        command_timeout: float = 60,
        backoff_initial: float = 1,
        backoff_max: float = 300,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self._process = process
        self.clock = clock
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._ssl_context = ssl_context
        self.connected = False
        self.last_ok: datetime | None = None
        self.last_error: str | None = None  # why the current outage started
        self.processed = 0
        self._uidvalidity: int | None = None
        self._failed: set[tuple[int, int]] = set()

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    async def run(self) -> None:
        """Watch until cancelled; an outage logs one WARNING when it starts, one INFO at its end."""
        delay = self.backoff_initial
        down_since: float | None = None
        first = True
        while True:
            mailbox: Mailbox | None = None
            failed = False
            since: float | None = None
            try:
                mailbox = await Mailbox.open(self.config, self.connect_timeout,
                                             self.command_timeout, self._ssl_context)
                await mailbox.ensure_folders()
                await self._select(mailbox)
                await self._sync_until_quiet(mailbox)
                self.connected = True
                since = time.monotonic()
                self.last_error = None
                if down_since is not None:
                    log.info("IMAP connection to %s restored after %s", self.where,
                             seconds_text(time.monotonic() - down_since))
                    down_since = None
                elif first:
                    log.info("IMAP watching %s on %s as %s (%s)", self.config.folder, self.where,
                             self.config.username, mailbox.mode(self.config.poll_interval))
                first = False
                await self._watch(mailbox)
            except Exception as exc:  # noqa: BLE001 - every failure is an outage, never a crash
                failed = True
                self.connected = False
                if since is not None and time.monotonic() - since >= _STABLE:
                    delay = self.backoff_initial
                reason = describe(exc)
                if down_since is None:
                    self.last_error = reason
                    down_since = time.monotonic()
                    log.warning("IMAP %s unavailable (retrying with backoff): %s", self.where,
                                reason)
                else:
                    log.debug("IMAP %s still unavailable: %s", self.where, reason)
                if not isinstance(exc, ImapError | OSError | TimeoutError):
                    log.debug("IMAP failure details", exc_info=exc)
            finally:
                self.connected = False
                if mailbox is not None:
                    await mailbox.close(polite=not failed)  # LOGOUT only on a clean stop
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def _select(self, mailbox: Mailbox) -> None:
        uidvalidity = await mailbox.select(self.config.folder)
        if self._uidvalidity is not None and uidvalidity != self._uidvalidity:
            # RFC 3501 2.3.1.1: the old UIDs mean nothing now; every message is looked at again
            # and the reply path's Message-ID dedupe keeps anything from being published twice.
            log.warning("IMAP UIDVALIDITY of %s changed from %d to %d: re-checking every message",
                        self.config.folder, self._uidvalidity, uidvalidity)
        self._uidvalidity = uidvalidity

    async def _watch(self, mailbox: Mailbox) -> None:
        while True:
            if mailbox.changed:
                pass  # announced after the last pass looked (RFC 3501 7.3.1): look before idling
            elif mailbox.can_idle:
                await mailbox.idle(self.config.idle_timeout.total_seconds())
            else:
                await mailbox.pause(self.config.poll_interval.total_seconds())
            await self._sync_until_quiet(mailbox)

    async def _sync_until_quiet(self, mailbox: Mailbox) -> None:
        """Sync until a pass is quiet. Mail that arrives during a pass is announced once, in the
        response to whatever command ran then, and not again at IDLE. Passes that file mail are
        progress and never bounded; only empty passes after an EXISTS (a server announcing
        nothing new) are, so such a server cannot keep us from idling."""
        empty_passes = 0
        while empty_passes < _MAX_PASSES:
            mailbox.changed = False
            handled = await self._sync(mailbox)
            if not mailbox.changed:
                break
            if not handled:
                empty_passes += 1
        else:
            mailbox.changed = False
        self.last_ok = self.clock.now()

    async def _sync(self, mailbox: Mailbox) -> int:
        """File every message of the folder; returns how many were handled in this pass."""
        folder = self.config.folder
        uidvalidity = mailbox.uidvalidity
        handled = 0
        for uid in await mailbox.search_all():
            row = await self._seen(uidvalidity, uid)
            if row is None:
                target = await self._process_one(mailbox, uid)
                if target is None:
                    continue
            else:
                target = str(row.folder)  # committed before a crash, not yet moved
            if not await mailbox.move(uid, target):
                log.info("IMAP %s uid %d:%d was expunged elsewhere before it could be moved",
                         folder, uidvalidity, uid)
                continue
            await self._mark_moved(uidvalidity, uid)
            log.debug("IMAP %s uid %d:%d moved to %s", folder, uidvalidity, uid, target)
            handled += 1
        return handled

    async def _seen(self, uidvalidity: int, uid: int) -> ImapSeenRow | None:
        folder = self.config.folder
        return await self.store.aread(lambda q: q.imap_seen(folder, uidvalidity, uid))

    async def _mark_moved(self, uidvalidity: int, uid: int) -> None:
        folder = self.config.folder
        await self.store.write(lambda q: q.mark_imap_moved(folder, uidvalidity, uid))

    async def _process_one(self, mailbox: Mailbox, uid: int) -> str | None:
        folder = self.config.folder
        uidvalidity = mailbox.uidvalidity
        raw = await mailbox.fetch(uid)
        if raw is None:
            return None  # expunged by someone else meanwhile
        try:
            result = await self._process(raw)
            target = (self.config.processed_folder if result.processed
                      else self.config.rejected_folder)
            now = self.clock.now()
            key = result.dedupe_key
            await self.store.write(lambda q: q.mark_imap_seen(folder, uidvalidity, uid, key,
                                                              target, now))
        except Exception:
            # Left in place, unseen (BODY.PEEK), and tried again at the next sync.
            if (uidvalidity, uid) not in self._failed:
                self._failed.add((uidvalidity, uid))
                log.exception("IMAP %s uid %d:%d could not be processed; left in place",
                              folder, uidvalidity, uid)
            return None
        self._failed.discard((uidvalidity, uid))
        self.processed += 1
        return target


async def check_connection(config: ImapConfig, *, seconds: float = 30,
                           ssl_context: ssl.SSLContext | None = None) -> str:
    """Log in, create the folders if missing and select the watched one: a line for `check`."""
    mailbox = await Mailbox.open(config, seconds, seconds, ssl_context)
    try:
        await mailbox.ensure_folders()
        uidvalidity = await mailbox.select(config.folder)
        count = len(await mailbox.search_all())
        return (f"{config.host}:{config.port} {config.folder}: {count} message(s), "
                f"UIDVALIDITY {uidvalidity}, {mailbox.mode(config.poll_interval)}")
    finally:
        await mailbox.close()


async def delete_filed(config: ImapConfig, matches: Callable[[bytes], bool], *,
                       seconds: float = 30, ssl_context: ssl.SSLContext | None = None) -> int:
    """Delete the replies we filed in the processed and rejected folders that `matches`
    accepts; how many. `forget` erases raw mail that names a person (issue 10 §5), and these
    folders hold the agents' replies we moved there, quoting the customer. The watched folder
    is left alone: what is there has not been read by us yet."""
    mailbox = await Mailbox.open(config, seconds, seconds, ssl_context)
    deleted = 0
    try:
        for folder in dict.fromkeys((config.processed_folder, config.rejected_folder)):
            if not await mailbox.exists(mailbox.server_name(folder)):
                continue
            await mailbox.select(folder)
            doomed = []
            for uid in await mailbox.search_all():
                raw = await mailbox.fetch(uid)
                if raw is not None and matches(raw):
                    doomed.append(uid)
            if doomed:
                await mailbox.delete(doomed)
                deleted += len(doomed)
    finally:
        await mailbox.close()
    return deleted
