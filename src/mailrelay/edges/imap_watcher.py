"""IMAP edge: hand each new message of the replies mailbox to `process` once, then file it.

Tracks UIDVALIDITY + UID in the store (never \\Seen), moves a message only after its outcome is
committed, and outlives servers that vanish. It decides nothing about the mail itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import aioimaplib  # type: ignore[import-untyped]

from mailrelay.config import ImapConfig
from mailrelay.core.clock import Clock
from mailrelay.core.errors import MailrelayError
from mailrelay.store import ImapSeenRow, Store

log = logging.getLogger("mailrelay.imap_watcher")  # the name operators filter on

T = TypeVar("T")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?:"(?P<delim>(?:\\.|[^"\\])*)"|NIL) ', re.I)
_NAMESPACE = re.compile(rb'^\(\("(?P<prefix>(?:\\.|[^"\\])*)" (?:"(?P<delim>(?:\\.|[^"\\])*)"|NIL)')
_CHANGE = re.compile(rb"^\d+ (EXISTS|RECENT)\b", re.IGNORECASE)
_EXISTS = re.compile(rb"^\* \d+ EXISTS\b", re.IGNORECASE)
_MAX_PASSES = 5  # bounds the empty re-syncs a server sending needless EXISTS could cause
_BYE = re.compile(rb"^BYE\b", re.IGNORECASE)
_LOGOUT_TIMEOUT = 2.0
_STABLE = 60.0  # a session that lived this long resets the backoff; a flapping one does not


class ImapError(MailrelayError):
    """The IMAP server cannot be used right now; the message says why."""


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
        store: Store,
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
                             _duration(time.monotonic() - down_since))
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
            if not await mailbox._exists(mailbox.server_name(folder)):
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


class Mailbox:
    """One logged-in aioimaplib client; every call bounded by a timeout and by connection loss."""

    def __init__(self, config: ImapConfig, client: Any, timeout: float) -> None:
        self.config = config
        self.client = client
        self.protocol: Any = client.protocol
        self.timeout = timeout
        self.uidvalidity = 0
        self.delimiter: str | None = "/"
        self.prefix = ""
        self._lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._idle: asyncio.Future[Any] | None = None
        self._known_folders: set[str] = set()
        self._warned_expunge = False
        self.changed = False  # an EXISTS was seen in some response
        self.protocol.conn_lost_cb = self._on_lost
        # aioimaplib drops untagged EXISTS that come with other commands' responses; watch them.
        untagged = self.protocol._untagged_response

        def spy(line: bytes) -> Any:
            if _EXISTS.match(line):
                self.changed = True
            return untagged(line)

        self.protocol._untagged_response = spy

    @classmethod
    async def open(cls, config: ImapConfig, connect_seconds: float, seconds: float,
                   ssl_context: ssl.SSLContext | None) -> Mailbox:
        if config.tls:
            client = aioimaplib.IMAP4_SSL(config.host, config.port, timeout=seconds,
                                          ssl_context=ssl_context or _default_context())
        else:
            client = aioimaplib.IMAP4(config.host, config.port, timeout=seconds)
        mailbox = cls(config, client, seconds)
        try:
            try:
                await mailbox.call("connect and greeting", client.wait_hello_from_server(),
                                   connect_seconds)
            except ssl.SSLError as exc:
                raise ImapError(_tls_reason(exc)) from exc
            except OSError as exc:
                raise ImapError(f"cannot connect: {_os_reason(exc)}") from exc
            if config.starttls:
                await mailbox._starttls(ssl_context or _default_context(), connect_seconds)
            if client.get_state() != aioimaplib.AUTH:  # not PREAUTH
                await mailbox._login()
            # RFC 3501 6.2.3 / 6.2.1: capabilities may change after login and STARTTLS.
            await mailbox.call("CAPABILITY", mailbox.protocol.capability())
            await mailbox._read_namespace()
        except BaseException:
            await mailbox.close(polite=False)
            raise
        return mailbox

    def mode(self, poll_interval: timedelta) -> str:
        if self.can_idle:
            return "IDLE"
        return f"polling every {_duration(poll_interval.total_seconds())}"

    @property
    def can_idle(self) -> bool:
        return self.has("IDLE")

    def has(self, capability: str) -> bool:
        return capability.upper() in {c.upper() for c in self.protocol.capabilities}

    # plumbing
    def _on_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(f"connection lost: {exc}" if exc else
                                  "connection closed by the server")

    async def call(self, what: str, aw: Awaitable[T], limit: float | None = None) -> T:
        """Await one aioimaplib call, giving up when it takes too long or the connection drops.

        aioimaplib leaves a command waiting forever when the server vanishes or says BYE
        (bamthomas/aioimaplib issues), so every call races the connection-lost callback.
        """
        limit = self.timeout if limit is None else limit
        task: asyncio.Future[T] = asyncio.ensure_future(aw)
        try:
            async with asyncio.timeout(limit):
                await asyncio.wait((task, self._lost), return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise ImapError(f"no answer to {what} within {limit:g} s") from None
        finally:
            if not task.done():
                task.cancel()
        if task.done() and not task.cancelled():
            return task.result()
        raise ImapError(f"{self._lost.result()} during {what}")

    async def command(self, what: str, aw: Awaitable[Any], limit: float | None = None) -> Any:
        """`call`, then insist on a tagged OK."""
        response = await self.call(what, aw, limit)
        if response.result != "OK":
            raise ImapError(f"{what} refused: {_text(response)}")
        return response

    async def close(self, *, polite: bool = True) -> None:
        """Log out (when `polite` and possible), then release the socket and aioimaplib's tasks."""
        client = self.client
        if polite and not self._lost.done() and client.get_state() in (aioimaplib.AUTH,
                                                                       aioimaplib.SELECTED):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_LOGOUT_TIMEOUT):
                    if client.has_pending_idle():
                        client.idle_done()
                        if self._idle is not None:
                            await self._idle
                    await client.logout()
        transport = self.protocol.transport
        if transport is not None:
            transport.close()
            # Wait for connection_lost so no transport outlives the event loop.
            await asyncio.wait((self._lost,), timeout=_LOGOUT_TIMEOUT)
        waiter = getattr(client, "_idle_waiter", None)
        if waiter is not None:
            waiter.cancel()
        tasks: list[asyncio.Future[Any]] = [*client.tasks, *self.protocol.tasks,
                                            client._client_task]
        if self._idle is not None:
            tasks.append(self._idle)
        pending = []
        for task in tasks:
            if not task.done():
                task.cancel()
                pending.append(task)
            elif not task.cancelled():
                task.exception()  # retrieved: no "exception was never retrieved" noise
        if pending:
            await asyncio.wait(pending, timeout=_LOGOUT_TIMEOUT)
        # A connection that completed while we were cancelling (stop during a reconnect) has a
        # transport only now: close it too, or its socket outlives the watcher.
        late = self.protocol.transport
        if late is not None and late is not transport and not late.is_closing():
            late.close()
            await asyncio.wait((self._lost,), timeout=_LOGOUT_TIMEOUT)

    # session set-up
    async def _starttls(self, context: ssl.SSLContext, seconds: float) -> None:
        if not self.has("STARTTLS"):
            raise ImapError("the server does not offer STARTTLS (starttls = true)")
        protocol = self.protocol
        await self.command("STARTTLS", protocol.execute(
            aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)))
        loop = asyncio.get_running_loop()
        try:
            transport = await self.call("TLS handshake", loop.start_tls(
                protocol.transport, protocol, context, server_hostname=self.config.host),
                seconds)
        except ssl.SSLError as exc:
            raise ImapError(_tls_reason(exc)) from exc
        protocol.transport = transport
        # RFC 3501 6.2.1: forget what was said before TLS (LOGINDISABLED, for one).
        await self.call("CAPABILITY", protocol.capability())

    async def _login(self) -> None:
        config = self.config
        if config.oauth2_token_command:
            token = await oauth2_token(config.oauth2_token_command, self.timeout)
            response = await self.call("AUTHENTICATE XOAUTH2", self._xoauth2(token))
        else:
            if self.has("LOGINDISABLED"):
                raise ImapError("the server refuses LOGIN without TLS (LOGINDISABLED): "
                                "set tls or starttls")
            response = await self.call("LOGIN", self.client.login(_quote(config.username),
                                                                  config.password or ""))
        if response.result != "OK":
            raise ImapError(f"login as {config.username} refused: {_text(response)}")

    async def _xoauth2(self, token: str) -> Any:
        """SASL XOAUTH2 (Google's and Microsoft's spec), answering the error challenge.

        On a bad token the server sends a base64 JSON challenge and waits for an empty
        line; aioimaplib's own xoauth2() never answers it and hangs.
        """
        protocol = self.protocol
        user = self.config.username
        sasl = base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode()).decode()
        answers = [b""] if self.has("SASL-IR") else [sasl.encode(), b""]
        args = ["XOAUTH2", sasl] if self.has("SASL-IR") else ["XOAUTH2"]
        command = aioimaplib.Command("AUTHENTICATE", protocol.new_tag(), *args,
                                     loop=protocol.loop)
        sent = 0

        def answer_challenges() -> None:
            nonlocal sent
            challenges = sum(1 for line in command.response.lines
                             if isinstance(line, bytes) and line.startswith(b"+"))
            while sent < challenges:
                protocol.transport.write((answers[sent] if sent < len(answers) else b"")
                                         + b"\r\n")
                sent += 1

        command.flush = answer_challenges
        response = await protocol.execute(command, scrub=sasl)
        if response.result == "OK":
            protocol.state = aioimaplib.AUTH
        return response

    async def _read_namespace(self) -> None:
        response = await self.command("LIST", self.client.list('""', '""'))
        for line in _lines(response):
            match = _LIST_LINE.match(line)
            if match:
                delim = match.group("delim")
                self.delimiter = _unescape(delim) if delim is not None else None
        if self.has("NAMESPACE"):
            response = await self.command("NAMESPACE", self.client.namespace())
            for line in _lines(response):
                match = _NAMESPACE.match(line)
                if match:
                    self.prefix = _unescape(match.group("prefix"))

    def server_name(self, name: str) -> str:
        """A configured name ("mailrelay/processed") as this server spells it, quoted."""
        if name.upper() == "INBOX":
            return "INBOX"
        full = name.replace("/", self.delimiter) if self.delimiter else name
        if self.prefix and not full.upper().startswith(self.prefix.upper()):
            full = self.prefix + full  # e.g. Cyrus and Courier: everything lives under "INBOX."
        return _quote(_utf7(full))

    async def ensure_folders(self) -> None:
        for name in dict.fromkeys((self.config.processed_folder, self.config.rejected_folder)):
            await self.ensure_folder(name)

    async def ensure_folder(self, name: str) -> None:
        if name in self._known_folders:
            return
        quoted = self.server_name(name)
        if not await self._exists(quoted):
            response = await self.call(f"CREATE {quoted}", self.client.create(quoted))
            if response.result != "OK" and not await self._exists(quoted):
                raise ImapError(f"cannot create folder {name}: {_text(response)}")
            log.info("IMAP folder %s created on %s", name, self.config.host)
            # Mail clients often show only subscribed folders; a refusal changes nothing here.
            await self.call(f"SUBSCRIBE {quoted}", self.client.subscribe(quoted))
        self._known_folders.add(name)

    async def _exists(self, quoted: str) -> bool:
        response = await self.command(f"LIST {quoted}", self.client.list('""', quoted))
        for line in _lines(response):
            match = _LIST_LINE.match(line)
            if match and b"\\nonexistent" not in match.group("flags").lower():
                return True
        return False

    # the work
    async def select(self, folder: str) -> int:
        quoted = self.server_name(folder)
        response = await self.command(f"SELECT {quoted}", self.client.select(quoted))
        for line in _lines(response):
            match = _UIDVALIDITY.search(line)
            if match:
                self.uidvalidity = int(match.group(1))
                return self.uidvalidity
        raise ImapError(f"SELECT {quoted} gave no UIDVALIDITY")

    async def search_all(self) -> list[int]:
        # Never UNSEEN: \Seen belongs to the people who read this mailbox (SPEC).
        if not self.can_idle:
            await self.command("NOOP", self.client.noop())  # lets the server report new mail
        response = await self.command("UID SEARCH ALL", self.client.uid_search("ALL",
                                                                               charset=None))
        uids: list[int] = []
        for line in _lines(response):
            uids.extend(int(word) for word in line.split() if word.isdigit())
        return sorted(set(uids))

    async def fetch(self, uid: int) -> bytes | None:
        # BODY.PEEK[]: reading must not set \Seen (RFC 3501 6.4.5).
        response = await self.command(f"UID FETCH {uid}",
                                      self.client.uid("fetch", str(uid), "(BODY.PEEK[])"))
        lines = response.lines
        for i, line in enumerate(lines[:-1]):
            if (isinstance(line, bytes) and b"BODY[]" in line.upper() and line.endswith(b"}")
                    and isinstance(lines[i + 1], bytearray)):
                return bytes(lines[i + 1])
        return None

    async def move(self, uid: int, folder: str) -> bool:
        """File one message; False when another session expunged it first (RFC 5530)."""
        await self.ensure_folder(folder)
        quoted = self.server_name(folder)
        verb = "MOVE" if self.has("MOVE") else "COPY"  # RFC 6851 MOVE is atomic
        what = f"UID {verb} {uid} {quoted}"
        response = await self.call(what, self.client.uid(verb.lower(), str(uid), quoted))
        if response.result != "OK":
            if b"[EXPUNGEISSUED]" in bytes(response.lines[-1]).upper():
                return False
            raise ImapError(f"{what} refused: {_text(response)}")
        if verb == "MOVE":
            return True
        await self.command(f"UID STORE {uid} +FLAGS.SILENT",
                           self.client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Deleted)"))
        if self.has("UIDPLUS"):  # RFC 4315: expunge only this message
            await self.command(f"UID EXPUNGE {uid}", self.client.uid("expunge", str(uid)))
            return True
        if not self._warned_expunge:
            self._warned_expunge = True
            log.warning("IMAP server %s has neither MOVE nor UIDPLUS: filing with EXPUNGE, "
                        "which also removes other messages marked \\Deleted in %s",
                        self.config.host, self.config.folder)
        await self.command("EXPUNGE", self.client.expunge())
        return True

    async def delete(self, uids: list[int]) -> None:
        """Mark `uids` of the selected folder deleted and expunge them (only them with
        UIDPLUS, RFC 4315; else EXPUNGE, in a folder that only we file into)."""
        uid_set = ",".join(str(u) for u in uids)
        await self.command(f"UID STORE {uid_set} +FLAGS.SILENT",
                           self.client.uid("store", uid_set, "+FLAGS.SILENT", r"(\Deleted)"))
        if self.has("UIDPLUS"):
            await self.command(f"UID EXPUNGE {uid_set}", self.client.uid("expunge", uid_set))
        else:
            await self.command("EXPUNGE", self.client.expunge())

    async def idle(self, seconds: float) -> None:
        """IDLE (RFC 2177) until the folder changes or `seconds` pass; then DONE."""
        client = self.client
        queue = self.protocol.idle_queue
        while not queue.empty():  # left over from the last IDLE; the sync since covered them
            queue.get_nowait()
        idle: asyncio.Future[Any] = await self.call("IDLE", client.idle_start(timeout=seconds))
        self._idle = idle
        while True:
            # The local re-issue timer pushes STOP_WAIT_SERVER_PUSH after `seconds`.
            push = await self.call("IDLE", client.wait_server_push(seconds + self.timeout),
                                   seconds + 2 * self.timeout)
            if push == aioimaplib.STOP_WAIT_SERVER_PUSH:
                break
            lines = [line for line in push if isinstance(line, bytes)]
            bye = next((line for line in lines if _BYE.match(line)), None)
            if bye is not None:
                raise ImapError(f"server said {bye.decode(errors='replace')}")
            if any(_CHANGE.match(line) for line in lines):
                break
        client.idle_done()
        # A silently dead connection shows here: no tagged answer to DONE.
        await self.command("DONE (end of IDLE)", idle)
        self._idle = None

    async def pause(self, seconds: float) -> None:
        """Sleep between polls, but notice at once when the connection drops."""
        done, _ = await asyncio.wait((self._lost,), timeout=seconds)
        if done:
            raise ImapError(self._lost.result())


