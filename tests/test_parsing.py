"""Trigger parsing: the corpus, every reference rule, charsets, structured blocks, broken mail."""

from __future__ import annotations

import base64
import json
import quopri
import random
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any

import pytest

from mailrelay import parsing
from mailrelay.core.models import Product, ShipmentNotice
from mailrelay.parsing import (
    fast_mime,
    find_reference,
    html_text,
    mime_split,
    normalize_address,
    parse_reply,
    parse_trigger,
    trigger,
)
from mailrelay.parsing.html_text import html_to_text

from .conftest import CORPUS, corpus_cases, corpus_params, require_corpus

TRIGGERS = CORPUS / "triggers"
EXPECTED: dict[str, dict[str, Any]] = corpus_cases("triggers", "expected.json")
#: The language each corpus trigger without a block locale is written in (None: too short).
CORPUS_DETECTED_LOCALES = {
    "shipmondo_da": "da", "encoded_name_da": "da", "windows1252_de": "de", "shopify_en": "en",
    "woocommerce_body_ref": "en", "year_is_not_a_reference": "en",
}


def mail(*headers: str, body: str | bytes = "", ctype: str | None = None) -> bytes:
    """A raw message; str bodies are sent as UTF-8 8bit."""
    lines = list(headers)
    if ctype is not None:
        lines.append(f"Content-Type: {ctype}")
    head = "\r\n".join(lines).encode("utf-8")
    data = body.encode("utf-8") if isinstance(body, str) else body
    return head + b"\r\n\r\n" + data


def html_mail(html: str, *headers: str) -> bytes:
    return mail(
        "From: ACME Shoes <shop@acme.example>",
        *headers,
        body=html,
        ctype='text/html; charset="utf-8"',
    )


def block(payload: Any, kind: str = "mailrelay") -> str:
    return f'<p>Shipped.</p><script type="application/json+{kind}">{json.dumps(payload)}</script>'


# --- corpus -------------------------------------------------------------------------------------


def test_every_corpus_message_has_an_expectation() -> None:
    require_corpus("triggers")
    names = {path.stem for path in TRIGGERS.glob("*.eml")}
    assert names == set(EXPECTED)
    assert len(names) >= 9


@pytest.mark.parametrize("case", corpus_params(EXPECTED))
def test_corpus_trigger_yields_what_expected_json_says(case: str) -> None:
    expected = EXPECTED[case]
    notice = parse_trigger((TRIGGERS / f"{case}.eml").read_bytes())

    assert notice.customer_email == expected["email"]
    assert notice.customer_name == expected["name"]
    assert notice.reference == expected["reference"]
    # A block's locale is in expected.json; the rest is read from the text (SPEC "Trigger
    # locale"; a text too short to tell leaves it to the shop's locale).
    assert notice.locale == expected.get("locale", CORPUS_DETECTED_LOCALES.get(case))
    send_at = expected.get("send_at")
    assert notice.send_at == (datetime.fromisoformat(send_at) if send_at else None)
    if notice.send_at is not None:
        assert notice.send_at.tzinfo is not None
    assert (expected["status"] == "rejected") == (notice.customer_email is None)


def test_corpus_block_messages_say_where_their_values_came_from() -> None:
    require_corpus("triggers")
    trustpilot = parse_trigger((TRIGGERS / "trustpilot_snippet.eml").read_bytes())
    assert trustpilot.source == "block:trustpilot"
    assert trustpilot.reference_rule == "block"
    assert trustpilot.products == (
        Product(sku="TR-42", name="Trail Runner", product_url="https://acme.example/p/tr-42"),
    )
    snippet = parse_trigger((TRIGGERS / "mailrelay_snippet_send_time.eml").read_bytes())
    assert snippet.source == "block:mailrelay"
    assert snippet.tags == ("portugal", "b2c")
    shopify = parse_trigger((TRIGGERS / "shopify_en.eml").read_bytes())
    assert (shopify.source, shopify.reference_rule) == ("headers", "hash:subject")
    woo = parse_trigger((TRIGGERS / "woocommerce_body_ref.eml").read_bytes())
    assert woo.reference_rule == "hash:body"


# --- reference rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "reference"),
    [
        ("A shipment from order #1057 is on the way", "1057"),
        ("Order #A-1057 shipped", "A-1057"),
        ("Din ordre #10423 er afsendt", "10423"),
        ("[Order #4521] (November 20, 2026)", "4521"),
        ("Order #2026 shipped", "2026"),
    ],
)
def test_hash_prefixed_tokens_are_references(subject: str, reference: str) -> None:
    assert find_reference(subject, None) == (reference, "hash:subject")


def test_hash_rule_wins_over_dash_token_and_number_rules() -> None:
    text = "Parcel 55555 with AB12345C and PT-77120 for order #1057"
    assert find_reference(text, None) == ("1057", "hash:subject")


def test_hash_needs_a_digit_and_a_direct_prefix() -> None:
    assert find_reference("#blackfriday order 77812", None) == ("77812", "number:subject")
    assert find_reference("Order # 1057", None) == ("1057", "number:subject")
    assert find_reference("Our #1 shoe, order 555", None) == ("555", "number:subject")


def test_html_entity_is_not_a_hash_reference() -> None:
    assert find_reference("Shipped &#8211; thanks", None) == (None, None)


@pytest.mark.parametrize("reference", ["224-KLMN-72OM56", "A-2291-XK", "PT-77120", "123-456"])
def test_dash_groups_with_a_digit_are_references(reference: str) -> None:
    assert find_reference(f"Your order {reference} has shipped", None) == (
        reference,
        "dash:subject",
    )


def test_dash_rule_wins_over_token_and_number_rules() -> None:
    assert find_reference("Order 77812 ORD2211345 ref A-2291-XK", None) == (
        "A-2291-XK",
        "dash:subject",
    )


@pytest.mark.parametrize(
    "text",
    [
        "Delivered 2026-11-20",
        "Delivered 20-11-2026",
        "Delivered 11-20-2026",
        "Season 2025-2026",
        "Valid until 2026-11",
        "Your 2-day shipping",
        "24-hour support",
        "T-shirt x-large",
        "COVID-19 delays",
        "Encoded as UTF-8 and ISO-8859-1",
    ],
)
def test_dates_and_hyphenated_words_are_not_dash_references(text: str) -> None:
    assert find_reference(text, None) == (None, None)


@pytest.mark.parametrize("reference", ["AB12345C", "ORD2211345", "2211345X"])
def test_letter_and_digit_tokens_of_seven_or_more_are_references(reference: str) -> None:
    assert find_reference(f"Order {reference} shipped", None) == (reference, "token:subject")


def test_short_or_single_kind_tokens_are_not_token_references() -> None:
    assert find_reference("Order AB123C shipped", None) == (None, None)
    assert find_reference("Shipment delivered yesterday", None) == (None, None)


def test_token_rule_wins_over_bare_number() -> None:
    assert find_reference("Order 77812 ref ORD2211345", None) == ("ORD2211345", "token:subject")


@pytest.mark.parametrize(
    ("subject", "reference"),
    [
        ("Ordre nr. 77812 er sendt", "77812"),
        ("Ihre Bestellung 400123987 wurde versandt", "400123987"),
        ("Order no.77812 shipped", "77812"),
        ("Order 123 shipped", "123"),
        ("Order 1899 shipped", "1899"),
        ("Order 2200 shipped", "2200"),
        ("Tracking 05123456789 ... order 777", "777"),
    ],
)
def test_bare_numbers_of_three_or_more_digits_are_references(subject: str, reference: str) -> None:
    assert find_reference(subject, None) == (reference, "number:subject")


