"""The agents' inbox and answering in the browser (issue 14) over real HTTP: the queue of
reviews awaiting an answer (1–3★ first, then oldest), its filters and counts; one review with
the customer's context; each answer (publish + email, publish only, note, tags, report, and
the preview) through the same path as an emailed reply; CSRF; and two shops whose agents
cannot read or act on each other's reviews by guessing ids."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.store import NewInvitation, NewProductReview, NewReview, Queries, ReviewText

from .conftest import ConfigFactory, second_shop
from .mailtools import customer_mails, drain, scrape, via_sink
from .sink import Sink
from .test_alerts import BOSS, OWNER, alert_count, alerts_to, delivered, two_shops
from .test_console_login import base, browser, csrf_of, get, log_in, post, registered

AGENT = "agent@acme.example"
BOLT_AGENT = "agent@bolt.example"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def add_review(q: Queries, shop: str, stars: int, name: str, at: datetime, *,
               text: str = "It came on time.", title: str | None = None) -> int:
    email = f"{name.lower()}@example.com"
    order = f"ORD-{name}-{at:%m%d}"
    invitation = q.insert_invitation(NewInvitation(
        shop=shop, shipment_id=None, customer_email=email, customer_name=name,
        reference=order, locale="en", method="automatic", status="sent",
        token=f"token-{shop}-{order}", created_at=at, due_at=at, sent_at=at))
    review = q.insert_review(NewReview(
        shop=shop, invitation_id=invitation, method="automatic",
        text=ReviewText(stars, title, text, name), customer_email=email,
        reference=order, locale="en", created_at=at))
    q.link_review(invitation, review)
    return review


@dataclass
class Seeded:
    ann5: int  # oldest, 5★
    bob2: int  # 2★, a day later, tagged "late", rated the boots
    cid1: int  # 1★, two days later
    dan3_answered: int
    eve2_reported: int
    bolt1: int


def seed(q: Queries) -> Seeded:
    ids = Seeded(
        add_review(q, "acme", 5, "Ann", T0, text="Lovely boots."),
        add_review(q, "acme", 2, "Bob", T0 + timedelta(days=1), text="The parcel was late.",
                   title="Slow"),
        add_review(q, "acme", 1, "Cid", T0 + timedelta(days=2), text="Box arrived crushed."),
        add_review(q, "acme", 3, "Dan", T0 - timedelta(days=3)),
        add_review(q, "acme", 2, "Eve", T0 - timedelta(days=2)),
        add_review(q, "bolt", 1, "Fay", T0 - timedelta(days=5), text="Bolt's own review."),
    )
    q.add_tag(ids.bob2, "late", T0)
    q.save_product_reviews(ids.bob2, "acme", [NewProductReview(
        n=1, stars=2, text="Pinches.", sku="BOOT-42", name="Trail boot")], T0)
    q.add_response(ids.dan3_answered, "Thanks, Dan.", "agent@acme.example", "agent", T0)
    q.report_review(ids.eve2_reported, "spam", T0)
    return ids


@pytest.fixture
async def sink_daemon(make_config: ConfigFactory, clock: FrozenClock,
                      sink: Sink) -> AsyncIterator[tuple[Daemon, Config, Seeded]]:
    shops = make_config(more=second_shop())
    async with Daemon(via_sink(shops, sink), clock) as daemon:
        ids = await daemon.store.write(seed)
        await registered(daemon, shops, AGENT, "acme", "agent")
        await registered(daemon, shops, BOLT_AGENT, "bolt", "agent")
        yield daemon, shops, ids


async def logged_in(daemon: Daemon, email: str) -> aiohttp.ClientSession:
    http = browser()
    resp = await log_in(http, daemon, email)
    assert resp.status == 303
    return http


def review_links(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'href="/console/acme/r/(\d+)"', html)]


async def test_the_inbox_lists_waiting_reviews_low_stars_first_then_oldest_with_counts(
        sink_daemon: tuple[Daemon, Config, Seeded]) -> None:
    daemon, _, ids = sink_daemon
    async with await logged_in(daemon, AGENT) as http:
        status, html = await get(http, base(daemon) + "/console/acme/")
    assert status == 200
    # Answered, reported and the other shop's reviews are not waiting.
    assert review_links(html) == [ids.bob2, ids.cid1, ids.ann5]
    assert "3 reviews are waiting for an answer." in html
    assert "1 star (1)" in html and "2 stars (1)" in html and "3 stars (0)" in html
    assert "5 stars (1)" in html and "Bolt" not in html.replace("Bolt Bikes", "")


@pytest.mark.parametrize(("query", "expected"), [
    ("stars=1", ["cid1"]),
    ("tag=LATE", ["bob2"]),
    ("sku=BOOT-42", ["bob2"]),
    ("q=crushed", ["cid1"]),
    ("q=100%25", []),
    ("stars=9&q=", ["bob2", "cid1", "ann5"]),  # what is not a filter is ignored
])
async def test_the_inbox_filters_by_stars_tag_product_and_words(
        sink_daemon: tuple[Daemon, Config, Seeded], query: str, expected: list[str]) -> None:
    daemon, _, ids = sink_daemon
    async with await logged_in(daemon, AGENT) as http:
        status, html = await get(http, base(daemon) + "/console/acme/?" + query)
    assert status == 200
    assert review_links(html) == [getattr(ids, name) for name in expected]


async def test_the_inbox_pages_through_many_waiting_reviews(
        sink_daemon: tuple[Daemon, Config, Seeded]) -> None:
    daemon, _, ids = sink_daemon
    many = await daemon.store.write(lambda q: [
        add_review(q, "acme", 4, f"Many{n}", T0 + timedelta(hours=n + 1)) for n in range(30)])
    async with await logged_in(daemon, AGENT) as http:
        _, first = await get(http, base(daemon) + "/console/acme/?stars=4")
        _, second = await get(http, base(daemon) + "/console/acme/?stars=4&page=2")
        _, mixed_first = await get(http, base(daemon) + "/console/acme/")
        _, mixed_second = await get(http, base(daemon) + "/console/acme/?page=2")
    # Without a filter a page runs from the 1–3★ reviews on into the 4–5★ ones, oldest first.
    assert review_links(mixed_first) == [ids.bob2, ids.cid1, ids.ann5, *many[:22]]
    assert review_links(mixed_second) == many[22:]
    assert len(review_links(first)) == 25 and len(review_links(second)) == 5
    assert 'href="?stars=4&amp;page=2"' in first and 'rel="prev"' in second
    assert "33 reviews are waiting" in first and "4 stars (30)" in first


async def test_a_review_shows_the_customer_s_context_products_and_a_suggested_answer(
        sink_daemon: tuple[Daemon, Config, Seeded]) -> None:
    daemon, _, ids = sink_daemon
    other = await daemon.store.write(lambda q: add_review(
        q, "acme", 4, "Bob", T0 - timedelta(days=30), text="First order was fine."))
    await daemon.store.write(lambda q: q.suppress("acme", "bob@example.com", T0,
                                                  "unsubscribed"))
    async with await logged_in(daemon, AGENT) as http:
        status, html = await get(http, base(daemon) + f"/console/acme/r/{ids.bob2}")
    assert status == 200
    assert "The parcel was late." in html and "Trail boot (BOOT-42)" in html
    assert f'href="/console/acme/r/{other}"' in html  # the customer's other review
    assert "Tags: late" in html
    assert "This customer has unsubscribed; no more mail goes to them." in html
    # The 2★ review's suggested answer (services.drafts) pre-fills the answer.
    assert re.search(r'<textarea id="body" name="body"[^>]*>\s*Hello Bob,', html)
    assert "took longer than it should have" in html


async def answer(http: aiohttp.ClientSession, daemon: Daemon, shop: str, review: int,
                 **fields: str) -> aiohttp.ClientResponse:
    _, html = await get(http, base(daemon) + f"/console/{shop}/r/{review}")
    data = {"csrf": csrf_of(html), "body": "", "tags": "", "reason": "", **fields}
    return await post(http, base(daemon) + f"/console/{shop}/r/{review}", data)


async def test_publishing_with_email_reaches_the_customer_after_a_preview(
        sink_daemon: tuple[Daemon, Config, Seeded], sink: Sink) -> None:
    daemon, _, ids = sink_daemon
    body = "Sorry for the wait, Bob. We have sent a voucher."
    async with await logged_in(daemon, AGENT) as http:
        _, html = await get(http, base(daemon) + f"/console/acme/r/{ids.bob2}")
        async with http.post(base(daemon) + f"/console/acme/r/{ids.bob2}", data={
                "csrf": csrf_of(html), "do": "preview", "body": body, "tags": "",
                "reason": ""}) as resp:
            preview = await resp.text()
        assert resp.status == 200
        assert "Preview of the customer&#39;s email" in preview
        assert "bob@example.com" in preview and "We have sent a voucher." in preview
        review = await daemon.store.aread(lambda q: q.get_review(ids.bob2))
        assert review is not None and review.response is None  # a preview publishes nothing
        resp = await answer(http, daemon, "acme", ids.bob2, do="email", body=body,
                            tags="voucher")
        assert resp.status == 303
        assert resp.headers["Location"] == f"/console/acme/r/{ids.bob2}?done=published"
        _, page = await get(http, base(daemon) + resp.headers["Location"])
        assert "Your answer is published." in page
        _, inbox = await get(http, base(daemon) + "/console/acme/")
        assert ids.bob2 not in review_links(inbox)
    await drain(daemon)
    review = await daemon.store.aread(lambda q: q.get_review(ids.bob2))
    assert review is not None and review.response == body
    assert review.response_author == AGENT and "voucher" in review.tags
    mails = customer_mails(sink, "bob@example.com")
    assert len(mails) == 1 and "We have sent a voucher." in mails[0].get_body().get_content()
    audit = await daemon.store.aread(lambda q: q.conn.execute(
        "SELECT source, from_address, outcome FROM replies WHERE review_id = ?",
        (ids.bob2,)).fetchall())
    assert [tuple(row) for row in audit] == [("console", AGENT, "published")]


async def test_publish_only_note_tags_and_report_act_as_their_mail_directives(
        sink_daemon: tuple[Daemon, Config, Seeded], sink: Sink) -> None:
    daemon, _, ids = sink_daemon
    async with await logged_in(daemon, AGENT) as http:
        for fields, done in [
            ({"do": "note", "body": "Called Cid; refund sent."}, "note"),
            ({"do": "tag", "tags": "damaged box"}, "tagged"),
            ({"do": "noemail", "body": "We are sorry about the box."}, "published"),
        ]:
            resp = await answer(http, daemon, "acme", ids.cid1, **fields)
            assert resp.headers["Location"].endswith(f"?done={done}"), fields
        resp = await answer(http, daemon, "acme", ids.ann5, do="report",
                            reason="not about us", body="Mentions another shop.")
        assert resp.headers["Location"].endswith("?done=reported")
    await drain(daemon)
    cid = await daemon.store.aread(lambda q: q.get_review(ids.cid1))
    notes = await daemon.store.aread(lambda q: q.notes_of(ids.cid1))
    ann = await daemon.store.aread(lambda q: q.get_review(ids.ann5))
    reports = await daemon.store.aread(lambda q: q.reports_of_review(ids.ann5))
    assert cid is not None and ann is not None
    assert [n.body for n in notes] == ["Called Cid; refund sent."]
    assert notes[0].author == AGENT and cid.tags == ["box", "damaged"]
    assert cid.response == "We are sorry about the box."
    assert customer_mails(sink, "cid@example.com") == []  # publish only: no email
    # A report waits for an owner (moderation): the review stays public until confirmed.
    assert not ann.reported
    assert [(r.state, r.reason, r.reporter) for r in reports] == [
        ("pending", "not about us", AGENT)]


@pytest.mark.parametrize(("fields", "problem"), [
    ({"do": "email", "body": "  "}, "Please write your answer first."),
    ({"do": "note", "body": ""}, "Please write your answer first."),
    ({"do": "report", "reason": ""}, "Please give a reason for the report."),
    ({"do": "tag", "tags": "no/slash"}, "Tags are single words"),
    ({"do": "delete", "body": "x"}, "This action is unknown."),
    ({"do": "email", "body": "Hi", "csrf": "forged"}, "This form has expired."),
])
async def test_an_answer_that_cannot_be_acted_on_is_refused_and_changes_nothing(
        sink_daemon: tuple[Daemon, Config, Seeded], fields: dict[str, str],
        problem: str) -> None:
    daemon, _, ids = sink_daemon
    async with await logged_in(daemon, AGENT) as http:
        _, html = await get(http, base(daemon) + f"/console/acme/r/{ids.bob2}")
        data = {"csrf": csrf_of(html), "body": "", "tags": "", "reason": "", **fields}
        async with http.post(base(daemon) + f"/console/acme/r/{ids.bob2}", data=data,
                             allow_redirects=False) as resp:
            text = await resp.text()
    assert resp.status == 400 and problem in text
    review = await daemon.store.aread(lambda q: q.get_review(ids.bob2))
    assert review is not None and review.response is None and not review.reported
    assert review.tags == ["late"]


ACTIONS = [{"do": "email", "body": "Hijacked"}, {"do": "noemail", "body": "Hijacked"},
           {"do": "note", "body": "Hijacked"}, {"do": "tag", "tags": "hijacked"},
           {"do": "report", "reason": "hijacked"}, {"do": "preview", "body": "Hijacked"}]


async def test_an_agent_cannot_read_or_act_on_another_shop_s_reviews_by_guessing_ids(
        sink_daemon: tuple[Daemon, Config, Seeded], sink: Sink) -> None:
    daemon, _, ids = sink_daemon
    async with await logged_in(daemon, AGENT) as http:
        _, own = await get(http, base(daemon) + f"/console/acme/r/{ids.bob2}")
        csrf = csrf_of(own)
        for path in ("/console/bolt/", f"/console/bolt/r/{ids.bolt1}",
                     f"/console/acme/r/{ids.bolt1}", "/console/acme/r/999999",
                     "/console/acme/r/99999999999999999999"):
            status, html = await get(http, base(daemon) + path)
            assert status == 404 and "Bolt's own review" not in html, path
        for path in (f"/console/acme/r/{ids.bolt1}", f"/console/bolt/r/{ids.bolt1}"):
            for fields in ACTIONS:
                data = {"csrf": csrf, "body": "", "tags": "", "reason": "", **fields}
                resp = await post(http, base(daemon) + path, data)
                assert resp.status == 404, (path, fields)
    async with await logged_in(daemon, BOLT_AGENT) as http:
        status, _ = await get(http, base(daemon) + f"/console/acme/r/{ids.bob2}")
        assert status == 404
        status, html = await get(http, base(daemon) + "/console/bolt/")
        assert status == 200 and f'href="/console/bolt/r/{ids.bolt1}"' in html
    await drain(daemon)
    bolt = await daemon.store.aread(lambda q: q.get_review(ids.bolt1))
    notes = await daemon.store.aread(lambda q: q.notes_of(ids.bolt1))
    assert bolt is not None and bolt.response is None and not bolt.reported
    assert bolt.tags == [] and notes == [] and customer_mails(sink, "fay@example.com") == []


async def test_console_pages_need_a_login(
        sink_daemon: tuple[Daemon, Config, Seeded]) -> None:
    daemon, _, ids = sink_daemon
    async with browser() as http:
        for path in ("/console/acme/", f"/console/acme/r/{ids.bob2}"):
            status, _ = await get(http, base(daemon) + path)
            assert status == 303, path
        resp = await post(http, base(daemon) + f"/console/acme/r/{ids.bob2}",
                          {"do": "email", "body": "x"})
        assert resp.status == 303


async def test_a_report_from_the_console_alerts_the_operator_as_a_mailed_one_does(
        make_config: ConfigFactory, clock: FrozenClock, sink: Sink) -> None:
    shops = two_shops(make_config)
    async with Daemon(via_sink(shops, sink), clock) as daemon:
        ids = await daemon.store.write(seed)
        await registered(daemon, shops, AGENT, "acme", "agent")
        async with await logged_in(daemon, AGENT) as http:
            resp = await answer(http, daemon, "acme", ids.cid1, do="report",
                                reason="abusive language")
            assert resp.status == 303
        await delivered(daemon, sink, OWNER, 1)
        [alert] = alerts_to(sink, OWNER)
        assert f"Review {ids.cid1} reported" in str(alert["Subject"])
        assert alerts_to(sink, BOSS) == []
        assert alert_count(await scrape(daemon), "review_reported", "acme") == 1


