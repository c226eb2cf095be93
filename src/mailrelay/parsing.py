"""Read a shipping-notification email into a ShipmentNotice (customer, reference, block data).

Pure: bytes in, values out; no I/O, and nothing here raises on malformed mail.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import codecs
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses
from html import unescape
from typing import Any, Final

import html2text

from mailrelay.core.models import (
    AgentReply,
    DeliveryReport,
    Product,
    RecipientStatus,
    ShipmentNotice,
)

__all__ = [
    "find_reference",
    "html_to_text",
    "normalize_address",
    "parse_dsn",
    "parse_reply",
    "parse_trigger",
]

# Junk mail can carry thousands of defects; the notice only needs enough to explain itself.
_MAX_DEFECTS = 30
_MAX_DEFECT_LEN = 160
# Nested message/rfc822 parts are walked; a malicious nesting depth is not.
_MAX_DEPTH = 20
_MAX_REFERENCE_LEN = 200
#: A preferredSendTime after this year is a template error, not a plan.
_LAST_SEND_YEAR = 2999

# C0/C1 controls, line/paragraph separators and bidi overrides: none belongs in a name, subject or
# reference that ends up in a header or a web page (header injection, spoofed display names).
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_SPACES_RE = re.compile(r"\s+")
#: Control characters a reply's text never means (NUL, BEL, ESC, C1...): tab and line breaks stay.
_BODY_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")

# addr-spec checks: deliberately simpler than RFC 5322, stricter than "contains @".
_LOCAL_RE = re.compile(r"[^\s<>()\[\]\\,;:\"@]+")
_DOMAIN_LABEL_RE = re.compile(r"[^\W_](?:[\w-]*[^\W_])?")
_LOOSE_ADDRESS_RE = re.compile(r"[^\s<>()\[\]\\,;:\"@']+@[^\s<>()\[\]\\,;:\"@']+")

# The structured block; the type match is case-insensitive and the quotes optional, because shops
# paste it into template editors that rewrite attributes.
_BLOCK_RE = re.compile(
    r"<script\b[^>]*?(?<![\w-])type\s*=\s*(?P<q>[\"']?)\s*application/json\+"
    r"(?P<kind>mailrelay|trustpilot)(?![\w+.-])\s*(?P=q)[^>]*>(?P<body>.*?)</script\s*>",
    re.IGNORECASE | re.DOTALL,
)
_SCRIPT_STYLE_RE = re.compile(
    r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL
)
_TAG_RE = re.compile(r"<[^>]*>")
_LOCALE_RE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")

# Reference rules (SPEC "Inbound mail"). URLs and addresses are blanked first so that path
# segments, tracking ids in links and local parts never look like order numbers.
_URL_RE = re.compile(r"(?:\b(?:https?|ftp)://|\bwww\.|\bmailto:)[^\s<>\"']*", re.IGNORECASE)
_EMAIL_RE = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
# Literal- or class-led patterns let the regex engine skip ahead fast (a leading lookbehind costs
# a full attempt per character); token and number boundaries are then checked in Python.
_HASH_RE = re.compile(r"#(?<![\w&#]#)([A-Za-z0-9]+(?:-[A-Za-z0-9]+)*)(?!\w)")
# "Ref:A-12" is a reference, "09:15-17" is not: a colon only disqualifies after a digit.
_DASH_RE = re.compile(
    r"(?<![\w@./+#&-])(?<![0-9]:)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+(?![\w@-]|[./:][A-Za-z0-9])"
)
_TOKEN_RE = re.compile(r"[A-Za-z0-9]{7,}")
_NUMBER_RE = re.compile(r"[0-9]{3,}")
_ASCII_DIGITS = frozenset("0123456789")
_ASCII_ALNUM = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HAS_LETTER_RE = re.compile(r"[A-Za-z]")
_HAS_DIGIT_RE = re.compile(r"[0-9]")

# Dash groups that are dates (2026-11-20, 20-11-2026, 2026-11) or well-known non-references.
_ISO_DATE_RE = re.compile(r"(\d{4})-(\d{1,2})(?:-(\d{1,2}))?")
_DMY_DATE_RE = re.compile(r"(\d{1,2})-(\d{1,2})-(\d{4})")
_YEAR_RANGE_RE = re.compile(r"(?:19|20|21)\d\d-(?:19|20|21)\d\d")
_DASH_DENYLIST_RE = re.compile(
    r"(?:utf-\d+|iso-\d+(?:-\d+)*|windows-\d+|cp-\d+|covid-19|ipv-?\d)", re.IGNORECASE
)

# Context that disqualifies a dash group, token or number: what directly precedes it names a
# tracking number, phone or tax id, or a currency; what follows is a unit or a currency.
_LABEL_BEFORE_RE = re.compile(
    r"(?:\b(?:track(?:ing)?|trace|sporing(?:snummer|snr)?|sendungs(?:nummer|nr)|"
    r"sendungsverfolgung|paketnummer|suivi|seguimiento|sp[aå]rning|zending(?:snummer)?|colis|"
    r"tel|tlf|phone|telefon|telephone|fax|mobil|mobile|cvr|vat|moms|ust(?:-?idnr)?|org|"
    r"kvk|btw|siret|iban|bic|swift|zip|postcode|postnr|plz)\b)"
    r"(?:[\s.:#&()-]|\b(?:no|nr|number|nummer|numero|número|id|code|kode|trace|n°)\b)*$",
    re.IGNORECASE,
)
_CURRENCY_BEFORE_RE = re.compile(
    r"(?:[$€£¥₹]|\b(?:kr|dkk|sek|nok|eur|usd|gbp|chf|pln|isk)\.?)\s*$", re.IGNORECASE
)
_UNIT_AFTER_RE = re.compile(
    r"\s*(?:[$€£¥%‰]|,-|(?:kr|dkk|sek|nok|eur|usd|gbp|chf|pln|isk|g|kg|mg|ml|cl|cm|mm|km|stk|"
    r"pcs)\b)",
    re.IGNORECASE,
)
# A number glued to a separator and another digit is part of a date, time, price or version.
_NUMBER_BEFORE_RE = re.compile(
    r"(?:[0-9][.,:/-]|[/+#]|[A-Za-z0-9]-|\+[0-9]{1,3}\)?[\s.-]*(?:\(0\)\s*)?)$"
)
_NUMBER_AFTER_RE = re.compile(r"[.,:/-][A-Za-z0-9]")
_CONTEXT = 48
_NEAR = 12


def parse_batch(jobs: list[tuple[bytes, re.Pattern[str] | None]]) -> list[ShipmentNotice]:
    """`parse_trigger` over a batch of (raw, order_reference_pattern): what intake's parser
    process runs (top-level and in this module, so the worker needs no other import)."""
    return [parse_trigger(raw, reference_pattern=pattern) for raw, pattern in jobs]


def parse_trigger(
    raw: bytes, *, reference_pattern: re.Pattern[str] | None = None
) -> ShipmentNotice:
    """Read what a trigger email says; never raises, records what it could not read in defects.

    The SMTP listener must accept every shipment (SPEC: nothing accepted is dropped), so a
    broken message still yields a notice, with `customer_email` None when no customer is known.

    Well-formed mail takes a fast path (compat32 parsing, see `_fast_trigger`) that gives the
    same notice as the full modern-policy reading at a fraction of the cost; anything unusual,
    and every message with a defect, is read the full way.
    """
    try:
        notice = _fast_trigger(raw, reference_pattern)
    except Exception:  # the fast path only declines; the full reading records what went wrong
        notice = None
    return notice if notice is not None else _slow_trigger(raw, reference_pattern)


def _slow_trigger(raw: bytes, reference_pattern: re.Pattern[str] | None) -> ShipmentNotice:
    """The full reading with the modern email policy: tolerant, thorough, and slow."""
    defects = _Defects()
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
    raw: bytes, reference_pattern: re.Pattern[str] | None, defects: _Defects
) -> ShipmentNotice:
    msg = _parse_message(raw, defects)

    subject = _clean_text(_read_header_text(msg, "Subject", defects))
    message_id = _clean_text(_read_header_text(msg, "Message-ID", defects))
    sender, sender_name = _first_address(msg, "From", defects)
    to_email, to_name = _first_address(msg, "To", defects)
    bodies = _collect_bodies(msg, defects)
    return _notice(
        _Headers(subject, message_id, sender, sender_name, to_email, to_name),
        bodies,
        reference_pattern,
        defects,
    )


@dataclass
class _Headers:
    """What the headers say, cleaned: the part of a notice the two readings find differently."""

    subject: str | None
    message_id: str | None
    sender: str | None
    sender_name: str | None
    to_email: str | None
    to_name: str | None


def _notice(
    headers: _Headers,
    bodies: _Bodies,
    reference_pattern: re.Pattern[str] | None,
    defects: _Defects,
) -> ShipmentNotice:
    """Combine the headers with the body text and any structured block (both readings)."""
    found = _find_block(bodies, defects)
    block = _read_block(found[1], defects) if found else _BlockFields()
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

    return ShipmentNotice(
        message_id=headers.message_id,
        sender=headers.sender,
        subject=headers.subject,
        customer_email=customer_email,
        customer_name=customer_name,
        reference=reference,
        reference_rule=rule,
        locale=block.locale,
        send_at=block.send_at,
        sender_name=block.sender_name if block.sender_name is not None else headers.sender_name,
        reply_to=block.reply_to,
        tags=block.tags,
        products=block.products,
        source=f"block:{found[0]}" if found else "headers",
        defects=defects.as_tuple(),
    )


def find_reference(
    subject: str | None,
    body: str | None,
    reference_pattern: re.Pattern[str] | None = None,
) -> tuple[str | None, str | None]:
    """Return (reference, rule) from the subject, else the body; (None, None) when none is found.

    A shop's pattern replaces the standard rules entirely (SPEC), so a shop whose references look
    like nothing standard is not second-guessed by them.
    """
    for where, text in (("subject", subject), ("body", body)):
        if not text:
            continue
        if reference_pattern is not None:
            value = _search_pattern(reference_pattern, text)
            if value is not None:
                return value, f"pattern:{where}"
            continue
        found = _search_standard(text)
        if found is not None:
            return found[0], f"{found[1]}:{where}"
    return None, None


def html_to_text(html: str) -> str:
    """Render HTML as plain text for reference search: no wrapping, no images, link text kept.

    Script and style content is removed before html2text sees it, so neither CSS colours nor the
    JSON of a structured block can pass for an order reference.
    """
    cleaned = _SCRIPT_STYLE_RE.sub(" ", html)
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_links = True  # keeps the anchor text, drops the URL
    converter.ignore_emphasis = True
    converter.unicode_snob = True
    try:
        text = converter.handle(cleaned)
    except Exception:  # html2text is lenient, but a pure function must not let it raise
        text = unescape(_TAG_RE.sub(" ", cleaned))
    return text.strip()


def normalize_address(addr: str | None) -> str | None:
    """Return the lowercased addr-spec, or None when it is not a plausible mailbox.

    Lowercasing the local part is technically lossy (RFC 5321 §2.4), but every mailbox provider we
    meet treats it case-insensitively, and dedupe per customer address needs one spelling.
    """
    if addr is None:
        return None
    value = _fix_surrogates(addr).strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    if not value or len(value) > 254 or _CONTROL_RE.search(value) or value.count("@") != 1:
        return None
    local, domain = value.split("@")
    if len(local) > 64 or not _LOCAL_RE.fullmatch(local):
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL_RE.fullmatch(label) for label in labels):
        return None
    return value.lower()


# --- message reading ---------------------------------------------------------------------------


class _Defects:
    """Collects short, deduplicated, human-readable problems (bounded for junk mail)."""

    def __init__(self) -> None:
        self._items: list[str] = []

    def add(self, text: str) -> None:
        line = _clean_text(text) or "unknown defect"
        line = line[:_MAX_DEFECT_LEN]
        if line not in self._items and len(self._items) < _MAX_DEFECTS:
            self._items.append(line)

    def add_exception(self, where: str, exc: BaseException) -> None:
        detail = str(exc)
        self.add(f"{where}: {type(exc).__name__}" + (f": {detail}" if detail else ""))

    def add_all(self, where: str, found: Any) -> None:
        """Record the parser's own defect objects (a list on messages and header objects)."""
        try:
            for defect in found or ():
                name = type(defect).__name__
                detail = str(defect)
                self.add(f"{where}: {name}" + (f": {detail}" if detail and detail != name else ""))
        except Exception as exc:  # a defect list that cannot be read is itself a defect
            self.add_exception(where, exc)

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self._items)


