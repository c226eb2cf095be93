"""The operator's alert (a new trigger sender, an outage or its end, a reported review) as exact
bytes, from the shop's `alert` templates. Never sends, never stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.headerregistry import Address
from email.utils import format_datetime
from typing import Any

from mailrelay.config import Config, ShopConfig
from mailrelay.render.headers import aware, checked_address, checked_message_id, clean_header
from mailrelay.render.message import RenderedMail, compose, rendered
from mailrelay.render.templates import Templates

__all__ = ["alert_mail"]


def alert_mail(
    templates: Templates,
    config: Config,
    shop: ShopConfig,
    to: str,
    kind: str,
    facts: Mapping[str, str],
    *,
    now: datetime,
) -> RenderedMail:
    """One alert of `kind` to one of the shop's `alerts` addresses, in the shop's locale; the
    `facts` (single lines) fill the template. Auto-Submitted: auto-generated (RFC 3834)."""
    to_address = checked_address(to)
    message_id = checked_message_id(config, None)
    now = aware(now)
    values = {key: clean_header(value, limit=300) for key, value in facts.items()}
    subject, text_body, _html, used = templates.render_text(
        shop, "alert", shop.locale, kind=kind, facts=values)
    sender = clean_header(f"mailrelay <{shop.reply_address}>", limit=500)
    head: list[tuple[str, Any]] = [
        ("From", sender),
        ("To", Address(addr_spec=to_address)),
        ("Subject", subject or f"mailrelay alert: {kind}"),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        ("Auto-Submitted", "auto-generated"),
    ]
    tail = [("Content-Language", used), ("X-Mailrelay-Shop", shop.id)]
    return rendered(compose(head, text_body, "", tail), message_id, to_address)
