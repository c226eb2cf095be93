"""Tickets to agents, responses to customers and automatic responses: wording, headers, escaping."""

from __future__ import annotations

import base64
import dataclasses
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mailrelay.config import Config
from mailrelay.core.reply_marker import REPLY_MARKER
from mailrelay.render import (
    RenderedMail,
    ResponseView,
    ReviewView,
    Templates,
    TicketView,
    auto_response_text,
    response_mail,
    thread_index,
    ticket_mail,
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
KEY = "k7q2mzx4abcd3efg"
REPLY_TO = f"reply+{KEY}@relay.test"
PUBLIC = "http://reviews.test/s/acme"
INVITATION_ID = "<invitation.1@relay.test>"


def review(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": 42,
        "stars": 2,
        "title": "Late delivery",
        "text": "The parcel came two weeks late.\n\nThe shoes are fine though.",
        "reviewer_name": "Ann Lee",
        "customer_email": "ann@customer.example",
        "reference": "#1057",
        "method": "automatic",
        "created_at": "2026-11-20T09:00:00+00:00",
        "locale": "de-DE",
    }
    values.update(overrides)
    return values


def ticket(config: Config, **overrides: Any) -> RenderedMail:
    args: dict[str, Any] = {
        "to_email": "support@acme.example",
        "reply_to": REPLY_TO,
        "key": KEY,
        "review": review(),
        "shipment": {"received_at": "2026-11-10T08:00:00Z"},
        "products": [{"name": "Trail Runner 2", "sku": "TR2", "productUrl": "http://x.example/p"}],
        "context": {"reviews": [], "invitations": [], "replies": []},
        "links": {"public": PUBLIC, "review": PUBLIC + "#review-42"},
        "answered_by": None,
        "auto_response": None,
        "updated": False,
        "now": NOW,
    }
    args.update(overrides)
    now, message_id = args.pop("now"), args.pop("message_id", None)
    view = ticket_view(**args)
    return ticket_mail(Templates(config), config, config.shops[0], view, now=now,
                       message_id=message_id)


def ticket_view(review: dict[str, Any], shipment: dict[str, Any] | None,
                links: dict[str, str], **args: Any) -> TicketView:
    """The view a caller builds from a review row, its shipment and the two links."""
    return TicketView(review=ReviewView(**review),
                      received_at=(shipment or {}).get("received_at"),
                      public_url=links.get("public", ""), review_url=links.get("review"),
                      **args)


def response(config: Config, **overrides: Any) -> RenderedMail:
    args: dict[str, Any] = {
        "to_email": "ann@customer.example",
        "to_name": "Ann Lee",
        "locale": "en",
        "body": "Dear Ann,\n\nwe are sorry about the delay.\nIt was the carrier.\n\nACME",
        "review": review(),
        "public_url": PUBLIC,
        "in_reply_to": INVITATION_ID,
        "references": [INVITATION_ID],
        "now": NOW,
    }
    args.update(overrides)
    now, message_id = args.pop("now"), args.pop("message_id", None)
    view = ResponseView(**{**args, "review": ReviewView(**args["review"])})
    return response_mail(Templates(config), config, config.shops[0], view, now=now,
                         message_id=message_id)


# --------------------------------------------------------------------------- ticket: subject


@pytest.mark.parametrize(
    ("locale", "subject"),
    [
        ("en", '[★★☆☆☆] Review for order #1057 — "Late delivery"'),
        ("de", "[★★☆☆☆] Bewertung zu Bestellung #1057 — „Late delivery“"),
        ("da", '[★★☆☆☆] Anmeldelse af ordre #1057 — "Late delivery"'),
    ],
)
def test_the_ticket_subject_carries_stars_reference_and_title_in_the_shop_language(
    make_config: ConfigFactory, locale: str, subject: str
) -> None:
    config = make_config(shop_extra=f'locale = "{locale}"')
    mail = ticket(config)
    assert mail.subject == subject
    assert parse(mail)["Subject"] == subject
    assert parse(mail)["Content-Language"] == locale


@pytest.mark.parametrize(
    ("locale", "subject"),
    [
        ("en", '[★★★★★] Review from Ann Lee — "Great"'),
        ("de", "[★★★★★] Bewertung von Ann Lee — „Great“"),
        ("da", '[★★★★★] Anmeldelse fra Ann Lee — "Great"'),
    ],
)
def test_a_ticket_without_an_order_reference_names_the_reviewer(
    make_config: ConfigFactory, locale: str, subject: str
) -> None:
    config = make_config(shop_extra=f'locale = "{locale}"')
    mail = ticket(config, review=review(stars=5, title="Great", reference=None, method="link"))
    assert mail.subject == subject


def test_a_ticket_without_a_title_uses_the_start_of_the_text(config: Config) -> None:
    text = "Everything arrived on time and the quality is excellent, would buy again"
    mail = ticket(config, review=review(title="", text=text))
    assert mail.subject == '[★★☆☆☆] Review for order #1057 — "Everything arrived on time and the…"'
    bare = ticket(config, review=review(title=None, text="", reference=None, reviewer_name=""))
    assert bare.subject == "[★★☆☆☆] New review"


@pytest.mark.parametrize(
    ("locale", "prefix"), [("en", "Updated: "), ("de", "Aktualisiert: "), ("da", "Opdateret: ")]
)
def test_an_updated_review_says_so_in_the_subject(
    make_config: ConfigFactory, locale: str, prefix: str
) -> None:
    config = make_config(shop_extra=f'locale = "{locale}"')
    assert ticket(config, updated=True).subject.startswith(prefix + "[★★☆☆☆] ")
    assert not ticket(config, updated=False).subject.startswith(prefix)


def test_an_unknown_shop_locale_gives_english_tickets(make_config: ConfigFactory) -> None:
    config = make_config(shop_extra='locale = "pt-BR"')
    mail = ticket(config)
    assert parse(mail)["Content-Language"] == "en"
    assert mail.subject.startswith("[★★☆☆☆] Review for order #1057")


# --------------------------------------------------------------------------- ticket: body


@pytest.mark.parametrize("locale", ["en", "de", "da"])
def test_the_marker_is_the_first_line_and_the_key_the_last(
    make_config: ConfigFactory, locale: str
) -> None:
    mail = ticket(make_config(shop_extra=f'locale = "{locale}"'))
    lines = rendered_text(mail).rstrip("\n").split("\n")
    assert lines[0] == REPLY_MARKER
    assert lines[-1] == f"[mr:{KEY}]"
    assert rendered_text(mail).count(REPLY_MARKER) == 1


def test_the_ticket_text_shows_the_whole_review(config: Config) -> None:
    text = rendered_text(ticket(config))
    assert "★★☆☆☆ (2/5)" in text
    assert "Late delivery" in text
    assert "  The parcel came two weeks late.\n\n  The shoes are fine though.\n" in text
    assert "Ann Lee" in text and "ann@customer.example" in text and "#1057" in text
    assert "verified buyer" in text
    assert "Delivered:   Nov 10, 2026" in text
    assert "Written:     Nov 20, 2026, 9:00\u202fAM UTC" in text
    assert "Language:    de-DE" in text
    assert "  - Trail Runner 2 (SKU TR2)" in text
    assert f"Public page: {PUBLIC}\n" in text
    assert f"This review: {PUBLIC}#review-42\n" in text
    assert "Reply to this email to answer publicly." in text
    for directive in ("#note", "#noemail", "#report <reason>", "#tag <name>"):
        assert f"  {directive} " in text
    assert "Already answered automatically" not in text


def test_a_link_review_is_marked_as_coming_from_a_generated_link(config: Config) -> None:
    text = rendered_text(ticket(config, review=review(method="link"), shipment=None))
    assert "Source:      generated link" in text
    assert "verified buyer" not in text
    assert "Delivered:" not in text


def test_times_are_shown_in_the_shop_time_zone(make_config: ConfigFactory) -> None:
    config = make_config(shop_extra='locale = "de"')
    berlin = dataclasses.replace(config.shops[0], timezone=ZoneInfo("Europe/Berlin"))
    view = ticket_view(
        to_email="support@acme.example", reply_to=REPLY_TO, key=KEY, review=review(),
        shipment={"received_at": "2026-11-09T23:30:00Z"}, products=None, context={},
        links={"public": PUBLIC}, answered_by=None, auto_response=None, updated=False,
    )  # fmt: skip
    mail = ticket_mail(Templates(config), config, berlin, view, now=NOW)
    text = rendered_text(mail)
    assert "Verfasst:    20.11.2026, 10:00 CET" in text
    assert "Zugestellt:  10.11.2026" in text  # 23:30 UTC is the next day in Berlin
    assert "Diese Bewertung" not in text  # no separate review link: the public page only


def test_the_customer_context_lists_recent_items_and_says_none_when_empty(
    config: Config,
) -> None:
    empty = rendered_text(ticket(config))
    assert "Other reviews:\n  none\nOther invitations:\n  none\nReplies:\n  none\n" in empty
    assert rendered_html(ticket(config)).count("<li>none</li>") == 3

    context = {
        "reviews": [
            {"id": 7, "stars": 5, "title": "Great shoes", "created_at": "2026-10-01T10:00:00Z"},
            {"id": 8, "stars": 9, "title": "Broken stars", "created_at": "2026-09-01T10:00:00Z"},
        ],
        "invitations": [
            {"id": 3, "reference": "#1001", "status": "sent", "sent_at": "2026-09-25T08:00:00Z"},
            {"id": 4, "reference": None, "status": "scheduled", "sent_at": None},
        ],
        "replies": [{"review_id": 7, "body": "Thank you, Ann!", "created_at": "2026-10-02"}],
    }
    text = rendered_text(ticket(config, context=context))
    assert '  - Oct 1, 2026  ★★★★★ (5/5) "Great shoes"\n' in text
    assert '  - Sep 1, 2026   "Broken stars"\n' in text  # a bad star count is not fatal
    assert "  - Sep 25, 2026  order #1001, sent\n" in text
    assert "  - not sent  no order reference, scheduled\n" in text
    assert '  - Oct 2, 2026  "Thank you, Ann!"\n' in text
    assert "none" not in text.split("Customer context", 1)[1].split("How to answer")[0]
    html = rendered_html(ticket(config, context=context))
    assert "Oct 1, 2026 ★★★★★ (5/5) “Great shoes”" in html
    assert "<li>none</li>" not in html


def test_only_three_context_items_of_each_kind_are_shown(config: Config) -> None:
    reviews = [{"id": n, "stars": 4, "title": f"Title {n}"} for n in range(5)]
    text = rendered_text(ticket(config, context={"reviews": reviews}))
    assert "Title 2" in text and "Title 3" not in text


@pytest.mark.parametrize(
    ("locale", "heading"),
    [
        ("en", "Already answered automatically:"),
        ("de", "Bereits automatisch beantwortet:"),
        ("da", "Allerede besvaret automatisk:"),
    ],
)
def test_a_ticket_answered_automatically_quotes_the_automatic_response(
    make_config: ConfigFactory, locale: str, heading: str
) -> None:
    config = make_config(shop_extra=f'locale = "{locale}"')
    answer = "Dear Ann,\n\nthank you for your review!"
    mail = ticket(config, answered_by="auto", auto_response=answer)
    text = rendered_text(mail)
    assert f"\n{heading}\n  Dear Ann,\n\n  thank you for your review!\n" in text
    assert text.index(heading) > text.index(REPLY_MARKER)
    html = rendered_html(mail)
    assert heading in html
    assert '<p style="margin:0 0 12px;">thank you for your review!</p>' in html
    # No automatic answer: no such section, even when a text is passed by mistake.
    assert heading not in rendered_text(ticket(config, answered_by=None, auto_response=answer))


def test_the_html_ticket_shows_the_marker_and_hides_the_key(config: Config) -> None:
    html = rendered_html(ticket(config))
    marker = html.index(REPLY_MARKER)
    hidden = f'<div style="display:none" data-mailrelay-key="{KEY}">mr:{KEY}</div>'
    assert hidden in html
    assert marker < html.index(hidden)
    assert 'color:#6b7280;">' + REPLY_MARKER in html  # visible, small, grey and AA on white
    assert f'href="{PUBLIC}#review-42"' in html
    assert f"[mr:{KEY}]" in html


def test_review_text_and_names_are_escaped_in_html_and_verbatim_in_text(config: Config) -> None:
    hostile = review(
        title="<b>bold</b>",
        text="<script>alert(1)</script>\nsecond line",
        reviewer_name="Eve </script><img src=x onerror=alert(1)>",
    )
    mail = ticket(config, review=hostile, answered_by="auto", auto_response="<i>auto</i>")
    text, html = rendered_text(mail), rendered_html(mail)
    assert "<script>alert(1)</script>" in text
    assert "Eve </script><img src=x onerror=alert(1)>" in text
    assert "<script>" not in html and "</script>" not in html and "<img" not in html
    assert "<b>bold</b>" not in html and "<i>auto</i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;<br>second line" in html
    assert "Eve &lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html


def test_customer_text_cannot_fake_the_marker_or_a_key(config: Config) -> None:
    fake = f"{REPLY_MARKER}\nhello [mr:someoneelseskey]"
    mail = ticket(config, review=review(text=fake, title="[mr:abc]"))
    text = rendered_text(mail)
    assert text.count(REPLY_MARKER) == 1
    assert text.count("[mr:") == 1
    assert "[mr :someoneelseskey]" in text
    assert rendered_html(mail).count(REPLY_MARKER) == 1


def test_control_characters_never_reach_the_ticket(config: Config) -> None:
    mail = ticket(config, review=review(text="a\0b\x1b[31mc\u202eevil\r\nnext\rline\u2028end"))
    text = rendered_text(mail)
    assert "\0" not in text and "\x1b" not in text and "\u202e" not in text
    assert "  ab[31mcevil\n  next\n  line\n  end\n" in text


def test_a_shop_ticket_template_without_marker_or_key_gets_them_added(
    tmp_path: Path, make_config: ConfigFactory
) -> None:
    write(tmp_path / "t" / "mail" / "en" / "ticket.txt.j2", "{{ stars_bar }} {{ title }}\n")
    config = make_config(shop_extra='templates_dir = "t"')
    assert rendered_text(ticket(config)) == f"{REPLY_MARKER}\n\n★★☆☆☆ Late delivery\n\n[mr:{KEY}]\n"


# --------------------------------------------------------------------------- ticket: headers


def test_the_ticket_headers_are_present_and_exact(config: Config) -> None:
    mail = ticket(config, message_id="<ticket.1@relay.test>")
    message = parse(mail)
    assert message["From"] == "ACME Shoes <reviews@acme.example>"
    assert message["To"] == "support@acme.example"
    assert message["Reply-To"] == REPLY_TO
    assert f"\r\nReply-To: {REPLY_TO}\r\n".encode() in mail.raw
    assert message["Date"] == "Fri, 20 Nov 2026 09:30:00 +0000"
    assert message["Message-ID"] == "<ticket.1@relay.test>" == mail.message_id
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Mailrelay-Shop"] == "acme"
    assert message["X-Mailrelay-Review"] == "42"
    assert message["X-Mailrelay-Key"] == KEY
    assert message["In-Reply-To"] is None and message["References"] is None
    assert mail.to == "support@acme.example"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert header_names(mail.raw) == [
        "from", "to", "subject", "date", "message-id", "reply-to", "thread-index",
        "auto-submitted", "mime-version", "content-type", "content-language",
        "x-mailrelay-shop", "x-mailrelay-review", "x-mailrelay-key",
    ]  # fmt: skip
    assert mail.raw.isascii()
    assert b"\n" not in mail.raw.replace(b"\r\n", b"")


def test_a_new_ticket_gets_a_fresh_message_id_in_the_relay_domain(config: Config) -> None:
    first, second = ticket(config), ticket(config)
    assert first.message_id != second.message_id
    assert first.message_id.endswith("@relay.test>")


def test_an_updated_review_threads_under_the_first_ticket(config: Config) -> None:
    first = ticket(config)
    updated = ticket(config, updated=True, in_reply_to=first.message_id)
    message = parse(updated)
    assert message["In-Reply-To"] == first.message_id
    assert message["References"] == first.message_id
    assert parse(first)["Thread-Index"][8:] == message["Thread-Index"][8:]  # same conversation
    assert parse(ticket(config, in_reply_to="not an id"))["In-Reply-To"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("key", "UPPER"), ("key", "a/b"), ("key", ""), ("reply_to", "reply+x@a b"),
     ("to_email", "no-at-sign"), ("links", {"public": "javascript:alert(1)"}), ("links", {})],
)  # fmt: skip
def test_an_unusable_ticket_argument_is_refused(config: Config, field: str, value: Any) -> None:
    with pytest.raises(ValueError):
        ticket(config, **{field: value})


