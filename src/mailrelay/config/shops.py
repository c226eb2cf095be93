"""The [[shop]] tables: one shop checked key by key, then the inbound addresses of all shops
against each other (each routes mail for one purpose of one shop only).
"""

from __future__ import annotations

import re
from datetime import time
from email.utils import parseaddr
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailrelay.config.model import ShopConfig
from mailrelay.config.tables import Table
from mailrelay.config.values import (
    ADDRESS_PATTERN,
    LOCALE,
    MAX_INVITE_DELAY,
    SHOP_ID,
    is_address,
    parse_hours,
)
from mailrelay.config.webhooks import read_webhooks


def _email(table: Table, key: str, value: str | None) -> str | None:
    if value is not None and not is_address(value):
        table.problem(key, f"{value!r} is not a valid email address")
        return None
    return value


def _addresses(table: Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    values = table.strings(key, default)
    seen: set[str] = set()
    for value in values:
        if not is_address(value):
            table.problem(key, f"{value!r} is not a valid email address")
        elif value.lower() in seen:
            table.problem(key, f"{value!r} is listed twice")
        seen.add(value.lower())
    return values


def _patterns(table: Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if not table.has(key):
        return table.strings(key, default)  # the default was checked where it came from
    values = table.strings(key, default)
    for value in values:
        if ADDRESS_PATTERN.fullmatch(value) is None:
            table.problem(key, f'{value!r} is not an address or a pattern such as "*@acme.example"')
    return values


def _timezone(table: Table) -> ZoneInfo:
    zone_name = table.string("timezone", "UTC")
    try:
        return ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        table.problem("timezone", f"unknown time zone {zone_name!r}")
        return ZoneInfo("UTC")


def _locale(table: Table) -> str:
    locale = table.string("locale", "en")
    if LOCALE.fullmatch(locale) is None:
        table.problem("locale", f'{locale!r} is not a locale such as "en" or "pt-BR"')
        return "en"
    return locale


def _send_hours(table: Table) -> tuple[time, time] | None:
    hours_text = table.string("send_hours", "08:00-20:00")
    try:
        return parse_hours(hours_text)
    except ValueError as error:
        table.problem("send_hours", str(error))
        return None


def _digest(table: Table) -> time | None:
    """`digest = "09:00"`: the local time of the agents' daily digest; "" (the default) = off."""
    text = table.string("digest", "").strip()
    if not text:
        return None
    match = re.fullmatch(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", text)
    if match is None:
        table.problem("digest", f'{text!r} is not a time of day such as "09:00" ("" = off)')
        return None
    return time(int(match.group(1)), int(match.group(2)))


def _reference_pattern(table: Table) -> re.Pattern[str] | None:
    source = table.optional_string("order_reference_pattern")
    if source is None:
        return None
    try:
        return re.compile(source)
    except re.error as error:
        table.problem("order_reference_pattern", f"is not a valid regular expression: {error}")
        return None


def _origins(table: Table) -> tuple[str, ...]:
    """Web origins as browsers send them: scheme://host[:port], nothing after."""
    origins = table.strings("embed_origins", ())
    for origin in origins:
        parts = urlsplit(origin)
        if (parts.scheme not in ("http", "https") or not parts.hostname
                or origin.rstrip("/") != f"{parts.scheme}://{parts.netloc}"):
            table.problem("embed_origins", f'{origin!r} is not an origin such as '
                          '"https://acme.example" (scheme and host, no path)')
    return tuple(origin.rstrip("/") for origin in origins)


def _web_url(table: Table, key: str) -> str | None:
    url = table.optional_string(key)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(
            c in url for c in "\r\n\"<> "):
        table.problem(key, f"{url!r} is not an http:// or https:// URL")
        return None
    return url


def _color(table: Table) -> str:
    color = table.string("accent_color", "#1d4ed8")
    if re.fullmatch(r"#[0-9a-fA-F]{6}", color) is None:
        table.problem("accent_color", f'{color!r} is not a colour such as "#1d4ed8"')
        return "#1d4ed8"
    return color.lower()


def read_shop(table: Table, hostname: str) -> ShopConfig:
    shop_id = table.required_string("id")
    if shop_id is not None and SHOP_ID.fullmatch(shop_id) is None:
        table.problem("id", f"{shop_id!r} may only contain a-z, 0-9 and -")
    shop_id = shop_id or ""
    name = table.string("name", shop_id)
    if "\r" in name or "\n" in name:
        table.problem("name", "must be a single line")
    bcc = _email(table, "bcc_address", table.required_string("bcc_address")) or ""
    cancel = _email(table, "cancel_address", table.optional_string("cancel_address"))
    sender = table.required_string("from") or ""
    _, addr = parseaddr(sender)
    if sender and ("\r" in sender or "\n" in sender or not is_address(addr)):
        table.problem("from", f'{sender!r} is not an address or "Name <address>"')
    reply = _email(table, "reply_address", table.string("reply_address", f"reply@{hostname}"))
    agents = _addresses(table, "agents", ())
    zone = _timezone(table)
    locale = _locale(table)
    hours = _send_hours(table)
    pattern = _reference_pattern(table)
    return ShopConfig(
        id=shop_id,
        name=name,
        bcc_address=bcc,
        cancel_address=cancel,
        from_address=sender,
        reply_address=reply or f"reply@{hostname}",
        agents=agents,
        agent_senders=_patterns(table, "agent_senders", agents),
        trigger_senders=_patterns(table, "trigger_senders", ()),
        invite_delay=table.duration("invite_delay", "7d", maximum=MAX_INVITE_DELAY),
        reminder_after=table.optional_duration("reminder_after", positive=True,
                                              maximum=MAX_INVITE_DELAY),
        dedupe_window=table.duration("dedupe_window", "90d"),
        send_hours=hours,
        timezone=zone,
        locale=locale,
        templates_dir=table.optional_path("templates_dir", directory=True),
        auto_reply_min_stars=table.integer("auto_reply_min_stars", 0, minimum=0, maximum=5),
        order_reference_pattern=pattern,
        retention=table.duration("retention", "180d", positive=True),
        alerts=_addresses(table, "alerts", ()),
        webhooks=read_webhooks(table),
        embed_origins=_origins(table),
        site_url=_web_url(table, "site_url"),
        logo_url=_web_url(table, "logo_url"),
        accent_color=_color(table),
        digest=_digest(table),
    )


def check_addresses(shops: list[tuple[Table, ShopConfig]]) -> None:
    """Inbound addresses route mail, so each may belong to one purpose of one shop only.

    bcc and cancel addresses are routing keys; an agent, reply or from address equal to one would
    loop our own mail back into intake. reply_address and agents may be shared between shops: the
    reply key, not the address, names the review.
    """
    routes: dict[str, str] = {}  # lower-cased address → "shop.acme.bcc_address"
    for table, shop in shops:
        for key in ("bcc_address", "cancel_address"):
            address = getattr(shop, key)
            if not address:
                continue
            owner = routes.get(address.lower())
            if owner is not None:
                table.problem(key, f"{address} is already used as {owner}")
            else:
                routes[address.lower()] = f"{table.name}.{key}"
    reply_domains = {shop.reply_domain.lower() for _, shop in shops}
    for table, shop in shops:
        for key in ("bcc_address", "cancel_address"):
            address = getattr(shop, key) or ""
            local, _, domain = address.lower().rpartition("@")
            if domain in reply_domains and local.startswith(("reply+", "bounce+")):
                table.problem(key, f"{address}: reply+ and bounce+ addresses are reserved")
        others: list[tuple[str, str]] = [("reply_address", shop.reply_address)]
        others += [("from", parseaddr(shop.from_address)[1])]
        others += [("agents", agent) for agent in shop.agents]
        for key, address in others:
            owner = routes.get(address.lower())
            if owner is not None:
                table.problem(key, f"{address} is already used as {owner} (a mail loop)")