def test_two_digit_numbers_are_not_references() -> None:
    assert find_reference("Order 42 shipped", None) == (None, None)


@pytest.mark.parametrize("year", ["1900", "1999", "2026", "2199"])
def test_year_in_subject_is_not_taken_as_reference(year: str) -> None:
    assert find_reference(f"Your {year} winter collection has shipped", None) == (None, None)


def test_year_is_skipped_in_favour_of_a_later_number() -> None:
    assert find_reference("Your 2026 order 88213 has shipped", None) == ("88213", "number:subject")


@pytest.mark.parametrize(
    "text",
    [
        "Sent at 09:15 on 20.11.2026",
        "Sent 12:30:45",
        "Sent 20/11/2026",
        "Total 89.00",
        "Total 1.234,50",
        "Total 1299.00",
        "Total DKK 499",
        "Total 499 kr",
        "Total $ 149",
        "Total 149 EUR",
        "Pris 299,-",
        "Weight 500 g, 250 ml, 100% cotton",
        "Call +45 12345678",
        "Call (+45) 33123456",
        "Tlf. 33123456",
        "Track & trace: 05123456789",
        "Sendungsnummer: 00340434161094042557",
        "CVR-nr. 12345678",
        "Version v2.345",
        "See https://shop.example/orders/12345/view?id=99999",
        "See www.shop.example/o/12345",
        "Write to order12345@shop.example",
    ],
)
def test_times_dates_prices_phones_and_links_are_not_references(text: str) -> None:
    assert find_reference(text, None) == (None, None)
    assert find_reference(None, text) == (None, None)


def test_labelled_tracking_number_does_not_hide_the_order_number() -> None:
    body = "Track & trace: 05123456789\nSendungsnummer: 1Z999AA10123456784\nBestellung 400123987"
    assert find_reference(None, body) == ("400123987", "number:body")


def test_subject_is_searched_before_the_body_whatever_the_rule() -> None:
    assert find_reference("Ordre 55555 er sendt", "Order #1057") == ("55555", "number:subject")


def test_body_is_searched_when_the_subject_has_nothing() -> None:
    assert find_reference("Your order is complete", "[Order #4521]") == ("4521", "hash:body")
    assert find_reference(None, "Ref A-2291-XK") == ("A-2291-XK", "dash:body")
    assert find_reference("", "Order ORD2211345") == ("ORD2211345", "token:body")
    assert find_reference("Shipped", "Ordre 77812") == ("77812", "number:body")


def test_no_reference_anywhere_gives_none_and_no_rule() -> None:
    assert find_reference("Shipped!", "Thanks for shopping our 2026 collection.") == (None, None)
    assert find_reference(None, None) == (None, None)


def test_reference_pattern_replaces_the_standard_rules() -> None:
    pattern = re.compile(r"Kunde-Nr\.?\s*(\d+)")
    assert find_reference("Order #1057", "Kunde-Nr. 4711", pattern) == ("4711", "pattern:body")
    assert find_reference("Order #1057", "nothing", pattern) == (None, None)
    assert find_reference("Kunde-Nr 99 / #1057", None, pattern) == ("99", "pattern:subject")


def test_reference_pattern_without_a_group_uses_the_whole_match() -> None:
    assert find_reference("Ref AB-12 shipped", None, re.compile(r"[A-Z]{2}-\d+")) == (
        "AB-12",
        "pattern:subject",
    )


def test_reference_pattern_is_applied_by_parse_trigger() -> None:
    raw = mail("To: a@example.com", "Subject: Order #1057", body="Lieferschein LS-000815")
    notice = parse_trigger(raw, reference_pattern=re.compile(r"LS-(\d+)"))
    assert (notice.reference, notice.reference_rule) == ("000815", "pattern:body")


# --- headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "name"),
    [
        ("=?utf-8?q?J=C3=B8rgen_S=C3=B8rensen?=", "Jørgen Sørensen"),
        ("=?UTF-8?B?SsO4cmdlbiBTw7hyZW5zZW4=?=", "Jørgen Sørensen"),
        ("=?iso-8859-1?q?J=FCrgen_Wei=DF?=", "Jürgen Weiß"),
        (
            "=?windows-1252?b?" + base64.b64encode("Zoë “Zo” Ça".encode("cp1252")).decode() + "?=",
            "Zoë “Zo” Ça",
        ),
        ("=?koi8-r?b?" + base64.b64encode("Иван".encode("koi8-r")).decode() + "?=", "Иван"),
        ('"=?utf-8?q?Smith=2C_John?="', "Smith, John"),
        ('"Smith, John"', "Smith, John"),
    ],
)
def test_rfc2047_display_names_are_decoded_in_any_charset(encoded: str, name: str) -> None:
    notice = parse_trigger(mail(f"To: {encoded} <Customer@Example.COM>"))
    assert notice.customer_email == "customer@example.com"
    assert notice.customer_name == name


def test_sender_subject_and_message_id_are_read_from_headers() -> None:
    notice = parse_trigger(
        mail(
            "From: =?utf-8?q?S=C3=B8strene?= <Ordre@Shop.DK>",
            "To: a@example.com",
            "Subject: =?utf-8?q?Din_ordre_er_afsendt_=E2=80=93_tak?=",
            "Message-ID:  <123@x.example> ",
        )
    )
    # The From name is not kept: only a block's senderName names the invitation's sender
    # (issue 12; the From of a trigger is often the shop platform's, not the shop's).
    assert (notice.sender, notice.sender_name) == ("ordre@shop.dk", None)
    assert notice.subject == "Din ordre er afsendt – tak"
    assert notice.message_id == "<123@x.example>"
    assert notice.source == "headers"


def test_missing_headers_give_none() -> None:
    notice = parse_trigger(mail("X-Nothing: here", body="hi", ctype="text/plain"))
    assert notice == ShipmentNotice(
        message_id=None,
        sender=None,
        subject=None,
        customer_email=None,
        customer_name=None,
        reference=None,
        reference_rule=None,
    )


def test_undisclosed_recipients_means_no_customer() -> None:
    notice = parse_trigger(mail("To: undisclosed-recipients:;", "Subject: Order #3300"))
    assert notice.customer_email is None
    assert notice.customer_name is None
    assert notice.reference == "3300"


def test_first_valid_to_address_is_the_customer() -> None:
    notice = parse_trigger(mail("To: nobody, Ann <ann@example.com>, bob@example.com"))
    assert (notice.customer_email, notice.customer_name) == ("ann@example.com", "Ann")


def test_rfc822_comment_name_is_used_when_there_is_no_display_name() -> None:
    notice = parse_trigger(mail("To: ann@example.com (=?utf-8?q?Ann_L=C3=B8e?=)"))
    assert (notice.customer_email, notice.customer_name) == ("ann@example.com", "Ann Løe")


def test_address_inside_a_group_is_found() -> None:
    notice = parse_trigger(mail("To: Customers: Ann <ann@example.com>;"))
    assert notice.customer_email == "ann@example.com"


def test_display_name_that_is_only_an_address_or_quotes_is_dropped() -> None:
    assert parse_trigger(mail('To: "ann@example.com" <ann@example.com>')).customer_name is None
    assert parse_trigger(mail('To: "  " <ann@example.com>')).customer_name is None
    assert parse_trigger(mail("To: 'Ann Lee' <ann@example.com>")).customer_name == "Ann Lee"