def _parse_message(raw: bytes, defects: _Defects) -> Message:
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


def _read_header_text(msg: Message, name: str, defects: _Defects) -> str | None:
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
        # modern policy; the compat reading keeps the bytes, and _decode_bytes guesses the charset.
        raw = _raw_header(msg, name)
        return text if raw is None or not _SURROGATE_RE.search(raw) else _decode_compat(raw)
    except Exception as exc:
        defects.add_exception(f"header {name}", exc)
    raw = _raw_header(msg, name)
    return None if raw is None else _decode_compat(raw)


def _raw_header(msg: Message, name: str) -> str | None:
    """The header exactly as received (first occurrence), bypassing the header registry."""
    try:
        for key, value in msg.raw_items():
            if key.lower() == name.lower():
                return str(value)
    except Exception:  # the raw list is the last resort; there is nothing left to try
        return None
    return None


def _decode_compat(raw: str) -> str:
    """RFC 2047 decoding the compat32 way, which tolerates what the modern parser rejects."""
    try:
        return str(make_header(decode_header(raw)))
    except Exception:
        return _fix_surrogates(raw)


def _first_address(msg: Message, name: str, defects: _Defects) -> tuple[str | None, str | None]:
    """First valid (address, display name) of an address header, trying ever looser readings."""
    for display, spec in _read_addresses(msg, name, defects):
        address = normalize_address(spec)
        if address is not None:
            return address, _clean_name(display, address) or _read_comment_name(msg, name, address)
    raw = _raw_header(msg, name)
    if raw:
        # "To: Jürgen jurgen@example.de" and similar: the intent is clear even if the syntax is not.
        for candidate in _LOOSE_ADDRESS_RE.findall(_decode_compat(raw)):
            address = normalize_address(candidate.strip(".'"))
            if address is not None:
                defects.add(f"{name}: address recovered from malformed header")
                return address, None
    return None, None


