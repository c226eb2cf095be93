"""Every built-in locale is complete: each English web text translated (with every plural form
the locale needs and the same placeholders), each English mail template there and rendering
something that is not English, and the web pages served in it without an English sentence.

English files are found by glob (en.json, en.<area>.json, mail/en/*), so a text or template a
feature adds is checked in every locale without touching this file. This is the gate for a
new or extended locale.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from bs4 import BeautifulSoup

from mailrelay.app import Daemon
from mailrelay.core.clock import FrozenClock
from mailrelay.core.locales import BUILTIN_LOCALES, FALLBACK_LOCALE
from mailrelay.core.reply_marker import REPLY_MARKER
from mailrelay.core.tokens import REVIEW, UNSUBSCRIBE
from mailrelay.edges.web.i18n import I18N, Strings
from mailrelay.render import Templates
from mailrelay.render.localized import long_date, plural_forms, short_datetime

from .conftest import ConfigFactory, second_shop
from .web_forms import base, csrf_of, form_page, invite, post

MAIL = I18N.parents[1] / "mail"
TRANSLATED = [locale for locale in BUILTIN_LOCALES if locale != FALLBACK_LOCALE]
PLURAL_SUFFIX = re.compile(r"^(?P<base>.+)_(?P<form>zero|one|two|few|many|other)$")
PLACEHOLDER = re.compile(r"\{(\w+)\}")

#: Texts a translation may leave as in English, each with why. Kept short on purpose: a value
#: equal to the English one is nearly always a text someone forgot to translate.
SAME_AS_ENGLISH: Mapping[str, str] = {
    "OK": "understood as is in every one of our languages",
    "mailrelay": "the program's name",
}


def english_files() -> list[Path]:
    """en.json and every en.<area>.json: the web texts a locale must have."""
    return sorted(I18N.glob(f"{FALLBACK_LOCALE}.json")) + sorted(
        I18N.glob(f"{FALLBACK_LOCALE}.*.json"))


def texts(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def counterpart(english: Path, locale: str) -> Path:
    return english.with_name(locale + english.name[len(FALLBACK_LOCALE):])


def placeholders(value: Any) -> set[str]:
    return set(PLACEHOLDER.findall(str(value)))


def trivial(value: Any) -> bool:
    """A text with nothing to translate: only placeholders, digits and punctuation."""
    return not re.search(r"[^\W\d_]", PLACEHOLDER.sub("", str(value)))


# --- the machinery: Babel's plural forms, dates and numbers -------------------------------------


def test_plural_forms_follow_the_locale_s_rules_and_fall_back_to_other(tmp_path: Path) -> None:
    (tmp_path / "en.json").write_text(json.dumps(
        {"star_one": "{n} star", "star_other": "{n} stars", "only.english": "Hello"}))
    (tmp_path / "pl.json").write_text(json.dumps(
        {"star_one": "{n} gwiazdka", "star_few": "{n} gwiazdki", "star_many": "{n} gwiazdek",
         "star_other": "{n} gwiazdki"}))
    (tmp_path / "sv.json").write_text(json.dumps({"star_other": "{n} stjärnor"}))
    polish = Strings(tmp_path).translator("pl-PL")
    said = [polish.plural("star", n) for n in (1, 2, 4, 5, 12, 22, 25)]
    assert said == ["1 gwiazdka", "2 gwiazdki", "4 gwiazdki", "5 gwiazdek", "12 gwiazdek",
                    "22 gwiazdki", "25 gwiazdek"]
    swedish = Strings(tmp_path).translator("sv")
    assert swedish.plural("star", 1) == "1 stjärnor"  # no _one: the locale's _other
    assert swedish.plural("star", 1234) == "1\xa0234 stjärnor"  # Swedish digit grouping
    assert swedish("only.english") == "Hello"  # the English safety net


def test_dates_and_decimals_are_written_the_locale_s_way() -> None:
    strings = Strings()
    day = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert strings.translator("fi").date(day) == "20. marraskuuta 2026"
    assert strings.translator("de").date(day) == "20. November 2026"
    assert strings.translator("en").date(day) == "November 20, 2026"
    assert strings.translator("nl").decimal(4.5) == "4,5"
    assert strings.translator("en").decimal(4.5) == "4.5"
    assert short_datetime(day, "nb") == "20. nov. 2026, 09:30 UTC"


def test_a_norwegian_browser_gets_bokmal_and_an_unknown_one_english() -> None:
    strings = Strings()
    assert strings.pick("no-NO") == "nb"
    assert strings.pick("nn") == "nb"
    assert strings.pick("sv-FI") == "sv"
    assert strings.pick("xx", None) == "en"


def test_mail_templates_get_plural_forms_dates_and_numbers_in_their_locale(
    make_config: ConfigFactory,
) -> None:
    env = Templates(make_config()).environment()
    template = env.from_string("{{ plural_form(n) }}|{{ day | long_date }}|{{ 4.5 | decimal }}")
    day = datetime(2026, 11, 20, tzinfo=UTC)
    assert template.render(locale="pl", n=3, day=day) == "few|20 listopada 2026|4,5"
    assert template.render(locale="sv", n=1, day=day) == "one|20 november 2026|4,5"
    assert template.render(locale="en", n=5, day=None) == "other||4.5"


# --- web texts ----------------------------------------------------------------------------------


def required_keys(english: Mapping[str, Any], locale: str) -> Iterator[tuple[str, str]]:
    """(key the locale needs, the English key it matches): a plural family (`x_one`,
    `x_other`) needs every form the locale's plural rules use, each like English `x_other`."""
    families: set[str] = set()
    for key in english:
        match = PLURAL_SUFFIX.match(key)
        if match and f"{match['base']}_other" in english:
            families.add(match["base"])
            continue
        yield key, key
    for family in sorted(families):
        for form in sorted(plural_forms(locale)):
            model = f"{family}_{form}" if f"{family}_{form}" in english else f"{family}_other"
            yield f"{family}_{form}", model


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_web_text_is_translated_with_its_plural_forms_and_placeholders(
    locale: str,
) -> None:
    problems: list[str] = []
    for english_path in english_files():
        path = counterpart(english_path, locale)
        if not path.exists():
            problems.append(f"{path.name} is missing")
            continue
        english, translated = texts(english_path), texts(path)
        for key, model in required_keys(english, locale):
            if key not in translated:
                problems.append(f"{path.name}: {key} is missing")
                continue
            value = translated[key]
            if placeholders(value) != placeholders(english[model]):
                problems.append(f"{path.name}: {key} has {sorted(placeholders(value))}, "
                                f"English {sorted(placeholders(english[model]))}")
            if (value == english.get(key) and not trivial(value)
                    and str(value) not in SAME_AS_ENGLISH):
                problems.append(f"{path.name}: {key} is still English: {value!r}")
    assert not problems, "\n".join(problems)


