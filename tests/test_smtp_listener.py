"""The inbound SMTP listener against real clients (aiosmtplib, smtplib, raw sockets)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import smtplib
import ssl
from datetime import timedelta
from pathlib import Path

import aiosmtplib
import pytest

from mailrelay.app import Daemon
from mailrelay.core.clock import FrozenClock
from mailrelay.core.errors import StoreError
from mailrelay.store import NewMessage, Queries

from .conftest import ConfigFactory
from .mailtools import raw_smtp, send, settle, trigger

BCC = "reviews+acme@relay.test"


async def test_bcc_to_shop_address_is_answered_250_and_becomes_a_scheduled_shipment(
    daemon: Daemon, clock: FrozenClock
) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port) as client:
        errors, reply = await client.sendmail("platform@shop.example", [BCC], trigger())
    assert errors == {}
    assert reply.startswith("2.0.0 OK: queued as")
    # The raw message is on disk the moment 250 was answered.
    assert daemon.store.read(lambda q: q.count_messages()) == 1
    await settle(daemon)
    [row] = daemon.store.read(lambda q: q.list_shipments())
    assert row.customer_email == "john.smith@example.com"
    assert row.reference == "1057"
    assert row.status == "scheduled"
    [inv] = daemon.store.read(lambda q: q.list_invitations())
    assert str(inv.due_at).startswith((clock.now() + timedelta(days=7)).date().isoformat())


async def test_unknown_recipient_is_refused_with_550_5_1_1(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port) as client:
        await client.mail("platform@shop.example")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await client.rcpt("someone@elsewhere.example")
    assert refused.value.code == 550
    assert "5.1.1" in refused.value.message
    assert daemon.store.read(lambda q: q.count_messages()) == 0
    # The log shows the refused domain, never the person's address (issue 10 §6).
    [line] = [r.getMessage() for r in caplog.records if "rcpt rejected" in r.getMessage()]
    assert "@elsewhere.example" in line and "someone" not in line


async def test_only_the_configured_recipients_of_a_mixed_envelope_are_accepted(
    daemon: Daemon,
) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port) as client:
        errors, _ = await client.sendmail(
            "platform@shop.example", [BCC, "victim@elsewhere.example"], trigger()
        )
    assert set(errors) == {"victim@elsewhere.example"}
    assert daemon.store.read(lambda q: q.count_messages()) == 1


async def test_message_over_max_message_size_is_refused_with_552(daemon: Daemon) -> None:
    big = trigger(body="x" * 70 + ("\n" + "y" * 70) * 1200)  # ~85 KB > 64KB limit
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await send(daemon, big)
    assert refused.value.code == 552
    assert daemon.store.read(lambda q: q.count_messages()) == 0


async def test_client_outside_allowed_clients_is_refused_with_554(
    make_config: ConfigFactory, clock: FrozenClock
) -> None:
    config = make_config(smtp_extra='allowed_clients = ["10.9.8.0/24"]')
    async with Daemon(config, clock) as daemon:
        with pytest.raises(aiosmtplib.SMTPConnectResponseError) as refused:
            await send(daemon, trigger())
        assert refused.value.code == 554
        assert daemon.store.read(lambda q: q.count_messages()) == 0


async def test_client_inside_allowed_clients_is_served(
    make_config: ConfigFactory, clock: FrozenClock
) -> None:
    config = make_config(smtp_extra='allowed_clients = ["127.0.0.0/8"]')
    async with Daemon(config, clock) as daemon:
        await send(daemon, trigger())
        assert daemon.store.read(lambda q: q.count_messages()) == 1


async def test_error_while_storing_answers_451_and_stores_nothing_partial(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Queries.insert_message

    def fail_on_second(self: Queries, msg: NewMessage) -> int | None:
        if msg.rcpt == "cancel+acme@relay.test":
            raise RuntimeError("disk on fire: secret internal detail")
        return original(self, msg)

    monkeypatch.setattr(Queries, "insert_message", fail_on_second)
    with pytest.raises(aiosmtplib.SMTPResponseException) as deferred:
        await send(daemon, trigger(), BCC, "cancel+acme@relay.test")
    assert deferred.value.code == 451
    assert "4.3.0" in deferred.value.message
    assert "secret internal detail" not in deferred.value.message
    # The first recipient's row was rolled back with the second's failure.
    monkeypatch.setattr(Queries, "insert_message", original)
    assert daemon.store.read(lambda q: q.count_messages()) == 0


async def test_a_full_disk_defers_each_message_with_one_log_line_and_no_traceback(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk is an operating condition, not a bug: the platform retries every few
    minutes, and each 451 once wrote a 12-line traceback (issue 10 §6, found from outside)."""

    def disk_full(self: Queries, msg: NewMessage) -> int | None:
        raise StoreError("commit failed: database or disk is full")

    monkeypatch.setattr(Queries, "insert_message", disk_full)
    caplog.set_level(logging.INFO, logger="mailrelay.smtp_server")
    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPResponseException) as deferred:
            await send(daemon, trigger())
        assert deferred.value.code == 451
    lines = [r for r in caplog.records if r.name == "mailrelay.smtp_server"
             and "451" in r.getMessage()]
    assert len(lines) == 2, [r.getMessage() for r in lines]
    assert all(r.exc_info is None and r.levelno == logging.WARNING for r in lines)
    assert "disk is full" in lines[0].getMessage()


