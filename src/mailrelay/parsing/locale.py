"""The trigger locale: the block's, else Content-Language, else the HTML `lang`, else the body
text's detected language, each mapped to a built-in locale (core.locales).

Pure apart from building the language detector once, lazily (never at import: the parser
child should not pay for it until a trigger needs it). It knows no shop; callers fall back
to the shop's `locale` when this finds none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any

from mailrelay.core.locales import BUILTIN_LOCALES, map_locale

__all__ = ["DETECTED_LANGUAGES", "build_detector", "detect_language", "html_lang", "map_locale",
           "shipped_locales", "trigger_locale"]

#: What the detector tells apart: the shipped locales and the languages shops write in besides,
#: so that a Romanian text is read as such (and gets the shop's locale) rather than as the
#: nearest shipped language. Measured on 787 language-labelled short texts
#: (bench/trigger_locales.py): 41 wrong with only the SPEC's built-in locales, 13 with these;
#: with the eleven built-in locales of issue 13, 11 wrong and 4 missed, none Danish/Bokmål.
#: Norwegian Bokmål ("nb") is a built-in locale, so build_detector adds it; Nynorsk is left
#: out (in low accuracy mode it takes short Danish and Bokmål texts).
DETECTED_LANGUAGES = (
    "en", "de", "da", "nl", "sv", "fi", "fr", "es", "it", "pl", "pt", "ro", "tr", "cs",
    "sk", "hu", "cy", "tl", "et", "ca", "eu", "lt", "lv", "sl", "hr", "id", "ms", "sw", "af",
    "ru", "uk", "el", "bg", "sr",
)
#: Texts shorter than this say too little about their language to be trusted.
MIN_DETECT_CHARS = 20
_HTML_LANG_RE = re.compile(
    r"<html\b[^>]*?\blang\s*=\s*[\"']?\s*([A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*)", re.I)


def shipped_locales() -> frozenset[str]:
    """The built-in locales (core.locales.BUILTIN_LOCALES): those a trigger may be mapped to."""
    return frozenset(BUILTIN_LOCALES)


def html_lang(html_parts: Iterable[str]) -> str | None:
    """The `lang` of the first <html> element that has one."""
    for part in html_parts:
        match = _HTML_LANG_RE.search(part[:4096])
        if match:
            return match.group(1)
    return None


def trigger_locale(
    block_locale: str | None,
    content_language: str | None,
    html_parts: Iterable[str],
    text: str,
) -> tuple[str | None, str | None]:
    """(locale, source) of a trigger; (None, None) when nothing says (the shop's locale then).

    The block's locale is taken as written (a shop may have templates of its own for it);
    the others only when they map to a shipped locale.
    """
    if block_locale:
        return block_locale, "block"
    available = shipped_locales()
    mapped = map_locale(content_language, available)
    if mapped is not None:
        return mapped, "content-language"
    mapped = map_locale(html_lang(html_parts), available)
    if mapped is not None:
        return mapped, "html-lang"
    try:
        detected = detect_language(text)
    except Exception:  # a detector failure must not cost the notice its customer
        detected = None
    mapped = map_locale(detected, available)
    return (mapped, "detected") if mapped is not None else (None, None)


def detect_language(text: str, detector: Any = None) -> str | None:
    """The ISO 639-1 code of the text's language (one of DETECTED_LANGUAGES), or None if the
    text is too short to tell. `detector`: another build_detector() (bench/ compares)."""
    sample = " ".join(text.split())[:2000]
    if sum(ch.isalpha() for ch in sample) < MIN_DETECT_CHARS:
        return None
    language = (detector or _detector()).detect_language_of(sample)
    return None if language is None else str(language.iso_code_639_1.name).lower()


@cache
def _detector() -> Any:
    """Built on first use. Low accuracy mode: ~0.1 s and ~30 MB to build, where the high
    accuracy mode takes ~2 s and ~300 MB in the parser child, for no better answers on
    short texts (bench/trigger_locales.py)."""
    return build_detector(low_accuracy=True)


def build_detector(*, low_accuracy: bool) -> Any:
    """A lingua detector for DETECTED_LANGUAGES and the shipped locales (imports lingua)."""
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    languages = set(DETECTED_LANGUAGES) | {code.split("-")[0] for code in shipped_locales()}
    codes = [getattr(IsoCode639_1, code.upper()) for code in sorted(languages)]
    builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
    return (builder.with_low_accuracy_mode() if low_accuracy else builder).build()