def test_the_english_texts_are_found_by_glob_and_have_plural_families() -> None:
    names = [path.name for path in english_files()]
    assert names[0] == "en.json"
    english = texts(I18N / "en.json")
    keys = dict(required_keys(english, "pl"))
    assert {"star_one", "star_few", "star_many", "star_other"} <= set(keys)
    assert keys["star_few"] == "star_other"
    assert plural_forms("pl") >= {"one", "few", "many", "other"}


# --- mail templates -----------------------------------------------------------------------------

ALERT_KINDS = ("new_sender", "outbound_failing", "outbound_resolved", "imap_unreachable",
               "imap_resolved", "review_reported")
#: One realistic context for every template (a missing variable renders empty): the values of
#: an invitation, a reminder, a ticket, a response and a rejected reply, in our own words.
SAMPLE: dict[str, Any] = {
    "shop_name": "Kestrel Kites",
    "customer_name": "Ilse Varga",
    "first_name": "Ilse",
    "reference": "#K-5521",
    "review_url": "https://reviews.kestrel.example/r/token-5521",
    "unsubscribe_url": "https://reviews.kestrel.example/u/token-5521",
    "public_url": "https://reviews.kestrel.example/s/kestrel",
    "products": [{"name": "Skyline Delta 180", "sku": "SD180"},
                 {"name": "Flying lines 2x25m", "sku": "FL25"}],
    "marker": REPLY_MARKER,
    "key": "q4w8e2r6t1y5",
    "updated": False,
    "stars": 4,
    "stars_bar": "★★★★☆",
    "title": "Zipp-Zapp 4711",
    "headline": "Zipp-Zapp 4711",
    "text": "Zipp-Zapp 4711 qwerty.",
    "paragraphs": [["Zipp-Zapp 4711 qwerty."]],
    "body": "Xyzzy plugh 8808.",
    "reviewer_name": "Ilse V.",
    "customer_email": "ilse@kestrel-buyer.example",
    "method": "automatic",
    "review_locale": "hu",
    "created_at": "2026-11-20 10:30 CET",
    "received_at": "2026-11-12",
    "customer_context": {
        "reviews": [{"date": "2026-06-02", "stars": 5, "stars_bar": "★★★★★",
                     "title": "Gadzooks 99"}],
        "invitations": [{"date": "2026-05-28", "reference": "#K-4410", "status": "sent"}],
        "replies": [{"date": "2026-06-03", "snippet": "Frobnicate 77."}],
        "status": [{"kind": "bounced", "mail": "address bounced"}],
    },
    "answered_by": "auto",
    "auto_response": "Quux 4242.",
    "auto_paragraphs": [["Quux 4242."]],
    "code": "held_back",
    "detail": "Gronk 5",
    "reason": "Blorf-9",
    "explanation": "Snarf-10.",
    "original_subject": "Re: Zipp-Zapp 4711",
    "original_text": "Wibble 3131.",
    "facts": {"sender": "notices@kestrel.example", "subject": "Zorp 1234", "since": "10:30 UTC",
              "review_id": "31", "reason": "Blorf-9"},
}
SAMPLE_WORDS = {"Kestrel", "Ilse", "Varga", "K-5521", "Skyline", "Zipp-Zapp", "Xyzzy", "Gadzooks",
                "Frobnicate", "Quux", "Blorf-9", "Snarf-10", "Wibble", "Zorp", "kestrel", "##-",
                "[mr:", "SD180", "FL25", "K-4410", "Gronk"}