async def oauth2_token(command: str, seconds: float) -> str:
    """Run `oauth2_token_command` through the shell, as users write it; stdout is the token."""
    try:
        process = await asyncio.create_subprocess_shell(
            command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise ImapError(f"oauth2_token_command cannot start: {_os_reason(exc)}") from exc
    try:
        async with asyncio.timeout(seconds):
            out, err = await process.communicate()
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        if isinstance(exc, TimeoutError):
            raise ImapError(f"oauth2_token_command gave no token within {seconds:g} s") from None
        raise
    if process.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()
        raise ImapError(f"oauth2_token_command failed with exit status {process.returncode}"
                        + (f": {detail[-1][:200]}" if detail else ""))
    token = out.decode(errors="replace").strip()
    if not token or any(ch.isspace() for ch in token):
        raise ImapError("oauth2_token_command must print exactly one token on one line")
    return token


def describe(exc: BaseException) -> str:
    """A one-line reason for an outage log line."""
    if isinstance(exc, ImapError):
        return str(exc).rstrip(".")
    if isinstance(exc, ssl.SSLError):
        return _tls_reason(exc)
    if isinstance(exc, OSError):
        return _os_reason(exc)
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, aioimaplib.CommandTimeout):
        return f"the server did not answer {exc.command.name} in time"
    if isinstance(exc, aioimaplib.AioImapException):
        return f"IMAP protocol error: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if exc.reason == "WRONG_VERSION_NUMBER":
        return "TLS handshake failed: the port does not speak TLS (tls = false? starttls?)"
    return f"TLS handshake failed: {exc.reason or exc}"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _default_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _lines(response: Any) -> Iterable[bytes]:
    """The untagged lines of a response (the last line is the tagged status text)."""
    return (line for line in response.lines[:-1] if isinstance(line, bytes))


def _text(response: Any) -> str:
    lines = [line for line in response.lines if isinstance(line, bytes | bytearray)]
    text = bytes(lines[-1]).decode(errors="replace").strip() if lines else ""
    return f"{response.result} {text}".strip()


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unescape(raw: bytes) -> str:
    return re.sub(rb"\\(.)", rb"\1", raw).decode(errors="replace")


def _utf7(name: str) -> str:
    """Modified UTF-7 for mailbox names (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode()
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
