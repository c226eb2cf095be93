"""Each shop's look in every mail, every built-in locale: the logo, the accent on the button
and links (adjusted for contrast), the link back to the shop's site in the text and HTML
footers, and every text colour of the HTML meeting WCAG AA on the background it sits on."""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage
from importlib.resources import files
from pathlib import Path

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.render import Templates
from mailrelay.render.brand import brand_of, contrast

from .conftest import ConfigFactory, second_shop
from .mailtools import parsed, send, settle, text_of, trigger, via_sink
from .sink import Sink

MAIL = Path(str(files("mailrelay") / "templates" / "mail"))
LOCALES = sorted(p.name for p in MAIL.iterdir() if (p / "invitation.txt.j2").is_file())
#: Every mail we send that has a template: customers', agents' and operators'.
PURPOSES = ["invitation", "reminder", "review_link", "ticket", "response", "alert",
            "reply_rejected", "digest"]
#: The two looks the browser test uses too: a pale yellow and a near-black.
PALE, DARK = "#fef08a", "#111111"
LOOK = f'''
site_url = "https://acme.example/shop"
logo_url = "https://cdn.acme.example/logo.png"
accent_color = "{PALE}"
'''
CONTEXT = {
    "review_url": "http://reviews.test/r/tok3n", "unsubscribe_url": "http://reviews.test/u/t",
    "public_url": "http://reviews.test/s/acme", "first_name": "Jane", "stars": 4,
    "stars_bar": "★★★★☆", "marker": "##- Please type your reply above this line -##",
    "key": "k7q2mzx4abcd3efg", "paragraphs": [["Thank you."]], "body": "Thank you.",
    "kind": "new_sender", "facts": {"sender": "a@b.example", "subject": "Shipped"},
    "reason": "empty", "explanation": "The reply was empty.",
}
TEXT_COLOR = re.compile(r"(?<![-\w])color:\s*(#[0-9a-f]{6})")


@pytest.fixture
def looks(make_config: ConfigFactory) -> Config:
    return make_config(shop_extra=LOOK, more=second_shop(accent_color=DARK))


def render(config: Config, shop_id: str, purpose: str, locale: str) -> tuple[str, str]:
    shop = config.shop(shop_id)
    assert shop is not None
    _subject, text, html, used = Templates(config).render_text(shop, purpose, locale,
                                                               **CONTEXT)
    assert used == locale
    return text, html


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("purpose", PURPOSES)
def test_every_mail_links_back_to_the_shops_site_in_its_footer(
    looks: Config, purpose: str, locale: str
) -> None:
    text, html = render(looks, "acme", purpose, locale)
    assert "ACME Shoes: https://acme.example/shop\n" in text
    if purpose == "ticket":
        assert text.endswith("[mr:k7q2mzx4abcd3efg]\n")  # the key stays the last line
    if html:
        footer = html[html.rindex("<p style=\"max-width:560px"):]
        assert '<a href="https://acme.example/shop"' in footer and ">ACME Shoes</a>" in footer
    text, html = render(looks, "bolt", purpose, locale)  # no site_url: no line, no link
    assert "https://" not in text.replace(CONTEXT["review_url"], "")
    assert "acme.example" not in text + html


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("purpose", ["invitation", "reminder", "ticket", "response"])
def test_html_mail_shows_the_logo_and_the_adjusted_accent(
    looks: Config, purpose: str, locale: str
) -> None:
    _text, html = render(looks, "acme", purpose, locale)
    brand = brand_of(PALE)
    assert '<img src="https://cdn.acme.example/logo.png" alt="ACME Shoes" height="48"' in html
    assert f'bgcolor="{brand.button}"' in html
    assert f"color:{brand.button_text};text-decoration:none" in html
    assert f"color:{brand.link};word-break:break-all" in html
    _text, html = render(looks, "bolt", purpose, locale)
    assert "<img" not in html
    assert f'bgcolor="{brand_of(DARK).button}"' in html


@pytest.mark.parametrize("shop_id", ["acme", "bolt"])
@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("purpose", ["invitation", "reminder", "ticket", "response"])
def test_every_text_colour_in_html_mail_meets_aa_on_its_background(
    looks: Config, shop_id: str, purpose: str, locale: str
) -> None:
    _text, html = render(looks, shop_id, purpose, locale)
    button = re.search(r'<td align="center" bgcolor="(#[0-9a-f]{6})"[^>]*>\s*<a [^>]*>', html)
    assert button, html
    button_text = TEXT_COLOR.findall(button.group(0))
    assert button_text and contrast(button_text[-1], button.group(1)) >= 4.5
    card, footer = html.split('<p style="max-width:560px', 1)
    card = card.replace(button.group(0), "")
    for background, part in (("#ffffff", card), ("#f3f4f6", footer)):
        for color in TEXT_COLOR.findall(part):
            assert contrast(color, background) >= 4.5, (color, background)


def test_the_invitation_footer_no_longer_puts_grey_on_grey(looks: Config) -> None:
    _text, html = render(looks, "bolt", "invitation", "en")
    footer = html[html.rindex('<p style="max-width:560px'):]
    assert "#6b7280" not in footer and "color:#4b5563" in footer


async def test_a_sent_invitation_carries_the_look_of_its_own_shop_only(
    looks: Config, clock: FrozenClock, sink: Sink
) -> None:
    """Two shops' triggers in by SMTP, both invitations out to a real SMTP sink: each in its
    own shop's look, nothing of the other's."""
    async with Daemon(via_sink(looks, sink), clock) as daemon:
        await send(daemon, trigger(to="Jane Doe <jane@customer.example>"))
        await send(daemon, trigger(to="Jo Roe <jo@customer.example>",
                                   sender="Bolt Bikes <shop@bolt.example>"),
                   "reviews+bolt@relay.test")
        await settle(daemon)
        clock.advance(timedelta(days=7))
        assert await daemon.tick() == 2
        await sink.wait_for(2)
    mails = {rcpts[0]: parsed(raw) for _from, rcpts, raw in sink.messages}
    acme, bolt = mails["jane@customer.example"], mails["jo@customer.example"]
    acme_html, bolt_html = html_of(acme), html_of(bolt)
    assert "ACME Shoes: https://acme.example/shop" in text_of(acme)
    assert 'src="https://cdn.acme.example/logo.png" alt="ACME Shoes"' in acme_html
    assert f'bgcolor="{brand_of(PALE).button}"' in acme_html
    assert "acme.example" not in text_of(bolt) + bolt_html and "<img" not in bolt_html
    assert f'bgcolor="{brand_of(DARK).button}"' in bolt_html


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())