@pytest.mark.parametrize("stars", [0, 6, None, "5", 4.5, True])
def test_a_star_count_outside_one_to_five_is_refused(config: Config, stars: Any) -> None:
    with pytest.raises(ValueError, match="stars"):
        ticket(config, review=review(stars=stars))


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_in_title_or_name_never_adds_a_header(config: Config, value: str) -> None:
    for mail in (
        ticket(config, review=review(title=value, reviewer_name=value)),
        ticket(config, review=review(title=None, text=value, reference=None, reviewer_name=value)),
        response(config, to_name=value, review=review(title=value)),
    ):
        message = parse(mail)
        assert message["Bcc"] is None
        assert "bcc" not in header_names(mail.raw)
        assert b"\r\nBcc:" not in header_block(mail.raw)
        assert "\r" not in mail.subject and "\n" not in mail.subject
        assert message["Subject"] == mail.subject


# --------------------------------------------------------------------------- response mail


@pytest.mark.parametrize(
    ("locale", "subject", "intro"),
    [
        ("en", "Re: your review of ACME Shoes", "ACME Shoes has replied to your review:"),
        ("de", "Re: Ihre Bewertung von ACME Shoes",
         "ACME Shoes hat auf Ihre Bewertung geantwortet:"),
        ("da", "Re: din anmeldelse af ACME Shoes", "ACME Shoes har svaret på din anmeldelse:"),
    ],
)  # fmt: skip
def test_the_response_is_in_the_customer_language(
    config: Config, locale: str, subject: str, intro: str
) -> None:
    mail = response(config, locale=locale)
    assert mail.subject == subject
    assert parse(mail)["Content-Language"] == locale
    text = rendered_text(mail)
    assert text.startswith(intro + "\n\nDear Ann,\n\nwe are sorry about the delay.\n")
    assert "★★☆☆☆ (2/5)" in text and "Late delivery" in text
    assert PUBLIC in text
    html = rendered_html(mail)
    assert intro in html
    assert f'href="{PUBLIC}"' in html


