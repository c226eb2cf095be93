"""An agent's new text out of a reply: quoted history, attributions, header blocks and signatures
cut, with a verdict on whether it is safe to publish. Pure: no I/O, never raises on odd input.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mailrelay.core.reply_marker import REPLY_MARKER

from .guard import (
    bare_header_block_left,
    dated_name_header_left,
    named_dated_heading_left,
    private_left,
    raw_header_lines_left,
    shaped_attribution_left,
    ticket_field_left,
)
from .html import html_reply, text_of_html_reply
from .lines import (
    QUOTE,
    SUPERCITE,
    VERB,
    Kind,
    attribution_end,
    classify,
    fold,
    folded_lines,
    is_app_sign_off,
    is_attribution,
    is_device_line,
    is_device_sign_off,
    is_separator,
    normalize,
    starts_header_block,
)
from .shapes import EMAIL, is_shaped_attribution
from .signature import signature_block_start, signature_only, team_line_start

__all__ = ["Extraction", "extract", "text_of_html_reply"]


@dataclass(frozen=True)
class Extraction:
    """The agent's new text and whether it may reach a customer."""

    text: str  # the agent's new text, trimmed, signature removed, paragraphs kept
    ok: bool  # True = safe to publish/send
    reason: str | None  # why not ok: "empty", "attribution left", "customer address left", ...
    cut_at: str | None  # which rule cut first: "marker", "known_text", "attribution", ...


# What we control: the marker line of every ticket (also reflowed) and its last line.
_MARKER_WORDS: Final = REPLY_MARKER.strip("#- ").casefold()  # "please type your reply above …"
_MARKER: Final = re.compile(
    r"(?:#\s?#\s?-\s?)?" + r"\s?".join(re.escape(word) for word in _MARKER_WORDS.split())
)
_KEY_MARKER: Final = re.compile(r"\[mr:", re.IGNORECASE)
_HIDDEN_KEY: Final = re.compile(r"\bmr:[a-z0-9]{12,}\b")  # the text of our hidden key element
_REPLY_ADDRESS: Final = re.compile(r"\breply\+[^\s@<>\"]{0,200}@", re.IGNORECASE)
_SHORTCODE: Final = re.compile(r"^(?::[\w+-]+:\s*)+$")
_LETTER: Final = re.compile(r"[^\W\d_]")
_DATED_OR_ADDRESSED: Final = re.compile(r"\d|@")
# One token without spaces: bracketed, a help desk's letters, a long number; or Salesforce's
# "ref:…:ref" (issue 10 §1: help desks' thread ids after the quoted history).
_TRACKING_TOKEN: Final = re.compile(
    r"^(?:[\[{<(]#?[A-Za-z]{2,12}[#:\-][\w:#.\-]*\d{5,}[\w:#.\-]*#?[\]}>)]|ref:[\w.]+:ref)$"
)
_HELP_DESK_MARKER: Final = re.compile(r"^\s*##\s?-\s?\S.{4,200}\S\s?-\s?##\s*$")
_KNOWN_RUN: Final = 40  # characters of a text we sent that identify it in a reply


# --------------------------------------------------------------------------- public API


def extract(
    text: str | None,
    html: str | None = None,
    *,
    known_texts: Sequence[str] = (),
    private: Sequence[str] = (),
) -> Extraction:
    """The agent's new text in a reply, cut at the first sign of quoted history.

    text/plain wins when it has content; the HTML part is used only when it has none. Rules in
    order: our marker, a text we sent (`known_texts`), then line by line attributions (by
    verb, or by shape: an address or a date and time before a colon), quote blocks with their
    heading line, header blocks (also label runs in any language), separators and sign-offs,
    then the contact block under the agent's closing. The verdict fails closed: what is left
    is held when it still looks like history, holds a ticket field line, or names a `private`
    string (the customer's address; issue 10 §1).
    """
    cuts: list[str] = []
    source = _choose_source(text, html, cuts)
    lines = normalize(source).split("\n")
    lines = _cut_at_marker(lines, cuts)
    lines = _cut_at_known_text(lines, known_texts, cuts)
    lines = _trim_history(lines, cuts)
    lines = _drop_device_line(lines, cuts)
    lines = _drop_team_line(lines, cuts)
    lines = _cut_signature_block(lines, cuts)
    lines = _drop_tracking_tokens(lines)
    lines = _drop_lone_signature(lines, cuts)
    result = _tidy(lines)
    reason = _refusal(result, private)
    return Extraction(
        text=result, ok=reason is None, reason=reason, cut_at=cuts[0] if cuts else None
    )


