"""The invitation (or reminder) to one customer as exact bytes: multipart/alternative with
the review link and a one-click unsubscribe (RFC 8058). Never sends, never stores.
"""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.utils import format_datetime
from typing import Any

from mailrelay.config import Config, ShopConfig
from mailrelay.render.content import clean_products, customer_name, first_name_of
from mailrelay.render.headers import (
    aware,
    checked_address,
    checked_message_id,
    checked_url,
    clean_header,
    reply_to_for,
    sender_for,
    set_extra_headers,
    shop_name,
)
from mailrelay.render.message import RenderedMail, compose, seal
from mailrelay.render.templates import Templates
from mailrelay.render.views import InvitationView

__all__ = ["invitation_mail"]


def invitation_mail(
    templates: Templates,
    config: Config,
    shop: ShopConfig,
    view: InvitationView,
    *,
    now: datetime,
    message_id: str | None = None,
) -> RenderedMail:
    """The invitation (or reminder) to one customer, multipart/alternative, ready to send.

    Raises ValueError for an unusable recipient address, URL, Message-ID or extra header name.
    """
    to_address = checked_address(view.to_email)
    name = customer_name(view.to_name)
    review = checked_url(view.review_url, "review_url")
    unsubscribe = checked_url(view.unsubscribe_url, "unsubscribe_url")
    message_id = checked_message_id(config, message_id)
    now = aware(now)
    subject, text, html, used = templates.render_text(
        shop,
        view.purpose,
        view.locale,
        shop_name=shop_name(shop),
        customer_name=name,
        first_name=first_name_of(name),
        reference=clean_header(view.reference, limit=100) or None,
        review_url=review,
        unsubscribe_url=unsubscribe,
        products=clean_products(view.products),
    )
    subject = subject or shop_name(shop)
    head: list[tuple[str, Any]] = [
        ("From", sender_for(shop, view.sender_name)),
        ("To", Address(display_name=name or "", addr_spec=to_address)),
        ("Subject", subject),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        ("Reply-To", reply_to_for(shop, view.reply_to)),
        ("List-Unsubscribe", f"<{unsubscribe}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),  # RFC 8058
        ("Auto-Submitted", "auto-generated"),  # RFC 3834: auto-responders must not answer
    ]
    msg = compose(head, text, html, [("Content-Language", used), ("X-Mailrelay-Shop", shop.id)])
    set_extra_headers(msg, view.extra_headers)
    return RenderedMail(message_id=message_id, to=to_address, subject=subject, raw=seal(msg))
