"""A real aiosmtpd SMTP server for tests, in the test's own event loop, that can misbehave on cue.

It records every accepted message as received (after SMTP dot-unstuffing), and whether its
sender read the 250 (it went on to another command), and can refuse a command with a chosen
reply, or hang up at a chosen point without answering at all.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

STAGES = ("MAIL", "RCPT", "DATA")
DROP_STAGES = ("MAIL", "DATA")


class _Handler:
    """aiosmtpd hooks: consult the sink's failure plan, else accept and record."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        #: The session's last recorded message, until its sender shows it read the 250.
        self._unconfirmed: int | None = None

    def _confirm(self) -> None:
        """The sender sent another command: it had read the reply to its last DATA."""
        if self._unconfirmed is not None:
            self._sink.acknowledged[self._unconfirmed] = True
            self._unconfirmed = None

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> object:
        self._confirm()
        return MISSING

    async def handle_NOOP(self, server: SMTP, session: Session, envelope: Envelope,
                          arg: str) -> object:
        self._confirm()
        return MISSING

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> object:
        self._confirm()
        return MISSING

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self._confirm()
        if self._sink._take_drop("MAIL"):
            await _hang_up(server)
        reply = self._sink._take_failure("MAIL")
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self._sink._take_failure("RCPT")
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # aiosmtpd calls this after the final dot was read and before the reply is written.
        if self._sink._take_drop("DATA"):
            await _hang_up(server)
        release = self._sink._hold
        if release is not None:
            self._sink._hold = None
            self._sink.held.set()
            await release.wait()
        reply = self._sink._take_failure("DATA")
        if reply is not None:
            return reply
        self._unconfirmed = len(self._sink.messages)
        return self._sink._record(envelope)

    async def handle_exception(self, error: Exception) -> str:
        self._sink.errors.append(error)
        return "451 4.3.0 sink error"


async def _hang_up(server: SMTP) -> None:
    """Close the connection without a reply; connection_lost then cancels this very session task."""
    transport = server.transport
    if transport is not None:
        transport.close()
    await asyncio.Event().wait()  # never set: ends by cancellation


