"""Moderation (issue 14) over real peers: an agent's `#report` by mail leaves the review public
and mails the shop's owners; an owner confirms it in the console (hidden, audited, counted on
the public page per reason) or rejects it (public); agents see but cannot decide; another
shop's owner gets 404s; operators decide on the CLI."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.services import moderation
from mailrelay.store import ReportRow

from .cli_runner import cli
from .conftest import ConfigFactory, second_shop
from .mailtools import eventually, mails_to, send, settle, text_of, via_sink
from .sink import Sink
from .test_console_login import base, browser, csrf_of, get, log_in, registered
from .tickets import AGENT, Ticketed, agent_reply, invited_now, submitted, ticketed

OWNER = "boss@acme.example"
BOLT_OWNER = "owner@bolt.example"
ALERTS = "alerts@acme.example"


@pytest.fixture
def shops(make_config: ConfigFactory, sink: Sink) -> Config:
    return via_sink(make_config(shop_extra=f'alerts = ["{ALERTS}"]', more=second_shop()), sink)


@pytest.fixture
async def daemon(shops: Config, clock: FrozenClock) -> AsyncIterator[Daemon]:
    async with Daemon(shops, clock) as running:
        yield running


async def reported(daemon: Daemon, clock: FrozenClock, sink: Sink,
                   reason: str = "spam by a competitor") -> tuple[Ticketed, ReportRow]:
    """A 2★ review of acme, ticketed, and its agent's `#report` by mail (SMTP)."""
    t = await ticketed(daemon, clock, sink)
    await send(daemon, agent_reply(t, f"#report {reason}\n"), t.reply_to, sender=AGENT)
    await settle(daemon)
    [report] = daemon.store.read(lambda q: q.reports("acme"))
    return t, report


async def public_json(http: aiohttp.ClientSession, daemon: Daemon, shop: str = "acme",
                      ) -> dict[str, Any]:
    async with http.get(f"{base(daemon)}/s/{shop}/reviews.json") as resp:
        assert resp.status == 200
        data: dict[str, Any] = await resp.json()
        return data


async def owner_mail(daemon: Daemon, sink: Sink, address: str) -> EmailMessage:
    async def arrived() -> bool:
        await daemon.tick()
        return any(m["Subject"] and "reported" in str(m["Subject"])
                   for m in mails_to(sink, address))

    await eventually(arrived, what=f"the report_pending mail to {address}")
    return next(m for m in mails_to(sink, address) if "reported" in str(m["Subject"]))


