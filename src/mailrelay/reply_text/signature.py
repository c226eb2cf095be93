"""The signature block under an agent's sign-off and name: title, company, phone, address, legal
footer. The sign-off and the name may stay; what follows them must not reach the customer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from unicodedata import east_asian_width

from .shapes import is_contact_line

_MAX_NAME: Final = 50  # characters of a sign-off or name line
_MAX_BLOCK: Final = 12  # lines of a signature block
_LOOKAHEAD: Final = 4  # lines of the block within which a contact line must come


def signature_block_start(lines: Sequence[str]) -> int | None:
    """Index of the first line of a signature block, or None. The block follows a short name
    line, which follows a short sign-off line after the message: "Kind regards" / "Marcus Webb"
    / "Team Leader" / "ACME Ltd | +44 117 496 0188". Within its first lines the block names a
    phone number, an address or a web site, and it holds no question."""
    content = [index for index, line in enumerate(lines) if line.strip()]
    first = max(2, len(content) - _MAX_BLOCK - 1)  # a block is at most _MAX_BLOCK lines long
    for position in range(first, len(content) - 1):
        name, sign_off = content[position], content[position - 1]
        if not (_is_name(lines[name]) and _is_sign_off(lines[sign_off])):
            continue
        if not any(_width(lines[index].strip()) > 40 for index in content[: position - 1]):
            continue  # the message itself comes first
        block = [lines[index] for index in content[position + 1 :]]
        if _is_block(block):
            return name + 1
    return None


def _width(text: str) -> int:
    """Columns the text takes: wide (CJK) characters count twice, as a line of Japanese says as
    much as one twice its length in Latin letters."""
    return sum(2 if east_asian_width(char) in "WF" else 1 for char in text)


def _is_sign_off(line: str) -> bool:
    """ "Kind regards", "С уважением,", "何卒よろしくお願い申し上げます。": a few words on a line
    of their own, neither a question nor a heading."""
    text = line.strip()
    return (
        0 < _width(text) <= _MAX_NAME
        and len(text.split()) <= 5
        and not text.endswith((".", "?", "？", ":", "：", ";"))
        and not is_contact_line(text)
    )


def _is_name(line: str) -> bool:
    """ "Marcus Webb", "高橋": a few words without any closing punctuation."""
    text = line.strip()
    return (
        0 < _width(text) <= _MAX_NAME
        and len(text.split()) <= 4
        and not text.endswith((".", "!", "?", ":", ";", ",", "。", "！", "？", "：", "，", "、"))
        and not is_contact_line(text)
    )


def _is_block(block: Sequence[str]) -> bool:
    if not block or len(block) > _MAX_BLOCK:
        return False
    if any(line.rstrip().endswith(("?", "？")) for line in block):
        return False
    return any(is_contact_line(line) for line in block[:_LOOKAHEAD])
