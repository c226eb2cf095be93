"""Line shapes of quoted history: attributions, header blocks, separators, signatures, quotes.

Each reply is classified line by line (`classify`); the rules are structural where they can be
(an address or a date and time on a line ending in a colon, a run of "label: value" lines), with
vocabulary only where a shape alone would also match an agent's own prose.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Final
from unicodedata import east_asian_width

from .shapes import (
    EMAIL,
    is_banner,
    is_sent_from,
    is_shaped_attribution,
    is_signature_block,
    may_start_shaped_attribution,
    mentions_date,
    mentions_time,
    starts_label_run,
)

# --------------------------------------------------------------------------- vocabulary

# "wrote" in the languages we serve (en, de, da, nl, fr, sv, no, es) and more seen in the wild
# (pt, it, pl, ru, uk, fi, cs, sk, hu, tr, el, ro, id, vi, zh, ko). Longer forms first so
# "a écrit" wins over "écrit". Attributions without any of these are caught by their shape
# (shapes.is_shaped_attribution) or by the quote they head.
_VERBS: Final = (
    r"wrote|writes|schrieb|geschrieben|skrev|schreef|geschreven|a\s+[ée]crit|"
    r"escribi[óo]|ha\s+escrito|escreveu|ha\s+scritto|scrisse|napisa[łl](?:a|\(a\))?|pisze|"
    r"написала?|написав|пише|kirjoitti|napsala?|napsal\(a\)|napísal[a]?|írta|yazdı|"
    r"έγραψε|a\s+scris|menulis|đã\s+viết|写道|寫道|작성"
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
# A line that ends a sentence ("Den bør være fremme på onsdag.") is no wrapped attribution's
# start; "kl." or "nov." (abbreviations of three letters or less) may be.
# Also the full stops of Devanagari/Bengali (।), Urdu (۔), Armenian (։), Ethiopic (።) and "؟".
_SENTENCE_END: Final = re.compile(r"(?:[^\W\d_]{4,}[.。]|[!?！？।۔։።؟]|[)\]»”\"][.。])$")
# An attribution wraps over a blank line only where a client broke it mid-phrase ("On Thu, 31
# Mar 2016 at 11:16 Some One" / "" / "<mailto:…> wrote:"), never after a full stop.
_PARAGRAPH_END: Final = (".", "!", "?", "。", "！", "？", "…")
_PREFIXED: Final = re.compile(rf"^(?:{_PREFIXES})\s", re.IGNORECASE)
VERB: Final = re.compile(rf"\b(?:{_VERBS})\b", re.IGNORECASE)
_DIGIT: Final = re.compile(r"\d")

# Header blocks of Outlook, Apple Mail, webmails and forwards, by kind, as clients label them in
# the languages we have met (a run of unknown labels is caught by shapes.starts_label_run).
_HEADER_NAMES: Final = {
    "from": (
        "from|von|absender|fra|afsender|van|afzender|de\\s+la|de|från|avsändare|da|mittente|"
        "remitente|remetente|expéditeur|od|от\\s+кого|от|від|kimden|από|lähettäjä|feladó|"
        "发件人|寄件者|寄件人|差出人|보낸\\s?사람"
    ),
    "date": (
        "sent|date|gesendet|datum|sendt|dato|verzonden|verstuurd|envoy[ée]|skickat|enviado(?:\\s+el)?|"
        "enviada|fecha|data|inviato|wysłano|odesláno|отправлено|дата|надіслано|gönderildi|tarih|"
        "στάλθηκε|ημερομηνία|lähetetty|päivämäärä|elküldve|dátum|trimis|发送时间|日期|送信日時|"
        "日付|날짜|보낸\\s?날짜"
    ),
    "to": (
        "to|an|til|aan|à|a|till|para|do|destinatario|destinatário|кому|komu|kime|προς|"
        "vastaanottaja|címzett|către|收件人|宛先|받는\\s?사람"
    ),
    "cc": "cc|kopie|kopi|kopia|copie|copia|копия|копія|bilgi|κοιν|kopio|másolat|抄送|참조",
    "subject": (
        "subject|betreff|emne|onderwerp|objet|ämne|asunto|oggetto|temat|assunto|тема|předmět|"
        "konu|θέμα|aihe|tárgy|subiect|主题|主旨|件名|제목"
    ),
    "reply_to": (
        "reply-to|antwort\\s+an|svar\\s+til|beantwoorden|répondre\\s+à|responder\\s+a|"
        "risposta|svara\\s+till"
    ),
}
_HEADER_ALTERNATIVES: Final = "|".join(
    f"(?P<{kind}>{names})" for kind, names in _HEADER_NAMES.items()
)
_HEADER_LINE: Final = re.compile(
    f"^\\s*[*_]*\\s*(?:{_HEADER_ALTERNATIVES})\\s*[*_]*\\s*[:：]", re.IGNORECASE
)
# The same labels without a colon, as a table of label and value cells renders them.
_BARE_HEADER_LINE: Final = re.compile(
    f"^\\s*[*_]*\\s*(?:{_HEADER_ALTERNATIVES})[*_]*(?:\\t|\\s{{1,8}})(?P<value>[^:：\\s].*)$",
    re.IGNORECASE,
)

# "-----Original Message-----", "---------- Forwarded message ---------", "*-- … --*".
_DASHED_TITLE: Final = re.compile(
    r"^[*_]*\s*[-‐‑‒–—―]{2,}\s*(?=.*[^\W\d_]).+?\s*[-‐‑‒–—―]{2,}\s*[*_]*$"
)  # any dash: Proton writes "‐‐‐‐‐‐‐ Original Message ‐‐‐‐‐‐‐" with U+2010
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
# Rules that also underline headings and divide tables ("=====", "-----+-----").
_RULE: Final = re.compile(r"^\s*[-=+|:\s]*[-=]{3,}[-=+|:\s]*$")
_SIGNATURE_DASHES: Final = re.compile(r"^--\s*$")
QUOTE: Final = re.compile(r"^\s*>")
# Supercite-style citations ("Richard> …", "C>").
SUPERCITE: Final = re.compile(r"^\s*[^\W\d_][\w.-]{0,11}>(?:\s|$)")  # also "ОМ>" (The Bat!)
_FENCE: Final = re.compile(r"^\s*```")

# Mobile and app signatures: "Sent from my iPhone", "Von meinem iPhone gesendet", …
_SENT_WITH: Final = re.compile(
    r"^(?:sent|sendt|skickat|skickad|skickades|verzonden|verstuurd|envoy[ée]|enviad[oa]|"
    r"gesendet|inviato|wysłane|wysłano|odesláno|odeslané|отправлено|надіслано|відправлено|"
    r"στάλθηκε|lähetetty|trimis|poslano|elküldve)\s+(?:from|via|with|by|using|on|fra|med|från|"
    r"vanaf|vanuit|met|van|de|do|depuis|avec|à\s+partir\s+de|desde|con|von|mit|vom|da|dal|z|ze|"
    r"из|с|со|з|із|від|через|από|μέσω|de\s+pe|pe|iz|s)\b",
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
    r"\b(?:i\s?phon\w*|ipad\w*|ipod|android|mobile?|mobil\w*|mobiel\w*|m[oó]vil|cell(?:ular)?|"
    r"celular|phone|telefon\w*|telefoon|t[ée]l[ée]phone|tel[ée]fono|smartphone|handy|"
    r"blackberry|galaxy|samsung|htc|nokia|huawei|xiaomi|pixel|oneplus|xperia|motorola|"
    r"alcatel|moto|redmi|poco|oppo|vivo|realme|honor|lenovo|sony|zte|asus|fairphone|nokia|"
    r"tablet|device|dispositivo|appareil|\w*ger[äa]t|enhed|enhet|apparaat|outlook|"
    r"e-?mail|gmail|yahoo|airmail|mailbox|aol|spark|proton\w*|k-9|bluemail|windows|mac|ios|"
    r"watch|pc|почт\w*|пошт\w*|устройств\w*|пристро\w*|телефон\w*|смартфон\w*|мобильн\w*|"
    r"мобільн\w*|планшет\w*|κινητ\w*|τηλέφων\w*|συσκευ\w*|puhelime\w*|laitteesta)\b",
    re.IGNORECASE,
)
# A device's brand in Latin letters inside a line of another script, where "\b" finds no word
# edge ("iPhoneから送信", "ส่งจากiPhoneของฉัน", "發自我的Galaxy").
_EMBEDDED_BRAND: Final = re.compile(
    r"(?<![A-Za-z])(?:i\s?phone|ipad|galaxy|samsung|android|huawei|xiaomi|redmi|pixel|oneplus|"
    r"xperia|honor|oppo|vivo|realme|nokia|motorola|outlook|gmail|yahoo|proton|tuta\w*|"
    r"spark|airmail|bluemail|edison|thunderbird|yandex|aquamail|fairemail)(?![A-Za-z])",
    re.IGNORECASE,
)
_CAMEL: Final = re.compile(r"\b[a-z]+[A-Z][A-Za-z]*\b|\b[A-Z][a-z]+[A-Z][A-Za-z]*\b")
_LATIN_WORD: Final = re.compile(r"(?<![A-Za-z])[A-Z][a-z]{2,}(?![A-Za-z])")  # not "km", "USB"
_SUFFIXED: Final = re.compile(r"['’-][^\W\d_]")
_MODEL_PART: Final = re.compile(r"^(?:[A-Z]\w*|\w*\d\w*)$")  # "Note", "13", "14T", "Pro"
_LOWER_WORD: Final = re.compile(r"(?<!\S)[a-zà-ÿąćęłńóśźżčďěňřšťůžőűğışçăâîșț]\w*")
_CAPITAL_WORD: Final = re.compile(r"(?<!\S)[A-ZÀ-ÞĄĆĘŁŃÓŚŹŻČĎĚŇŘŠŤŮŽŐŰĞİŞÇĂÂÎȘȚ]\w*")
_NON_LATIN: Final = re.compile(r"[^\W\d_a-zA-Z\u00c0-\u024f]")
_SENTENCE_MARK: Final = re.compile(r"[!?,;:！？，；：。]|\.(?:\s|$)")
_MODEL_NUMBER: Final = re.compile(r"\b[A-Za-z]+-?\d+[A-Za-z]*\b")
_CJK: Final = re.compile(r"[\u3400-\u9fff]")
_CJK_TEXT: Final = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")  # kana, kanji, hangul
_CJK_SENTENCE_CHARS: Final = 12  # "iPhoneから送信しました。" has 8
_MARKDOWN_LINK: Final = re.compile(r"\[([^\]]{0,200})\]\([^)]{0,500}\)")
_URL: Final = re.compile(r"<?https?://\S+>?")
_CLAUSE_END: Final = re.compile(r"[,;!(]|\.(?:\s|$)")

# Zero-width space, word joiner, BOM, soft hyphen and the bidi controls (which can also reorder
# what a reader sees). Not ZWNJ/ZWJ (U+200C/D): Persian, Indic scripts and emoji spell with them.
_INVISIBLE: Final = re.compile("[\u200b\u200e\u200f\u2060\ufeff\u202a-\u202e\u2066-\u2069\u00ad]")
_SPACES: Final = re.compile(r"[\u00a0\u202f\u2007\u3000]")
_TYPOGRAPHY: Final = str.maketrans("‘’‚‛“”„–—", "''''\"\"\"--")
QUOTE_PREFIX: Final = re.compile(r"^(?:\s*>)+\s?")
_MAX_ATTRIBUTION: Final = 320  # characters; longer "lines" are prose, not attributions


class Kind(StrEnum):
    """What a line of a reply is."""

    TEXT = "text"
    EMPTY = "empty"
    QUOTE = "quote"
    ATTRIBUTION = "attribution"
    HEADER = "header_block"
    SEPARATOR = "separator"
    SIGNATURE = "signature"
    SUPERCITE = "supercite"


def normalize(text: str) -> str:
    """One kind of line break and of space; invisible characters (zero-width space, bidi
    controls) removed, as they would split the words our patterns look for."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", text)
    return _SPACES.sub(" ", text)