async def test_session_error_outside_data_answers_451_without_internal_text(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object, address: str) -> None:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(type(daemon.intake.recipients), "route", broken)
    replies = await asyncio.to_thread(
        raw_smtp, daemon.smtp_port,
        [b"EHLO client\r\n", b"MAIL FROM:<a@b.example>\r\n", b"RCPT TO:<" + BCC.encode() + b">\r\n",
         b"QUIT\r\n"],
    )
    assert any(r.startswith(b"451 4.3.0") for r in replies)
    assert not any(b"internal detail" in r for r in replies)


@pytest.mark.parametrize(
    "smuggled",
    [
        b"\n.\r\n",  # <LF>.<CR><LF>
        b"\r\n.\n",  # <CR><LF>.<LF>
        b"\r.\r",  # <CR>.<CR>
        b"\n.\n",  # bare LF dot
        b"\r\n.\r",  # <CR><LF>.<CR>
    ],
    ids=["lf-dot-crlf", "crlf-dot-lf", "cr-dot-cr", "lf-dot-lf", "crlf-dot-cr"],
)
async def test_smtp_smuggling_sequences_never_produce_a_second_message(
    daemon: Daemon, smuggled: bytes
) -> None:
    first = (
        b"From: shop@acme.example\r\nTo: john@example.com\r\nSubject: Order #1001\r\n"
        b"Message-ID: <first@platform.example>\r\n\r\nfirst body"
    )
    hidden = (
        b"MAIL FROM:<attacker@evil.example>\r\nRCPT TO:<" + BCC.encode() + b">\r\nDATA\r\n"
        b"From: attacker@evil.example\r\nTo: mallory@evil.example\r\nSubject: Order #6666\r\n"
        b"Message-ID: <smuggled@evil.example>\r\n\r\nsmuggled\r\n"
    )
    lines = [
        b"EHLO client\r\n",
        b"MAIL FROM:<platform@shop.example>\r\n",
        b"RCPT TO:<" + BCC.encode() + b">\r\n",
        b"DATA\r\n",
        first + smuggled + hidden + b"\r\n.\r\n",
        b"QUIT\r\n",
    ]
    replies = await asyncio.to_thread(raw_smtp, daemon.smtp_port, lines)
    assert sum(1 for r in replies if r.startswith(b"250 2.0.0")) <= 1
    await settle(daemon)
    rows = daemon.store.read(lambda q: q.list_shipments())
    assert len(rows) <= 1
    assert all(r.message_id != "<smuggled@evil.example>" for r in rows)
    assert all(r.customer_email != "mallory@evil.example" for r in rows)


async def test_sessions_beyond_max_sessions_get_421(
    make_config: ConfigFactory, clock: FrozenClock
) -> None:
    # All from 127.0.0.1: allow them all of it (the per-client default is half).
    config = make_config(smtp_extra="max_sessions = 2\nmax_sessions_per_client = 2")
    async with Daemon(config, clock) as daemon:
        clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port) for _ in range(2)]
        for client in clients:
            await client.connect()
        with pytest.raises(aiosmtplib.SMTPConnectResponseError) as refused:
            await send(daemon, trigger())
        assert refused.value.code == 421
        await clients[0].quit()
        await asyncio.sleep(0.05)
        await send(daemon, trigger())  # a slot is free again
        await clients[1].quit()