async def decide(http: aiohttp.ClientSession, daemon: Daemon, shop: str, report_id: int,
                 decision: str, **fields: str) -> tuple[int, str, str]:
    """Post a decision with the page's CSRF token: (status, Location, body)."""
    _, html = await get(http, f"{base(daemon)}/console/{shop}/moderation")
    data = {"csrf": csrf_of(html), "decision": decision, **fields}
    async with http.post(f"{base(daemon)}/console/{shop}/moderation/{report_id}", data=data,
                         allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.text()


async def test_an_agents_report_waits_for_the_owner_who_is_mailed_and_confirms_it(
    daemon: Daemon, shops: Config, clock: FrozenClock, sink: Sink,
) -> None:
    await registered(daemon, shops, OWNER, "acme")
    t, report = await reported(daemon, clock, sink)
    assert (report.state, report.reporter, report.reason) == (
        "pending", AGENT, "spam by a competitor")
    async with aiohttp.ClientSession() as http:
        listing = await public_json(http, daemon)
        assert [r["id"] for r in listing["reviews"]] == [t.review_id]
        assert listing["removed"] == {"count": 0, "reasons": {}}
    mail = await owner_mail(daemon, sink, OWNER)
    assert f"Review {t.review_id} reported" in str(mail["Subject"])
    assert mail["X-Mailrelay-Shop"] == "acme"
    text = text_of(mail)
    assert "spam by a competitor" in text and AGENT in text
    assert "http://reviews.test/console/acme/moderation" in text
    assert "ann@example.com" not in mail.as_string()
    html = mail.get_body(("html",))
    assert html is not None and "/console/acme/moderation" in str(html.get_content())
    assert mails_to(sink, ALERTS) != []  # the operator's alert, as before, for an owned shop

    async with browser() as http:
        await log_in(http, daemon, OWNER)
        status, page = await get(http, f"{base(daemon)}/console/acme/moderation")
        assert status == 200
        assert "spam by a competitor" in page and AGENT in page and "Late delivery" in page
        assert 'value="confirm"' in page
        status, location, _ = await decide(http, daemon, "acme", report.id, "confirm",
                                           category="spam", note="Same text on three shops.")
        assert (status, location) == (303, "/console/acme/moderation?done=confirmed")
        _, page = await get(http, f"{base(daemon)}{location}")
        assert "The report is confirmed" in page and "No reports are waiting" in page
        status, again, body = await decide(http, daemon, "acme", report.id, "reject")
        assert status == 409 and "decided already" in body
        _, trail = await get(http, f"{base(daemon)}/console/acme/moderation/review/"
                                   f"{t.review_id}")
        assert "reported the review" in trail and "confirmed the report" in trail
        assert "Same text on three shops." in trail and OWNER in trail and AGENT in trail

    review = daemon.store.read(lambda q: q.get_review(t.review_id))
    assert review is not None and review.reported
    audit = daemon.store.read(lambda q: q.review_audit(t.review_id))
    assert [(a.action, a.actor) for a in audit] == [
        ("moderation.reported", AGENT), ("moderation.confirmed", OWNER)]
    assert audit[1].detail["note"] == "Same text on three shops."
    assert audit[1].detail["category"] == "spam"
    async with aiohttp.ClientSession() as http:
        listing = await public_json(http, daemon)
        assert listing["reviews"] == []
        assert listing["removed"] == {"count": 1, "reasons": {"spam": 1}}
        async with http.get(f"{base(daemon)}/s/acme") as resp:
            assert "1 review removed: 1 spam or advertising" in await resp.text()
        assert (await public_json(http, daemon, "bolt"))["removed"] == {
            "count": 0, "reasons": {}}


async def test_an_owner_rejects_a_report_and_the_review_stays_public(
    daemon: Daemon, shops: Config, clock: FrozenClock, sink: Sink,
) -> None:
    await registered(daemon, shops, OWNER, "acme")
    t, report = await reported(daemon, clock, sink, "rude")
    async with browser() as http:
        await log_in(http, daemon, OWNER)
        status, location, _ = await decide(http, daemon, "acme", report.id, "reject",
                                           note="Harsh but fair: it stays.")
        assert (status, location) == (303, "/console/acme/moderation?done=rejected")
        _, page = await get(http, f"{base(daemon)}/console/acme/moderation")
        assert "Harsh but fair: it stays." in page and f"Rejected by {OWNER}" in page
    [decided] = daemon.store.read(lambda q: q.reports("acme", "rejected"))
    assert (decided.decided_by, decided.decision_note) == (OWNER, "Harsh but fair: it stays.")
    audit = daemon.store.read(lambda q: q.review_audit(t.review_id))
    assert [a.action for a in audit] == ["moderation.reported", "moderation.rejected"]
    async with aiohttp.ClientSession() as http:
        listing = await public_json(http, daemon)
        assert [r["id"] for r in listing["reviews"]] == [t.review_id]
        assert listing["removed"] == {"count": 0, "reasons": {}}


async def test_an_agent_sees_reports_but_cannot_decide_and_another_shop_gets_404(
    daemon: Daemon, shops: Config, clock: FrozenClock, sink: Sink,
) -> None:
    await registered(daemon, shops, AGENT, "acme", "agent")
    await registered(daemon, shops, BOLT_OWNER, "bolt")
    t, report = await reported(daemon, clock, sink)
    bolt_invitation = await invited_now(daemon, clock, shop_id="bolt", email="bo@example.com",
                                        name="Bo Berg", reference="B-1")
    bolt_review = await submitted(daemon, clock, bolt_invitation, stars="1", title="Flat tyre",
                                  text="Went flat on day one.", name="Bo Berg")
    now = clock.now()
    review = daemon.store.read(lambda q: q.get_review(bolt_review))
    assert review is not None
    bolt_report = await daemon.store.write(lambda q: moderation.report(
        q, daemon.config, review, "help@bolt.example", "swearing", now))
    async with browser() as http:
        await log_in(http, daemon, AGENT)
        status, page = await get(http, f"{base(daemon)}/console/acme/moderation")
        assert status == 200 and "spam by a competitor" in page
        assert "only an owner of this shop can confirm" in page and 'value="confirm"' not in page
        assert "swearing" not in page  # bolt's report stays in bolt
        status, _, body = await decide(http, daemon, "acme", report.id, "confirm")
        assert status == 403 and "Only an owner can decide" in body
    async with browser() as http:
        await log_in(http, daemon, BOLT_OWNER)
        for path in ("/console/acme/moderation", f"/console/acme/moderation/review/{t.review_id}",
                     f"/console/bolt/moderation/review/{t.review_id}"):
            assert (await get(http, base(daemon) + path))[0] == 404, path
        status, _, _ = await decide(http, daemon, "bolt", report.id, "confirm")
        assert status == 404  # acme's report id, guessed from bolt's page
        async with http.post(f"{base(daemon)}/console/acme/moderation/{report.id}",
                             data={"decision": "confirm"}, allow_redirects=False) as resp:
            assert resp.status == 404
        _, page = await get(http, f"{base(daemon)}/console/bolt/moderation")
        assert "swearing" in page and "spam by a competitor" not in page
        status, _, _ = await decide(http, daemon, "bolt", bolt_report, "confirm",
                                    category="offensive")
        assert status == 303
    acme = daemon.store.read(lambda q: q.get_review(t.review_id))
    assert acme is not None and not acme.reported
    still = daemon.store.read(lambda q: q.get_report(report.id))
    assert still is not None and still.state == "pending"
    async with aiohttp.ClientSession() as http:
        assert (await public_json(http, daemon, "bolt"))["removed"] == {
            "count": 1, "reasons": {"offensive": 1}}
        assert (await public_json(http, daemon))["removed"] == {"count": 0, "reasons": {}}


async def test_a_shop_without_owner_accounts_has_the_owners_mail_sent_to_its_alerts(
    daemon: Daemon, clock: FrozenClock, sink: Sink,
) -> None:
    t, _ = await reported(daemon, clock, sink)
    mail = await owner_mail(daemon, sink, ALERTS)
    assert "please confirm or reject" in str(mail["Subject"])
    # That mail is the shop's notice: no second one (the review_reported alert) to the same
    # address, and none to the agent.
    assert [str(m["Subject"]) for m in mails_to(sink, ALERTS)] == [str(mail["Subject"])]
    assert str(t.review_id) in str(mail["Subject"])


async def test_operators_report_confirm_and_reject_on_the_cli(
    daemon: Daemon, shops: Config, clock: FrozenClock, sink: Sink,
) -> None:
    t, report = await reported(daemon, clock, sink)
    code, out = cli(shops, "reviews", "reports", str(t.review_id))
    assert code == 0 and f"report {report.id} pending" in out, out
    code, out = cli(shops, "reviews", "reject-report", str(report.id), "--note", "fine")
    assert code == 0 and "stays public" in out, out
    code, out = cli(shops, "reviews", "confirm-report", str(report.id))
    assert code == 1 and "decided already" in out, out
    code, out = cli(shops, "reviews", "report", str(t.review_id), "--reason",
                    "phone number in the text", "--public-reason", "personal_data")
    assert code == 0 and "hidden" in out, out
    async with aiohttp.ClientSession() as http:
        listing = await public_json(http, daemon)
        assert listing["reviews"] == []
        assert listing["removed"] == {"count": 1, "reasons": {"personal_data": 1}}
    code, out = cli(shops, "reviews", "unreport", str(t.review_id))
    assert code == 0, out
    async with aiohttp.ClientSession() as http:
        assert (await public_json(http, daemon))["removed"] == {"count": 0, "reasons": {}}
    actions = [a.action for a in daemon.store.read(lambda q: q.review_audit(t.review_id))]
    assert actions == ["moderation.reported", "moderation.rejected", "moderation.reported",
                       "moderation.confirmed"]
    assert re.search(r"report \d+ confirmed by operator \(cli\)",
                     cli(shops, "reviews", "reports", str(t.review_id))[1])
