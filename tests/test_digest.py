"""The agents' daily digest (issue 14, `[[shop]] digest = "09:00"`): at that local time, once a
day per shop even across restarts, to the shop's agents and its console agents, listing only
its unanswered 1–3★ reviews; nothing on a day without any; shops in different time zones."""

from __future__ import annotations

import asyncio
import dataclasses
import email.policy
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from zoneinfo import ZoneInfo

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.core.errors import ConfigError
from mailrelay.render import Templates
from mailrelay.render.digest import DigestItem, digest_mail
from mailrelay.services import moderation
from mailrelay.store import NewInvitation, NewReview, Queries, ReviewText, Store

from .conftest import ConfigFactory, second_shop
from .mailtools import drain, mails_to, text_of, via_sink
from .sink import Sink

#: 08:59 in Copenhagen (UTC+1 in December), 02:59 in New York (UTC-5).
BEFORE = datetime(2026, 12, 1, 7, 59, tzinfo=UTC)
CPH_NINE = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
NY_NINE = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
ACME_AGENTS = ["support@acme.example", "kim@acme.example"]  # config, console
BOLT_AGENT = "help@bolt.example"


def add_review(q: Queries, shop: str, stars: int, title: str, at: datetime) -> int:
    n = len(q.list_reviews())
    invitation = q.insert_invitation(NewInvitation(
        shop=shop, shipment_id=None, customer_email=f"c{n}@example.com", customer_name="Cleo",
        reference=f"R{n}", locale="en", method="automatic", status="sent",
        token=f"token-{n}", created_at=at, due_at=at))
    review = q.insert_review(NewReview(
        shop=shop, invitation_id=invitation, method="automatic",
        text=ReviewText(stars, title, "Our own words about the order.", "Cleo"),
        customer_email=f"c{n}@example.com", reference=f"R{n}", locale="en", created_at=at))
    q.link_review(invitation, review)
    return review


@pytest.fixture
def digest_config(make_config: ConfigFactory, sink: Sink) -> Config:
    loaded = make_config(more=second_shop(timezone="America/New_York", digest="09:00"))
    acme, bolt = loaded.shops
    acme = dataclasses.replace(acme, timezone=ZoneInfo("Europe/Copenhagen"), digest=time(9, 0),
                               accent_color="#0f766e")
    return dataclasses.replace(via_sink(loaded, sink), shops=(acme, bolt))


def fill(store: Store) -> dict[str, int]:
    def write(q: Queries) -> dict[str, int]:
        ids = {
            "crushed": add_review(q, "acme", 1, "Box crushed", BEFORE - timedelta(days=3)),
            "okay": add_review(q, "acme", 3, "Okay-ish", BEFORE - timedelta(hours=2)),
            "great": add_review(q, "acme", 5, "Great", BEFORE - timedelta(days=1)),
            "answered": add_review(q, "acme", 2, "Answered one", BEFORE - timedelta(days=2)),
            "bolt": add_review(q, "bolt", 2, "Bolt chain rusty", BEFORE - timedelta(days=1)),
        }
        q.add_response(ids["answered"], "Sorry, fixed.", "support@acme.example", "agent",
                       BEFORE - timedelta(days=1))
        now = BEFORE - timedelta(days=5)
        q.add_member("kim@acme.example", "acme", "agent", now)
        q.add_member("own@acme.example", "acme", "owner", now)
        q.add_member("kim@acme.example", "bolt", "owner", now)
        return ids
    return store.write_sync(write)


def digests_to(sink: Sink, address: str) -> list[EmailMessage]:
    """The digests (not the tickets) `address` received."""
    return [mail for mail in mails_to(sink, address) if mail["X-Mailrelay-Digest"]]


def all_digests(sink: Sink) -> list[bytes]:
    return [raw for _, _, raw in sink.messages if b"X-Mailrelay-Digest:" in raw]


async def run_digests(daemon: Daemon) -> None:
    await daemon.send_digests()
    await drain(daemon)


