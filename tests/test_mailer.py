"""The outbound transports against a real SMTP server (tests/sink.py) and a real Maildir."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mailrelay.config import Config, OutboundConfig
from mailrelay.core.errors import PermanentFailure, TemporaryFailure
from mailrelay.edges.mailer import (
    MaildirTransport,
    SendResult,
    SmtpTransport,
    build_transport,
)

from .sink import Sink, running_sink

SENDER = "bounce+17@relay.test"
RECIPIENT = "john.smith@example.com"


def message(number: int = 1) -> bytes:
    """A rendered message as the renderer stores it: CRLF lines, 8-bit UTF-8, dot-led lines."""
    return (
        b"From: ACME Shoes <reviews@acme.example>\r\n"
        b"To: John Smith <john.smith@example.com>\r\n"
        b"Subject: How are your new shoes?\r\n"
        b"Message-ID: <%d.invitation@relay.test>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"Gr\xc3\xbc\xc3\x9fe John,\r\n"
        b".a line that starts with a dot\r\n"
        b"..and one with two\r\n"
        b".\r\n"
        b"the line above is a lone dot, which must not end the message\r\n"
        b"-- \r\n"
        b"ACME\r\n"
    ) % number


def outbound(config: Config, port: int, **changes: Any) -> OutboundConfig:
    plain: dict[str, Any] = {
        "transport": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "tls": False,
        "username": None,
        "password": None,
    }
    return dataclasses.replace(config.outbound, **(plain | changes))


@asynccontextmanager
async def smtp(settings: OutboundConfig, **options: Any) -> AsyncIterator[SmtpTransport]:
    transport = SmtpTransport(settings, local_hostname="relay.test", **options)
    try:
        yield transport
    finally:
        await transport.close()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    async with running_sink() as running:
        yield running
    assert running.errors == []


@asynccontextmanager
async def raw_server(greeting: bytes | None) -> AsyncIterator[int]:
    """A TCP server that sends `greeting` (or nothing at all) and then only listens."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        if greeting is not None:
            writer.write(greeting)
        await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()
        await asyncio.sleep(0)


# --------------------------------------------------------------------------- sending


async def test_a_message_sent_over_smtp_arrives_byte_identical_including_dot_led_lines(
    config: Config, sink: Sink
) -> None:
    async with smtp(outbound(config, sink.port)) as transport:
        result = await transport.send(SENDER, RECIPIENT, message())
    assert isinstance(result, SendResult)
    assert result.reply == "250 2.0.0 Ok: queued as 1"
    [(mail_from, rcpts, raw)] = sink.messages
    assert (mail_from, rcpts) == (SENDER, [RECIPIENT])
    assert raw.split(b"\r\n") == message().split(b"\r\n")
    assert raw == message()
    assert sink.message_ids() == ["<1.invitation@relay.test>"]


async def test_consecutive_messages_share_one_connection_when_reuse_is_on(
    config: Config, sink: Sink
) -> None:
    async with smtp(outbound(config, sink.port), reuse=True) as transport:
        for number in range(5):
            await transport.send(SENDER, RECIPIENT, message(number))
    assert len(sink.messages) == 5
    assert sink.connections == 1


async def test_each_message_opens_its_own_connection_when_reuse_is_off(
    config: Config, sink: Sink
) -> None:
    async with smtp(outbound(config, sink.port), reuse=False) as transport:
        for number in range(5):
            await transport.send(SENDER, RECIPIENT, message(number))
    assert len(sink.messages) == 5
    assert sink.connections == 5


async def test_concurrent_sends_take_turns_on_the_one_connection(
    config: Config, sink: Sink
) -> None:
    async with smtp(outbound(config, sink.port)) as transport:
        results = await asyncio.gather(
            *(transport.send(SENDER, f"customer{n}@example.com", message(n)) for n in range(5))
        )
    assert len({result.reply for result in results}) == 5
    assert sorted(sink.message_ids()) == sorted(f"<{n}.invitation@relay.test>" for n in range(5))
    assert sink.connections == 1


async def test_build_transport_picks_the_configured_kind(config: Config, tmp_path: Path) -> None:
    assert isinstance(build_transport(outbound(config, 25)), SmtpTransport)
    maildir = dataclasses.replace(config.outbound, transport="maildir", maildir=tmp_path / "out")
    assert isinstance(build_transport(maildir), MaildirTransport)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("at", ["MAIL", "RCPT", "DATA"])
