"""Parsers for the values a config holds: durations, sizes, listen addresses, send hours, and
the forms of addresses, shop ids and locales. Pure; each says what is wrong in a ValueError.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from ipaddress import ip_address
from typing import Final

_DURATION = re.compile(
    r"(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?",
    re.ASCII,
)
_DURATION_HINT = 'use a number and a unit (w, d, h, m, s), largest first: "7d", "36h", "1d12h"'


#: No duration anywhere may exceed this: beyond it `now + duration` leaves the calendar, and the
#: first shipment or purge would fail with an OverflowError instead of a message (issue 10).
MAX_DURATION: Final = timedelta(days=36500)
#: What a config key may hold unless it says otherwise: ten years covers every real setting.
DEFAULT_MAX_DURATION: Final = timedelta(days=3650)
#: The longest wait before an invitation (invite_delay, reminder_after, `invite --delay`).
MAX_INVITE_DELAY: Final = timedelta(days=365)


class DurationTooLong(ValueError):
    """A well-formed duration beyond MAX_DURATION."""


def duration_text(value: timedelta) -> str:
    """The shortest spelling parse_duration reads back: 3650 days → "3650d", 1 hour → "1h"."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_duration(text: str) -> timedelta:
    """Parse "7d", "36h", "90s", "15m", "2w" or a combination such as "1d12h"."""
    if not isinstance(text, str) or isinstance(text, bool):
        raise ValueError(f'a duration must be a string such as "7d", not {text!r}')
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"invalid duration {text!r}: {_DURATION_HINT}")
    too_long = DurationTooLong(f"duration {shortened(text)} is too long: at most "
                          f'"{duration_text(MAX_DURATION)}" (100 years)')
    digits = [value for value in match.groupdict().values() if value is not None]
    if any(len(value.lstrip("0")) > 12 for value in digits):
        raise too_long  # before int(): thousands of digits are slow or refused outright
    parts = {unit: int(value) for unit, value in match.groupdict().items() if value is not None}
    seconds = (parts.get("w", 0) * 604800 + parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600
               + parts.get("m", 0) * 60 + parts.get("s", 0))
    if seconds > MAX_DURATION.total_seconds():
        raise too_long
    return timedelta(seconds=seconds)


def shortened(text: str) -> str:
    """An input quoted in a message, shortened when someone pasted a novel."""
    return repr(text if len(text) <= 40 else text[:30] + "…")


_SIZE = re.compile(r"(\d+)\s*(?:([KMG])I?B?|B)?", re.IGNORECASE | re.ASCII)
_SIZE_FACTORS: Final = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str | int) -> int:
    """Parse a size in bytes: an int, "100B", "512KB", "25MB", "1GB" (1024-based)."""
    if isinstance(text, bool):
        raise ValueError(f'a size must be a string such as "25MB" or a number of bytes, not {text}')
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"a size cannot be negative: {text}")
        return text
    if not isinstance(text, str):
        raise ValueError(f'a size must be a string such as "25MB" or a number of bytes: {text!r}')
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f'invalid size {text!r}: use bytes or "512KB", "25MB", "1GB"')
    return int(match[1]) * _SIZE_FACTORS[(match[2] or "").upper()]


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]+"
_ALNUM = r"A-Za-z0-9\u0080-\U0010ffff"
_LABEL = rf"[{_ALNUM}](?:[{_ALNUM}-]*[{_ALNUM}])?"
DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{DOMAIN.pattern}")
ADDRESS_PATTERN = re.compile(r"[^\s@<>\"]*@[^\s@<>\"]+")
SHOP_ID = re.compile(r"[a-z0-9-]+")
LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")
_HOURS = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", re.ASCII)


def is_address(text: str) -> bool:
    return _ADDRESS.fullmatch(text) is not None and len(text) <= 254


def parse_listen(text: str) -> tuple[str, int]:
    """Split "host:port" or "[v6]:port"; ValueError with the reason otherwise."""
    hint = 'use "host:port", e.g. "127.0.0.1:2525" or "[::1]:2525"'
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"invalid listen address {text!r}: {hint}")
        try:
            if ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"invalid listen address {text!r}: {hint}")
        if ":" in host:
            raise ValueError(f"an IPv6 address must be in brackets: {hint}")
        if DOMAIN.fullmatch(host) is None:
            raise ValueError(f"invalid host {host!r} in listen address")
    # Port 0 asks the kernel for a free port (tests, benchmarks); the bound port is logged.
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid port {port!r}: must be 0..65535")
    return host, int(port)


def parse_hours(text: str) -> tuple[time, time] | None:
    if not text.strip():
        return None
    match = _HOURS.fullmatch(text.strip())
    if match is None:
        raise ValueError(f'invalid send_hours {text!r}: use "HH:MM-HH:MM", e.g. "08:00-20:00"')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"invalid time in send_hours {text!r}")
    start = time(h1, m1)
    end = time.max if h2 == 24 else time(h2, m2)
    if not start < end:
        raise ValueError(f"send_hours {text!r}: the start must be before the end")
    return start, end
