"""Regressions found by the fault and fuzz suite (tests/test_fuzz_*.py), in the fast suite:
each is one hostile input that once crashed, lost or silently refused something."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import time
from zoneinfo import ZoneInfo

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.parsing import parse_reply, parse_trigger

from .conftest import ConfigFactory
from .hostile_mail import Case, block_trigger, deliver, valid_block
from .mailtools import drain, settle, via_sink
from .sink import Sink
from .tickets import agent_reply, ticketed

BCC = "reviews+acme@relay.test"


def test_a_reply_whose_message_id_holds_raw_8bit_bytes_reads_as_storable_text() -> None:
    raw = (b"From: Support <support@acme.example>\r\nTo: reply+k@relay.test\r\n"
           b"Message-ID: <17964.38406\xe2\x80\x00x@acme.example>\r\n"
           b"In-Reply-To: <t\xff1@relay.test>\r\nReferences: <t\xfe2@relay.test>\r\n"
           b"Subject: Re: ticket\r\n\r\nThanks!\r\n")
    reply = parse_reply(raw)
    assert reply.message_id is not None and "17964.38406" in reply.message_id
    for text in (reply.message_id, *reply.in_reply_to):
        text.encode("utf-8")  # what SQLite needs of a bound parameter
    assert len(reply.in_reply_to) == 2


async def test_an_agent_reply_with_an_8bit_message_id_over_smtp_is_published_not_failed(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        raw = agent_reply(t, "We have refunded the shipping.")
        start = raw.index(b"Message-ID: <") + len(b"Message-ID: <")
        raw = raw[:start] + b"\xe2\x80" + raw[start:]
        answer = await deliver(daemon.smtp_port, Case("8bit-mid", raw, (t.reply_to,),
                                                      mail_from="support@acme.example"))
        assert answer.code == 250
        await settle(daemon)
        await drain(daemon)
        [(result,)] = daemon.store.read(lambda q: q.conn.execute(
            "SELECT result FROM messages WHERE kind = 'reply'").fetchall())
        assert result.startswith("reply: published"), result
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None and review.response == "We have refunded the shipping."


@pytest.mark.parametrize(("payload", "code"), [
    (b"Subject: x\r\n\r\n" + b"a" * 1200 + b"\r\n.\r\n", 500),  # a line over 1000 octets
    (b"Subject: x\r\n\r\n" + (b"b" * 900 + b"\r\n") * 80 + b".\r\n", 552),  # over 64 KB
])
async def test_a_refused_message_has_a_log_line_naming_the_client(
    daemon: Daemon, caplog: pytest.LogCaptureFixture, payload: bytes, code: int
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    answer = await deliver(daemon.smtp_port, Case("refused", payload, (BCC,), verbatim=True))
    assert answer.code == code
    lines = [r.getMessage() for r in caplog.records if r.name == "mailrelay.smtp_server"]
    assert any(f"peer=127.0.0.1:{answer.local_port}" in line and str(code) in line
               for line in lines), lines
    assert daemon.store.read(lambda q: q.count_messages()) == 0


async def test_a_mail_parameter_refused_by_the_listener_has_a_log_line(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    answer = await deliver(daemon.smtp_port, Case("param", b"", (BCC,), verbatim=True,
                                                  mail_options=("BODY=BINARYMIME",)))
    assert answer.code == 501
    assert any(f"peer=127.0.0.1:{answer.local_port}" in r.getMessage()
               for r in caplog.records if r.name == "mailrelay.smtp_server")


async def test_control_bytes_in_an_agent_reply_never_reach_the_page_or_the_customer(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        raw = agent_reply(t, "We have refunded\x00 the shipping.\x07\x1b[31m").replace(
            b"Content-Transfer-Encoding: 7bit", b"Content-Transfer-Encoding: 8bit")
        answer = await deliver(daemon.smtp_port, Case("controls", raw, (t.reply_to,),
                                                      mail_from="support@acme.example"))
        assert answer.code == 250
        await settle(daemon)
        await drain(daemon)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None
        assert review.response == "We have refunded the shipping.[31m"
        customer = [m for _, rcpts, m in sink.messages if rcpts == ["ann@example.com"]]
        assert customer and not any(c in customer[-1] for c in (b"\x00", b"\x07", b"\x1b"))


def test_a_send_time_in_year_9999_is_a_defect_not_a_send_time() -> None:
    block = valid_block(1).replace("2026-12-10T09:30:00+01:00", "9999-12-31T23:59:59")
    notice = parse_trigger(block_trigger(1, block))
    assert notice.send_at is None
    assert any("preferredSendTime" in d for d in notice.defects)
    assert notice.reference == "B-1"


async def test_a_trigger_asking_for_year_9999_is_scheduled_in_a_shop_east_of_utc(
    make_config: ConfigFactory, clock: FrozenClock
) -> None:
    """Moving 9999-12-31 into Kiritimati (UTC+14) and its sending hours overflowed, and the
    accepted shipment ended as 'failed' with no shipment row."""
    config = make_config()
    config = replace(config, shops=tuple(
        replace(s, send_hours=(time(9), time(17)), timezone=ZoneInfo("Pacific/Kiritimati"))
        for s in config.shops))
    async with Daemon(config, clock) as daemon:
        block = valid_block(1).replace("2026-12-10T09:30:00+01:00", "9999-12-31T23:59:59")
        answer = await deliver(daemon.smtp_port, Case("far", block_trigger(1, block), (BCC,)))
        assert answer.code == 250
        await settle(daemon)
        [row] = daemon.store.read(lambda q: q.list_shipments())
        assert row.status == "scheduled"
        [(result,)] = daemon.store.read(lambda q: q.conn.execute(
            "SELECT result FROM messages").fetchall())
        assert not result.startswith("failed"), result


@pytest.mark.parametrize("options", [(), ("SMTPUTF8",)])
async def test_an_envelope_address_that_is_not_utf8_is_refused_553_not_deferred_forever(
    daemon: Daemon, caplog: pytest.LogCaptureFixture, options: tuple[str, ...]
) -> None:
    """Its lone surrogates made the commit fail: 451 on every retry, with a traceback."""
    caplog.set_level(logging.INFO, logger="mailrelay")
    raw = b"Subject: x\r\n\r\nOrder #1.\r\n.\r\n"
    for case in (Case("sender", raw, (BCC,), mail_from="pl\udcff@shop.example",
                      mail_options=options, verbatim=True),
                 Case("rcpt", raw, (BCC.replace("@", "\udcfe@"),), mail_options=options,
                      verbatim=True)):
        answer = await deliver(daemon.smtp_port, case)
        assert answer.code == 553, answer.text
        assert any(f"peer=127.0.0.1:{answer.local_port}" in r.getMessage()
                   for r in caplog.records if r.name == "mailrelay.smtp_server")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert daemon.store.read(lambda q: q.count_messages()) == 0
