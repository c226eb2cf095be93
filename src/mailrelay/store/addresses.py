"""Addresses as the store compares and remembers them: hashed, matched whole inside text, logged.

Pure functions; no SQL here.
"""

from __future__ import annotations

import hashlib
import re


def address_hash(email: str) -> str:
    """How a forgotten address is remembered for suppression: never in clear text."""
    return "sha256:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()


#: Characters that may stand next to an address's ends and still be part of a longer one:
#: `nn@example.com` is not named by `ann@example.com`, nor `ann@example.co`.
#: ('=' is left out: `?to=ann@…` in a link names ann; an address with '=' in it is rare.)
_LOCAL_CHARS = "A-Za-z0-9.!#$%&'*+/?^_`{|}~\\-"


def address_pattern(email: str) -> re.Pattern[str]:
    """A case-insensitive pattern finding `email` as a whole address inside text."""
    return re.compile(
        f"(?<![{_LOCAL_CHARS}\u0080-\U0010ffff]){re.escape(email.strip())}"
        "(?![A-Za-z0-9\\-\u0080-\U0010ffff]|\\.[A-Za-z0-9])", re.IGNORECASE)


def address_pattern_bytes(email: str) -> re.Pattern[bytes]:
    """`address_pattern` for raw mail (UTF-8 bytes)."""
    return re.compile(
        f"(?<![{_LOCAL_CHARS}\x80-\xff]){re.escape(email.strip())}"
        "(?![A-Za-z0-9\\-\x80-\xff]|\\.[A-Za-z0-9])".encode(), re.IGNORECASE)


def address_ref(email: str | None) -> str:
    """An address as logs show it: a short hash, the same each time (to follow one sender
    through the log) but not the address (issue 10 §6: logs name ids, not addresses)."""
    if not email:
        return "-"
    return address_hash(email)[:19]