def test_raw_utf8_and_latin1_headers_are_decoded() -> None:
    utf8 = parse_trigger(
        b"To: J\xc3\xb8rgen <j@example.dk>\r\nSubject: Ordre 12345 \xc3\xa6\xc3\xb8\r\n\r\n"
    )
    assert (utf8.customer_name, utf8.subject) == ("Jørgen", "Ordre 12345 æø")
    latin1 = parse_trigger(b"To: J\xfcrgen <j@example.de>\r\nSubject: Best\xe4tigung 123\r\n\r\n")
    assert (latin1.customer_name, latin1.subject) == ("Jürgen", "Bestätigung 123")


@pytest.mark.parametrize(
    "to",
    [
        'Bob <bob@example.com>, ,"',  # IndexError inside the modern address parser
        '"Bob" <bob@example.com> =@[\t',
        "Bob bob@example.com",  # no angle brackets at all
    ],
)
def test_to_headers_that_break_the_modern_parser_still_yield_the_customer(to: str) -> None:
    notice = parse_trigger(mail(f"To: {to}", "Message-ID: <Z@[", "Subject: Order #1234"))
    assert notice.customer_email == "bob@example.com"
    assert notice.reference == "1234"
    assert notice.defects


def test_message_id_that_breaks_the_modern_parser_is_kept_as_written() -> None:
    notice = parse_trigger(mail("To: a@example.com", "Message-ID: <Z@["))
    assert notice.message_id == "<Z@["
    assert any("Message-ID" in defect for defect in notice.defects)


# --- header injection ---------------------------------------------------------------------------


def test_encoded_crlf_and_nul_in_names_and_subject_are_removed() -> None:
    notice = parse_trigger(
        mail(
            "From: =?utf-8?q?Shop=0D=0ABcc=3A_x?= <shop@example.com>",
            "To: =?utf-8?q?Ann=0D=0AX-Evil=3A_1=00?= <ann@example.com>",
            "Subject: =?utf-8?q?Hi=0D=0ABcc:_victim=00_=E2=80=AEtxt?=",
        )
    )
    assert notice.sender_name is None  # a From name is not kept (issue 12)
    for text in (notice.customer_name, notice.subject):
        assert text is not None
        assert not re.search(r"[\r\n\x00\u202e]", text)
    assert notice.customer_name == "Ann X-Evil: 1"
    assert notice.subject == "Hi Bcc: victim txt"


def test_block_values_with_control_characters_are_cleaned_or_rejected() -> None:
    payload = {
        "recipientEmail": "ann@example.com\r\nBcc: victim@example.com",
        "recipientName": "Ann\r\nBcc: x\u0000",
        "referenceId": "A-1\r\n2",
        "senderName": "Shop\nX: y",
        "replyTo": "help@shop.example\r\n",
        "tags": ["vip\r\n", "\n"],
    }
    notice = parse_trigger(html_mail(block(payload), "To: ann@example.com"))
    assert notice.customer_email is None
    assert notice.customer_name == "Ann Bcc: x"
    assert notice.reference == "A-1 2"
    assert notice.sender_name == "Shop X: y"
    assert notice.reply_to == "help@shop.example"  # surrounding whitespace is only trimmed
    assert notice.tags == ("vip",)


# --- bodies and charsets ------------------------------------------------------------------------

CUSTOMER = re.compile(r"Kunde: (\w+)")


@pytest.mark.parametrize(
    ("charset", "encoding"),
    [
        ("windows-1252", "cp1252"),
        ("iso-8859-1", "latin-1"),
        ("ISO-8859-15", "iso-8859-15"),
        ("utf-8", "utf-8"),
        ("x-unknown-charset", "utf-8"),
        ("x-unknown-charset", "latin-1"),
        ("utf-8", "cp1252"),  # mislabelled: falls back instead of producing U+FFFD
        ("us-ascii", "cp1252"),
        ("us-ascii", "utf-8"),
    ],
)
def test_body_text_is_decoded_whatever_the_charset(charset: str, encoding: str) -> None:
    body = "Grüße, Kunde: Jürgen\r\n".encode(encoding)
    raw = mail("To: a@example.com", body=body, ctype=f"text/plain; charset={charset}")
    notice = parse_trigger(raw, reference_pattern=CUSTOMER)
    assert notice.reference == "Jürgen"


def test_unknown_charset_is_recorded_as_a_defect() -> None:
    raw = mail("To: a@example.com", body=b"Order 12345", ctype="text/plain; charset=x-bogus")
    notice = parse_trigger(raw)
    assert notice.reference == "12345"
    assert any("x-bogus" in defect for defect in notice.defects)


def test_windows1252_curly_quotes_labelled_latin1_are_read_as_windows1252() -> None:
    body = "Kunde: “Zoë”".encode("cp1252")
    raw = mail("To: a@example.com", body=body, ctype="text/plain; charset=iso-8859-1")
    notice = parse_trigger(raw, reference_pattern=re.compile(r"Kunde: (\S+)"))
    assert notice.reference == "“Zoë”"


def test_html_only_body_is_converted_before_the_reference_search() -> None:
    html = (
        "<html><head><style>.x{color:#ff0000}</style></head><body><h2>On its way</h2>"
        "<table><tr><td>Order</td><td><b>#1057</b></td></tr></table></body></html>"
    )
    notice = parse_trigger(html_mail(html, "To: a@example.com", "Subject: Shipped"))
    assert (notice.reference, notice.reference_rule) == ("1057", "hash:body")


def test_plain_text_part_is_preferred_over_html() -> None:
    raw = mail(
        "To: a@example.com",
        body=(
            "--b\r\nContent-Type: text/plain\r\n\r\nOrder #111\r\n"
            "--b\r\nContent-Type: text/html\r\n\r\n<p>Order #222</p>\r\n--b--\r\n"
        ),
        ctype='multipart/alternative; boundary="b"',
    )
    assert parse_trigger(raw).reference == "111"


def test_blank_plain_text_part_falls_back_to_html() -> None:
    raw = mail(
        "To: a@example.com",
        body=(
            "--b\r\nContent-Type: text/plain\r\n\r\n \r\n"
            "--b\r\nContent-Type: text/html\r\n\r\n<p>Order #222</p>\r\n--b--\r\n"
        ),
        ctype='multipart/alternative; boundary="b"',
    )
    assert parse_trigger(raw).reference == "222"


def test_attachments_are_not_searched() -> None:
    raw = mail(
        "To: a@example.com",
        body=(
            "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=i.txt"
            "\r\n\r\nInvoice #99999\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nYour order 12121 shipped\r\n--b--\r\n"
        ),
        ctype="multipart/mixed; boundary=b",
    )
    assert parse_trigger(raw).reference == "12121"


def test_base64_and_quoted_printable_bodies_are_decoded() -> None:
    b64 = base64.b64encode("Bestellung Nr. 400123987 – danke".encode()).decode()
    raw = mail(
        "To: a@example.com",
        "Content-Transfer-Encoding: base64",
        body=b64,
        ctype="text/plain; charset=utf-8",
    )
    assert parse_trigger(raw).reference == "400123987"
    raw = mail(
        "To: a@example.com",
        "Content-Transfer-Encoding: quoted-printable",
        body="<p>Ordre #10=\r\n423</p>",
        ctype="text/html; charset=utf-8",
    )
    assert parse_trigger(raw).reference == "10423"


