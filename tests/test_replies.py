"""Agent replies: the SMTP reply+ path and the shared processing (authorisation, directives,
quote stripping, customer email, rejections)."""

from __future__ import annotations

import json
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import aiohttp
import aiosmtplib
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.core.reply_marker import REPLY_MARKER
from mailrelay.services import moderation
from mailrelay.services.moderation import Decision
from mailrelay.services.replies import ReplyOutcome, parse_directives

from .conftest import ConfigFactory
from .mailtools import (
    customer_mails,
    drain,
    mails_to,
    notices,
    parsed,
    send,
    settle,
    text_of,
    via_sink,
)
from .sink import Sink
from .tickets import AGENT, agent_reply, ticketed


async def send_reply(daemon: Daemon, raw: bytes, rcpt: str) -> None:
    await send(daemon, raw, rcpt, sender=AGENT)
    await settle(daemon)
    await drain(daemon)


async def test_agent_reply_by_smtp_is_published_and_emailed_to_the_customer_once(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        raw = agent_reply(t, "Sorry about the delay, Ann!\n\nWe have refunded the shipping.")
        await send_reply(daemon, raw, t.reply_to)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None
        assert review.response == ("Sorry about the delay, Ann!\n\n"
                                      "We have refunded the shipping.")
        [mail] = customer_mails(sink)
        assert mail["In-Reply-To"] == t.invitation_mid
        assert t.invitation_mid in str(mail["References"])
        assert mail["Thread-Index"]
        assert "refunded the shipping" in text_of(mail)
        assert REPLY_MARKER not in text_of(mail)
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{daemon.http_port}/s/acme/reviews.json"
            async with http.get(url) as resp:
                data = await resp.json()
        assert data["reviews"][0]["response"]["text"].startswith("Sorry about the delay")
        # The same mail again (a retry, or IMAP and SMTP both): nothing new.
        await send_reply(daemon, raw, t.reply_to)
        assert len(customer_mails(sink)) == 1
        assert len(daemon.store.read(lambda q: q.responses_of(t.review_id))) == 1


async def test_a_later_reply_replaces_the_public_response_and_keeps_history(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        await send_reply(daemon, agent_reply(t, "First answer."), t.reply_to)
        clock.advance(timedelta(hours=1))
        await send_reply(daemon, agent_reply(t, "A better answer."), t.reply_to)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None and review.response == "A better answer."
        history = daemon.store.read(lambda q: q.responses_of(t.review_id))
        assert [h.body for h in history] == ["First answer.", "A better answer."]
        assert history[0].replaced_at is not None


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        ("#note\nCustomer called, refund sent.", "note"),
        ("#noemail\nThanks for the feedback.", "noemail"),
        ("#report abusive language\n", "report"),
        ("#tag shipping\n#tag gls\nWe are sorry.", "tags"),
        ("#note Customer called, refund sent.", "note"),
        ("#tag shipping #tag GLS\nWe are sorry.", "tags"),
        ("#noemail Thanks for the feedback.", "noemail"),
    ],
)
async def test_reply_directives(
    config: Config, clock: FrozenClock, sink: Sink, body: str, outcome: str
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        await send_reply(daemon, agent_reply(t, body), t.reply_to)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None
        if outcome == "note":
            assert review.response is None
            assert daemon.store.read(lambda q: q.notes_of(t.review_id))[0].body == (
                "Customer called, refund sent.")
            assert customer_mails(sink) == []
        elif outcome == "noemail":
            assert review.response == "Thanks for the feedback."
            assert customer_mails(sink) == []
        elif outcome == "report":
            # Issue 14: the report waits for an owner (the review stays public); confirmed,
            # here through the service the console calls, it hides the review.
            assert review.reported == 0 and review.response is None
            [pending] = daemon.store.read(lambda q: q.reports("acme"))
            assert pending.reason == "abusive language"
            decision = Decision(True, "owner@acme.example", None, "offensive")
            assert await daemon.store.write(lambda q: moderation.decide(
                q, daemon.config, "acme", pending.id, decision, clock.now())) is None
            review = daemon.store.read(lambda q: q.get_review(t.review_id))
            assert review is not None
            assert review.reported == 1 and review.report_reason == "abusive language"
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{daemon.http_port}/s/acme/reviews.json"
                async with http.get(url) as resp:
                    assert (await resp.json())["reviews"] == []
        else:
            assert review.tags == ["gls", "shipping"]
            assert review.response == "We are sorry."
            assert len(customer_mails(sink)) == 1


async def test_reply_from_an_unauthorised_sender_is_refused_and_nobody_is_told(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        for _ in range(2):
            raw = agent_reply(t, "I am not an agent.", sender="mallory@evil.example")
            await send_reply(daemon, raw, t.reply_to)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None and review.response is None
        # Issue 10 §2: a notice would confirm the key and quote the stranger's text.
        assert mails_to(sink, "mallory@evil.example") == []
        assert notices(sink, AGENT) == []
        assert customer_mails(sink) == []


async def test_reply_to_and_sender_headers_never_authorise(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        raw = agent_reply(t, "Sneaky.", sender="mallory@evil.example",
                          headers={"Sender": AGENT, "Reply-To": AGENT})
        await send_reply(daemon, raw, t.reply_to)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None and review.response is None


async def test_colleague_matching_agent_senders_may_answer(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    cfg = via_sink(config, sink, agent_senders=("*@acme.example",))
    async with Daemon(cfg, clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        await send_reply(daemon, agent_reply(t, "Colleague here.", sender="kim@acme.example"),
                         t.reply_to)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None and review.response == "Colleague here."


async def test_forged_or_altered_reply_address_is_refused_at_rcpt(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        local, _, domain = t.reply_to.partition("@")
        key = local.removeprefix("reply+")
        # Change a character in the middle: the last base32 one carries 2 unused bits.
        middle = len(key) // 2
        flipped = "a" if key[middle] != "a" else "b"
        altered = f"reply+{key[:middle]}{flipped}{key[middle + 1:]}@{domain}"
        forged = f"reply+{'a' * 42}@{domain}"
        for address in (altered, forged):
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
                await send(daemon, agent_reply(t, "x", to=address), address, sender=AGENT)
            assert refused.value.recipients[0].code == 550


async def test_reply_with_an_expired_key_is_refused_and_explained(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        clock.advance(timedelta(days=91))
        await send_reply(daemon, agent_reply(t, "Too late?"), t.reply_to)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None and review.response is None
        assert "expired" in str(notices(sink, AGENT)[0]["Subject"])


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"X-Autoreply": "yes"},
        {"Precedence": "bulk"},
    ],
    ids=["auto-submitted", "x-autoreply", "precedence"],
)
async def test_automatic_mail_is_dropped_quietly(
    config: Config, clock: FrozenClock, sink: Sink, headers: dict[str, str]
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        await send_reply(daemon, agent_reply(t, "I am out of the office.", headers=headers),
                         t.reply_to)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None and review.response is None
        assert notices(sink, AGENT) == []
        assert daemon.store.read(lambda q: q.replies_by_outcome()) == {"automatic": 1}


@pytest.mark.parametrize(
    "subject",
    ["Out of Office: Re: review", "Abwesenheitsnotiz: Ihre Bewertung", "Fraværende: anmeldelse",
     "Automatisch antwoord: review", "Réponse automatique : avis", "Frånvaro: recension",
     "Fuera de la oficina: reseña", "Automatic reply: Review"],
)
async def test_out_of_office_subjects_in_eight_languages_are_automatic(
    config: Config, clock: FrozenClock, sink: Sink, subject: str
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        raw = agent_reply(t, "I am away until Monday.")
        msg = parsed(raw)
        del msg["Subject"]
        msg["Subject"] = subject
        result = await daemon.replier.process(msg.as_bytes(), source="imap")
        assert result.outcome == ReplyOutcome.AUTOMATIC
        assert not result.processed


async def test_delivery_status_notification_is_dropped_quietly(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        dsn = (
            "From: Mail Delivery System <MAILER-DAEMON@mx.acme.example>\r\n"
            f"To: {t.reply_to}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            "Message-ID: <dsn1@mx.acme.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.acme.example\r\n\r\nFinal-Recipient: rfc822; x@y\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n--b--\r\n"
        ).encode()
        result = await daemon.replier.process(dsn, source="imap")
        assert result.outcome == ReplyOutcome.AUTOMATIC
        assert notices(sink, "mailer-daemon@mx.acme.example") == []


async def test_reply_with_only_quoted_text_is_not_sent_and_the_agent_is_told(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        await send_reply(daemon, agent_reply(t, ""), t.reply_to)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None and review.response is None
        assert customer_mails(sink) == []
        [notice] = notices(sink, AGENT)
        assert "empty" in str(notice["Subject"])


async def test_reply_found_through_in_reply_to_when_the_address_was_rewritten(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        raw = agent_reply(t, "Found by thread.", to="helpdesk@acme.example")
        result = await daemon.replier.process(raw, source="imap")
        assert result.outcome == ReplyOutcome.PUBLISHED, result
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None and review.response == "Found by thread."


async def test_html_only_outlook_reply_is_converted_and_trimmed(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        msg = EmailMessage()
        msg["From"] = f"Support <{AGENT}>"
        msg["To"] = t.reply_to
        msg["Subject"] = "RE: review"
        msg["Message-ID"] = make_msgid(domain="acme.example")
        html = (
            "<html><body><div>Thank you for telling us.</div><div>We will do better.</div>"
            '<div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>From:</b> ACME '
            f"&lt;{AGENT}&gt;<br><b>Sent:</b> Monday<br><b>Subject:</b> Review</div>"
            f"<div>{REPLY_MARKER}<br>The parcel took two weeks to arrive.</div>"
            "</body></html>"
        )
        msg.set_content(html, subtype="html")
        result = await daemon.replier.process(msg.as_bytes(), source="imap")
        assert result.outcome == ReplyOutcome.PUBLISHED, result
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None
        assert "Thank you for telling us." in review.response
        assert "two weeks" not in review.response
        assert "From:" not in review.response


async def test_german_outlook_reply_is_trimmed(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        body = (
            "Vielen Dank für Ihre Bewertung, das tut uns leid.\n\n"
            "Mit freundlichen Grüßen\nIhr ACME Team\n\n"
            "Von: ACME Shoes <support@acme.example>\nGesendet: Montag, 23. November 2026 10:00\n"
            f"An: {t.reply_to}\nBetreff: Bewertung\n\n{REPLY_MARKER}\n"
            "The parcel took two weeks to arrive.\n"
        )
        result = await daemon.replier.process(agent_reply(t, body, quote=False), source="imap")
        assert result.outcome == ReplyOutcome.PUBLISHED, result
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None
        assert review.response.startswith("Vielen Dank für Ihre Bewertung")
        assert "Gesendet" not in review.response and "two weeks" not in review.response


async def test_danish_apple_mail_reply_is_trimmed(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        quoted = "\n".join("> " + line for line in text_of(t.ticket).splitlines())
        body = ("Tak for din anmeldelse. Vi beklager forsinkelsen.\n\nSendt fra min iPhone\n\n"
                f"Den 23. nov. 2026 kl. 10.00 skrev ACME Shoes <{AGENT}>:\n\n{quoted}\n")
        result = await daemon.replier.process(agent_reply(t, body, quote=False), source="imap")
        assert result.outcome == ReplyOutcome.PUBLISHED, result
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None
        assert review.response == "Tak for din anmeldelse. Vi beklager forsinkelsen."


async def test_authentication_results_from_our_server_must_pass_when_authserv_id_is_set(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    config = make_config(security_extra='authserv_id = "mx.relay.test"\n')
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        forged = agent_reply(t, "Spoofed.", headers={
            "Authentication-Results": "mx.relay.test; dkim=fail header.d=acme.example"})
        faked = agent_reply(t, "Fake header from elsewhere.", headers={
            "Authentication-Results": "evil.example; dkim=pass header.d=acme.example"})
        good = agent_reply(t, "Genuine.", headers={
            "Authentication-Results": "mx.relay.test; dkim=pass header.d=acme.example; spf=fail"})
        for raw in (forged, faked):
            result = await daemon.replier.process(raw, source="imap")
            assert result.outcome == ReplyOutcome.REJECTED and "vouch" in result.reason
            assert result.refusal == "unauthenticated" and not result.notified
        assert notices(sink, AGENT) == []  # possibly forged: never answered
        result = await daemon.replier.process(good, source="imap")
        assert result.outcome == ReplyOutcome.PUBLISHED


def test_directives_share_a_line_and_carry_their_text() -> None:
    note = parse_directives("#note Customer called, refund sent")
    assert note.note and note.body == "Customer called, refund sent"
    more = parse_directives("#note Customer called.\nRefund sent on Monday.")
    assert more.body == "Customer called.\nRefund sent on Monday."
    tags = parse_directives("#tag late #tag box")
    assert tags.tags == ("late", "box") and tags.body == ""
    mixed = parse_directives("#noemail #tag late Sorry for the wait.\nBest, Kim")
    assert mixed.noemail and mixed.tags == ("late",)
    assert mixed.body == "Sorry for the wait.\nBest, Kim"
    report = parse_directives("#report Written by a competitor\nSame IP as the others.")
    assert report.report == "Written by a competitor"
    assert report.body == "Same IP as the others."
    assert parse_directives("#NOTE Called back").body == "Called back"
    # A note's own text may mention a directive; it stays text.
    assert parse_directives("#note asked to #tag it").body == "asked to #tag it"
    for text in ("#notes from the call", "#tag", "#tag a,b", "#1 priority"):
        plain = parse_directives(text)
        assert plain.body == text and not (plain.note or plain.tags), text


def test_directives_are_read_only_at_the_top() -> None:
    d = parse_directives("#tag Shipping\n\n#noemail\nHello\n#note not a directive here")
    assert d.tags == ("shipping",) and d.noemail and not d.note
    assert d.body == "Hello\n#note not a directive here"
    plain = parse_directives("#1 priority for us is you.")
    assert plain.body == "#1 priority for us is you." and not plain.tags


async def test_replies_json_reflects_a_new_response_at_once(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        await daemon.replier.process(agent_reply(t, "Published now."), source="imap")
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{daemon.http_port}/s/acme"
            async with http.get(url) as resp:
                assert "Published now." in await resp.text()
        assert json.dumps(daemon.store.read(lambda q: q.replies_by_outcome())) == (
            '{"published": 1}')


async def test_a_second_copy_of_a_refused_reply_is_filed_as_refused_again(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        raw = agent_reply(t, "Not mine to answer.", sender="mallory@evil.example")
        first = await daemon.replier.process(raw, source="imap")
        again = await daemon.replier.process(raw, source="imap")
        assert first.outcome == ReplyOutcome.REJECTED and not first.processed
        assert again.outcome == ReplyOutcome.DUPLICATE and not again.processed
        good = agent_reply(t, "Thanks!")
        assert (await daemon.replier.process(good, source="imap")).processed
        assert (await daemon.replier.process(good, source="imap")).processed