def test_the_response_locale_falls_back_to_the_shop_locale_then_english(
    make_config: ConfigFactory,
) -> None:
    assert parse(response(make_config(), locale="de-AT"))["Content-Language"] == "de"
    danish = make_config(shop_extra='locale = "da"')
    assert parse(response(danish, locale="pt-BR"))["Content-Language"] == "da"
    assert parse(response(danish, locale=None))["Content-Language"] == "da"
    assert parse(response(make_config(), locale="pt-BR"))["Content-Language"] == "en"


def test_the_response_keeps_paragraphs_and_escapes_html(config: Config) -> None:
    body = "Hi <b>Ann</b>,\n\nline one\nline two\n\n\n\n<script>x</script>"
    mail = response(config, body=body)
    assert "Hi <b>Ann</b>,\n\nline one\nline two\n\n<script>x</script>\n" in rendered_text(mail)
    html = rendered_html(mail)
    assert '<p style="margin:0 0 12px;">Hi &lt;b&gt;Ann&lt;/b&gt;,</p>' in html
    assert '<p style="margin:0 0 12px;">line one<br>line two</p>' in html
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_the_response_headers_thread_under_the_invitation(config: Config) -> None:
    ticket_id = "<ticket.1@relay.test>"
    mail = response(
        config, references=[INVITATION_ID, ticket_id], message_id="<response.1@relay.test>"
    )
    message = parse(mail)
    assert message["From"] == "ACME Shoes <reviews@acme.example>"
    assert message["To"] == "Ann Lee <ann@customer.example>"
    assert message["Reply-To"] == "ACME Shoes <reviews@acme.example>"
    assert message["In-Reply-To"] == INVITATION_ID
    assert message["References"] == f"{INVITATION_ID} {ticket_id}"  # the root stays first
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Mailrelay-Shop"] == "acme"
    assert message["X-Mailrelay-Review"] == "42"
    assert mail.message_id == "<response.1@relay.test>"
    assert header_names(mail.raw) == [
        "from", "to", "subject", "date", "message-id", "reply-to", "in-reply-to",
        "references", "thread-index", "auto-submitted", "mime-version", "content-type",
        "content-language", "x-mailrelay-shop", "x-mailrelay-review",
    ]  # fmt: skip


