"""Invitations out: clock, outbox, delivery to a real aiosmtpd sink, reminders, unsubscribe."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.store import InvitationRow, MailListing

from .cli_runner import cli
from .conftest import ConfigFactory, require_corpus
from .mailtools import eventually, parsed, send, settle, text_of, trigger, via_sink
from .sink import Sink
from .web_forms import submit


async def send_trigger(daemon: Daemon, raw: bytes) -> None:
    await send(daemon, raw)
    await settle(daemon)




def link(text: str, kind: str) -> str:
    match = re.search(rf"http://reviews\.test/{kind}/[A-Za-z0-9_-]+", text)
    assert match, text
    return match.group(0)


def local_url(daemon: Daemon, url: str) -> str:
    return url.replace("http://reviews.test", f"http://127.0.0.1:{daemon.http_port}")


def outbox(daemon: Daemon) -> list[MailListing]:
    return daemon.store.read(lambda q: q.list_mail())


def invitation(daemon: Daemon) -> InvitationRow:
    [row] = daemon.store.read(lambda q: q.list_invitations())
    return row


async def test_invitation_arrives_after_invite_delay_with_working_links_and_headers(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        await send_trigger(daemon, trigger(to="John Smith <john.smith@example.com>"))
        clock.advance(timedelta(days=6, hours=23))
        assert await daemon.tick() == 0
        assert sink.messages == []
        clock.advance(timedelta(hours=1))
        assert await daemon.tick() == 1
        await sink.wait_for(1)
        mail_from, rcpts, raw = sink.messages[0]
        assert rcpts == ["john.smith@example.com"]
        outbox_id = outbox(daemon)[0].id
        tag = daemon.web.signer.bounce_tag(outbox_id)
        assert mail_from == f"bounce+{outbox_id}.{tag}@relay.test"  # signed VERP (issue 10)
        msg = parsed(raw)
        assert msg["To"] == "John Smith <john.smith@example.com>"
        assert msg["From"] == "ACME Shoes <reviews@acme.example>"
        assert msg["Reply-To"] == "ACME Shoes <reviews@acme.example>"
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["Message-ID"].endswith("@relay.test>")
        body = text_of(msg)
        assert "John" in body
        review = link(body, "r")
        unsubscribe = link(msg["List-Unsubscribe"], "u")
        assert review.split("/r/")[1] != unsubscribe.split("/u/")[1]
        row = invitation(daemon)
        assert row.status == "sent"
        assert row.sent_at is not None
        assert review.endswith(row.token)
        # The unsubscribe link works: GET shows a confirmation, it does not unsubscribe.
        async with aiohttp.ClientSession() as http:
            async with http.get(local_url(daemon, unsubscribe)) as resp:
                assert resp.status == 200
                assert "Unsubscribe" in await resp.text()
        assert not daemon.store.read(lambda q: q.is_suppressed("acme", "john.smith@example.com"))


@pytest.mark.parametrize(
    ("case", "language_word"),
    [("trustpilot_snippet", "Bewertung"), ("shipmondo_da", "anmeldelse")],
)
async def test_invitation_is_rendered_in_the_customers_language(
    config: Config, clock: FrozenClock, sink: Sink, case: str, language_word: str
) -> None:
    shop_locale = "da" if case.endswith("_da") else "en"
    async with Daemon(via_sink(config, sink, locale=shop_locale), clock) as daemon:
        await send_trigger(daemon, require_corpus("triggers", f"{case}.eml").read_bytes())
        clock.advance(timedelta(days=7))
        await daemon.tick()
        await sink.wait_for(1)
        msg = parsed(sink.messages[0][2])
        assert language_word.lower() in (text_of(msg) + msg["Subject"]).lower()


async def test_send_hours_and_timezone_hold_the_invitation_until_morning(
    config: Config, sink: Sink
) -> None:
    from datetime import time
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/Copenhagen")
    clock = FrozenClock(datetime(2026, 11, 20, 21, 30, tzinfo=UTC))  # 22:30 local
    cfg = via_sink(config, sink, send_hours=(time(8), time(20)), timezone=tz)
    async with Daemon(cfg, clock) as daemon:
        await send_trigger(daemon, trigger())
        clock.advance(timedelta(days=7))
        assert await daemon.tick() == 0
        clock.set(datetime(2026, 11, 28, 7, 0, tzinfo=UTC))  # 08:00 in Copenhagen
        assert await daemon.tick() == 1
        await sink.wait_for(1)


async def test_temporary_failures_are_retried_with_backoff_and_sent_once(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        await send_trigger(daemon, trigger())
        clock.advance(timedelta(days=7))
        sink.fail_next("421 4.3.0 try again later", at="MAIL")
        sink.fail_next("451 4.7.1 greylisted", at="RCPT")
        await daemon.tick()
        [row] = outbox(daemon)
        assert row.status == "queued" and row.attempts == 1
        assert "421" in str(row.last_error)
        assert await daemon.tick() == 0  # backoff: not due yet
        clock.advance(timedelta(minutes=1))
        await daemon.tick()
        assert outbox(daemon)[0].attempts == 2
        clock.advance(timedelta(minutes=5))
        await daemon.tick()
        await sink.wait_for(1)
        [row] = outbox(daemon)
        assert row.status == "sent" and row.attempts == 3
        assert invitation(daemon).status == "sent"
        assert len(sink.messages) == 1


async def test_connection_dropped_mid_data_is_retried_and_delivered(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        await send_trigger(daemon, trigger())
        clock.advance(timedelta(days=7))
        sink.drop_next()
        await daemon.tick()
        assert outbox(daemon)[0].status == "queued"
        clock.advance(timedelta(minutes=1))
        await daemon.tick()
        await sink.wait_for(1)
        # The daemon's own dispatcher may have taken the retry before this tick did: the
        # sink has the message before its sender records the 250.
        await eventually(lambda: outbox(daemon)[0].status == "sent", what="the retry settled")


async def test_permanent_failure_fails_at_once_with_the_servers_reply(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        await send_trigger(daemon, trigger())
        clock.advance(timedelta(days=7))
        sink.fail_next("550 5.1.1 no such user", at="RCPT")
        await daemon.tick()
        [row] = outbox(daemon)
        assert row.status == "failed"
        assert "550 5.1.1 no such user" in str(row.last_error)
        assert invitation(daemon).status == "failed"
        clock.advance(timedelta(days=1))
        assert await daemon.tick() == 0
        assert sink.messages == []


async def test_server_down_is_retried_until_it_returns(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        await send_trigger(daemon, trigger())
        await sink.stop()
        clock.advance(timedelta(days=7))
        await daemon.tick()
        assert outbox(daemon)[0].status == "queued"
        await sink.start()
        clock.advance(timedelta(minutes=1))
        await daemon.tick()
        await sink.wait_for(1)
        assert outbox(daemon)[0].status == "sent"


async def test_delivery_gives_up_after_five_days_of_temporary_failures(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        await send_trigger(daemon, trigger())
        clock.advance(timedelta(days=7))
        sink.fail_next("451 4.3.0 busy", times=1000, at="MAIL")
        await daemon.tick()
        for _ in range(40):
            clock.advance(timedelta(hours=4))
            await daemon.tick()
        [row] = outbox(daemon)
        assert row.status == "failed"
        assert "gave up" in str(row.last_error)
        assert invitation(daemon).status == "failed"
        assert sink.messages == []


async def test_one_click_unsubscribe_suppresses_and_cancels_pending_mail(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    cfg = via_sink(config, sink, dedupe_window=timedelta(0), reminder_after=timedelta(days=5))
    async with Daemon(cfg, clock) as daemon:
        await send_trigger(daemon, trigger(subject="Order #1001"))
        clock.advance(timedelta(days=7))
        await daemon.tick()
        await sink.wait_for(1)
        await send_trigger(daemon, trigger(subject="Order #1002"))  # a second order, pending
        unsubscribe = link(parsed(sink.messages[0][2])["List-Unsubscribe"], "u")
        async with aiohttp.ClientSession() as http:
            async with http.post(local_url(daemon, unsubscribe),
                                 data={"List-Unsubscribe": "One-Click"}) as resp:
                assert resp.status == 200
        assert daemon.store.read(lambda q: q.is_suppressed("acme", "john.smith@example.com"))
        rows = {r.reference: r for r in daemon.store.read(lambda q: q.list_invitations())}
        assert rows["1002"].status == "cancelled"
        assert rows["1001"].reminder_due_at is None
        clock.advance(timedelta(days=10))
        await daemon.tick()
        assert len(sink.messages) == 1  # neither the reminder nor the second invitation


async def test_forged_unsubscribe_token_is_refused(daemon: Daemon) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{daemon.http_port}/u/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        async with http.post(url) as resp:
            assert resp.status == 404


async def test_reminder_goes_once_after_reminder_after_when_no_review(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    cfg = via_sink(config, sink, reminder_after=timedelta(days=5))
    async with Daemon(cfg, clock) as daemon:
        await send_trigger(daemon, trigger())
        clock.advance(timedelta(days=7))
        await daemon.tick()
        clock.advance(timedelta(days=4))
        assert await daemon.tick() == 0
        clock.advance(timedelta(days=1))
        # This tick or the daemon's own dispatcher (its poll may come first) sends it.
        await daemon.tick()
        await sink.wait_for(2)
        await eventually(lambda: [r.status for r in outbox(daemon)] == ["sent", "sent"],
                         what="the reminder sent")
        clock.advance(timedelta(days=30))
        assert await daemon.tick() == 0
        assert len(sink.messages) == 2
        kinds = [r.kind for r in outbox(daemon)]
        assert kinds == ["invitation", "reminder"]
        first, second = (parsed(m[2]) for m in sink.messages)
        assert first["Message-ID"] != second["Message-ID"]


async def test_cancelled_invitation_is_never_sent(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        await send_trigger(daemon, trigger(subject="Order #3001"))
        await send(daemon, trigger(subject="cancel #3001"), "cancel+acme@relay.test")
        await settle(daemon)
        clock.advance(timedelta(days=8))
        assert await daemon.tick() == 0
        assert sink.messages == []


async def test_a_cancel_mail_after_sending_cancels_the_pending_reminder_and_says_so(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    cfg = via_sink(config, sink, reminder_after=timedelta(days=5))
    async with Daemon(cfg, clock) as daemon:
        await send_trigger(daemon, trigger(subject="Order #3101"))
        clock.advance(timedelta(days=7))
        await daemon.tick()
        await sink.wait_for(1)
        assert invitation(daemon).reminder_due_at is not None
        await send(daemon, trigger(subject="cancel #3101"), "cancel+acme@relay.test")
        await settle(daemon)
        row = invitation(daemon)
        assert (row.status, row.reminder_due_at) == ("sent", None)
        assert "reminder cancelled by message" in (row.reason or ""), row.reason
        [shipment] = daemon.store.read(lambda q: q.list_shipments())
        assert "reminder cancelled by message" in (shipment.reason or ""), shipment.reason
        [(result,)] = daemon.store.read(lambda q: q.conn.execute(
            "SELECT result FROM messages WHERE kind = 'cancel'").fetchall())
        assert "cancelled the pending reminder of invitation(s) 1" in result, result
        clock.advance(timedelta(days=10))
        await daemon.tick()
        assert [r.kind for r in outbox(daemon)] == ["invitation"]


async def test_invitations_cancel_after_sending_cancels_a_reminder_already_queued(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    cfg = via_sink(config, sink, reminder_after=timedelta(days=5))
    async with Daemon(cfg, clock) as daemon:
        await send_trigger(daemon, trigger(subject="Order #3201"))
        clock.advance(timedelta(days=7))
        await daemon.tick()
        await sink.wait_for(1)
        clock.advance(timedelta(days=5))
        await daemon.inviter.queue_due()  # the reminder is rendered, not sent: the relay stops
    code, output = cli(cfg, "invitations", "cancel", "--ref", "3201")
    assert code == 0, output
    assert "cancelled the pending reminder of invitation(s) 1" in output, output
    async with Daemon(cfg, clock) as daemon:
        await daemon.tick()
        assert [(r.kind, r.status) for r in outbox(daemon)] == [
            ("invitation", "sent"), ("reminder", "cancelled")]
        assert "reminder cancelled by operator" in (invitation(daemon).reason or "")
    assert len(sink.messages) == 1


async def test_mail_left_sending_by_a_crash_is_resent_byte_identically(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    cfg = via_sink(config, sink)
    async with Daemon(cfg, clock) as daemon:
        await send_trigger(daemon, trigger())
        clock.advance(timedelta(days=7))
        await daemon.inviter.queue_due()
        # Simulate a crash after the claim: the row is left in `sending`.
        claimed = await daemon.store.write(
            lambda q: q.claim_due_mail(clock.now(), 10, relay=daemon.relay_id))
        assert len(claimed) == 1
    async with Daemon(cfg, clock) as again:
        await again.tick()
        await sink.wait_for(1)
        assert sink.messages[0][2].replace(b"\r\n", b"\n").rstrip() == (
            claimed[0].raw).replace(b"\r\n", b"\n").rstrip()


async def test_maildir_transport_writes_the_invitation_a_person_can_open(
    make_config: ConfigFactory, clock: FrozenClock
) -> None:
    config = make_config()
    async with Daemon(config, clock) as daemon:
        await send_trigger(daemon, trigger())
        clock.advance(timedelta(days=7))
        await daemon.tick()
    files = list(config.outbound.maildir.joinpath("new").iterdir())
    assert len(files) == 1
    msg = parsed(files[0].read_bytes())
    assert "http://reviews.test/r/" in text_of(msg)


def block_trigger(payload: dict[str, object], sender: str = "Shopify <mailer@platform.example>",
                  ) -> bytes:
    """A shipping mail carrying a structured block (the Trustpilot AFS pattern)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "Archive <archive@acme.example>"
    msg["Subject"] = "Order PT-77120 shipped"
    msg["Message-ID"] = make_msgid(domain="platform.example")
    msg.set_content("<p>Shipped.</p><script type=\"application/json+mailrelay\">"
                    f"{json.dumps(payload)}</script>", subtype="html")
    return msg.as_bytes()


