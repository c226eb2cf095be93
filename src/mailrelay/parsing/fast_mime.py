"""The fast path of trigger reading: compat32's tree and a strict header reading that give the
full reading's Headers and Bodies for well-formed mail, and decline (None or Unusual) the rest.
"""

from __future__ import annotations

import base64
import binascii
import re
from email import policy
from email.message import Message
from email.parser import BytesParser

from .addresses import clean_name, normalize_address
from .decoding import SURROGATE_RE, clean_text
from .defects import Defects
from .headers import Headers
from .message import MAX_DEPTH, Bodies, decode_part
from .mime_split import split_message

# The modern policy builds a header class on every header access, and the feed parser and
# get_content_type() re-parse Content-Type through it again and again: that was most of ingest's
# CPU. compat32 runs the same feed parser over the same bytes and keeps the raw header values; the
# tree is the same whenever the headers the feed parser consults (Content-Type, and
# Content-Transfer-Encoding of multiparts) read the same under both policies. So the fast path
# builds compat32's tree (with split_message, a direct splitter for plain MIME, else with the feed
# parser itself) and reads the few headers it needs itself, but only in a strict subset of the
# syntax where its reading provably equals the modern one. Anything outside it raises Unusual (or
# returns None), and parse_trigger reads the message the full way. The rules:
#
# - no defect at all: no parser defect on any part (attachments included), nothing the full
#   reading would record (unknown charsets, block problems): the fast path only ever returns a
#   notice whose `defects` is empty, so every message with a defect is read the full way;
# - every part's Content-Type, Content-Disposition and Content-Transfer-Encoding is plain:
#   token/token (token for a disposition) with token=token or token="quoted" parameters, no
#   comments, escapes, RFC 2231 names or duplicate names, folded only between parameters, a
#   charset that is a token; the encoding one of 7bit, 8bit, binary, quoted-printable, base64;
#   no message/* part, no multipart/digest, nesting no deeper than MAX_DEPTH;
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


class Unusual(Exception):
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

#: A text part to read: (part, content type, charset).
_Leaf = tuple[Message, str, str | None]


def read(raw: bytes) -> tuple[Headers, Bodies] | None:
    """What the full reading finds in headers and bodies, or None (or Unusual) when it cannot be
    sure: it answers only for messages the full reading finds no defect in (the rules above)."""
    try:
        data = bytes(raw)
    except Exception as exc:
        raise Unusual("input") from exc
    if not data.strip():
        return None  # "empty message" is a defect
    try:
        msg = split_message(data) or _COMPAT_PARSER.parsebytes(data)
    except Exception as exc:  # RecursionError on absurd nesting, for one: the full reading says
        raise Unusual("parser") from exc
    leaves: list[_Leaf] = []
    headers = _read_headers(_check_parts(msg, 0, True, leaves))
    bodies = _read_bodies(leaves)
    return None if bodies is None else (headers, bodies)


def _read_headers(heads: dict[str, str]) -> Headers:
    sender, sender_name = _first_address(heads.get("from"))
    to_email, to_name = _first_address(heads.get("to"))
    subject = _plain(heads.get("subject"))
    message_id = _plain(heads.get("message-id"))
    if message_id is not None and (not _MESSAGE_ID_RE.fullmatch(message_id) or "=?" in message_id):
        raise Unusual("Message-ID")
    return Headers(
        subject=clean_text(None if subject is None else _unstructured(subject)),
        message_id=clean_text(message_id),
        sender=sender,
        sender_name=sender_name,
        to_email=to_email,
        to_name=to_name,
        content_language=clean_text(_plain(heads.get("content-language"))),
    )


def _read_bodies(leaves: list[_Leaf]) -> Bodies | None:
    """The text parts, decoded as the full reading decodes them; None at the first defect."""
    defects = Defects()
    bodies = Bodies([], [], [])
    for part, ctype, charset in leaves:
        if not ctype.startswith(("text/", "multipart/")):
            continue
        text = decode_part(part, charset, defects)
        if part.defects:  # decoding found some (bad base64, for one)
            raise Unusual("MIME body")
        if text is not None:
            bodies.add(ctype, text)
    return None if defects.as_tuple() else bodies