def test_the_thread_index_is_22_bytes_of_time_and_a_guid_of_the_thread_root(
    config: Config,
) -> None:
    mail = response(config)
    value = parse(mail)["Thread-Index"]
    data = base64.b64decode(value, validate=True)
    assert len(data) == 22
    assert data[0] == 1  # reserved byte (MS-OXOMSG 2.2.1.3)
    filetime = int.from_bytes(data[1:6], "big") << 24
    moment = datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=filetime // 10)
    assert abs(moment - NOW) < timedelta(seconds=2)
    guid = uuid.uuid5(uuid.NAMESPACE_URL, "mid:" + INVITATION_ID.strip("<>"))
    assert data[6:] == guid.bytes
    # The same thread root gives the same conversation, whenever the mail is sent.
    later = response(config, now=NOW + timedelta(days=3), references=[INVITATION_ID, "<x@y>"])
    assert base64.b64decode(parse(later)["Thread-Index"])[6:] == guid.bytes
    assert thread_index(INVITATION_ID, NOW) == value


def test_unusable_threading_ids_are_left_out_not_fatal(config: Config) -> None:
    mail = response(config, in_reply_to="bogus", references=["<ok@relay.test>", "x\r\ny", "<ü@x>"])
    message = parse(mail)
    assert message["In-Reply-To"] is None
    assert message["References"] == "<ok@relay.test>"
    alone = parse(response(config, in_reply_to=None, references=[]))
    assert alone["In-Reply-To"] is None and alone["References"] is None
    assert len(base64.b64decode(alone["Thread-Index"])) == 22