def _read_comment_name(msg: Message, name: str, address: str) -> str | None:
    """RFC 822 style "ann@example.com (Ann Lee)": the modern parser drops comments, compat keeps."""
    raw = _raw_header(msg, name)
    if not raw or "(" not in raw:
        return None
    try:
        for display, spec in getaddresses([raw]):
            if normalize_address(spec) == address:
                return _clean_name(_decode_compat(display), address)
    except Exception:  # only a nicety; the address is already known
        return None
    return None


def _read_addresses(msg: Message, name: str, defects: _Defects) -> list[tuple[str, str]]:
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
    raw = _raw_header(msg, name)
    if raw is None:
        return []
    try:
        return [(_decode_compat(display), spec) for display, spec in getaddresses([raw])]
    except Exception as exc:
        defects.add_exception(f"header {name}", exc)
        return []


def _clean_name(display: str | None, address: str | None = None) -> str | None:
    """A display name fit to greet someone with, or None (empty, quoted noise, or an address)."""
    name = _clean_text(display)
    if name is None:
        return None
    name = name.strip("\"' \t").strip()
    if not name or "@" in name or (address is not None and name.lower() == address):
        return None
    return name


def _clean_text(value: str | None) -> str | None:
    """One line of text without control characters; None when nothing is left."""
    if value is None:
        return None
    text = _CONTROL_RE.sub(" ", _fix_surrogates(value))
    text = _SPACES_RE.sub(" ", text).strip()
    return text or None


def _fix_surrogates(value: str) -> str:
    """Turn surrogate-escaped raw bytes (8-bit headers) back into text."""
    if not _SURROGATE_RE.search(value):
        return value
    try:
        return _decode_bytes(value.encode("utf-8", "surrogateescape"), None)
    except UnicodeError:  # lone surrogates that are not escaped bytes (e.g. from JSON "\ud800")
        return _SURROGATE_RE.sub("\ufffd", value)


# Charset labels mail clients send that Python's codec registry does not know, or knows as a
# narrower table than the clients really use (WHATWG Encoding's label table is the model):
# Hebrew and Arabic "logical/explicit" ISO labels (RFC 1556), Outlook's ks_c_5601-1987 and
# euc-kr (cp949 text), gb2312 (gbk/gb18030 text), tis-620 (windows-874 text), x- spellings.
_CHARSET_ALIASES: Final = {
    "iso-8859-6-i": "iso8859-6", "iso-8859-6-e": "iso8859-6",
    "iso-8859-8-i": "iso8859-8", "iso-8859-8-e": "iso8859-8", "logical": "iso8859-8",
    "visual": "iso8859-8", "ks_c_5601-1987": "cp949", "ks_c_5601-1989": "cp949",
    "euc-kr": "cp949", "x-windows-949": "cp949", "gb2312": "gb18030", "gbk": "gb18030",
    "x-gbk": "gb18030", "tis-620": "cp874", "windows-874": "cp874", "iso-8859-11": "cp874",
    "x-sjis": "shift_jis", "shift-jis": "shift_jis", "x-mac-roman": "mac-roman",
    "macintosh": "mac-roman", "x-user-defined": "latin-1", "x-mac-cyrillic": "mac-cyrillic",
    "x-cp1250": "cp1250", "x-cp1251": "cp1251",
}


def _codec(charset: str) -> str | None:
    """Python's codec name for a charset label as mail clients write it, or None if unknown."""
    label = charset.strip().strip("\"'").lower()
    alias = _CHARSET_ALIASES.get(label)
    try:
        return codecs.lookup(alias or label).name
    except (LookupError, ValueError):
        return None


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, else utf-8, else windows-1252, else latin-1 (total).

    Declared iso-8859-1 is read as windows-1252 first, as browsers do (WHATWG Encoding): mailers
    label cp1252 text (curly quotes, €) as latin-1 all the time.
    """
    encodings: list[str] = []
    codec = _codec(charset) if charset else None
    if codec == "iso8859-1":
        encodings.append("cp1252")
    if codec:
        encodings.append(codec)
    encodings += ["utf-8", "cp1252"]
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except (UnicodeError, LookupError):
            continue
        return text.removeprefix("\ufeff")
    return data.decode("latin-1")


# --- bodies and the structured block -----------------------------------------------------------


@dataclass
class _Bodies:
    """Decoded text parts; the plain-text rendering of HTML is made only when asked for."""

    plain: list[str]
    html: list[str]
    other: list[str]

    def text(self) -> str:
        """Prefer text/plain; HTML only when there is no non-blank plain part (SPEC)."""
        plain = [part for part in self.plain if part.strip()]
        if plain:
            return "\n\n".join(plain)
        if self.html:
            return "\n\n".join(html_to_text(part) for part in self.html)
        return "\n\n".join(self.other)


def _collect_bodies(msg: Message, defects: _Defects) -> _Bodies:
    bodies = _Bodies([], [], [])
    for part in _walk(msg, defects, 0):
        ctype, charset = _content_type(part, defects)
        if not ctype.startswith(("text/", "multipart/")):
            continue
        text = _decode_part(part, charset, defects)
        # Decoding adds defects of its own (bad base64, for one), so read the list afterwards.
        defects.add_all("message" if part is msg else "MIME part", part.defects)
        if text is None:
            continue
        if ctype == "text/plain":
            bodies.plain.append(text)
        elif ctype == "text/html":
            bodies.html.append(text)
        else:  # text/enriched, or a multipart whose boundary is missing: better than nothing
            bodies.other.append(text)
    return bodies


def _walk(part: Message, defects: _Defects, depth: int) -> Iterator[Message]:
    """Leaf parts in order, skipping attachments (and everything inside attached messages)."""
    if depth > _MAX_DEPTH:
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


def _is_attachment(part: Message, defects: _Defects) -> bool:
    try:
        return part.get_content_disposition() == "attachment"
    except Exception as exc:
        defects.add_exception("header Content-Disposition", exc)
        return False


def _content_type(part: Message, defects: _Defects) -> tuple[str, str | None]:
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


def _decode_part(part: Message, charset: str | None, defects: _Defects) -> str | None:
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
    if charset and _codec(charset) is None:
        defects.add(f"unknown charset {charset!r}; read as utf-8")
    return _decode_bytes(data, charset)


def _find_block(bodies: _Bodies, defects: _Defects) -> tuple[str, dict[str, Any]] | None:
    """The first structured block that parses as a JSON object; mailrelay's wins a tie."""
    found: list[tuple[str, dict[str, Any]]] = []
    for text in [*bodies.html, *bodies.plain, *bodies.other]:
        for match in _BLOCK_RE.finditer(text):
            kind = match.group("kind").lower()
            data = _load_block_json(match.group("body"), kind, defects)
            if data is not None:
                found.append((kind, data))
    for kind, data in found:
        if kind == "mailrelay":
            return kind, data
    return found[0] if found else None


