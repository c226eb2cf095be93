"""Plural forms, dates and numbers the way each locale writes them (Babel's CLDR data), for
the mail templates and the web pages alike. Pure; an unknown locale is written as English."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.numbers import NumberPattern, format_decimal, parse_pattern
from jinja2 import pass_context
from jinja2.runtime import Context

from mailrelay.core.locales import ALIASES, FALLBACK_LOCALE

__all__ = ["MAIL_FILTERS", "MAIL_GLOBALS", "babel_locale", "decimal", "long_date", "plural_form",
           "plural_forms", "short_date", "short_datetime"]


@lru_cache(maxsize=64)  # locales may come from input: a bounded cache
def babel_locale(locale: str | None) -> Locale:
    """Babel's Locale for a tag ("de-AT", "nb", "no"), else English."""
    tag = (locale or FALLBACK_LOCALE).replace("-", "_")
    language, _, rest = tag.partition("_")
    tag = ALIASES.get(language.lower(), language) + ("_" + rest if rest else "")
    for candidate in (tag, language):
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse(FALLBACK_LOCALE)


def plural_form(locale: str | None, n: int | float) -> str:
    """The CLDR plural category of n in the locale: "one", "two", "few", "many" or "other"."""
    return str(babel_locale(locale).plural_form(n))


def plural_forms(locale: str | None) -> frozenset[str]:
    """Every plural category the locale uses ("other" always among them)."""
    return frozenset(babel_locale(locale).plural_form.tags) | {"other"}


def long_date(when: date, locale: str | None) -> str:
    """"20 November 2026", "20. November 2026", "20 listopada 2026"."""
    return str(format_date(when, format="long", locale=babel_locale(locale)))


def short_date(when: date, locale: str | None) -> str:
    """The locale's medium date: "Nov 20, 2026", "20.11.2026", "20.11.2026"."""
    return str(format_date(when, format="medium", locale=babel_locale(locale)))


def short_datetime(when: datetime, locale: str | None) -> str:
    """The medium date and short time with the zone's abbreviation: "20.11.2026, 10:30 CET"."""
    language = babel_locale(locale)
    clock = str(format_time(when, format="short", locale=language))
    moment = str(language.datetime_formats["medium"]).replace("{1}", short_date(when, locale))
    return f"{moment.replace('{0}', clock)} {when.strftime('%Z')}".strip()


@lru_cache(maxsize=8)
def _decimal_pattern(digits: int) -> NumberPattern:
    """The number pattern with `digits` decimals, parsed once: parsing it took two thirds of
    each number's formatting (a 52-week dashboard writes 180 numbers)."""
    return parse_pattern("#,##0." + "0" * digits if digits else "#,##0")


def decimal(value: float, locale: str | None, digits: int = 1) -> str:
    """value with exactly `digits` decimals in the locale's way: "4.5", "4,5"."""
    return str(format_decimal(value, format=_decimal_pattern(digits),
                              locale=babel_locale(locale)))


@pass_context
def _mail_plural_form(context: Context, n: int | float) -> str:
    """`{% set form = plural_form(count) %}` in a mail template: the mail's own locale."""
    return plural_form(context.get("locale"), n)


@pass_context
def _mail_long_date(context: Context, when: date | None) -> str:
    """`{{ when | long_date }}`: a date or datetime in the mail's locale; None stays empty."""
    return long_date(when, context.get("locale")) if when is not None else ""


@pass_context
def _mail_decimal(context: Context, value: float | None, digits: int = 1) -> str:
    """`{{ average | decimal }}`: a number in the mail's locale; None stays empty."""
    return decimal(value, context.get("locale"), digits) if value is not None else ""


MAIL_FILTERS: dict[str, Callable[..., Any]] = {
    "long_date": _mail_long_date, "decimal": _mail_decimal}
MAIL_GLOBALS: dict[str, Callable[..., Any]] = {"plural_form": _mail_plural_form}
