"""An agent's new text out of a reply: quoted history, attributions, header blocks and signatures
cut, with a verdict on whether it is safe to publish. Pure: no I/O, never raises on odd input.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from bs4 import BeautifulSoup, Tag
from bs4.element import CData, Comment, Declaration, Doctype, ProcessingInstruction

from mailrelay.render import REPLY_MARKER

__all__ = ["Extraction", "extract", "html_to_text"]


@dataclass(frozen=True)
class Extraction:
    """The agent's new text and whether it may reach a customer."""

    text: str  # the agent's new text, trimmed, signature removed, paragraphs kept
    ok: bool  # True = safe to publish/send
    reason: str | None  # why not ok: "empty", "reply address left", "marker left", ...
    cut_at: str | None  # which rule cut first: "marker", "known_text", "attribution", ...


# --------------------------------------------------------------------------- vocabulary

# "wrote" in the languages we serve (en, de, da, nl, fr, sv, no, es) and a few more seen in the
# wild (pt, it, pl, ru, uk, fi, cs, zh). Longer forms first so "a écrit" wins over "écrit".
_VERBS: Final = (
    r"wrote|writes|schrieb|geschrieben|skrev|schreef|geschreven|a\s+[ée]crit|"
    r"escribi[óo]|ha\s+escrito|escreveu|ha\s+scritto|scrisse|napisa[łl]a?|"
    r"написала?|написав|пише|kirjoitti|napsala?|写道|寫道"
)
# Words an attribution line starts with: "On …", "Am …", "Den …", "Op …", "Le …", "El …".
_PREFIXES: Final = r"on|am|den|op|le|el|em|il|dnia|w\s+dniu|at|dne|på"

# An attribution, once wrapped lines are joined: "<date, name…> wrote:" or "<date> skrev
# <name>:". The verb is the last one on the line; what follows it (a name, an address, a date as
# in "schrieb am Fr., 28. Apr. 2017 um 11:53 Uhr") is short and the whole ends in a colon.
_ATTRIBUTION: Final = re.compile(
    rf"^(?P<head>.*)\b(?:{_VERBS})\b(?P<tail>.{{0,120}}?)\s*[:：]\s*[*_]*$", re.IGNORECASE
)
_BRACKETED: Final = re.compile(r"<[^<>]{0,200}>|\([^()]{0,200}\)|\[[^\[\]]{0,200}\]")
_FOLLOWING: Final = frozenset(
    ["the following", "følgende", "följande", "het volgende", "folgendes", "ce qui suit"]
)
_DATE_WORDS: Final = frozenset(["am", "on", "den", "le", "el", "il", "em", "op", "på"])
# Where a tail would run on into a new sentence ("… wrote in May. We checked …:"), it is prose.
_SENTENCE_BREAK: Final = re.compile(r"[^\W\d_]{2}[.!?]\s+[^\W\d_]")
# Gmail's older attribution has no verb: "2016-03-03 17:21 GMT+01:00 Some One <x@y>:".
_DATE_NAME_ATTRIBUTION: Final = re.compile(
    r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?"
    r"(?:\s*GMT[+-]\d{1,2}(?::?\d{2})?)?\s+\S.{0,150}$"
)
# Weekdays as attributions abbreviate them (en, de, da, no, sv, nl, fr, es): "man. 3. nov.".
_WEEKDAYS: Final = (
    r"mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun|mo|di|mi|do|fr|sa|so|man|tir|tirs|ons|tor|"
    r"tors|fre|lør|søn|mån|tis|lör|sön|ma|wo|vr|za|zo|lun|mar|mer|jeu|ven|sam|dim|mié|mie|jue|"
    r"vie|sáb|sab|dom|[a-zæøåäöéèáí]+(?:day|tag|dag|di|nes|dí|ado|ingo|edi|redi)"
)
_ATTRIBUTION_START: Final = re.compile(
    rf"^(?:(?:{_PREFIXES})\b|(?:{_WEEKDAYS})\b[.,]?\s.{{0,12}}\d|[\d\"«„])", re.IGNORECASE
)
# A line inside a wrapped attribution that starts another one ("On 28 Jan 2016, …").
_NEW_ATTRIBUTION: Final = re.compile(
    r"^(?:on|am|den|op|le|el|em|il|dnia)\b.{0,25}\d", re.IGNORECASE
)
_PREFIXED: Final = re.compile(rf"^(?:{_PREFIXES})\s", re.IGNORECASE)
_VERB: Final = re.compile(rf"\b(?:{_VERBS})\b", re.IGNORECASE)
_EMAIL: Final = re.compile(r"[\w.+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")
_DIGIT: Final = re.compile(r"\d")

