"""Suggested answers to 1–3★ reviews (issue 14): topics found per locale, the star bands, the
customer's name, order and products filled in, a shop's own templates, and a shop's own
generator (`[drafts] command`) with its fallbacks."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import textwrap
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

import pytest

from mailrelay.config import Config
from mailrelay.core.errors import ConfigError
from mailrelay.core.locales import BUILTIN_LOCALES
from mailrelay.core.models import Product
from mailrelay.services import drafts
from mailrelay.store import (
    NewInvitation,
    NewMessage,
    NewReview,
    NewShipment,
    Queries,
    ReviewText,
    Store,
    open_store,
)

from .conftest import ConfigFactory, second_shop
from .draft_samples import SAMPLES

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
_KEYS = itertools.count()
DRAFTS = Path(str(files("mailrelay") / "templates" / "drafts"))


def keywords(locale: str) -> dict[str, list[str]]:
    data: dict[str, list[str]] = json.loads((DRAFTS / locale / "topics.json").read_text())
    return data


@pytest.mark.parametrize("locale", BUILTIN_LOCALES)
def test_every_locale_has_keywords_and_a_paragraph_for_every_topic(locale: str) -> None:
    assert set(keywords(locale)) == set(drafts.TOPICS)
    assert all(keywords(locale)[topic] for topic in drafts.TOPICS)
    parts = {"greeting", "opening", "general", "closing", *drafts.TOPICS}
    assert {p.stem for p in (DRAFTS / locale).glob("*.j2")} == parts


@pytest.mark.parametrize(("locale", "topic"),
                         [(locale, topic) for locale in BUILTIN_LOCALES
                          for topic in drafts.TOPICS])
def test_each_topic_is_found_in_a_review_of_each_language(locale: str, topic: str) -> None:
    text = SAMPLES[locale][topic]
    assert drafts.detect_topics(keywords(locale), text) == (topic,)
    assert drafts.detect_topics(keywords(locale), text.upper()) == (topic,)  # any case


def test_stems_match_at_word_starts_and_starred_ones_inside_words() -> None:
    assert drafts.detect_topics({"late": ["late"]}, "Chocolate was fine.") == ()
    assert drafts.detect_topics({"late": ["late"]}, "It came LATER than promised.") == (
        "late",)
    assert drafts.detect_topics({"late": ["*verspät"]}, "Große Lieferverspätung!") == ("late",)
    assert drafts.detect_topics(keywords("de"), "Alles bestens, gerne wieder.") == ()


# --------------------------------------------------------------------------- from the store


def _shipment(q: Queries, shop: str, products: list[Product]) -> int:
    message = q.insert_message(NewMessage(
        received_at=T0, peer="127.0.0.1", mail_from="shop@acme.example", rcpt="r@relay.test",
        shop=shop, kind="shipment", message_id=None, dedupe_key=f"k-{shop}-{next(_KEYS)}",
        raw=b"x"))
    assert message is not None
    return q.insert_shipment(NewShipment(
        message_row_id=message, shop=shop, received_at=T0, message_id=None, sender=None,
        customer_email="ann@example.com", customer_name="Ann Lee", reference="1057",
        reference_rule=None, locale="en", send_at=None, tags=(), products=tuple(products),
        source="test", defects=(), status="invited", reason=""))


def add_review(store: Store, *, stars: int, text: str, shop: str = "acme", locale: str = "en",
               name: str | None = "Ann Lee", reference: str | None = "1057",
               products: tuple[str, ...] = ("Trail Runner 2",), title: str = "") -> int:
    def write(q: Queries) -> int:
        shipment = _shipment(q, shop, [Product(name=p, sku=p[:3]) for p in products])
        count = len(q.list_reviews())
        invitation = q.insert_invitation(NewInvitation(
            shop=shop, shipment_id=shipment, customer_email="ann@example.com",
            customer_name=name, reference=reference, locale=locale, method="automatic",
            status="sent", token=f"token-{count}", created_at=T0, due_at=T0))
        review = q.insert_review(NewReview(
            shop=shop, invitation_id=invitation, method="automatic",
            text=ReviewText(stars, title or None, text, name), customer_email="ann@example.com",
            reference=reference, locale=locale, created_at=T0))
        q.link_review(invitation, review)
        return review
    return store.write_sync(write)


def suggest(config: Config, store: Store, review_id: int) -> str | None:
    return store.read(lambda q: drafts.suggest(config, q, review_id))


@pytest.fixture
def store(config: Config) -> Store:
    return open_store(config.store)


def test_a_draft_greets_the_customer_names_the_order_and_products_and_the_shop(
        config: Config, store: Store) -> None:
    with store:
        review = add_review(store, stars=1, text="The box was crushed and the lid is cracked.",
                            products=("Trail Runner 2", "Wool socks"))
        draft = suggest(config, store, review)
    assert draft is not None
    paragraphs = draft.strip().split("\n\n")
    assert paragraphs[0] == "Hello Ann,"
    assert "order 1057" in paragraphs[1]
    assert "damaged (Trail Runner 2, Wool socks)" in draft
    assert paragraphs[-1] == "Kind regards,\nACME Shoes"
    assert "refund" not in draft.lower()  # never promised


@pytest.mark.parametrize(("stars", "opening"), [
    (1, "this is not how it should have gone"),
    (2, "did not meet your expectations"),
    (3, "glad some things went well"),
])
def test_the_opening_follows_the_star_band(config: Config, store: Store, stars: int,
                                           opening: str) -> None:
    with store:
        draft = suggest(config, store, add_review(store, stars=stars, text="Meh."))
    assert draft is not None and opening in draft
    assert "would like to understand what went wrong" in draft  # no topic: the general one


def test_no_draft_for_four_or_five_stars_or_an_unknown_review(config: Config,
                                                              store: Store) -> None:
    with store:
        four = add_review(store, stars=4, text="Late, but nice.", reference="1058")
        five = add_review(store, stars=5, text="Perfect.", reference="1059")
        assert suggest(config, store, four) is None
        assert suggest(config, store, five) is None
        assert suggest(config, store, 9999) is None


def test_paragraphs_follow_the_topics_and_the_language_of_the_review(
        config: Config, store: Store) -> None:
    text = "Das Paket kam zu spät, und die Schuhe sind zu klein. Ich möchte eine Rücksendung."
    with store:
        draft = suggest(config, store, add_review(store, stars=2, text=text, locale="de-AT",
                                                  name="Jörg Weber"))
    assert draft is not None
    assert draft.startswith("Hallo Jörg,\n\nvielen Dank für Ihre Bewertung zu Ihrer "
                            "Bestellung 1057.")
    late = draft.index("länger unterwegs")
    size = draft.index("Größe nicht gepasst hat (Trail Runner 2)")
    refund = draft.index("Zu Ihrer Rücksendung")
    assert late < size < refund
    assert draft.count("Trail Runner 2") == 1  # the products are named once
    assert "Kundenservice" not in draft


def test_an_unknown_language_falls_back_to_the_shop_language(make_config: ConfigFactory,
                                                             tmp_path: Path) -> None:
    config = make_config(shop_extra='locale = "fr"')
    with open_store(config.store) as store:
        draft = suggest(config, store, add_review(store, stars=2, text="Colis en retard.",
                                                  locale="ja", name=None, reference=None))
    assert draft is not None
    assert draft.startswith("Bonjour,\n\nMerci pour votre avis.")
    assert "retardé" in draft


def test_a_shop_overrides_paragraphs_and_keywords_in_its_templates_dir(
        make_config: ConfigFactory, tmp_path: Path) -> None:
    own = tmp_path / "acme-templates" / "drafts" / "en"
    own.mkdir(parents=True)
    (own / "late.j2").write_text("Our courier let you down, {{ first_name }}; we are on it.\n")
    (own / "topics.json").write_text(json.dumps({"late": ["snail"]}))
    (own / "closing.j2").write_text("Cheers from the {{ shop_name }} crew\n")
    config = make_config(shop_extra=f'templates_dir = "{own.parents[1]}"',
                         more=second_shop())
    with open_store(config.store) as store:
        acme = add_review(store, stars=2, text="Slow as a snail.")
        bolt = add_review(store, stars=2, text="Slow as a snail, very late.", shop="bolt")
        acme_draft, bolt_draft = suggest(config, store, acme), suggest(config, store, bolt)
    assert acme_draft is not None and bolt_draft is not None
    assert "Our courier let you down, Ann; we are on it." in acme_draft
    assert acme_draft.rstrip().endswith("Cheers from the ACME Shoes crew")
    assert "Hello Ann," in acme_draft  # the greeting still comes from the package
    assert "courier" not in bolt_draft and "took longer than it should" in bolt_draft
    assert bolt_draft.rstrip().endswith("Kind regards,\nBolt Bikes")


# --------------------------------------------------------------------------- [drafts] command


GENERATOR = '''
import json, sys, time
review = json.load(sys.stdin)
mode = sys.argv[1]
if mode == "ok":
    print(f"Dear {review['first_name']}, about {review['reference']} "
          f"({', '.join(review['products'])}, {review['stars']} stars, {review['locale']}, "
          f"{review['shop']['id']}/{review['shop']['name']}): {review['text']}")
    print("TEMPLATE:" + review["draft"].splitlines()[0])
elif mode == "fail":
    print("half a draft")
    sys.exit(3)
elif mode == "slow":
    time.sleep(30)
elif mode == "huge":
    sys.stdout.write("x" * 20001)
elif mode == "empty":
    sys.stdout.write("  \\n")
'''


def command_config(make_config: ConfigFactory, tmp_path: Path, mode: str,
                   timeout: str = "10s") -> Config:
    script = tmp_path / "generator.py"
    script.write_text(GENERATOR)
    return make_config(more=textwrap.dedent(f'''
        [drafts]
        command = "{sys.executable} {script} {mode}"
        timeout = "{timeout}"
        '''))


def test_the_shops_command_reads_the_review_as_json_and_its_output_is_the_draft(
        make_config: ConfigFactory, tmp_path: Path) -> None:
    config = command_config(make_config, tmp_path, "ok")
    with open_store(config.store) as store:
        draft = suggest(config, store, add_review(store, stars=3, text="Nice but late."))
    assert draft == ("Dear Ann, about 1057 (Trail Runner 2, 3 stars, en, acme/ACME Shoes): "
                     "Nice but late.\nTEMPLATE:Hello Ann,")


@pytest.mark.parametrize(("mode", "logged"), [
    ("fail", "exited with 3"), ("slow", "timed out after 1s"),
    ("huge", "more than 20000 characters"), ("empty", "printed nothing"),
])
def test_a_failing_command_falls_back_to_the_templates_and_is_logged(
        make_config: ConfigFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        mode: str, logged: str) -> None:
    config = command_config(make_config, tmp_path, mode, timeout="1s")
    with open_store(config.store) as store:
        review = add_review(store, stars=1, text="It arrived late.")
        started = datetime.now(UTC)
        draft = suggest(config, store, review)
        took = (datetime.now(UTC) - started).total_seconds()
    assert draft is not None and draft.startswith("Hello Ann,\n\nThank you for telling us")
    assert "took longer than it should" in draft
    assert logged in caplog.text and f"review={review}" in caplog.text
    assert took < 10  # the time-out ended the command (it sleeps 30 s)


def test_a_command_that_cannot_start_falls_back(make_config: ConfigFactory, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    program = tmp_path / "draft-answer"
    program.write_text("#!/bin/sh\necho never\n")
    program.chmod(0o755)
    config = make_config(more=f'[drafts]\ncommand = "{program}"\n')
    program.unlink()  # gone since the config was read
    with open_store(config.store) as store:
        draft = suggest(config, store, add_review(store, stars=2, text="Late."))
    assert draft is not None and draft.startswith("Hello Ann,")
    assert "cannot start" in caplog.text


@pytest.mark.parametrize(("table", "message"), [
    ('[drafts]\ncommand = "draft \'unclosed"\n', "drafts.command"),
    ('[drafts]\ntimeout = "0s"\n', "drafts.timeout"),
    ('[drafts]\nkommand = "x"\n', "kommand"),
    ('[drafts]\ncommand = "/nonexistent/draft-answer --fast"\n', "no executable program"),
])
def test_drafts_config_mistakes_are_reported_clearly(make_config: ConfigFactory, table: str,
                                                     message: str) -> None:
    with pytest.raises(ConfigError) as error:
        make_config(more=table)
    assert message in str(error.value)


def test_a_shops_broken_draft_files_cost_the_draft_only(make_config: ConfigFactory,
                                                        tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    own = tmp_path / "own" / "drafts" / "en"
    own.mkdir(parents=True)
    (own / "topics.json").write_text("{late: oops")
    config = make_config(shop_extra=f'templates_dir = "{tmp_path / "own"}"')
    with open_store(config.store) as store:
        review = add_review(store, stars=1, text="Late.")
        assert suggest(config, store, review) is None
    assert f"review={review} no suggested answer" in caplog.text


async def test_suggest_async_leaves_the_event_loop_free_while_the_command_runs(
        make_config: ConfigFactory, tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text("import sys, time\nsys.stdin.read()\ntime.sleep(1)\nprint('At last.')\n")
    config = make_config(more=f'[drafts]\ncommand = "{sys.executable} {script}"\n')
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            await asyncio.sleep(0.01)
            beats += 1

    with open_store(config.store) as store:
        review = add_review(store, stars=2, text="Late.")
        beating = asyncio.create_task(heartbeat())
        draft = await drafts.suggest_async(config, store, review)
        beating.cancel()
        assert await drafts.suggest_async(config, store, 9999) is None
    assert draft == "At last."
    assert beats > 20  # about 100 in the second the command took
