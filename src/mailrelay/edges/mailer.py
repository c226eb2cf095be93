"""The outbound edge: hand one rendered message for one recipient to an SMTP relay or a Maildir.

The only module that maps SMTP replies onto TemporaryFailure / PermanentFailure; it never decides
whether or when to try again (delivery does) and never renders or stores anything.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
import re
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import aiosmtplib
from aiosmtplib.email import parse_address

from mailrelay.config import OutboundConfig
from mailrelay.core.errors import DeliveryFailure, PermanentFailure, TemporaryFailure
from mailrelay.core.files import make_private_dir, restrict_file

__all__ = [
    "MaildirTransport",
    "SendResult",
    "SmtpTransport",
    "Transport",
    "build_transport",
    "build_transports",
    "prepare_maildir",
]

log = logging.getLogger("mailrelay.mailer")  # the name operators filter on

# A pooled connection idle for longer than this is replaced before use rather than probed: servers
# drop idle sessions (RFC 5321 4.5.3.2.7 allows 5 minutes; many relays use far less), and a fresh
# connection costs less than a MAIL that fails and is retried.
MAX_IDLE_SECONDS: Final = 30.0
# QUIT is a courtesy: never wait long for its answer.
QUIT_TIMEOUT_SECONDS: Final = 5.0
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class SendResult:
    """What the server said on acceptance ("250 2.0.0 Ok: queued as ABC"), or "maildir: <key>"."""

    reply: str


class Transport(Protocol):
    """Sends one message to one recipient; raises TemporaryFailure or PermanentFailure."""

    async def send(self, envelope_from: str, recipient: str, raw: bytes) -> SendResult:
        """Hand `raw` over for `recipient`; return only once it was accepted."""
        ...

    async def close(self) -> None:
        """Release any connection; the transport may be used again afterwards."""
        ...


def build_transport(
    config: OutboundConfig, *, reuse: bool = True, local_hostname: str | None = None
) -> Transport:
    """The transport [outbound] asks for: "smtp" (a relay) or "maildir" (a directory)."""
    if config.transport == "smtp":
        return SmtpTransport(config, reuse=reuse, local_hostname=local_hostname)
    if config.transport == "maildir":
        return MaildirTransport(config.maildir)
    raise ValueError(f"unknown outbound transport {config.transport!r}")


def build_transports(config: OutboundConfig) -> list[Transport]:
    """One transport per `[outbound] connections`, for delivery's lanes: SMTP transports with
    a connection each; one Maildir transport shared (it writes one message at a time)."""
    if config.transport == "maildir":
        return [build_transport(config)] * config.connections
    return [build_transport(config) for _ in range(config.connections)]


# --------------------------------------------------------------------------- SMTP


def _reply_text(code: int, message: str) -> str:
    """One line, code first: aiosmtplib joins the lines of a multi-line reply with newlines."""
    return f"{code} {' '.join(message.split())}".rstrip()


def _check_address(role: str, address: str, *, empty_ok: bool) -> None:
    """Refuse what cannot be put on a MAIL/RCPT line (RFC 5321 4.1.2) without smuggling."""
    try:
        if _CONTROL.search(address) or (not address and not empty_ok):
            raise ValueError("empty or containing control characters")
        parse_address(address)
    except ValueError as error:
        raise PermanentFailure(f"invalid {role} address {address!r}: {error}") from None


class SmtpTransport:
    """An SMTP client that keeps one connection and runs one transaction on it at a time.

    STARTTLS, when configured, is required (never opportunistic, never silently skipped); AUTH runs
    when a username is set. Every network step is bounded by `config.timeout`.
    """

    def __init__(
        self,
        config: OutboundConfig,
        *,
        reuse: bool = True,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        max_idle: float = MAX_IDLE_SECONDS,
    ) -> None:
        if config.tls and config.starttls:
            raise ValueError("outbound tls (implicit TLS) and starttls exclude each other")
        self._config = config
        self._reuse = reuse
        self._tls_context = tls_context  # None: the system's trust store, made on first use
        self._local_hostname = local_hostname
        self._max_idle = max_idle
        self._timeout = config.timeout.total_seconds()
        self._where = f"{config.host}:{config.port}"
        self._lock = asyncio.Lock()
        self._client: aiosmtplib.SMTP | None = None
        self._idle_since = 0.0

    async def send(self, envelope_from: str, recipient: str, raw: bytes) -> SendResult:
        """Run MAIL, RCPT and DATA for one recipient; map any refusal or trouble to a failure."""
        async with self._lock:
            try:
                result = await self._send(envelope_from, recipient, raw)
            except BaseException:
                # After any failure (or a cancellation mid-transaction) the session state is
                # unknown: start the next message on a fresh connection.
                self._drop()
                raise
            if self._reuse:
                self._idle_since = time.monotonic()
            else:
                await self._quit()
            return result

    async def close(self) -> None:
        """Say QUIT (briefly) and close the pooled connection, if any."""
        async with self._lock:
            await self._quit()

    # ------------------------------------------------------------------ the transaction

    async def _send(self, envelope_from: str, recipient: str, raw: bytes) -> SendResult:
        # A malformed address fails the same way on every server: say so without connecting.
        _check_address("sender", envelope_from, empty_ok=True)  # <> is the null reverse-path
        _check_address("recipient", recipient, empty_ok=False)
        stage = "connect"
        try:
            client, reused = await self._connection()
            stage = "MAIL"
            try:
                await self._mail(client, envelope_from, recipient, raw)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # The server closed the pooled connection while it sat idle and we had not seen
                # the EOF yet. Nothing of this message was sent: retry once on a new connection.
                log.info("%s closed the pooled connection; reconnecting", self._where)
                self._drop()
                stage = "connect"
                client, _ = await self._connection()
                stage = "MAIL"
                await self._mail(client, envelope_from, recipient, raw)
            stage = "RCPT"
            await self._rcpt(client, recipient)
            # From here on a lost connection is never retried: the server may have received the
            # whole message and queued it before the line dropped, and a retry could send it twice.
            stage = "DATA"
            response = await client.data(raw)
        except DeliveryFailure:
            raise
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise self._failure(error, stage) from error
        return SendResult(_reply_text(response.code, response.message))

    async def _mail(
        self, client: aiosmtplib.SMTP, envelope_from: str, recipient: str, raw: bytes
    ) -> None:
        options: list[str] = []
        encoding = "ascii"
        if client.supports_extension("size"):
            # RFC 1870: an estimate suffices; a relay that would refuse the size says so now,
            # before the content is sent.
            options.append(f"SIZE={len(raw)}")
        if client.supports_extension("8bitmime") and not raw.isascii():
            options.append("BODY=8BITMIME")
        if not (envelope_from + recipient).isascii():
            # RFC 6531: a transaction with any non-ASCII mailbox is declared on MAIL.
            self._require_smtputf8(client, recipient if envelope_from.isascii() else envelope_from)
            options.append("SMTPUTF8")
            encoding = "utf-8"
        try:
            await client.mail(envelope_from, options=options, encoding=encoding)
        except ValueError as error:
            raise PermanentFailure(f"invalid sender address {envelope_from!r}: {error}") from None

    async def _rcpt(self, client: aiosmtplib.SMTP, recipient: str) -> None:
        encoding = "ascii" if recipient.isascii() else "utf-8"  # SMTPUTF8 was checked at MAIL
        try:
            await client.rcpt(recipient, encoding=encoding)
        except ValueError as error:
            raise PermanentFailure(f"invalid recipient address {recipient!r}: {error}") from None

    def _require_smtputf8(self, client: aiosmtplib.SMTP, address: str) -> None:
        if not client.supports_extension("smtputf8"):
            raise PermanentFailure(
                f"{address} needs SMTPUTF8 (RFC 6531), which {self._where} does not offer"
            )

    # ------------------------------------------------------------------ the connection

    async def probe(self) -> str:
        """Connect, greet, STARTTLS and log in as a send would, then QUIT (`mailrelay check`).

        Raises TemporaryFailure / PermanentFailure with the server's words.
        """
        client = await self._connect()
        self._client = client
        tls = "TLS" if self._config.tls else "STARTTLS" if self._config.starttls else "no TLS"
        auth = f"logged in as {self._config.username}" if self._config.username else "no AUTH"
        await self._quit()
        return f"{self._config.host}:{self._config.port} ({tls}, {auth})"

    async def _connection(self) -> tuple[aiosmtplib.SMTP, bool]:
        """The pooled connection if it is still usable (and True), else a new one (and False)."""
        client = self._client
        if client is not None:
            idle = time.monotonic() - self._idle_since
            if client.is_connected and idle <= self._max_idle:
                return client, True
            self._drop()
        client = await self._connect()
        self._client = client
        return client, False

    async def _connect(self) -> aiosmtplib.SMTP:
        config = self._config
        if self._local_hostname is None:
            # aiosmtplib would look this up again for every new connection.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        context: ssl.SSLContext | None = None
        if config.tls or config.starttls:
            if self._tls_context is None:
                self._tls_context = await asyncio.to_thread(ssl.create_default_context)
            context = self._tls_context
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            local_hostname=self._local_hostname,
            timeout=self._timeout,
            use_tls=config.tls,
            # False, not None: None would mean "upgrade if offered", silently sending in the clear
            # when a man in the middle strips STARTTLS. The explicit upgrade below is mandatory.
            start_tls=False,
            tls_context=context,
        )
        stage = "connect"
        try:
            await client.connect()
            stage = "EHLO"
            await self._greet(client)
            if config.starttls:
                stage = "STARTTLS"
                await client.starttls()
            if config.username is not None:
                stage = "AUTH"
                await client.login(config.username, config.password or "")
        except BaseException as error:
            _close_now(client)
            if isinstance(error, aiosmtplib.SMTPException | OSError | TimeoutError):
                raise self._failure(error, stage) from error
            raise
        return client

    async def _greet(self, client: aiosmtplib.SMTP) -> None:
        """EHLO now (its extensions shape MAIL), falling back to HELO only where EHLO is unknown."""
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError as error:
            if error.code < 500 or not client.is_connected:
                raise
            await client.helo()

    def _drop(self) -> None:
        if self._client is not None:
            _close_now(self._client)
            self._client = None

    async def _quit(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.is_connected:
                await client.quit(timeout=min(self._timeout, QUIT_TIMEOUT_SECONDS))
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass  # the message (if any) was already accepted; QUIT's fate does not matter
        finally:
            _close_now(client)

    # ------------------------------------------------------------------ reply codes → failures

    def _failure(self, error: BaseException, stage: str) -> DeliveryFailure:
        """Translate an aiosmtplib or socket error at `stage` into a failure type and text."""
        where = self._where
        cause = error.__cause__
        if isinstance(error, aiosmtplib.SMTPAuthenticationError):
            # A configuration problem a person fixes: the mail waits rather than bounces.
            return TemporaryFailure(
                f"authentication failed: {_reply_text(error.code, error.message)}"
            )
        if isinstance(error, aiosmtplib.SMTPConnectTimeoutError):
            return TemporaryFailure(f"timed out connecting to {where}: {error.message}")
        if isinstance(error, aiosmtplib.SMTPConnectResponseError):
            return self._by_code(error.code, error.message, "greeting")
        if isinstance(error, aiosmtplib.SMTPConnectError):
            if isinstance(cause, ConnectionRefusedError):
                return TemporaryFailure(f"connection refused by {where}")
            if isinstance(cause, ssl.SSLError):
                return TemporaryFailure(f"TLS handshake with {where} failed: {cause}")
            if isinstance(cause, socket.gaierror):
                return TemporaryFailure(f"cannot resolve {self._config.host}: {cause}")
            return TemporaryFailure(f"cannot connect to {where}: {cause or error.message}")
        if isinstance(error, aiosmtplib.SMTPTimeoutError | TimeoutError):
            return TemporaryFailure(f"timed out waiting for {where} at {stage}")
        if isinstance(error, aiosmtplib.SMTPServerDisconnected):
            if stage == "DATA":
                return TemporaryFailure(
                    f"connection to {where} lost at DATA without a final reply "
                    "(the message may or may not have been accepted)"
                )
            return TemporaryFailure(f"connection to {where} lost at {stage}")
        if isinstance(error, ssl.SSLError):
            return TemporaryFailure(f"TLS handshake with {where} failed: {error}")
        if stage == "STARTTLS":
            # Refused or not offered: a configuration problem; never fall back to plain text.
            if isinstance(error, aiosmtplib.SMTPResponseException):
                text = _reply_text(error.code, error.message)
                return TemporaryFailure(f"STARTTLS refused by {where}: {text}")
            return TemporaryFailure(f"STARTTLS is required but {where} does not offer it")
        if stage == "AUTH":
            return TemporaryFailure(f"authentication failed: {error}")
        if isinstance(error, aiosmtplib.SMTPResponseException):
            return self._by_code(error.code, error.message, stage)
        if isinstance(error, aiosmtplib.SMTPNotSupported):
            return PermanentFailure(f"{where} cannot take this message: {error.message}")
        if isinstance(error, ConnectionRefusedError):
            return TemporaryFailure(f"connection refused by {where}")
        return TemporaryFailure(f"SMTP error with {where} at {stage}: {error}")

    def _by_code(self, code: int, message: str, stage: str) -> DeliveryFailure:
        """5xx is final (RFC 5321 4.2.1); 4xx, and anything unexpected, is worth another try."""
        text = _reply_text(code, message)
        if 500 <= code <= 599:
            return PermanentFailure(text)
        if 400 <= code <= 499:
            return TemporaryFailure(text)
        return TemporaryFailure(f"unexpected reply from {self._where} at {stage}: {text}")


# --------------------------------------------------------------------------- Maildir


MAILDIR_FOLDERS: Final = ("tmp", "new", "cur")


def prepare_maildir(path: Path) -> None:
    """Make `path` a whole Maildir: the folder and its tmp/ new/ cur/, each owner-only.

    mailbox.Maildir(create=True) makes the subfolders only for a folder it creates itself; for
    one that already exists (made by hand, or by `mailrelay check` before issue 12) every add
    failed with "No such file or directory: …/tmp/…".
    """
    make_private_dir(path)
    for folder in MAILDIR_FOLDERS:
        make_private_dir(path / folder)


class MaildirTransport:
    """Writes each message, bytes unchanged, as one file in `<path>/new/` (for tests and demos)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._maildir: mailbox.Maildir | None = None
        # mailbox.Maildir's unique-name counter is not thread-safe: one write at a time.
        self._lock = asyncio.Lock()

    async def send(self, envelope_from: str, recipient: str, raw: bytes) -> SendResult:
        """Store the message; the envelope is not recorded (the headers say who it is for)."""
        async with self._lock:
            try:
                key = await asyncio.to_thread(self._write, raw)
            except (OSError, mailbox.Error) as error:
                raise TemporaryFailure(f"cannot write to maildir {self._path}: {error}") from error
        return SendResult(f"maildir: {key}")

    async def close(self) -> None:
        """Nothing stays open between messages."""

    def _write(self, raw: bytes) -> str:
        if self._maildir is None:
            prepare_maildir(self._path)
            self._maildir = mailbox.Maildir(self._path, create=False)
        try:
            # Maildir.add writes into tmp/ and renames into new/: a reader never sees half a file.
            key = self._maildir.add(raw)
        except FileNotFoundError:
            # A folder removed while we run (an operator emptying the outbox): make it again.
            prepare_maildir(self._path)
            key = self._maildir.add(raw)
        # The file is made 0666 & ~umask; it holds a customer's address and name (issue 10).
        restrict_file(self._path / "new" / key)
        return key


def _close_now(client: aiosmtplib.SMTP) -> None:
    """Close a connection and its socket at once, without TLS's closing handshake.

    aiosmtplib's close() on a STARTTLS connection only begins that handshake; in a short-lived
    loop (`mailrelay check`) the loop could end first and leave the socket to the garbage
    collector. Nothing is lost: QUIT was answered, or the session has failed anyway.
    """
    transport = client.transport
    client.close()
    if isinstance(transport, asyncio.Transport):
        transport.abort()