# --- html_to_text -------------------------------------------------------------------------------


def test_html_to_text_drops_script_and_style_content() -> None:
    text = html_to_text(
        "<style>p { color: #ff0000 }</style><p>Hello</p><script>var order = 12345;</script>"
        "<SCRIPT type='text/javascript'>alert(1)</SCRIPT><script>unclosed 999"
    )
    assert text == "Hello"


def test_html_to_text_keeps_link_text_and_drops_urls_and_images() -> None:
    text = html_to_text(
        '<p>Track <a href="https://t.example/123456">your parcel</a>'
        '<img src="x.png" alt="logo"></p>'
    )
    assert text == "Track your parcel"


def test_html_to_text_does_not_wrap_long_lines_and_decodes_entities() -> None:
    long_line = " ".join(["word"] * 60)
    text = html_to_text(f"<p>{long_line} p&aring; vej &amp; &#8211; &nbsp;ok</p>")
    assert "\n" not in text
    assert text.startswith(long_line)
    assert "på vej & –" in text


def test_html_to_text_keeps_hidden_text_a_preheader_may_name_the_order() -> None:
    text = html_to_text('<div style="display:none">Order #1057 shipped</div><h1>Thanks</h1>')
    assert text == "Order #1057 shipped\n\nThanks"


def test_importing_parsing_leaves_bs4_for_the_first_html_only_trigger() -> None:
    # The parser child imports mailrelay.parsing at start; bs4 costs more than all of it.
    code = "import sys, mailrelay.parsing; print(sorted({'bs4', 'html2text'} & set(sys.modules)))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


# --- normalize_address --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "address"),
    [
        ("John.Smith@Example.COM", "john.smith@example.com"),
        ("  <a+tag@sub.example.dk> ", "a+tag@sub.example.dk"),
        ("jørgen@eksempel.dk", "jørgen@eksempel.dk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
    ],
)
def test_normalize_address_lowercases_valid_addresses(raw: str, address: str) -> None:
    assert normalize_address(raw) == address


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "plain",
        "@example.com",
        "a@localhost",
        "a@b@example.com",
        "a b@example.com",
        "a@example.com\r\nBcc: x@y.com",
        "a@exa mple.com",
        "a@.example.com",
        "a@example..com",
        "a@example.com.",
        "a@-example.com",
        "John <john@example.com>",
        "undisclosed-recipients:;",
        "a\x00@example.com",
        "x" * 65 + "@example.com",
    ],
)
def test_normalize_address_rejects_what_is_not_an_addr_spec(raw: str | None) -> None:
    assert normalize_address(raw) is None


# --- structured blocks --------------------------------------------------------------------------


def test_block_values_override_the_headers() -> None:
    payload = {
        "recipientEmail": "Ana@Example.PT",
        "recipientName": "Ana Silva",
        "referenceId": "PT-77120",
        "locale": "pt-PT",
        "preferredSendTime": "2026-12-01T10:00:00Z",
        "senderName": "ACME Portugal",
        "replyTo": "Help@Acme.example",
        "tags": ["portugal", "b2c", "portugal"],
        "products": [
            {
                "sku": "TR-42",
                "gtin": 5701234567890,
                "name": "Trail Runner",
                "productUrl": "https://acme.example/p/tr-42",
                "imageUrl": "https://acme.example/i/tr-42.jpg",
                "brand": "ACME",
            }
        ],
    }
    notice = parse_trigger(
        html_mail(block(payload), "To: Archive <archive@acme.example>", "Subject: Order #1057")
    )
    assert notice.source == "block:mailrelay"
    assert (notice.customer_email, notice.customer_name) == ("ana@example.pt", "Ana Silva")
    assert (notice.reference, notice.reference_rule) == ("PT-77120", "block")
    assert notice.locale == "pt-PT"
    assert notice.send_at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert (notice.sender, notice.sender_name) == ("shop@acme.example", "ACME Portugal")
    assert notice.reply_to == "help@acme.example"
    assert notice.tags == ("portugal", "b2c")
    assert notice.products == (
        Product(
            sku="TR-42",
            gtin="5701234567890",
            name="Trail Runner",
            product_url="https://acme.example/p/tr-42",
            image_url="https://acme.example/i/tr-42.jpg",
            brand="ACME",
        ),
    )
    assert notice.defects == ()


@pytest.mark.parametrize(
    "tag",
    [
        '<script type="application/json+mailrelay">',
        "<script type='application/json+mailrelay'>",
        '<SCRIPT TYPE="Application/JSON+MailRelay">',
        '<script id="mr" type="application/json+mailrelay" data-x="1">',
        "<script type=application/json+mailrelay>",
        '<script\n  type = "application/json+mailrelay"\n>',
    ],
)
def test_block_script_tag_is_matched_case_insensitively_with_any_quoting(tag: str) -> None:
    html = f'<p>Hi</p>{tag}{{"recipientEmail": "ann@example.com"}}</script>'
    notice = parse_trigger(html_mail(html, "To: other@example.com"))
    assert notice.customer_email == "ann@example.com"
    assert notice.source == "block:mailrelay"


def test_other_script_types_are_not_blocks() -> None:
    html = (
        '<script type="application/json+mailrelayx">{"recipientEmail": "x@example.com"}</script>'
        '<script type="application/ld+json">{"recipientEmail": "y@example.com"}</script>'
        '<script data-type="application/json+mailrelay">{"recipientEmail": "z@example.com"}'
        "</script>"
    )
    notice = parse_trigger(html_mail(html, "To: ann@example.com"))
    assert (notice.customer_email, notice.source) == ("ann@example.com", "headers")


def test_block_with_missing_keys_falls_back_to_the_headers_and_body() -> None:
    notice = parse_trigger(
        html_mail(block({"locale": "da"}), "To: Mette <mette@example.dk>", "Subject: Ordre #10423")
    )
    assert notice.source == "block:mailrelay"
    assert (notice.customer_email, notice.customer_name) == ("mette@example.dk", "Mette")
    assert (notice.reference, notice.reference_rule) == ("10423", "hash:subject")
    assert notice.locale == "da"
    assert notice.send_at is None


def test_to_header_name_is_not_given_to_a_different_block_recipient() -> None:
    payload = {"recipientEmail": "klaus@example.de"}
    notice = parse_trigger(html_mail(block(payload), "To: ACME archive <a@acme.example>"))
    assert (notice.customer_email, notice.customer_name) == ("klaus@example.de", None)
    same = parse_trigger(
        html_mail(block({"recipientEmail": "KLAUS@example.de"}), "To: Klaus <klaus@example.de>")
    )
    assert (same.customer_email, same.customer_name) == ("klaus@example.de", "Klaus")


def test_block_name_alone_overrides_the_to_name() -> None:
    notice = parse_trigger(html_mail(block({"recipientName": "Klaus Müller"}), "To: K <k@x.de>"))
    assert (notice.customer_email, notice.customer_name) == ("k@x.de", "Klaus Müller")


def test_trustpilot_block_is_accepted_with_the_same_keys() -> None:
    payload = {"recipientEmail": "k@example.de", "referenceId": "A-2291-XK", "locale": "de-DE"}
    notice = parse_trigger(html_mail(block(payload, "trustpilot"), "To: archive@acme.example"))
    assert notice.source == "block:trustpilot"
    assert (notice.customer_email, notice.reference, notice.locale) == (
        "k@example.de",
        "A-2291-XK",
        "de-DE",
    )


