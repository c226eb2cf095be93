"""Page texts of the web edge: which locale a visitor gets, and its translations.

Reads templates/web/i18n/<locale>.json and <locale>.<area>.json once; plural forms, dates and
numbers follow the locale (render.localized, Babel). A missing text falls back to English, a
safety net only: tests/test_locales.py keeps every built-in locale complete. It renders no page
and knows nothing of HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, tzinfo
from pathlib import Path
from typing import Any

from mailrelay.core.locales import FALLBACK_LOCALE, map_locale
from mailrelay.render.localized import decimal, long_date, plural_form
from mailrelay.store import from_iso

__all__ = ["FALLBACK_LOCALE", "I18N", "Strings", "Translator", "accept_languages"]

I18N = Path(__file__).parents[2] / "templates" / "web" / "i18n"


class _Values(dict[str, object]):
    """format_map values: a placeholder a translation names but the page does not give stays."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class Translator:
    """The texts of one locale, each missing key taken from English."""

    locale: str
    table: Mapping[str, Any]
    fallback: Mapping[str, Any]

    def raw(self, key: str) -> Any:
        return self.table[key] if key in self.table else self.fallback.get(key, key)

    def __call__(self, key: str, **values: object) -> str:
        text = str(self.raw(key))
        return text.format_map(_Values(values)) if values else text

    def plural(self, key: str, n: int, **values: object) -> str:
        """`<key>_<form>` for the locale's plural form of n (one, two, few, many, other), with
        {n} written the locale's way ("1 234" in Swedish)."""
        name = f"{key}_{plural_form(self.locale, n)}"
        if name not in self.table:
            other = f"{key}_other"
            name = other if other in self.table else f"{key}_{plural_form(FALLBACK_LOCALE, n)}"
        return self(name, n=decimal(n, self.locale, 0), **values)

    def date(self, when: date) -> str:
        """The locale's long date: "20 November 2026", "20. marraskuuta 2026"."""
        return long_date(when, self.locale)

    def decimal(self, value: float) -> str:
        """One decimal, the locale's separator: "4.5", "4,5"."""
        return decimal(value, self.locale)


class Strings:
    """All page texts, from templates/web/i18n/<locale>.json, and per shop with its own
    `<templates_dir>/web/i18n/` files merged over them key by key (for_shop)."""

    def __init__(self, folder: Path = I18N, *overrides: Path) -> None:
        # <locale>.json, plus <locale>.<area>.json per feature (products, embeds, …), merged.
        self.tables: dict[str, dict[str, Any]] = {}
        for source in (folder, *overrides):
            for path in sorted(source.glob("*.json")):
                locale = path.name.split(".", 1)[0]
                self.tables.setdefault(locale, {}).update(
                    json.loads(path.read_text(encoding="utf-8")))
        self.tables.setdefault(FALLBACK_LOCALE, {})
        self._folders = (folder, *overrides)
        self._shops: dict[Path, Strings] = {}

    def for_shop(self, templates_dir: Path | None) -> Strings:
        """These texts with a shop's `<templates_dir>/web/i18n/*.json` over them (read once):
        a shop rewords a text or adds a language of its own."""
        if templates_dir is None or not (templates_dir / "web" / "i18n").is_dir():
            return self
        found = self._shops.get(templates_dir)
        if found is None:
            found = self._shops[templates_dir] = Strings(
                *self._folders, templates_dir / "web" / "i18n")
        return found

    def pick(self, *candidates: str | None) -> str:
        """The first candidate we have texts for ("de-AT" → "de", "no" → "nb"), else English."""
        for candidate in candidates:
            found = map_locale(candidate, self.tables)
            if found is not None:
                return found
        return FALLBACK_LOCALE

    def translator(self, *candidates: str | None) -> Translator:
        locale = self.pick(*candidates)
        return Translator(locale, self.tables[locale], self.tables[FALLBACK_LOCALE])


def accept_languages(header: str | None) -> list[str]:
    """The languages of an Accept-Language header, most wanted first (RFC 9110 §12.5.4);
    `*` and those with q=0 left out."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((header or "").split(",")[:20]):
        tag, _, params = item.partition(";")
        tag = tag.strip()
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if tag and tag != "*" and weight > 0:
            ranked.append((-weight, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def with_local_dates(item: dict[str, Any], t: Translator, zone: tzinfo) -> dict[str, Any]:
    """A review as pages show it: `date` (the visitor's language), `datetime` (ISO, for
    <time>) in the shop's zone, and the response's `date` (both from stored UTC ISO text)."""
    created = from_iso(item.get("created_at"))
    local = created.astimezone(zone) if created else None
    item["date"] = t.date(local) if local else ""
    item["datetime"] = local.isoformat() if local else ""
    if item.get("response"):
        answered = from_iso(item["response"].get("created_at"))
        item["response"]["date"] = t.date(answered.astimezone(zone)) if answered else ""
    return item