def test_a_long_reference_chain_keeps_the_first_and_the_latest(config: Config) -> None:
    chain = [f"<m{n}@relay.test>" for n in range(30)]
    message = parse(response(config, references=chain, in_reply_to="<parent@relay.test>"))
    kept = message["References"].split()
    assert len(kept) == 20
    assert kept[0] == "<m0@relay.test>" and kept[1] == "<m12@relay.test>"
    assert kept[-1] == "<parent@relay.test>"  # a parent not in the chain is appended


def test_a_customer_without_a_name_is_addressed_by_address_only(config: Config) -> None:
    for name in (None, "", "ann@customer.example"):
        assert parse(response(config, to_name=name))["To"] == "ann@customer.example"


# --------------------------------------------------------------------------- auto response


@pytest.mark.parametrize("locale", ["en", "de", "da"])
def test_the_automatic_response_varies_and_greets_by_first_name(
    config: Config, locale: str
) -> None:
    templates, shop = Templates(config), config.shops[0]
    texts = {
        auto_response_text(
            templates, shop, locale, first_name="Ann", stars=5, rng=random.Random(seed)
        )
        for seed in range(40)
    }
    assert len(texts) >= 3
    for text in texts:
        assert "Ann" in text
        assert "---" not in text
        assert text == text.strip()
        assert "ACME Shoes" in text


