"""Bytes and raw header text to clean Python text: charset labels as mail clients write them,
surrogate-escaped 8-bit bytes, one-line text without control characters. Pure; never raises.
"""

from __future__ import annotations

import codecs
import re
from typing import Final

# C0/C1 controls, line/paragraph separators and bidi overrides: none belongs in a name, subject or
# reference that ends up in a header or a web page (header injection, spoofed display names).
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
_SPACES_RE = re.compile(r"\s+")

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


def codec(charset: str) -> str | None:
    """Python's codec name for a charset label as mail clients write it, or None if unknown."""
    label = charset.strip().strip("\"'").lower()
    alias = _CHARSET_ALIASES.get(label)
    try:
        return codecs.lookup(alias or label).name
    except (LookupError, ValueError):
        return None


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, else utf-8, else windows-1252, else latin-1 (total).

    Declared iso-8859-1 is read as windows-1252 first, as browsers do (WHATWG Encoding): mailers
    label cp1252 text (curly quotes, €) as latin-1 all the time.
    """
    encodings: list[str] = []
    name = codec(charset) if charset else None
    if name == "iso8859-1":
        encodings.append("cp1252")
    if name:
        encodings.append(name)
    encodings += ["utf-8", "cp1252"]
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except (UnicodeError, LookupError):
            continue
        return text.removeprefix("\ufeff")
    return data.decode("latin-1")


def fix_surrogates(value: str) -> str:
    """Turn surrogate-escaped raw bytes (8-bit headers) back into text."""
    if not SURROGATE_RE.search(value):
        return value
    try:
        return decode_bytes(value.encode("utf-8", "surrogateescape"), None)
    except UnicodeError:  # lone surrogates that are not escaped bytes (e.g. from JSON "\ud800")
        return SURROGATE_RE.sub("\ufffd", value)


def clean_text(value: str | None) -> str | None:
    """One line of text without control characters; None when nothing is left."""
    if value is None:
        return None
    text = CONTROL_RE.sub(" ", fix_surrogates(value))
    text = _SPACES_RE.sub(" ", text).strip()
    return text or None
