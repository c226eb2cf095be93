"""Moderation gaps a new owner found (issue 14): a second report of a review an owner has yet to
decide is attached to the waiting one (audited, shown, no second owners' mail), by mail and in
the console; after a rejection a report starts afresh; and the public-reason select starts on
the category the agent's reason names, in the page's language."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.services.report_category import suggested_category
from mailrelay.store import open_store

from .cli_runner import cli
from .conftest import ConfigFactory, second_shop
from .mailtools import drain, mails_to, send, settle, via_sink
from .sink import Sink
from .test_console_inbox import answer
from .test_console_login import base, browser, get, log_in, registered
from .test_moderation import OWNER, decide, reported
from .tickets import AGENT, agent_reply

SECOND_AGENT = "helper@acme.example"


@pytest.fixture
def shops(make_config: ConfigFactory, sink: Sink) -> Config:
    return via_sink(make_config(more=second_shop()), sink)


@pytest.fixture
async def daemon(shops: Config, clock: FrozenClock) -> AsyncIterator[Daemon]:
    async with Daemon(shops, clock) as running:
        yield running


def owner_mails(sink: Sink) -> list[str]:
    return [str(m["Subject"]) for m in mails_to(sink, OWNER) if "reported" in str(m["Subject"])]


def reply_reasons(shops: Config) -> list[str]:
    with open_store(shops.store) as store:
        return store.read(lambda q: [str(r[0]) for r in q.conn.execute(
            "SELECT reason FROM replies WHERE outcome = 'reported' ORDER BY id")])


async def test_a_second_report_while_one_waits_is_attached_and_mails_no_owner_again(
    daemon: Daemon, shops: Config, clock: FrozenClock, sink: Sink,
) -> None:
    await registered(daemon, shops, OWNER, "acme")
    await registered(daemon, shops, SECOND_AGENT, "acme", "agent")
    t, report = await reported(daemon, clock, sink, reason="spam by a competitor")
    await drain(daemon)
    assert len(owner_mails(sink)) == 1
    # The same agent mails #report again; a second agent reports it in the console.
    await send(daemon, agent_reply(t, "#report the same text is on three shops\n"),
               t.reply_to, sender=AGENT)
    await settle(daemon)
    async with browser() as http:
        await log_in(http, daemon, SECOND_AGENT)
        resp = await answer(http, daemon, "acme", t.review_id, do="report",
                            reason="advert for a rival")
        assert resp.headers["Location"].endswith("?done=reported_again")
        _, page = await get(http, base(daemon) + resp.headers["Location"])
        assert "was reported already and waits for an owner" in page
    await drain(daemon)
    assert len(owner_mails(sink)) == 1
    [waiting] = daemon.store.read(lambda q: q.reports("acme"))
    assert waiting.id == report.id
    assert [r.state for r in daemon.store.read(lambda q: q.reports_of_review(t.review_id))] \
        == ["pending"]
    reasons = reply_reasons(shops)
    assert reasons[0] == "spam by a competitor"
    assert all("already waiting for an owner" in reason for reason in reasons[1:]), reasons
    assert len(reasons) == 3
    audit = daemon.store.read(lambda q: q.review_audit(t.review_id))
    assert [(a.action, a.actor, a.detail.get("reason")) for a in audit] == [
        ("moderation.reported", AGENT, "spam by a competitor"),
        ("moderation.reported_again", AGENT, "the same text is on three shops"),
        ("moderation.reported_again", SECOND_AGENT, "advert for a rival")]
    code, out = cli(shops, "reviews", "reports", str(t.review_id))
    assert code == 0 and f"  also reported by {SECOND_AGENT}: advert for a rival" in out, out
    async with browser() as http:
        await log_in(http, daemon, OWNER)
        _, page = await get(http, f"{base(daemon)}/console/acme/moderation")
        assert "Also reported by" in page
        assert f"{AGENT}: the same text is on three shops" in page
        assert f"{SECOND_AGENT}: advert for a rival" in page
        _, trail = await get(http, f"{base(daemon)}/console/acme/moderation/review/"
                                   f"{t.review_id}")
        assert "reported the review too, while a report was waiting" in trail
        status, _, _ = await decide(http, daemon, "acme", report.id, "reject")
        assert status == 303
    # After the rejection a report starts a new pending one, and mails the owners again.
    await send(daemon, agent_reply(t, "#report now it names a phone number\n"),
               t.reply_to, sender=AGENT)
    await settle(daemon)
    await drain(daemon)
    states = [(r.state, r.reason) for r in
              daemon.store.read(lambda q: q.reports_of_review(t.review_id))]
    assert states == [("rejected", "spam by a competitor"),
                      ("pending", "now it names a phone number")]
    assert len(owner_mails(sink)) == 2


def selected(page: str, report_id: int) -> str:
    select = re.search(rf'<select id="category-{report_id}"[^>]*>(.*?)</select>', page, re.S)
    assert select is not None
    chosen = re.findall(r'<option value="(\w+)" selected>', select.group(1))
    assert len(chosen) == 1, chosen
    return chosen[0]


@pytest.mark.parametrize(("language", "reason", "category"), [
    ("en", "spam", "spam"),
    ("en", "Fake review, not a customer of ours", "not_a_customer"),
    ("en", "the delivery was late", "other"),
    ("de", "Werbung für einen anderen Shop", "spam"),
    ("de", "personenbezogene Daten im Text", "personal_data"),
    ("de", "themenfremd und beleidigend", "other"),
])
async def test_the_public_reason_starts_on_the_category_the_agents_reason_names(
    daemon: Daemon, shops: Config, clock: FrozenClock, sink: Sink, language: str, reason: str,
    category: str,
) -> None:
    await registered(daemon, shops, OWNER, "acme")
    _, report = await reported(daemon, clock, sink, reason=reason)
    async with browser() as http:
        http.headers["Accept-Language"] = language
        await log_in(http, daemon, OWNER)
        _, page = await get(http, f"{base(daemon)}/console/acme/moderation")
    assert selected(page, report.id) == category


@pytest.mark.parametrize(("reason", "category"), [
    ("SPAM!!", "spam"), ("advertising", "spam"), ("Reklame for en anden butik", "spam"),
    ("off-topic", "off_topic"), ("hors sujet", "off_topic"), ("Offensive words", "offensive"),
    ("obraźliwe słowa", "offensive"), ("contains her phone number", "personal_data"),
    ("dati personali", "personal_data"), ("konkurrent skrev den", "not_a_customer"),
    ("spam and offensive", "other"), ("other", "other"), ("", "other"),
    ("adverse reaction to the glue", "other"),
])
def test_a_reason_names_a_category_by_whole_words_in_any_locale(reason: str,
                                                                  category: str) -> None:
    assert suggested_category(reason) == category


def test_a_reason_names_a_category_by_the_pages_own_label() -> None:
    assert suggested_category("Anstößig", {"offensive": "anstößig"}) == "offensive"
    assert suggested_category("quite wrong here") == "other"
    assert suggested_category("quite wrong here", {"off_topic": "wrong here"}) == "off_topic"


def test_a_reason_quoting_the_attached_wording_is_no_attached_report() -> None:
    from mailrelay.services.moderation import attached_note, was_attached

    assert was_attached("spam " + attached_note(12))
    assert not was_attached("it says already waiting for an owner")
    assert not was_attached(f"see {attached_note(12)} and more")