def _choose_source(text: str | None, html: str | None, cuts: list[str]) -> str:
    """text/plain when it says anything, else the HTML part as text (its client's quote
    containers already removed: a cut like any other)."""
    if text and text.strip():
        return text
    if html and html.strip():
        reply = html_reply(html)
        if reply.history_removed:
            cuts.append("html_quote")
        return reply.text
    return ""


# --------------------------------------------------------------------------- cuts we control


def _cut_at_marker(lines: list[str], cuts: list[str]) -> list[str]:
    """Everything from our REPLY_MARKER on goes: it opens every ticket, quoted or not."""
    joined, starts = folded_lines(lines)
    match = _MARKER.search(joined)
    if match is None:
        return _cut_at_help_desk_marker(lines, cuts)
    cuts.append("marker")
    index = bisect_right(starts, match.start()) - 1
    head = _text_before_marker(lines[index])
    return [*lines[:index], head] if head else lines[:index]


def _cut_at_help_desk_marker(lines: list[str], cuts: list[str]) -> list[str]:
    """A help desk's own "##- type your reply above this line -##" in any language opens the
    history its mail quotes, as ours does (Zendesk and its kin write it so)."""
    for index, line in enumerate(lines):
        if _HELP_DESK_MARKER.match(line) and not QUOTE.match(line):
            cuts.append("marker")
            return lines[:index]  # on top of a help desk's thread mail too: held, not guessed
    return lines


def _text_before_marker(line: str) -> str:
    """What a reflowing client put on the marker's line before it ("Thanks! ##- Please…")."""
    if QUOTE.match(line):
        return ""
    lowered = line.casefold()
    cut = lowered.find("##")
    if cut < 0:
        cut = lowered.find(_MARKER_WORDS.split()[0])
    return line[:cut].rstrip() if cut > 0 else ""


def _cut_at_known_text(lines: list[str], known_texts: Sequence[str], cuts: list[str]) -> list[str]:
    """Cut before the first run of >= 40 characters of a text we sent (the review in the ticket),
    however the client reflowed it. A run on a `>` line is left to the quote-block rule, which
    drops that block and keeps an answer written below it (bottom-posting, issue 10 §1)."""
    windows = _known_windows(known_texts)
    if not windows:
        return lines
    joined, starts = folded_lines(lines)
    for position in range(len(joined) - _KNOWN_RUN + 1):
        if position and joined[position - 1] != " ":
            continue  # a run starts at a word; every offset of the known text is in `windows`
        if joined[position : position + _KNOWN_RUN] in windows:
            index = bisect_right(starts, position) - 1
            if QUOTE.match(lines[index]):
                continue
            cuts.append("known_text")
            return lines[:index]
    return lines


def _known_windows(known_texts: Sequence[str]) -> set[str]:
    windows: set[str] = set()
    for known in known_texts:
        folded = fold(known or "")
        for start in range(len(folded) - _KNOWN_RUN + 1):
            windows.add(folded[start : start + _KNOWN_RUN])
    return windows


# --------------------------------------------------------------------------- line rules


def _trim_history(lines: list[str], cuts: list[str]) -> list[str]:
    """Walk the classified lines: keep text, drop quote blocks (with the attribution that
    introduces them) and stop at the first line where someone else's message begins."""
    kinds, spans = classify(lines)
    out: list[str] = []
    index = 0
    gap = False  # something was removed here: one blank line stands for it
    while index < len(lines):
        kind = kinds[index]
        if kind in (Kind.TEXT, Kind.EMPTY):
            if gap and kind is Kind.TEXT:
                _end_with_blank(out)
                gap = False
            out.append(lines[index])
            index += 1
        elif kind is Kind.QUOTE:
            cuts.append("quote")
            _drop_heading(out)
            index, gap = _skip_quote_block(kinds, index), True
        elif kind is Kind.ATTRIBUTION:
            cuts.append("attribution")
            after = spans[index] + 1
            following = _next_content(kinds, after)
            if following is not None and kinds[following] is Kind.QUOTE:
                index, gap = following, True  # the quote it introduces goes next
            elif following is not None and kinds[following] is Kind.TEXT and not _has_text(out):
                index = following  # bottom-posted under an unquoted attribution (Discourse)
            else:
                break
        elif _opens_bottom_posting(kinds, index, out):
            cuts.append(str(kind))
            index = _next_content(kinds, index + 1) or index + 1  # the attribution goes next
        else:
            cuts.append("quote" if kind is Kind.SUPERCITE else str(kind))
            break
    return out