def fold(text: str) -> str:
    """Whitespace, case and typographic quotes folded, for comparing reflowed text."""
    return " ".join(text.translate(_TYPOGRAPHY).split()).casefold()


def folded_lines(lines: Sequence[str]) -> tuple[str, list[int]]:
    """All lines folded and joined by single spaces (quote prefixes dropped), and where each
    line starts in the result: a reflowed or quoted copy of a text still matches."""
    starts: list[int] = []
    parts: list[str] = []
    position = 0
    for line in lines:
        starts.append(position)
        folded = fold(QUOTE_PREFIX.sub("", line))
        parts.append(folded)
        position += len(folded) + 1
    return " ".join(parts), starts


def classify(lines: Sequence[str]) -> tuple[list[Kind], dict[int, int]]:
    """A kind per line, and for each attribution the index of its last (wrapped) line."""
    fenced = _fenced_lines(lines)
    kinds = [Kind.TEXT] * len(lines)
    spans: dict[int, int] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        if index in fenced:
            index += 1
            continue
        if not line.strip():
            kinds[index] = Kind.EMPTY
        elif QUOTE.match(line):
            kinds[index] = Kind.QUOTE
        elif (end := attribution_end(lines, index)) is not None:
            start = index - 1 if _name_wrapped_before(lines, kinds, index, end) else index
            kinds[start : end + 1] = [Kind.ATTRIBUTION] * (end + 1 - start)
            spans[start] = end
            index = end + 1
            continue
        elif starts_header_block(lines, index):
            kinds[index] = Kind.HEADER
        else:
            kinds[index] = _single_line_kind(line)
        index += 1
    _mark_wrapped_quote_lines(lines, kinds)
    _mark_banners(lines, kinds)
    _settle_rules(lines, kinds)
    return kinds, spans


