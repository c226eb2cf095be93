"""The suggested answer in the agent's ticket (issue 14): under its localized heading in the text
and HTML parts of every locale, and never published when the agent replies above the quote."""

from __future__ import annotations

import asyncio
import sys
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.core.locales import BUILTIN_LOCALES
from mailrelay.render import Templates
from mailrelay.services.replies import ReplyOutcome

from .conftest import ConfigFactory
from .mailtools import customer_mails, drain, send, settle, text_of, via_sink
from .sink import Sink
from .tickets import AGENT, agent_reply, invited_now, submitted, ticket_of, ticketed

HEADINGS = {
    "en": "Suggested answer", "de": "Antwortvorschlag", "da": "Forslag til svar",
    "nl": "Voorgesteld antwoord", "sv": "Förslag till svar", "nb": "Forslag til svar",
    "fi": "Vastausehdotus", "fr": "Réponse suggérée", "es": "Respuesta sugerida",
    "it": "Risposta suggerita", "pl": "Proponowana odpowiedź",
}
DRAFT = "Hello Ann,\n\nWe are sorry about the wait.\n\nKind regards,\nACME Shoes"


@pytest.mark.parametrize("locale", BUILTIN_LOCALES)
def test_every_locales_ticket_shows_the_suggested_answer_under_its_heading(
        config: Config, locale: str) -> None:
    shop = config.shops[0]
    context = {"stars": 2, "stars_bar": "★★☆☆☆", "key": "k7q2", "marker": "##-",
               "suggested_answer": DRAFT,
               "suggested_paragraphs": [p.split("\n") for p in DRAFT.split("\n\n")]}
    _subject, text, html, used = Templates(config).render_text(shop, "ticket", locale,
                                                               **context)
    assert used == locale
    heading = HEADINGS[locale]
    assert f"{heading}\n{'-' * len(heading)}\n" in text
    assert f"\n\n{DRAFT}\n\n" in text  # unindented: ready to copy
    assert f">{heading}</p>" in html
    assert "We are sorry about the wait." in html and "Kind regards,<br>ACME Shoes" in html
    without = {**context, "suggested_answer": None, "suggested_paragraphs": []}
    _subject, text, html, _used = Templates(config).render_text(shop, "ticket", locale,
                                                                **without)
    assert heading not in text and heading not in html


async def test_a_low_rating_ticket_carries_a_draft_and_a_reply_above_it_publishes_only_the_reply(
        config: Config, clock: FrozenClock, sink: Sink) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)  # 2★ "The parcel took two weeks to arrive."
        text = text_of(t.ticket).replace("\r\n", "\n")
        section = text.split("Suggested answer\n----------------\n", 1)[1]
        assert section.split("\n\n")[1] == "Hello Ann,"
        assert "Thank you for your review of order 1057." in section
        assert "took longer than it should have" in section  # the "late" topic
        html = t.ticket.get_body(preferencelist=("html",))
        assert html is not None and "data-mailrelay-draft" in str(html.get_content())
        raw = agent_reply(t, "Hi Ann, the courier lost a week; a new pair is on its way.")
        await send(daemon, raw, t.reply_to, sender=AGENT)
        await settle(daemon)
        await drain(daemon)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None
        assert review.response == "Hi Ann, the courier lost a week; a new pair is on its way."
        [mail] = customer_mails(sink)
        assert "took longer than it should have" not in text_of(mail)


async def test_a_reply_that_pastes_the_ticket_without_quote_marks_still_publishes_only_the_reply(
        config: Config, clock: FrozenClock, sink: Sink) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        pasted = agent_reply(t, "Ann, we are sorry. A new pair left today.\n\n"
                             + text_of(t.ticket), quote=False)
        await send(daemon, pasted, t.reply_to, sender=AGENT)
        await settle(daemon)
        await drain(daemon)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None
        assert review.response == "Ann, we are sorry. A new pair left today."