def mail_templates() -> list[str]:
    names = sorted(path.name for path in (MAIL / FALLBACK_LOCALE).glob("*.j2"))
    assert "invitation.txt.j2" in names, MAIL
    return names


def renderings(templates: Templates, locale: str, name: str) -> Iterator[str]:
    """The template rendered with the sample, once per alert kind for alerts."""
    template = templates.environment().get_template(f"mail/{locale}/{name}")
    kinds = ALERT_KINDS if name.startswith("alert.") else (None,)
    for kind in kinds:
        yield template.render({**SAMPLE, "kind": kind, "locale": locale,
                               "purpose": name.split(".")[0]})


def visible_lines(rendered: str) -> list[str]:
    text = BeautifulSoup(rendered, "html.parser").get_text("\n") if "<" in rendered else rendered
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def english_sentences(rendered: str) -> list[str]:
    """The lines of an English rendering that are our own words: three words or more, no
    sample value in them."""
    return [line for line in visible_lines(rendered)
            if len(re.findall(r"[A-Za-z]{2,}", line)) >= 3
            and not any(word in line for word in SAMPLE_WORDS)]


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_mail_template_exists_renders_and_is_not_english(
    locale: str, make_config: ConfigFactory,
) -> None:
    templates = Templates(make_config())
    problems: list[str] = []
    for name in mail_templates():
        if not (MAIL / locale / name).exists():
            problems.append(f"mail/{locale}/{name} is missing")
            continue
        for english, translated in zip(renderings(templates, FALLBACK_LOCALE, name),
                                       renderings(templates, locale, name), strict=True):
            if translated.strip() == english.strip():
                problems.append(f"mail/{locale}/{name} renders as in English")
            lines = set(visible_lines(translated))
            left = [line for line in english_sentences(english) if line in lines]
            if left:
                problems.append(f"mail/{locale}/{name} keeps English lines: {left}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_purpose_is_found_in_the_locale_s_own_folder(
    locale: str, make_config: ConfigFactory,
) -> None:
    """render_text picks the locale's templates, never the English fallback, for every
    purpose with a subject."""
    config = make_config()
    templates = Templates(config)
    purposes = sorted(path.name.removesuffix(".subject.j2")
                      for path in (MAIL / FALLBACK_LOCALE).glob("*.subject.j2"))
    assert "invitation" in purposes
    context = {key: value for key, value in SAMPLE.items() if key != "shop_name"}
    missing = []
    for purpose in purposes:
        *_, used = templates.render_text(config.shops[0], purpose, locale,
                                         **{**context, "kind": "new_sender"})
        if used != locale:
            missing.append(f"{locale}/{purpose} fell back to {used}")
    assert not missing, "\n".join(missing)


# --- the web pages, over HTTP -------------------------------------------------------------------


def english_phrases() -> set[str]:
    """Every English web text cut at its placeholders, the pieces of two words or more."""
    phrases: set[str] = set()
    for path in english_files():
        for value in texts(path).values():
            if not isinstance(value, str) or value in SAME_AS_ENGLISH:
                continue
            for piece in PLACEHOLDER.split(value)[::2]:
                piece = " ".join(piece.strip(" .,:;!?()·–—\"'“”").split())
                if len(re.findall(r"[A-Za-z]{2,}", piece)) >= 2:
                    phrases.add(piece)
    return phrases


def page_text(html: str) -> str:
    """What a visitor reads or hears: the text, the title and the labelling attributes."""
    soup = BeautifulSoup(html, "html.parser")
    for hidden in soup(["script", "style"]):
        hidden.decompose()
    parts = [soup.get_text(" ")]
    for element in soup.find_all(True):
        for attribute in ("alt", "title", "aria-label", "placeholder", "content", "value"):
            value = element.get(attribute)
            if isinstance(value, str):
                parts.append(value)
    return " ".join(" ".join(parts).split())