@pytest.mark.parametrize("locale", ["en", "de", "da"])
def test_the_automatic_response_without_a_name_greets_neutrally(
    config: Config, locale: str
) -> None:
    templates, shop = Templates(config), config.shops[0]
    for seed in range(20):
        for name in (None, "", "ann@customer.example"):
            text = auto_response_text(
                templates, shop, locale, first_name=name, stars=4, rng=random.Random(seed)
            )
            assert "None" not in text and "@" not in text
            assert text.split("\n", 1)[0].rstrip(",!") in {
                "Hello", "Hi", "Thank you", "Hallo", "Guten Tag", "Vielen Dank", "Hej", "Tak",
            }  # fmt: skip


def test_the_automatic_response_follows_the_locale_chain(make_config: ConfigFactory) -> None:
    danish = make_config(shop_extra='locale = "da"')
    templates, shop = Templates(danish), danish.shops[0]
    rng = random.Random(1)
    text = auto_response_text(templates, shop, "pt-BR", first_name="Ann", stars=5, rng=rng)
    assert any(word in text for word in ("tak", "Tak"))
    german = auto_response_text(templates, shop, "de-CH", first_name=None, stars=5, rng=rng)
    assert "Dank" in german


def test_a_shop_can_write_its_own_automatic_responses(
    tmp_path: Path, make_config: ConfigFactory
) -> None:
    write(
        tmp_path / "t" / "mail" / "en" / "auto_response.txt.j2",
        "One {{ stars }}\n---\n\n---  \nTwo {{ first_name }}\n",
    )
    config = make_config(shop_extra='templates_dir = "t"')
    texts = {
        auto_response_text(
            Templates(config), config.shops[0], "en", first_name="Bo", stars=5,
            rng=random.Random(seed),
        )
        for seed in range(20)
    }  # fmt: skip
    assert texts == {"One 5", "Two Bo"}


