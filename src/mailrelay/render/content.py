"""Values from input shaped for the templates: names, products, multi-line text, stars,
headlines and times, cleaned of controls and of anything that could fake our reply marker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, tzinfo
from typing import Any, Final

from mailrelay.render.headers import aware, clean_header, control_replacement
from mailrelay.render.localized import short_date, short_datetime
from mailrelay.render.views import ReviewView

__all__ = [
    "TEXT_LIMIT",
    "checked_stars",
    "clean_products",
    "clean_display_text",
    "customer_name",
    "defang",
    "first_name_of",
    "format_time",
    "headline",
    "paragraphs",
    "review_id",
    "shorten",
    "stars_bar",
    "valid_stars",
]

TEXT_LIMIT: Final = 20_000
_LINE_BREAK: Final = re.compile(r"\r\n|[\r\n\v\f\x85\u2028\u2029]")
_BLANK_LINES: Final = re.compile(r"\n{3,}")


def customer_name(value: str | None) -> str | None:
    """The display name to greet; an address used as a name (x@y) is no name."""
    name = clean_header(value, limit=100)
    if not name or "@" in name:
        return None
    return name


def first_name_of(name: str | None) -> str | None:
    """The first word of a cleaned customer name: what the informal templates greet."""
    return name.split(" ", 1)[0] if name else None


def clean_products(products: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Products that have a name, their text values cleaned (they come from the trigger mail)."""
    out: list[dict[str, Any]] = []
    for product in products or ():
        if not isinstance(product, Mapping):
            continue
        cleaned = {
            str(key): clean_header(value, limit=300) if isinstance(value, str) else value
            for key, value in product.items()
        }
        if cleaned.get("name"):
            out.append(cleaned)
    return out


def checked_stars(value: Any) -> int:
    """A star count of 1 to 5, else ValueError."""
    count = valid_stars(value)
    if count is None:
        raise ValueError(f"stars must be an int from 1 to 5, not {value!r}")
    return count


def valid_stars(value: Any) -> int | None:
    """The star count when it is an int from 1 to 5 (True is no star count), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        return None
    return value


def review_id(review: ReviewView) -> str:
    """The review's id as the X-Mailrelay-Review header says it; ValueError when it has none."""
    value = clean_header(str(review.id or ""), limit=64)
    if not value:
        raise ValueError("the review has no id")
    return value


def stars_bar(count: int) -> str:
    return "★" * count + "☆" * (5 - count)


def defang(text: str) -> str:
    """Customer text inside a ticket can neither fake our reply marker nor a [mr:key]."""
    return text.replace("##-", "## -").replace("[mr:", "[mr :")


def clean_display_text(value: Any, limit: int = TEXT_LIMIT) -> str:
    """Multi-line text from input: line breaks become "\\n", other controls and bidi overrides
    go (as in clean_header), trailing spaces and runs of blank lines are trimmed."""
    if not value:
        return ""
    lines: list[str] = []
    for line in _LINE_BREAK.split(str(value)):
        chars = (c if (r := control_replacement(c)) is None else r for c in line)
        lines.append("".join(chars).rstrip())
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")
    return text[:limit].rstrip()


def paragraphs(text: str) -> list[list[str]]:
    """Paragraphs (split at blank lines) as lists of lines: <p> and <br> in HTML templates,
    which autoescape each line."""
    return [block.split("\n") for block in text.split("\n\n") if block.strip()]


def headline(title: Any, text: Any, limit: int = 40) -> str:
    """The title (cut at 80 characters), or else the first ~`limit` characters of the text."""
    if clean_title := clean_header(title, limit=1000):
        return shorten(clean_title, 80)
    return shorten(clean_header(text, limit=1000), limit)


def shorten(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    cut = value[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,.;:-") + "…"


def format_time(value: Any, zone: tzinfo, *, date_only: bool = False,
                locale: str | None = None) -> str | None:
    """An ISO time (or a datetime) in the shop's time zone: "2026-11-20 10:30 CET", or only
    the date; with a locale, that locale's way ("20.11.2026, 10:30 CET"). Text that is not ISO
    is shown cleaned."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return short_date(value, locale) if locale else value.isoformat()
    else:
        text = clean_header(str(value), limit=64)
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                return short_date(day, locale) if locale else day.isoformat()
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text or None
    local = aware(moment).astimezone(zone)
    if locale:
        return short_date(local, locale) if date_only else short_datetime(local, locale)
    return local.strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M %Z").strip()