@pytest.mark.parametrize("reply", ["421 4.3.0 try later", "451 4.7.1 greylisted"])
async def test_a_4xx_reply_is_a_temporary_failure_and_the_next_send_uses_a_fresh_connection(
    config: Config, sink: Sink, at: str, reply: str
) -> None:
    async with smtp(outbound(config, sink.port)) as transport:
        await transport.send(SENDER, RECIPIENT, message(1))
        sink.fail_next(reply, at=at)
        with pytest.raises(TemporaryFailure) as failure:
            await transport.send(SENDER, RECIPIENT, message(2))
        assert failure.value.reply == reply
        await transport.send(SENDER, RECIPIENT, message(3))
    assert sink.message_ids() == ["<1.invitation@relay.test>", "<3.invitation@relay.test>"]
    assert sink.connections == 2


@pytest.mark.parametrize("at", ["MAIL", "RCPT", "DATA"])
async def test_a_5xx_reply_is_a_permanent_failure(config: Config, sink: Sink, at: str) -> None:
    sink.fail_next("550 5.1.1 no such user", at=at)
    async with smtp(outbound(config, sink.port)) as transport:
        with pytest.raises(PermanentFailure) as failure:
            await transport.send(SENDER, RECIPIENT, message(1))
        assert failure.value.reply == "550 5.1.1 no such user"
        await transport.send(SENDER, RECIPIENT, message(2))
    assert sink.message_ids() == ["<2.invitation@relay.test>"]
    assert sink.connections == 2


async def test_a_permanent_failure_is_not_a_temporary_one(config: Config, sink: Sink) -> None:
    sink.fail_next("554 5.7.1 rejected as spam", at="DATA")
    async with smtp(outbound(config, sink.port)) as transport:
        with pytest.raises(PermanentFailure) as failure:
            await transport.send(SENDER, RECIPIENT, message())
    assert not isinstance(failure.value, TemporaryFailure)


# --------------------------------------------------------------------------- lost connections


async def test_a_connection_dropped_before_the_final_reply_is_temporary_and_never_retried(
    config: Config, sink: Sink
) -> None:
    async with smtp(outbound(config, sink.port)) as transport:
        await transport.send(SENDER, RECIPIENT, message(1))
        sink.drop_next()
        with pytest.raises(TemporaryFailure) as failure:
            await transport.send(SENDER, RECIPIENT, message(2))
        assert "lost at DATA" in failure.value.reply
        assert "may or may not" in failure.value.reply
        # The whole content reached the server; a retry could deliver it twice, so none was made.
        assert sink.connections == 1
        await transport.send(SENDER, RECIPIENT, message(3))
    assert sink.message_ids() == ["<1.invitation@relay.test>", "<3.invitation@relay.test>"]
    assert sink.connections == 2


async def test_a_pooled_connection_lost_at_mail_is_retried_once_on_a_fresh_connection(
    config: Config, sink: Sink
) -> None:
    async with smtp(outbound(config, sink.port)) as transport:
        await transport.send(SENDER, RECIPIENT, message(1))
        sink.drop_next(at="MAIL")
        await transport.send(SENDER, RECIPIENT, message(2))
    assert sink.message_ids() == ["<1.invitation@relay.test>", "<2.invitation@relay.test>"]
    assert sink.connections == 2


async def test_a_connection_lost_at_mail_is_retried_at_most_once(
    config: Config, sink: Sink
) -> None:
    async with smtp(outbound(config, sink.port)) as transport:
        await transport.send(SENDER, RECIPIENT, message(1))
        sink.drop_next(times=3, at="MAIL")
        with pytest.raises(TemporaryFailure) as failure:
            await transport.send(SENDER, RECIPIENT, message(2))
    assert "lost at MAIL" in failure.value.reply
    assert sink.connections == 2


async def test_a_new_connection_lost_at_mail_is_not_retried(config: Config, sink: Sink) -> None:
    sink.drop_next(at="MAIL")
    async with smtp(outbound(config, sink.port)) as transport:
        with pytest.raises(TemporaryFailure):
            await transport.send(SENDER, RECIPIENT, message())
    assert sink.connections == 1
    assert sink.messages == []