def test_mailrelay_block_wins_over_a_trustpilot_block() -> None:
    html = block({"referenceId": "TP-1"}, "trustpilot") + block({"referenceId": "MR-1"})
    notice = parse_trigger(html_mail(html, "To: a@example.com"))
    assert (notice.source, notice.reference) == ("block:mailrelay", "MR-1")


def test_invalid_json_block_records_a_defect_and_uses_the_headers() -> None:
    html = '<script type="application/json+mailrelay">{"recipientEmail": "x@y.com",</script>'
    notice = parse_trigger(html_mail(html, "To: Ann <ann@example.com>", "Subject: Order #1057"))
    assert notice.source == "headers"
    assert (notice.customer_email, notice.customer_name) == ("ann@example.com", "Ann")
    assert (notice.reference, notice.reference_rule) == ("1057", "hash:subject")
    assert any("invalid JSON" in defect for defect in notice.defects)


def test_json_block_that_is_not_an_object_is_a_defect() -> None:
    notice = parse_trigger(html_mail(block(["ann@example.com"]), "To: b@example.com"))
    assert (notice.source, notice.customer_email) == ("headers", "b@example.com")
    assert notice.defects


def test_html_escaped_json_block_is_accepted() -> None:
    html = (
        '<script type="application/json+mailrelay">{&quot;recipientEmail&quot;: '
        "&quot;ann@example.com&quot;, &quot;referenceId&quot;: &quot;R-100&quot;}</script>"
    )
    notice = parse_trigger(html_mail(html, "To: archive@acme.example"))
    assert (notice.customer_email, notice.reference) == ("ann@example.com", "R-100")


def test_block_wrapped_in_an_html_comment_is_accepted() -> None:
    html = '<script type="application/json+mailrelay"><!-- {"referenceId": "C-123"} --></script>'
    assert parse_trigger(html_mail(html, "To: a@example.com")).reference == "C-123"


def test_numeric_reference_id_becomes_a_string() -> None:
    notice = parse_trigger(html_mail(block({"referenceId": 1057}), "To: a@example.com"))
    assert (notice.reference, notice.reference_rule) == ("1057", "block")


def test_block_values_of_the_wrong_type_are_defects_and_fall_back() -> None:
    payload = {
        "recipientEmail": 42,
        "recipientName": ["Ann"],
        "referenceId": True,
        "locale": 7,
        "preferredSendTime": 1764583200,
        "tags": "vip",
        "products": {"sku": "x"},
    }
    notice = parse_trigger(
        html_mail(block(payload), "To: Ann <ann@example.com>", "Subject: Order #1057")
    )
    assert (notice.customer_email, notice.customer_name) == ("ann@example.com", "Ann")
    assert (notice.reference, notice.reference_rule) == ("1057", "hash:subject")
    assert (notice.locale, notice.send_at, notice.tags, notice.products) == (None, None, (), ())
    assert len(notice.defects) == 7


def test_invalid_recipient_email_in_block_rejects_rather_than_using_to() -> None:
    notice = parse_trigger(html_mail(block({"recipientEmail": "n/a"}), "To: archive@acme.example"))
    assert notice.customer_email is None
    assert any("recipientEmail" in defect for defect in notice.defects)


def test_empty_block_values_count_as_absent() -> None:
    payload = {"recipientEmail": "", "recipientName": " ", "referenceId": None, "locale": ""}
    notice = parse_trigger(html_mail(block(payload), "To: Ann <ann@example.com>"))
    assert (notice.customer_email, notice.customer_name, notice.locale) == (
        "ann@example.com",
        "Ann",
        None,
    )
    assert notice.defects == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-01T10:00:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01T10:00:00Z", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01T11:00:00+01:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01 05:00-05:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_preferred_send_time_is_an_aware_datetime(value: str, expected: datetime) -> None:
    notice = parse_trigger(html_mail(block({"preferredSendTime": value}), "To: a@example.com"))
    assert notice.send_at == expected
    assert notice.send_at is not None and notice.send_at.utcoffset() == timedelta(0)
    assert notice.send_at == expected.astimezone(timezone(timedelta(hours=3)))


def test_invalid_preferred_send_time_is_a_defect() -> None:
    notice = parse_trigger(html_mail(block({"preferredSendTime": "next tuesday"}), "To: a@b.co"))
    assert notice.send_at is None
    assert any("preferredSendTime" in defect for defect in notice.defects)


def test_invalid_locale_and_reply_to_are_defects() -> None:
    payload = {"locale": "<script>", "replyTo": "not an address"}
    notice = parse_trigger(html_mail(block(payload), "To: a@example.com"))
    assert (notice.locale, notice.reply_to) == (None, None)
    assert len(notice.defects) == 2


def test_product_urls_must_be_http_or_https() -> None:
    payload = {
        "products": [
            {"sku": "A1", "productUrl": "javascript:alert(1)", "imageUrl": "data:image/png,x"},
            "not an object",
            {},
        ]
    }
    notice = parse_trigger(html_mail(block(payload), "To: a@example.com"))
    assert notice.products == (Product(sku="A1"),)
    assert len(notice.defects) == 3


def test_numbers_inside_the_block_json_never_become_a_body_reference() -> None:
    payload = {"recipientEmail": "a@example.com", "products": [{"gtin": "5701234567890"}]}
    notice = parse_trigger(html_mail(block(payload), "To: a@example.com", "Subject: Shipped"))
    assert (notice.reference, notice.reference_rule) == (None, None)


# --- broken mail --------------------------------------------------------------------------------


def test_empty_message_yields_an_empty_notice_with_a_defect() -> None:
    notice = parse_trigger(b"")
    assert notice.customer_email is None
    assert notice.reference is None
    assert notice.defects == ("empty message",)


def test_missing_closing_boundary_still_reads_the_parts() -> None:
    raw = mail(
        "To: a@example.com",
        body="--xx\r\nContent-Type: text/plain\r\n\r\nOrder 55555\r\n--xx\r\n"
        "Content-Type: text/html\r\n\r\n<p>unterminated",
        ctype="multipart/alternative; boundary=xx",
    )
    notice = parse_trigger(raw)
    assert notice.reference == "55555"
    assert any("CloseBoundaryNotFound" in defect for defect in notice.defects)


def test_multipart_without_a_boundary_is_read_as_text() -> None:
    raw = mail("To: a@example.com", body="Order 12345\r\n", ctype="multipart/mixed")
    notice = parse_trigger(raw)
    assert notice.reference == "12345"
    assert any("NoBoundary" in defect for defect in notice.defects)


def test_garbage_headers_do_not_hide_the_customer() -> None:
    raw = (
        b"To: Ann <ann@example.com>\r\nX-\xff\xfe: \x00\x01\xff\r\n: no name\r\n"
        b"Subject: =?utf-8?b?!!!?= =?bogus?q?x?= Order #77\r\nFrom: <<>>\r\n"
        b'Content-Type: text/plain; charset="\r\n\r\nbody \xff\xfe'
    )
    notice = parse_trigger(raw)
    assert notice.customer_email == "ann@example.com"
    assert notice.reference == "77"
    assert notice.sender is None


