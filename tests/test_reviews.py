"""Reviews to agents: tickets, automatic responses, edits, reminders, and the reviews CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from email.message import EmailMessage

import pytest
from click.testing import CliRunner

from mailrelay.app import Daemon
from mailrelay.cli import main
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.core.reply_marker import REPLY_MARKER
from mailrelay.services import invitations, reviews
from mailrelay.store import InvitationRow

from .mailtools import parsed, text_of, via_sink
from .sink import Sink


async def invited(daemon: Daemon, clock: FrozenClock, *, email_addr: str = "ann@example.com",
                  name: str = "Ann Lee", ref: str = "1057",
                  send: bool = True) -> InvitationRow:
    """A manual invitation, sent (so it has a Message-ID to thread under)."""
    shop = daemon.config.shops[0]
    signer = daemon.web.signer
    now = clock.now()
    decision = await daemon.store.write(lambda q: invitations.invite_manually(
        q, shop, signer, now, email=email_addr, name=name, reference=ref,
        delay=timedelta(0)))
    assert decision.invitation_id is not None
    if send:
        await daemon.tick()
    row = daemon.store.read(lambda q: q.get_invitation(decision.invitation_id))  # type: ignore[arg-type]
    assert row is not None
    return row


async def write_review(daemon: Daemon, clock: FrozenClock, invitation: InvitationRow,
                       stars: int = 2, title: str = "Late delivery",
                       text: str = "It took two weeks.") -> int:
    form, errors = reviews.validate({"stars": str(stars), "title": title, "text": text,
                                     "name": invitation.customer_name or ""})
    assert form is not None, errors
    now = clock.now()
    outcome, review_id = await daemon.store.write(
        lambda q: reviews.submit_review(q, invitation, form, now))
    assert outcome in (reviews.SubmitOutcome.CREATED, reviews.SubmitOutcome.UPDATED)
    assert review_id is not None
    return review_id


def mail_of(sink: Sink, kind_header: str, value: str) -> list[EmailMessage]:
    """Tickets (they carry the reply key) matching a header."""
    return [m for m in (parsed(raw) for _, _, raw in sink.messages)
            if m[kind_header] == value and m["X-Mailrelay-Key"]]


async def test_new_review_reaches_every_agent_as_a_ticket_with_a_signed_reply_address(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    cfg = via_sink(config, sink, agents=("support@acme.example", "boss@acme.example"))
    async with Daemon(cfg, clock) as daemon:
        inv = await invited(daemon, clock)
        review_id = await write_review(daemon, clock, inv)
        await daemon.tick()
        tickets = mail_of(sink, "X-Mailrelay-Review", str(review_id))
        assert sorted(m["To"] for m in tickets) == ["boss@acme.example", "support@acme.example"]
        keys = set()
        for ticket in tickets:
            local, _, domain = ticket["Reply-To"].partition("@")
            assert domain == "relay.test"
            assert local.startswith("reply+")
            key = local.removeprefix("reply+")
            assert daemon.web.signer.key_valid(key)
            keys.add(key)
            assert ticket["Subject"].startswith("[★★☆☆☆]")
            assert "1057" in ticket["Subject"] and "Late delivery" in ticket["Subject"]
            assert text_of(ticket).splitlines()[0] == REPLY_MARKER
            assert "It took two weeks." in text_of(ticket)
        assert len(keys) == 2  # one key per (review, agent)
        stored = daemon.store.read(lambda q: q.reply_key(keys.pop()))
        assert stored is not None and stored.review_id == review_id


async def test_ticket_carries_customer_context_of_earlier_reviews(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    cfg = via_sink(config, sink, dedupe_window=timedelta(0))
    async with Daemon(cfg, clock) as daemon:
        first = await invited(daemon, clock, ref="A-1")
        await write_review(daemon, clock, first, stars=5, title="Lovely shoes", text="Great!")
        await daemon.tick()
        clock.advance(timedelta(days=30))
        second = await invited(daemon, clock, ref="A-2")
        review_id = await write_review(daemon, clock, second)
        await daemon.tick()
        [ticket] = mail_of(sink, "X-Mailrelay-Review", str(review_id))
        assert "Lovely shoes" in text_of(ticket)


async def test_positive_review_gets_an_automatic_response_published_and_emailed(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    cfg = via_sink(config, sink, auto_reply_min_stars=4)
    async with Daemon(cfg, clock) as daemon:
        inv = await invited(daemon, clock)
        review_id = await write_review(daemon, clock, inv, stars=5, title="Great",
                                       text="Fast and friendly.")
        await daemon.tick()
        review = daemon.store.read(lambda q: q.get_review(review_id))
        assert review is not None and review.response_source == "auto"
        assert "Ann" in review.response
        customer = [m for m in (parsed(raw) for _, rcpts, raw in sink.messages)
                    if m["Auto-Submitted"] == "auto-replied"]
        [reply] = customer
        assert reply["To"] == "Ann Lee <ann@example.com>"
        invitation_mid = daemon.store.read(lambda q: q.invitation_message_id(inv.id))
        assert reply["In-Reply-To"] == invitation_mid
        assert review.response.split()[0] in text_of(reply)
        [ticket] = mail_of(sink, "X-Mailrelay-Review", str(review_id))
        assert ticket["To"] == "support@acme.example"
        assert review.response.splitlines()[0] in text_of(ticket)  # marked as answered


async def test_review_below_the_threshold_gets_no_automatic_response(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    cfg = via_sink(config, sink, auto_reply_min_stars=4)
    async with Daemon(cfg, clock) as daemon:
        inv = await invited(daemon, clock)
        review_id = await write_review(daemon, clock, inv, stars=3)
        await daemon.tick()
        review = daemon.store.read(lambda q: q.get_review(review_id))
        assert review is not None and review.response is None


async def test_edited_review_sends_an_updated_ticket_in_the_same_thread(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        inv = await invited(daemon, clock)
        review_id = await write_review(daemon, clock, inv, stars=2)
        await daemon.tick()
        inv = daemon.store.read(lambda q: q.get_invitation(inv.id))
        assert inv is not None
        assert await write_review(daemon, clock, inv, stars=4, title="Arrived after all",
                                  text="It came in the end.") == review_id
        await daemon.tick()
        first, second = mail_of(sink, "X-Mailrelay-Review", str(review_id))
        assert second["In-Reply-To"] == first["Message-ID"]
        assert second["Reply-To"] == first["Reply-To"]
        assert "Arrived after all" in second["Subject"]
        assert len(daemon.store.read(lambda q: q.list_reviews())) == 1


async def test_answered_review_cannot_be_edited(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(config, sink), clock) as daemon:
        inv = await invited(daemon, clock)
        review_id = await write_review(daemon, clock, inv)
        now = clock.now()
        await daemon.store.write(
            lambda q: q.add_response(review_id, "Sorry!", "support@acme.example", "agent", now))
        inv = daemon.store.read(lambda q: q.get_invitation(inv.id))
        assert inv is not None
        form, _ = reviews.validate({"stars": "5", "text": "changed my mind"})
        assert form is not None
        outcome, _ = await daemon.store.write(lambda q: reviews.submit_review(q, inv, form, now))
        assert outcome == reviews.SubmitOutcome.LOCKED


async def test_a_review_cancels_the_pending_reminder(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    cfg = via_sink(config, sink, reminder_after=timedelta(days=5))
    async with Daemon(cfg, clock) as daemon:
        inv = await invited(daemon, clock)
        current = daemon.store.read(lambda q: q.get_invitation(inv.id))
        assert current is not None and current.reminder_due_at
        await write_review(daemon, clock, inv)
        clock.advance(timedelta(days=6))
        await daemon.tick()
        kinds = [r.kind for r in daemon.store.read(lambda q: q.list_mail())]
        assert "reminder" not in kinds


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        ({"text": "ok text"}, "stars", "required"),
        ({"stars": "6", "text": "ok text"}, "stars", "range"),
        ({"stars": "0", "text": "ok text"}, "stars", "range"),
        ({"stars": "five", "text": "ok text"}, "stars", "range"),
        ({"stars": "3", "text": "   "}, "text", "required"),
        ({"stars": "3", "text": "x" * 5001}, "text", "too_long"),
        ({"stars": "3", "text": "fine", "title": "t" * 121}, "title", "too_long"),
        ({"stars": "3", "text": "fine", "name": "n" * 81}, "name", "too_long"),
    ],
)
def test_review_form_validation_names_the_field_and_the_problem(
    data: dict[str, str], field: str, code: str
) -> None:
    form, errors = reviews.validate(data)
    assert form is None
    assert errors[field] == code


def test_review_form_strips_control_characters_but_keeps_line_breaks() -> None:
    form, errors = reviews.validate({"stars": "4", "text": "line one\r\nline\x00 two\x1b",
                                     "title": " Hi\x07 ", "name": "Ann \n Lee"})
    assert form is not None, errors
    assert form.text == "line one\nline two"
    assert form.title == "Hi"
    assert form.name == "Ann Lee"


async def test_reviews_cli_filters_shows_history_and_unreports(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    cfg = via_sink(config, sink, dedupe_window=timedelta(0))
    async with Daemon(cfg, clock) as daemon:
        ids = []
        for n, stars in enumerate((1, 2, 5)):
            inv = await invited(daemon, clock, email_addr=f"c{n}@example.com", ref=f"R-{n}")
            ids.append(await write_review(daemon, clock, inv, stars=stars,
                                          title=f"Title {n}", text=f"Text number {n}"))
        now = clock.now()
        await daemon.store.write(lambda q: q.add_response(ids[0], "First answer", "a@x", "agent",
                                                          now))
        await daemon.store.write(lambda q: q.add_response(ids[0], "Better answer", "a@x", "agent",
                                                          now))
        await daemon.store.write(lambda q: q.add_tag(ids[1], "shipping", now))
        await daemon.store.write(lambda q: q.add_note(ids[1], "called the carrier", "a@x", now))
        await daemon.store.write(lambda q: q.report_review(ids[2], "spam", now))
    path = str(cfg.source)

    def run(*args: str) -> list[dict[str, object]]:
        result = CliRunner().invoke(main, ["reviews", "--config", path, "--format", "json",
                                           *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)  # type: ignore[no-any-return]

    assert [r["id"] for r in run("--stars", "1-2")] == ids[:2]
    assert [r["id"] for r in run("--replied")] == [ids[0]]
    assert [r["id"] for r in run("--unreplied")] == ids[1:]
    assert [r["id"] for r in run("--reported")] == [ids[2]]
    assert [r["id"] for r in run("--tag", "shipping")] == [ids[1]]
    assert [r["id"] for r in run("--search", "number 1")] == [ids[1]]
    assert [r["id"] for r in run("--since", "2026-11-20", "--until", "2026-11-20")] == ids
    assert run("--since", "2026-11-21") == []
    row = run("--replied")[0]
    assert row["response"] == "Better answer"
    assert list(row) == ["id", "shop", "stars", "title", "text", "reviewer_name",
                         "customer_email", "reference", "method", "created_at", "response",
                         "responded_at", "reported", "report_reason", "tags"]
    shown = CliRunner().invoke(main, ["reviews", "show", str(ids[0]), "--config", path])
    assert "First answer" in shown.output and "Better answer" in shown.output
    assert "replaced" in shown.output
    noted = CliRunner().invoke(main, ["reviews", "show", str(ids[1]), "--config", path,
                                      "--format", "json"])
    data = json.loads(noted.output)
    assert data["notes"][0]["body"] == "called the carrier"
    assert data["tags"] == ["shipping"]
    unreport = CliRunner().invoke(main, ["reviews", "unreport", str(ids[2]), "--config", path])
    assert unreport.exit_code == 0
    assert run("--reported") == []
    again = CliRunner().invoke(main, ["reviews", "unreport", str(ids[2]), "--config", path])
    assert again.exit_code == 1
    bad = CliRunner().invoke(main, ["reviews", "--config", path, "--stars", "0-9"])
    assert bad.exit_code == 2


def test_block_tags_take_the_form_of_an_agents_tag() -> None:
    given = ["VIP", "vip", " B2C ", "New customer", "a,b;c", "", "  ", "x" * 50]
    assert reviews.block_tags(given) == ["vip", "b2c", "new-customer", "a-b-c", "x" * 40]
