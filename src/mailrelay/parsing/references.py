"""Order reference rules (SPEC "Inbound mail"): a shop's own pattern, else hash, dash group,
token and bare number, each with the context that disqualifies it. Pure text in, text out.
"""

from __future__ import annotations

import re

from .decoding import clean_text

_MAX_REFERENCE_LEN = 200

# URLs and addresses are blanked first so that path segments, tracking ids in links and local
# parts never look like order numbers.
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


def clean_reference(value: str | None) -> str | None:
    """A reference as it is stored: one clean line, at most _MAX_REFERENCE_LEN characters."""
    text = clean_text(value)
    return None if text is None else text[:_MAX_REFERENCE_LEN]


def _search_pattern(pattern: re.Pattern[str], text: str) -> str | None:
    """First non-empty capture of the shop's pattern (group 1, or the whole match without one)."""
    for match in pattern.finditer(text):
        value = match.group(1) if pattern.groups else match.group(0)
        cleaned = clean_reference(value)
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