def test_invalid_base64_body_is_a_defect_not_an_error() -> None:
    raw = mail("To: a@example.com", "Content-Transfer-Encoding: base64", body="!!!*** not base64")
    notice = parse_trigger(raw)
    assert notice.customer_email == "a@example.com"
    assert any("Base64" in defect for defect in notice.defects)


def test_deeply_nested_multiparts_are_bounded() -> None:
    notice = parse_trigger(_nested(40, "Order #4242"))
    assert notice.customer_email == "a@example.com"
    assert any("nesting" in defect for defect in notice.defects)
    assert parse_trigger(_nested(5, "Order #4242")).reference == "4242"


def test_nesting_that_exhausts_the_stdlib_parser_still_yields_the_headers() -> None:
    notice = parse_trigger(_nested(2000, "x"))
    assert notice.customer_email == "a@example.com"
    assert any("RecursionError" in defect for defect in notice.defects)


def _nested(depth: int, text: str) -> bytes:
    inner = f"Content-Type: text/plain\r\n\r\n{text}\r\n"
    for level in range(depth):
        inner = (
            f"Content-Type: multipart/mixed; boundary=b{level}\r\n\r\n"
            f"--b{level}\r\n{inner}--b{level}--\r\n"
        )
    return ("To: a@example.com\r\n" + inner).encode()


def test_defects_are_bounded_for_junk_mail() -> None:
    raw = b"To: a@example.com\r\n" + b"".join(
        f"Subject: =?utf-8?q?{i}?= =?x{i}?q?y?=\r\n".encode() for i in range(200)
    )
    raw += b"Content-Type: multipart/mixed; boundary=z\r\n\r\n" + b"--z\r\nbroken\r\n" * 200
    notice = parse_trigger(raw)
    assert len(notice.defects) <= 30


def test_parse_trigger_never_raises_on_random_bytes() -> None:
    rng = random.Random(20261120)
    prefixes = [
        b"",
        b"To: ",
        b"To: a@example.com\r\nContent-Type: multipart/mixed; boundary=",
        b"To: a@example.com\r\nContent-Type: text/html; charset=",
        b"To: a@example.com\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        b"To: a@example.com\r\nContent-Type: text/html\r\n\r\n"
        b'<script type="application/json+mailrelay">',
    ]
    for index in range(600):
        junk = rng.randbytes(rng.randint(0, 400))
        raw = prefixes[index % len(prefixes)] + junk
        notice = parse_trigger(raw)
        assert isinstance(notice, ShipmentNotice)
        for text in (notice.customer_name, notice.subject, notice.sender_name, notice.reference):
            assert text is None or not re.search(r"[\x00-\x1f\x7f]", text)
        assert notice.customer_email is None or normalize_address(notice.customer_email)


def test_parse_trigger_accepts_bytearray_and_memoryview() -> None:
    raw = mail("To: a@example.com", "Subject: Order #1057")
    assert parse_trigger(bytearray(raw)).reference == "1057"
    assert parse_trigger(memoryview(raw)).reference == "1057"


# --- the fast path gives the full reading's notice -----------------------------------------------
#
# parse_trigger reads well-formed mail with compat32 and a strict header reading, and everything
# else with the modern policy. The rule: the fast path answers only when the full reading finds no
# defect, and then with exactly the full reading's notice. Every parse_trigger call in this module
# checks that (the autouse fixture), and so do the corpus and the generated variants below.

FAST_ANSWERS: list[bool] = []
COMPAT32 = BytesParser(policy=policy.compat32)


def both_readings(raw: Any, *, reference_pattern: re.Pattern[str] | None = None) -> ShipmentNotice:
    """parse_trigger, after checking that the fast path agrees with the full (slow) reading."""
    check_split(bytes(raw))
    slow = trigger.full_reading(raw, reference_pattern)
    try:
        fast = trigger.fast_reading(raw, reference_pattern)
    except fast_mime.Unusual:
        fast = None
    FAST_ANSWERS.append(fast is not None)
    if fast is not None:
        assert slow.defects == (), "the fast path answered for a message with defects"
        assert fast == slow
        assert repr(fast) == repr(slow)  # exact: also datetime offsets and field types
    notice = parsing.parse_trigger(raw, reference_pattern=reference_pattern)
    assert notice == slow
    assert repr(notice) == repr(slow)
    return notice


@pytest.fixture(autouse=True)
def _every_parse_checks_both_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(globals(), "parse_trigger", both_readings)


def check_split(data: bytes) -> bool:
    """The fast splitter, when it answers, builds exactly the tree of compat32's feed parser."""
    split = mime_split.split_message(data) if data.strip() else None
    if split is not None:
        assert tree(split) == tree(COMPAT32.parsebytes(data))
    return split is not None


def tree(msg: Message) -> Any:
    payload = msg.get_payload()
    return (
        msg.items(),
        msg.get_unixfrom(),
        msg.preamble,
        msg.epilogue,
        [repr(defect) for defect in msg.defects],
        msg.get_default_type(),
        [tree(part) for part in payload] if isinstance(payload, list) else payload,
    )


def fast_share(raws: list[bytes], pattern: re.Pattern[str] | None = None) -> float:
    FAST_ANSWERS.clear()
    for raw in raws:
        both_readings(raw, reference_pattern=pattern)
    return sum(FAST_ANSWERS) / len(FAST_ANSWERS)


@pytest.mark.parametrize("pattern", [None, re.compile(r"(\d{4,})")])
def test_fast_path_agrees_on_the_corpus(pattern: re.Pattern[str] | None) -> None:
    raws = [path.read_bytes() for path in sorted(require_corpus("triggers").glob("*.eml"))]
    assert fast_share(raws, pattern) == 1.0  # the corpus is well-formed mail: all of it is fast


def test_fast_path_declines_what_it_cannot_vouch_for() -> None:
    plain = mail("To: Ann <ann@example.com>", "Subject: Order #1057", body="Hi", ctype="text/plain")
    assert fast_answer(plain) is not None
    declined = [
        mail("To: Ann <ann@example.com>", body="Order 55555", ctype="multipart/mixed"),  # defect
        b"To: J\xc3\xb8rgen <j@example.dk>\r\n\r\nhi",  # raw 8-bit header
        mail("To: Bob bob@example.com"),  # recovered address (a defect)
        mail("To: =?x-bogus?q?Ann?= <ann@example.com>"),  # undecodable encoded word
        mail('To: "=?utf-8?q?Ann?=" <ann@example.com>'),  # encoded word in a quoted string
        mail("To: ann@example.com (Ann Lee)"),  # comment: the full reading takes the name
        mail("To: a@example.com", "Message-ID: <Z@["),
        mail("To: a@example.com", body="x", ctype="text/plain; charset*=utf-8''x"),
        mail("To: a@example.com", body=b"x", ctype="text/plain; charset=x-bogus"),  # defect
        html_mail(block({"locale": "<script>"}), "To: a@example.com"),  # block defect
        mail("To: a@example.com", body="x", ctype="message/rfc822"),
        b"",
    ]
    for raw in declined:
        assert fast_answer(raw) is None
        assert both_readings(raw) == trigger.full_reading(raw, None)


def fast_answer(raw: bytes) -> ShipmentNotice | None:
    try:
        return trigger.fast_reading(raw, None)
    except fast_mime.Unusual:
        return None


def test_fast_path_agrees_on_generated_variants() -> None:
    rng = random.Random(5705)
    raws = [generated_trigger(rng) for _ in range(500)]
    share = fast_share(raws[:250]) + fast_share(raws[250:], re.compile(r"Kunde: (\w+)"))
    # Both readings must really be exercised: a variant breaks one rule or another quite often.
    assert 0.15 < share / 2 < 0.85