def english_left(html: str) -> list[str]:
    text = page_text(html)
    return sorted(phrase for phrase in english_phrases()
                  if re.search(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", text))


async def fetch(http: aiohttp.ClientSession, url: str, status: int = 200,
                data: dict[str, str] | None = None) -> str:
    method = http.post if data is not None else http.get
    async with method(url, data=data) as resp:
        assert resp.status == status, (url, resp.status)
        return await resp.text()


@pytest.mark.parametrize("locale", TRANSLATED)
async def test_the_web_pages_speak_the_locale_without_an_english_sentence(
    locale: str, make_config: ConfigFactory, http: aiohttp.ClientSession,
) -> None:
    """acme speaks English, so its form, thanks and unsubscribe pages follow the invitation's
    locale; bolt speaks the locale, for its public page and its 404."""
    config = make_config(more=second_shop(locale=locale))
    clock = FrozenClock(datetime(2026, 11, 20, 9, 30, tzinfo=UTC))
    async with Daemon(config, clock) as daemon:
        pages: dict[str, str] = {}
        for shop_id in ("acme", "bolt"):
            inv = await invite(daemon, name="Ilse Varga", locale=locale, shop_id=shop_id)
            form = await form_page(http, daemon, inv.token)
            pages.setdefault("form", form)
            status, _text, resp = await post(http, daemon, inv.token, {
                "stars": "4", "title": "Zipp-Zapp 4711", "text": "Zipp-Zapp 4711 qwerty.",
                "name": "Ilse V.", "csrf": csrf_of(form)})
            assert status == 200 and resp.url.path.endswith("/thanks"), status
            pages.setdefault("thanks", _text)
            unsubscribe = daemon.web.signer.convert(inv.token, REVIEW, UNSUBSCRIBE)
            assert unsubscribe is not None
            pages.setdefault("unsubscribe", await fetch(http, f"{base(daemon)}/u/{unsubscribe}"))
            pages.setdefault("unsubscribed", await fetch(
                http, f"{base(daemon)}/u/{unsubscribe}", data={"List-Unsubscribe": "One-Click"}))
        pages["public"] = await fetch(http, f"{base(daemon)}/s/bolt")
        pages["404"] = await fetch(http, f"{base(daemon)}/s/bolt?page=9", status=404)
    for name, html in pages.items():
        assert f'lang="{locale}"' in html, name
        assert not english_left(html), (name, english_left(html))
    assert long_date(clock.now(), locale) in pages["public"]


async def test_the_english_pages_are_caught_by_the_same_check(
    make_config: ConfigFactory, http: aiohttp.ClientSession,
) -> None:
    """The check above would see English: it finds the public page's own sentences."""
    async with Daemon(make_config(), FrozenClock()) as daemon:
        html = await fetch(http, f"{base(daemon)}/s/acme")
    assert "No reviews yet" in english_left(html)


async def test_a_shop_rewords_a_text_and_adds_a_language_of_its_own(
    tmp_path: Path, make_config: ConfigFactory, http: aiohttp.ClientSession,
) -> None:
    """<templates_dir>/web/i18n/*.json over the built-in texts, for that shop only."""
    folder = tmp_path / "acme-templates" / "web" / "i18n"
    folder.mkdir(parents=True)
    (folder / "nl.json").write_text(json.dumps({"form.submit": "Verstuur maar!"}))
    (folder / "pt.json").write_text(json.dumps({"form.title": "Avalie a sua encomenda na {shop}"}))
    config = make_config(shop_extra=f'templates_dir = "{folder.parents[1]}"',
                         more=second_shop())
    async with Daemon(config, FrozenClock()) as daemon:
        pages = {}
        for shop_id, locale in (("acme", "nl"), ("acme", "pt"), ("bolt", "nl")):
            inv = await invite(daemon, f"{locale}@customer.example", locale=locale,
                               shop_id=shop_id)
            pages[shop_id, locale] = await form_page(http, daemon, inv.token)
    assert "Verstuur maar!" in pages["acme", "nl"]
    assert "Jouw beoordeling" in pages["acme", "nl"]  # the rest stays built in
    assert 'lang="pt"' in pages["acme", "pt"]
    assert "Avalie a sua encomenda na ACME Shoes" in pages["acme", "pt"]
    assert "Send review" in pages["acme", "pt"]  # a text pt lacks: English
    assert "Verstuur maar!" not in pages["bolt", "nl"]
    assert "Beoordeling versturen" in pages["bolt", "nl"]


def test_a_norwegian_customer_gets_the_bokmal_mail(make_config: ConfigFactory) -> None:
    config = make_config()
    templates = Templates(config)
    shop = config.shops[0]
    assert templates.locale_chain(shop, "no-NO") == ["no-NO", "no", "nb", "en"]
    context = {key: value for key, value in SAMPLE.items() if key != "shop_name"}
    subject, _text, _html, used = templates.render_text(shop, "invitation", "no", **context)
    assert used == "nb" and subject == "Hvordan var bestillingen din fra ACME Shoes?"
