"""The headers that put a message in its thread: In-Reply-To, References and Outlook's
Thread-Index. Only usable Message-IDs go in; threading never refuses a message.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from mailrelay.render.headers import MESSAGE_ID, aware, clean_header

__all__ = ["thread", "thread_index", "threading_headers"]

_FILETIME_EPOCH: Final = datetime(1601, 1, 1, tzinfo=UTC)
_MAX_REFERENCES: Final = 20


def thread(in_reply_to: str | None, references: Iterable[str]) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) of a reply: usable Message-IDs only, no duplicates, in the
    caller's order (oldest first: the first is the thread's root, see thread_index), the parent
    appended when missing (RFC 5322 3.6.4), and when too long the first plus the latest."""
    parent = _usable_message_id(in_reply_to)
    chain: list[str] = []
    for value in [*references, in_reply_to]:
        usable = _usable_message_id(value)
        if usable is not None and usable not in chain:
            chain.append(usable)
    if len(chain) > _MAX_REFERENCES:
        chain = chain[:1] + chain[-(_MAX_REFERENCES - 1) :]
    return parent, chain


def _usable_message_id(value: str | None) -> str | None:
    text = clean_header(value, limit=998)
    return text if text.isascii() and MESSAGE_ID.fullmatch(text) else None


def threading_headers(
    parent: str | None, references: list[str], message_id: str, now: datetime
) -> list[tuple[str, str]]:
    """In-Reply-To (when there is a parent), References (when any) and Thread-Index."""
    headers = [("In-Reply-To", parent)] if parent else []
    if references:
        headers.append(("References", " ".join(references)))
    root = references[0] if references else message_id
    headers.append(("Thread-Index", thread_index(root, now)))
    return headers


def thread_index(root_message_id: str, now: datetime) -> str:
    """An Outlook Thread-Index header block (MS-OXOMSG 2.2.1.3), base64 of 22 bytes.

    Byte 0 is the reserved 0x01; bytes 1-5 are the top 40 bits (below the top byte) of `now`
    as a FILETIME (100 ns since 1601, big-endian); bytes 6-21 are a GUID that Outlook turns into
    the conversation id. The GUID is uuid5(NAMESPACE_URL, "mid:<id>") of the thread's first
    Message-ID (RFC 2392 "mid:" URL, without angle brackets), Data1-3 big-endian as the spec
    asks: every message we send in one thread lands in the same Outlook conversation.
    """
    filetime = (aware(now) - _FILETIME_EPOCH) // timedelta(microseconds=1) * 10
    header = bytes([1]) + ((filetime >> 24) & 0xFF_FFFF_FFFF).to_bytes(5, "big")
    guid = uuid.uuid5(uuid.NAMESPACE_URL, "mid:" + root_message_id.strip().strip("<>"))
    return base64.b64encode(header + guid.bytes).decode("ascii")
