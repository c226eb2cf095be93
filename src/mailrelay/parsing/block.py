"""The structured block a shop puts in its trigger (`<script type="application/json+mailrelay">`,
or Trustpilot's): found, decoded and validated key by key. Never raises; records in Defects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from typing import Any, TypeVar

from mailrelay.core.models import Product

from .addresses import clean_name, normalize_address
from .decoding import clean_text
from .defects import Defects
from .message import Bodies
from .references import clean_reference

T = TypeVar("T")

#: A preferredSendTime after this year is a template error, not a plan.
_LAST_SEND_YEAR = 2999

# The structured block; the type match is case-insensitive and the quotes optional, because shops
# paste it into template editors that rewrite attributes.
_BLOCK_RE = re.compile(
    r"<script\b[^>]*?(?<![\w-])type\s*=\s*(?P<q>[\"']?)\s*application/json\+"
    r"(?P<kind>mailrelay|trustpilot)(?![\w+.-])\s*(?P=q)[^>]*>(?P<body>.*?)</script\s*>",
    re.IGNORECASE | re.DOTALL,
)
_LOCALE_RE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")


def find_block(bodies: Bodies, defects: Defects) -> tuple[str, dict[str, Any]] | None:
    """The first structured block that parses as a JSON object; mailrelay's wins a tie."""
    found: list[tuple[str, dict[str, Any]]] = []
    for text in [*bodies.html, *bodies.plain, *bodies.other]:
        for match in _BLOCK_RE.finditer(text):
            kind = match.group("kind").lower()
            data = _load_block_json(match.group("body"), kind, defects)
            if data is not None:
                found.append((kind, data))
    for kind, data in found:
        if kind == "mailrelay":
            return kind, data
    return found[0] if found else None


def _load_block_json(body: str, kind: str, defects: Defects) -> dict[str, Any] | None:
    """Plain JSON first, then HTML-unescaped (WYSIWYG editors turn quotes into &quot;)."""
    text = body.strip()
    for wrapper in (("<!--", "-->"), ("<![CDATA[", "]]>")):
        if text.startswith(wrapper[0]) and text.endswith(wrapper[1]):
            text = text[len(wrapper[0]) : -len(wrapper[1])].strip()
    error: Exception | None = None
    for candidate in (text, unescape(text)):
        try:
            data = json.loads(candidate)
        except (ValueError, RecursionError) as exc:
            error = error or exc
            continue
        if isinstance(data, dict):
            return data
        defects.add(f"block:{kind}: expected a JSON object, got {type(data).__name__}")
        return None
    defects.add(f"block:{kind}: invalid JSON ({type(error).__name__}: {error})")
    return None


@dataclass
class BlockFields:
    """What a structured block contributed; None means "not given", so headers decide."""

    email_given: bool = False
    email: str | None = None
    name: str | None = None
    reference: str | None = None
    locale: str | None = None
    send_at: datetime | None = None
    sender_name: str | None = None
    reply_to: str | None = None
    tags: tuple[str, ...] = ()
    products: tuple[Product, ...] = ()


def read_block(data: dict[str, Any], defects: Defects) -> BlockFields:
    """Validate each key on its own: one bad key costs that key, not the whole block."""
    fields = BlockFields()
    email = _block_string(data, "recipientEmail", defects)
    if email is not None:
        # An explicit recipient that is not an address rejects the shipment rather than falling
        # back to To, which in the Trustpilot setup is the shop's own archive mailbox.
        fields.email_given = True
        fields.email = normalize_address(email)
        if fields.email is None:
            defects.add("block: recipientEmail is not a valid address")
    fields.name = clean_name(_block_string(data, "recipientName", defects))
    fields.reference = clean_reference(_block_string(data, "referenceId", defects, number=True))
    locale = _block_string(data, "locale", defects)
    if locale is not None:
        if _LOCALE_RE.fullmatch(locale.strip()):
            fields.locale = locale.strip()
        else:
            defects.add("block: locale is not a language tag")
    send_time = _block_string(data, "preferredSendTime", defects)
    if send_time is not None:
        fields.send_at = _parse_send_time(send_time, defects)
    fields.sender_name = clean_name(_block_string(data, "senderName", defects))
    reply_to = _block_string(data, "replyTo", defects)
    if reply_to is not None:
        fields.reply_to = normalize_address(reply_to)
        if fields.reply_to is None:
            defects.add("block: replyTo is not a valid address")
    fields.tags = _read_tags(data.get("tags"), defects)
    fields.products = _read_products(data.get("products"), defects)
    return fields


