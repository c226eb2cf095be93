"""Header fields of a parsed message read the full way: decoded text and addresses, falling back
to compat32-style readings where the modern parser gives up. Records problems in Defects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses
from typing import Any

from .addresses import clean_name, normalize_address
from .decoding import SURROGATE_RE, fix_surrogates
from .defects import Defects

_LOOSE_ADDRESS_RE = re.compile(r"[^\s<>()\[\]\\,;:\"@']+@[^\s<>()\[\]\\,;:\"@']+")
#: A msg-id in angle brackets (Message-ID, In-Reply-To, References), read loosely.
ANGLE_ID_RE = re.compile(r"<[^<>\s]+>")


@dataclass
class Headers:
    """What a trigger's headers say, cleaned: the part of a notice the two readings (the full one
    and fast_mime's) find differently."""

    subject: str | None
    message_id: str | None
    sender: str | None
    sender_name: str | None
    to_email: str | None
    to_name: str | None
    content_language: str | None = None


def read_header_text(msg: Message, name: str, defects: Defects) -> str | None:
    """Decoded header value; falls back to compat32-style decoding when the modern parser fails."""
    try:
        value = msg.get(name)
        if value is None:
            return None
        defects.add_all(name, getattr(value, "defects", ()))
        text = str(value)
        if "\ufffd" not in text:
            return text
        # Raw 8-bit headers (RFC 6532, or just sloppy mailers) come back with U+FFFD from the
        # modern policy; the compat reading keeps the bytes, and decode_bytes guesses the charset.
        raw = raw_header(msg, name)
        return text if raw is None or not SURROGATE_RE.search(raw) else decode_compat(raw)
    except Exception as exc:
        defects.add_exception(f"header {name}", exc)
    raw = raw_header(msg, name)
    return None if raw is None else decode_compat(raw)


def raw_header(msg: Message, name: str) -> str | None:
    """The header exactly as received (first occurrence), bypassing the header registry."""
    try:
        for key, value in msg.raw_items():
            if key.lower() == name.lower():
                return str(value)
    except Exception:  # the raw list is the last resort; there is nothing left to try
        return None
    return None


def decode_compat(raw: str) -> str:
    """RFC 2047 decoding the compat32 way, which tolerates what the modern parser rejects."""
    try:
        return str(make_header(decode_header(raw)))
    except Exception:
        return fix_surrogates(raw)


def first_address(msg: Message, name: str, defects: Defects) -> tuple[str | None, str | None]:
    """First valid (address, display name) of an address header, trying ever looser readings."""
    for display, spec in read_addresses(msg, name, defects):
        address = normalize_address(spec)
        if address is not None:
            return address, clean_name(display, address) or _read_comment_name(msg, name, address)
    raw = raw_header(msg, name)
    if raw:
        # "To: Jürgen jurgen@example.de" and similar: the intent is clear even if the syntax is not.
        for candidate in _LOOSE_ADDRESS_RE.findall(decode_compat(raw)):
            address = normalize_address(candidate.strip(".'"))
            if address is not None:
                defects.add(f"{name}: address recovered from malformed header")
                return address, None
    return None, None


def _read_comment_name(msg: Message, name: str, address: str) -> str | None:
    """RFC 822 style "ann@example.com (Ann Lee)": the modern parser drops comments, compat keeps."""
    raw = raw_header(msg, name)
    if not raw or "(" not in raw:
        return None
    try:
        for display, spec in getaddresses([raw]):
            if normalize_address(spec) == address:
                return clean_name(decode_compat(display), address)
    except Exception:  # only a nicety; the address is already known
        return None
    return None


def read_addresses(msg: Message, name: str, defects: Defects) -> list[tuple[str, str]]:
    """(display name, addr-spec) pairs from the header registry, or from compat32 parsing."""
    try:
        header: Any = msg.get(name)
        if header is None:
            return []
        defects.add_all(name, getattr(header, "defects", ()))
        pairs = [(str(a.display_name), str(a.addr_spec)) for a in header.addresses]
        if any(normalize_address(spec) for _, spec in pairs):
            return pairs
    except Exception as exc:
        defects.add_exception(f"header {name}", exc)
    raw = raw_header(msg, name)
    if raw is None:
        return []
    try:
        return [(decode_compat(display), spec) for display, spec in getaddresses([raw])]
    except Exception as exc:
        defects.add_exception(f"header {name}", exc)
        return []
