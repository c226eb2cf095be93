"""Read a shipping-notification email into a ShipmentNotice (customer, reference, block data).

Pure: bytes in, values out; no I/O, and nothing here raises on malformed mail.
"""

from __future__ import annotations

import re

from mailrelay.core.models import ShipmentNotice

from . import fast_mime
from .block import BlockFields, find_block, read_block
from .decoding import clean_text
from .defects import Defects
from .headers import Headers, first_address, read_header_text
from .locale import trigger_locale
from .message import Bodies, collect_bodies, parse_message
from .references import find_reference


def parse_batch(jobs: list[tuple[bytes, re.Pattern[str] | None]]) -> list[ShipmentNotice]:
    """`parse_trigger` over a batch of (raw, order_reference_pattern): what intake's parser
    process runs (exported by mailrelay.parsing, so the worker needs no other import)."""
    return [parse_trigger(raw, reference_pattern=pattern) for raw, pattern in jobs]


def parse_trigger(
    raw: bytes, *, reference_pattern: re.Pattern[str] | None = None
) -> ShipmentNotice:
    """Read what a trigger email says; never raises, records what it could not read in defects.

    The SMTP listener must accept every shipment (SPEC: nothing accepted is dropped), so a
    broken message still yields a notice, with `customer_email` None when no customer is known.

    Well-formed mail takes a fast path (compat32 parsing, see `fast_reading`) that gives the
    same notice as the full modern-policy reading at a fraction of the cost; anything unusual,
    and every message with a defect, is read the full way.
    """
    try:
        notice = fast_reading(raw, reference_pattern)
    except Exception:  # the fast path only declines; the full reading records what went wrong
        notice = None
    return notice if notice is not None else full_reading(raw, reference_pattern)


def fast_reading(raw: bytes, reference_pattern: re.Pattern[str] | None) -> ShipmentNotice | None:
    """The notice full_reading would give, or None (or fast_mime.Unusual) when it cannot be sure.

    It answers only for messages the full reading finds no defect in (fast_mime's rules).
    """
    read = fast_mime.read(raw)
    if read is None:
        return None
    notice = _notice(*read, reference_pattern, Defects())
    return None if notice.defects else notice


def full_reading(raw: bytes, reference_pattern: re.Pattern[str] | None) -> ShipmentNotice:
    """The full reading with the modern email policy: tolerant, thorough, and slow."""
    defects = Defects()
    try:
        return _read_trigger(raw, reference_pattern, defects)
    except Exception as exc:  # a parser bug must not lose a shipment the listener accepted
        defects.add_exception("parser", exc)
        return ShipmentNotice(
            message_id=None,
            sender=None,
            subject=None,
            customer_email=None,
            customer_name=None,
            reference=None,
            reference_rule=None,
            defects=defects.as_tuple(),
        )


def _read_trigger(
    raw: bytes, reference_pattern: re.Pattern[str] | None, defects: Defects
) -> ShipmentNotice:
    msg = parse_message(raw, defects)

    subject = clean_text(read_header_text(msg, "Subject", defects))
    message_id = clean_text(read_header_text(msg, "Message-ID", defects))
    sender, sender_name = first_address(msg, "From", defects)
    to_email, to_name = first_address(msg, "To", defects)
    content_language = clean_text(read_header_text(msg, "Content-Language", defects))
    bodies = collect_bodies(msg, defects)
    return _notice(
        Headers(subject, message_id, sender, sender_name, to_email, to_name, content_language),
        bodies,
        reference_pattern,
        defects,
    )


def _notice(
    headers: Headers,
    bodies: Bodies,
    reference_pattern: re.Pattern[str] | None,
    defects: Defects,
) -> ShipmentNotice:
    """Combine the headers with the body text and any structured block (both readings)."""
    found = find_block(bodies, defects)
    block = read_block(found[1], defects) if found else BlockFields()
    to_email, to_name = headers.to_email, headers.to_name

    if block.email_given:
        customer_email = block.email
        # The To name belongs to the To address; a block that names someone else (the Trustpilot
        # pattern sends to the shop's archive) must not inherit the archive's display name.
        customer_name = (
            block.name
            if block.name is not None
            else (to_name if customer_email is not None and customer_email == to_email else None)
        )
    else:
        customer_email = to_email
        customer_name = block.name if block.name is not None else to_name

    if block.reference is not None:
        reference: str | None = block.reference
        rule: str | None = "block"
    else:
        reference, rule = find_reference(headers.subject, None, reference_pattern)
        if reference is None:
            reference, rule = find_reference(None, bodies.text(), reference_pattern)
    locale, locale_source = trigger_locale(
        block.locale, headers.content_language, bodies.html, bodies.text())

    return ShipmentNotice(
        message_id=headers.message_id,
        sender=headers.sender,
        subject=headers.subject,
        customer_email=customer_email,
        customer_name=customer_name,
        reference=reference,
        reference_rule=rule,
        locale=locale,
        locale_source=locale_source,
        send_at=block.send_at,
        # Only the block's: it becomes the invitation's From name (SPEC, issue 9), and the
        # trigger's own From name is often the platform's ("Shopify"), not the shop's.
        sender_name=block.sender_name,
        reply_to=block.reply_to,
        tags=block.tags,
        products=block.products,
        source=f"block:{found[0]}" if found else "headers",
        defects=defects.as_tuple(),
    )
