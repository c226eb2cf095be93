"""Inbound SMTP edge (aiosmtpd in the daemon's own loop): RCPT policy, limits, durable 250.

It translates SMTP into `Inbound.receive` and back; it decides nothing about shipments.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import logging
import re
import ssl
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from mailrelay.config import SmtpConfig
from mailrelay.core.errors import StoreError
from mailrelay.core.routing import Route
from mailrelay.services.inbound import Inbound
from mailrelay.store import address_ref

log = logging.getLogger("mailrelay.smtp_server")  # the name operators filter on

_PLAIN_ANGLE_ADDR = re.compile(
    r"^\s*<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)>"
    r"(.*)$"
)
#: How aiosmtpd hands over command bytes that are not UTF-8 (surrogateescape).
_UNDECODABLE = re.compile("[\udc80-\udcff]")
TEMPFAIL = "451 4.3.0 Temporary local problem, please try again later"
SHUTTING_DOWN = b"421 4.3.2 Service shutting down, please try again later\r\n"
TOO_BUSY = "421 4.3.2 Too many connections, please try again later"
CLIENT_BUSY = "421 4.7.0 Too many connections from your address, please try again later"
JUNK_LIMIT = b"421 4.7.0 Too many commands without progress, closing connection"
SESSION_EXPIRED = b"421 4.4.2 Session time limit reached, closing connection"
#: Commands whose acceptance is progress (a message is on its way); any other command, and
#: any line that is not a command, counts against `junk_command_limit` (Postfix's
#: smtpd_junk_command_limit; issue 10 §6: clients trickling NOOP held every slot).
PROGRESS_COMMANDS = frozenset({"MAIL", "RCPT", "DATA"})
NOT_ALLOWED = "554 5.7.1 Client host rejected: not allowed to connect"
#: Refusals whose hooks log them with their reason already (GatedSMTP.push logs the rest).
_LOGGED_WHERE_DECIDED = (TEMPFAIL, TOO_BUSY, CLIENT_BUSY, NOT_ALLOWED, "550 5.1.1 ")
#: RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF (aiosmtpd's limit too).
MAX_LINE_OCTETS = 1001
#: The end of DATA: a line holding one dot. The CRLF before it may be the DATA command's own.
END_OF_DATA = b"\r\n.\r\n"


class RoutedEnvelope(Envelope):
    """aiosmtpd's envelope with what each accepted RCPT means to us."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: list[Route] = []


def routes_of(envelope: Envelope) -> list[Route]:
    """The routes of the RCPTs accepted so far (our sessions create RoutedEnvelopes)."""
    return envelope.routes if isinstance(envelope, RoutedEnvelope) else []


class Handler:
    """aiosmtpd hooks: the few lines between SMTP and intake."""

    def __init__(self, inbound: Inbound) -> None:
        self.inbound = inbound
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.accepted = 0
        self.last_data = 0.0
        #: (outcome, reason) → count, for /metrics: accepted / rejected / deferred.
        self.outcomes: Counter[tuple[str, str]] = Counter()
        #: Whether EHLO offers AUTH: only with `require_auth` and a `users_file`.
        self.offer_auth = False

    def busy(self) -> bool:
        """A session is committing a message, or did a moment ago (more are likely)."""
        recent = asyncio.get_running_loop().time() - self.last_data < 0.05
        return self.in_flight > 0 or recent

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:
        """aiosmtpd advertises AUTH even with nothing to check passwords against; every
        attempt then fails. Offer it only when logins can succeed."""
        session.host_name = hostname
        if self.offer_auth:
            return responses
        return [line for line in responses if not line.startswith("250-AUTH")]

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        route = self.inbound.route(address)
        if route is None:
            # The domain shows a misrouted or mistyped address; the local part may be a person's.
            log.info("rcpt rejected peer=%s rcpt=%s@%s", _peer(session),
                     address_ref(address.rpartition("@")[0]), address.rpartition("@")[2])
            self.outcomes["rejected", "unknown_recipient"] += 1
            return f"550 5.1.1 <{address}>: Recipient address rejected: not a mailrelay address"
        routes = routes_of(envelope)
        if all(r.address != route.address for r in routes):
            routes.append(route)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        routes = routes_of(envelope)
        self.in_flight += 1
        self.last_data = asyncio.get_running_loop().time()
        self.idle.clear()
        try:
            ids = await self.inbound.receive(
                _peer(session), str(envelope.mail_from or ""), routes, bytes(raw)
            )
        except StoreError as exc:
            # A full disk or a locked database: expected, and the store logged its reason. One
            # line per deferred message, no traceback (a full disk made 14 lines per message).
            log.warning("data deferred peer=%s: %s; answered 451", _peer(session), exc)
            self.outcomes["deferred", "error"] += 1
            return TEMPFAIL
        except Exception:
            # DESIGN: in doubt, defer. The client keeps the message and retries.
            log.exception("data failed peer=%s; answered 451", _peer(session))
            self.outcomes["deferred", "error"] += 1
            return TEMPFAIL
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()
        self.accepted += 1
        for route in routes:
            self.outcomes["accepted", str(route.kind)] += 1
        queued = ",".join(str(i) if i is not None else "known" for i in ids)
        return f"250 2.0.0 OK: queued as {queued}"

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's default answers a permanent 500 carrying the exception text.
        log.error("smtp session error: %r", error)
        self.outcomes["deferred", "error"] += 1
        return TEMPFAIL


