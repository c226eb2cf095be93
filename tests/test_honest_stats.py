"""`stats` counts honestly (issue 12, SPEC "Operators (issue 9)"): conversion is reviews from
invitations over invitations sent, link and manual reviews apart, automatic responses apart
from the response rate, reported and forgotten reviews left out as on the public page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailrelay.config import Config
from mailrelay.store import Queries, open_store
from mailrelay.store.rows import NewInvitation, NewReview, ReviewText

from .cli_runner import cli, run
from .conftest import ConfigFactory, second_shop

START = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Case:
    """One invitation and what became of it."""

    shop: str
    method: str
    stars: int | None = None
    auto: bool = False  # answered at once by the automatic response
    agent_after: timedelta | None = None  # an agent's response, this long after the review
    reported: bool = False
    forgotten: bool = False


CASES = [
    Case("acme", "automatic", 5, auto=True),
    Case("acme", "automatic", 2, agent_after=HOUR),
    Case("acme", "automatic", 4, auto=True, agent_after=3 * HOUR),
    Case("acme", "automatic", 1, agent_after=timedelta(minutes=10), reported=True),
    Case("acme", "automatic", 1, agent_after=timedelta(minutes=5), forgotten=True),
    Case("acme", "automatic"),  # sent, never answered
    Case("acme", "manual", 3),
    Case("acme", "link", 5, agent_after=5 * HOUR),
    Case("bolt", "automatic", 4, auto=True),
    Case("bolt", "automatic"),
]


def _seed(q: Queries) -> None:
    for n, case in enumerate(CASES, start=1):
        email = f"customer{n}@example.com"
        sent = None if case.method == "link" else START
        invitation = q.insert_invitation(NewInvitation(
            shop=case.shop, shipment_id=None, customer_email=email, customer_name=f"C {n}",
            reference=str(1000 + n), locale="en", method=case.method,
            status="sent", token=f"token-{n}", created_at=START,
            due_at=START, sent_at=sent))
        if case.stars is None:
            continue
        written = START + timedelta(days=1)
        review = q.insert_review(NewReview(
            shop=case.shop, invitation_id=invitation, method=case.method,
            text=ReviewText(case.stars, "Title", "Text", f"C {n}"), customer_email=email,
            reference=str(1000 + n), locale="en", created_at=written))
        q.link_review(invitation, review)
        if case.auto:
            q.add_response(review, "Thank you!", "auto", "auto", written)
        if case.agent_after is not None:
            q.add_response(review, "Dear customer", "agent@acme.example", "agent",
                           written + case.agent_after)
        if case.reported:
            q.report_review(review, "abuse", written + 2 * HOUR)
        if case.forgotten:
            q.forget(email, written + 6 * HOUR)


@pytest.fixture
def two_shops(make_config: ConfigFactory) -> Config:
    config = make_config(more=second_shop())
    with open_store(config.store) as store:
        store.write_sync(_seed)
    return config


ACME = {
    "shop": "acme",
    "shipments": {},
    "invitations_sent": 7,
    "reviews": 5,
    "reviews_by_method": {"automatic": 3, "manual": 1, "link": 1, "basic": 0, "organic": 0,
                          "embedded": 0},
    "reviews_from_invitations": 4,
    "conversion": 0.5714,
    "stars": {"1": 0, "2": 1, "3": 1, "4": 1, "5": 2},
    "average": 3.8,
    "response_rate": 0.6,
    "median_first_response_s": 10800.0,
    "auto_responses": 2,
    "reviews_hidden": 2,
    "products": [],
}
BOLT = {
    "shop": "bolt",
    "shipments": {},
    "invitations_sent": 2,
    "reviews": 1,
    "reviews_by_method": {"automatic": 1, "manual": 0, "link": 0, "basic": 0, "organic": 0,
                          "embedded": 0},
    "reviews_from_invitations": 1,
    "conversion": 0.5,
    "stars": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0},
    "average": 4.0,
    "response_rate": 0.0,
    "median_first_response_s": None,
    "auto_responses": 1,
    "reviews_hidden": 0,
    "products": [],
}


def test_stats_in_json_count_reviews_from_invitations_and_people_s_responses(
    two_shops: Config,
) -> None:
    code, out = cli(two_shops, "stats", "--format", "json")
    assert code == 0, out
    assert json.loads(out) == [ACME, BOLT]
    code, out = cli(two_shops, "stats", "--shop", "bolt", "--format", "json")
    assert json.loads(out) == [BOLT]


def test_stats_as_a_table_say_what_each_figure_counts(two_shops: Config) -> None:
    code, out = cli(two_shops, "stats", "--format", "table")
    assert code == 0, out
    acme, bolt = out.split("\nbolt\n")
    assert "reviews: 5 (automatic 3, manual 1, link 1; 2 hidden: reported or forgotten)" in acme
    assert "conversion: 57.1% (4 reviews from 7 invitations sent)" in acme
    assert "stars: 1★ 0  2★ 1  3★ 1  4★ 1  5★ 2   average: 3.8" in acme
    assert "response rate: 60.0%   median first response: 3h 0m 0s" in acme
    assert "automatic responses: 2 (not counted as responses)" in acme
    assert "conversion: 50.0% (1 review from 2 invitations sent)" in bolt
    assert "response rate: 0.0%   median first response: -" in bolt


def test_the_readme_and_the_help_say_what_every_figure_and_export_option_means() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    stats_help = run("stats", "--help").output
    for field in ACME:
        assert f"`{field}`" in readme, field
        assert field in " ".join(stats_help.split()), field
    export_help = " ".join(run("export", "--help").output.split())
    for words in ("[default: all time]", "'today'", "[default: -]", "joined with ';'",
                  "true/false"):
        assert words in export_help, words
    assert "export` writes every review" in readme and "accept `today`" in readme
