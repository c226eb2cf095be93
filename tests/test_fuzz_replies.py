"""Fault and fuzz suite, agent replies (issue 10 §6): hostile and mutated replies over the SMTP
reply+ path and over IMAP (pymap), with two shops.

Nobody but an authorised agent may change a public page: replies from strangers, however
broken, publish nothing; an agent's mangled reply is processed (published or refused) without
a crash and never publishes the customer's address; the other shop's page never changes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from email.message import EmailMessage

import pytest

from mailrelay.app import Daemon
from mailrelay.core.clock import FrozenClock

from .conftest import ConfigFactory
from .fuzz_checks import (
    SIZE_LIMIT,
    Tally,
    assert_refusals_logged,
    assert_stored_once_and_processed,
    assert_unharmed,
    public_pages,
    record_line,
    two_shops,
)
from .hostile_mail import (
    CRLF,
    Case,
    crlf,
    deliver,
    encoding_cases,
    huge_cases,
    mime_cases,
    mutate,
    nesting_cases,
    nul_cases,
)
from .imap_servers import ImapServer
from .mailtools import drain, raw_mails_to, settle, via_sink
from .sink import Sink
from .tickets import AGENT, Ticketed, agent_reply, invited_now, submitted, ticketed

pytestmark = pytest.mark.slow

STRANGER = "mallory@evil.example"
CUSTOMER = "ann@example.com"
MUTANTS = 120
IMAP_MUTANTS = 60  # each IMAP message costs a round trip and two folder moves


async def bolt_review(daemon: Daemon, clock: FrozenClock) -> int:
    """A published review at the second shop, so its page has something to lose."""
    inv = await invited_now(daemon, clock, shop_id="bolt", email="bo@example.org",
                            name="Bo Berg", reference="B-77")
    return await submitted(daemon, clock, inv, stars="5", title="Fast bike", name="Bo Berg",
                           text="The bike came assembled and rides well.")


def as_reply(raw: bytes, t: Ticketed, sender: str = STRANGER) -> bytes:
    """A hostile message re-addressed as a reply from `sender` to a valid reply+ key."""
    raw = crlf(raw).replace(b"From: Shop <shop@platform.example>",
                            f"From: Someone <{sender}>".encode())
    # Its own Message-ID per sender: the same bytes from someone else are not a retry.
    raw = raw.replace(b"Message-ID: <", f"Message-ID: <{sender.split('@')[0]}.".encode(), 1)
    return f"Cc: {t.reply_to}".encode() + CRLF + raw


def reply_seeds(t: Ticketed, sender: str) -> list[bytes]:
    """Realistic replies from `sender`: plain with a quote, QP with umlauts, HTML-only base64."""
    plain = agent_reply(t, "Sorry about the delay, Ann!\n\nWe refunded the shipping.",
                        sender=sender)
    msg = EmailMessage()
    msg["From"] = f"Support <{sender}>"
    msg["To"] = t.reply_to
    msg["Subject"] = "Re: " + str(t.ticket["Subject"])
    msg["Message-ID"] = "<qp-seed@acme.example>"
    msg["In-Reply-To"] = t.ticket["Message-ID"]
    msg.set_content("Grüße aus dem Lager – Ihre Rückerstattung ist unterwegs.\n\n"
                    f"Am 23.11.2026 schrieb ACME <{sender}>:\n> Die Lieferung kam spät.\n",
                    cte="quoted-printable")
    html = EmailMessage()
    for name in ("From", "To", "Subject", "In-Reply-To"):
        html[name] = msg[name]
    html["Message-ID"] = "<html-seed@acme.example>"
    html.set_content("<div>We are sorry, a voucher is on its way.</div><blockquote>"
                     "<p>The parcel took two weeks.</p></blockquote>", subtype="html",
                     cte="base64")
    return [crlf(plain), crlf(msg.as_bytes()), crlf(html.as_bytes())]


def hostile_replies(t: Ticketed, count: int = MUTANTS, huge: bool = False) -> list[Case]:
    """The hostile triggers as strangers' replies (`huge`: with huge headers), plus mutants."""
    cases = [Case(f"stranger-{c.name}", as_reply(c.raw, t), (t.reply_to,), mail_from=STRANGER,
                  expect=c.expect) for c in hostile_bodies(huge)]
    seeds = reply_seeds(t, STRANGER)
    cases += [Case(f"stranger-mutant/{name}", raw, (t.reply_to,), mail_from=STRANGER)
              for name, raw in mutate(seeds, count, seed=11)]
    # No key in the address: the ticket is found by In-Reply-To (IMAP); with 5,000 ids.
    keyless = reply_seeds(t, STRANGER)[0].replace(t.reply_to.encode(), b"reply@relay.test")
    many = " ".join(f"<r{i}@relay.test>" for i in range(5000)) + " " + str(t.ticket["Message-ID"])
    cases += [Case("stranger-keyless-in-reply-to", keyless, (t.reply_to,), mail_from=STRANGER),
              Case("stranger-5000-references", keyless.replace(
                  b"References: ", b"References: " + many.encode() + b"\r\n X-Was: ")
                  .replace(b"Message-ID: <", b"Message-ID: <refs.", 1), (t.reply_to,),
                   mail_from=STRANGER)]
    auto = reply_seeds(t, "support@acme.example")[0].replace(
        b"Subject:", b"Auto-Submitted: auto-replied\r\nSubject:")
    cases.append(Case("agent-auto-submitted", auto, (t.reply_to,),
                      mail_from="support@acme.example"))
    return cases