# Header blocks of Outlook and of forwards, by kind, in our languages (and it, pt, pl).
_HEADER_NAMES: Final = {
    "from": "from|von|fra|van|de|från|da|od|от|від|发件人|寄件者",
    "date": (
        "sent|date|gesendet|datum|sendt|dato|verzonden|verstuurd|envoy[ée]|skickat|enviado(?:\\s+el)?|"
        "enviada|fecha|data|inviato|wysłano|发送时间|日期"
    ),
    "to": "to|an|til|aan|à|a|till|para|do|кому|收件人",
    "cc": "cc|kopie|kopi|kopia|copie|copia|抄送",
    "subject": "subject|betreff|emne|onderwerp|objet|ämne|asunto|oggetto|temat|assunto|тема|主题",
    "reply_to": (
        "reply-to|antwort\\s+an|svar\\s+til|beantwoorden|répondre\\s+à|responder\\s+a|"
        "risposta|svara\\s+till"
    ),
}
_HEADER_LINE: Final = re.compile(
    "^\\s*[*_]*\\s*(?:"
    + "|".join(f"(?P<{kind}>{names})" for kind, names in _HEADER_NAMES.items())
    + ")\\s*[*_]*\\s*[:：]",
    re.IGNORECASE,
)

# "-----Original Message-----", "---------- Forwarded message ---------", "*-- … --*".
_DASHED_TITLE: Final = re.compile(r"^[*_]*\s*-{2,}\s*(?=.*[^\W\d_]).+?\s*-{2,}\s*[*_]*$")
_FORWARD_INTRO: Final = re.compile(
    r"^(?:begin forwarded message|anfang der weitergeleiteten nachricht|"
    r"d[ée]but du message (?:r[ée]exp[ée]di[ée]|transf[ée]r[ée])|inicio del mensaje reenviado|"
    r"mensaje reenviado|(?:start på )?videresendt (?:meddelelse|melding|besked|e-mail)|"
    r"(?:början av )?vidarebefordrat (?:meddelande|mejl|e-postmeddelande)|"
    r"begin doorgestuurd bericht|"
    r"doorgestuurd bericht)\s*:?$",
    re.IGNORECASE,
)
# A line made only of separator characters ("--", "___", "***", "ᐧ", "* * *").
_DELIMITER: Final = re.compile(r"^[-_=+~#*\u1427\u2014\u2013\u2022\u00b7\s]+$")
_SIGNATURE_DASHES: Final = re.compile(r"^--\s*$")
_QUOTE: Final = re.compile(r"^\s*>")
# Supercite-style citations ("Richard> …", "C>").
_SUPERCITE: Final = re.compile(r"^\s*[A-Za-z][\w.-]{0,11}>(?:\s|$)")
_FENCE: Final = re.compile(r"^\s*```")

# Mobile and app signatures: "Sent from my iPhone", "Von meinem iPhone gesendet", …
_SENT_WITH: Final = re.compile(
    r"^(?:sent|sendt|skickat|skickad|skickades|verzonden|verstuurd|envoy[ée]|enviado|"
    r"gesendet|inviato|wysłane)\s+(?:from|via|with|by|using|on|fra|med|från|vanaf|vanuit|met|"
    r"van|de|depuis|avec|à\s+partir\s+de|desde|con|von|mit|vom|da|dal|z)\b",
    re.IGNORECASE,
)
_FROM_MY: Final = re.compile(r"^(?:\w+\s+)?from\s+(?:my\s+)?\S", re.IGNORECASE)
_GERMAN_SENT: Final = re.compile(
    r"^(?:von\s+mein\w*\s+.{1,60}\s+gesendet|diese nachricht wurde .{1,120}"
    r"(?:gesendet|versendet|verschickt))\.?$",
    re.IGNORECASE,
)
_OUTLOOK_APP: Final = re.compile(r"\boutlook\b.{0,20}\b(?:ios|android)", re.IGNORECASE)
_DEVICE: Final = re.compile(
    r"\b(?:i\s?phone|ipad|ipod|android|mobile?|mobil\w*|mobiel\w*|m[oó]vil|cell(?:ular)?|"
    r"celular|phone|telefon\w*|telefoon|t[ée]l[ée]phone|tel[ée]fono|smartphone|handy|"
    r"blackberry|galaxy|samsung|htc|nokia|huawei|xiaomi|pixel|oneplus|xperia|motorola|"
    r"alcatel|tablet|device|dispositivo|appareil|\w*ger[äa]t|enhed|enhet|apparaat|outlook|"
    r"mail|gmail|yahoo|airmail|mailbox|aol|spark|proton\w*|k-9|bluemail|windows|mac|ios|"
    r"watch|pc)\b",
    re.IGNORECASE,
)
_MODEL_NUMBER: Final = re.compile(r"\b[A-Za-z]+-?\d+[A-Za-z]*\b")
_CJK: Final = re.compile(r"[\u3400-\u9fff]")
_MARKDOWN_LINK: Final = re.compile(r"\[([^\]]{0,200})\]\([^)]{0,500}\)")
_URL: Final = re.compile(r"<?https?://\S+>?")
_CLAUSE_END: Final = re.compile(r"[,;!(]|\.(?:\s|$)")