def _check_parts(part: Message, depth: int, collect: bool, leaves: list[_Leaf]) -> dict[str, str]:
    """Check a part and everything inside it; collect the leaves the full reading reads.

    Returns the part's headers (first occurrence of each, by lowercased name).
    """
    if depth > MAX_DEPTH or part.defects:
        raise Unusual("structure")
    heads: dict[str, str] = {}
    for name, value in part.raw_items():
        key = name.lower()
        if key not in heads:
            if not isinstance(value, str):
                raise Unusual("header type")
            heads[key] = value
    ctype, charset = _content_type(heads.get("content-type"))
    cte = heads.get("content-transfer-encoding")
    if cte is not None and not _CTE_RE.fullmatch(cte):
        raise Unusual("Content-Transfer-Encoding")
    disposition = heads.get("content-disposition")
    if disposition is not None:
        value, _ = _mime_value(disposition)
        if "/" in value:
            raise Unusual("Content-Disposition")
        if depth and value.lower() == "attachment":
            collect = False  # the full reading skips it, but the feed parser read it all: check
    payload = part.get_payload() if part.is_multipart() else None
    if isinstance(payload, list):
        for sub in payload:
            if not isinstance(sub, Message):
                raise Unusual("structure")
            _check_parts(sub, depth + 1, collect, leaves)
    elif collect:
        leaves.append((part, ctype, charset))
    return heads


def _content_type(value: str | None) -> tuple[str, str | None]:
    """(type, charset) as message.content_type reads them from the modern header object."""
    if value is None:
        return "text/plain", None
    ctype, params = _mime_value(value)
    ctype = ctype.lower()
    if "/" not in ctype or ctype.startswith("message/") or ctype == "multipart/digest":
        raise Unusual("Content-Type")  # message/* and digests nest messages: the full way
    charset = params.get("charset")
    if charset is None:
        return ctype, None
    if not _CHARSET_RE.fullmatch(charset):
        raise Unusual("charset")
    return ctype, charset.lower()


def _mime_value(value: str) -> tuple[str, dict[str, str]]:
    """The value and parameters of a strictly plain MIME header (see the rules above)."""
    match = _MIME_VALUE_RE.fullmatch(value)
    if match is None:
        raise Unusual("MIME header")
    params: dict[str, str] = {}
    for name, token, quoted in _PARAM_RE.findall(match.group("params")):
        key = name.lower()
        if key in params:
            raise Unusual("duplicate parameter")
        params[key] = token or quoted
    return match.group("value"), params


def _plain(value: str | None) -> str | None:
    """A printable-ASCII header value unfolded as the modern policy does, else Unusual."""
    if value is None:
        return None
    if not _PLAIN_HEADER_RE.fullmatch(value):
        raise Unusual("header characters")
    return value.replace("\r", "").replace("\n", "")


def _unstructured(value: str) -> str:
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
        out.append(_encoded_word(word, controls=True) if encoded else word)
        if word:
            last_encoded = encoded
    return "".join(out)


def _encoded_word(word: str, *, controls: bool = False) -> str:
    """One whole, well-formed RFC 2047 encoded word, decoded as email._encoded_words does.

    Decoded control characters are defects in an address (CR and LF even make the modern parser
    raise), but not in unstructured text such as a subject (`controls`): _clean_text blanks them.
    """
    match = _ENCODED_WORD_RE.fullmatch(word)
    if match is None:
        raise Unusual("encoded word")
    charset, q_text, b_text = match.groups()
    try:
        if q_text is not None:
            data = _Q_ESCAPE_RE.sub(
                lambda m: bytes.fromhex(m.group(1).decode("ascii")),
                q_text.encode("ascii").replace(b"_", b" "),
            )
        else:
            if len(b_text) % 4:
                raise Unusual("encoded word padding")
            data = base64.b64decode(b_text, validate=True)
        text = data.decode(charset)
    except (binascii.Error, UnicodeError, LookupError) as exc:
        raise Unusual("encoded word") from exc
    if (SURROGATE_RE if controls else _DECODED_UNSAFE_RE).search(text):
        raise Unusual("encoded word content")
    return text


def _first_address(value: str | None) -> tuple[str | None, str | None]:
    """What headers.first_address finds, for a list of plain mailboxes; else Unusual."""
    text = _plain(value)
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
            raise Unusual("address")
        spec = match.group("bare") or match.group("angle")
        if "=?" in spec:  # the modern parser decodes encoded words even in a local part
            raise Unusual("encoded word in address")
        mailboxes.append((_display_name(match.group("phrase")), spec))
        pos = match.end()
        if pos == len(text):
            break
        if text[pos] != ",":
            raise Unusual("address")
        pos += 1
    for display, spec in mailboxes:
        address = normalize_address(spec)
        if address is not None:
            name = clean_name(display, address)
            if name is None and "(" in text:
                raise Unusual("comment")  # the full reading would read its name
            return address, name
    raise Unusual("no valid address")  # the full reading tries looser ones


def _display_name(phrase: str | None) -> str:
    """The display name the modern address parser gives a phrase (words joined by a space)."""
    if phrase is None:
        return ""
    words: list[str] = []
    for word in _PHRASE_WORD_RE.finditer(phrase):
        quoted = word.group(1)
        if quoted is not None:
            if "=?" in quoted:
                raise Unusual("encoded word in quoted string")
            words.append(quoted)
        elif "=?" in word.group(0):
            words.append(_encoded_word(word.group(0)))
        else:
            words.append(word.group(0))
    return " ".join(words)