def _mark_banners(lines: Sequence[str], kinds: list[Kind]) -> None:
    """The title line above a header block ("Original Message", "Пересылаемое сообщение:")
    opens the earlier message too."""
    for index, kind in enumerate(kinds):
        if kind is not Kind.HEADER:
            continue
        above = index - 1
        if above >= 0 and kinds[above] is Kind.EMPTY:
            above -= 1
        if above >= 0 and kinds[above] is Kind.TEXT:
            if is_banner(lines[above], adjacent=above == index - 1):
                kinds[above] = Kind.SEPARATOR


_HISTORY: Final = frozenset(
    [Kind.QUOTE, Kind.ATTRIBUTION, Kind.HEADER, Kind.SEPARATOR, Kind.SIGNATURE, Kind.SUPERCITE]
)


def _settle_rules(lines: Sequence[str], kinds: list[Kind]) -> None:
    """A line of dashes under a heading or between table rows is text, not a delimiter, unless a
    contact block or an earlier message follows it ("-- " alone always is a signature)."""
    following: Kind | None = None  # the kind of the next line with content, walking backwards
    for index in range(len(kinds) - 1, -1, -1):
        kind = kinds[index]
        if kind is Kind.SEPARATOR and _is_table_or_heading_rule(lines, kinds, index):
            if following not in _HISTORY and not is_signature_block(
                _text_run(lines, kinds, index + 1)
            ):
                kinds[index] = Kind.TEXT
        if kind is not Kind.EMPTY:
            following = kinds[index]