async def test_the_blocks_sender_name_reply_to_and_tags_reach_invitation_reminder_and_review(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    # Issue 12: the block's senderName, replyTo and tags were parsed, stored and dropped.
    payload = {"recipientEmail": "ana@example.pt", "recipientName": "Ana Silva",
               "referenceId": "PT-77120", "senderName": "ACME Portugal",
               "replyTo": "Help@Acme.example", "tags": ["portugal", "b2c"]}
    cfg = via_sink(config, sink, reminder_after=timedelta(days=5))
    async with Daemon(cfg, clock) as daemon:
        await send_trigger(daemon, block_trigger(payload))
        clock.advance(timedelta(days=7))
        await daemon.tick()
        clock.advance(timedelta(days=5))
        await daemon.tick()
        await sink.wait_for(2)
        for _from, _rcpts, raw in sink.messages:  # the invitation, then its reminder
            msg = parsed(raw)
            assert msg["From"] == "ACME Portugal <reviews@acme.example>"
            assert msg["Reply-To"] == "help@acme.example"
        async with aiohttp.ClientSession() as http:
            status, _html = await submit(http, daemon, invitation(daemon).token)
        assert status == 200
        [review] = daemon.store.read(lambda q: q.list_reviews())
        assert review.tags == ["b2c", "portugal"]


async def test_without_a_sender_name_the_shops_own_from_stays(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    # The trigger's own From name ("Shopify") is the platform's, not the shop's.
    payload = {"recipientEmail": "ana@example.pt", "referenceId": "PT-77121"}
    async with Daemon(via_sink(config, sink), clock) as daemon:
        await send_trigger(daemon, block_trigger(payload))
        await send_trigger(daemon, trigger(sender="Shopify <mailer@platform.example>",
                                           subject="Order #1058 shipped"))
        clock.advance(timedelta(days=7))
        await daemon.tick()
        await sink.wait_for(2)
        for _from, _rcpts, raw in sink.messages:
            msg = parsed(raw)
            assert msg["From"] == "ACME Shoes <reviews@acme.example>"
            assert msg["Reply-To"] == "ACME Shoes <reviews@acme.example>"


async def test_a_blocks_reply_to_outside_the_shops_domain_is_honoured_only_with_trigger_senders(
    config: Config, clock: FrozenClock, sink: Sink, make_config: ConfigFactory
) -> None:
    """Anyone who learns the BCC address can send a block: a foreign replyTo would collect
    the shop's customers' replies, unless the shop says who may trigger."""
    payload = {"recipientEmail": "ana@example.pt", "referenceId": "PT-77130",
               "replyTo": "orders@collector.example"}
    async with Daemon(via_sink(config, sink), clock) as daemon:
        await send_trigger(daemon, block_trigger(payload))
        clock.advance(timedelta(days=7))
        await daemon.tick()
        await sink.wait_for(1)
        assert parsed(sink.messages[0][2])["Reply-To"] == "ACME Shoes <reviews@acme.example>"
    sink.messages.clear()
    trusted = make_config(shop_extra='trigger_senders = ["mailer@platform.example"]')
    async with Daemon(via_sink(trusted, sink), clock) as daemon:
        await send_trigger(daemon, block_trigger({**payload, "referenceId": "PT-77131",
                                                  "recipientEmail": "rui@example.pt"}))
        clock.advance(timedelta(days=7))
        await daemon.tick()
        await sink.wait_for(1)
        assert parsed(sink.messages[0][2])["Reply-To"] == "orders@collector.example"