def _opens_bottom_posting(kinds: Sequence[Kind], index: int, out: Sequence[str]) -> bool:
    """A banner ("------- Original Message -------") on top of everything, right above an
    attribution or a quote block: the answer is written below the history it quotes."""
    if kinds[index] is not Kind.SEPARATOR or _has_text(out):
        return False
    following = _next_content(kinds, index + 1)
    return following is not None and kinds[following] in (Kind.ATTRIBUTION, Kind.QUOTE)


def _drop_heading(out: list[str]) -> None:
    """The line ending in a colon right above a quote block introduces it, whatever its verb
    or language ("Il 05/03/2025 10:15, Marco ha scritto:", "Anna kirjoitti:"): it goes with
    the block, and so does the line before it when the two are one wrapped paragraph."""
    end = len(out)
    if end and not out[end - 1].strip():
        end -= 1
    if not end or not _is_heading(out[end - 1].strip()):
        return
    heading = out[end - 1].strip()
    if len(heading) > 250 or _SHORTCODE.match(heading) or not _LETTER.search(heading):
        return  # ":+1:" is an answer
    start = end - 1
    above = out[start - 1].strip() if start else ""
    if above and len(above) <= 120 and not above.endswith((".", "!", "?", ":", ";", "。")):
        wrapped = _DATED_OR_ADDRESSED.search(above) or VERB.search(f"{above} {heading}")
        if (start == 1 or not out[start - 2].strip()) and wrapped:
            start -= 1  # a wrapped two-line heading standing alone ("On 3 Nov, Ann" / "wrote:")
    del out[start:]


def _is_heading(line: str) -> bool:
    """Ends in a colon, or names a sender's address or a date and time, as an attribution
    without its colon does ("Le 5 mars 2026 à 10:15, Jean <jean@x> a écrit")."""
    return line.rstrip(" *_").endswith((":", "：")) or is_shaped_attribution(
        f"{line}:", above_history=True
    )


def _drop_device_line(lines: list[str], cuts: list[str]) -> list[str]:
    """The last line naming a device ("… my Galaxy", "… iPhone …") is a mobile sign-off, in
    whatever words the sign-off's language says "sent from"; standing as a paragraph of its own
    it may end in a full stop, and right above cut history it may name an app nobody listed
    ("… Edison Mail")."""
    content = [index for index, line in enumerate(lines) if line.strip()]
    if not content:
        return lines
    last = content[-1]
    if len(content) == 1:  # the whole answer goes only when it is a sign-off: held as empty
        return lines[:last] if is_device_sign_off(lines[last], stop=False) else lines
    alone = not lines[last - 1].strip()  # a paragraph of its own: the sign-off, not a sentence
    above_history = alone and bool(cuts)
    if not (
        is_device_line(lines[last], alone=alone)
        or (alone and is_device_sign_off(lines[last]))
        or (above_history and is_app_sign_off(lines[last]))
    ):
        return lines
    cuts.append("signature")
    return lines[:last]


def _drop_team_line(lines: list[str], cuts: list[str]) -> list[str]:
    """A help desk's team line under the agent's name ("Nina" / "Shop A Support"), when
    history was cut right below it: the footer of the agent's signature, not an answer."""
    start = team_line_start(lines) if cuts else None
    if start is None:
        return lines
    cuts.append("signature")
    return [*lines[:start], *lines[start + 1 :]]  # a P.S. below the team line stays


def _cut_signature_block(lines: list[str], cuts: list[str]) -> list[str]:
    """Title, company, phone and legal lines under the sign-off and name go."""
    start = signature_block_start(lines)
    if start is None:
        return lines
    cuts.append("signature")
    return lines[:start]


