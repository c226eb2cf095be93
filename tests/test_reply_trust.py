"""Issue 10 §2 and §3 end to end, with two shops: refusals reach only authorised agents (once
per message), strangers get nothing back, and Authentication-Results cannot be forged from the
message itself, over SMTP (aiosmtplib to the daemon's listener) and IMAP (pymap)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock

from .conftest import ConfigFactory, second_shop
from .imap_servers import ImapServer
from .mailtools import (
    drain,
    mails_to,
    notices,
    scrape,
    session_send,
    settle,
    text_of,
    via_sink,
)
from .sink import Sink
from .tickets import invited_now, submitted, ticket_of

OURS = "mx.relay.test"
ACME_AGENT = "support@acme.example"
BOLT_AGENT = "help@bolt.co.uk"
STRANGER = "mallory@evil.example"
VICTIM = "someone@victim.example"
SECOND_SHOP = second_shop(**{"from": "Bolt Bikes <reviews@bolt.co.uk>"}, agents=["help@bolt.co.uk"],
                          timezone=None)
# What the border MTA writes when a message enters from the Internet (RFC 5321 4.4).
BORDER = ("from mail.sender.example (mail.sender.example [198.51.100.7]) by mx.relay.test "
          "(Postfix) with ESMTPS id 4Xa1b2; Mon, 23 Nov 2026 10:00:00 +0000")
LMTP = "from mx.relay.test by mx.relay.test with LMTP id q1w2e3; Mon, 23 Nov 2026 10:00:01 +0000"
SENDER_HOP = ("from [192.0.2.10] (helo=laptop) by smtp.sender.example with esmtpa id 7; "
              "Mon, 23 Nov 2026 09:59:58 +0000")


@dataclass(frozen=True)
class Ticket:
    shop: str
    agent: str
    review_id: int
    reply_to: str
    message: EmailMessage


async def ticket_for(daemon: Daemon, clock: FrozenClock, sink: Sink, shop_id: str,
                     customer: str, text: str = "The frame was a size too small.") -> Ticket:
    """A review at `shop_id` whose ticket reached the shop's agent through the sink."""
    shop = daemon.config.shop(shop_id)
    assert shop is not None
    inv = await invited_now(daemon, clock, shop_id=shop_id, email=customer, name="Kim Berg",
                            reference="2210")
    review_id = await submitted(daemon, clock, inv, stars="1", title="Wrong size", text=text,
                                name="Kim Berg")
    await daemon.tick()
    ticket = ticket_of(sink, review_id)
    return Ticket(shop_id, shop.agents[0], review_id, str(ticket["Reply-To"]), ticket)


def reply(t: Ticket, body: str, *, sender: str | None = None, from_header: str | None = None,
          on_top: tuple[tuple[str, str], ...] = (), message_id: str | None = "",
          to: str | None = None) -> bytes:
    """The agent's answer to ticket `t`, quoting it; `on_top` fields go above all others in
    the order given (trace fields as a server would prepend them)."""
    msg = EmailMessage()
    for name, value in on_top:
        msg[name] = value
    msg["From"] = from_header or f"Agent <{sender or t.agent}>"
    msg["To"] = to or t.reply_to
    msg["Subject"] = "Re: " + str(t.message["Subject"])
    if message_id is not None:
        msg["Message-ID"] = message_id or make_msgid(domain="agents.example")
    msg["In-Reply-To"] = str(t.message["Message-ID"])
    quoted = "\n".join("> " + line for line in text_of(t.message).splitlines())
    msg.set_content(f"{body}\n\nOn Mon, 23 Nov 2026 at 10:00, {t.shop} wrote:\n{quoted}\n")
    return msg.as_bytes()


async def smtp_send(daemon: Daemon, raw: bytes, rcpt: str, sender: str = ACME_AGENT) -> None:
    """Over SMTP; sender "" is the null reverse-path `MAIL FROM:<>` (RFC 5321 4.5.5)."""
    await session_send(daemon, raw, rcpt, sender, wait=10)
    await settle(daemon)
    await drain(daemon)