# What we control: the marker line of every ticket (also reflowed) and its last line.
_MARKER_WORDS: Final = REPLY_MARKER.strip("#- ").casefold()  # "please type your reply above …"
_MARKER: Final = re.compile(
    r"(?:#\s?#\s?-\s?)?" + r"\s?".join(re.escape(word) for word in _MARKER_WORDS.split())
)
_KEY_MARKER: Final = re.compile(r"\[mr:", re.IGNORECASE)
_HIDDEN_KEY: Final = re.compile(r"\bmr:[a-z0-9]{12,}\b")  # the text of our hidden key element
_REPLY_ADDRESS: Final = re.compile(r"\breply\+[^\s@<>\"]{0,200}@", re.IGNORECASE)

_KNOWN_RUN: Final = 40  # characters of a text we sent that identify it in a reply
_INVISIBLE: Final = re.compile("[\u200b-\u200f\u2060\ufeff\u202a-\u202e\u2066-\u2069\u00ad]")
_SPACES: Final = re.compile(r"[\u00a0\u202f\u2007\u3000]")
_TYPOGRAPHY: Final = str.maketrans("‘’‚‛“”„–—", "''''\"\"\"--")
_QUOTE_PREFIX: Final = re.compile(r"^(?:\s*>)+\s?")
_MAX_ATTRIBUTION: Final = 320  # characters; longer "lines" are prose, not attributions


class _Kind(StrEnum):
    TEXT = "text"
    EMPTY = "empty"
    QUOTE = "quote"
    ATTRIBUTION = "attribution"
    HEADER = "header_block"
    SEPARATOR = "separator"
    SIGNATURE = "signature"
    SUPERCITE = "supercite"


# --------------------------------------------------------------------------- public API


def extract(
    text: str | None, html: str | None = None, *, known_texts: Sequence[str] = ()
) -> Extraction:
    """The agent's new text in a reply, cut at the first sign of quoted history.

    text/plain wins when it has content; the HTML part is used only when it has none. Rules in
    order: our marker, a text we sent (`known_texts`), then line by line attributions, quote
    blocks, header blocks, separators and signatures. The verdict fails closed.
    """
    source = _choose_source(text, html)
    lines = _normalize(source).split("\n")
    cuts: list[str] = []
    lines = _cut_at_marker(lines, cuts)
    lines = _cut_at_known_text(lines, known_texts, cuts)
    lines = _trim_history(lines, cuts)
    result = _tidy(lines)
    reason = _refusal(result)
    return Extraction(
        text=result, ok=reason is None, reason=reason, cut_at=cuts[0] if cuts else None
    )


def html_to_text(html: str) -> str:
    """Plain text of an HTML reply once the quoted history its mail client marked is gone.

    Containers of quotes (Gmail, Apple Mail, Outlook, Thunderbird, Yahoo) and our own hidden
    key are removed first; a <blockquote> nobody marked survives as "> " lines, which the text
    rules then treat as quoted (fail closed).
    """
    try:
        # Inside a <div>, no markup looks like a URL, a file name or an XML document to bs4,
        # whose warnings about those would otherwise depend on the warning filters in force.
        soup = BeautifulSoup(f"<div>{html}</div>", "html.parser")
        _remove_invisible(soup)
        _remove_quote_containers(soup)
    except Exception:  # history we cannot tell apart is not published: no text (fail closed)
        return ""
    try:
        out = _TextBuilder()
        _render(soup, out)
        return _normalize(out.text())
    except RecursionError:  # absurdly deep nesting: the cleaned text without layout
        return _normalize(soup.get_text("\n")).strip()


# --------------------------------------------------------------------------- input


def _choose_source(text: str | None, html: str | None) -> str:
    """text/plain when it says anything, else the HTML part as text."""
    if text and text.strip():
        return text
    if html and html.strip():
        return html_to_text(html)
    return ""