async def test_the_digest_goes_out_at_nine_local_once_to_each_agent_with_the_shops_reviews(
        digest_config: Config, sink: Sink) -> None:
    clock = FrozenClock(BEFORE)
    async with Daemon(digest_config, clock) as daemon:
        ids = fill(daemon.store)
        await run_digests(daemon)
        assert all_digests(sink) == []  # 08:59 in Copenhagen
        clock.set(CPH_NINE)
        await run_digests(daemon)
        await run_digests(daemon)  # the same day again: nothing new
        for agent in ACME_AGENTS:
            [mail] = digests_to(sink, agent)
            assert mail["Subject"] == "Unanswered reviews at ACME Shoes (2)"
            assert mail["From"] == "ACME Shoes <reviews@acme.example>"
            text = text_of(mail).replace("\r\n", "\n")
            assert '★☆☆☆☆ (1/5) "Box crushed", 3 days ago' in text
            assert f"http://reviews.test/console/acme/r/{ids['crushed']}" in text
            assert '★★★☆☆ (3/5) "Okay-ish", today' in text
            assert f"/console/acme/r/{ids['okay']}" in text
            assert "Great" not in text and "Answered one" not in text
            assert "Bolt" not in text and "/console/bolt/" not in text
            html = mail.get_body(preferencelist=("html",))
            assert html is not None
            body = str(html.get_content())
            assert 'href="http://reviews.test/console/acme/"' in body  # the inbox button
            assert f'href="http://reviews.test/console/acme/r/{ids["crushed"]}"' in body
            assert "#0f766e" in body  # the shop's look
        assert digests_to(sink, "own@acme.example") == []  # owners are no agents
        assert digests_to(sink, BOLT_AGENT) == []  # 03:00 in New York
    # A restart the same day sends nothing again; New York's nine o'clock sends bolt's.
    clock.set(NY_NINE)
    async with Daemon(digest_config, clock) as daemon:
        await run_digests(daemon)
        assert [len(digests_to(sink, agent)) for agent in ACME_AGENTS] == [1, 1]
        [bolt] = digests_to(sink, BOLT_AGENT)
        text = text_of(bolt)
        assert "Bolt chain rusty" in text and "Box crushed" not in text
        assert f"/console/bolt/r/{ids['bolt']}" in text
        assert digests_to(sink, "kim@acme.example")[0]["Subject"].startswith("Unanswered")
        assert len(digests_to(sink, "kim@acme.example")) == 1  # an owner of bolt, no agent


async def test_no_digest_on_a_day_without_unanswered_low_ratings(digest_config: Config,
                                                                 sink: Sink) -> None:
    clock = FrozenClock(BEFORE)
    async with Daemon(digest_config, clock) as daemon:
        ids = fill(daemon.store)
        clock.set(CPH_NINE)
        await run_digests(daemon)
        assert len(digests_to(sink, "support@acme.example")) == 1
        for key in ("crushed", "okay"):
            daemon.store.write_sync(lambda q, key=key: q.add_response(
                ids[key], "We are on it.", "support@acme.example", "agent", CPH_NINE))
        clock.set(CPH_NINE + timedelta(days=1))
        await run_digests(daemon)
        assert len(digests_to(sink, "support@acme.example")) == 1  # nothing to list: no mail
        done = daemon.store.read(lambda q: q.last_digest_date("acme"))
        assert done == "2026-12-02"


async def test_without_a_digest_time_no_digest_is_sent(config: Config, sink: Sink) -> None:
    clock = FrozenClock(CPH_NINE)
    async with Daemon(via_sink(config, sink), clock) as daemon:
        fill(daemon.store)
        for hour in range(24):
            clock.set(CPH_NINE + timedelta(hours=hour))
            await run_digests(daemon)
        assert all_digests(sink) == []


@pytest.mark.parametrize("value", ["9", "25:00", "09:60", "nine"])
def test_a_digest_time_that_is_no_time_of_day_is_refused(make_config: ConfigFactory,
                                                         value: str) -> None:
    with pytest.raises(ConfigError) as error:
        make_config(shop_extra=f'digest = "{value}"')
    assert "digest" in str(error.value) and "09:00" in str(error.value)


