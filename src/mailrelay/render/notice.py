"""The notice that tells an agent why their reply was not published, as exact bytes.
Never sends, never stores.
"""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.utils import format_datetime
from typing import Any

from mailrelay.config import Config, ShopConfig
from mailrelay.render.content import clean_display_text
from mailrelay.render.headers import (
    aware,
    checked_address,
    checked_message_id,
    clean_header,
    shop_name,
)
from mailrelay.render.message import RenderedMail, compose, rendered
from mailrelay.render.templates import Templates
from mailrelay.render.threads import thread, threading_headers
from mailrelay.render.views import NoticeView

__all__ = ["notice_mail"]


def notice_mail(
    templates: Templates,
    config: Config,
    shop: ShopConfig,
    view: NoticeView,
    *,
    now: datetime,
    message_id: str | None = None,
) -> RenderedMail:
    """Tell an agent why their reply was not published, with what they wrote, so they can
    resend it. Sent from the shop's reply address with Auto-Submitted: auto-replied, so the
    agent's own auto-responder stays quiet (RFC 3834)."""
    to_address = checked_address(view.to_email)
    message_id = checked_message_id(config, message_id)
    now = aware(now)
    name = shop_name(shop)
    subject, text_body, _html, used = templates.render_text(
        shop,
        "reply_rejected",
        None,
        shop_name=name,
        reason=view.reason,
        explanation=view.explanation,
        code=view.code,
        detail=view.detail,
        original_subject=clean_header(view.original_subject, limit=200),
        original_text=clean_display_text(view.original_text or "", limit=5000),
    )
    sender = clean_header(f"{name} <{shop.reply_address}>", limit=500)
    in_reply_to = view.in_reply_to
    parent, references = thread(in_reply_to, [in_reply_to] if in_reply_to else [])
    head: list[tuple[str, Any]] = [
        ("From", sender),
        ("To", Address(addr_spec=to_address)),
        ("Subject", subject or f"Your reply was not published: {view.reason}"),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        *threading_headers(parent, references, message_id, now),
        ("Auto-Submitted", "auto-replied"),
    ]
    tail = [("Content-Language", used), ("X-Mailrelay-Shop", shop.id)]
    return rendered(compose(head, text_body, "", tail), message_id, to_address)