def _load_block_json(body: str, kind: str, defects: _Defects) -> dict[str, Any] | None:
    """Plain JSON first, then HTML-unescaped (WYSIWYG editors turn quotes into &quot;)."""
    text = body.strip()
    for wrapper in (("<!--", "-->"), ("<![CDATA[", "]]>")):
        if text.startswith(wrapper[0]) and text.endswith(wrapper[1]):
            text = text[len(wrapper[0]) : -len(wrapper[1])].strip()
    error: Exception | None = None
    for candidate in (text, unescape(text)):
        try:
            data = json.loads(candidate)
        except (ValueError, RecursionError) as exc:
            error = error or exc
            continue
        if isinstance(data, dict):
            return data
        defects.add(f"block:{kind}: expected a JSON object, got {type(data).__name__}")
        return None
    defects.add(f"block:{kind}: invalid JSON ({type(error).__name__}: {error})")
    return None


@dataclass
class _BlockFields:
    """What a structured block contributed; None means "not given", so headers decide."""

    email_given: bool = False
    email: str | None = None
    name: str | None = None
    reference: str | None = None
    locale: str | None = None
    send_at: datetime | None = None
    sender_name: str | None = None
    reply_to: str | None = None
    tags: tuple[str, ...] = ()
    products: tuple[Product, ...] = ()


def _read_block(data: dict[str, Any], defects: _Defects) -> _BlockFields:
    """Validate each key on its own: one bad key costs that key, not the whole block."""
    fields = _BlockFields()
    email = _block_string(data, "recipientEmail", defects)
    if email is not None:
        # An explicit recipient that is not an address rejects the shipment rather than falling
        # back to To, which in the Trustpilot setup is the shop's own archive mailbox.
        fields.email_given = True
        fields.email = normalize_address(email)
        if fields.email is None:
            defects.add("block: recipientEmail is not a valid address")
    fields.name = _clean_name(_block_string(data, "recipientName", defects))
    fields.reference = _clean_reference(_block_string(data, "referenceId", defects, number=True))
    locale = _block_string(data, "locale", defects)
    if locale is not None:
        if _LOCALE_RE.fullmatch(locale.strip()):
            fields.locale = locale.strip()
        else:
            defects.add("block: locale is not a language tag")
    send_time = _block_string(data, "preferredSendTime", defects)
    if send_time is not None:
        fields.send_at = _parse_send_time(send_time, defects)
    fields.sender_name = _clean_name(_block_string(data, "senderName", defects))
    reply_to = _block_string(data, "replyTo", defects)
    if reply_to is not None:
        fields.reply_to = normalize_address(reply_to)
        if fields.reply_to is None:
            defects.add("block: replyTo is not a valid address")
    fields.tags = _read_tags(data.get("tags"), defects)
    fields.products = _read_products(data.get("products"), defects)
    return fields


def _block_string(
    data: dict[str, Any], key: str, defects: _Defects, *, number: bool = False
) -> str | None:
    """A non-empty string value; null and "" count as absent (unfilled template variables)."""
    value = data.get(key)
    if value is None:
        return None
    if number and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if number and isinstance(value, float) and value.is_integer():
        return str(int(value))
    if not isinstance(value, str):
        defects.add(f"block: {key} should be a string, got {type(value).__name__}")
        return None
    return value if value.strip() else None


def _clean_reference(value: str | None) -> str | None:
    text = _clean_text(value)
    return None if text is None else text[:_MAX_REFERENCE_LEN]


def _parse_send_time(value: str, defects: _Defects) -> datetime | None:
    """ISO 8601 to an aware UTC datetime; a time without offset is taken as UTC."""
    try:
        when = datetime.fromisoformat(value.strip().upper())
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        defects.add(f"block: preferredSendTime is not ISO 8601 ({exc})")
        return None
    if when.year > _LAST_SEND_YEAR:
        # Year 9999 parses, but moving it into a shop's time zone and sending hours overflows
        # and the shipment failed (fuzz suite, issue 10 §6): no real send time is that far off.
        defects.add(f"block: preferredSendTime is implausibly far ahead ({when.year})")
        return None
    return when


def _read_tags(value: Any, defects: _Defects) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        defects.add(f"block: tags should be a list, got {type(value).__name__}")
        return ()
    tags: list[str] = []
    for item in value:
        if not isinstance(item, str):
            defects.add(f"block: tag should be a string, got {type(item).__name__}")
            continue
        tag = _clean_text(item)
        if tag is not None and tag not in tags:
            tags.append(tag)
    return tuple(tags)


_PRODUCT_KEYS = {
    "sku": "sku",
    "gtin": "gtin",
    "name": "name",
    "productUrl": "product_url",
    "imageUrl": "image_url",
    "brand": "brand",
}