def _text_run(lines: Sequence[str], kinds: Sequence[Kind], start: int) -> list[str]:
    """The paragraph of the agent's lines under the rule (from `start`, blank lines before it
    skipped), stopping at history: a signature starts right under its rule, while a list under a
    heading may end in a closing and a name further down (the signature rules see those), and a
    date in an attribution below is no phone number."""
    run: list[str] = []
    for index in range(start, len(lines)):
        if kinds[index] in _HISTORY or (kinds[index] is Kind.EMPTY and run):
            break
        if kinds[index] is not Kind.EMPTY:
            run.append(lines[index])
    return run


def _is_table_or_heading_rule(lines: Sequence[str], kinds: Sequence[Kind], index: int) -> bool:
    """A rule right under a line of text, with a row under it too or as long as that line."""
    if not _RULE.match(lines[index]) or index == 0 or kinds[index - 1] is not Kind.TEXT:
        return False  # a rule after a blank line stands apart: a delimiter
    below = kinds[index + 1] if index + 1 < len(kinds) else Kind.EMPTY
    ratio = len(lines[index].strip()) / max(1, len(lines[index - 1].strip()))
    return below is Kind.TEXT or 0.5 <= ratio <= 2


def _mark_wrapped_quote_lines(lines: Sequence[str], kinds: list[Kind]) -> None:
    """One or two unquoted lines squeezed between quoted ones, without a blank line, are a
    quoted line that a client re-wrapped without its ">" when the quoted line above reads as
    cut off (`_is_rewrapped`); otherwise they are an inline answer and stay text."""
    for index, kind in enumerate(kinds):
        if kind is not Kind.QUOTE or index + 1 >= len(kinds) or kinds[index + 1] is not Kind.TEXT:
            continue
        for width in (1, 2):
            after = index + 1 + width
            run = kinds[index + 1 : after]
            if after < len(kinds) and kinds[after] is Kind.QUOTE and set(run) == {Kind.TEXT}:
                if _is_rewrapped(lines[index], lines[index + 1]) or _runs_on(
                    lines[after - 1], lines[after]
                ):
                    kinds[index + 1 : after] = [Kind.QUOTE] * width
                break


