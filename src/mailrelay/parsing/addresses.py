"""Mailbox addresses and display names as mailrelay keeps them: one lowercased addr-spec, a
name fit to greet someone with. Pure; never raises.
"""

from __future__ import annotations

import re

from .decoding import CONTROL_RE, clean_text, fix_surrogates

# addr-spec checks: deliberately simpler than RFC 5322, stricter than "contains @".
_LOCAL_RE = re.compile(r"[^\s<>()\[\]\\,;:\"@]+")
_DOMAIN_LABEL_RE = re.compile(r"[^\W_](?:[\w-]*[^\W_])?")


def normalize_address(addr: str | None) -> str | None:
    """Return the lowercased addr-spec, or None when it is not a plausible mailbox.

    Lowercasing the local part is technically lossy (RFC 5321 §2.4), but every mailbox provider we
    meet treats it case-insensitively, and dedupe per customer address needs one spelling.
    """
    if addr is None:
        return None
    value = fix_surrogates(addr).strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    if not value or len(value) > 254 or CONTROL_RE.search(value) or value.count("@") != 1:
        return None
    local, domain = value.split("@")
    if len(local) > 64 or not _LOCAL_RE.fullmatch(local):
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL_RE.fullmatch(label) for label in labels):
        return None
    return value.lower()


def clean_name(display: str | None, address: str | None = None) -> str | None:
    """A display name fit to greet someone with, or None (empty, quoted noise, or an address)."""
    name = clean_text(display)
    if name is None:
        return None
    name = name.strip("\"' \t").strip()
    if not name or "@" in name or (address is not None and name.lower() == address):
        return None
    return name
