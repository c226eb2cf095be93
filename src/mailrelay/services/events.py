"""A shop's review events for its webhooks: the JSON payloads, queued in the outbox in the
same transaction as the change they report (one row per subscribed webhook, so a crash loses
neither), and the signature they carry. `services.webhooks` sends them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mailrelay.config import Config
from mailrelay.core.models import OutboxKind, verified
from mailrelay.services.links import public_url
from mailrelay.store import InvitationRow, NewMail, ProductReviewRow, QueryInterface, ReviewRow

#: The header that carries `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
SIGNATURE_HEADER = "Mailrelay-Signature"
#: How an event's id starts (the receiver's idempotency key).
EVENT_ID_PREFIX = "evt_"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The Mailrelay-Signature value for `body` sent at `timestamp` (Unix seconds)."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signature_valid(secret: str, header: str, body: bytes, now: int,
                    tolerance: int = 300) -> bool:
    """What a receiver checks (and our tests do): a v1 signature of this body by this secret,
    made within `tolerance` seconds of `now`. Kept here as the reference for the README."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).rpartition("v1=")[2]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def emit(q: QueryInterface, config: Config, shop_id: str, event: str, now: datetime, *,
         review_id: int | None = None, invitation_id: int | None = None,
         extra: Mapping[str, Any] | None = None) -> int:
    """Queue `event` for each of the shop's webhooks that asked for it; returns how many.

    Called inside the write that makes the change, so the event is as durable as the change.
    """
    shop = config.shop(shop_id)
    hooks = shop.webhooks_for(event) if shop is not None else ()
    if shop is None or not hooks:
        return 0
    data: dict[str, Any] = {}
    if review_id is not None:
        review = q.get_review(review_id)
        if review is not None:
            data["review"] = review_payload(config, review, q.product_reviews_of(review_id))
    if invitation_id is not None:
        invitation = q.get_invitation(invitation_id)
        if invitation is not None:
            data["invitation"] = invitation_payload(invitation)
    data.update(extra or {})
    for hook in hooks:
        event_id = EVENT_ID_PREFIX + secrets.token_hex(12)
        body = json.dumps(
            {"id": event_id, "type": event, "created_at": utc(now),
             "shop": {"id": shop.id, "name": shop.name}, "data": data},
            ensure_ascii=False, separators=(",", ":"), sort_keys=False,
        ).encode()
        q.enqueue(NewMail(
            kind=OutboxKind.WEBHOOK, shop=shop.id, recipient=hook.url, envelope_from="",
            subject=event, message_id=event_id, raw=body, created_at=now, due_at=now,
            invitation_id=invitation_id, review_id=review_id))
    return len(hooks)


def review_payload(config: Config, review: ReviewRow,
                   products: Sequence[ProductReviewRow] = ()) -> dict[str, Any]:
    """A review as a shop's CRM sees it: the public fields, plus who wrote it and for which
    order (the shop's own data, going to the shop's own tool), and its product ratings."""
    response = None
    if review.response:
        response = {"text": review.response, "created_at": _utc_text(review.responded_at),
                    "automatic": review.response_source == "auto"}
    return {
        "id": review.id,
        "url": public_url(config, review.shop, review.id),
        "stars": review.stars,
        "title": review.title or "",
        "text": review.text or "",
        "reviewer_name": review.reviewer_name or "",
        "customer_email": review.customer_email,
        "order_reference": review.reference,
        "locale": review.locale,
        "method": review.method,
        "verified": verified(review.method),
        "tags": list(review.tags),
        "reported": bool(review.reported),
        "created_at": _utc_text(review.created_at),
        "updated_at": _utc_text(review.updated_at),
        "response": response,
        "products": [{"sku": p.sku, "name": p.name, "stars": p.stars, "text": p.text or ""}
                     for p in products],
    }


def response_payload(text: str, author: str, now: datetime, *, automatic: bool,
                     emailed: bool) -> dict[str, Any]:
    """A public response as published: who answered (an agent's address, or "auto"), and
    whether the customer was emailed."""
    return {"text": text, "author": author, "automatic": automatic, "emailed": emailed,
            "created_at": utc(now)}


def invitation_payload(invitation: InvitationRow) -> dict[str, Any]:
    """An invitation without its review link (the link lets anyone review as the customer)."""
    return {
        "id": invitation.id,
        "customer_email": invitation.customer_email or None,
        "customer_name": invitation.customer_name,
        "order_reference": invitation.reference,
        "locale": invitation.locale,
        "method": invitation.method,
        "sent_at": _utc_text(invitation.sent_at),
        "reminder_due_at": _utc_text(invitation.reminder_due_at),
    }


def utc(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utc_text(text: str | None) -> str | None:
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return utc(when if when.tzinfo else when.replace(tzinfo=UTC))

