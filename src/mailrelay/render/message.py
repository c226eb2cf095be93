"""A message from its headers and bodies, sealed as exact bytes: MIME structure and the final
check that the header block is exactly what was set. Knows no mail kind and no template.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from mailrelay.render.headers import POLICY

__all__ = ["RenderedMail", "compose", "rendered", "seal"]


@dataclass(frozen=True)
class RenderedMail:
    """One outgoing message, complete: sent byte-identically however often it is retried."""

    message_id: str  # "<...@relay-domain>", with angle brackets
    to: str  # bare recipient address (envelope)
    subject: str
    raw: bytes  # the complete RFC 5322 message, CRLF line endings


def compose(
    head: Iterable[tuple[str, Any]],
    text: str,
    html: str,
    tail: Iterable[tuple[str, str]],
) -> EmailMessage:
    """A message of `head` headers, MIME-Version, the body, then the `tail` headers.

    The body comes before the tail: the email package moves every Content-* header set before
    it into the first part, and Content-Language belongs to the whole message.
    """
    msg = EmailMessage(policy=POLICY)
    for name, value in head:
        msg[name] = value
    msg["MIME-Version"] = "1.0"
    _attach_body(msg, text, html)
    for name, value in tail:
        msg[name] = value
    return msg


def rendered(msg: EmailMessage, message_id: str, to: str) -> RenderedMail:
    """The sealed message, its subject as the header says it."""
    return RenderedMail(message_id=message_id, to=to, subject=str(msg["Subject"]), raw=seal(msg))


def seal(msg: EmailMessage) -> bytes:
    """The message as sent (CRLF), refused unless its header block is exactly what was set."""
    raw = msg.as_bytes(policy=POLICY)
    _verify(raw, [key.lower() for key in msg.keys()])
    return raw


def _attach_body(msg: EmailMessage, text: str, html: str) -> None:
    """text/plain, or multipart/alternative of text/plain and text/html; utf-8, quoted-printable
    (7-bit clean, so no hop needs 8BITMIME, and still readable in the raw source)."""
    if not html:
        msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
        return
    msg.make_alternative()
    for content, subtype in ((text, "plain"), (html, "html")):
        part = EmailMessage(policy=POLICY)
        part.set_content(content, subtype=subtype, charset="utf-8", cte="quoted-printable")
        del part["MIME-Version"]  # set_content adds it; it belongs to the top level only
        msg.attach(part)


def _verify(raw: bytes, expected: list[str]) -> None:
    """Refuse to hand out a message whose header block is not exactly the headers we set.

    Defence in depth for CVE-2024-6923: whatever slipped through would show up as an extra
    header line here, or as a bare CR or LF.
    """
    if b"\0" in raw or b"\r" in raw.replace(b"\r\n", b"") or b"\n" in raw.replace(b"\r\n", b""):
        raise ValueError("rendered message has a NUL or a bare CR/LF")
    parsed = BytesHeaderParser(policy=compat32).parsebytes(raw)
    found = [key.lower() for key in parsed.keys()]
    if found != expected or parsed.defects:
        raise ValueError(f"rendered headers {found} differ from those set {expected}")