# A quoted line a client wrapped is cut near its wrap width, mid-sentence.
_WRAP_WIDTH: Final = 60  # columns; clients wrap at 72-78, less the "> " prefixes
_FINISHED: Final = (".", "?", "!", "。", "？", "！", "…", "؟", "।", "۔", "։", "።")


def _is_rewrapped(quoted: str, following: str) -> bool:
    """The unquoted line continues the quoted one: that one does not end a sentence (an answer
    follows a question or a full stop: "> Navy?" / "Yes, done.") and is either as long as a
    wrapped line, continued by one long word (a link), or half as long and continued in lower
    case ("> … the box was" / "crushed.")."""
    text = QUOTE_PREFIX.sub("", quoted).rstrip(" *_")
    if not text or text.endswith(_FINISHED):
        return False
    columns, rest = _columns(text), following.strip()
    if columns >= _WRAP_WIDTH or (len(rest) >= 20 and " " not in rest):
        return True  # a full line, or one word too long for it (a link)
    return _starts_lower(rest) and columns >= _WRAP_WIDTH // 2  # "> Colour navy" / "ok": answer


def _runs_on(last: str, quoted: str) -> bool:
    """The quoted line below continues the unquoted one mid-sentence ("Please" / "> send a
    new one."): both are one re-wrapped quote, even where the line above ended a sentence."""
    text = QUOTE_PREFIX.sub("", quoted)
    return _starts_lower(text) and not last.rstrip().endswith(_FINISHED)


def _starts_lower(text: str) -> bool:
    """Starts with a lower-case letter (of a cased script): a sentence goes on."""
    first = text.lstrip()[:1]
    return first.isalpha() and first == first.lower() and first != first.upper()


def _columns(text: str) -> int:
    """Columns the text takes: wide (CJK) characters count twice, as a client wraps them."""
    return sum(2 if east_asian_width(char) in "WF" else 1 for char in text)


def _single_line_kind(line: str) -> Kind:
    stripped = line.strip()
    if _SIGNATURE_DASHES.match(stripped) or _is_mobile_signature(stripped) or is_sent_from(line):
        return Kind.SIGNATURE
    if _DELIMITER.match(stripped) or is_separator(stripped):
        return Kind.SEPARATOR
    if SUPERCITE.match(line):
        # Initials ("ОМ> …", "JS> …", as The Bat! quotes) mark a quote like "> ", after which
        # an answer may follow; a name ("Richard> …") is an embedded message: a cut.
        initials = line.strip().split(">", 1)[0]
        return Kind.QUOTE if initials.isupper() and len(initials) <= 3 else Kind.SUPERCITE
    return Kind.TEXT


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


