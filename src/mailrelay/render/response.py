"""The shop's public response emailed to the customer, as exact bytes, and the wording of an
automatic response to a positive review. Never sends, never stores.
"""

from __future__ import annotations

import random
import re
from datetime import datetime
from email.headerregistry import Address
from email.utils import format_datetime
from typing import Any, Final

from mailrelay.config import Config, ShopConfig
from mailrelay.render.content import (
    checked_stars,
    clean_display_text,
    customer_name,
    first_name_of,
    headline,
    paragraphs,
    review_id,
    stars_bar,
)
from mailrelay.render.headers import (
    aware,
    checked_address,
    checked_message_id,
    checked_url,
    shop_name,
    shop_sender,
)
from mailrelay.render.message import RenderedMail, compose, rendered
from mailrelay.render.templates import Templates
from mailrelay.render.threads import thread, threading_headers
from mailrelay.render.views import ResponseView

__all__ = ["auto_response_text", "response_mail"]

_VARIANT_SEPARATOR: Final = re.compile(r"^---[ \t]*$", re.MULTILINE)


def response_mail(
    templates: Templates,
    config: Config,
    shop: ShopConfig,
    view: ResponseView,
    *,
    now: datetime,
    message_id: str | None = None,
) -> RenderedMail:
    """The shop's published response, emailed to the customer under their invitation's thread.

    In-Reply-To/References that are not of the form "<left@right>" (ASCII) are left out, not
    refused: threading is a courtesy, never a reason not to send. Raises ValueError for an
    unusable address, URL, review or Message-ID.
    """
    to_address = checked_address(view.to_email)
    name = customer_name(view.to_name)
    public = checked_url(view.public_url, "public_url")
    review = review_id(view.review)
    message_id = checked_message_id(config, message_id)
    now = aware(now)
    subject, text_body, html, used = templates.render_text(
        shop, "response", view.locale, **_response_values(shop, view, name, public)
    )
    sender = shop_sender(shop)
    parent, references = thread(view.in_reply_to, view.references)
    head: list[tuple[str, Any]] = [
        ("From", sender),
        ("To", Address(display_name=name or "", addr_spec=to_address)),
        ("Subject", subject or shop_name(shop)),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        ("Reply-To", sender),
        *threading_headers(parent, references, message_id, now),
        ("Auto-Submitted", "auto-replied"),  # RFC 3834: sent because someone wrote to us
    ]
    tail = [("Content-Language", used), ("X-Mailrelay-Shop", shop.id)]
    msg = compose(head, text_body, html, [*tail, ("X-Mailrelay-Review", review)])
    return rendered(msg, message_id, to_address)


def _response_values(
    shop: ShopConfig, view: ResponseView, name: str | None, public: str
) -> dict[str, Any]:
    """The context of the response templates (see templates/mail/README.md)."""
    text = clean_display_text(view.body)
    count = checked_stars(view.review.stars)
    return {
        "shop_name": shop_name(shop),
        "customer_name": name,
        "first_name": first_name_of(name),
        "body": text,
        "paragraphs": paragraphs(text),
        "stars": count,
        "stars_bar": stars_bar(count),
        "title": headline(view.review.title, view.review.text),
        "public_url": public,
        "review_url": public,  # the shared layout's button
    }


def auto_response_text(
    templates: Templates,
    shop: ShopConfig,
    locale: str | None,
    *,
    first_name: str | None,
    stars: int,
    rng: random.Random | None = None,
) -> str:
    """One variant, chosen at random, of mail/<locale>/auto_response.txt.j2: the automatic
    public response to a positive review.

    The template holds several variants separated by lines of only "---". Locale chain as for
    invitations (the customer's locale, the shop's, "en"). Raises TemplateNotFound when no
    locale has the template, ValueError when it renders no variant.
    """
    template, used = templates.first_template(
        shop, locale, lambda step: f"mail/{step}/auto_response.txt.j2"
    )
    rendered_text = template.render(
        shop_name=shop_name(shop),
        first_name=customer_name(first_name),
        stars=checked_stars(stars),
        locale=used,
        purpose="auto_response",
    )
    variants = [v.strip() for v in _VARIANT_SEPARATOR.split(rendered_text) if v.strip()]
    if not variants:
        raise ValueError(f"mail/{used}/auto_response.txt.j2 renders no variant")
    return (rng or random.Random()).choice(variants)  # noqa: S311 - wording, not security

