"""The aioimaplib wrapper: one logged-in IMAP session, every command bounded in time.

The one module that imports aioimaplib (GPL). It logs in, files and deletes messages as told;
deciding which messages, and when, is the watcher's job.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import ssl
from collections.abc import Awaitable, Iterable
from datetime import timedelta
from typing import Any, TypeVar

import aioimaplib  # type: ignore[import-untyped]

from mailrelay.config import ImapConfig
from mailrelay.core.errors import MailrelayError

log = logging.getLogger("mailrelay.imap_watcher")  # the name operators filter on

T = TypeVar("T")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?:"(?P<delim>(?:\\.|[^"\\])*)"|NIL) ', re.I)
_NAMESPACE = re.compile(rb'^\(\("(?P<prefix>(?:\\.|[^"\\])*)" (?:"(?P<delim>(?:\\.|[^"\\])*)"|NIL)')
_CHANGE = re.compile(rb"^\d+ (EXISTS|RECENT)\b", re.IGNORECASE)
_EXISTS = re.compile(rb"^\* \d+ EXISTS\b", re.IGNORECASE)
_BYE = re.compile(rb"^BYE\b", re.IGNORECASE)
_LOGOUT_TIMEOUT = 2.0


class ImapError(MailrelayError):
    """The IMAP server cannot be used right now; the message says why."""


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
        return f"polling every {seconds_text(poll_interval.total_seconds())}"

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
        if not await self.exists(quoted):
            response = await self.call(f"CREATE {quoted}", self.client.create(quoted))
            if response.result != "OK" and not await self.exists(quoted):
                raise ImapError(f"cannot create folder {name}: {_text(response)}")
            log.info("IMAP folder %s created on %s", name, self.config.host)
            # Mail clients often show only subscribed folders; a refusal changes nothing here.
            await self.call(f"SUBSCRIBE {quoted}", self.client.subscribe(quoted))
        self._known_folders.add(name)

    async def exists(self, quoted: str) -> bool:
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



def seconds_text(seconds: float) -> str:
    """A duration for log lines: "45s", "12m05s", "3h07m"."""
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
