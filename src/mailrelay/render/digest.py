"""The agents' daily digest (a shop's unanswered 1–3★ reviews) as exact bytes, from the shop's
`digest` templates in its look. Never sends, never stores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.utils import format_datetime
from typing import Any

from mailrelay.config import Config, ShopConfig
from mailrelay.render.content import checked_stars, defang, stars_bar
from mailrelay.render.headers import (
    aware,
    checked_address,
    checked_message_id,
    checked_url,
    clean_header,
    shop_sender,
)
from mailrelay.render.message import RenderedMail, compose, rendered
from mailrelay.render.templates import Templates

__all__ = ["DigestItem", "digest_mail"]


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One unanswered review in the list: its stars, title, when it was written, its page,
    and whether an agent's report of it waits for an owner (the list says so)."""

    stars: int
    title: str | None
    created_at: datetime
    url: str
    reported: bool = False


def digest_mail(templates: Templates, config: Config, shop: ShopConfig, to: str,
                items: Sequence[DigestItem], inbox_url: str, *, now: datetime) -> RenderedMail:
    """The digest to one agent, in the shop's locale; each review's age counted in the shop's
    days. Raises ValueError for an unusable address, link or star count."""
    agent = checked_address(to)
    message_id = checked_message_id(config, None)
    now = aware(now)
    today = now.astimezone(shop.timezone).date()
    reviews: list[dict[str, Any]] = []
    for item in items:
        count = checked_stars(item.stars)
        written = aware(item.created_at).astimezone(shop.timezone).date()
        reviews.append({
            "stars": count, "stars_bar": stars_bar(count),
            "title": defang(clean_header(item.title, limit=120)) or None,
            "age_days": max((today - written).days, 0),
            "url": checked_url(item.url, "url"), "reported": item.reported,
        })
    inbox = checked_url(inbox_url, "inbox_url")
    subject, text, html, used = templates.render_text(
        shop, "digest", shop.locale, reviews=reviews, count=len(reviews), review_url=inbox)
    head: list[tuple[str, Any]] = [
        ("From", shop_sender(shop)),
        ("To", Address(addr_spec=agent)),
        ("Subject", subject or shop.name),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        ("Auto-Submitted", "auto-generated"),  # RFC 3834
    ]
    tail = [("Content-Language", used), ("X-Mailrelay-Shop", shop.id),
            ("X-Mailrelay-Digest", today.isoformat())]  # a filter for agents' mail clients
    return rendered(compose(head, text, html, tail), message_id, agent)