def _peer(session: Session) -> str:
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return f"{peer[0]}:{peer[1]}" if len(peer) > 1 else str(peer[0])
    return str(peer)


class BlockDataSMTP(SMTP):
    """aiosmtpd's SMTP with a DATA reader that takes the content in blocks (same answers)."""

    _committing = False  # the DATA hook is storing a message

    #: aiosmtpd sizes each session's StreamReader by this (its buffer pauses the socket at
    #: twice the limit). Its own 1001 paused and resumed the socket a few times within every
    #: 5 KB message: an epoll change each time. Lines are still held to MAX_LINE_OCTETS.
    line_length_limit = 1 << 16

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command method
        """aiosmtpd's DATA with its answers, reading the content in blocks.

        aiosmtpd awaits every line on its own (a third of the listener's CPU on a 5 KB
        message, bench/ingest.py); this reads up to each `.<CRLF>`, so a message costs a
        few awaits. The end is still only `<CRLF>.<CRLF>`: a bare LF or CR next to the dot
        does not end it (SMTP smuggling, tests/test_smtp_listener.py).
        """
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if self.envelope is None or not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        # (aiosmtpd's `timeout` restarted at the DATA command: the content must arrive
        # within it, and the session within `session_timeout`.)
        try:
            content, problem = await self._read_content()
        except asyncio.CancelledError:
            log.debug("connection lost during DATA")
            self._writer.close()
            raise
        except asyncio.IncompleteReadError:  # the client closed the connection mid-DATA
            self._writer.close()
            return
        if problem is not None:
            self.envelope = self._create_envelope()
            await self.push(problem)
            return
        self.envelope.content = content
        self.envelope.original_content = content
        self._committing = True  # a session deadline now waits for the answer
        try:
            status = await self._call_handler_hook("DATA")
        finally:
            self._committing = False
        self.envelope = self._create_envelope()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_content(self) -> tuple[bytes, str | None]:
        """The message up to `<CRLF>.<CRLF>`, dot-unstuffed; or why it is refused.

        Everything is read to the end before refusing (RFC 5321 4.2.5), keeping at most
        `data_size_limit` bytes of it.
        """
        reader = self._reader
        limit = self.data_size_limit
        data = bytearray(b"\r\n")  # the DATA command's CRLF: an empty message is `.<CRLF>`
        dropped = 0  # bytes of an oversized message not kept
        while True:
            try:
                data += await reader.readuntil(b".\r\n")
            except asyncio.LimitOverrunError as exc:  # a long stretch without `.<CRLF>`
                data += await reader.readexactly(exc.consumed)
            if data.endswith(END_OF_DATA):
                break
            if limit and dropped + len(data) > limit + len(END_OF_DATA):
                dropped += len(data) - 4  # keep what a split terminator needs
                del data[:-4]
        if limit and dropped + len(data) - len(END_OF_DATA) > limit:
            return b"", "552 Error: Too much mail data"
        # RFC 5321 4.5.2: a leading dot was doubled by the client; the prefix CRLF goes.
        content = bytes(data[:-3]).replace(b"\r\n.", b"\r\n")[2:]
        if len(content) >= MAX_LINE_OCTETS - 1 and max(
            map(len, content.split(b"\r\n"))
        ) > MAX_LINE_OCTETS - 2:
            return b"", "500 Line too long (see RFC5321 4.5.3.1.6)"
        return content, None