def attribution_end(lines: Sequence[str], index: int) -> int | None:
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
    blanks = crossed = 0
    for end in range(index + 1, min(index + 6, len(lines))):
        part = QUOTE_PREFIX.sub("", lines[end]).strip()
        if not part:
            blanks += 1
            if blanks > 2 or parts[-1].endswith(_PARAGRAPH_END):
                return None  # a paragraph that ended a sentence is the answer, not a wrapped head
            crossed = len(parts)
            continue
        if QUOTE.match(lines[end]) and len(part) > 30:
            return None  # only a stray "> wrote:" of a wrapped attribution, never a quote
        if _NEW_ATTRIBUTION.match(part) or _ends_sentence(parts[-1]):
            return None  # another attribution starts, or the line before ended a sentence
        parts.append(part)
        joined = " ".join(parts)
        if len(joined) > _MAX_ATTRIBUTION:
            return None
        if _reads_as_attribution(joined, lines, end):
            rest = " ".join(parts[crossed:])
            if (
                crossed
                and mentions_date(parts[crossed])
                and _reads_as_attribution(rest, lines, end)
            ):
                return None  # the attribution starts below the blank line: "2020 Oslo" stays
            return end
    return None


def _ends_sentence(line: str) -> bool:
    """The line ends a sentence: a word and a full stop, "!" or "?", or a number and a full stop
    on a line of six words or more without an address ("… взять 46 вместо 44.", but not the
    wrapped "<a@b> schrieb am Mo., 3.")."""
    if _SENTENCE_END.search(line):
        return True
    return (
        line.endswith(".") and line[-2:-1].isdigit() and len(line.split()) >= 6 and "@" not in line
    )


def _reads_as_attribution(text: str, lines: Sequence[str], end: int) -> bool:
    """A dated attribution; or an undated one ("Ann wrote:") that starts like one ("On
    Monday, …") or introduces a quote."""
    if is_attribution(text):
        return True
    if is_shaped_attribution(text, above_history=False):
        return True
    if is_shaped_attribution(text, above_history=True) and _introduces_quote(lines, end):
        return True
    if not is_attribution(text, dated=False):
        return False
    return _PREFIXED.match(text) is not None or _introduces_quote(lines, end)


def _name_wrapped_before(lines: Sequence[str], kinds: Sequence[Kind], index: int, end: int) -> bool:
    """A client wrapped the sender's name onto the line before ("ACME Reviews" / "<x@y> schrieb
    am …:", "Ann" / "wrote:"): that line belongs to the attribution."""
    if index == 0 or kinds[index - 1] is not Kind.TEXT:
        return False
    first = lines[index].lstrip()
    joined = " ".join(QUOTE_PREFIX.sub("", line).strip() for line in lines[index : end + 1])
    match = _ATTRIBUTION.match(joined)
    starts_bare = match is not None and not match.group("head").strip()
    if not (starts_bare or first.startswith(("<", "[mailto:", "mailto:")) or EMAIL.match(first)):
        return False
    name = lines[index - 1].strip()
    return 0 < len(name) <= 80 and not name.endswith((".", "!", "?", ":", ";", ","))


def is_attribution(text: str, *, dated: bool = True) -> bool:
    """Names a verb of writing, ends in a colon, and carries a date or an address (unless not
    `dated`: "Ann wrote:"); after the verb comes at most a name, an address or a date."""
    if len(text) > (_MAX_ATTRIBUTION if dated else 160):
        return False
    if not text.rstrip(" \t*_").endswith((":", "：")) or VERB.search(text) is None:
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
    words = _BRACKETED.sub(" ", EMAIL.sub(" ", tail)).replace('"', " ").split()
    if " ".join(words).casefold() in _FOLLOWING:
        return True
    if dated and words and words[0].casefold() in _DATE_WORDS:
        return len(tail) <= 80 and not _SENTENCE_BREAK.search(tail)
    named = all(word[:1].isupper() or not word[:1].isalpha() for word in words)
    return len(words) <= 6 and (named or (dated and (addressed or len(words) <= 3)))


def _introduces_quote(lines: Sequence[str], index: int) -> bool:
    """The next line with content is quoted, or there is none."""
    for following in range(index + 1, len(lines)):
        if lines[following].strip():
            return QUOTE.match(lines[following]) is not None
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
        or VERB.search(line) is not None
        or may_start_shaped_attribution(line)
    )


# --------------------------------------------------------------------------- header blocks


