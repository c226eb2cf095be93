"""One email read the full way (the modern email policy): the parse itself and its text bodies,
decoded in whatever charset they claim. Records problems in Defects; never raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any

from .decoding import codec, decode_bytes
from .defects import Defects

# Nested message/rfc822 parts are walked; a malicious nesting depth is not.
MAX_DEPTH = 20


def parse_message(raw: bytes, defects: Defects) -> Message:
    """Parse with the modern policy; if even that fails, keep what the headers alone say."""
    try:
        data = bytes(raw)
    except Exception as exc:
        defects.add_exception("input", exc)
        data = b""
    if not data.strip():
        defects.add("empty message")
    try:
        msg: Message = BytesParser(policy=policy.default).parsebytes(data)
    except Exception as exc:  # RecursionError on MIME nested thousands deep, for one
        defects.add_exception("message", exc)
        try:  # the headers alone still name the customer
            msg = BytesParser(policy=policy.default).parsebytes(data, headersonly=True)
        except Exception as exc_headers:
            defects.add_exception("message headers", exc_headers)
            msg = Message()
    defects.add_all("message", msg.defects)
    return msg


@dataclass
class Bodies:
    """Decoded text parts; the plain-text rendering of HTML is made only when asked for."""

    plain: list[str]
    html: list[str]
    other: list[str]
    #: text() once made (the reference and the locale both read it).
    _text: str | None = field(default=None, repr=False, compare=False)

    def add(self, ctype: str, text: str) -> None:
        """File a decoded text part under its content type."""
        self._text = None
        if ctype == "text/plain":
            self.plain.append(text)
        elif ctype == "text/html":
            self.html.append(text)
        else:  # text/enriched, or a multipart whose boundary is missing: better than nothing
            self.other.append(text)

    def text(self) -> str:
        """Prefer text/plain; HTML only when there is no non-blank plain part (SPEC)."""
        if self._text is None:
            self._text = self._make_text()
        return self._text

    def _make_text(self) -> str:
        plain = [part for part in self.plain if part.strip()]
        if plain:
            return "\n\n".join(plain)
        if self.html:
            # Imported here, not at the top: bs4 takes longer to import than all of parsing,
            # and the parser child (services/parser_process) should pay for it only once an
            # HTML-only trigger comes in.
            from . import html_text

            return "\n\n".join(html_text.html_to_text(part) for part in self.html)
        return "\n\n".join(self.other)


def collect_bodies(msg: Message, defects: Defects) -> Bodies:
    bodies = Bodies([], [], [])
    for part in _walk(msg, defects, 0):
        ctype, charset = content_type(part, defects)
        if not ctype.startswith(("text/", "multipart/")):
            continue
        text = decode_part(part, charset, defects)
        # Decoding adds defects of its own (bad base64, for one), so read the list afterwards.
        defects.add_all("message" if part is msg else "MIME part", part.defects)
        if text is not None:
            bodies.add(ctype, text)
    return bodies


def _walk(part: Message, defects: Defects, depth: int) -> Iterator[Message]:
    """Leaf parts in order, skipping attachments (and everything inside attached messages)."""
    if depth > MAX_DEPTH:
        defects.add("MIME nesting too deep; inner parts ignored")
        return
    if depth:
        defects.add_all("MIME part", part.defects)
    try:
        payload = part.get_payload() if part.is_multipart() else None
    except Exception as exc:
        defects.add_exception("MIME structure", exc)
        return
    if not isinstance(payload, list):
        yield part
        return
    for sub in payload:
        if isinstance(sub, Message) and not _is_attachment(sub, defects):
            yield from _walk(sub, defects, depth + 1)


def _is_attachment(part: Message, defects: Defects) -> bool:
    try:
        return part.get_content_disposition() == "attachment"
    except Exception as exc:
        defects.add_exception("header Content-Disposition", exc)
        return False


def content_type(part: Message, defects: Defects) -> tuple[str, str | None]:
    """(type, charset) from one read of Content-Type: the registry re-parses on every access."""
    try:
        header: Any = part.get("content-type")
        if header is None:
            return part.get_default_type(), None
        ctype = str(header).split(";", 1)[0].strip().lower()
        params = getattr(header, "params", None) or {}
        charset = params.get("charset")
    except Exception as exc:
        defects.add_exception("header Content-Type", exc)
        return "text/plain", None
    if ctype.count("/") != 1:  # RFC 2045 §5.2, as email.message does
        ctype = "text/plain"
    return ctype, str(charset).strip().lower() if charset else None


def decode_part(part: Message, charset: str | None, defects: Defects) -> str | None:
    """The part's text in whatever charset it claims (or really uses)."""
    try:
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            raw = part.get_payload()
            if not isinstance(raw, str):
                return None
            data = raw.encode("utf-8", "surrogateescape")
    except Exception as exc:
        defects.add_exception("MIME body", exc)
        return None
    if charset and codec(charset) is None:
        defects.add(f"unknown charset {charset!r}; read as utf-8")
    return decode_bytes(data, charset)
