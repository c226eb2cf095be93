"""Read a delivery status notification (RFC 3464) into per-recipient results. Never raises."""

from __future__ import annotations

import re
from email import policy
from email.message import Message
from email.parser import BytesParser

from mailrelay.core.models import DeliveryReport, RecipientStatus

from .addresses import normalize_address
from .headers import ANGLE_ID_RE

_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def parse_dsn(raw: bytes) -> DeliveryReport | None:
    """The per-recipient results of a DSN, or None when this is not one; never raises."""
    try:
        return _read_dsn(raw)
    except Exception:  # a malformed bounce is ignored, never a crash
        return None


def _read_dsn(raw: bytes) -> DeliveryReport | None:
    msg = BytesParser(policy=policy.compat32).parsebytes(raw)
    status_part: Message | None = None
    original: str | None = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            status_part = part
        elif ctype in ("text/rfc822-headers", "message/rfc822") and original is None:
            original = _original_message_id(part)
    if status_part is None:
        return None
    recipients = []
    for block in _status_blocks(status_part):
        fields = {k.lower(): str(v) for k, v in block.items()}
        recipient = fields.get("final-recipient") or fields.get("original-recipient") or ""
        address = normalize_address(recipient.split(";", 1)[-1].strip()) if recipient else None
        action = fields.get("action", "").strip().lower()
        found = _STATUS_RE.search(fields.get("status", ""))
        if not action and not found:
            continue
        recipients.append(RecipientStatus(
            recipient=address, action=action or "failed",
            status=".".join(found.groups()) if found else "5.0.0",
            diagnostic=" ".join(fields.get("diagnostic-code", "").split())[:300] or None,
        ))
    return DeliveryReport(tuple(recipients), original)


def _status_blocks(part: Message) -> list[Message]:
    """The per-message and per-recipient field groups of a message/delivery-status part."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parses the groups as sub-messages
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    groups = [g for g in re.split(r"\r?\n\s*\r?\n", text) if g.strip()]
    return [BytesParser(policy=policy.compat32).parsebytes(g.encode("utf-8", "replace"))
            for g in groups]


def _original_message_id(part: Message) -> str | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        value = payload[0].get("Message-ID")
    else:
        text = payload if isinstance(payload, str) else ""
        headers = BytesParser(policy=policy.compat32).parsebytes(
            text.encode("utf-8", "replace"), headersonly=True)
        value = headers.get("Message-ID")
    found = ANGLE_ID_RE.search(str(value or ""))
    return found.group(0) if found else None
