"""Invitation and reminder mail: languages, locale fallback, overrides, headers, injection."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import pytest

from mailrelay.config import Config
from mailrelay.render import (
    InvitationView,
    RenderedMail,
    Templates,
    clean_header,
    invitation_mail,
    new_message_id,
    web_environment,
)

from .conftest import ConfigFactory
from .rendered import (
    INJECTIONS,
    header_block,
    header_names,
    parse,
    rendered_html,
    rendered_text,
    write,
)

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
REVIEW = "http://reviews.test/r/tok3n?x=1&y=2"
UNSUBSCRIBE = "http://reviews.test/u/tok3n"


def render(config: Config, **overrides: Any) -> RenderedMail:
    shop = config.shops[0]
    args: dict[str, Any] = {
        "purpose": "invitation",
        "to_email": "jane@customer.example",
        "to_name": "Jane Doe",
        "locale": None,
        "reference": "#2111",
        "review_url": REVIEW,
        "unsubscribe_url": UNSUBSCRIBE,
        "products": None,
        "now": NOW,
    }
    args.update(overrides)
    now, message_id = args.pop("now"), args.pop("message_id", None)
    view = InvitationView(**args)
    return invitation_mail(Templates(config), config, shop, view, now=now, message_id=message_id)


# --------------------------------------------------------------------------- languages


@pytest.mark.parametrize(
    ("locale", "subject", "greeting", "button"),
    [
        ("en", "How was your order from ACME Shoes?", "Hello Jane,", "Write your review"),
        ("de", "Wie war Ihre Bestellung bei ACME Shoes?", "Hallo Jane Doe,", "Jetzt bewerten"),
        ("da", "Hvordan var din oplevelse med ACME Shoes?", "Hej Jane,", "Skriv din anmeldelse"),
    ],
)
def test_invitations_render_in_each_built_in_language_with_both_links(
    config: Config, locale: str, subject: str, greeting: str, button: str
) -> None:
    mail = render(config, locale=locale)
    message = parse(mail)
    assert mail.subject == subject
    assert message["Subject"] == subject
    assert message["Content-Language"] == locale
    text, html = rendered_text(mail), rendered_html(mail)
    assert text.startswith(greeting + "\n")
    assert "#2111" in text and "#2111" in html
    assert REVIEW in text and UNSUBSCRIBE in text
    assert f'<html lang="{locale}">' in html
    assert 'href="http://reviews.test/r/tok3n?x=1&amp;y=2"' in html
    assert f'href="{UNSUBSCRIBE}"' in html
    assert f">{button}</a>" in html


@pytest.mark.parametrize(
    ("locale", "subject"),
    [
        ("en", "Reminder: how was your order from ACME Shoes?"),
        ("de", "Erinnerung: Wie war Ihre Bestellung bei ACME Shoes?"),
        ("da", "Påmindelse: Hvordan var din oplevelse med ACME Shoes?"),
    ],
)
def test_reminders_render_in_each_built_in_language(
    config: Config, locale: str, subject: str
) -> None:
    mail = render(config, purpose="reminder", locale=locale)
    assert mail.subject == subject
    assert parse(mail)["Content-Language"] == locale
    assert REVIEW in rendered_text(mail)
    assert f'href="{UNSUBSCRIBE}"' in rendered_html(mail)


@pytest.mark.parametrize(
    ("locale", "greeting"), [("en", "Hello,"), ("de", "Hallo,"), ("da", "Hej,")]
)
def test_a_customer_without_a_name_gets_a_neutral_greeting(
    config: Config, locale: str, greeting: str
) -> None:
    for name in (None, "", "  ", "jane@customer.example"):
        mail = render(config, locale=locale, to_name=name)
        assert rendered_text(mail).startswith(greeting + "\n")
        assert f">{greeting}</p>" in rendered_html(mail)
        assert parse(mail)["To"] == "jane@customer.example"


def test_products_with_a_name_are_listed_in_text_and_html(config: Config) -> None:
    products = [{"name": "Trail Runner 2", "sku": "TR2"}, {"sku": "nameless"}]
    mail = render(config, products=products)
    assert "  - Trail Runner 2\n" in rendered_text(mail)
    assert "<li>Trail Runner 2</li>" in rendered_html(mail)
    assert "nameless" not in rendered_text(mail)
    assert "You ordered" not in rendered_text(render(config, products=[]))


def test_the_built_in_wording_never_gates_reviews_on_satisfaction() -> None:
    mail_dir = Path(str(files("mailrelay") / "templates" / "mail"))
    texts = {path: path.read_text(encoding="utf-8").lower() for path in mail_dir.rglob("*.j2")}
    assert len(texts) >= 19  # 3 locales × 2 purposes × 3 files + the layout
    gating = ("satisf", "happy", "enjoyed", "zufrieden", "gefallen", "tilfreds", "glad")
    for path, text in texts.items():
        for word in gating:
            assert word not in text, f"{path.name} says {word!r}"


# --------------------------------------------------------------------------- locale fallback


def test_a_regional_locale_falls_back_to_its_language(config: Config) -> None:
    templates = Templates(config)
    shop = config.shops[0]
    assert templates.locale_chain(shop, "de-DE") == ["de-DE", "de", "en"]
    assert templates.locale_chain(shop, "de_de") == ["de-DE", "de", "en"]
    mail = render(config, locale="de-DE")
    assert parse(mail)["Content-Language"] == "de"
    assert mail.subject.startswith("Wie war Ihre Bestellung")


def test_an_unknown_locale_falls_back_to_the_shop_locale_then_english(
    make_config: ConfigFactory,
) -> None:
    danish = make_config(shop_extra='locale = "da-DK"')
    chain = Templates(danish).locale_chain(danish.shops[0], "pt-BR")
    assert chain == ["pt-BR", "pt", "da-DK", "da", "en"]
    assert parse(render(danish, locale="pt"))["Content-Language"] == "da"
    assert parse(render(danish, locale=None))["Content-Language"] == "da"

    english = make_config()
    assert parse(render(english, locale="pt"))["Content-Language"] == "en"


@pytest.mark.parametrize(
    "locale", ["../../etc/passwd", "de/../en", "de\0", "de\r\nBcc: x", "d", "de-", "toolong1"]
)
def test_a_locale_that_is_not_a_locale_is_ignored(config: Config, locale: str) -> None:
    templates = Templates(config)
    assert templates.locale_chain(config.shops[0], locale) == ["en"]
    assert parse(render(config, locale=locale))["Content-Language"] == "en"


def test_an_unknown_purpose_is_refused(config: Config) -> None:
    templates = Templates(config)
    with pytest.raises(ValueError, match="purpose"):
        templates.render_text(config.shops[0], "../invitation", "en")


# --------------------------------------------------------------------------- overrides


def test_a_shop_templates_dir_overrides_a_single_file(
    tmp_path: Path, make_config: ConfigFactory
) -> None:
    own = tmp_path / "shop-templates"
    write(own / "mail" / "en" / "invitation.subject.j2", "{{ shop_name }} wants to know\n")
    config = make_config(shop_extra='templates_dir = "shop-templates"')
    assert config.shops[0].templates_dir == own

    mail = render(config)
    assert mail.subject == "ACME Shoes wants to know"
    assert rendered_text(mail).startswith("Hello Jane,\n")  # the built-in text part
    assert "Write your review" in rendered_html(mail)  # and the built-in html part
    # Another shop-less environment still sees only the built-ins.
    assert render(make_config()).subject == "How was your order from ACME Shoes?"


def test_web_pages_use_the_same_lookup_a_templates_dir_overrides_one_page(
    tmp_path: Path,
) -> None:
    write(tmp_path / "web" / "not_found.html.j2",
          '{% extends "base.html.j2" %}{% block content %}<p>{{ lang }}: gone</p>{% endblock %}')
    page = web_environment(tmp_path).get_template("not_found.html.j2")
    assert "<p>en: gone</p>" in page.render(t=lambda key, **_: key, lang="en")
    built_in = web_environment().get_template("not_found.html.j2")
    assert built_in.filename != page.filename
    assert web_environment(tmp_path).get_template("base.html.j2").filename == (
        web_environment().get_template("base.html.j2").filename)  # not overridden: built-in
    with pytest.raises(jinja2.UndefinedError):  # web pages: a missing variable is an error
        web_environment().from_string("{{ missing.name }}").render()


def test_a_shop_can_add_a_locale_of_its_own(tmp_path: Path, make_config: ConfigFactory) -> None:
    # Portuguese: not built in (Dutch was, in this test, until issue 13 made it built in).
    own = tmp_path / "shop-templates" / "mail" / "pt"
    write(own / "invitation.subject.j2", "Como correu a sua encomenda na {{ shop_name }}?\n")
    write(own / "invitation.txt.j2", "Olá{% if first_name %} {{ first_name }}{% endif %},\n")
    config = make_config(shop_extra='templates_dir = "shop-templates"')

    mail = render(config, locale="pt-BR")
    assert mail.subject == "Como correu a sua encomenda na ACME Shoes?"
    assert parse(mail)["Content-Language"] == "pt"
    assert rendered_text(mail) == "Olá Jane,\n"
    assert parse(mail).get_content_type() == "text/plain"  # no .html.j2: a text-only mail
    assert parse(mail).get_body(("html",)) is None


def test_html_templates_are_autoescaped_and_text_templates_are_not(config: Config) -> None:
    name = "<script>alert(1)</script>"
    mail = render(config, to_name=name)
    assert "Hello <script>alert(1)</script>," in rendered_text(mail)
    html = rendered_html(mail)
    assert "<script>" not in html
    assert "Hello &lt;script&gt;alert(1)&lt;/script&gt;," in html


# --------------------------------------------------------------------------- headers


def test_the_headers_are_present_and_exact(config: Config) -> None:
    mail = render(config, message_id="<fixed.1@relay.test>")
    message = parse(mail)
    assert message["From"] == "ACME Shoes <reviews@acme.example>"
    assert message["To"] == "Jane Doe <jane@customer.example>"
    assert message["Subject"] == "How was your order from ACME Shoes?"
    assert message["Date"] == "Fri, 20 Nov 2026 09:30:00 +0000"
    assert message["Message-ID"] == "<fixed.1@relay.test>"
    assert message["Reply-To"] == "ACME Shoes <reviews@acme.example>"
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == "en"
    assert message["X-Mailrelay-Shop"] == "acme"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in message.iter_parts())
    assert mail.to == "jane@customer.example"
    assert mail.message_id == "<fixed.1@relay.test>"
    assert mail.subject == message["Subject"]
    assert header_names(mail.raw) == [
        "from", "to", "subject", "date", "message-id", "reply-to", "list-unsubscribe",
        "list-unsubscribe-post", "auto-submitted", "mime-version", "content-type",
        "content-language", "x-mailrelay-shop",
    ]  # fmt: skip


def test_extra_headers_are_added_cleaned_and_reserved_ones_refused(config: Config) -> None:
    long_id = "<" + "a" * 90 + "@eur01.prod.outlook.com>"
    mail = render(
        config,
        extra_headers={"X-Mailrelay-Invitation": "42\r\nBcc: evil", "In-Reply-To": long_id},
    )
    message = parse(mail)
    assert message["X-Mailrelay-Invitation"] == "42 Bcc: evil"
    assert message["In-Reply-To"] == long_id
    assert f"In-Reply-To: {long_id}\r\n".encode() in mail.raw  # never RFC 2047-encoded
    assert "bcc" not in header_names(mail.raw)
    refused = ("Bcc", "to", "Message-ID", "Subject", "Content-Type", "Bad Name", "X-Evil\r\nBcc")
    for name in refused:
        with pytest.raises(ValueError, match="not allowed"):
            render(config, extra_headers={name: "x"})


def test_a_long_unsubscribe_url_is_written_verbatim(config: Config) -> None:
    url = "http://reviews.test/u/" + "A1b2C3d4" * 20
    mail = render(config, unsubscribe_url=url)
    assert f"List-Unsubscribe: <{url}>\r\n".encode() in mail.raw
    assert parse(mail)["List-Unsubscribe"] == f"<{url}>"


def test_raw_uses_crlf_line_endings_only(config: Config) -> None:
    for locale in ("en", "de", "da"):
        raw = render(config, locale=locale, to_name="Jürgen Weiß").raw
        assert raw.count(b"\r\n") > 20
        assert b"\n" not in raw.replace(b"\r\n", b"")
        assert b"\r" not in raw.replace(b"\r\n", b"")
        assert raw.isascii()  # 7-bit: quoted-printable bodies, RFC 2047 headers
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_message_ids_are_unique_and_in_the_relay_domain(config: Config) -> None:
    ids = {render(config).message_id for _ in range(50)} | {
        new_message_id(config.smtp.hostname) for _ in range(200)
    }
    assert len(ids) == 250
    for message_id in ids:
        assert re.fullmatch(r"<[0-9a-f]{32}@relay\.test>", message_id)
    mail = render(config)
    assert parse(mail)["Message-ID"] == mail.message_id
    with pytest.raises(ValueError):
        new_message_id("bad domain>")
    with pytest.raises(ValueError):
        render(config, message_id="no-angle-brackets@relay.test")


def test_a_naive_time_is_taken_as_utc(config: Config) -> None:
    mail = render(config, now=datetime(2026, 11, 20, 9, 30))
    assert parse(mail)["Date"] == "Fri, 20 Nov 2026 09:30:00 +0000"


@pytest.mark.parametrize("name", ["Jørgen Sørensen", "Jürgen Weiß"])
def test_non_ascii_names_survive_a_round_trip(config: Config, name: str) -> None:
    for locale in ("en", "de", "da"):
        mail = render(config, to_name=name, locale=locale)
        message = parse(mail)
        (address,) = message["To"].addresses
        assert address.display_name == name
        assert address.addr_spec == "jane@customer.example"
        assert b"=?utf-8?" in header_block(mail.raw)
        greeting = name if locale == "de" else name.split()[0]
        assert f" {greeting}," in rendered_text(mail)
        assert f" {greeting},</p>" in rendered_html(mail)


def test_a_non_ascii_subject_is_encoded_and_decodes_back(
    tmp_path: Path, make_config: ConfigFactory
) -> None:
    write(tmp_path / "t" / "mail" / "en" / "invitation.subject.j2", "Hej {{ customer_name }} ★")
    config = make_config(shop_extra='templates_dir = "t"')
    mail = render(config, to_name="Jørgen Sørensen")
    assert re.search(rb"\r\nSubject: Hej =\?utf-8\?[qb]\?", mail.raw)
    assert parse(mail)["Subject"] == "Hej Jørgen Sørensen ★" == mail.subject


# --------------------------------------------------------------------------- injection


@pytest.mark.parametrize("name", INJECTIONS)
def test_a_name_with_a_line_break_never_adds_a_header(config: Config, name: str) -> None:
    mail = render(config, to_name=name)
    message = parse(mail)
    assert message["Bcc"] is None
    assert "bcc" not in header_names(mail.raw)
    assert not re.search(rb"\r\nBcc:", header_block(mail.raw), re.IGNORECASE)
    assert b"\0" not in mail.raw
    assert len(message["To"].addresses) == 1
    assert message["To"].addresses[0].addr_spec == "jane@customer.example"
    assert "\n" not in message["To"].addresses[0].display_name


@pytest.mark.parametrize("value", INJECTIONS)
def test_input_in_a_subject_template_never_adds_a_header(
    tmp_path: Path, make_config: ConfigFactory, value: str
) -> None:
    write(
        tmp_path / "t" / "mail" / "en" / "invitation.subject.j2",
        "Order {{ reference }} for {{ customer_name }} at {{ shop_name }}",
    )
    config = make_config(shop_extra='templates_dir = "t"')
    mail = render(config, to_name=value, reference=value)
    message = parse(mail)
    assert message["Bcc"] is None
    assert "bcc" not in header_names(mail.raw)
    assert "\r" not in mail.subject and "\n" not in mail.subject and "\0" not in mail.subject
    assert message["Subject"] == mail.subject


def test_control_characters_never_reach_the_text_body(config: Config) -> None:
    mail = render(config, to_name="Ja\0ne\x1b[31m Doe", reference="#21\r\n11")
    text = rendered_text(mail)
    assert "\0" not in text and "\x1b" not in text
    assert "Hello Jane[31m," in text
    assert "order #21 11 from" in text


def test_clean_header_strips_controls_collapses_space_and_cuts() -> None:
    assert clean_header(None) == ""
    assert clean_header("  Jane \t\r\n Doe  ") == "Jane Doe"
    assert clean_header("Ja\0ne\x7f\x1b") == "Jane"
    assert clean_header("Eve\u2028Bcc: x\u2029") == "Eve Bcc: x"
    assert clean_header("\u202eevil\u202c") == "evil"
    assert clean_header("a\udcffb") == "ab"
    assert clean_header("=?utf-8?q?x?=") == "= ?utf-8?q?x?="
    assert clean_header("Jørgen Sørensen") == "Jørgen Sørensen"
    assert clean_header("x" * 300) == "x" * 200
    assert clean_header("abc def", limit=4) == "abc"


@pytest.mark.parametrize(
    "address", ["", "no-at-sign", "a@b\r\nBcc: evil@x", "a b@c.example", "<a@b.example>"]
)
def test_an_unusable_recipient_address_is_refused(config: Config, address: str) -> None:
    with pytest.raises(ValueError, match="recipient"):
        render(config, to_email=address)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "http://x/ y", "/relative", "http://x/<"])
def test_links_that_are_not_http_urls_are_refused(config: Config, url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        render(config, review_url=url)
    with pytest.raises(ValueError, match="URL"):
        render(config, unsubscribe_url=url)


def test_an_internationalized_domain_is_sent_in_its_ascii_form(config: Config) -> None:
    mail = render(config, to_email="jane@bücher.example")
    assert mail.to == "jane@xn--bcher-kva.example"
    assert parse(mail)["To"].addresses[0].addr_spec == "jane@xn--bcher-kva.example"


def test_a_non_ascii_local_part_is_refused_as_needing_smtputf8(config: Config) -> None:
    with pytest.raises(ValueError, match="SMTPUTF8"):
        render(config, to_email="jürgen@example.com")


# --------------------------------------------------------------------------- the block's sender


def test_a_blocks_sender_name_and_reply_to_set_from_name_and_reply_to(config: Config) -> None:
    message = parse(render(config, sender_name="Søstrene Grene", reply_to="help@acme.example"))
    assert message["From"].addresses[0].display_name == "Søstrene Grene"
    assert message["From"].addresses[0].addr_spec == "reviews@acme.example"
    assert message["Reply-To"] == "help@acme.example"
    reminder = parse(render(config, purpose="reminder", sender_name="ACME Portugal"))
    assert reminder["From"] == "ACME Portugal <reviews@acme.example>"
    assert reminder["Reply-To"] == "ACME Shoes <reviews@acme.example>"


@pytest.mark.parametrize("name", [*INJECTIONS, "Eve <evil@example.com>, x@y.example"])
def test_a_hostile_sender_name_never_adds_a_header_or_an_address(
    config: Config, name: str
) -> None:
    mail = render(config, sender_name=name)
    message = parse(mail)
    assert "bcc" not in header_names(mail.raw)
    assert not re.search(rb"\r\nBcc:", header_block(mail.raw), re.IGNORECASE)
    [sender] = message["From"].addresses
    assert sender.addr_spec == "reviews@acme.example"
    assert "\n" not in sender.display_name and "=?" not in sender.display_name
    assert "@" not in sender.display_name  # a name that shows an address is no name


@pytest.mark.parametrize("reply_to", [
    *INJECTIONS, "help@acme.example\r\nBcc: evil@example.com", "help@acme.example, evil@x.example",
    "Eve <evil@example.com>", "=?utf-8?q?help=40acme.example=0D=0ABcc:_evil@x?=", "no address",
    "jörg@acme.example", "help@acme.example\0",
])
def test_an_unusable_reply_to_falls_back_to_the_shops_address(
    config: Config, reply_to: str
) -> None:
    mail = render(config, reply_to=reply_to)
    message = parse(mail)
    assert "bcc" not in header_names(mail.raw)
    assert message["Reply-To"] == "ACME Shoes <reviews@acme.example>"