class Sink:
    """Collects messages; can be told how to misbehave."""

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        users: dict[str, str] | None = None,
        idle_timeout: float = 300.0,
        hostname: str = "sink.test",
        smtputf8: bool = False,
    ) -> None:
        """`tls_context` offers STARTTLS (or, with `implicit_tls`, TLS from the first byte);
        `users` (login → password) enables AUTH and makes it mandatory; `idle_timeout` is how long
        the sink waits for the next command before it closes a session; `smtputf8` offers
        SMTPUTF8 (RFC 6531)."""
        self.messages: list[tuple[str, list[str], bytes]] = []
        #: Per message: did its sender read our 250 (go on to MAIL, RSET, NOOP or QUIT on the
        #: connection)? False for the last message of a connection cut without QUIT.
        self.acknowledged: list[bool] = []
        self.connections = 0
        self.port = port
        self.errors: list[Exception] = []
        self._host = host
        self._tls_context = tls_context
        self._implicit_tls = implicit_tls
        self._users = users
        self._idle_timeout = idle_timeout
        self._hostname = hostname
        self._smtputf8 = smtputf8
        self._failures: dict[str, deque[str]] = {stage: deque() for stage in STAGES}
        self._drops: dict[str, int] = dict.fromkeys(DROP_STAGES, 0)
        self._sessions: list[SMTP] = []
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Event()
        self._hold: asyncio.Event | None = None
        #: Set while a DATA held by `hold_next` waits for its release.
        self.held = asyncio.Event()

    # ------------------------------------------------------------------ misbehaviour on cue

    def fail_next(self, reply: str, times: int = 1, at: str = "DATA") -> None:
        """Answer the next `times` commands of kind `at` (MAIL, RCPT or DATA) with `reply`.

        At DATA the reply replaces the final 250, after the whole content was received.
        """
        if at not in STAGES:
            raise ValueError(f"at must be one of {STAGES}, not {at!r}")
        if not reply[:3].isdigit() or reply[0] not in "45":
            raise ValueError(f"reply must start with a 4xx or 5xx code: {reply!r}")
        self._failures[at].extend([reply] * times)

    def drop_next(self, times: int = 1, at: str = "DATA") -> None:
        """Close the next `times` connections at `at` without any reply.

        At DATA (the default) the whole content has been received and the final dot read, but
        the message is not recorded and no answer is sent: the duplicate-risk case.
        """
        if at not in DROP_STAGES:
            raise ValueError(f"at must be one of {DROP_STAGES}, not {at!r}")
        self._drops[at] += times

    def hold_next(self) -> asyncio.Event:
        """Hold the next DATA, content received, unanswered until the returned event is set
        (`held` tells when it is waiting): the sender's result arrives when the test says."""
        self._hold = asyncio.Event()
        self.held.clear()
        return self._hold

    def _take_failure(self, stage: str) -> str | None:
        pending = self._failures[stage]
        return pending.popleft() if pending else None

    def _take_drop(self, stage: str) -> bool:
        if self._drops[stage] > 0:
            self._drops[stage] -= 1
            return True
        return False

    def _record(self, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append((envelope.mail_from or "", list(envelope.rcpt_tos), content))
        self.acknowledged.append(False)
        self._arrived.set()
        return f"250 2.0.0 Ok: queued as {len(self.messages)}"

    # ------------------------------------------------------------------ lifecycle

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        users = self._users or {}
        if isinstance(data, LoginPassword):
            login = data.login.decode("utf-8", "replace")
            password = data.password.decode("utf-8", "replace")
            if login in users and users[login] == password:
                return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)

    def _make_session(self) -> SMTP:
        loop = asyncio.get_running_loop()
        self.connections += 1
        auth: dict[str, Any] = {}
        if self._users is not None:
            auth = {
                "authenticator": self._authenticate,
                "auth_required": True,
                # AUTH needs TLS; with implicit TLS aiosmtpd does not know the line is encrypted.
                "auth_require_tls": not self._implicit_tls,
            }
        session = SMTP(
            _Handler(self),
            hostname=self._hostname,
            tls_context=None if self._implicit_tls else self._tls_context,
            timeout=self._idle_timeout,
            enable_SMTPUTF8=self._smtputf8,
            loop=loop,
            **auth,
        )
        self._sessions.append(session)
        return session

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._make_session,
            host=self._host,
            port=self.port,
            ssl=self._tls_context if self._implicit_tls else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every open session (the clients see the line drop)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        await self.close_sessions()
        self._sessions.clear()

    async def close_sessions(self) -> None:
        """Close every open session, as a server whose idle timeout expired would, but keep
        listening."""
        for session in self._sessions:
            if session.transport is not None:
                session.transport.close()
        # Let every session task end so that none is left pending, or holding an unretrieved
        # exception, when the test's loop closes. Closing the transport normally cancels the task
        # (via connection_lost); but when a client hangs up during the STARTTLS handshake,
        # aiosmtpd never learns of it and would wait for the next command forever.
        tasks = [s._handler_coroutine for s in self._sessions if s._handler_coroutine is not None]
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ looking at what arrived

    # The timeout parameter is the agreed sink API (a default that keeps a broken test short).
    async def wait_for(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until at least `count` messages have arrived."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.messages) < count:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise TimeoutError(
                f"the sink received {len(self.messages)} of {count} messages in {timeout}s"
            ) from None

    def message_ids(self) -> list[str]:
        """The Message-ID header of each received message ("" where there is none)."""
        parser = BytesHeaderParser()
        return [str(parser.parsebytes(raw).get("Message-ID", "")) for _, _, raw in self.messages]


@asynccontextmanager
async def running_sink(**options: Any) -> AsyncIterator[Sink]:
    """A started Sink (options as for Sink()), stopped on exit."""
    sink = Sink(**options)
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()
