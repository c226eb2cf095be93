"""Fault and fuzz suite, inbound SMTP (issue 10 §6): hostile triggers against a running relay.

Every input gets an SMTP answer (250, 4xx or 5xx; never a hang or a silent hang-up); every
250'd message is stored once and processed; every refusal has a log line naming the client;
the relay is healthy afterwards and its public pages did not change.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.config import load
from mailrelay.core.clock import FrozenClock
from mailrelay.core.routing import signed_sender
from mailrelay.store import StoreBackend, open_store

from .conftest import ConfigFactory
from .fuzz_checks import (
    SECOND_SHOP,
    SIZE_LIMIT,
    Tally,
    assert_alive,
    assert_refusals_logged,
    assert_stored_once_and_processed,
    assert_unharmed,
    public_pages,
    record_line,
    two_shops,
)
from .hostile_mail import (
    SEED,
    Answer,
    Case,
    block_cases,
    block_trigger,
    crlf,
    deliver,
    dsn,
    eight_bit_cases,
    encoding_cases,
    end_of_data_cases,
    envelope_cases,
    huge_cases,
    identity_cases,
    mime_cases,
    mutate,
    nesting_cases,
    nul_cases,
    run_session,
    session_lines,
    valid_block,
    valid_trigger,
)
from .mailtools import drain, settle
from .serve_process import Serve, reaping

pytestmark = pytest.mark.slow

ACME, BOLT = "reviews+acme@relay.test", "reviews+bolt@relay.test"
CANCEL = "cancel+acme@relay.test"
MUTANTS = 600
SESSIONS = 120


@pytest.fixture
async def relay(make_config: ConfigFactory, clock: FrozenClock) -> AsyncIterator[Daemon]:
    async with Daemon(two_shops(make_config), clock) as daemon:
        yield daemon


def hostile_triggers(limit: int) -> list[Case]:
    return [*mime_cases(ACME), *encoding_cases(BOLT), *nesting_cases(ACME), *nul_cases(BOLT),
            *huge_cases(ACME, limit), *eight_bit_cases(BOLT), *end_of_data_cases(ACME),
            *envelope_cases(BOLT), *block_cases(ACME), *block_cases(BOLT),
            *identity_cases(ACME),
            Case("envelope/both-shops-and-cancel", valid_trigger(90), (ACME, BOLT, CANCEL),
                 expect=frozenset({250}))]


def mutant_triggers() -> list[Case]:
    seeds = [valid_trigger(n, shop) for n, shop in enumerate(("acme", "bolt", "acme"))]
    seeds += [block_trigger(n, valid_block(n), kind) for n, kind in ((7, "mailrelay"),
                                                                    (8, "trustpilot"))]
    rcpts = (ACME, BOLT, CANCEL)
    return [Case(f"mutant/{name}", raw, (rcpts[n % 3],))
            for n, (name, raw) in enumerate(mutate(seeds, MUTANTS))]


async def test_hostile_and_mutated_triggers_are_answered_stored_once_and_processed(
    relay: Daemon, clock: FrozenClock, caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    before = await public_pages(relay)
    tally = Tally("fuzz inbound")
    for case in hostile_triggers(SIZE_LIMIT):
        tally.add(await deliver(relay.smtp_port, case))
    # The mutants arrive 40 at a time: intake takes them in batches big enough for its
    # parser process (the hostile cases above went one by one, parsed in a thread).
    gate = asyncio.Semaphore(40)

    async def gated(case: Case) -> Answer:
        async with gate:
            return await deliver(relay.smtp_port, case)

    again = [replace(c, name=f"burst/{c.name}", raw=c.raw.replace(
        b"Message-ID: <", b"Message-ID: <burst.", 1)) for c in hostile_triggers(SIZE_LIMIT)
        if not c.verbatim and c.rcpts[0] != CANCEL]
    for answer in await asyncio.gather(*(gated(c) for c in [*mutant_triggers(), *again])):
        tally.add(answer)
    await settle(relay, limit=120)
    assert relay.intake._parser._proc is not None, "the parser process was never used"
    assert not [r for r in caplog.records if "parsing in a thread instead" in r.getMessage()]
    tally.record(request)
    assert_stored_once_and_processed(relay, tally.answers)

    # The invitations fall due: every hostile name, reference and product is rendered and sent.
    clock.advance(timedelta(days=30))
    await drain(relay, limit=120)
    statuses = Counter(dict(relay.store.read(lambda q: q.conn.execute(
        "SELECT status, COUNT(*) FROM invitations GROUP BY status").fetchall())))
    # Sent, or refused with a reason (an SMTPUTF8 address: `cannot be rendered: ... SMTPUTF8`).
    stuck = relay.store.read(lambda q: q.conn.execute(
        "SELECT customer_name, reference, status, reason FROM invitations WHERE status NOT IN "
        "('sent', 'cancelled') AND NOT (status = 'failed' AND reason LIKE '%SMTPUTF8%')"
    ).fetchall())
    assert not stuck, [tuple(r) for r in stuck]
    assert statuses["sent"] > 0
    print(f"fuzz inbound invitations: {dict(statuses)}")
    for (raw,) in relay.store.read(lambda q: q.conn.execute("SELECT raw FROM outbox").fetchall()):
        header = bytes(raw).split(b"\r\n\r\n", 1)[0].lower()
        names = [line.split(b":", 1)[0] for line in header.split(b"\r\n")
                 if line and line[:1] not in (b" ", b"\t")]
        assert names.count(b"to") == 1 and b"bcc" not in names, header  # no header injection
        assert b"\x00" not in bytes(raw)

    assert_refusals_logged(tally.answers, caplog.records)
    await assert_unharmed(relay, caplog.records)
    assert await public_pages(relay) == before
    # The smuggled second transaction inside a bare-LF payload never became a message.
    bodies = relay.store.read(lambda q: q.conn.execute(
        "SELECT raw FROM message_bodies").fetchall())
    assert not [raw for (raw,) in bodies
                if b"smuggled order" in bytes(raw) and b"Order #9100" not in bytes(raw)]


async def test_a_client_that_hangs_up_mid_data_leaves_nothing_stored_and_the_relay_serving(
    relay: Daemon,
) -> None:
    """These inputs break the protocol themselves (no end of data): no answer is owed, but
    nothing half-received may be stored, and the next client is served."""
    for tail in (b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"", b"\r\n.", b"\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.smtp_port)
        try:
            for line in (b"EHLO fuzz.example", b"MAIL FROM:<p@shop.example>",
                         f"RCPT TO:<{ACME}>".encode(), b"DATA"):
                writer.write(line + b"\r\n")
            writer.write(b"Subject: cut off\r\n\r\nOrder #1" + tail)
            await writer.drain()
            writer.write_eof()
            rest = await asyncio.wait_for(reader.read(), 30)  # the server closes; no 250 in it
            assert b"\r\n250 2.0.0" not in rest and b"queued" not in rest
        finally:
            writer.close()  # also when the server kept it open: no socket left to the GC
    answer = await deliver(relay.smtp_port, Case("after", valid_trigger(1), (ACME,)))
    assert answer.code == 250
    await settle(relay)
    assert relay.store.read(lambda q: q.count_messages()) == 1
    await assert_alive(relay)


async def test_mailrelay_serve_survives_the_hostile_triggers_and_logs_every_refusal(
    make_config: ConfigFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The same inputs against `mailrelay serve` in its own process, with its real logging."""
    config = tmp_path / "relay.toml"
    make_config(more=SECOND_SHOP)
    config.write_text(config.read_text().replace('"64KB"', f'"{SIZE_LIMIT // 1024}KB"'))
    with reaping([Serve(config, tmp_path / "serve.log")]) as (serve,):
        await serve.ready()
        found = re.search(r"smtp [\d.]+:(\d+), web [\d.]+:(\d+)", serve.output())
        assert found is not None
        smtp_port, http_port = int(found.group(1)), int(found.group(2))
        tally = Tally("fuzz inbound (mailrelay serve)")
        for case in [*hostile_triggers(SIZE_LIMIT), *mutant_triggers()[:100]]:
            tally.add(await deliver(smtp_port, case))
        deadline = time.monotonic() + 60
        with open_store(load(config).store) as store:  # SQLite or PostgreSQL
            while pending(store):
                assert time.monotonic() < deadline, "intake did not settle"
                await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{http_port}/healthz") as resp:
            assert resp.status == 200
        assert serve.proc.poll() is None
        assert await serve.terminate() == 0
        tally.record(request)
    log_text = serve.output()
    assert "Traceback" not in log_text
    for answer in tally.answers:
        if answer.code >= 400:
            assert f"peer=127.0.0.1:{answer.local_port}" in log_text, answer.case.name


