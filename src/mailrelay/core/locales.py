"""The built-in locales (the languages mailrelay ships mail templates and web texts for), in
one place, and how a language tag maps onto a set of locales. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

#: Every built-in locale, English (the fallback) first. A shop may add more through its
#: `templates_dir`; these are the ones the package carries for mail and for the web.
BUILTIN_LOCALES: Final = ("en", "de", "da", "nl", "sv", "nb", "fi", "fr", "es", "it", "pl")
FALLBACK_LOCALE: Final = "en"
#: Tags that ask for a locale by another name: "no" (Norwegian) and "nn" (Nynorsk) readers
#: read Bokmål, the written Norwegian of nearly all shop mail.
ALIASES: Final = {"no": "nb", "nn": "nb"}


def map_locale(tag: str | None, available: Iterable[str]) -> str | None:
    """The available locale a language tag (or a Content-Language list) asks for, or None:
    "de-AT" → "de", "da, en" → "da", "no-NO" → "nb" (when "no" itself is not available)."""
    known = {locale.lower(): locale for locale in available}
    for item in (tag or "").split(","):
        parts = item.split(";")[0].strip().replace("_", "-").lower().split("-")
        for end in range(len(parts), 0, -1):
            step = "-".join(parts[:end])
            found = known.get(step) or known.get(ALIASES.get(step, ""))
            if found is not None:
                return found
    return None