def _normalize(text: str) -> str:
    """One kind of line break and of space; invisible characters (zero-width, bidi) removed, as
    they would split the words our patterns look for."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", text)
    return _SPACES.sub(" ", text)


def _fold(text: str) -> str:
    """Whitespace, case and typographic quotes folded, for comparing reflowed text."""
    return " ".join(text.translate(_TYPOGRAPHY).split()).casefold()


def _folded_lines(lines: Sequence[str]) -> tuple[str, list[int]]:
    """All lines folded and joined by single spaces (quote prefixes dropped), and where each
    line starts in the result: a reflowed or quoted copy of a text still matches."""
    starts: list[int] = []
    parts: list[str] = []
    position = 0
    for line in lines:
        starts.append(position)
        folded = _fold(_QUOTE_PREFIX.sub("", line))
        parts.append(folded)
        position += len(folded) + 1
    return " ".join(parts), starts


# --------------------------------------------------------------------------- cuts we control


def _cut_at_marker(lines: list[str], cuts: list[str]) -> list[str]:
    """Everything from our REPLY_MARKER on goes: it opens every ticket, quoted or not."""
    joined, starts = _folded_lines(lines)
    match = _MARKER.search(joined)
    if match is None:
        return lines
    cuts.append("marker")
    index = bisect_right(starts, match.start()) - 1
    head = _text_before_marker(lines[index])
    return [*lines[:index], head] if head else lines[:index]


def _text_before_marker(line: str) -> str:
    """What a reflowing client put on the marker's line before it ("Thanks! ##- Please…")."""
    if _QUOTE.match(line):
        return ""
    lowered = line.casefold()
    cut = lowered.find("##")
    if cut < 0:
        cut = lowered.find(_MARKER_WORDS.split()[0])
    return line[:cut].rstrip() if cut > 0 else ""


def _cut_at_known_text(lines: list[str], known_texts: Sequence[str], cuts: list[str]) -> list[str]:
    """Cut before the first run of >= 40 characters of a text we sent (the review in the ticket),
    however the client reflowed or quoted it."""
    windows = _known_windows(known_texts)
    if not windows:
        return lines
    joined, starts = _folded_lines(lines)
    for position in range(len(joined) - _KNOWN_RUN + 1):
        if position and joined[position - 1] != " ":
            continue  # a run starts at a word; every offset of the known text is in `windows`
        if joined[position : position + _KNOWN_RUN] in windows:
            cuts.append("known_text")
            return lines[: bisect_right(starts, position) - 1]
    return lines


def _known_windows(known_texts: Sequence[str]) -> set[str]:
    windows: set[str] = set()
    for known in known_texts:
        folded = _fold(known or "")
        for start in range(len(folded) - _KNOWN_RUN + 1):
            windows.add(folded[start : start + _KNOWN_RUN])
    return windows


# --------------------------------------------------------------------------- line rules


def _trim_history(lines: list[str], cuts: list[str]) -> list[str]:
    """Walk the classified lines: keep text, drop quote blocks (with the attribution that
    introduces them) and stop at the first line where someone else's message begins."""
    kinds, spans = _classify(lines)
    out: list[str] = []
    index = 0
    gap = False  # something was removed here: one blank line stands for it
    while index < len(lines):
        kind = kinds[index]
        if kind in (_Kind.TEXT, _Kind.EMPTY):
            if gap and kind is _Kind.TEXT:
                _end_with_blank(out)
                gap = False
            out.append(lines[index])
            index += 1
        elif kind is _Kind.QUOTE:
            cuts.append("quote")
            index, gap = _skip_quote_block(kinds, index), True
        elif kind is _Kind.ATTRIBUTION:
            cuts.append("attribution")
            after = spans[index] + 1
            following = _next_content(kinds, after)
            if following is not None and kinds[following] is _Kind.QUOTE:
                index, gap = following, True  # the quote it introduces goes next
            elif following is not None and kinds[following] is _Kind.TEXT and not _has_text(out):
                index = following  # bottom-posted under an unquoted attribution (Discourse)
            else:
                break
        else:
            cuts.append("quote" if kind is _Kind.SUPERCITE else str(kind))
            break
    return out


def _skip_quote_block(kinds: Sequence[_Kind], index: int) -> int:
    """Index after the quoted lines starting at `index` (blank lines between them included)."""
    end = index
    while end < len(kinds) and kinds[end] in (_Kind.QUOTE, _Kind.EMPTY):
        end += 1
    while end > index and kinds[end - 1] is _Kind.EMPTY:
        end -= 1
    return end


def _next_content(kinds: Sequence[_Kind], index: int) -> int | None:
    while index < len(kinds):
        if kinds[index] is not _Kind.EMPTY:
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


def _classify(lines: Sequence[str]) -> tuple[list[_Kind], dict[int, int]]:
    """A kind per line, and for each attribution the index of its last (wrapped) line."""
    fenced = _fenced_lines(lines)
    kinds = [_Kind.TEXT] * len(lines)
    spans: dict[int, int] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        if index in fenced:
            index += 1
            continue
        if not line.strip():
            kinds[index] = _Kind.EMPTY
        elif _QUOTE.match(line):
            kinds[index] = _Kind.QUOTE
        elif (end := _attribution_end(lines, index)) is not None:
            start = index - 1 if _name_wrapped_before(lines, kinds, index, end) else index
            kinds[start : end + 1] = [_Kind.ATTRIBUTION] * (end + 1 - start)
            spans[start] = end
            index = end + 1
            continue
        elif _starts_header_block(lines, index):
            kinds[index] = _Kind.HEADER
        else:
            kinds[index] = _single_line_kind(line)
        index += 1
    _mark_wrapped_quote_lines(kinds)
    return kinds, spans