def pending(store: StoreBackend) -> int:
    return int(store.read(lambda q: q.conn.execute(
        "SELECT COUNT(*) FROM messages WHERE state != 'processed'").fetchone()[0]))


async def test_hostile_bounces_are_processed_and_suppress_only_the_recipients_they_name(
    relay: Daemon, clock: FrozenClock, caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    for n, rcpt in enumerate([ACME, BOLT] * 4):
        trigger = valid_trigger(n, "acme" if rcpt == ACME else "bolt").replace(
            b"ann@example.com", f"c{n}@example.com".encode())
        assert (await deliver(relay.smtp_port, Case("setup", trigger, (rcpt,)))).code == 250
    await settle(relay)
    clock.advance(timedelta(days=30))
    await drain(relay)
    sent = [dict(r) for r in relay.store.read(lambda q: q.conn.execute(
        "SELECT id, envelope_from, recipient, message_id FROM outbox").fetchall())]
    assert len(sent) == 8
    for mail in sent:  # the VERP address each message really left with (signed at send time)
        mail["envelope_from"] = signed_sender(mail["envelope_from"], relay.web.signer.bounce_tag)
    stored_before = relay.store.read(lambda q: q.count_messages())

    cases: list[Case] = []
    for n, mail in enumerate(sent):
        valid = dsn(mail["envelope_from"], mail["recipient"], mail["message_id"], n=n)
        cases.append(Case(f"dsn/valid-{n}", valid, (mail["envelope_from"],), mail_from=""))
        # Someone else's address in a report sent to this message's VERP address.
        other = dsn(mail["envelope_from"], f"victim{n}@example.com", "<x@elsewhere>", n=100 + n)
        cases.append(Case(f"dsn/names-a-stranger-{n}", other, (mail["envelope_from"],),
                          mail_from=""))
        for body in (*mime_cases(""), *nul_cases("")):
            raw = crlf(body.raw).replace(b"To: Ann Lee <ann@example.com>",
                                         f"To: {mail['envelope_from']}".encode())
            raw = raw.replace(b"Message-ID: <", f"Message-ID: <b{n}.".encode(), 1)
            cases.append(Case(f"dsn/{n}-{body.name}", raw, (mail["envelope_from"],),
                              mail_from=""))
    seeds = [dsn(m["envelope_from"], m["recipient"], m["message_id"], n=200 + i)
             for i, m in enumerate(sent)]
    for name, raw in mutate(seeds, MUTANTS // 3, seed=14):
        target = next(m for m in sent if m["envelope_from"].encode() in raw) \
            if any(m["envelope_from"].encode() in raw for m in sent) else sent[0]
        cases.append(Case(f"dsn-mutant/{name}", raw, (target["envelope_from"],), mail_from=""))
    tally = Tally("fuzz bounces")
    for case in cases:
        tally.add(await deliver(relay.smtp_port, case))
    await settle(relay, limit=120)
    tally.record(request)

    assert_stored_once_and_processed(relay, tally.answers, after=stored_before)
    results = [r[0] for r in relay.store.read(lambda q: q.conn.execute(
        "SELECT result FROM messages WHERE kind = 'bounce'").fetchall())]
    assert all(r.startswith("bounce: ") for r in results), results
    suppressed = {r[0] for r in relay.store.read(lambda q: q.conn.execute(
        "SELECT email FROM suppressions").fetchall())}
    # Each valid report suppressed its recipient; nothing else named anywhere was suppressed.
    assert suppressed == {m["recipient"] for m in sent}, suppressed
    assert_refusals_logged(tally.answers, caplog.records)
    await assert_unharmed(relay, caplog.records)


async def test_random_command_sessions_get_an_answer_to_every_line_and_leave_it_serving(
    relay: Daemon, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(SEED)
    sessions = [session_lines(rng) for _ in range(SESSIONS)]
    codes: Counter[str] = Counter()
    for start in range(0, len(sessions), 10):
        for replies in await asyncio.gather(
                *(run_session(relay.smtp_port, lines) for lines in sessions[start:start + 10])):
            for code in replies:
                # 0: the server hung up, which it may do only after saying why (421/221)
                # or after the client sent something no SMTP server must accept.
                codes["2xx/3xx" if 200 <= code < 400 else "4xx" if 400 <= code < 500
                      else "5xx" if 500 <= code < 600 else "closed"] += 1
    sent = sum(codes.values())
    line = (f"fuzz sessions: {len(sessions)} sessions, {sent} commands, "
            f"{sent - codes['closed']} answered ({codes['2xx/3xx']} 2xx/3xx, {codes['4xx']} 4xx, "
            f"{codes['5xx']} 5xx)")
    record_line(request, line)
    assert codes["closed"] == 0, "a session was dropped without an answer"
    answer = await deliver(relay.smtp_port, Case("after", valid_trigger(5), (ACME,)))
    assert answer.code == 250
    await settle(relay)
    assert relay.store.read(lambda q: q.count_messages()) == 1
    await assert_unharmed(relay, caplog.records)