def _drop_tracking_tokens(lines: list[str]) -> list[str]:
    """A help desk's thread token standing on its own line ("{#HS:2211948765-90312#}",
    "[#ZD-00412873]", "ref:_00D1x2._5003y4:ref") is for its own mail parser, not the customer."""
    return [line for line in lines if not _TRACKING_TOKEN.match(line.strip())]


def _drop_lone_signature(lines: list[str], cuts: list[str]) -> list[str]:
    """Only the agent's signature above the history that was cut: no answer at all."""
    if not cuts or not signature_only(lines):
        return lines
    cuts.append("signature")
    return []


def _skip_quote_block(kinds: Sequence[Kind], index: int) -> int:
    """Index after the quoted lines starting at `index` (blank lines between them included)."""
    end = index
    while end < len(kinds) and kinds[end] in (Kind.QUOTE, Kind.EMPTY):
        end += 1
    while end > index and kinds[end - 1] is Kind.EMPTY:
        end -= 1
    return end


def _next_content(kinds: Sequence[Kind], index: int) -> int | None:
    while index < len(kinds):
        if kinds[index] is not Kind.EMPTY:
            return index
        index += 1
    return None


def _has_text(lines: Sequence[str]) -> bool:
    return any(line.strip() for line in lines)


def _end_with_blank(out: list[str]) -> None:
    while out and not out[-1].strip():
        out.pop()
    if out:
        out.append("")


# --------------------------------------------------------------------------- result


def _tidy(lines: Sequence[str]) -> str:
    """Trailing spaces and surrounding blank lines gone; the agent's paragraphs as they were."""
    stripped = [line.rstrip() for line in lines]
    while stripped and not stripped[-1]:
        stripped.pop()
    while stripped and not stripped[0]:
        stripped.pop(0)
    return "\n".join(stripped)


def _refusal(text: str, private: Sequence[str] = ()) -> str | None:
    """Why this text must not be published, or None. Fails closed: any trace of quoted history
    holds the reply back for the agent."""
    if not text.strip():
        return "empty"
    if _REPLY_ADDRESS.search(text):
        return "reply address left"
    joined, _ = folded_lines(text.split("\n"))
    if _MARKER.search(joined) or _KEY_MARKER.search(text) or _HIDDEN_KEY.search(text):
        return "marker left"
    lines = text.split("\n")
    if any(QUOTE.match(line) or SUPERCITE.match(line) for line in lines):
        return "quoted line left"
    if _has_attribution(lines) or shaped_attribution_left(lines):
        return "attribution left"
    if named_dated_heading_left(lines):
        return "attribution left"
    if any(starts_header_block(lines, index) for index in range(len(lines))):
        return "header block left"
    if bare_header_block_left(lines):
        return "header block left"
    if raw_header_lines_left(lines):
        return "mail header lines left"
    if dated_name_header_left(lines):
        return "header block left"
    if any(is_separator(line.strip()) for line in lines):
        return "separator left"
    if _sign_off_inside(lines):
        return "sign-off inside the text"
    if private_left(text, private):
        return "customer address left"
    if ticket_field_left(lines):
        return "ticket field left"
    return None


def _sign_off_inside(lines: Sequence[str]) -> bool:
    """A device sign-off standing as a paragraph with text below it: what follows is likely an
    earlier message pasted without any header ("Rfxkdf de pe HUAWEI P60 Pro" in words we do
    not know)."""
    for index in range(1, len(lines) - 1):
        alone = not lines[index - 1].strip() and not lines[index + 1].strip()
        if alone and is_device_sign_off(lines[index], stop=False):  # "… iPhone 15 v modré."
            return True
    return False


def _has_attribution(lines: Sequence[str]) -> bool:
    """Any attribution, also one wrapped over lines, or a "<x@y> wrote" anywhere."""
    for index, line in enumerate(lines):
        if attribution_end(lines, index) is not None:
            return True
        if is_attribution(line.strip(), dated=False):
            return True  # "Ann wrote:" with nothing quoted below: still someone else's words
        if len(line) <= 1000 and VERB.search(line) and EMAIL.search(line):
            return True
    return False