def starts_header_block(lines: Sequence[str], index: int) -> bool:
    """A header block of an earlier message starts here: known header labels of three kinds, or
    of two when one is the sender (From:/Sent:/To:/Subject: and their translations); the same
    labels without colons (three kinds with the sender, one value an address or a time); or a
    run of "label: value" lines in any language (shapes.starts_label_run)."""
    if len(lines[index]) > 1000:
        return False
    if _HEADER_LINE.match(lines[index]):
        kinds, _ = _header_kinds(lines, index, _HEADER_LINE)
        if len(kinds) >= 3 or (len(kinds) == 2 and "from" in kinds):
            return True
    elif _BARE_HEADER_LINE.match(lines[index]):
        kinds, evidence = _header_kinds(lines, index, _BARE_HEADER_LINE)
        if len(kinds) >= 3 and "from" in kinds and evidence:
            return True
    return starts_label_run(lines, index)


def _header_kinds(
    lines: Sequence[str], index: int, pattern: re.Pattern[str]
) -> tuple[set[str], bool]:
    """The kinds of header lines from `index` on (one wrapped value or blank line may sit between
    two), and whether a value holds an address or a time."""
    kinds: set[str] = set()
    evidence = False
    misses = 0
    for line in lines[index : index + 12]:
        match = pattern.match(line) if len(line) <= 1000 else None
        if match is None:
            misses += 1
            if misses > 1:
                break
            continue
        misses = 0
        kinds.add(
            next(kind for kind, value in match.groupdict().items() if value and kind != "value")
        )
        evidence = evidence or EMAIL.search(line) is not None or mentions_time(line)
    return kinds, evidence


def is_separator(line: str) -> bool:
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
    if text.endswith(("。", "！", "？")) and len(_CJK_TEXT.findall(text)) >= _CJK_SENTENCE_CHARS:
        return False  # a sentence of the answer that quotes an order code ("J-20261202-118")
    return len(text) <= 40 and _CJK.search(text) is not None and _names_a_device(text)


def is_device_line(line: str, *, alone: bool = False) -> bool:
    """A short line naming a device or a mail app, without a sentence: what a mobile sign-off
    in a language we have no words for looks like ("Lähetetty iPhonesta", "… Galaxy …"). A
    line standing `alone` as the last paragraph may end in a full stop ("Εστάλη από το Samsung
    Galaxy smartphone μου."), and in a script without spaces be one word ("ส่งจากiPhone")."""
    text = line.strip().strip("()<>[]*_-— ").strip()
    stopped = alone and text.endswith((".", "。"))
    if stopped:  # a sentence unless a brand and no model number: "The Galaxy S24 is back."
        text = text[:-1].rstrip()
        if not _stopped_sign_off(text):
            return False
    words = len(text.split())
    least = 1 if alone and _NON_LATIN.search(text) else 2
    if not least <= words <= 8 or len(text) > 60 or _SENTENCE_MARK.search(text):
        return False
    if _DEVICE.search(text) is None and _EMBEDDED_BRAND.search(text) is None:
        return False
    return bool(_NON_LATIN.search(text)) or _ends_at_device(text)


def _ends_at_device(text: str) -> bool:
    """The device is the sign-off's last words, a model's parts ("Note 13 Pro", "14T") and one
    more word at most after it ("… my iPhone", "Von meinem iPhone gesendet"), and only words in
    lower case lead to it; "das iPhone ist wieder da" and "Bitte schicken Sie das Pixel zurück"
    are sentences."""
    ends = [
        match.end()
        for pattern in (_EMBEDDED_BRAND, _DEVICE, _CAMEL, _MODEL_NUMBER)
        for match in pattern.finditer(text)
    ]
    starts = [
        match.start()
        for pattern in (_EMBEDDED_BRAND, _DEVICE, _CAMEL, _MODEL_NUMBER)
        for match in pattern.finditer(text)
    ]
    if not ends:
        return False
    between = text[: min(starts)].split()[1:]  # "Sent from my …", not "Bitte … Sie das …"
    while between and _CAPITAL_WORD.match(between[-1]):
        between.pop()  # the device's own name: "… mano Zorbo X7"
    if any(not _LOWER_WORD.match(word) for word in between):
        return False
    tail = [word for word in text[max(ends) :].split() if not _MODEL_PART.match(word)]
    return len(tail) <= 1