def _mark_wrapped_quote_lines(kinds: list[_Kind]) -> None:
    """One or two unquoted lines squeezed between quoted ones, without a blank line, are a
    quoted line that a client re-wrapped without its ">": they are quoted too."""
    for index, kind in enumerate(kinds):
        if kind is not _Kind.QUOTE or index + 1 >= len(kinds) or kinds[index + 1] is not _Kind.TEXT:
            continue
        for width in (1, 2):
            after = index + 1 + width
            run = kinds[index + 1 : after]
            if after < len(kinds) and kinds[after] is _Kind.QUOTE and set(run) == {_Kind.TEXT}:
                kinds[index + 1 : after] = [_Kind.QUOTE] * width
                break


def _single_line_kind(line: str) -> _Kind:
    stripped = line.strip()
    if _SIGNATURE_DASHES.match(stripped) or _is_mobile_signature(stripped):
        return _Kind.SIGNATURE
    if _DELIMITER.match(stripped) or _is_separator(stripped):
        return _Kind.SEPARATOR
    if _SUPERCITE.match(line):
        return _Kind.SUPERCITE
    return _Kind.TEXT


def _fenced_lines(lines: Sequence[str]) -> set[int]:
    """Lines inside closed ``` fences: code, whose "#" or "--" lines are no separators. An
    unclosed fence protects nothing (else it could hide the history below it)."""
    fenced: set[int] = set()
    opened: int | None = None
    for index, line in enumerate(lines):
        if not _FENCE.match(line):
            continue
        if opened is None:
            opened = index
        else:
            fenced.update(range(opened, index + 1))
            opened = None
    return fenced


# --------------------------------------------------------------------------- attributions


def _attribution_end(lines: Sequence[str], index: int) -> int | None:
    """Last line of an attribution starting at `index` ("On … wrote:" and its translations),
    wrapped over up to six lines as clients do, or None."""
    first = lines[index].strip()
    if len(first) > _MAX_ATTRIBUTION:
        return None
    if _is_date_name_attribution(first):
        return _extend_date_name(lines, index)
    if _reads_as_attribution(first, lines, index):
        return index
    if not _may_start_attribution(first):
        return None
    parts = [first]
    blanks = 0
    for end in range(index + 1, min(index + 6, len(lines))):
        part = _QUOTE_PREFIX.sub("", lines[end]).strip()
        if not part:
            blanks += 1
            if blanks > 2:
                return None
            continue
        if _QUOTE.match(lines[end]) and len(part) > 30:
            return None  # only a stray "> wrote:" of a wrapped attribution, never a quote
        if _NEW_ATTRIBUTION.match(part):
            return None
        parts.append(part)
        joined = " ".join(parts)
        if len(joined) > _MAX_ATTRIBUTION:
            return None
        if _reads_as_attribution(joined, lines, end):
            return end
    return None


def _reads_as_attribution(text: str, lines: Sequence[str], end: int) -> bool:
    """A dated attribution; or an undated one ("Ann wrote:") that starts like one ("On
    Monday, …") or introduces a quote."""
    if _is_attribution(text):
        return True
    if not _is_attribution(text, dated=False):
        return False
    return _PREFIXED.match(text) is not None or _introduces_quote(lines, end)


def _name_wrapped_before(
    lines: Sequence[str], kinds: Sequence[_Kind], index: int, end: int
) -> bool:
    """A client wrapped the sender's name onto the line before ("ACME Reviews" / "<x@y> schrieb
    am …:", "Ann" / "wrote:"): that line belongs to the attribution."""
    if index == 0 or kinds[index - 1] is not _Kind.TEXT:
        return False
    first = lines[index].lstrip()
    joined = " ".join(_QUOTE_PREFIX.sub("", line).strip() for line in lines[index : end + 1])
    match = _ATTRIBUTION.match(joined)
    starts_bare = match is not None and not match.group("head").strip()
    if not (starts_bare or first.startswith(("<", "[mailto:", "mailto:")) or _EMAIL.match(first)):
        return False
    name = lines[index - 1].strip()
    return 0 < len(name) <= 80 and not name.endswith((".", "!", "?", ":", ";", ","))