def refused(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], reason: str,
            notified: str = "false") -> float:
    labels = (("notified", notified), ("reason", reason))
    return samples.get(("mailrelay_replies_refused_total", labels), 0.0)


def response_of(daemon: Daemon, review_id: int) -> Any:
    review = daemon.store.read(lambda q: q.get_review(review_id))
    assert review is not None
    return review.response


def outcomes(daemon: Daemon) -> list[tuple[str, str]]:
    rows = daemon.store.read(lambda q: q.conn.execute(
        "SELECT outcome, reason FROM replies ORDER BY id").fetchall())
    return [(str(r[0]), str(r[1])) for r in rows]


@asynccontextmanager
async def relay(make_config: ConfigFactory, clock: FrozenClock, sink: Sink, *,
                security: str = "", smtp: str = "", more: str = "") -> AsyncIterator[Daemon]:
    config = make_config(smtp_extra=smtp, security_extra=security, more=SECOND_SHOP + more)
    async with Daemon(via_sink(config, sink), clock) as daemon:
        yield daemon


# --- §2: who is told, who is not -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("#note Customer called, refund sent", {"note": "Customer called, refund sent"}),
        ("#report Written by a competitor", {"report": "Written by a competitor"}),
        ("#tag late #tag box", {"tags": ["box", "late"]}),
        ("#tag late #noemail\nSorry for the wait.", {"tags": ["late"],
                                                     "response": "Sorry for the wait."}),
    ],
    ids=["note", "report", "tags", "tag-noemail"],
)
async def test_one_line_directives_act_at_either_shop_and_nobody_else_hears_of_them(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink, body: str,
    expected: dict[str, Any],
) -> None:
    async with relay(make_config, clock, sink) as daemon:
        acme = await ticket_for(daemon, clock, sink, "acme", "ann@example.com")
        bolt = await ticket_for(daemon, clock, sink, "bolt", "bo@example.net")
        for t in (acme, bolt):
            await smtp_send(daemon, reply(t, body), t.reply_to, sender=t.agent)
            review = daemon.store.read(lambda q, t=t: q.get_review(t.review_id))
            assert review is not None
            notes = daemon.store.read(lambda q, t=t: q.notes_of(t.review_id))
            assert [n.body for n in notes] == ([expected["note"]] if "note" in expected
                                                  else [])
            # Issue 14: a report waits for an owner; the review stays public meanwhile.
            reports = daemon.store.read(lambda q, t=t: q.reports_of_review(t.review_id))
            assert [r.reason for r in reports] == ([expected["report"]] if "report" in expected
                                                    else [])
            assert review.report_reason is None and not review.reported
            assert sorted(review.tags) == expected.get("tags", [])
            assert review.response == expected.get("response")
            assert notices(sink, t.agent) == []
        # #noemail and directives alone never write to the customers.
        assert [m for m in mails_to(sink, "ann@example.com") + mails_to(sink, "bo@example.net")
                if m["Auto-Submitted"] == "auto-replied"] == []