def hostile_bodies(huge: bool = False) -> list[Case]:
    """The hostile triggers' messages; with `huge`, the huge headers too (not the one-line
    900 KB header: its payload is an SMTP DATA section, terminator included)."""
    big = [c for c in huge_cases("", SIZE_LIMIT) if not c.verbatim] if huge else []
    return [*mime_cases(""), *encoding_cases(""), *nesting_cases(""), *nul_cases(""), *big]


def agent_mutants(t: Ticketed, seed: int, count: int = MUTANTS, huge: bool = False
                  ) -> list[Case]:
    """Mangled and malformed replies from the shop's own agent (they may publish)."""
    seeds = reply_seeds(t, AGENT)
    return [Case(f"agent-{c.name}", as_reply(c.raw, t, AGENT), (t.reply_to,), mail_from=AGENT,
                 expect=c.expect) for c in hostile_bodies(huge)] + [
        Case(f"agent-mutant/{name}", raw, (t.reply_to,), mail_from=AGENT)
        for name, raw in mutate(seeds, count, seed=seed)]


async def file_all(imap: ImapServer, cases: list[Case]) -> tuple[int, int, int]:
    """Append each case to INBOX and wait until the watcher filed them all:
    (inputs, filed, refused by the IMAP server itself)."""
    start = await imap.counts()
    appended = refused = 0
    for case in cases:
        try:
            await imap.append(crlf(case.raw))
            appended += 1
        except Exception:  # noqa: BLE001 - the IMAP server's own refusal of an APPEND
            refused += 1
    deadline = time.monotonic() + 120
    while True:
        counts = await imap.counts()
        filed = sum(counts.get(f, 0) - start.get(f, 0)
                    for f in ("mailrelay/processed", "mailrelay/rejected"))
        if counts.get("INBOX", 0) == 0 and filed == appended:
            return len(cases), filed, refused
        assert time.monotonic() < deadline, f"not all filed: {counts}, {appended} appended"
        await asyncio.sleep(0.2)


def assert_nothing_leaked(daemon: Daemon) -> None:
    """No public response names the customer's address, carries a `>` quote line or a
    control character."""
    for (text,) in daemon.store.read(lambda q: q.conn.execute(
            "SELECT body FROM responses").fetchall()):
        assert CUSTOMER not in text.lower()
        assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text), repr(text)
        assert not any(line.startswith(">") for line in text.splitlines()), text


async def test_hostile_replies_by_smtp_are_answered_processed_and_publish_nothing(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink,
    caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    async with Daemon(via_sink(two_shops(make_config), sink), clock) as relay:
        t = await ticketed(relay, clock, sink)
        await bolt_review(relay, clock)
        await drain(relay)
        stored_before = relay.store.read(lambda q: q.count_messages())
        before = await public_pages(relay)
        mailed = raw_mails_to(sink, CUSTOMER)
        tally = Tally("fuzz replies smtp")
        for case in hostile_replies(t, huge=True):
            tally.add(await deliver(relay.smtp_port, case))
        await settle(relay, limit=120)
        await drain(relay)
        assert await public_pages(relay) == before, "a stranger's reply changed a public page"
        assert relay.store.read(lambda q: q.responses_of(t.review_id)) == []
        assert raw_mails_to(sink, CUSTOMER) == mailed, "a stranger's reply mailed the customer"

        # Mangled replies from the shop's own agent: processed, published or refused; the
        # other shop's page never changes and nothing quoted or personal is published.
        for case in agent_mutants(t, 12, huge=True):
            tally.add(await deliver(relay.smtp_port, case))
        await settle(relay, limit=120)
        await drain(relay)
        tally.record(request)
        after = await public_pages(relay, ("bolt",))
        assert after == {k: v for k, v in before.items() if "/bolt" in k}
        assert_nothing_leaked(relay)
        assert_stored_once_and_processed(relay, tally.answers, after=stored_before)
        assert_refusals_logged(tally.answers, caplog.records)
        await assert_unharmed(relay, caplog.records)
        outcomes = Counter(str(r[0]).split()[1] for r in relay.store.read(lambda q: q.conn.execute(
            "SELECT result FROM messages WHERE kind = 'reply'").fetchall()))
        print(f"fuzz replies smtp outcomes: {dict(sorted(outcomes.items()))}")


async def test_hostile_replies_by_imap_are_filed_and_publish_nothing(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink, pymap: ImapServer,
    caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    config = via_sink(two_shops(make_config, pymap.toml()), sink)
    async with Daemon(config, clock) as relay:
        t = await ticketed(relay, clock, sink)
        await bolt_review(relay, clock)
        await drain(relay)
        before = await public_pages(relay)
        mailed = raw_mails_to(sink, CUSTOMER)
        stranger = await file_all(pymap, hostile_replies(t, IMAP_MUTANTS, huge=True))
        await drain(relay)
        assert await public_pages(relay) == before, "a stranger's reply changed a public page"
        assert raw_mails_to(sink, CUSTOMER) == mailed, "a stranger's reply mailed the customer"
        agent = await file_all(pymap, agent_mutants(t, 13, IMAP_MUTANTS))
        await drain(relay)
        assert await public_pages(relay, ("bolt",)) == {
            k: v for k, v in before.items() if "/bolt" in k}
        assert_nothing_leaked(relay)
        counts = await pymap.counts()
        inputs, handled, refused = (x + y for x, y in zip(stranger, agent, strict=True))
        line = (f"fuzz replies imap: {inputs} inputs, {handled} handled "
                f"({counts.get('mailrelay/processed', 0)} filed processed, "
                f"{counts.get('mailrelay/rejected', 0)} filed rejected, "
                f"{refused} refused by the IMAP server)")
        record_line(request, line)
        await assert_unharmed(relay, caplog.records)
        assert relay.imap is not None and relay.imap.connected