async def test_a_pooled_connection_the_server_timed_out_is_replaced_transparently(
    config: Config,
) -> None:
    async with running_sink(idle_timeout=0.2) as sink:
        async with smtp(outbound(config, sink.port)) as transport:
            await transport.send(SENDER, RECIPIENT, message(1))
            await asyncio.sleep(0.5)
            await transport.send(SENDER, RECIPIENT, message(2))
        assert len(sink.messages) == 2
        assert sink.connections == 2


async def test_a_pooled_connection_the_server_closed_is_replaced_transparently(
    config: Config, sink: Sink
) -> None:
    async with smtp(outbound(config, sink.port)) as transport:
        await transport.send(SENDER, RECIPIENT, message(1))
        await sink.close_sessions()
        await transport.send(SENDER, RECIPIENT, message(2))
    assert len(sink.messages) == 2
    assert sink.connections == 2


async def test_sending_resumes_after_the_server_restarts_on_the_same_port(
    config: Config, sink: Sink
) -> None:
    async with smtp(outbound(config, sink.port)) as transport:
        await transport.send(SENDER, RECIPIENT, message(1))
        await sink.stop()
        async with running_sink(port=sink.port) as restarted:
            await transport.send(SENDER, RECIPIENT, message(2))
        assert restarted.message_ids() == ["<2.invitation@relay.test>"]


async def test_a_pooled_connection_idle_too_long_is_replaced_before_use(
    config: Config, sink: Sink
) -> None:
    async with smtp(outbound(config, sink.port), max_idle=0.05) as transport:
        await transport.send(SENDER, RECIPIENT, message(1))
        await asyncio.sleep(0.1)
        await transport.send(SENDER, RECIPIENT, message(2))
    assert len(sink.messages) == 2
    assert sink.connections == 2


async def test_a_server_that_is_down_is_a_temporary_failure(config: Config) -> None:
    async with running_sink() as sink:
        port = sink.port
    async with smtp(outbound(config, port)) as transport:
        with pytest.raises(TemporaryFailure) as failure:
            await transport.send(SENDER, RECIPIENT, message())
    assert failure.value.reply == f"connection refused by 127.0.0.1:{port}"


async def test_a_server_that_never_answers_times_out_as_a_temporary_failure(
    config: Config,
) -> None:
    async with raw_server(greeting=None) as port:
        settings = outbound(config, port, timeout=timedelta(milliseconds=300))
        async with smtp(settings) as transport:
            with pytest.raises(TemporaryFailure) as failure:
                await transport.send(SENDER, RECIPIENT, message())
    assert "timed out" in failure.value.reply


@pytest.mark.parametrize(
    ("greeting", "kind"),
    [
        (b"421 4.3.2 busy, try later\r\n", TemporaryFailure),
        (b"554 5.7.1 go away\r\n", PermanentFailure),
    ],
)
async def test_a_refusing_greeting_maps_by_its_code(
    config: Config, greeting: bytes, kind: type[Exception]
) -> None:
    async with raw_server(greeting) as port:
        async with smtp(outbound(config, port)) as transport:
            with pytest.raises(kind) as failure:
                await transport.send(SENDER, RECIPIENT, message())
    assert str(failure.value) == greeting.decode().strip()


# --------------------------------------------------------------------------- TLS and AUTH


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


USERS = {"relay": "correct horse"}