async def test_shutdown_answers_421_to_open_sessions_and_keeps_accepted_mail(
    config: object, clock: FrozenClock
) -> None:
    daemon = Daemon(config, clock)  # type: ignore[arg-type]
    await daemon.start()
    await send(daemon, trigger(message_id="<kept@platform.example>"))
    idle = aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port)
    await idle.connect()
    await idle.ehlo()
    await daemon.stop()
    with pytest.raises(aiosmtplib.SMTPException) as closed:
        await idle.mail("platform@shop.example")
    assert "421" in str(closed.value) or isinstance(closed.value, aiosmtplib.SMTPServerDisconnected)
    # Restart on the same store: the accepted message is there and gets processed.
    async with Daemon(config, clock) as again:  # type: ignore[arg-type]
        await settle(again)
        rows = again.store.read(lambda q: q.list_shipments())
        assert [r.message_id for r in rows] == ["<kept@platform.example>"]


async def test_retried_message_is_stored_once_and_yields_one_invitation(daemon: Daemon) -> None:
    raw = trigger(message_id="<retry@platform.example>")
    await send(daemon, raw)
    await send(daemon, raw)  # a client that never saw our 250 sends it again
    await settle(daemon)
    assert daemon.store.read(lambda q: q.count_messages()) == 1
    assert daemon.store.read(lambda q: q.count_invitations()) == 1


async def test_plain_smtplib_client_can_deliver_a_trigger(daemon: Daemon) -> None:
    def deliver() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=10) as client:
            return client.sendmail("platform@shop.example", [BCC], trigger())

    assert await asyncio.to_thread(deliver) == {}
    await settle(daemon)
    assert daemon.store.read(lambda q: q.count_shipments()) == 1


async def test_starttls_is_offered_and_a_trigger_is_accepted_over_tls(
    make_config: ConfigFactory, clock: FrozenClock, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    config = make_config(smtp_extra=f'tls_cert = "{cert}"\ntls_key = "{key}"')
    client_tls = ssl.create_default_context(cafile=str(cert))
    async with Daemon(config, clock) as daemon:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port,
                                 start_tls=False, tls_context=client_tls)
        async with client:
            await client.ehlo()
            assert client.supports_extension("starttls")
            await client.starttls()
            errors, _ = await client.sendmail("platform@shop.example", [BCC], trigger())
        assert errors == {}
        assert daemon.store.read(lambda q: q.count_messages()) == 1


async def test_ehlo_offers_auth_only_when_logins_can_succeed(daemon: Daemon) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port,
                               start_tls=False) as client:
        await client.ehlo()
        assert not client.supports_extension("auth")
        assert client.supports_extension("size")
        errors, _ = await client.sendmail("platform@shop.example", [BCC], trigger())
    assert errors == {}


async def test_require_auth_refuses_mail_until_the_client_logs_in(
    make_config: ConfigFactory, clock: FrozenClock, tmp_path: Path
) -> None:
    users = tmp_path / "smtp-users"
    digest = hashlib.sha256(b"s3cret pass").hexdigest()
    users.write_text(f"# platform account\nplatform:{{SHA256}}{digest}\n")
    config = make_config(smtp_extra=f'require_auth = true\nusers_file = "{users}"')
    async with Daemon(config, clock) as daemon:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port,
                                   start_tls=False) as client:
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
                await client.sendmail("platform@shop.example", [BCC], trigger())
            assert refused.value.code == 530
            with pytest.raises(aiosmtplib.SMTPAuthenticationError):
                await client.login("platform", "wrong")
            assert client.supports_extension("auth")
            await client.login("platform", "s3cret pass")
            errors, _ = await client.sendmail("platform@shop.example", [BCC], trigger())
        assert errors == {}
        assert daemon.store.read(lambda q: q.count_messages()) == 1


@pytest.mark.parametrize(
    "arg",
    ["<a@b.example>", "<first.last+tag@sub.example.com> SIZE=300",
     " <a@b.example>  BODY=8BITMIME", '<"quoted local"@b.example>', "<a@[127.0.0.1]>",
     "<a..b@c.example>", "a@b.example", "<" + "x" * 70 + "@b.example>"],
)
def test_fast_address_parsing_agrees_with_aiosmtpd(arg: str) -> None:
    from aiosmtpd.smtp import SMTP

    from mailrelay.edges.smtp_server import GatedSMTP

    class Limits:
        local_part_limit = 64

    assert GatedSMTP._getaddr(Limits(), arg) == SMTP._getaddr(Limits(), arg)  # type: ignore[arg-type]