async def test_a_reply_made_of_the_edited_draft_is_published_as_written(
        config: Config, clock: FrozenClock, sink: Sink) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        text = text_of(t.ticket).replace("\r\n", "\n")
        section = text.split("Suggested answer\n----------------\n", 1)[1]
        draft = section.split("\n\n", 1)[1].split("\n\nHow to answer", 1)[0].strip()
        edited = draft.replace("We are checking with the carrier",
                               "The carrier has confirmed the hold-up; we are checking")
        await send(daemon, agent_reply(t, edited), t.reply_to, sender=AGENT)
        await settle(daemon)
        await drain(daemon)
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None and review.response == edited


async def test_four_and_five_star_tickets_carry_no_draft(config: Config, clock: FrozenClock,
                                                         sink: Sink) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        inv = await invited_now(daemon, clock, shop_id="acme", email="bo@example.com",
                                name="Bo Berg", reference="2001")
        review_id = await submitted(daemon, clock, inv, stars="4", title="Good",
                                    text="Late, but good shoes.", name="Bo Berg")
        await daemon.tick()
        ticket = ticket_of(sink, review_id)
        assert "Suggested answer" not in text_of(ticket)


async def test_a_slow_generator_does_not_hold_up_the_daemon(
        make_config: ConfigFactory, clock: FrozenClock, sink: Sink, tmp_path: Path) -> None:
    script = tmp_path / "slow_generator.py"
    script.write_text("import sys, time\nsys.stdin.read()\ntime.sleep(3)\n"
                      "print('Hello Ann, slow but sure.')\n")
    config = make_config(more=f'[drafts]\ncommand = "{sys.executable} {script}"\n')
    async with Daemon(via_sink(config, sink), clock) as daemon, aiohttp.ClientSession() as http:
        inv = await invited_now(daemon, clock, shop_id="acme", email="ann@example.com",
                                name="Ann Lee", reference="1057")
        review_id = await submitted(daemon, clock, inv, stars="2", title="Slow",
                                    text="It came late.", name="Ann Lee")
        rendering = asyncio.create_task(daemon.tick())
        await asyncio.sleep(0.3)  # the generator is running now
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with http.get(f"http://127.0.0.1:{daemon.http_port}/healthz") as resp:
            await resp.read()
        assert loop.time() - started < 1.5
        assert not rendering.done()
        await rendering
        await drain(daemon)
        assert "Hello Ann, slow but sure." in text_of(ticket_of(sink, review_id))


async def test_a_ticket_still_goes_out_when_the_shops_draft_files_are_broken(
        make_config: ConfigFactory, clock: FrozenClock, sink: Sink, tmp_path: Path) -> None:
    own = tmp_path / "own" / "drafts" / "en"
    own.mkdir(parents=True)
    (own / "opening.j2").write_text("{% if stars %}unclosed")
    config = make_config(shop_extra=f'templates_dir = "{tmp_path / "own"}"')
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        text = text_of(t.ticket)
        assert "The parcel took two weeks to arrive." in text
        assert "Suggested answer" not in text


async def test_an_html_reply_quoting_the_html_ticket_publishes_only_the_agents_words(
        config: Config, clock: FrozenClock, sink: Sink) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        part = t.ticket.get_body(preferencelist=("html",))
        assert part is not None
        ticket_html = str(part.get_content())
        assert "took longer than it should have" in ticket_html
        msg = EmailMessage()
        msg["From"] = f"Support <{AGENT}>"
        msg["To"] = t.reply_to
        msg["Subject"] = "Re: review"
        msg["Message-ID"] = make_msgid(domain="acme.example")
        inner = ticket_html.split("<body", 1)[1].split(">", 1)[1].rsplit("</body>", 1)[0]
        msg.set_content(
            "<html><body><div>Ann, a new pair is on its way today.</div><br>"
            '<div class="gmail_quote"><div>On Mon, 23 Nov 2026 at 10:00, ACME Shoes '
            f"&lt;{AGENT}&gt; wrote:</div><blockquote>{inner}</blockquote></div>"
            "</body></html>", subtype="html")
        result = await daemon.replier.process(msg.as_bytes(), source="imap")
        assert result.outcome == ReplyOutcome.PUBLISHED, result
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None
        assert review.response == "Ann, a new pair is on its way today."