def _is_attribution(text: str, *, dated: bool = True) -> bool:
    """Names a verb of writing, ends in a colon, and carries a date or an address (unless not
    `dated`: "Ann wrote:"); after the verb comes at most a name, an address or a date."""
    if len(text) > (_MAX_ATTRIBUTION if dated else 160):
        return False
    if not text.rstrip(" \t*_").endswith((":", "：")) or _VERB.search(text) is None:
        return False  # cheap checks first: the full pattern backtracks
    match = _ATTRIBUTION.match(text)
    if match is None:
        return False
    head, tail = match.group("head"), match.group("tail")
    if not _is_attribution_tail(tail, dated=dated):
        return False
    if not dated:
        return True
    both = head + tail
    return bool(_DIGIT.search(both)) or "@" in both or "mailto:" in both.lower()


def _is_attribution_tail(tail: str, *, dated: bool) -> bool:
    """What may follow the verb: nothing, a name ("skrev Ann Lee <a@b>:"), "the following",
    or, when dated, the date ("schrieb am Fr., 28. Apr. 2017 um 11:53 Uhr:"). "I wrote one of
    my own:" or "we wrote to the carrier on 3 Nov and they replied:" are prose."""
    addressed = "@" in tail or "<" in tail
    words = _BRACKETED.sub(" ", _EMAIL.sub(" ", tail)).replace('"', " ").split()
    if " ".join(words).casefold() in _FOLLOWING:
        return True
    if dated and words and words[0].casefold() in _DATE_WORDS:
        return len(tail) <= 80 and not _SENTENCE_BREAK.search(tail)
    named = all(word[:1].isupper() or not word[:1].isalpha() for word in words)
    return len(words) <= 6 and (named or (dated and (addressed or len(words) <= 3)))


def _introduces_quote(lines: Sequence[str], index: int) -> bool:
    """The next line with content is quoted, or there is none."""
    for line in lines[index + 1 :]:
        if line.strip():
            return _QUOTE.match(line) is not None
    return True


def _is_date_name_attribution(text: str) -> bool:
    return (
        len(text) <= 200
        and _DATE_NAME_ATTRIBUTION.match(text) is not None
        and ("GMT" in text or "@" in text or text.endswith(("<", ":")))
    )


def _extend_date_name(lines: Sequence[str], index: int) -> int:
    """Gmail wraps "2016-10-24 15:36 GMT+02:00 Foo <" / "foo@bar>:": take the address line."""
    if index + 1 < len(lines) and lines[index].rstrip().endswith("<"):
        following = lines[index + 1].strip()
        if "@" in following and following.endswith((">", ">:")) and len(following) < 120:
            return index + 1
    return index


def _may_start_attribution(line: str) -> bool:
    """Could this line open an attribution that wraps onto the next lines?"""
    if len(line) > 200:
        return False
    return (
        _ATTRIBUTION_START.match(line) is not None
        or "@" in line
        or line.endswith("<")
        or _VERB.search(line) is not None
    )


# --------------------------------------------------------------------------- header blocks


def _starts_header_block(lines: Sequence[str], index: int) -> bool:
    """An Outlook or forward header block starts here: header lines of three kinds, or of two
    when one is the sender (From:/Sent:/To:/Subject: and their translations)."""
    kinds: set[str] = set()
    misses = 0
    for line in lines[index : index + 12]:
        kind = _header_kind(line)
        if kind is None:
            if not kinds:
                return False
            misses += 1
            if misses > 1:
                break  # a wrapped value or one blank line may sit between header lines
            continue
        misses = 0
        kinds.add(kind)
    return len(kinds) >= 3 or (len(kinds) == 2 and "from" in kinds)


def _header_kind(line: str) -> str | None:
    if len(line) > 1000:
        return None
    match = _HEADER_LINE.match(line)
    if match is None:
        return None
    return next(kind for kind, value in match.groupdict().items() if value is not None)


def _is_separator(line: str) -> bool:
    """A line that opens a forwarded or original message ("-----Original Message-----", "Begin
    forwarded message:" and their translations)."""
    if len(line) > 200:
        return False
    return _DASHED_TITLE.match(line) is not None or _FORWARD_INTRO.match(line) is not None


# --------------------------------------------------------------------------- signatures


def _is_mobile_signature(line: str) -> bool:
    """A mobile or app signature ("Sent from my iPhone" and kin in our languages). "Sent from my
    desk, …" is none: the first clause must name a device, an app or a model."""
    text = line.strip().strip("()<>[]*_ ").strip()
    if not text or len(text) > 160:
        return False
    text = _URL.sub(" ", _MARKDOWN_LINK.sub(r"\1", text)).strip()
    if _OUTLOOK_APP.search(text) or _GERMAN_SENT.match(text):
        return True
    clause = _CLAUSE_END.split(text, maxsplit=1)[0].strip()
    if _SENT_WITH.match(clause) or (_FROM_MY.match(clause) and len(clause.split()) <= 5):
        return len(clause.split()) <= 9 and _names_a_device(clause)
    return len(text) <= 40 and _CJK.search(text) is not None and _names_a_device(text)