def _read_products(value: Any, defects: _Defects) -> tuple[Product, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        defects.add(f"block: products should be a list, got {type(value).__name__}")
        return ()
    products: list[Product] = []
    for item in value:
        if not isinstance(item, dict):
            defects.add(f"block: product should be an object, got {type(item).__name__}")
            continue
        values: dict[str, str | None] = {}
        for key, attr in _PRODUCT_KEYS.items():
            text = _clean_text(_block_string(item, key, defects, number=key in {"sku", "gtin"}))
            if text is not None and attr.endswith("_url") and not _is_web_url(text):
                # Templates put these into href/src; javascript: and data: URLs must not get there.
                defects.add(f"block: product {key} is not an http(s) URL")
                text = None
            values[attr] = text
        if any(v is not None for v in values.values()):
            products.append(Product(**values))
    return tuple(products)


def _is_web_url(text: str) -> bool:
    return text.lower().startswith(("https://", "http://")) and " " not in text


# --- the fast path ------------------------------------------------------------------------------
#
# The modern policy builds a header class on every header access, and the feed parser and
# get_content_type() re-parse Content-Type through it again and again: that was most of ingest's
# CPU. compat32 runs the same feed parser over the same bytes and keeps the raw header values; the
# tree is the same whenever the headers the feed parser consults (Content-Type, and
# Content-Transfer-Encoding of multiparts) read the same under both policies. So the fast path
# builds compat32's tree (with _split_message, a direct splitter for plain MIME, else with the feed
# parser itself) and reads the few headers it needs itself, but only in a strict subset of the
# syntax where its reading provably equals the modern one. Anything outside it raises _Unusual (or
# returns None), and parse_trigger reads the message the full way. The rules:
#
# - no defect at all: no parser defect on any part (attachments included), nothing the full
#   reading would record (unknown charsets, block problems): the fast path only ever returns a
#   notice whose `defects` is empty, so every message with a defect is read the full way;
# - every part's Content-Type, Content-Disposition and Content-Transfer-Encoding is plain:
#   token/token (token for a disposition) with token=token or token="quoted" parameters, no
#   comments, escapes, RFC 2231 names or duplicate names, folded only between parameters, a
#   charset that is a token; the encoding one of 7bit, 8bit, binary, quoted-printable, base64;
#   no message/* part, no multipart/digest, nesting no deeper than _MAX_DEPTH;
# - Subject, Message-ID, From and To are printable ASCII; an encoded word is well-formed (Q with
#   only =XX escapes, B correctly padded, a charset Python decodes the bytes in without error, in
#   From and To no control character once decoded) and stands alone between whitespace, as a
#   whole word (never inside an addr-spec or a quoted string); Message-ID is one
#   <dot-atom@dot-atom>; From and To are lists of mailboxes: a bare dot-atom addr-spec, or
#   <addr-spec> after a phrase of atoms, "quoted strings" (no encoded words) and encoded words,
#   and one of them is an address normalize_address accepts.
#
# tests/test_parsing.py runs both readings over every message it parses, the corpus and generated
# variants, and asserts identical notices whenever the fast path answers.


class _Unusual(Exception):
    """The fast path declines this message: parse_trigger reads it the full way."""


_COMPAT_PARSER = BytesParser(policy=policy.compat32)

_FWS = r"(?:[ \t]|\r?\n[ \t])*"
_MIME_CHARS = r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+"
_PARAM_NAME = r"[!#$%&'+\-.^_`{|}~0-9A-Za-z]+"  # no "*": RFC 2231 parameters go the full way
_QUOTED = r'"[ !#-\[\]-~]*"'  # printable ASCII without '"' and '\', never folded
_MIME_VALUE_RE = re.compile(
    rf"{_FWS}(?P<value>{_MIME_CHARS}(?:/{_MIME_CHARS})?){_FWS}"
    rf"(?P<params>(?:;{_FWS}{_PARAM_NAME}=(?:{_MIME_CHARS}|{_QUOTED}){_FWS})*)"
)
_PARAM_RE = re.compile(rf'({_PARAM_NAME})=(?:({_MIME_CHARS})|"([^"]*)")')
_CHARSET_RE = re.compile(_MIME_CHARS)
_CTE_RE = re.compile(r"7bit|8bit|binary|quoted-printable|base64", re.IGNORECASE)

_PLAIN_HEADER_RE = re.compile(r"[\t\r\n\x20-\x7e]*")
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_ADDR_SPEC = rf"{_DOT_ATOM}@{_DOT_ATOM}"
_WORD = rf"(?:{_ATEXT}+|{_QUOTED})"
_MAILBOX_RE = re.compile(
    rf"[ \t]*(?:(?P<bare>{_ADDR_SPEC})"
    rf"|(?:(?P<phrase>{_WORD}(?:[ \t]+{_WORD})*)[ \t]+)?<(?P<angle>{_ADDR_SPEC})>)[ \t]*"
)
# "undisclosed-recipients:;" (nothing after the ";": the modern parser raises on "a:; ").
_EMPTY_GROUP_RE = re.compile(rf"{_ATEXT}+(?:[ \t]+{_ATEXT}+)*[ \t]*:[ \t]*;")
_PHRASE_WORD_RE = re.compile(rf'{_ATEXT}+|"([^"]*)"')
_MESSAGE_ID_RE = re.compile(rf"[ \t]*<{_DOT_ATOM}@{_DOT_ATOM}>[ \t]*")
_WSP_SPLIT_RE = re.compile(r"([ \t]+)")
_ENCODED_WORD_RE = re.compile(
    r"=\?([A-Za-z0-9_.:+-]+)\?"
    r"(?:[Qq]\?((?:[!-<>@-~]|=[0-9A-Fa-f]{2})+)|[Bb]\?([A-Za-z0-9+/]+={0,2}))\?="
)
_Q_ESCAPE_RE = re.compile(rb"=([0-9A-Fa-f]{2})")
_DECODED_UNSAFE_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")

_Leaf = tuple[Message, str, str | None]


def _fast_trigger(raw: bytes, reference_pattern: re.Pattern[str] | None) -> ShipmentNotice | None:
    """The notice _slow_trigger would give, or None (or _Unusual) when it cannot be sure.

    It answers only for messages the full reading finds no defect in; see the rules above.
    """
    try:
        data = bytes(raw)
    except Exception as exc:
        raise _Unusual("input") from exc
    if not data.strip():
        return None  # "empty message" is a defect
    try:
        msg = _split_message(data) or _COMPAT_PARSER.parsebytes(data)
    except Exception as exc:  # RecursionError on absurd nesting, for one: the full reading says
        raise _Unusual("parser") from exc
    leaves: list[_Leaf] = []
    heads = _fast_parts(msg, 0, True, leaves)

    sender, sender_name = _fast_first_address(heads.get("from"))
    to_email, to_name = _fast_first_address(heads.get("to"))
    subject = _fast_plain(heads.get("subject"))
    message_id = _fast_plain(heads.get("message-id"))
    if message_id is not None and (not _MESSAGE_ID_RE.fullmatch(message_id) or "=?" in message_id):
        raise _Unusual("Message-ID")
    headers = _Headers(
        subject=_clean_text(None if subject is None else _fast_unstructured(subject)),
        message_id=_clean_text(message_id),
        sender=sender,
        sender_name=sender_name,
        to_email=to_email,
        to_name=to_name,
    )

    defects = _Defects()
    bodies = _Bodies([], [], [])
    for part, ctype, charset in leaves:
        if not ctype.startswith(("text/", "multipart/")):
            continue
        text = _decode_part(part, charset, defects)
        if part.defects:  # decoding found some (bad base64, for one)
            raise _Unusual("MIME body")
        if text is None:
            continue
        if ctype == "text/plain":
            bodies.plain.append(text)
        elif ctype == "text/html":
            bodies.html.append(text)
        else:
            bodies.other.append(text)
    if defects.as_tuple():
        return None
    notice = _notice(headers, bodies, reference_pattern, defects)
    return None if notice.defects else notice


def _split_message(data: bytes) -> Message | None:
    """The tree compat32's feed parser builds, for plain MIME; None when it is not sure.

    The feed parser costs most of the fast path: it reads line by line through generators and
    re-checks every boundary on every line. This does the same for the messages the fast path
    can take anyway, with the feed parser's own rules: lines split at CR LF or LF (no lone CR),
    header lines as its headerRE defines them and stored by policy.compat32.header_source_parse,
    the part after the blank line as the payload, a multipart split at its boundary lines (the
    feed parser's boundary regular expression, on whole lines) with the line break before each
    boundary taken off the part before it. It returns None (and the feed parser reads the
    message) for anything the feed parser would record a defect for or treat specially: an
    unterminated header block, a unix From line, a missing or empty boundary, a missing start or
    close boundary, repeated boundary lines, message/* and multipart/digest parts, an encoding
    other than 7bit/8bit/binary on a multipart, nesting deeper than _MAX_DEPTH.
    tests/test_parsing.py compares its trees with the feed parser's.
    """
    text = data.decode("ascii", "surrogateescape")
    if text.count("\r") != text.count("\r\n"):
        return None  # a lone CR ends a line for the feed parser; rare enough to leave to it
    lines = io.StringIO(text, newline="").readlines()
    return _split_part(lines, None, 0, len(lines), 0, False)


_HEADER_START_RE = re.compile(r"[\041-\071\073-\176]+:")  # the feed parser's headerRE


def _split_part(
    lines: list[str],
    dashed: list[int] | None,
    start: int,
    end: int,
    depth: int,
    in_multipart: bool,
) -> Message | None:
    """One part of lines[start:end]; `dashed` lists the lines starting with "--" (made by the
    outermost multipart, for all the parts inside it)."""
    if depth > _MAX_DEPTH:
        return None
    msg = Message()
    index = start
    header: list[str] = []
    while index < end:
        line = lines[index]
        if line[0] in " \t":
            if not header:
                return None  # FirstHeaderLineIsContinuationDefect
            header.append(line)
        elif line[0] in "\r\n":  # the blank line: headers done (CR is always CR LF here)
            index += 1
            break
        elif line.startswith("From ") or not _HEADER_START_RE.match(line):
            return None  # unix From, or MissingHeaderBodySeparatorDefect
        else:
            if header:
                msg.set_raw(*policy.compat32.header_source_parse(header))
            header = [line]
        index += 1
    if header:
        msg.set_raw(*policy.compat32.header_source_parse(header))

    ctype = msg.get_content_type()
    if ctype.startswith("message/") or ctype == "multipart/digest":
        return None
    if not ctype.startswith("multipart/"):
        payload = "".join(lines[index:end])
        if in_multipart:  # RFC 2046: the line break before a boundary belongs to the boundary
            payload = _strip_eol(payload)
        msg.set_payload(payload)
        return msg

    boundary = msg.get_boundary()
    cte = str(msg.get("content-transfer-encoding", "8bit")).lower()
    if not boundary or cte not in ("7bit", "8bit", "binary"):
        return None
    separator = "--" + boundary
    boundary_re = re.compile(
        "(?P<sep>" + re.escape(separator) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    )
    if dashed is None:
        dashed = [at for at in range(start, end) if lines[at].startswith("--")]
    marks: list[tuple[int, bool]] = []  # (line index, is the close boundary)
    for at in dashed[bisect.bisect_left(dashed, index) : bisect.bisect_left(dashed, end)]:
        line = lines[at]
        if line.startswith(separator):
            found = boundary_re.match(line)
            if found:
                marks.append((at, bool(found.group("end"))))
                if found.group("end"):
                    break
    if len(marks) < 2 or marks[0][1] or not marks[-1][1]:
        return None  # Start/CloseBoundaryNotFoundDefect, or no part at all
    for (at, _), (following, _) in zip(marks, marks[1:], strict=False):
        if following == at + 1:
            return None  # the feed parser swallows repeated boundary lines
        part = _split_part(lines, dashed, at + 1, following, depth + 1, True)
        if part is None:
            return None
        msg.attach(part)
    # Preamble and epilogue as the feed parser keeps them (nothing here reads them).
    if marks[0][0] > index:
        msg.preamble = _strip_eol("".join(lines[index : marks[0][0]]))
    close = marks[-1][0]
    epilogue = "".join(lines[close + 1 : end])
    if in_multipart:  # the enclosing multipart's boundary takes the last line break, too
        msg.epilogue = _strip_eol(epilogue) if epilogue else None
    else:
        msg.epilogue = epilogue
    return msg


def _strip_eol(text: str) -> str:
    """The feed parser's NLCRE_eol removal: one trailing CR LF, CR or LF."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(("\r", "\n")) else text


def _fast_parts(part: Message, depth: int, collect: bool, leaves: list[_Leaf]) -> dict[str, str]:
    """Check a part and everything inside it; collect the leaves _walk would yield.

    Returns the part's headers (first occurrence of each, by lowercased name).
    """
    if depth > _MAX_DEPTH or part.defects:
        raise _Unusual("structure")
    heads: dict[str, str] = {}
    for name, value in part.raw_items():
        key = name.lower()
        if key not in heads:
            if not isinstance(value, str):
                raise _Unusual("header type")
            heads[key] = value
    ctype, charset = _fast_content_type(heads.get("content-type"))
    cte = heads.get("content-transfer-encoding")
    if cte is not None and not _CTE_RE.fullmatch(cte):
        raise _Unusual("Content-Transfer-Encoding")
    disposition = heads.get("content-disposition")
    if disposition is not None:
        value, _ = _fast_mime_value(disposition)
        if "/" in value:
            raise _Unusual("Content-Disposition")
        if depth and value.lower() == "attachment":
            collect = False  # skipped by _walk, but still checked: the feed parser read it all
    payload = part.get_payload() if part.is_multipart() else None
    if isinstance(payload, list):
        for sub in payload:
            if not isinstance(sub, Message):
                raise _Unusual("structure")
            _fast_parts(sub, depth + 1, collect, leaves)
    elif collect:
        leaves.append((part, ctype, charset))
    return heads


def _fast_content_type(value: str | None) -> tuple[str, str | None]:
    """(type, charset) as _content_type reads them from the modern header object."""
    if value is None:
        return "text/plain", None
    ctype, params = _fast_mime_value(value)
    ctype = ctype.lower()
    if "/" not in ctype or ctype.startswith("message/") or ctype == "multipart/digest":
        raise _Unusual("Content-Type")  # message/* and digests nest messages: the full way
    charset = params.get("charset")
    if charset is None:
        return ctype, None
    if not _CHARSET_RE.fullmatch(charset):
        raise _Unusual("charset")
    return ctype, charset.lower()


def _fast_mime_value(value: str) -> tuple[str, dict[str, str]]:
    """The value and parameters of a strictly plain MIME header (see the rules above)."""
    match = _MIME_VALUE_RE.fullmatch(value)
    if match is None:
        raise _Unusual("MIME header")
    params: dict[str, str] = {}
    for name, token, quoted in _PARAM_RE.findall(match.group("params")):
        key = name.lower()
        if key in params:
            raise _Unusual("duplicate parameter")
        params[key] = token or quoted
    return match.group("value"), params


def _fast_plain(value: str | None) -> str | None:
    """A printable-ASCII header value unfolded as the modern policy does, else _Unusual."""
    if value is None:
        return None
    if not _PLAIN_HEADER_RE.fullmatch(value):
        raise _Unusual("header characters")
    return value.replace("\r", "").replace("\n", "")


def _fast_unstructured(value: str) -> str:
    """Decode encoded words as the modern unstructured parser does (whitespace between two
    encoded words is dropped, all other whitespace kept)."""
    if "=?" not in value:
        return value
    parts = _WSP_SPLIT_RE.split(value)  # word, space, word, ..., word
    out: list[str] = []
    last_encoded = False
    for index in range(0, len(parts), 2):
        word = parts[index]
        encoded = "=?" in word
        if index and not (encoded and last_encoded):
            out.append(parts[index - 1])
        out.append(_fast_encoded_word(word, controls=True) if encoded else word)
        if word:
            last_encoded = encoded
    return "".join(out)


def _fast_encoded_word(word: str, *, controls: bool = False) -> str:
    """One whole, well-formed RFC 2047 encoded word, decoded as email._encoded_words does.

    Decoded control characters are defects in an address (CR and LF even make the modern parser
    raise), but not in unstructured text such as a subject (`controls`): _clean_text blanks them.
    """
    match = _ENCODED_WORD_RE.fullmatch(word)
    if match is None:
        raise _Unusual("encoded word")
    charset, q_text, b_text = match.groups()
    try:
        if q_text is not None:
            data = _Q_ESCAPE_RE.sub(
                lambda m: bytes.fromhex(m.group(1).decode("ascii")),
                q_text.encode("ascii").replace(b"_", b" "),
            )
        else:
            if len(b_text) % 4:
                raise _Unusual("encoded word padding")
            data = base64.b64decode(b_text, validate=True)
        text = data.decode(charset)
    except (binascii.Error, UnicodeError, LookupError) as exc:
        raise _Unusual("encoded word") from exc
    if (_SURROGATE_RE if controls else _DECODED_UNSAFE_RE).search(text):
        raise _Unusual("encoded word content")
    return text


def _fast_first_address(value: str | None) -> tuple[str | None, str | None]:
    """What _first_address finds, for a list of plain mailboxes; _Unusual for anything else."""
    text = _fast_plain(value)
    if text is None:
        return None, None
    if _EMPTY_GROUP_RE.fullmatch(text) and "=?" not in text:
        return None, None  # no address, and nothing the looser readings could find
    # The modern parser reports defects anywhere in the list, so all of it must be plain.
    mailboxes: list[tuple[str, str]] = []
    pos = 0
    while True:
        match = _MAILBOX_RE.match(text, pos)
        if match is None:
            raise _Unusual("address")
        spec = match.group("bare") or match.group("angle")
        if "=?" in spec:  # the modern parser decodes encoded words even in a local part
            raise _Unusual("encoded word in address")
        mailboxes.append((_fast_display_name(match.group("phrase")), spec))
        pos = match.end()
        if pos == len(text):
            break
        if text[pos] != ",":
            raise _Unusual("address")
        pos += 1
    for display, spec in mailboxes:
        address = normalize_address(spec)
        if address is not None:
            name = _clean_name(display, address)
            if name is None and "(" in text:
                raise _Unusual("comment")  # _read_comment_name would look at it
            return address, name
    raise _Unusual("no valid address")  # the full reading tries looser ones


def _fast_display_name(phrase: str | None) -> str:
    """The display name the modern address parser gives a phrase (words joined by a space)."""
    if phrase is None:
        return ""
    words: list[str] = []
    for word in _PHRASE_WORD_RE.finditer(phrase):
        quoted = word.group(1)
        if quoted is not None:
            if "=?" in quoted:
                raise _Unusual("encoded word in quoted string")
            words.append(quoted)
        elif "=?" in word.group(0):
            words.append(_fast_encoded_word(word.group(0)))
        else:
            words.append(word.group(0))
    return " ".join(words)


# --- reference rules ---------------------------------------------------------------------------


def _search_pattern(pattern: re.Pattern[str], text: str) -> str | None:
    """First non-empty capture of the shop's pattern (group 1, or the whole match without one)."""
    for match in pattern.finditer(text):
        value = match.group(1) if pattern.groups else match.group(0)
        cleaned = _clean_reference(value)
        if cleaned is not None:
            return cleaned
    return None


def _search_standard(text: str) -> tuple[str, str] | None:
    """Highest-priority rule first; within a rule, the first valid match in reading order."""
    clean = text
    lowered = text.lower()
    if "://" in lowered or "www." in lowered or "mailto:" in lowered:
        clean = _URL_RE.sub(" ", clean)
    if "@" in clean:
        clean = _EMAIL_RE.sub(" ", clean)
    if "#" in clean:
        for match in _HASH_RE.finditer(clean):
            token = match.group(1)
            if len(token) >= 2 and _HAS_DIGIT_RE.search(token):
                return token, "hash"
    if "-" in clean:
        for match in _DASH_RE.finditer(clean):
            if _is_dash_reference(match.group(0)) and not _is_labelled(clean, match.start()):
                return match.group(0), "dash"
    for match in _TOKEN_RE.finditer(clean):
        token, start, end = match.group(0), match.start(), match.end()
        if (
            _HAS_DIGIT_RE.search(token)
            and _HAS_LETTER_RE.search(token)
            and _is_standalone(clean, start, end)
            and not _is_labelled(clean, start)
            and not _UNIT_AFTER_RE.match(clean, end)
        ):
            return token, "token"
    for match in _NUMBER_RE.finditer(clean):
        if _is_number_reference(clean, match):
            return match.group(0), "number"
    return None


def _is_standalone(text: str, start: int, end: int) -> bool:
    """Not glued to a word, address, path, time or dash group on either side."""
    if start:
        before = text[start - 1]
        if before.isalnum() or before in "_@./+#&-":
            return False
        if before == ":" and start >= 2 and text[start - 2] in _ASCII_DIGITS:
            return False
    if end < len(text):
        after = text[end]
        if after.isalnum() or after in "_@-":
            return False
        if after in "./:" and end + 1 < len(text) and text[end + 1] in _ASCII_ALNUM:
            return False
    return True


def _is_dash_reference(token: str) -> bool:
    """Dash groups with a digit that are neither dates nor words ("2-day", "T-shirt")."""
    groups = token.split("-")
    if sum(len(g) for g in groups) < 4 or not _HAS_DIGIT_RE.search(token):
        return False
    # A group of lowercase or mixed-case letters is prose ("2-day", "24-hour", "Wi-Fi-6"), while
    # references are digits or capitals ("224-KLMN-72OM56", "A-2291-XK").
    if any(not _HAS_DIGIT_RE.search(g) and not g.isupper() for g in groups):
        return False
    return not (
        _is_date(token) or _YEAR_RANGE_RE.fullmatch(token) or _DASH_DENYLIST_RE.fullmatch(token)
    )


def _is_date(token: str) -> bool:
    iso = _ISO_DATE_RE.fullmatch(token)
    if iso:
        year, month, day = iso.group(1), iso.group(2), iso.group(3)
        return _is_year(year) and 1 <= int(month) <= 12 and (day is None or 1 <= int(day) <= 31)
    dmy = _DMY_DATE_RE.fullmatch(token)
    if dmy:
        first, second = int(dmy.group(1)), int(dmy.group(2))
        plausible = (1 <= first <= 31 and 1 <= second <= 12) or (
            1 <= first <= 12 and 1 <= second <= 31
        )
        return plausible and _is_year(dmy.group(3))
    return False


def _is_year(digits: str) -> bool:
    return len(digits) == 4 and 1900 <= int(digits) <= 2199


def _is_labelled(text: str, start: int) -> bool:
    """True when the words right before name a tracking number, phone, tax id or postcode."""
    return bool(_LABEL_BEFORE_RE.search(text[max(0, start - _CONTEXT) : start]))


def _is_number_reference(text: str, match: re.Match[str]) -> bool:
    """A bare number that is not a year, date, time, price, quantity, phone or labelled id."""
    digits = match.group(0)
    start, end = match.start(), match.end()
    # A digit run glued to any word character is part of a word ("a12345", "12345kr", "x²").
    if (start and (text[start - 1].isalnum() or text[start - 1] == "_")) or (
        end < len(text) and (text[end].isalnum() or text[end] == "_")
    ):
        return False
    if _is_year(digits) or _NUMBER_AFTER_RE.match(text, end) or _UNIT_AFTER_RE.match(text, end):
        return False
    near = text[max(0, start - _NEAR) : start]  # separators and currencies sit right before
    if _NUMBER_BEFORE_RE.search(near) or _CURRENCY_BEFORE_RE.search(near):
        return False
    return not _is_labelled(text, start)


# --- agent replies ------------------------------------------------------------------------------

# RFC 3834 and the common vendor headers that mark automatic mail.
_AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-auto-response-suppress")
_PRECEDENCE_AUTO = frozenset({"bulk", "junk", "list", "auto_reply"})
# Localized out-of-office and auto-reply subjects (en, de, da, nl, fr, sv, no, es).
_OOO_SUBJECT_RE = re.compile(
    r"^\s*(?:"
    r"out of (?:the )?office|automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|"
    r"away from (?:the )?office|on vacation|"
    r"abwesenheit(?:snotiz)?|automatische antwort|nicht im büro|"
    r"fraværende|fravær|autosvar|automatisk svar|ikke på kontoret|"
    r"afwezig(?:heid)?|automatisch antwoord|niet aanwezig|"
    r"absence|absent|réponse automatique|reponse automatique|"
    r"frånvaro|frånvarande|automatiskt svar|"
    r"fuera de la oficina|respuesta automática|respuesta automatica|ausente"
    r")\b",
    re.IGNORECASE,
)
_ID_RE = re.compile(r"<[^<>\s]+>")
# Who wrote which authentication results: RFC 8601 section 5, RFC 8617.
_TRACE_FIELDS = ("received", "authentication-results", "arc-authentication-results")
_DSN_SENDERS = ("mailer-daemon@", "postmaster@")


def parse_reply(raw: bytes) -> AgentReply:
    """Read an agent's reply; never raises (a broken reply is rejected, never crashes us)."""
    defects = _Defects()
    try:
        return _read_reply(raw, defects)
    except Exception as exc:
        defects.add_exception("parser", exc)
        return AgentReply(None, None, None, None, (), (), None, (), None, None, False,
                          defects.as_tuple())


def _read_reply(raw: bytes, defects: _Defects) -> AgentReply:
    msg = _parse_message(raw, defects)
    from_address = _reply_sender(msg, defects)
    from_name = None
    if from_address is not None:
        first, name = _first_address(msg, "From", _Defects())
        from_name = name if first == from_address else None
    recipients: list[str] = []
    for name in ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To"):
        for _, spec in _read_addresses(msg, name, defects):
            address = normalize_address(spec)
            if address and address not in recipients:
                recipients.append(address)
    threads: list[str] = []
    for name in ("In-Reply-To", "References"):
        value = _fix_surrogates(_raw_header(msg, name) or "")
        for ident in reversed(_ID_RE.findall(value)) if name == "References" else \
                _ID_RE.findall(value):
            if ident not in threads:
                threads.append(ident)
    bodies = _collect_bodies(msg, defects)
    plain = [part for part in bodies.plain if part.strip()]
    subject = _read_header_text(msg, "Subject", defects)
    auth = tuple(v for v in (msg.get_all("Authentication-Results") or []) if v)
    trace = tuple((key.lower(), " ".join(str(value).split())) for key, value in msg.raw_items()
                  if key.lower() in _TRACE_FIELDS)
    ours = any(msg.get(h) for h in ("X-Mailrelay-Shop", "X-Mailrelay-Review"))
    return AgentReply(
        # Raw 8-bit bytes come back surrogate-escaped, which SQLite cannot store (the dedupe
        # key and the thread look-ups are made of these): decode them like other headers.
        message_id=_fix_surrogates(_raw_header(msg, "Message-ID") or "").strip() or None,
        from_address=from_address,
        from_name=from_name,
        subject=subject,
        recipients=tuple(recipients),
        in_reply_to=tuple(threads),
        automatic=_automatic(msg, from_address, subject, defects),
        authentication_results=tuple(" ".join(str(v).split()) for v in auth),
        # An agent's text is published and mailed: control bytes in it (a NUL from a broken
        # client, mangled mail) would reach the page and the customer (fuzz suite, issue 10 §6).
        text=_BODY_CONTROL_RE.sub("", "\n\n".join(plain)) if plain else None,
        html=_BODY_CONTROL_RE.sub("", "\n".join(bodies.html)) if bodies.html else None,
        ours=ours,
        defects=defects.as_tuple(),
        trace=trace,
    )


def _reply_sender(msg: Message, defects: _Defects) -> str | None:
    """The one mailbox of the one From field, read as a mail client shows it, or None.

    Authorisation rests on this address, so there is no guessing: in
    `agent@shop.example (x) <attacker@evil.example>` the address is the angle-addr, whatever
    the display name says; a From with two mailboxes (RFC 5322 allows it with Sender) or two
    From fields names nobody (RFC 7489 6.6.1).
    """
    values = [str(v) for k, v in msg.raw_items() if k.lower() == "from"]
    if len(values) != 1:
        if values:
            defects.add(f"From: {len(values)} fields")
        return None
    # Encoded-words are display text: read the raw field, never the decoded one.
    try:
        angles, commas, rest = _address_parts(values[0])
    except ValueError as exc:
        defects.add(f"From: {exc}")
        return None
    if commas or len(angles) > 1:
        defects.add("From: more than one mailbox")
        return None
    spec = angles[0] if angles else rest
    address = normalize_address(spec.strip())
    if address is None:
        defects.add("From: no valid address")
    return address


def _address_parts(value: str) -> tuple[list[str], int, str]:
    """(angle-addr contents, top-level commas, the text outside comments and quotes) of an
    address header: quoted strings and (nested) comments are skipped as RFC 5322 says.
    ValueError when a quote, comment or angle bracket is left open."""
    angles: list[str] = []
    commas = 0
    plain: list[str] = []
    depth = 0
    quoted = escaped = False
    angle: list[str] | None = None
    for char in value:
        if escaped:
            escaped = False
            if angle is not None:
                angle.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
        elif angle is not None:
            if char == ">":
                angles.append("".join(angle))
                angle = None
            else:
                angle.append(char)
        elif char == '"':
            quoted = True
        elif char == "(":
            depth = 1
        elif char == "<":
            angle = []
        elif char == ",":
            commas += 1
        else:
            plain.append(char)
    if angle is not None or quoted or depth:
        raise ValueError("an unclosed quote, comment or angle bracket")
    text = "".join(plain).strip()
    return angles, commas if text or angles else 0, text


def _automatic(msg: Message, sender: str | None, subject: str | None,
               defects: _Defects) -> str | None:
    """Why this mail was sent by a machine (RFC 3834 section 5), or None for a person."""
    auto = (_raw_header(msg, "Auto-Submitted") or "").strip().lower()
    if auto and not auto.startswith("no"):
        return f"Auto-Submitted: {auto}"
    for name in _AUTO_HEADERS:
        if _raw_header(msg, name) is not None:
            return f"{name} header"
    precedence = (_raw_header(msg, "Precedence") or "").strip().lower()
    if precedence in _PRECEDENCE_AUTO:
        return f"Precedence: {precedence}"
    return_path = _raw_header(msg, "Return-Path")  # the topmost: the delivering server's
    if return_path is not None and return_path.strip().replace(" ", "") in ("<>", ""):
        # RFC 5321 4.5.5: a null reverse-path is a bounce or other automatic message.
        return "null Return-Path"
    ctype, _ = _content_type(msg, defects)
    report = (msg.get_param("report-type") or "") if ctype == "multipart/report" else ""
    if ctype == "multipart/report" or str(report).lower() == "delivery-status":
        return "delivery status notification"
    if sender and sender.startswith(_DSN_SENDERS):
        return f"sent by {sender.partition('@')[0]}"  # the role, never an address
    if subject and _OOO_SUBJECT_RE.search(subject):
        return "out-of-office subject"
    return None


# --- delivery status notifications (RFC 3464) ---------------------------------------------------

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
    found = _ID_RE.search(str(value or ""))
    return found.group(0) if found else None
