"""Intake's parser child: same notices as in-process parsing, and a dead child loses nothing."""

from __future__ import annotations

import signal
import sys

import pytest

from mailrelay.app import Daemon
from mailrelay.parsing import parse_batch
from mailrelay.services.intake import (
    PARSER_PROCESS_THRESHOLD,
    message_dedupe_key,
    message_id_of,
)
from mailrelay.services.parser_process import ParserGone, ParserProcess
from mailrelay.store import NewMessage

from .conftest import require_corpus
from .mailtools import settle, trigger


def corpus_jobs() -> list[tuple[bytes, None]]:
    files = sorted(require_corpus("triggers").glob("*.eml"))
    assert files, "no trigger in the shared corpus"
    return [(f.read_bytes(), None) for f in files]


async def test_parser_process_returns_the_notices_in_process_parsing_gives() -> None:
    parser = ParserProcess()
    try:
        jobs = corpus_jobs()
        assert await parser.parse(jobs) == parse_batch(jobs)
    finally:
        await parser.close()


async def test_a_killed_parser_process_fails_one_batch_and_is_replaced_for_the_next() -> None:
    parser = ParserProcess()
    try:
        jobs = corpus_jobs()
        await parser.parse(jobs)
        assert parser._proc is not None
        parser._proc.kill()
        await parser._proc.wait()
        assert await parser.parse(jobs) == parse_batch(jobs)  # a new child
        parser._proc.kill()
        parser.command = (sys.executable, "-c", "pass")  # a child that exits at once
        with pytest.raises(ParserGone):
            await parser.parse(jobs)
    finally:
        await parser.close()


async def test_intake_parses_in_a_thread_when_the_parser_process_is_broken(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    daemon.intake._parser.command = (sys.executable, "-c", "raise SystemExit(3)")
    route = daemon.intake.recipients.route("reviews+acme@relay.test")
    assert route is not None
    count = PARSER_PROCESS_THRESHOLD + 5
    rows = []
    for n in range(count):
        raw = trigger(to=f"Customer {n} <c{n}@example.com>",
                      subject=f"Order #{5000 + n} shipped", message_id=f"<p{n}@shop.example>")
        mid = message_id_of(raw)
        rows.append(NewMessage(daemon.clock.now(), "127.0.0.1:1", "shop@acme.example",
                               route.address, route.shop, route.kind, mid,
                               message_dedupe_key(route, mid, raw), raw))
    # One commit for the lot, so the worker finds a batch big enough for the parser child.
    await daemon.store.write(lambda q: [q.insert_message(m) for m in rows])
    daemon.intake.wake()
    await settle(daemon)
    rows = daemon.store.read(lambda q: q.list_shipments())
    assert len(rows) == count
    assert {r.status for r in rows} == {"scheduled"}
    assert "parsing in a thread instead" in caplog.text


async def test_parser_process_ignores_sigterm_and_ends_when_its_stdin_closes() -> None:
    parser = ParserProcess()
    jobs = corpus_jobs()
    await parser.parse(jobs)
    proc = parser._proc
    assert proc is not None
    proc.send_signal(signal.SIGTERM)  # systemd signals the whole group at stop
    assert await parser.parse(jobs) == parse_batch(jobs)
    await parser.close()
    assert proc.returncode == 0