def _names_a_device(text: str) -> bool:
    return _DEVICE.search(text) is not None or _MODEL_NUMBER.search(text) is not None


# --------------------------------------------------------------------------- result


def _tidy(lines: Sequence[str]) -> str:
    """Trailing spaces and surrounding blank lines gone; the agent's paragraphs as they were."""
    stripped = [line.rstrip() for line in lines]
    while stripped and not stripped[-1]:
        stripped.pop()
    while stripped and not stripped[0]:
        stripped.pop(0)
    return "\n".join(stripped)


def _refusal(text: str) -> str | None:
    """Why this text must not be published, or None. Fails closed: any trace of quoted history
    holds the reply back for the agent."""
    if not text.strip():
        return "empty"
    if _REPLY_ADDRESS.search(text):
        return "reply address left"
    joined, _ = _folded_lines(text.split("\n"))
    if _MARKER.search(joined) or _KEY_MARKER.search(text) or _HIDDEN_KEY.search(text):
        return "marker left"
    lines = text.split("\n")
    if any(_QUOTE.match(line) or _SUPERCITE.match(line) for line in lines):
        return "quoted line left"
    if _has_attribution(lines):
        return "attribution left"
    if any(_starts_header_block(lines, index) for index in range(len(lines))):
        return "header block left"
    if any(_is_separator(line.strip()) for line in lines):
        return "separator left"
    return None


def _has_attribution(lines: Sequence[str]) -> bool:
    """Any attribution, also one wrapped over lines, or a "<x@y> wrote" anywhere."""
    for index, line in enumerate(lines):
        if _attribution_end(lines, index) is not None:
            return True
        if _is_attribution(line.strip(), dated=False):
            return True  # "Ann wrote:" with nothing quoted below: still someone else's words
        if len(line) <= 1000 and _VERB.search(line) and _EMAIL.search(line):
            return True
    return False


# --------------------------------------------------------------------------- HTML


# Elements that hold quoted history, per client; _AND_AFTER also everything after them.
_QUOTE_CONTAINERS: Final = (
    "div.gmail_quote",
    "blockquote.gmail_quote",
    "div.gmail_quote_container",
    'blockquote[type="cite"]',
    "div.moz-cite-prefix",
    "div.yahoo_quoted",
    'div[id^="yahoo_quoted"]',
    'div[name="quote"]',  # GMX, WEB.DE
    "div.protonmail_quote",
    "blockquote.protonmail_quote",
    "[data-mailrelay-key]",
)
_AND_AFTER: Final = (
    "div#appendonsend",
    "div#divRplyFwdMsg",
    "div#mail-editor-reference-message-container",
    "div.OutlookMessageHeader",
)
_STYLE_SPACE: Final = re.compile(r"\s+")
_HIDDEN_STYLE: Final = re.compile(r"display:none|mso-hide:all|visibility:hidden")
_OUTLOOK_BORDER: Final = re.compile(r"border-top:solid")


def _remove_invisible(soup: BeautifulSoup) -> None:
    """Comments, scripts, styles and hidden elements: nothing a reader sees, so nothing to
    publish (an MSO conditional comment or a hidden preheader must not become text)."""
    for node in soup.find_all(string=True):
        if isinstance(node, (Comment, Declaration, Doctype, CData, ProcessingInstruction)):
            node.extract()
    for tag in soup.find_all(["head", "title", "style", "script", "template", "noscript"]):
        tag.decompose()
    for tag in soup.find_all(style=True):
        if isinstance(tag, Tag) and _HIDDEN_STYLE.search(_style_of(tag)):
            tag.decompose()
    for tag in soup.find_all(hidden=True):
        if isinstance(tag, Tag):
            tag.decompose()


def _remove_quote_containers(soup: BeautifulSoup) -> None:
    for selector in _AND_AFTER:
        found = soup.select_one(selector)
        if found is not None:
            _remove_with_everything_after(found)
    for tag in soup.find_all("div", style=True):
        if isinstance(tag, Tag) and tag.parent is not None and _is_outlook_header_box(tag):
            _remove_with_everything_after(tag)
            break
    for selector in _QUOTE_CONTAINERS:
        for tag in soup.select(selector):
            tag.decompose()


def _is_outlook_header_box(tag: Tag) -> bool:
    """Outlook desktop's <div style="border:none;border-top:solid #E1E1E1 1.0pt;…"> header."""
    style = _style_of(tag)
    return "border:none" in style and _OUTLOOK_BORDER.search(style) is not None


def _style_of(tag: Tag) -> str:
    value = tag.get("style")
    text = " ".join(value) if isinstance(value, list) else str(value or "")
    return _STYLE_SPACE.sub("", text).lower()


