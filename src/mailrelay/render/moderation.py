"""The mail that tells a shop's owner an agent reported a review (issue 14): the review, who
reported it and why, and a button to the console's moderation page. Never sends, never stores.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    checked_url,
    clean_header,
    shop_name,
)
from mailrelay.render.message import RenderedMail, compose, rendered
from mailrelay.render.templates import Templates

__all__ = ["PendingReportView", "report_pending_mail"]


@dataclass(frozen=True)
class PendingReportView:
    """What the owner's mail shows of one pending report (no customer address)."""

    to_email: str
    review_id: int
    stars: int
    title: str | None
    text: str | None
    reporter: str
    reason: str
    moderation_url: str


def report_pending_mail(templates: Templates, config: Config, shop: ShopConfig,
                        view: PendingReportView, *, now: datetime) -> RenderedMail:
    """One owner's notice of a pending report, in the shop's locale and look, text + HTML.
    Auto-Submitted: auto-generated (RFC 3834)."""
    to_address = checked_address(view.to_email)
    message_id = checked_message_id(config, None)
    url = checked_url(view.moderation_url, "moderation_url")
    now = aware(now)
    name = shop_name(shop)
    subject, text_body, html_body, used = templates.render_text(
        shop, "report_pending", shop.locale, shop_name=name, review_id=view.review_id,
        stars=view.stars, stars_bar="★" * view.stars + "☆" * (5 - view.stars),
        title=clean_header(view.title, limit=200) or None,
        text=clean_display_text(view.text or "", limit=1000),
        reporter=clean_header(view.reporter, limit=200),
        reason=clean_header(view.reason, limit=300), review_url=url, moderation_url=url)
    head: list[tuple[str, Any]] = [
        ("From", clean_header(f"{name} <{shop.reply_address}>", limit=500)),
        ("To", Address(addr_spec=to_address)),
        ("Subject", subject or f"Review {view.review_id} reported"),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        ("Auto-Submitted", "auto-generated"),
    ]
    tail = [("Content-Language", used), ("X-Mailrelay-Shop", shop.id)]
    return rendered(compose(head, text_body, html_body, tail), message_id, to_address)