def _block_string(
    data: dict[str, Any], key: str, defects: Defects, *, number: bool = False
) -> str | None:
    """A non-empty string value; null and "" count as absent (unfilled template variables)."""
    value = data.get(key)
    if value is None:
        return None
    if number and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if number and isinstance(value, float) and value.is_integer():
        return str(int(value))
    if not isinstance(value, str):
        defects.add(f"block: {key} should be a string, got {type(value).__name__}")
        return None
    return value if value.strip() else None


def _parse_send_time(value: str, defects: Defects) -> datetime | None:
    """ISO 8601 to an aware UTC datetime; a time without offset is taken as UTC."""
    try:
        when = datetime.fromisoformat(value.strip().upper())
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        defects.add(f"block: preferredSendTime is not ISO 8601 ({exc})")
        return None
    if when.year > _LAST_SEND_YEAR:
        # Year 9999 parses, but moving it into a shop's time zone and sending hours overflows
        # and the shipment failed (fuzz suite, issue 10 §6): no real send time is that far off.
        defects.add(f"block: preferredSendTime is implausibly far ahead ({when.year})")
        return None
    return when


def _list_items(
    value: Any, defects: Defects, name: str, kind: type[T], kind_word: str
) -> Iterator[T]:
    """The entries of the block list `name`s that are a `kind`; a defect for each other one.

    Lazy, so the defects keep their order with those the caller adds per entry."""
    if value is None:
        return
    if not isinstance(value, list):
        defects.add(f"block: {name}s should be a list, got {type(value).__name__}")
        return
    for item in value:
        if isinstance(item, kind):
            yield item
        else:
            defects.add(f"block: {name} should be {kind_word}, got {type(item).__name__}")


def _read_tags(value: Any, defects: Defects) -> tuple[str, ...]:
    tags: list[str] = []
    for item in _list_items(value, defects, "tag", str, "a string"):
        tag = clean_text(item)
        if tag is not None and tag not in tags:
            tags.append(tag)
    return tuple(tags)


#: A product's keys (SPEC: sku, name, url, image, gtin, mpn, brand) and Trustpilot's names
#: `productUrl` and `imageUrl`, accepted for `url` and `image`; the first one given wins.
_PRODUCT_KEYS = {
    "sku": "sku",
    "gtin": "gtin",
    "mpn": "mpn",
    "name": "name",
    "url": "product_url",
    "productUrl": "product_url",
    "image": "image_url",
    "imageUrl": "image_url",
    "brand": "brand",
}


def _read_products(value: Any, defects: Defects) -> tuple[Product, ...]:
    products: list[Product] = []
    for item in _list_items(value, defects, "product", dict, "an object"):
        values: dict[str, str | None] = {}
        for key, attr in _PRODUCT_KEYS.items():
            if values.get(attr) is not None:
                continue
            number = key in {"sku", "gtin", "mpn"}
            text = clean_text(_block_string(item, key, defects, number=number))
            if text is not None and attr.endswith("_url") and not _is_web_url(text):
                # Templates put these into href/src; javascript: and data: URLs must not get there.
                defects.add(f"block: product {key} is not an http(s) URL")
                text = None
            values[attr] = text
        if any(v is not None for v in values.values()):
            products.append(Product(**values))
    return tuple(products)


def _is_web_url(text: str) -> bool:
    return text.lower().startswith(("https://", "http://")) and " " not in text