def is_device_sign_off(line: str, *, stop: bool = True) -> bool:
    """A device or app sign-off in words nobody listed: a short line without a sentence mark
    that names a brand after words in lower case and ends there ("Rfxkdf de pe HUAWEI P60
    Pro", "Kklt nioo my iPhone"), or next to letters of another script ("Εστάλη από το
    Samsung Galaxy μου"). "Outlook with a reply" or "Samsung Galaxy S24" start with the
    brand: an answer. A final full stop is read past only when `stop` allows it."""
    text = _URL.sub(" ", _MARKDOWN_LINK.sub(r"\1", line)).strip().strip("()<>[]*_-— ").strip()
    if stop and text.endswith((".", "。")):
        text = text[:-1].rstrip()
        if not _stopped_sign_off(text):
            return False
    if not 1 <= len(text.split()) <= 7 or len(text) > 60 or _SENTENCE_MARK.search(text):
        return False
    brand = _brand(text)
    if brand is None:
        return False
    if _NON_LATIN.search(text) or _SUFFIXED.match(text, brand.end()):
        return True  # "… uTmlbj μου", "iPhone'umdan …": the brand inflected is no subject
    return _LOWER_WORD.search(text[: brand.start()]) is not None and _ends_at_device(text)


def _stopped_sign_off(text: str) -> bool:
    """A line that ended in a full stop is a sign-off only when it names a known brand, no
    model number, and in Latin script ends at most a word after its last brand or device word
    ("Elküldve a Samsung Galaxy okostelefonomról.", "… Galaxy akıllı telefonumdan gönderildi."):
    "das Samsung Galaxy ist wieder lieferbar." is a sentence."""
    if _DIGIT.search(text):
        return False
    if _NON_LATIN.search(text):
        return _brand(text) is not None  # "… Ondgyxl Pfoerp μου.": a new brand in Latin letters
    return _EMBEDDED_BRAND.search(text) is not None and _ends_at_device(text)


def _brand(text: str) -> re.Match[str] | None:
    """A device or app named by its shape where the name is new: a brand we know, a word in
    camel case ("iPhone", "OnePlus"), a model ("S24", "P60", "Flip6"), or a word in Latin
    letters, capitalised, in a line of another script ("Отправлено с Nothing")."""
    for pattern in (_EMBEDDED_BRAND, _CAMEL, _MODEL_NUMBER):
        if (match := pattern.search(text)) is not None:
            return match
    return _LATIN_WORD.search(text) if _NON_LATIN.search(text) else None


def is_app_sign_off(line: str) -> bool:
    """The shape of "Sent with Edison Mail" in any Latin-script language: up to six words
    without digits or sentence marks that end in two or more capitalised words (the app's
    name) after a word in lower case; "kommt am Montag" names no app. Only ever read in the
    last paragraph right above cut history."""
    text = line.strip()
    if not 2 <= len(text.split()) <= 6 or _DIGIT.search(text) or _SENTENCE_MARK.search(text):
        return False
    words = text.split()
    tail = len(words) - next(
        (index for index in range(len(words), 0, -1) if not _CAPITAL_WORD.match(words[index - 1])),
        0,
    )
    if tail >= 2 and _LOWER_WORD.match(words[len(words) - tail - 1]) is not None:
        return True
    return _is_sent_with_name(text)


def _is_sent_with_name(text: str) -> bool:
    """ "Sent via Superhuman", "Envoyé avec Spark", "Gesendet mit Newton": a verb of sending and
    a preposition (`_SENT_WITH`), then one to three words starting with a capital (the app's
    name). An all-capital short word is rather a carrier: "Sent via DHL" is an answer."""
    match = _SENT_WITH.match(text)
    if match is None:
        return False
    name = text[match.end() :].split()
    if not 1 <= len(name) <= 3 or not name[0][:1].isupper():  # in any cased script
        return False
    return not (name[0].isupper() and len(name[0]) <= 4)


def _names_a_device(text: str) -> bool:
    return _DEVICE.search(text) is not None or _MODEL_NUMBER.search(text) is not None