async def test_an_answer_written_below_the_quoted_review_is_published_at_either_shop(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    """Bottom-posting in quoted-printable (found against a running relay): the quoted review
    text once cut the reply before the answer, which was refused as empty."""
    answers = {"acme": "We are sorry, a pair one size up is on its way today.",
               "bolt": "Ευχαριστούμε πολύ, το μεγαλύτερο πλαίσιο έφυγε σήμερα."}
    review = "The frame was a size too small and the parcel came two weeks late."
    async with relay(make_config, clock, sink) as daemon:
        for t in (await ticket_for(daemon, clock, sink, "acme", "ann@example.com", review),
                  await ticket_for(daemon, clock, sink, "bolt", "bo@example.net", review)):
            msg = EmailMessage()
            msg["From"] = f"Agent <{t.agent}>"
            msg["To"] = t.reply_to
            msg["Subject"] = "Re: " + str(t.message["Subject"])
            msg["Message-ID"] = make_msgid(domain="agents.example")
            # Bottom-posters trim the quote to the part they answer: here the review.
            quoted = f"> {review}"
            msg.set_content(f"Στις Δευ 23 Νοε 2026 στις 10:00, ο/η {t.shop} <reviews@{t.shop}"
                            f".example> έγραψε:\n{quoted}\n\n{answers[t.shop]}\n",
                            cte="quoted-printable")
            await smtp_send(daemon, msg.as_bytes(), t.reply_to, sender=t.agent)
            assert response_of(daemon, t.review_id) == answers[t.shop]
            assert notices(sink, t.agent) == []
        [to_ann] = [m for m in mails_to(sink, "ann@example.com") if answers["acme"] in text_of(m)]
        assert "two weeks late" not in text_of(to_ann) and "έγραψε" not in text_of(to_ann)


async def test_the_ticket_shows_one_line_directives_and_its_examples_work_as_shown(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    """The ticket is where agents learn what they can write: its help, in the shop's language,
    shows `#note <text>` on one line and a line of several tags that acts as printed."""
    async with relay(make_config, clock, sink,
                     more='[[shop]]\nid = "cedar"\nbcc_address = "reviews+cedar@relay.test"\n'
                          'from = "Cedar <hi@cedar.example>"\nagents = ["desk@cedar.example"]'
                          '\nlocale = "de"\nsend_hours = ""\n') as daemon:
        for shop, customer, note in (("acme", "ann@example.com", "#note <text>"),
                                     ("cedar", "cy@example.org", "#note <Text>")):
            t = await ticket_for(daemon, clock, sink, shop, customer)
            help_text = text_of(t.message)
            assert note in help_text
            [example] = re.findall(r"#tag \w+ #tag \w+", help_text)
            await smtp_send(daemon, reply(t, example), t.reply_to, sender=t.agent)
            review = daemon.store.read(lambda q, t=t: q.get_review(t.review_id))
            assert review is not None
            assert sorted(review.tags) == sorted(example.replace("#tag ", "").split())
            assert review.response is None and notices(sink, t.agent) == []


async def test_each_refused_reply_of_an_agent_is_explained_once_per_message_not_per_day(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    async with relay(make_config, clock, sink) as daemon:
        acme = await ticket_for(daemon, clock, sink, "acme", "ann@example.com")
        bolt = await ticket_for(daemon, clock, sink, "bolt", "bo@example.net")
        first, second = reply(acme, ""), reply(acme, "#note")
        no_id = reply(bolt, "", message_id=None)
        for raw, t in ((first, acme), (second, acme), (no_id, bolt), (first, acme),
                       (no_id, bolt)):
            await smtp_send(daemon, raw, t.reply_to, sender=t.agent)
        acme_notices = notices(sink, ACME_AGENT)
        assert sorted(str(n["Subject"]).rpartition(": ")[2] for n in acme_notices) == [
            "empty", "empty note"]
        [bolt_notice] = notices(sink, BOLT_AGENT)
        assert "Bolt Bikes" in text_of(bolt_notice)
        assert "ACME" not in text_of(bolt_notice) and "ann@example.com" not in text_of(
            bolt_notice)
        samples = await scrape(daemon)
        assert refused(samples, "empty", "true") == 2
        assert refused(samples, "empty_note", "true") == 1


async def test_a_refusal_is_explained_in_the_language_of_the_agents_shop(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    """A German shop's agent read "Grund: empty" and an English explanation (found against a
    running relay); the English shop's notice stays as it was."""
    async with relay(make_config, clock, sink,
                     more='[[shop]]\nid = "cedar"\nbcc_address = "reviews+cedar@relay.test"\n'
                          'from = "Cedar <hi@cedar.example>"\nagents = ["desk@cedar.example"]'
                          '\nlocale = "de"\nsend_hours = ""\n') as daemon:
        acme = await ticket_for(daemon, clock, sink, "acme", "ann@example.com")
        cedar = await ticket_for(daemon, clock, sink, "cedar", "cy@example.org")
        for t in (acme, cedar):
            await smtp_send(daemon, reply(t, ""), t.reply_to, sender=t.agent)
            await smtp_send(daemon, reply(t, "#note"), t.reply_to, sender=t.agent)
        english = sorted(str(n["Subject"]) for n in notices(sink, ACME_AGENT))
        assert english == ["Your reply was not published: empty",
                           "Your reply was not published: empty note"]
        german = [m for m in mails_to(sink, "desk@cedar.example")
                  if "nicht veröffentlicht" in str(m["Subject"])]
        assert sorted(str(m["Subject"]) for m in german) == [
            "Ihre Antwort wurde nicht veröffentlicht: leer",
            "Ihre Antwort wurde nicht veröffentlicht: leere Notiz"]
        for notice in german:
            body = text_of(notice)
            assert "Grund: leer" in body
            assert "Nothing was left" not in body and "needs its text" not in body
            assert "ann@example.com" not in body and "ACME" not in body


async def test_a_stranger_who_mails_a_valid_key_gets_nothing_back_and_is_counted(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "mailrelay.replies")
    async with relay(make_config, clock, sink) as daemon:
        acme = await ticket_for(daemon, clock, sink, "acme", "ann@example.com")
        bolt = await ticket_for(daemon, clock, sink, "bolt", "bo@example.net")
        for t in (acme, bolt):
            await smtp_send(daemon, reply(t, "Buy cheap watches at evil.example",
                                          sender=STRANGER), t.reply_to, sender=STRANGER)
            # The key's agent of the other shop is no agent of this one.
            other = BOLT_AGENT if t is acme else ACME_AGENT
            await smtp_send(daemon, reply(t, "Not my shop.", sender=other), t.reply_to,
                            sender=other)
            assert response_of(daemon, t.review_id) is None
        assert mails_to(sink, STRANGER) == []
        assert notices(sink, ACME_AGENT) == notices(sink, BOLT_AGENT) == []
        assert refused(await scrape(daemon), "unauthorised_sender") == 4
        lines = [r.getMessage() for r in caplog.records if "outcome=rejected" in r.getMessage()]
        assert len(lines) == 4
        for line in lines:
            assert "refusal=unauthorised_sender notified=no" in line
            assert "reason='The sender is neither the ticket's agent" in line.replace('"', "'")
            assert STRANGER not in line and ACME_AGENT not in line


async def test_a_keyless_or_forged_key_message_with_any_from_makes_the_relay_mail_nobody(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    async with relay(make_config, clock, sink) as daemon:
        acme = await ticket_for(daemon, clock, sink, "acme", "ann@example.com")
        before = len(sink.messages)
        keyless = EmailMessage()
        keyless["From"] = f"Victim <{VICTIM}>"
        keyless["To"] = "reply@relay.test"
        keyless["Subject"] = "Your account"
        keyless["Message-ID"] = make_msgid(domain="evil.example")
        keyless.set_content("Click https://evil.example/login to keep your account.\n")
        local, _, domain = acme.reply_to.partition("@")
        forged_to = f"reply+{'b' * 42}@{domain}"
        agent_forged = reply(acme, "Refund on its way.", to=forged_to)
        for raw in (keyless.as_bytes(), reply(acme, "Phishing text", sender=VICTIM,
                                              to=forged_to), agent_forged):
            result = await daemon.replier.process(raw, source="imap")
            assert not result.processed and not result.notified
        await drain(daemon)
        assert len(sink.messages) == before  # no mail to anybody
        samples = await scrape(daemon)
        assert refused(samples, "no_key") == 1 and refused(samples, "invalid_key") == 2
        assert [reason for _, reason in outcomes(daemon)] == [
            "The reply has no reply key and answers no ticket we sent; nobody is told.",
            "The reply key is altered, forged or unknown; nobody is told.",
            "The reply key is altered, forged or unknown; nobody is told.",
        ]


async def test_an_expired_key_is_explained_to_its_agent_but_not_to_a_stranger(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    async with relay(make_config, clock, sink) as daemon:
        bolt = await ticket_for(daemon, clock, sink, "bolt", "bo@example.net")
        clock.advance(timedelta(days=91))
        await smtp_send(daemon, reply(bolt, "Late answer."), bolt.reply_to, sender=BOLT_AGENT)
        await smtp_send(daemon, reply(bolt, "Late spam.", sender=STRANGER), bolt.reply_to,
                        sender=STRANGER)
        [notice] = notices(sink, BOLT_AGENT)
        assert "expired" in str(notice["Subject"])
        assert mails_to(sink, STRANGER) == []


# --- §3: authentication that cannot be forged ----------------------------------------------

SECURE = f'authserv_id = "{OURS}"\n'
TRUSTING = 'trusted_clients = ["127.0.0.0/8"]\n'
DISTRUSTING = 'trusted_clients = ["192.0.2.0/24"]\n'


def ar(results: str, authserv_id: str = OURS) -> tuple[str, str]:
    return ("Authentication-Results", f"{authserv_id}; {results}")


def border(*above: tuple[str, str], below: tuple[tuple[str, str], ...] = ()) -> tuple[
        tuple[str, str], ...]:
    """Fields our border MTA wrote (`above`), its Received, then what the sender wrote."""
    return (*above, ("Received", BORDER), *below)


@dataclass(frozen=True)
class Forgery:
    """One attack of issue 10 §3 against a ticket's agent address."""

    name: str
    on_top: tuple[tuple[str, str], ...]
    from_header: str | None = None
    null_sender: bool = False


def forgeries(agent: str) -> list[Forgery]:
    domain = agent.rpartition("@")[2]
    parent = domain.partition(".")[2]  # "example" or "co.uk": a public suffix
    return [
        Forgery("sender's own dkim=pass below the MTA's verdict (the milter layout)",
                (("Received", BORDER), ar(f"dkim=none header.d={domain}"),
                 ar(f"dkim=pass header.d={domain}"))),
        Forgery("sender's own results below another server's Received",
                border(ar("dkim=none"), below=(("Received", SENDER_HOP),
                                                ar(f"dkim=pass header.d={domain}")))),
        Forgery("real dkim=fail on top, forged dkim=pass below",
                border(ar(f"dkim=fail header.d={domain}"),
                       below=(ar(f"dkim=pass header.d={domain}"),))),
        Forgery("display name that looks like the agent",
                border(ar("dmarc=pass header.from=evil.example")),
                from_header=f"{agent} (Agent) <attacker@evil.example>"),
        Forgery("dmarc pass for another header.from",
                border(ar("dmarc=pass header.from=evil.example"))),
        Forgery("dkim d= of the parent domain, a public suffix",
                border(ar(f"dkim=pass header.d={parent}; spf=pass smtp.mailfrom={parent}"))),
        Forgery("dkim d= of a look-alike subdomain",
                border(ar(f"dkim=pass header.d={domain}.evil.example"))),
        Forgery("comment hiding the authserv-id",
                border(("Authentication-Results", f"(mx.relay.test) evil.example; "
                        f"dkim=pass header.d={domain}"))),
        Forgery("null envelope sender (a bounce)",
                border(ar(f"dkim=pass header.d={domain}")), null_sender=True),
    ]


def genuine(agent: str) -> tuple[tuple[str, str], ...]:
    """What our MTA writes for a genuine reply: results above its Received (rspamd, Exim) for
    one shop, below it for the other (Postfix with OpenDKIM and OpenDMARC, last on top)."""
    domain = agent.rpartition("@")[2]
    if agent == ACME_AGENT:
        return border(ar(f"dkim=pass header.d=mail.{domain} (2048-bit key); spf=none"),
                      below=(("Received", SENDER_HOP),))
    return (("Received", BORDER), ar(f"dmarc=pass (p=reject) header.from={domain}"),
            ar(f"dkim=pass header.d={domain}"), ("Received", SENDER_HOP))


def authentication_rows(daemon: Daemon) -> list[str]:
    return [reason for _, reason in outcomes(daemon)]


async def test_smtp_forgeries_publish_nothing_and_mail_nobody_at_either_shop(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    async with relay(make_config, clock, sink, security=SECURE, smtp=TRUSTING) as daemon:
        acme = await ticket_for(daemon, clock, sink, "acme", "ann@example.com")
        bolt = await ticket_for(daemon, clock, sink, "bolt", "bo@example.net")
        before = len(sink.messages)
        sent = 0
        for t in (acme, bolt):
            for forgery in forgeries(t.agent):
                raw = reply(t, f"Forged: {forgery.name}.", on_top=forgery.on_top,
                            from_header=forgery.from_header)
                await smtp_send(daemon, raw, t.reply_to,
                                sender="" if forgery.null_sender else t.agent)
                sent += 1
                assert response_of(daemon, t.review_id) is None, forgery.name
        assert len(sink.messages) == before, "a forgery made the relay send mail"
        reasons = authentication_rows(daemon)
        assert len(reasons) == sent
        assert reasons.count("Automatic mail (null envelope sender) is never answered.") == 2
        samples = await scrape(daemon)
        assert refused(samples, "unauthenticated") == 14
        assert refused(samples, "unauthorised_sender") == 2  # the display-name trick
        assert refused(samples, "automatic") == 2
        # The genuine replies, through the same trusted MTA, are published and emailed.
        for t, customer in ((acme, "ann@example.com"), (bolt, "bo@example.net")):
            await smtp_send(daemon, reply(t, "We will send the right size today.",
                                          on_top=genuine(t.agent)), t.reply_to, sender=t.agent)
            assert response_of(daemon, t.review_id) == "We will send the right size today."
            assert [m["Auto-Submitted"] for m in mails_to(sink, customer)][-1] == "auto-replied"


async def test_behind_an_untrusted_client_even_a_genuine_looking_header_is_ignored(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "mailrelay.app")
    async with relay(make_config, clock, sink, security=SECURE, smtp=DISTRUSTING) as daemon:
        acme = await ticket_for(daemon, clock, sink, "acme", "ann@example.com")
        raw = reply(acme, "Straight to the relay.", on_top=genuine(ACME_AGENT))
        await smtp_send(daemon, raw, acme.reply_to)
        assert response_of(daemon, acme.review_id) is None
        assert notices(sink, ACME_AGENT) == []
        assert refused(await scrape(daemon), "unauthenticated") == 1


async def test_without_trusted_clients_smtp_replies_cannot_authenticate_and_check_says_so(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "mailrelay.app")
    async with relay(make_config, clock, sink, security=SECURE) as daemon:
        assert any("trusted_clients is empty" in r.getMessage() for r in caplog.records)
        acme = await ticket_for(daemon, clock, sink, "acme", "ann@example.com")
        await smtp_send(daemon, reply(acme, "Hello.", on_top=genuine(ACME_AGENT)),
                        acme.reply_to)
        assert response_of(daemon, acme.review_id) is None


async def test_a_null_sender_reply_is_automatic_even_without_authserv_id(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    async with relay(make_config, clock, sink) as daemon:
        bolt = await ticket_for(daemon, clock, sink, "bolt", "bo@example.net")
        before = len(sink.messages)
        await smtp_send(daemon, reply(bolt, "Delivery failed for this one."), bolt.reply_to,
                        sender="")
        assert response_of(daemon, bolt.review_id) is None
        assert len(sink.messages) == before
        assert outcomes(daemon) == [
            ("automatic", "Automatic mail (null envelope sender) is never answered.")]


# --- over IMAP -------------------------------------------------------------------------------


async def filed(server: ImapServer, count: int, limit: float = 20) -> dict[str, int]:
    """Wait until `count` messages have left INBOX; the folder counts."""
    deadline = time.monotonic() + limit
    while True:
        counts = await server.counts()
        done = counts.get("mailrelay/processed", 0) + counts.get("mailrelay/rejected", 0)
        if done >= count and not counts.get("INBOX", 0):
            return counts
        if time.monotonic() > deadline:
            raise AssertionError(f"only {done} of {count} filed: {counts}")
        await asyncio.sleep(0.05)


async def test_imap_forgeries_are_filed_as_rejected_and_mail_nobody_at_either_shop(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink, pymap: ImapServer
) -> None:
    async with relay(make_config, clock, sink, security=SECURE, more=pymap.toml()) as daemon:
        acme = await ticket_for(daemon, clock, sink, "acme", "ann@example.com")
        bolt = await ticket_for(daemon, clock, sink, "bolt", "bo@example.net")
        before = len(sink.messages)
        count = 0
        for t in (acme, bolt):
            for forgery in forgeries(t.agent):
                on_top = forgery.on_top
                if forgery.null_sender:  # over IMAP the bounce shows as an empty Return-Path
                    on_top = (("Return-Path", "<>"), *on_top)
                else:
                    on_top = (("Return-Path", f"<{t.agent}>"), ("Received", LMTP), *on_top)
                await pymap.append(reply(t, f"Forged: {forgery.name}.", on_top=on_top,
                                         from_header=forgery.from_header))
                count += 1
        counts = await filed(pymap, count)
        assert counts.get("mailrelay/rejected", 0) == count
        await drain(daemon)
        assert len(sink.messages) == before
        assert response_of(daemon, acme.review_id) is None
        assert response_of(daemon, bolt.review_id) is None
        assert authentication_rows(daemon).count(
            "Automatic mail (null Return-Path) is never answered.") == 2
        # Genuine ones, delivered by LMTP below our border's results, are published.
        for t in (acme, bolt):
            on_top = (("Return-Path", f"<{t.agent}>"), ("Received", LMTP), *genuine(t.agent))
            await pymap.append(reply(t, "Sorry, a new frame is on its way.", on_top=on_top))
        counts = await filed(pymap, count + 2)
        assert counts.get("mailrelay/processed", 0) == 2
        assert response_of(daemon, acme.review_id) == "Sorry, a new frame is on its way."
        assert response_of(daemon, bolt.review_id) == "Sorry, a new frame is on its way."


async def test_imap_strangers_and_keyless_mail_are_filed_as_rejected_and_get_nothing(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink, pymap: ImapServer
) -> None:
    async with relay(make_config, clock, sink, more=pymap.toml()) as daemon:
        acme = await ticket_for(daemon, clock, sink, "acme", "ann@example.com")
        bolt = await ticket_for(daemon, clock, sink, "bolt", "bo@example.net")
        before = len(sink.messages)
        keyless = EmailMessage()
        keyless["From"] = VICTIM
        keyless["To"] = "reply@relay.test"
        keyless["Subject"] = "Invoice"
        keyless["Message-ID"] = make_msgid(domain="evil.example")
        keyless.set_content("Pay the invoice at https://evil.example/pay\n")
        await pymap.append(keyless.as_bytes())
        await pymap.append(reply(acme, "Stranger text.", sender=STRANGER))
        await pymap.append(reply(bolt, "#note Customer called, refund sent"))
        counts = await filed(pymap, 3)
        assert (counts.get("mailrelay/rejected"), counts.get("mailrelay/processed")) == (2, 1)
        await drain(daemon)
        assert len(sink.messages) == before
        notes = daemon.store.read(lambda q: q.notes_of(bolt.review_id))
        assert [n.body for n in notes] == ["Customer called, refund sent"]


def test_the_deprecated_imap_authserv_id_still_applies_to_smtp_and_imap_with_a_warning(
    make_config: ConfigFactory,
) -> None:
    config: Config = make_config(more=SECOND_SHOP + """
[imap]
host = "127.0.0.1"
username = "replies"
password = "x"
authserv_id = "mx.relay.test"
""")
    assert config.security.authserv_id == OURS
    assert any("imap.authserv_id" in w and "deprecated" in w for w in config.warnings)