async def test_starttls_and_auth_with_the_right_password_delivers(
    config: Config, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    async with running_sink(tls_context=server_tls, users=USERS) as sink:
        settings = outbound(
            config, sink.port, starttls=True, username="relay", password="correct horse"
        )
        async with smtp(settings, tls_context=client_tls) as transport:
            for number in range(2):
                await transport.send(SENDER, RECIPIENT, message(number))
        assert [raw for _, _, raw in sink.messages] == [message(0), message(1)]
        assert sink.connections == 1


async def test_a_wrong_password_is_a_temporary_authentication_failure(
    config: Config, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    async with running_sink(tls_context=server_tls, users=USERS) as sink:
        settings = outbound(config, sink.port, starttls=True, username="relay", password="wrong")
        async with smtp(settings, tls_context=client_tls) as transport:
            with pytest.raises(TemporaryFailure) as failure:
                await transport.send(SENDER, RECIPIENT, message())
        assert failure.value.reply.startswith("authentication failed: 535")
        assert sink.messages == []


async def test_starttls_is_required_when_configured_even_if_the_server_does_not_offer_it(
    config: Config, sink: Sink, client_tls: ssl.SSLContext
) -> None:
    settings = outbound(config, sink.port, starttls=True)
    async with smtp(settings, tls_context=client_tls) as transport:
        with pytest.raises(TemporaryFailure) as failure:
            await transport.send(SENDER, RECIPIENT, message())
    assert "STARTTLS" in failure.value.reply
    assert sink.messages == []


async def test_an_untrusted_certificate_is_a_temporary_tls_failure(
    config: Config, server_tls: ssl.SSLContext
) -> None:
    async with running_sink(tls_context=server_tls) as sink:
        async with smtp(outbound(config, sink.port, starttls=True)) as transport:
            with pytest.raises(TemporaryFailure) as failure:
                await transport.send(SENDER, RECIPIENT, message())
        assert "TLS" in failure.value.reply
        assert "certificate verify failed" in failure.value.reply
        assert sink.messages == []


async def test_implicit_tls_delivers(
    config: Config, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    async with running_sink(tls_context=server_tls, implicit_tls=True) as sink:
        settings = outbound(config, sink.port, tls=True)
        async with smtp(settings, tls_context=client_tls) as transport:
            await transport.send(SENDER, RECIPIENT, message())
        assert [raw for _, _, raw in sink.messages] == [message()]


# --------------------------------------------------------------------------- Maildir


async def test_maildir_writes_one_file_per_message_in_new_with_the_exact_bytes(
    tmp_path: Path,
) -> None:
    transport = MaildirTransport(tmp_path / "outbox")
    results = [await transport.send(SENDER, RECIPIENT, message(n)) for n in range(3)]
    await transport.close()
    files = {path.name: path.read_bytes() for path in (tmp_path / "outbox" / "new").iterdir()}
    assert len(files) == 3
    assert [result.reply.removeprefix("maildir: ") in files for result in results] == [True] * 3
    assert sorted(files.values()) == sorted(message(n) for n in range(3))
    assert list((tmp_path / "outbox" / "tmp").iterdir()) == []


async def test_a_maildir_folder_without_its_subfolders_gets_them_and_takes_the_message(
    tmp_path: Path,
) -> None:
    """An existing empty folder (made by hand, or by an older `mailrelay check`) is not a Maildir
    yet: mailbox.Maildir(create=True) only makes tmp/ new/ cur/ for a folder it creates itself."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    transport = MaildirTransport(outbox)
    await transport.send(SENDER, RECIPIENT, message(1))
    for sub in ("tmp", "new", "cur"):
        assert (outbox / sub).is_dir(), sub
        assert (outbox / sub).stat().st_mode & 0o777 == 0o700, sub
    # Removed while the relay runs (an operator emptying the outbox): made again, not an error.
    for sub in ("tmp", "new", "cur"):
        for item in (outbox / sub).iterdir():
            item.unlink()
        (outbox / sub).rmdir()
    await transport.send(SENDER, RECIPIENT, message(2))
    assert [path.read_bytes() for path in (outbox / "new").iterdir()] == [message(2)]


async def test_an_unwritable_maildir_is_a_temporary_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("a file where the maildir should be")
    with pytest.raises(TemporaryFailure) as failure:
        await MaildirTransport(blocker).send(SENDER, RECIPIENT, message())
    assert str(blocker) in failure.value.reply


async def test_an_address_that_would_smuggle_a_command_is_refused_without_connecting(
    config: Config, sink: Sink
) -> None:
    async with smtp(outbound(config, sink.port)) as transport:
        with pytest.raises(PermanentFailure) as failure:
            await transport.send(SENDER, "john@example.com>\r\nRSET", message())
    assert failure.value.reply.startswith("invalid recipient address")
    assert sink.connections == 0


async def test_a_non_ascii_address_needs_a_server_that_offers_smtputf8(
    config: Config, sink: Sink
) -> None:
    async with smtp(outbound(config, sink.port)) as transport:
        with pytest.raises(PermanentFailure) as failure:
            await transport.send(SENDER, "jürgen@example.de", message())
    assert "SMTPUTF8" in failure.value.reply
    async with running_sink(smtputf8=True) as modern:
        async with smtp(outbound(config, modern.port)) as transport:
            await transport.send(SENDER, "jürgen@example.de", message())
        assert [(rcpts, raw) for _, rcpts, raw in modern.messages] == [
            (["jürgen@example.de"], message())
        ]