async def test_a_reported_review_is_listed_as_waiting_for_an_owner_and_a_hidden_one_never(
        digest_config: Config, sink: Sink) -> None:
    clock = FrozenClock(BEFORE)
    async with Daemon(digest_config, clock) as daemon:
        ids = fill(daemon.store)

        def report_two(q: Queries) -> None:
            for key in ("crushed", "okay"):
                review = q.get_review(ids[key])
                assert review is not None
                moderation.report(q, daemon.config, review, "support@acme.example",
                                  "written by a competitor", BEFORE)
            [_, hidden] = q.reports("acme")
            refusal = moderation.decide(q, daemon.config, "acme", hidden.id, moderation.Decision(
                True, "own@acme.example", None, "not_a_customer"), BEFORE)
            assert refusal is None

        await daemon.store.write(report_two)
        clock.set(CPH_NINE)
        await run_digests(daemon)
        [mail] = digests_to(sink, "support@acme.example")
        assert mail["Subject"] == "Unanswered reviews at ACME Shoes (1)"
        text = text_of(mail).replace("\r\n", "\n")
        assert ('★☆☆☆☆ (1/5) "Box crushed" (reported, waiting for an owner), 3 days ago'
                in text), text
        assert "Okay-ish" not in text  # hidden by the owner's confirmation
        html = mail.get_body(preferencelist=("html",))
        assert html is not None and "(reported, waiting for an owner)" in str(html.get_content())


@pytest.mark.parametrize(("locale", "mark"), [
    ("en", "reported, waiting for an owner"), ("de", "gemeldet, wartet auf einen Inhaber"),
    ("da", "indberettet, venter på en ejer"), ("nl", "gemeld, wacht op een eigenaar"),
    ("sv", "anmält, väntar på en ägare"), ("nb", "rapportert, venter på en eier"),
    ("fi", "ilmoitettu, odottaa omistajan päätöstä"),
    ("fr", "signalé, en attente d’un propriétaire"),
    ("es", "denunciada, pendiente de un propietario"),
    ("it", "segnalata, in attesa di un titolare"), ("pl", "zgłoszona, czeka na właściciela"),
])
def test_the_digest_marks_a_reported_review_in_every_language(
        make_config: ConfigFactory, locale: str, mark: str) -> None:
    config = make_config(shop_extra=f'locale = "{locale}"')
    shop = config.shops[0]
    item = DigestItem(2, "Late", CPH_NINE, "http://reviews.test/console/acme/r/7")
    reported = dataclasses.replace(item, title="Rude", reported=True)
    mail = digest_mail(Templates(config), config, shop, "kim@acme.example", [item, reported],
                       "http://reviews.test/console/acme/", now=CPH_NINE)
    message = BytesParser(policy=email.policy.default).parsebytes(mail.raw)
    text = text_of(message)
    [line] = [line for line in text.splitlines() if mark in line]
    assert "Rude" in line
    html = message.get_body(preferencelist=("html",))
    assert html is not None and str(html.get_content()).count(mark) == 1


async def test_two_relays_on_one_store_send_each_shops_digest_once_a_day(
        digest_config: Config, sink: Sink) -> None:
    """Relays sharing a store (issue 15) each look at nine o'clock: the first to claim a
    shop's day sends its digest, the other sends none, whichever shop comes due."""
    clock = FrozenClock(BEFORE)
    async with (Daemon(digest_config, clock, relay_id="relay-a") as a,
                Daemon(digest_config, clock, relay_id="relay-b") as b):
        fill(a.store)
        clock.set(CPH_NINE)
        await asyncio.gather(run_digests(a), run_digests(b))
        await asyncio.gather(run_digests(b), run_digests(a))
        clock.set(NY_NINE)
        await asyncio.gather(run_digests(b), run_digests(a))
        await asyncio.gather(drain(a), drain(b))
    assert [len(digests_to(sink, agent)) for agent in ACME_AGENTS] == [1, 1]
    assert len(digests_to(sink, BOLT_AGENT)) == 1
    assert len(all_digests(sink)) == 3
