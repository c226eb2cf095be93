"""Regressions found by the fault and fuzz suite (tests/test_fuzz_*.py), in the fast suite:
each is one hostile input that once crashed, lost or silently refused something."""

from __future__ import annotations

import logging

import pytest

from mailrelay.app import Daemon

from .hostile_mail import Case, deliver

BCC = "reviews+acme@relay.test"


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