def _remove_with_everything_after(tag: Tag) -> None:
    """The element and all that follows it in document order (its following siblings and
    those of each ancestor): Outlook puts the whole quoted message after its header."""
    node: Tag | None = tag
    while node is not None and node.parent is not None:
        for sibling in list(node.next_siblings):
            sibling.extract()
        node = node.parent
    tag.decompose()


# Elements that start a new line, and those that also stand apart by a blank line.
_BLOCKS: Final = frozenset(
    "address article aside blockquote center dd div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody thead tfoot tr "
    "ul".split()
)
_PARAGRAPHS: Final = frozenset("blockquote dl figure h1 h2 h3 h4 h5 h6 ol p pre table ul".split())
_NBSP: Final = "\u00a0"
_COLLAPSIBLE: Final = re.compile(r"[ \t\n\r\f\v]+")
_BLANK_RUNS: Final = re.compile(r"\n{3,}")


class _TextBuilder:
    """Lines of text as a browser would lay them out: whitespace collapsed, a line per block
    and per <br>, a blank line around paragraphs, "> " before blockquoted lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.current: list[str] = []

    def add(self, text: str) -> None:
        text = _COLLAPSIBLE.sub(" ", text)
        if not self.current or self.current[-1].endswith(" "):
            text = text.lstrip(" ")
        if text:
            self.current.append(text)

    def add_raw(self, text: str) -> None:
        """Preformatted text: its line breaks are lines."""
        first, *rest = text.split("\n")
        self.current.append(first)
        for line in rest:
            self.break_line()
            self.current.append(line)

    def break_line(self) -> None:
        """<br>: ends the line, even an empty one."""
        self.lines.append("".join(self.current).rstrip(" "))
        self.current = []

    def end_line(self) -> None:
        """A block boundary: ends the line unless nothing is on it."""
        if "".join(self.current).strip(" "):
            self.break_line()
        self.current = []

    def blank_line(self) -> None:
        self.end_line()
        if self.lines and self.lines[-1].strip(_NBSP + " "):
            self.lines.append("")

    def text(self) -> str:
        self.end_line()
        lines = [line.replace(_NBSP, " ").rstrip() for line in self.lines]
        return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")


def _render(node: Tag, out: _TextBuilder) -> None:
    """Append the text of `node`'s children to `out`."""
    for child in node.children:
        if isinstance(child, Tag):
            _render_element(child, out)
        elif isinstance(child, str):
            out.add(str(child))


def _render_element(tag: Tag, out: _TextBuilder) -> None:
    name = (tag.name or "").lower()
    if name == "br":
        out.break_line()
    elif name == "hr":
        out.blank_line()
        out.add("_" * 32)  # a separator line, as in a plain-text reply: history may follow
        out.blank_line()
    elif name == "blockquote":
        _render_quote(tag, out)
    elif name == "pre":
        out.blank_line()
        out.add_raw(tag.get_text())
        out.blank_line()
    elif name in ("td", "th"):
        if out.current:
            out.add("  ")
        _render(tag, out)
    elif name == "a":
        _render(tag, out)
        out.add(_link_target(tag))
    elif name in _BLOCKS:
        _render_block(tag, name, out)
    else:
        _render(tag, out)


def _render_block(tag: Tag, name: str, out: _TextBuilder) -> None:
    # Outlook writes a <p class=MsoNormal> per line (empty ones between paragraphs).
    paragraph = name in _PARAGRAPHS and "MsoNormal" not in (tag.get("class") or ())
    _end_block(out, paragraph)
    if name == "li":
        out.add(_list_mark(tag))
    _render(tag, out)
    _end_block(out, paragraph)


def _end_block(out: _TextBuilder, paragraph: bool) -> None:
    if paragraph:
        out.blank_line()
    else:
        out.end_line()


def _list_mark(item: Tag) -> str:
    """The mark of a list item: "- " in a bulleted list, "3. " for a numbered one's third."""
    parent = item.parent
    if parent is None or (parent.name or "").lower() != "ol":
        return "- "
    position = 1 + sum(1 for sibling in item.find_previous_siblings("li"))
    return f"{position}. "


def _render_quote(tag: Tag, out: _TextBuilder) -> None:
    """A blockquote nobody marked as history still reads as quoted: "> " before each line."""
    inner = _TextBuilder()
    _render(tag, inner)
    out.blank_line()
    for line in inner.text().split("\n"):
        out.add_raw(f"> {line}".rstrip())
        out.break_line()
    out.blank_line()


def _link_target(tag: Tag) -> str:
    """The URL in parentheses after a link whose text does not show where it leads, else ""."""
    href = str(tag.get("href") or "").strip()
    label = tag.get_text(" ", strip=True)
    if not href.lower().startswith(("http://", "https://")) or not label:
        return ""
    bare = href.split("://", 1)[1].rstrip("/")
    if bare in label or label in href:
        return ""
    return f" ({href})"