@pytest.mark.parametrize(
    ("locale", "line"),
    [("en", "Mail: address bounced"),
     ("de", "E-Mail-Status: Adresse unzustellbar (Bounce)"),
     ("da", "Mailstatus: adressen kan ikke modtage post")],
)
def test_a_ticket_says_when_the_customers_address_bounced_without_naming_a_shop(
    make_config: ConfigFactory, locale: str, line: str
) -> None:
    config = make_config(shop_extra=f'locale = "{locale}"')
    status = [{"kind": "bounced", "mail": "address bounced"}]
    mail = ticket(config, context={"reviews": [], "invitations": [], "replies": [],
                                   "status": status})
    assert line in rendered_text(mail) and line in rendered_html(mail)
    plain = ticket(config)
    assert line.split(":")[0] + ":" not in rendered_text(plain)


@pytest.mark.parametrize(
    ("locale", "label"),
    [("en", "Other invitations:"), ("de", "Weitere Einladungen:"),
     ("da", "Andre invitationer:")],
)
def test_the_ticket_of_a_just_invited_customer_says_other_invitations_none(
    make_config: ConfigFactory, locale: str, label: str
) -> None:
    # The context leaves out the invitation this review came from (issue 12): a bare
    # "Invitations: none" read as if the customer had never been invited.
    config = make_config(shop_extra=f'locale = "{locale}"')
    mail = ticket(config)
    assert f"{label}\n" in rendered_text(mail)
    assert label in rendered_html(mail)


@pytest.mark.parametrize(
    ("locale", "asks"),
    [("en", "to ask an owner to hide the review"),
     ("de", "um einen Inhaber zu bitten, die Bewertung auszublenden"),
     ("da", "for at bede en ejer om at skjule anmeldelsen"),
     ("nl", "om een eigenaar te vragen de beoordeling te verbergen"),
     ("sv", "för att be en ägare att dölja omdömet"),
     ("nb", "for å be en eier om å skjule anmeldelsen"),
     ("fi", "pyydä omistajaa piilottamaan arvio"),
     ("fr", "pour demander à un propriétaire de masquer l’avis"),
     ("es", "para pedir a un propietario que oculte la opinión"),
     ("it", "per chiedere a un titolare di nascondere la recensione"),
     ("pl", "prośba do właściciela o ukrycie opinii")],
)
def test_the_ticket_says_a_report_asks_an_owner_rather_than_hiding_the_review(
    make_config: ConfigFactory, locale: str, asks: str
) -> None:
    # Since moderation (issue 14) an agent's #report only waits for an owner's decision.
    config = make_config(shop_extra=f'locale = "{locale}"')
    mail = ticket(config)
    for text in (rendered_text(mail), rendered_html(mail)):
        line = next(line for line in text.splitlines() if "#report" in line)
        assert asks in line, line
