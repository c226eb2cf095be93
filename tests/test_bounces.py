"""Bounces: VERP envelope senders and DSNs (RFC 3464) back at the SMTP listener."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

import aiosmtplib
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.core.tokens import TokenSigner
from mailrelay.store import OutboxRow

from .conftest import ConfigFactory, second_shop
from .mailtools import send, session_send, settle, trigger, via_sink
from .sink import Sink


def undeduped(config: Config, sink: Sink) -> Config:
    """Sending through `sink`, every trigger invited (no dedupe window between the orders)."""
    return via_sink(config, sink, dedupe_window=timedelta(0))


def dsn(rcpt: str, message_id: str, *, status: str = "5.1.1", action: str = "failed") -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        f"To: {rcpt}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-" + status + action + "@mx.example.com>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; john.smith@example.com\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {status[0]}50 {status} mailbox problem\r\n\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: ACME Shoes <reviews@acme.example>\r\nMessage-ID: {message_id}\r\n"
        "Subject: How was your order?\r\n\r\n--b--\r\n"
    ).encode()


async def sent_invitation(daemon: Daemon, clock: FrozenClock, sink: Sink,
                          ref: str = "1057") -> dict[str, object]:
    await send(daemon, trigger(subject=f"Order #{ref}"))
    await settle(daemon)
    clock.advance(timedelta(days=7))
    await daemon.tick()
    mail = daemon.store.read(lambda q: q.list_mail())[-1]
    assert mail.status == "sent"
    # Its own envelope (the latest to its recipient): mail due together leaves over several
    # connections, in any order.
    envelope = [sender for sender, recipients, _ in sink.messages
                if mail.recipient in recipients][-1]
    tag = daemon.web.signer.bounce_tag(mail.id)
    assert envelope == f"bounce+{mail.id}.{tag}@relay.test"
    return {**asdict(mail), "verp": envelope}


async def bounce(daemon: Daemon, envelope: str, raw: bytes) -> None:
    await session_send(daemon, raw, envelope)
    await settle(daemon)


async def returned(daemon: Daemon, mail: dict[str, object], raw: bytes) -> OutboxRow:
    """`raw` sent back to `mail`'s VERP address; `mail`'s outbox row afterwards."""
    await bounce(daemon, str(mail["verp"]), raw)
    row = daemon.store.read(lambda q: q.get_mail(int(str(mail["id"]))))
    assert row is not None
    return row


async def test_hard_bounce_marks_the_invitation_bounced_and_suppresses_the_address(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(undeduped(config, sink), clock) as daemon:
        mail = await sent_invitation(daemon, clock, sink)
        row = await returned(daemon, mail, dsn(str(mail["verp"]), str(mail["message_id"])))
        assert row.status == "bounced" and row.bounce_status == "5.1.1"
        assert daemon.store.read(lambda q: q.is_suppressed("acme", "john.smith@example.com"))
        await sent_invitation_refused(daemon)


async def sent_invitation_refused(daemon: Daemon) -> None:
    await send(daemon, trigger(subject="Order #2222"))
    await settle(daemon)
    assert daemon.store.read(lambda q: q.list_shipments())[-1].status == "suppressed"


async def test_a_report_about_another_message_changes_nothing(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(undeduped(config, sink), clock) as daemon:
        mail = await sent_invitation(daemon, clock, sink)
        row = await returned(daemon, mail, dsn(str(mail["verp"]), "<forged@evil.example>"))
        assert row.status == "sent"
        assert not daemon.store.read(lambda q: q.is_suppressed("acme", "john.smith@example.com"))


async def test_soft_bounces_count_toward_a_threshold(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(undeduped(config, sink), clock) as daemon:
        mails = [await sent_invitation(daemon, clock, sink, ref=f"70{n}") for n in range(3)]
        for n, mail in enumerate(mails):
            await bounce(daemon, str(mail["verp"]),
                         dsn(str(mail["verp"]), str(mail["message_id"]),
                             status="4.2.2", action="delayed"))
            suppressed = daemon.store.read(
                lambda q: q.is_suppressed("acme", "john.smith@example.com"))
            assert suppressed == (n == 2)


async def test_mail_to_a_bounce_address_that_is_not_a_dsn_is_ignored(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(undeduped(config, sink), clock) as daemon:
        mail = await sent_invitation(daemon, clock, sink)
        row = await returned(daemon, mail, trigger(subject="Thanks for the email!"))
        assert row.status == "sent"


async def test_bounce_address_outside_the_reply_domain_is_refused(daemon: Daemon) -> None:
    with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
        await session_send(daemon, b"Subject: x\r\n\r\nx\r\n", "bounce+1@elsewhere.example")
    assert refused.value.code == 550


BOLT = second_shop(**{"from": "Bolt Bikes <hello@bolt.example>"}, agents=["team@bolt.example"])


async def test_only_a_dsn_to_the_signed_verp_address_suppresses_forged_ones_are_refused_at_rcpt(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(undeduped(make_config(more=BOLT), sink), clock) as daemon:
        await send(daemon, trigger(to="Bea <bea@example.org>", subject="Order #880"),
                   "reviews+bolt@relay.test", sender="p@bolt.example")
        acme = await sent_invitation(daemon, clock, sink)
        bolt = next(m for m in daemon.store.read(lambda q: q.list_mail()) if m.shop == "bolt")
        assert bolt.status == "sent"
        acme_id, bolt_id = int(acme["id"]), bolt.id
        signer = daemon.web.signer
        verp = str(acme["verp"])
        local, _, domain = verp.partition("@")
        tag = local.rpartition(".")[2]
        flipped = tag[:-1] + ("a" if tag[-1] != "a" else "b")
        stranger = TokenSigner(b"another relay's secret key, 32+ chars").bounce_tag(acme_id)
        forged = [
            f"bounce+{acme_id}@{domain}",  # unsigned, as sent before issue 10
            f"bounce+{acme_id}.{flipped}@{domain}",  # altered signature
            f"bounce+{bolt_id}.{tag}@{domain}",  # the signature of another message
            f"bounce+{acme_id + 1000}.{tag}@{domain}",
            f"bounce+{acme_id}.{stranger}@{domain}",  # signed with another secret
            f"bounce+{acme_id}.{tag}x@{domain}",
            f"bounce+{acme_id}.@{domain}",
        ]
        for address in forged:
            with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
                await session_send(daemon, dsn(address, str(acme["message_id"])), address)
            assert (refused.value.code, refused.value.message[:5]) == (550, "5.1.1"), address
        # The handler checks again: whatever reaches it unsigned suppresses nobody.
        result = await daemon.bouncer.process(f"bounce+{acme_id}@{domain}",
                                              dsn(verp, str(acme["message_id"])))
        assert result == "bounce address not signed by us; ignored"
        await settle(daemon)
        rows = {m.id: m for m in daemon.store.read(lambda q: q.list_mail())}
        assert rows[acme_id].status == rows[bolt_id].status == "sent"
        pairs = [(shop, email) for shop in ("acme", "bolt")
                 for email in ("john.smith@example.com", "bea@example.org")]
        assert not any(daemon.store.read(lambda q: [q.is_suppressed(*p) for p in pairs]))
        # The real report, to the signed address (some MTAs change its case), is applied.
        assert signer.bounce_valid(acme_id, tag.upper())
        await bounce(daemon, verp.upper(), dsn(verp, str(acme["message_id"])))
        rows = {m.id: m for m in daemon.store.read(lambda q: q.list_mail())}
        assert rows[acme_id].status == "bounced" and rows[bolt_id].status == "sent"
        assert daemon.store.read(lambda q: q.is_suppressed("acme", "john.smith@example.com"))
        assert not daemon.store.read(lambda q: q.is_suppressed("bolt", "bea@example.org"))