def test_fast_path_agrees_when_every_part_shape_is_well_formed() -> None:
    rng = random.Random(1120)
    raws = [generated_trigger(rng, well_formed=True) for _ in range(200)]
    assert fast_share(raws) == 1.0


def test_split_message_builds_the_feed_parsers_tree_or_declines() -> None:
    rng = random.Random(2046)
    pieces = ["\r\n", "\n", "\r", "--", "-- ", "\r\n--", "\r\n\r\n", " ", "\t", "From ", ":"]
    pieces += ["\r\n--==b1==\r\n", "\r\n--b-outer--\r\n", "\n--rel_1\n", "b-inner", "x\r\n "]
    answered = 0
    for index in range(400):
        text = generated_trigger(rng, well_formed=index % 2 == 0).decode("utf-8", "surrogateescape")
        for _ in range(rng.randrange(4)):  # break the structure here and there
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(pieces) + text[at + rng.randrange(3) :]
        answered += check_split(text.encode("utf-8", "surrogateescape"))
    assert 100 < answered < 390


def test_html_is_rendered_only_when_there_is_no_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered: list[str] = []

    def counting(html: str) -> str:
        rendered.append(html)
        return html_to_text(html)

    monkeypatch.setattr(html_text, "html_to_text", counting)
    alternative = (
        "--b\r\nContent-Type: text/plain\r\n\r\nYour order shipped\r\n"
        "--b\r\nContent-Type: text/html\r\n\r\n<p>Order #222</p>\r\n--b--\r\n"
    )
    raw = mail("To: a@example.com", body=alternative, ctype="multipart/alternative; boundary=b")
    assert fast_answer(raw) is not None
    assert parse_trigger(raw).reference is None
    assert rendered == []
    html_only = html_mail("<p>Order <b>#1057</b></p>", "To: a@example.com")
    assert fast_answer(html_only) is not None
    rendered.clear()
    assert parsing.parse_trigger(html_only).reference == "1057"
    assert rendered == ["<p>Order <b>#1057</b></p>"]


# Header values: (text, well-formed), where well-formed means the fast path must answer for it.
NAMES = ["Jørgen Sørensen", "Jürgen Weiß", "Zoë “Zo” Ça", "Иван Петров", "Ann Lee", "Łukasz Ó"]
CHARSETS = ["utf-8", "UTF-8", "iso-8859-1", "windows-1252", "koi8-r", "iso-8859-2", "utf-16"]


def encoded_word(text: str, rng: random.Random) -> str | None:
    charset = rng.choice(CHARSETS)
    try:
        data = text.encode(charset)
    except UnicodeEncodeError:
        return None
    if rng.random() < 0.5:
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    quoted = "".join(
        "_" if b == 0x20 else chr(b) if chr(b).isalnum() and b < 0x80 else f"={b:02X}" for b in data
    )
    return f"=?{charset}?{rng.choice('qQ')}?{quoted}?="


def generated_name(rng: random.Random) -> tuple[str, bool]:
    name = rng.choice(NAMES)
    kind = rng.randrange(10)
    if kind == 0:
        return '"Smith, John"', True
    if kind == 1:
        return "John Smith", True
    if kind == 2:
        words = [encoded_word(word, rng) or word for word in name.split()]
        return " ".join(words), all(word.isascii() for word in words)
    if kind == 3:
        first = encoded_word(name, rng)
        return (f"{first} Jr", True) if first else ("Ann", True)
    if kind == 4:
        return "John\r\n Smith", True
    if kind == 5:
        return rng.choice(['"  "', '""', "'Ann Lee'", '"ann@example.com"', '"Ann (x)"']), True
    if kind == 6:  # broken or unusual ones
        return rng.choice(
            [
                "John Q. Public",
                "=?utf-8?q?Ann=0D=0AX?=",
                "=?utf-8?b?SsO4cmdlbg?=",
                "=?x-bogus?q?Ann?=",
                "=?utf-8?q?x?=y",
                '"=?utf-8?q?Smith=2C_John?="',
                "Ann=?utf-8?q?x?=",
            ]
        ), False
    if kind == 7:
        return name, False  # raw UTF-8 in a header
    if kind == 8:
        word = encoded_word(name, rng)
        return (word, True) if word else ("Ann", True)
    return "", True


def generated_address_header(rng: random.Random) -> tuple[str | None, bool]:
    address = rng.choice(["ann@example.com", "John.Smith@Example.COM", "a+tag@sub.example.dk"])
    name, ok = generated_name(rng)
    kind = rng.randrange(12)
    if kind == 0:
        return None, True
    if kind == 1:
        return address, True
    if kind == 2:
        return f"{address}, other@example.org", True
    if kind == 3:
        return "undisclosed-recipients:;", True
    if kind == 4:
        return rng.choice(
            [
                "nobody, Ann <ann@example.com>",
                "Customers: Ann <ann@example.com>;",
                "Bob bob@example.com",
                "<<>>",
                "ann@example.com (Ann Lee)",
                "a@localhost",
                "Ann < ann@example.com >",
                "Ann <ann@example.com>, ,",
            ]
        ), False
    return (f"{name} <{address}>" if name else f"<{address}>"), ok


def generated_subject(rng: random.Random) -> tuple[str | None, bool]:
    ref = rng.choice(["#1057", "A-2291-XK", "ORD2211345", "77812", "2026", ""])
    kind = rng.randrange(9)
    if kind == 0:
        return None, True
    if kind == 1:
        return f"Your order {ref} has shipped", True
    if kind == 2:
        word = encoded_word("Din ordre er afsendt –", rng)
        return (f"{word} {ref}" if word else f"Ordre {ref}"), True
    if kind == 3:
        first, second = encoded_word("Bestellung ", rng), encoded_word("versandt", rng)
        return (f"{first} {second} {ref}" if first and second else ref), True
    if kind == 4:
        return f"Order\r\n {ref} shipped", True
    if kind == 5:
        return f"Bestätigung {ref}", False  # raw 8-bit
    if kind == 6:
        broken = [f"Order=?utf-8?q?x?= {ref}", f"=?bogus?q?x?= {ref}", "=?utf-8?b?!!!?="]
        return rng.choice(broken), False
    if kind == 7:
        return "", True
    return f"=?utf-8?q?Hi=0D=0ABcc:_x?= {ref}", True


