"""The last guard before publishing (issue 10 §1): what is left after the cuts must not still
hold someone else's message, the customer's address or the fields of our own ticket."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Final

from .shapes import is_addressed_and_dated, is_shaped_attribution, mentions_date, mentions_time

# The field lines of our ticket (templates/mail/*/ticket.txt.j2, every locale) with a value: a
# quoted ticket whose quote marks a client dropped. These, and the labels read from every
# built-in ticket template on first use (a language added there is guarded without a change
# here); tests/test_reply_text.py checks that every label of every ticket template is covered.
_TICKET_LABELS: Final = (
    "stars|sterne|stjerner|title|titel|reviewer|verfasser|anmelder|email|e-mail|order|ordre|"
    "bestellung|source|herkunft|kilde|delivered|zugestellt|leveret|written|verfasst|skrevet|"
    "language|sprache|sprog|public page|öffentliche seite|offentlig side|this review|"
    "étoiles|titre|auteur|commande|origine|livraison|rédigé le|langue|page publique|cet avis|"
    "estrellas|título|autor|correo|pedido|origen|entrega|fecha|idioma|página pública|"
    "esta opinión|"
    "stelle|titolo|autore|ordine|consegna|scritta il|lingua|pagina pubblica|"
    "questa recensione|"
    "gwiazdki|tytuł|zamówienie|źródło|dostarczono|napisano|język|strona publiczna|ta opinia|"
    "diese bewertung|denne anmeldelse|e-mail-status|mailstatus|mail"
)
_TICKET_TEMPLATES: Final = Path(__file__).parents[1] / "templates" / "mail"
_SPACE: Final = re.compile(r"\s+")


@cache
def _ticket_field() -> re.Pattern[str]:
    """A field line: one of _TICKET_LABELS or a label of a built-in ticket.txt.j2, a colon, a
    value."""
    labels = set(_TICKET_LABELS.split("|"))
    for template in _TICKET_TEMPLATES.glob("*/ticket.txt.j2"):
        for line in template.read_text(encoding="utf-8").splitlines():
            label, colon, value = line.partition(":")
            if colon and "{{" in value and label and not label.startswith(("{", " ", "[")):
                labels.add(label.strip().casefold())
    ordered = sorted(labels, key=lambda label: (-len(label), label))  # longest first
    alternation = "|".join(re.escape(label) for label in ordered)
    return re.compile(rf"^\s*[*_]*(?P<label>{alternation})[*_]*\s*:(?P<gap>\s*)\S",
                      re.IGNORECASE)


def ticket_field_left(lines: Sequence[str]) -> bool:
    """A field line of the ticket: laid out as the ticket does ("Email:       ann@…"), or two
    different field labels ("Order: 10042" alone may well be the agent's own words)."""
    labels: set[str] = set()
    for line in lines:
        match = _ticket_field().match(line) if len(line) <= 1000 else None
        if match is None:
            continue
        if len(match.group("gap")) >= 2:
            return True
        labels.add(match.group("label").casefold())
    return len(labels) >= 2


def private_left(text: str, private: Sequence[str]) -> bool:
    """One of the `private` strings (the customer's address), in any case, also when a client
    wrapped it over two lines."""
    folded = text.casefold()
    squeezed = _SPACE.sub("", folded)
    for value in private:
        needle = _SPACE.sub("", (value or "").casefold())
        if len(needle) >= 3 and (needle in folded or needle in squeezed):
            return True
    return False


def shaped_attribution_left(lines: Sequence[str]) -> bool:
    """A line, or two lines joined (a wrapped one), shaped like an attribution in any language:
    an address, or a date and a time, before a final colon."""
    for index, line in enumerate(lines):
        if is_shaped_attribution(line, above_history=True, strict=False):
            return True
        if is_addressed_and_dated(line):
            return True  # "Jane <jane@x> wrote on 05.03.2026 10:15" without its colon
        if index + 1 < len(lines) and lines[index + 1].strip() and line.strip():
            joined = f"{line.strip()} {lines[index + 1].strip()}"
            if is_shaped_attribution(joined, above_history=True, strict=False):
                return True
    return False


_ENDS_SENTENCE: Final = (".", "!", "?", "。", "！", "？", ":", "：", ",", ";")
_MAX_SIGN_OFF_WORDS: Final = 6


def bare_header_block_left(lines: Sequence[str]) -> bool:
    """A header block whose labels we cannot read, with or without colons, as a pasted message
    leaves it below the agent's closing ("Feladó" / "Nagy Péter" / "Dátum" / "2026. 11. 02.
    21:14", or "Xxx Ann Lee" / "Yyy 11 Nov 2025, 14:02" / "Zzz Candle arrived broken"): a
    paragraph of three to eight short lines without sentence marks, one dated and timed, after
    the message and a paragraph of a few short words (a closing, a name or a banner), and
    before more text. An agent's "Abholung: 5.11. 10:00" list under the greeting is none."""
    paragraphs = _paragraphs(lines)
    for position in range(2, len(paragraphs) - 1):
        if not (_is_bare_header(paragraphs[position]) and _is_short(paragraphs[position - 1])):
            continue
        message = [line for block in paragraphs[: position - 1] for line in block]
        if len(message) >= 2 or any(len(line) > 40 for line in message):
            return True  # below the message, not under the greeting
    return False


# "8 Nov 2026", "2026-11-08", "08.11.26": a date with its year, as attributions write it.
_YEAR_DATE: Final = re.compile(r"(?<!\d)(?:(?:19|20)\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4})(?!\d)")
# Two capitalised words in a row, after the line's first word: a person's name ("Budi Santoso").
_NAME: Final = re.compile(r"(?<=\S)\s+[A-ZÀ-ÞĀ-ŽА-ЯΑ-Ω][^\W\d_]+\s+[A-ZÀ-ÞĀ-ŽА-ЯΑ-Ω][^\W\d_]+")
_MAX_HEADING_WORDS: Final = 14


def named_dated_heading_left(lines: Sequence[str]) -> bool:
    """A short line with a date and its year and a person's name that ends in a colon: an
    attribution whose verb we do not know ("Pada 8 Nov 2026, Budi Santoso menulis:"), with
    no time and no address to read it by, above earlier text that lost its quote marks."""
    for line in lines:
        text = line.strip().rstrip("*_ ")
        if not text.endswith((":", "：")) or len(text.split()) > _MAX_HEADING_WORDS:
            continue
        if _YEAR_DATE.search(text) and _NAME.search(text):
            return True
    return False


def _paragraphs(lines: Sequence[str]) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            groups[-1].append(line.strip())
        elif groups[-1]:
            groups.append([])
    return [group for group in groups if group]


def _is_bare_header(block: Sequence[str]) -> bool:
    if not 3 <= len(block) <= 8:
        return False
    if any(len(line) > 80 or line.endswith(_ENDS_SENTENCE) for line in block):
        return False  # sentences
    return any(mentions_date(line) and mentions_time(line) for line in block)


def _is_short(block: Sequence[str]) -> bool:
    """A closing and name, or a banner: one or two lines of a few words, no list's heading."""
    return len(block) <= 2 and all(
        len(line.split()) <= _MAX_SIGN_OFF_WORDS and not line.endswith((":", "："))
        for line in block
    )


# A mail header field as a message's head carries it ("Content-Type: text/plain; …",
# "Message-ID: <…>", "X-Mailer: …"): a hyphenated field name of ASCII words (RFC 5322 2.2).
_RAW_HEADER: Final = re.compile(r"^(?:[A-Za-z][A-Za-z0-9]*-)+[A-Za-z0-9]+:[ \t]*\S")
_MIN_RAW_HEADERS: Final = 2


def raw_header_lines_left(lines: Sequence[str]) -> bool:
    """Two or more mail header fields in the text: a mangled or pasted message whose head
    (MIME-Version, Content-Type, Message-ID, In-Reply-To, X-…) landed in its body. No answer
    a customer should read; an agent's "Tracking-Nr: 123" alone is no reason to hold."""
    return sum(1 for line in lines if _RAW_HEADER.match(line)) >= _MIN_RAW_HEADERS


_MAX_NAME_WORDS: Final = 6
_MAX_STAMP_WORDS: Final = 8


def dated_name_header_left(lines: Sequence[str]) -> bool:
    """A help desk's or web mail's thread without quote marks: each earlier message opens with
    a paragraph of two lines, the writer's name and the time it was written ("Tom Bradley" /
    "Nov 28, 2026, 21:40 GMT+0"), in any language. Such a pair anywhere in the text means an
    earlier message may follow that no other rule saw: hold rather than publish it."""
    for block in _paragraphs(lines):
        if len(block) != 2:
            continue
        name, stamp = block
        if (len(name.split()) <= _MAX_NAME_WORDS and not name.endswith(_ENDS_SENTENCE)
                and not mentions_time(name) and len(stamp.split()) <= _MAX_STAMP_WORDS
                and mentions_date(stamp) and mentions_time(stamp)):
            return True
    return False
