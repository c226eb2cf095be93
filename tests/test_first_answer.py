"""Each review keeps the delay to its first answer by a person (migration 13), which the
dashboard's weekly figures read from one index: set when a person's response is stored, never
by an automatic one, the earliest kept, gone with a forgotten customer's responses; and the
weekly figures and the inbox's counts read indexes alone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailrelay.app import Daemon
from mailrelay.core.clock import FrozenClock
from mailrelay.services import privacy
from mailrelay.store import NewReview, Queries, ReviewText, Store
from mailrelay.store.rows import InboxFilter

from .conftest import ConfigFactory, second_shop
from .console_figures import HOUR, LAST_WEEK, Seeder, seed_known
from .test_console_dashboard import AGENT, csv_of, logged_in
from .test_console_inbox import answer
from .test_console_login import registered

MONDAY = datetime(2026, 11, 16, tzinfo=UTC)
WRITTEN = MONDAY + 10 * HOUR


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "relay.db") as opened:
        yield opened


def first_answer_secs(store: Store, review: int) -> int | None:
    value = store.read(lambda q: q.conn.execute(
        "SELECT first_answer_secs FROM reviews WHERE id = ?", (review,)).fetchone()[0])
    return None if value is None else int(value)


def a_review(q: Queries, shop: str = "acme", email: str = "kim@example.com") -> int:
    return q.insert_review(NewReview(
        shop=shop, invitation_id=None, method="basic",
        text=ReviewText(2, "Late", "The parcel came a week late.", "Kim"),
        customer_email=email, reference=None, locale="en", created_at=WRITTEN))


def test_an_automatic_response_is_no_answer_and_a_person_s_first_one_is_kept(
    store: Store,
) -> None:
    review = store.write_sync(a_review)
    store.write_sync(lambda q: q.add_response(review, "Thanks!", "auto", "auto", WRITTEN))
    assert first_answer_secs(store, review) is None
    store.write_sync(lambda q: q.add_response(
        review, "Sorry, Kim.", "agent@acme.example", "agent", WRITTEN + 3 * HOUR))
    assert first_answer_secs(store, review) == 3 * 3600
    store.write_sync(lambda q: q.add_response(
        review, "A voucher is on its way.", "agent@acme.example", "console",
        WRITTEN + 30 * HOUR))
    store.write_sync(lambda q: q.add_response(review, "Thanks!", "auto", "auto",
                                              WRITTEN + HOUR))
    assert first_answer_secs(store, review) == 3 * 3600
    # A person's answer stored late but made earlier (an IMAP catch-up) is the first.
    store.write_sync(lambda q: q.add_response(
        review, "Looking into it.", "help@acme.example", "email",
        WRITTEN + timedelta(minutes=90, seconds=1, microseconds=600_000)))
    assert first_answer_secs(store, review) == 90 * 60 + 2


def test_a_review_answered_only_automatically_counts_as_unanswered_in_its_week(
    store: Store,
) -> None:
    def seed(q: Queries) -> None:
        s = Seeder(q)
        s.review("acme", 5, WRITTEN, auto=True)
        s.review("acme", 4, WRITTEN, auto=True, answer_after=2 * HOUR)
        s.review("acme", 3, WRITTEN, answer_after=5 * HOUR)
        s.review("bolt", 1, WRITTEN, answer_after=HOUR)
    store.write_sync(seed)
    [week] = store.read(lambda q: q.weekly_figures("acme", [MONDAY, MONDAY + 7 * 24 * HOUR]))
    assert (week.reviews, week.answered, week.median_hours) == (3, 2, 3.5)
    assert week.average == pytest.approx(4.0)


def test_a_forgotten_customer_s_review_loses_its_first_answer_with_the_responses(
    store: Store,
) -> None:
    kept = store.write_sync(lambda q: a_review(q, email="lee@example.com"))
    forgotten = store.write_sync(a_review)
    for review in (kept, forgotten):
        store.write_sync(lambda q, r=review: q.add_response(
            r, "Sorry.", "agent@acme.example", "agent", WRITTEN + HOUR))
    privacy.forget(store, "kim@example.com", WRITTEN + 48 * HOUR, maildir=None)
    assert first_answer_secs(store, forgotten) is None
    assert first_answer_secs(store, kept) == 3600


@pytest.fixture
async def console(make_config: ConfigFactory, clock: FrozenClock) -> AsyncIterator[Daemon]:
    shops = make_config(more=second_shop())
    async with Daemon(shops, clock) as daemon:
        daemon.store.write_sync(seed_known)
        await registered(daemon, shops, AGENT, "acme", "agent")
        yield daemon


async def test_an_answer_published_in_the_console_counts_with_its_delay_on_the_dashboard(
    console: Daemon, clock: FrozenClock,
) -> None:
    [waiting] = console.store.read(lambda q: [r.id for r in q.list_reviews(
        shop="acme", since=LAST_WEEK, until=LAST_WEEK + HOUR, replied=False)])
    async with await logged_in(console, AGENT) as http:
        before = await csv_of(http, console, "responses")
        assert before[3] == ["2026-11-09", "1", "0", "0.0", ""]
        clock.set(LAST_WEEK + timedelta(days=2, minutes=45))
        resp = await answer(http, console, "acme", waiting, do="noemail",
                            body="Sorry about the delay; a voucher is on its way.")
        assert resp.status == 303
        clock.set(LAST_WEEK + timedelta(days=10))
        after = await csv_of(http, console, "responses")
    assert after[3] == ["2026-11-09", "1", "1", "1.0", "48.75"]
    assert after[4] == before[4]


def plans_of(store: Store, read: Callable[[Queries], object]) -> list[str]:
    """The query plan of each statement `read(q)` runs, one text per statement."""
    statements: list[str] = []

    def run(q: Queries) -> None:
        q.conn.set_trace_callback(statements.append)
        try:
            read(q)
        finally:
            q.conn.set_trace_callback(None)
    store.read(run)
    return [" | ".join(str(row[3]) for row in store.read(
        lambda q, s=sql: q.conn.execute("EXPLAIN QUERY PLAN " + s).fetchall()))
        for sql in statements]


def test_the_weekly_figures_funnel_and_inbox_counts_read_indexes_alone(store: Store) -> None:
    store.write_sync(lambda q: Seeder(q).review("acme", 2, WRITTEN, answer_after=HOUR))
    weekly = plans_of(store, lambda q: q.weekly_figures(
        "acme", [MONDAY, MONDAY + 7 * 24 * HOUR, MONDAY + 14 * 24 * HOUR]))
    assert weekly and all("COVERING INDEX idx_reviews_figures" in plan for plan in weekly)
    assert all("responses" not in plan for plan in weekly)
    funnel = plans_of(store, lambda q: q.invitation_funnel(
        "acme", MONDAY, MONDAY + 7 * 24 * HOUR))[0]
    assert "idx_shipments_shop_status" in funnel and "TEMP B-TREE" not in funnel, funnel
    for wanted in (InboxFilter(), InboxFilter(tag="late"), InboxFilter(sku="HAT")):
        counts = plans_of(store, lambda q, w=wanted: q.inbox("acme", w, 0))[0]
        assert "SEARCH r USING COVERING INDEX idx_reviews_inbox" in counts, counts


def test_a_hidden_review_s_product_ratings_count_nowhere(store: Store) -> None:
    def seed(q: Queries) -> None:
        s = Seeder(q)
        s.review("acme", 4, WRITTEN, products=(("HAT", 4), ("CAP", 2)))
        s.review("acme", 1, WRITTEN, products=(("HAT", 1), ("SCARF", 1)), reported=True)
        s.review("bolt", 1, WRITTEN, products=(("HAT", 1),))
    store.write_sync(seed)
    rated = store.read(lambda q: q.stars_by_product("acme", MONDAY, MONDAY + 7 * 24 * HOUR))
    assert [(g.key, g.reviews, g.average) for g in rated] == [("CAP", 1, 2.0), ("HAT", 1, 4.0)]