class GatedSMTP(BlockDataSMTP):
    """The listener's sessions: admission (allow-list, session caps), limits on commands
    without progress and on session time, and a registry for shutdown.

    aiosmtpd's own `timeout` restarts only when a complete, recognised command arrives, so
    it already bounds each command line: bytes trickled in do not extend it.
    """

    def _create_envelope(self) -> Envelope:
        return RoutedEnvelope()

    def __init__(self, listener: Listener, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listener = listener
        self._refusal: str | None = None
        self._junk = 0  # commands since the last accepted MAIL, RCPT or DATA
        self._in_command = False
        self._greeted = False
        self._last_reply = b""
        self._expired = False
        self._deadline: asyncio.TimerHandle | None = None
        for name, method in list(self._smtp_methods.items()):
            self._smtp_methods[name] = self._counting(name, method)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # not the STARTTLS re-entry
        if first:
            # Decided here, in the order connections arrive, so a burst gets exactly
            # max_sessions slots; a refused connection never takes one (issue 10 §6).
            self._refusal = self._listener.admit(self, transport.get_extra_info("peername"))
        super().connection_made(transport)
        if first and self._refusal is None:
            self._deadline = self.loop.call_later(
                self._listener.config.session_timeout.total_seconds(), self._session_expired)

    def _session_expired(self) -> None:
        if self._committing:
            self._expired = True  # closed once the message has its answer
            return
        self._close_now("session_timeout", SESSION_EXPIRED)

    def _close_now(self, reason: str, reply: bytes) -> None:
        self._listener.closed_counts[reason] += 1
        log.info("session closed peer=%s (%s)", _peer(self.session) if self.session else "?",
                 reason)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            try:
                if isinstance(transport, asyncio.WriteTransport):
                    transport.write(reply + b"\r\n")
            except (RuntimeError, OSError):
                pass
            transport.close()

    def _counting(self, command: str, method: Callable[[str | None], Awaitable[None]]
                  ) -> Callable[[str | None], Awaitable[None]]:
        async def counted(arg: str | None) -> None:
            await self._counted(command, method, arg)

        # HELP reads the @syntax attributes from the method it finds.
        return functools.update_wrapper(counted, method)

    async def _counted(self, command: str, method: Callable[[str | None], Awaitable[None]],
                       arg: str | None) -> None:
        """Run one recognised command, counting it unless it made progress.

        Past the limit a junk command is answered 421 instead; a MAIL, RCPT or DATA still
        gets its chance, and closes the session after its answer if it failed too.
        """
        limit = self._listener.config.junk_command_limit
        progressive = command in PROGRESS_COMMANDS
        if not progressive and command != "QUIT" and self._junk >= limit:
            self._close_now("junk_commands", JUNK_LIMIT)
            return
        self._in_command = True
        self._last_reply = b""
        try:
            await method(arg)
        finally:
            self._in_command = False
        if progressive and self._last_reply[:1] in (b"2", b"3"):
            self._junk = 0
        elif command != "QUIT":
            self._junk += 1
            if progressive and self._junk > limit:
                self._close_now("junk_commands", JUNK_LIMIT)
        if self._expired:
            self._close_now("session_timeout", SESSION_EXPIRED)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd parses every MAIL/RCPT address with the email header parser, which was
        a fifth of the listener's CPU under load (bench/ingest.py). A plain `<local@domain>`
        takes this fast path; anything else goes to aiosmtpd's own parser."""
        if _UNDECODABLE.search(arg):
            # aiosmtpd keeps bytes that are not UTF-8 as lone surrogates, which the store cannot
            # write: the commit failed and the client got 451 forever (fuzz suite, issue 10 §6).
            # RFC 6531 3.3: addresses are UTF-8; this one is malformed (553 5.1.3).
            return None, None
        match = _PLAIN_ANGLE_ADDR.match(arg)
        if match is None:
            return SMTP._getaddr(self, arg)
        local = match.group(1).rpartition("@")[0]
        if self.local_part_limit and len(local) > self.local_part_limit:
            return None, None
        return match.group(1), match.group(2).lstrip()

    async def push(self, status: AnyStr) -> None:
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else str(status)
        code = text[:3].encode()
        # aiosmtpd answers 552 (too large) itself; count it on the way out.
        if text[:3] == "552":
            self._listener.handler.outcomes["rejected", "too_large"] += 1
        if text[:1] in ("4", "5") and not text.startswith(_LOGGED_WHERE_DECIDED):
            # aiosmtpd's own refusals (syntax, parameters, size, line length) log nothing;
            # every refusal gets one line naming the client (issue 10 §6).
            peer = _peer(self.session) if self.session is not None else "unknown"
            log.info("smtp refused peer=%s answer=%r", peer, text[:120])
        if self._in_command:
            self._last_reply = code
        elif self._greeted:
            # A line aiosmtpd answered itself (unknown command, bad syntax, too long): junk.
            if self._junk >= self._listener.config.junk_command_limit:
                self._close_now("junk_commands", JUNK_LIMIT)
                return
            self._junk += 1
        self._greeted = True
        await super().push(status)

    def connection_lost(self, error: Exception | None) -> None:
        self._listener.release(self)
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self._refusal:
            await super().push(self._refusal)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()


#: Seconds between two log lines for connections refused for the same reason.
REFUSAL_LOG_EVERY = 60.0


class Listener:
    """Owns the listening socket and every open session."""

    def __init__(self, config: SmtpConfig, handler: Handler) -> None:
        self.config = config
        self.handler = handler
        #: Admitted sessions (refused connections never count), and how many per client.
        self.sessions: set[GatedSMTP] = set()
        self._per_client: Counter[str] = Counter()
        self._client_of: dict[GatedSMTP, str] = {}
        #: For /metrics: connections refused at connect, and sessions closed at a limit.
        self.refused_counts: Counter[str] = Counter()
        self.closed_counts: Counter[str] = Counter()
        self._refusal_logged_at: dict[str, float] = {}
        self._refusals_unlogged: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._allowed = config.allowed_clients
        self._tls = _tls_context(config)
        self.port = config.port
        self._authenticator = (
            UsersAuthenticator(load_users(config.users_file))
            if config.require_auth and config.users_file else None
        )
        handler.offer_auth = self._authenticator is not None
        if self._authenticator is not None and self._tls is None:
            log.warning("smtp require_auth without tls_cert: passwords cross the network in "
                        "clear text; use this only on loopback")

    def admit(self, session: GatedSMTP, peer: Any) -> str | None:
        """Take a slot for a new connection, or say why it is refused (it then takes none)."""
        host = str(peer[0] if isinstance(peer, tuple) and peer else peer).split("%")[0]
        if self._allowed:
            try:
                addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = (
                    ipaddress.ip_address(host))
            except ValueError:
                addr = None
            if addr is None or not any(addr in net for net in self._allowed):
                self._log_refused("not_allowed", peer, "not in allowed_clients")
                self.handler.outcomes["rejected", "client_not_allowed"] += 1
                self.refused_counts["not_allowed"] += 1
                return NOT_ALLOWED
        if len(self.sessions) >= self.config.max_sessions:
            self._log_refused("max_sessions", peer,
                              f"max_sessions={self.config.max_sessions} reached")
            self.handler.outcomes["deferred", "too_busy"] += 1
            self.refused_counts["max_sessions"] += 1
            return TOO_BUSY
        if self._per_client[host] >= self.config.max_sessions_per_client:
            self._log_refused("max_sessions_per_client", peer, "max_sessions_per_client="
                              f"{self.config.max_sessions_per_client} reached")
            self.handler.outcomes["deferred", "too_busy"] += 1
            self.refused_counts["max_sessions_per_client"] += 1
            return CLIENT_BUSY
        self.sessions.add(session)
        self._per_client[host] += 1
        self._client_of[session] = host
        return None

    def _log_refused(self, reason: str, peer: Any, why: str) -> None:
        """One WARNING per reason per `REFUSAL_LOG_EVERY` seconds, naming how many went
        unlogged since: a flood of connections must not flood the log too (101 slow clients
        wrote 96 lines; a log can fill the disk). /metrics counts every refusal."""
        now = asyncio.get_running_loop().time()
        last = self._refusal_logged_at.get(reason)
        if last is not None and now - last < REFUSAL_LOG_EVERY:
            self._refusals_unlogged[reason] += 1
            return
        more = self._refusals_unlogged.pop(reason, 0)
        log.warning("client refused peer=%s (%s)%s", peer, why,
                    f"; {more} more refused for this since the last such line" if more else "")
        self._refusal_logged_at[reason] = now

    def release(self, session: GatedSMTP) -> None:
        """Give back an admitted session's slot (nothing for a refused one)."""
        self.sessions.discard(session)
        host = self._client_of.pop(session, None)
        if host is not None:
            self._per_client[host] -= 1
            if self._per_client[host] <= 0:
                del self._per_client[host]

    def _protocol(self) -> GatedSMTP:
        with warnings.catch_warnings():
            # aiosmtpd warns on every connection when AUTH is allowed without TLS; we log it
            # once at start instead.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return self._new_session()

    def _new_session(self) -> GatedSMTP:
        return GatedSMTP(
            self,
            self.handler,
            data_size_limit=self.config.max_message_size,
            hostname=self.config.hostname,
            ident="mailrelay",
            tls_context=self._tls,
            timeout=self.config.timeout.total_seconds(),
            enable_SMTPUTF8=True,
            auth_required=self._authenticator is not None,
            auth_require_tls=self._tls is not None,
            authenticator=self._authenticator,
            loop=asyncio.get_running_loop(),
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, host=self.config.host, port=self.config.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("smtp listening on %s:%d", self.config.host, self.port)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let commits in progress answer 250, then 421 everyone else."""
        if self._server is None:
            return
        self._server.close()
        try:
            await asyncio.wait_for(self.handler.idle.wait(), grace)
        except TimeoutError:
            log.warning("smtp shutdown: %d commit(s) still running", self.handler.in_flight)
        for session in list(self.sessions):
            transport = session.transport
            if transport is not None and not transport.is_closing():
                try:
                    if isinstance(transport, asyncio.WriteTransport):
                        transport.write(SHUTTING_DOWN)
                except (RuntimeError, OSError):
                    pass
                transport.close()
            # After STARTTLS the TCP transport sits under the TLS one; close it too.
            original = getattr(session, "_original_transport", None)
            if original is not None and not original.is_closing():
                original.close()
        self.sessions.clear()
        self._client_of.clear()
        self._per_client.clear()
        await asyncio.sleep(0.01)
        self._server = None
        log.info("smtp listener stopped")


def load_users(path: Path) -> dict[str, str]:
    """`users_file`: one `user:password` per line; `{SHA256}<hex>` stores a hash instead.

    Blank lines and lines starting with # are ignored.
    """
    users: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, secret = line.partition(":")
        if not sep or not name or not secret:
            raise ValueError(f"{path}:{number}: expected user:password")
        users[name] = secret
    return users


class UsersAuthenticator:
    """aiosmtpd authenticator over `users_file` (PLAIN and LOGIN)."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        given = auth_data.password.decode("utf-8", "replace")
        stored = self.users.get(user)
        if stored is None:
            log.warning("smtp auth failed user=%r peer=%s (unknown user)", user, _peer(session))
            return AuthResult(success=False, handled=False)
        if stored.startswith("{SHA256}"):
            ok = hmac.compare_digest(hashlib.sha256(given.encode()).hexdigest(),
                                     stored[len("{SHA256}"):].lower())
        else:
            ok = hmac.compare_digest(given.encode(), stored.encode())
        if not ok:
            log.warning("smtp auth failed user=%r peer=%s", user, _peer(session))
        return AuthResult(success=ok, handled=False)


def _tls_context(config: SmtpConfig) -> ssl.SSLContext | None:
    """STARTTLS when a certificate is configured (RFC 3207)."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    return ctx