def generated_body(rng: random.Random, well_formed: bool) -> tuple[list[str], bytes, bool]:
    """(headers, body bytes, well-formed) for one of several MIME shapes."""
    text = rng.choice(["Kunde: Jürgen\r\nOrder #4521 is on its way.", "Ordre 77812 er sendt.", ""])
    html = rng.choice(
        [
            "<p>Order <b>#1057</b></p>",
            block({"recipientEmail": "klaus@example.de", "referenceId": "PT-7"}),
            block({"recipientName": "Ana", "tags": ["a"]}, "trustpilot"),
            '<script type="application/json+mailrelay">{"x": </script>',  # a block defect
        ]
    )
    charset = rng.choice(["utf-8", '"utf-8"', "UTF-8", "iso-8859-1", "windows-1252", "us-ascii"])
    codec = {"us-ascii": "utf-8"}.get(charset.strip('"').lower(), charset.strip('"'))

    def leaf(content: str, subtype: str) -> tuple[str, bytes]:
        data = content.encode(codec, "replace")
        cte = rng.choice(["7bit", "8bit", "quoted-printable", "base64", "Base64", None])
        if cte and cte.lower() == "base64":
            data = base64.encodebytes(data).replace(b"\n", b"\r\n")
        elif cte == "quoted-printable":
            data = quopri.encodestring(data).replace(b"\n", b"\r\n")
        ctype = rng.choice(
            [
                f"text/{subtype}; charset={charset}",
                f"text/{subtype};\r\n\tcharset={charset}",
                f"TEXT/{subtype.upper()}; CHARSET={charset}; format=flowed",
            ]
        )
        head = f"Content-Type: {ctype}\r\n"
        if cte:
            head += f"Content-Transfer-Encoding: {cte}\r\n"
        return head, data

    def multipart(kind: str, parts: list[tuple[str, bytes]], boundary: str) -> tuple[str, bytes]:
        quoted = rng.choice([f'"{boundary}"', boundary]) if "=" not in boundary else f'"{boundary}"'
        body = rng.choice([b"", b"This is a multi-part message.\r\n"])
        for head, data in parts:
            body += f"--{boundary}\r\n".encode() + head.encode() + b"\r\n" + data + b"\r\n"
        body += f"--{boundary}--\r\n".encode() + rng.choice([b"", b"epilogue\r\n"])
        return f"Content-Type: multipart/{kind};\r\n boundary={quoted}\r\n", body

    shape = rng.randrange(7 if well_formed else 10)
    if shape == 0:
        head, data = leaf(text, "plain")
    elif shape == 1:
        head, data = leaf(html, "html")
    elif shape == 2:
        head, data = multipart("alternative", [leaf(text, "plain"), leaf(html, "html")], "==b1==")
    elif shape == 3:
        inner = multipart("alternative", [leaf(text, "plain"), leaf(html, "html")], "b-inner")
        pdf = (
            'Content-Type: application/pdf; name="Faktura 1.pdf"\r\n'
            'Content-Disposition: attachment; filename="Faktura 1.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n",
            base64.encodebytes(b"%PDF-1.4 order #99999").replace(b"\n", b"\r\n"),
        )
        head, data = multipart("mixed", [inner, pdf], "b-outer")
    elif shape == 4:
        image = (
            "Content-Type: image/png; name=logo.png\r\nContent-ID: <logo@x>\r\n"
            "Content-Disposition: inline; filename=logo.png\r\n"
            "Content-Transfer-Encoding: base64\r\n",
            base64.encodebytes(b"\x89PNG fake").replace(b"\n", b"\r\n"),
        )
        head, data = multipart("related", [leaf(html, "html"), image], "rel_1")
    elif shape == 5:
        head, data = "", text.encode("utf-8")  # no Content-Type at all
    elif shape == 6:
        data = text.encode("utf-8")
        head = rng.choice(
            [
                "Content-Type: text/plain; charset=utf-8; charset=latin1\r\n",
                "Content-Type: text/plain; charset=utf-8;\r\n",
                "Content-Type: text/plain ; charset = utf-8\r\n",
                "Content-Type: text/plain (comment); charset=utf-8\r\n",
                'Content-Type: text/plain; charset="utf\r\n 8"\r\n',
                "Content-Type: text/plain; charset=x-bogus\r\n",
                "Content-Type: text\r\n",
                "Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n",
            ]
        )
        return [head.rstrip("\r\n")], data, False
    elif shape == 7:  # broken multiparts
        head, data = multipart("alternative", [leaf(text, "plain"), leaf(html, "html")], "bb")
        data = rng.choice([data.replace(b"--bb--", b""), data.replace(b"--bb\r\n", b"--x\r\n", 1)])
        return [head.rstrip("\r\n")], data, False
    elif shape == 8:
        head = "Content-Type: message/rfc822\r\n"
        data = b"To: inner@example.com\r\nSubject: Order #777\r\n\r\nInner body 123\r\n"
        return [head.rstrip("\r\n")], data, False
    else:
        head = "Content-Type: multipart/mixed; boundary=z\r\n"
        data = b"--z\r\nContent-Type: text/plain\r\n\r\nOrder 1\r\n" * 2  # no close boundary
        return [head.rstrip("\r\n")], data, False
    ok = "x-bogus" not in head and 'json+mailrelay">{"x"' not in html
    headers = [line for line in head.split("\r\n") if line]
    return _rejoin(headers), data, ok


def _rejoin(lines: list[str]) -> list[str]:
    """Header lines with their continuation lines folded back into one string each."""
    out: list[str] = []
    for line in lines:
        if line[:1] in " \t" and out:
            out[-1] += "\r\n" + line
        else:
            out.append(line)
    return out


def generated_trigger(rng: random.Random, *, well_formed: bool = False) -> bytes:
    """A trigger assembled from random header and body variants, some of them broken."""
    while True:
        to, to_ok = generated_address_header(rng)
        sender, sender_ok = generated_address_header(rng)
        subject, subject_ok = generated_subject(rng)
        message_id, id_ok = rng.choice(
            [
                ("<982610105619@platform.example>", True),
                ("\r\n <a.b+c=d@mail.example>", True),
                (None, True),
                ("<Z@[", False),
                ("no-brackets@x.example", False),
            ]
        )
        body_headers, body, body_ok = generated_body(rng, well_formed)
        if not well_formed or (to_ok and sender_ok and subject_ok and id_ok and body_ok):
            break
    lines = [
        f"{name}: {value}"
        for name, value in (
            ("From", sender),
            ("To", to),
            ("Subject", subject),
            ("Message-ID", message_id),
        )
        if value is not None
    ]
    lines += ["Date: Fri, 20 Nov 2026 09:15:00 +0000", "MIME-Version: 1.0", *body_headers]
    rng.shuffle(lines)
    raw = "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + body
    if rng.random() < 0.2:
        raw = raw.replace(b"\r\n", b"\n")  # Unix line endings
    return raw


# --- charset labels clients send that Python does not know --------------------------------------


@pytest.mark.parametrize(
    ("label", "codec", "text"),
    [
        ("iso-8859-8-i", "iso8859-8", "שלום, החבילה נשלחה היום."),  # Hebrew, RFC 1556 "logical"
        ("ISO-8859-6-I", "iso8859-6", "مرحبا، تم شحن الطلب."),
        ("ks_c_5601-1987", "cp949", "똠방각하 주문이 발송되었습니다."),  # 똠 is cp949-only
        ("gb2312", "gb18030", "您好，包裹已发出。镕"),  # 镕 is gbk, not gb2312
        ("tis-620", "cp874", "สวัสดีครับ สินค้าส่งแล้ว€"),  # € is windows-874 only
        ("x-mac-roman", "mac-roman", "Ça va, déjà envoyé."),
    ],
)
def test_a_reply_in_a_charset_label_python_does_not_know_reads_as_the_client_meant(
    label: str, codec: str, text: str
) -> None:
    body = quopri.encodestring(text.encode(codec)).decode("ascii")
    raw = mail(
        "From: Dana <dana@shop.example>", "To: reply+k@relay.example", "Subject: Re: order",
        "Content-Transfer-Encoding: quoted-printable",
        body=body, ctype=f'text/plain; charset="{label}"',
    )
    reply = parse_reply(raw)
    assert reply.text is not None and text in reply.text
    assert not any("charset" in defect for defect in reply.defects)
