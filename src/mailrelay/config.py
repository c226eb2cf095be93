"""Read relay.toml (or the embedded defaults) into frozen dataclasses.

Pure: reads the config file, `*_file` secrets and the environment only; every problem found is
reported at once, naming the key and the file line. Never opens sockets or creates files.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import time, timedelta
from email.utils import parseaddr
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailrelay.core.errors import ConfigError, ConfigProblem

__all__ = [
    "Config",
    "HttpConfig",
    "ImapConfig",
    "MAX_INVITE_DELAY",
    "OutboundConfig",
    "SecurityConfig",
    "ShopConfig",
    "SmtpConfig",
    "StoreConfig",
    "defaults",
    "duration_text",
    "load",
    "locate",
    "parse_duration",
    "parse_size",
]

ENV_VAR: Final = "MAILRELAY_CONFIG"
DEFAULT_FILE: Final = "relay.toml"


# --------------------------------------------------------------------------- the dataclasses


@dataclass(frozen=True)
class StoreConfig:
    """[store]: where the SQLite database lives."""

    path: Path


@dataclass(frozen=True)
class SmtpConfig:
    """[smtp]: the inbound listener for BCC copies and direct replies."""

    host: str
    port: int
    hostname: str
    max_message_size: int
    allowed_clients: tuple[IPv4Network | IPv6Network, ...]
    tls_cert: Path | None
    tls_key: Path | None
    require_auth: bool
    users_file: Path | None
    max_sessions: int = 100
    timeout: timedelta = timedelta(minutes=5)
    #: Issue 10 §6: slow or idle clients must not hold the session cap.
    max_sessions_per_client: int = 50
    session_timeout: timedelta = timedelta(minutes=10)
    junk_command_limit: int = 20
    #: The MTA in front: only mail from these may carry Authentication-Results we believe.
    trusted_clients: tuple[IPv4Network | IPv6Network, ...] = ()

    def trusts(self, peer: str | None) -> bool:
        """Whether `peer` ("ip:port" as stored with a message) is in `trusted_clients`."""
        if not peer or not self.trusted_clients:
            return False
        host = peer.rpartition(":")[0] if ":" in peer else peer
        try:
            addr = ip_address(host.strip("[]").split("%")[0])
        except ValueError:
            return False
        return any(addr in net for net in self.trusted_clients)


@dataclass(frozen=True)
class HttpConfig:
    """[http]: the web listener and the public URL every link we send starts with."""

    host: str
    port: int
    base_url: str  # never ends with "/"
    #: Reverse proxies whose X-Forwarded-For is believed (rate limits, logs); nobody else's.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()


@dataclass(frozen=True)
class OutboundConfig:
    """[outbound]: how we send mail (an SMTP relay, or a Maildir for tests and demos)."""

    transport: str  # "smtp" | "maildir"
    host: str
    port: int
    starttls: bool
    tls: bool  # implicit TLS (port 465 style)
    username: str | None
    password: str | None
    maildir: Path
    rate_per_minute: int
    timeout: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class ImapConfig:
    """[imap]: the optional mailbox that receives agents' replies."""

    host: str
    port: int
    tls: bool
    starttls: bool
    username: str
    password: str | None
    oauth2_token_command: str | None
    folder: str
    authserv_id: str  # deprecated alias of [security] authserv_id
    processed_folder: str
    rejected_folder: str
    idle_timeout: timedelta = timedelta(minutes=5)
    poll_interval: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class SecurityConfig:
    """[security]: the HMAC key file for links and reply addresses."""

    secret_file: Path
    #: Our border MTA's authserv-id (RFC 8601); "" = do not require authenticated replies.
    authserv_id: str = ""


@dataclass(frozen=True)
class ShopConfig:
    """One [[shop]]: its addresses, agents, timing, locale and templates."""

    id: str
    name: str
    bcc_address: str
    cancel_address: str | None
    from_address: str  # TOML key "from"; may carry a display name: "ACME <reviews@acme.example>"
    reply_address: str
    agents: tuple[str, ...]
    agent_senders: tuple[str, ...]  # addresses or glob patterns ("*@acme.example")
    trigger_senders: tuple[str, ...]  # empty = anyone may trigger
    invite_delay: timedelta
    reminder_after: timedelta | None
    dedupe_window: timedelta
    # Local times of `timezone`, start < end; an end of "24:00" is time.max. None = any time.
    send_hours: tuple[time, time] | None
    timezone: ZoneInfo
    locale: str
    templates_dir: Path | None
    auto_reply_min_stars: int  # 0 = off
    order_reference_pattern: re.Pattern[str] | None  # first group (if any) is the reference
    retention: timedelta

    @property
    def reply_domain(self) -> str:
        """The domain of `reply_address`, where reply+<key>@ and bounce+<id>@ arrive."""
        return self.reply_address.rpartition("@")[2]


@dataclass(frozen=True)
class Config:
    """The whole configuration; `source` is the file it came from (None = embedded defaults)."""

    store: StoreConfig
    smtp: SmtpConfig
    http: HttpConfig
    outbound: OutboundConfig
    imap: ImapConfig | None
    security: SecurityConfig
    shops: tuple[ShopConfig, ...]
    source: Path | None
    #: Deprecations and other things `check` and `serve` report without refusing to start.
    warnings: tuple[str, ...] = ()

    def shop(self, shop_id: str) -> ShopConfig | None:
        """The shop with this id, or None."""
        for shop in self.shops:
            if shop.id == shop_id:
                return shop
        return None


# --------------------------------------------------------------------------- value parsers

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
    too_long = DurationTooLong(f"duration {_short(text)} is too long: at most "
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


def _short(text: str) -> str:
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
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_DOMAIN.pattern}")
_PATTERN = re.compile(r"[^\s@<>\"]*@[^\s@<>\"]+")
_SHOP_ID = re.compile(r"[a-z0-9-]+")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")
_HOURS = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", re.ASCII)


def _is_address(text: str) -> bool:
    return _ADDRESS.fullmatch(text) is not None and len(text) <= 254


def _parse_listen(text: str) -> tuple[str, int]:
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
        if _DOMAIN.fullmatch(host) is None:
            raise ValueError(f"invalid host {host!r} in listen address")
    # Port 0 asks the kernel for a free port (tests, benchmarks); the bound port is logged.
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid port {port!r}: must be 0..65535")
    return host, int(port)


def _parse_hours(text: str) -> tuple[time, time] | None:
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


# --------------------------------------------------------------------------- key → line index

_Where = tuple[str | int, ...]

_KEYPART = r"""[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'"""
_KEYPATH = rf"(?:{_KEYPART})(?:\s*\.\s*(?:{_KEYPART}))*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_KEYPATH})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_KEYPATH})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_KEYPATH})\s*=")
_KEY_PARTS = re.compile(_KEYPART)


def _key_parts(keypath: str) -> tuple[str, ...]:
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in _KEY_PARTS.findall(keypath))


class _Scanner:
    """Tracks multi-line strings and brackets, so only real `key =` lines are indexed."""

    def __init__(self) -> None:
        self.open_string: str | None = None  # '"""' or "'''" while inside one
        self.depth = 0

    @property
    def at_statement(self) -> bool:
        return self.open_string is None and self.depth == 0

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            if self.open_string is not None:
                if self.open_string == '"""' and text[i] == "\\":
                    i += 2
                elif text.startswith(self.open_string, i):
                    i += 3
                    self.open_string = None
                else:
                    i += 1
                continue
            char = text[i]
            if char == "#":
                return
            if text.startswith('"""', i) or text.startswith("'''", i):
                self.open_string = text[i : i + 3]
                i += 3
            elif char == '"':
                i += 1
                while i < len(text) and text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
                i += 1
            elif char == "'":
                end = text.find("'", i + 1)
                i = len(text) if end < 0 else end + 1
            else:
                if char in "[{":
                    self.depth += 1
                elif char in "]}":
                    self.depth -= 1
                i += 1


def _index_lines(text: str) -> dict[_Where, int]:
    """Map each table and key path to its 1-based line; [[x]] tables get their 0-based index.

    tomllib keeps no positions, so we scan the (already valid) text: table headers set the
    current path, `key =` lines (outside multi-line strings and arrays) add to it.
    """
    lines: dict[_Where, int] = {}
    arrays: dict[tuple[str, ...], int] = {}  # array-of-tables → index of its latest element
    table: _Where = ()

    def with_indices(names: tuple[str, ...]) -> _Where:
        where: list[str | int] = []
        for n in range(1, len(names) + 1):
            where.append(names[n - 1])
            if names[:n] in arrays:
                where.append(arrays[names[:n]])
        return tuple(where)

    scanner = _Scanner()
    for number, line in enumerate(text.split("\n"), 1):
        if scanner.at_statement:
            if match := _ARRAY_HEADER.match(line):
                names = _key_parts(match[1])
                arrays[names] = arrays.get(names, -1) + 1
                # A new parent element restarts the numbering of its own sub-arrays.
                for nested in [k for k in arrays if k[: len(names)] == names and k != names]:
                    del arrays[nested]
                table = with_indices(names)
                lines.setdefault(table, number)
                continue
            if match := _TABLE_HEADER.match(line):
                table = with_indices(_key_parts(match[1]))
                lines.setdefault(table, number)
                continue
            if match := _KEY_LINE.match(line):
                key = _key_parts(match[1])
                for n in range(1, len(key) + 1):
                    lines.setdefault(table + key[:n], number)
                scanner.feed(line[match.end() :])
                continue
        scanner.feed(line)
    return lines


# --------------------------------------------------------------------------- reading tables


class _Missing:
    pass


#: What a `*_file` / `*_env` secret reads as when the config is loaded without secrets.
NOT_READ = "(secret not read)"

_MISSING: Final = _Missing()


def _describe(value: object) -> str:
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
    ]
    for kind, text in kinds:
        if isinstance(value, kind):
            return f"{text} ({value!r})" if kind in (bool, int, float) else text
    return f"a date/time ({value!r})"


class _Problems:
    """Collects problems, looking up the line of each from the key path."""

    def __init__(self, lines: dict[_Where, int], file: str, read_secrets: bool = True) -> None:
        self.lines = lines
        self.file = file
        self.items: list[ConfigProblem] = []
        #: False: `*_file` / `*_env` secrets are checked for form but not read (see `load`).
        self.read_secrets = read_secrets

    def line_of(self, where: _Where) -> int | None:
        for n in range(len(where), 0, -1):  # the key's own line, else its table's header
            if where[:n] in self.lines:
                return self.lines[where[:n]]
        return None

    def add(self, where: _Where, key: str, message: str) -> None:
        self.items.append(ConfigProblem(key, message, self.line_of(where), self.file))


class _Table:
    """One TOML table being read: typed getters that record problems and fall back to defaults."""

    def __init__(
        self, data: dict[str, Any], where: _Where, name: str, problems: _Problems, base: Path
    ) -> None:
        self.data = data
        self.where = where
        self.name = name
        self.problems = problems
        self.base = base
        self.used: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self.data

    def problem(self, key: str, message: str) -> None:
        self.problems.add(self.where + (key,), f"{self.name}.{key}", message)

    def raw(self, key: str) -> object:
        self.used.add(key)
        return self.data.get(key, _MISSING)

    def _typed(self, key: str, kind: type, wanted: str) -> object:
        value = self.raw(key)
        if value is _MISSING:
            return value
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problem(key, f"must be {wanted}, not {_describe(value)}")
            return _MISSING
        return value

    def string(self, key: str, default: str) -> str:
        value = self._typed(key, str, "a string")
        return value if isinstance(value, str) else default

    def optional_string(self, key: str) -> str | None:
        """A string where "" (or leaving the key out) means None."""
        value = self._typed(key, str, "a string")
        return value if isinstance(value, str) and value else None

    def required_string(self, key: str) -> str | None:
        if key not in self.data:
            self.used.add(key)
            self.problem(key, "is required")
            return None
        value = self._typed(key, str, "a string")
        if value == "":
            self.problem(key, "must not be empty")
            return None
        return value if isinstance(value, str) else None

    def boolean(self, key: str, default: bool) -> bool:
        value = self._typed(key, bool, "true or false")
        return value if isinstance(value, bool) else default

    def integer(
        self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self._typed(key, int, "an integer")
        if not isinstance(value, int):
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            if maximum is None:
                self.problem(key, f"must be at least {minimum}, not {value}")
            else:
                self.problem(key, f"must be between {minimum} and {maximum}, not {value}")
            return default
        return value

    def port(self, key: str, default: int) -> int:
        return self.integer(key, default, minimum=1, maximum=65535)

    def _duration(self, key: str, positive: bool,
                  maximum: timedelta) -> timedelta | None | _Missing:
        value = self.raw(key)
        if value is _MISSING:
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.problem(
                key,
                f'must be a string with a unit such as "{value}s" or "7d", not a '
                f"bare number ({value!r})",
            )
            return _MISSING
        if not isinstance(value, str):
            self.problem(key, f'must be a duration string such as "7d", not {_describe(value)}')
            return _MISSING
        try:
            duration = parse_duration(value)
        except DurationTooLong:
            duration = MAX_DURATION + timedelta(seconds=1)
        except ValueError as error:
            self.problem(key, str(error))
            return _MISSING
        if positive and not duration:
            self.problem(key, f"must be longer than zero, not {value!r}")
            return _MISSING
        if duration > maximum:
            self.problem(key, f'must be at most "{duration_text(maximum)}", not {_short(value)}')
            return _MISSING
        return duration

    def duration(self, key: str, default: str, *, positive: bool = False,
                 maximum: timedelta = DEFAULT_MAX_DURATION) -> timedelta:
        value = self._duration(key, positive, maximum)
        return value if isinstance(value, timedelta) else parse_duration(default)

    def optional_duration(self, key: str, *, positive: bool = False,
                          maximum: timedelta = DEFAULT_MAX_DURATION) -> timedelta | None:
        """A duration where "" (or leaving the key out) means None."""
        if self.data.get(key) == "":
            self.used.add(key)
            return None
        value = self._duration(key, positive, maximum)
        return value if isinstance(value, timedelta) else None

    def size(self, key: str, default: str) -> int:
        value = self.raw(key)
        if value is _MISSING:
            return parse_size(default)
        if not isinstance(value, str | int) or isinstance(value, bool):
            self.problem(key, f'must be a size such as "25MB" or bytes, not {_describe(value)}')
            return parse_size(default)
        try:
            size = parse_size(value)
        except ValueError as error:
            self.problem(key, str(error))
            return parse_size(default)
        if size <= 0:
            self.problem(key, "must be larger than zero")
            return parse_size(default)
        return size

    def resolve(self, text: str) -> Path:
        """Relative paths are relative to the config file's directory (or the cwd)."""
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.base / path

    def path(self, key: str, default: str) -> Path:
        value = self.string(key, default)
        if not value:
            self.problem(key, "must not be empty")
            value = default
        return self.resolve(value)

    def optional_path(self, key: str, *, directory: bool = False) -> Path | None:
        """A path where "" means None; when given, it must exist (as a file or directory)."""
        value = self.optional_string(key)
        if value is None:
            return None
        path = self.resolve(value)
        if directory and not path.is_dir():
            self.problem(key, f"{path} is not a directory")
        elif not directory and not path.is_file():
            self.problem(key, f"{path} does not exist or is not a file")
        return path

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(key)
        if value is _MISSING:
            return default
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(key, f"must be an array of strings, not {_describe(value)}")
            return default
        return tuple(value)

    def secret(self, key: str) -> str | None:
        """`key` inline, `key_file` (a path; trailing newline stripped) or `key_env` (a name)."""
        forms = [form for form in (key, f"{key}_file", f"{key}_env") if form in self.data]
        self.used.update(forms)
        if not forms:
            return None
        if len(forms) > 1:
            for form in forms[1:]:
                self.problem(form, f"give only one of {', '.join(forms)}")
            return None
        form = forms[0]
        value = self.data[form]
        if not isinstance(value, str):
            self.problem(form, f"must be a string, not {_describe(value)}")
            return None
        if form == key:
            return value
        if not value:
            self.problem(form, "must name a file" if form.endswith("_file")
                         else "must name an environment variable")
            return None
        if not self.problems.read_secrets:
            return NOT_READ
        if form.endswith("_file"):
            path = self.resolve(value)
            try:
                return path.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as error:
                reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
                self.problem(form, f"cannot read {path}: {reason}")
                return None
        secret = os.environ.get(value)
        if secret is None:
            self.problem(form, f"environment variable {value} is not set")
        elif not secret:
            self.problem(form, f"environment variable {value} is empty")
        return secret or None

    def finish(self) -> None:
        """Report every key nobody asked for: a typo must not pass silently."""
        for key in self.data:
            if key not in self.used:
                self.problem(key, "unknown key")


# --------------------------------------------------------------------------- sections


def _read_listen(table: _Table, default: str) -> tuple[str, int]:
    value = table.string("listen", default)
    try:
        return _parse_listen(value)
    except ValueError as error:
        table.problem("listen", str(error))
        return _parse_listen(default)


def _read_store(table: _Table) -> StoreConfig:
    return StoreConfig(path=table.path("path", "var/mailrelay.db"))


def _read_smtp(table: _Table) -> SmtpConfig:
    host, port = _read_listen(table, "127.0.0.1:2525")
    # Default under .localhost (RFC 6761): dotted, so reply+/bounce+ addresses built from it
    # are valid mail addresses, and never routed off this host.
    hostname = table.string("hostname", "relay.localhost")
    if _DOMAIN.fullmatch(hostname) is None:
        table.problem("hostname", f"{hostname!r} is not a valid host name")
        hostname = "relay.localhost"
    clients = _networks(table, "allowed_clients")
    trusted = _networks(table, "trusted_clients")
    tls_cert = table.optional_path("tls_cert")
    tls_key = table.optional_path("tls_key")
    if (tls_cert is None) != (tls_key is None):
        missing = "tls_key" if tls_key is None else "tls_cert"
        table.problem(missing, "tls_cert and tls_key must be given together")
    require_auth = table.boolean("require_auth", False)
    users_file = table.optional_path("users_file")
    if require_auth and users_file is None:
        table.problem("users_file", "is required when require_auth = true")
    max_sessions = table.integer("max_sessions", 100, minimum=1)
    return SmtpConfig(
        host=host,
        port=port,
        hostname=hostname,
        max_message_size=table.size("max_message_size", "25MB"),
        allowed_clients=clients,
        tls_cert=tls_cert,
        tls_key=tls_key,
        require_auth=require_auth,
        users_file=users_file,
        max_sessions=max_sessions,
        timeout=table.duration("timeout", "5m", positive=True, maximum=timedelta(hours=1)),
        trusted_clients=trusted,
        # Default half of max_sessions (50 of 100, as Postfix): a fixed 50 let one client
        # take all of a smaller cap, e.g. 5, until session_timeout (issue 10 §6).
        max_sessions_per_client=table.integer("max_sessions_per_client",
                                              max(1, max_sessions // 2), minimum=1),
        session_timeout=table.duration("session_timeout", "10m", positive=True),
        junk_command_limit=table.integer("junk_command_limit", 20, minimum=1),
    )


def _networks(table: _Table, key: str) -> tuple[IPv4Network | IPv6Network, ...]:
    networks: list[IPv4Network | IPv6Network] = []
    for entry in table.strings(key, ()):
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            table.problem(key, f"{entry!r} is not an IP address or CIDR network")
    return tuple(networks)


def _read_http(table: _Table) -> HttpConfig:
    host, port = _read_listen(table, "127.0.0.1:8025")
    shown = f"[{host}]" if ":" in host else host
    derived = f"http://{shown}:{port}"
    base_url = table.string("base_url", derived).rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "://" not in base_url:
        table.problem("base_url", f"{base_url!r} must start with http:// or https:// and a host")
        base_url = derived
    elif parts.query or parts.fragment:
        table.problem("base_url", "must not have a query or fragment")
        base_url = derived
    proxies: list[IPv4Network | IPv6Network] = []
    for entry in table.strings("trusted_proxies", ()):
        try:
            proxies.append(ip_network(entry, strict=False))
        except ValueError:
            table.problem("trusted_proxies", f"{entry!r} is not an IP address or CIDR network")
    return HttpConfig(host=host, port=port, base_url=base_url, trusted_proxies=tuple(proxies))


def _read_outbound(table: _Table, present: bool) -> OutboundConfig:
    host = table.string("host", "")
    default_transport = "smtp" if present and host else "maildir"
    transport = table.string("transport", default_transport)
    if transport not in ("smtp", "maildir"):
        table.problem("transport", f'must be "smtp" or "maildir", not {transport!r}')
        transport = default_transport
    if transport == "smtp" and not host:
        table.problem("host", 'is required when transport = "smtp"')
    if host and _DOMAIN.fullmatch(host) is None and not _is_ip(host):
        table.problem("host", f"{host!r} is not a valid host name")
    tls = table.boolean("tls", False)
    starttls = table.boolean("starttls", not tls)
    if tls and starttls:
        table.problem("starttls", "tls (implicit TLS) and starttls exclude each other")
    username = table.optional_string("username")
    before = len(table.problems.items)
    password = table.secret("password")
    if (username is None) != (password is None) and len(table.problems.items) == before:
        if username is None:
            table.problem("username", "is required when a password is given")
        else:
            table.problem("password", "is required when username is given")
    return OutboundConfig(
        transport=transport,
        host=host or "localhost",
        port=table.port("port", 465 if tls else 587),
        starttls=starttls,
        tls=tls,
        username=username,
        password=password,
        maildir=table.path("maildir", "var/outbox"),
        rate_per_minute=table.integer("rate_per_minute", 600, minimum=1),
        timeout=table.duration("timeout", "60s", positive=True, maximum=timedelta(hours=1)),
    )


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def _read_imap(table: _Table) -> ImapConfig:
    host = table.required_string("host") or ""
    if host and _DOMAIN.fullmatch(host) is None and not _is_ip(host):
        table.problem("host", f"{host!r} is not a valid host name")
    username = table.required_string("username") or ""
    tls = table.boolean("tls", True)
    starttls = table.boolean("starttls", False)
    if tls and starttls:
        table.problem("starttls", "tls (implicit TLS) and starttls exclude each other")
    password = table.secret("password")
    command = table.optional_string("oauth2_token_command")
    forms = [k for k in ("password", "password_file", "password_env") if table.has(k)]
    if forms and table.has("oauth2_token_command"):
        table.problem("oauth2_token_command", f"give either {forms[0]} or oauth2_token_command")
    elif not forms and command is None:
        table.problem(
            "password", "give password, password_file, password_env or oauth2_token_command"
        )
    idle_timeout = table.duration("idle_timeout", "5m", positive=True)
    if idle_timeout >= timedelta(minutes=29):
        # RFC 2177: servers may drop an IDLE after 30 minutes; it must be re-issued before.
        table.problem("idle_timeout", "must be shorter than 29m (RFC 2177)")
    folders = {
        key: table.string(key, default)
        for key, default in (
            ("folder", "INBOX"),
            ("processed_folder", "mailrelay/processed"),
            ("rejected_folder", "mailrelay/rejected"),
        )
    }
    for key, value in folders.items():
        if not value.strip():
            table.problem(key, "must not be empty")
    return ImapConfig(
        host=host,
        port=table.port("port", 993 if tls else 143),
        tls=tls,
        starttls=starttls,
        username=username,
        password=password,
        oauth2_token_command=command,
        folder=folders["folder"],
        authserv_id=table.string("authserv_id", ""),
        processed_folder=folders["processed_folder"],
        rejected_folder=folders["rejected_folder"],
        idle_timeout=idle_timeout,
        poll_interval=table.duration("poll_interval", "60s", positive=True,
                                     maximum=timedelta(days=1)),
    )


def _read_security(table: _Table) -> SecurityConfig:
    authserv_id = table.string("authserv_id", "").strip()
    if any(c.isspace() or c == ";" for c in authserv_id):
        table.problem("authserv_id", f"{authserv_id!r} must be one word, such as the host name "
                      "your MTA writes first in its Authentication-Results headers")
    return SecurityConfig(secret_file=table.path("secret_file", "var/secret.key"),
                          authserv_id=authserv_id)


def _email(table: _Table, key: str, value: str | None) -> str | None:
    if value is not None and not _is_address(value):
        table.problem(key, f"{value!r} is not a valid email address")
        return None
    return value


def _addresses(table: _Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    values = table.strings(key, default)
    seen: set[str] = set()
    for value in values:
        if not _is_address(value):
            table.problem(key, f"{value!r} is not a valid email address")
        elif value.lower() in seen:
            table.problem(key, f"{value!r} is listed twice")
        seen.add(value.lower())
    return values


def _patterns(table: _Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if not table.has(key):
        return table.strings(key, default)  # the default was checked where it came from
    values = table.strings(key, default)
    for value in values:
        if _PATTERN.fullmatch(value) is None:
            table.problem(key, f'{value!r} is not an address or a pattern such as "*@acme.example"')
    return values


def _read_shop(table: _Table, hostname: str) -> ShopConfig:
    shop_id = table.required_string("id")
    if shop_id is not None and _SHOP_ID.fullmatch(shop_id) is None:
        table.problem("id", f"{shop_id!r} may only contain a-z, 0-9 and -")
    shop_id = shop_id or ""
    name = table.string("name", shop_id)
    if "\r" in name or "\n" in name:
        table.problem("name", "must be a single line")
    bcc = _email(table, "bcc_address", table.required_string("bcc_address")) or ""
    cancel = _email(table, "cancel_address", table.optional_string("cancel_address"))
    sender = table.required_string("from") or ""
    _, addr = parseaddr(sender)
    if sender and ("\r" in sender or "\n" in sender or not _is_address(addr)):
        table.problem("from", f'{sender!r} is not an address or "Name <address>"')
    reply = _email(table, "reply_address", table.string("reply_address", f"reply@{hostname}"))
    agents = _addresses(table, "agents", ())
    zone_name = table.string("timezone", "UTC")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        table.problem("timezone", f"unknown time zone {zone_name!r}")
        zone = ZoneInfo("UTC")
    locale = table.string("locale", "en")
    if _LOCALE.fullmatch(locale) is None:
        table.problem("locale", f'{locale!r} is not a locale such as "en" or "pt-BR"')
        locale = "en"
    hours_text = table.string("send_hours", "08:00-20:00")
    try:
        hours = _parse_hours(hours_text)
    except ValueError as error:
        table.problem("send_hours", str(error))
        hours = None
    source = table.optional_string("order_reference_pattern")
    pattern: re.Pattern[str] | None = None
    if source is not None:
        try:
            pattern = re.compile(source)
        except re.error as error:
            table.problem("order_reference_pattern", f"is not a valid regular expression: {error}")
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
    )


def _check_addresses(shops: list[tuple[_Table, ShopConfig]]) -> None:
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


# --------------------------------------------------------------------------- whole documents

_T = TypeVar("_T")
_TABLES: Final = ("store", "smtp", "http", "outbound", "imap", "security", "shop")


def _build(document: dict[str, Any], text: str, base: Path, source: Path | None,
           read_secrets: bool = True) -> Config:
    """Read every section, collecting all problems; raise one ConfigError at the end."""
    problems = _Problems(_index_lines(text), str(source) if source else "", read_secrets)

    for name, value in document.items():
        if name not in _TABLES:
            kind = "table" if isinstance(value, dict) else "key"
            problems.add((name,), name, f"unknown {kind}")

    def section(name: str) -> _Table:
        value = document.get(name, {})
        if not isinstance(value, dict):
            problems.add((name,), name, f"must be a table [{name}], not {_describe(value)}")
            value = {}
        return _Table(value, (name,), name, problems, base)

    def read(table: _Table, reader: Callable[[_Table], _T]) -> _T:
        result = reader(table)
        table.finish()
        return result

    store = read(section("store"), _read_store)
    smtp = read(section("smtp"), _read_smtp)
    http = read(section("http"), _read_http)
    outbound_present = isinstance(document.get("outbound"), dict)
    outbound = read(section("outbound"), lambda t: _read_outbound(t, outbound_present))
    imap = read(section("imap"), _read_imap) if "imap" in document else None
    security = read(section("security"), _read_security)
    warnings: list[str] = []
    if imap is not None and imap.authserv_id:
        # Issue 10: authserv_id applies to SMTP and IMAP replies alike, so it moved.
        line = problems.line_of(("imap", "authserv_id"))
        where = f" (line {line})" if line else ""
        if security.authserv_id and security.authserv_id != imap.authserv_id:
            problems.add(("imap", "authserv_id"), "imap.authserv_id",
                         f"differs from security.authserv_id {security.authserv_id!r}; "
                         "keep only security.authserv_id")
        else:
            warnings.append(f"imap.authserv_id{where} is deprecated: move it to [security] "
                            "authserv_id, where it applies to SMTP and IMAP replies alike")
            security = replace(security, authserv_id=imap.authserv_id)
    if security.authserv_id and not smtp.trusted_clients:
        warnings.append("security.authserv_id is set but smtp.trusted_clients is empty: no "
                        "reply arriving by SMTP can be authenticated (list the MTA in front)")

    if 1 < smtp.max_sessions <= smtp.max_sessions_per_client:
        warnings.append(f"smtp.max_sessions_per_client = {smtp.max_sessions_per_client} is not "
                        f"below max_sessions = {smtp.max_sessions}: one client (slow ones until "
                        "session_timeout) can hold every session and lock the platforms out")

    shops: list[tuple[_Table, ShopConfig]] = []
    raw_shops = document.get("shop", [])
    if not isinstance(raw_shops, list) or not all(isinstance(s, dict) for s in raw_shops):
        problems.add(("shop",), "shop", "each shop must be a [[shop]] table (note the [[ ]])")
        raw_shops = []
    elif not raw_shops:
        problems.add((), "shop", "at least one [[shop]] is required")
    for index, data in enumerate(raw_shops):
        shop_id = data.get("id")
        named = isinstance(shop_id, str) and _SHOP_ID.fullmatch(shop_id) is not None
        # Problems name a shop by its id; without a usable id, by position (shop[1] = the first).
        name = f"shop.{shop_id}" if named else f"shop[{index + 1}]"
        table = _Table(data, ("shop", index), name, problems, base)
        shops.append((table, read(table, lambda t: _read_shop(t, smtp.hostname))))
    seen: set[str] = set()
    for table, shop in shops:
        if shop.id and shop.id in seen:
            table.problem("id", f"{shop.id!r} is used by another [[shop]]")
        seen.add(shop.id)
    _check_addresses(shops)

    if problems.items:
        problems.items.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(problems.items)
    return Config(
        store=store,
        smtp=smtp,
        http=http,
        outbound=outbound,
        imap=imap,
        security=security,
        shops=tuple(shop for _, shop in shops),
        source=source,
        warnings=tuple(warnings),
    )


_SYNTAX_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)|\s*\(at end of document\)")


def _syntax_key(lines: list[str], line: int) -> str:
    """Best guess at the key a syntax error is in: the `key =` on its line, in its table."""
    table: tuple[str, ...] = ()
    for statement in lines[:line]:
        if header := _ARRAY_HEADER.match(statement) or _TABLE_HEADER.match(statement):
            table = _key_parts(header[1])
    statement = lines[line - 1] if 0 < line <= len(lines) else ""
    if found := _KEY_LINE.match(statement):
        table += _key_parts(found[1])
    return ".".join(table) or "toml"


def _parse(text: str, source: Path | None) -> dict[str, Any]:
    """tomllib.loads, turning a syntax error into a ConfigError with its line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = _SYNTAX_LINE.search(message)
        line: int | None = None
        if match is not None:
            if match[1]:
                line = int(match[1])
                detail = f" (column {match[2]})"
            else:
                line = text.count("\n") + (0 if text.endswith("\n") else 1)
                detail = " (at the end of the file)"
            message = message[: match.start()] + detail
        key = _syntax_key(text.split("\n"), line) if line is not None else "toml"
        problem = ConfigProblem(key, f"TOML syntax error: {message}", line, str(source or ""))
        raise ConfigError([problem]) from None


# The embedded defaults: what `mailrelay serve` runs with no config at all. A short invite_delay
# so that a newcomer sees an invitation arrive in ./var/outbox within minutes. The domains are
# under .localhost (RFC 6761): reserved, never routed, and dotted like real mail domains.
_DEFAULTS_TOML: Final = """
[smtp]
listen = "127.0.0.1:2525"
hostname = "relay.localhost"

[http]
listen = "127.0.0.1:8025"

[[shop]]
id = "demo"
name = "Demo Shop"
bcc_address = "reviews+demo@relay.localhost"
cancel_address = "cancel+demo@relay.localhost"
from = "Demo Shop <reviews@demo.localhost>"
reply_address = "reply@relay.localhost"
agents = ["agent@demo.localhost"]
agent_senders = ["*@demo.localhost"]
invite_delay = "2m"
send_hours = ""
timezone = "UTC"
"""


def defaults() -> Config:
    """The embedded defaults; relative paths (./var/...) resolve against the current directory."""
    return _build(tomllib.loads(_DEFAULTS_TOML), _DEFAULTS_TOML, Path.cwd(), None)


def locate(explicit: str | Path | None) -> Path | None:
    """--config PATH, else $MAILRELAY_CONFIG, else ./relay.toml if it exists, else None."""
    for key, value in (("--config", explicit), (ENV_VAR, os.environ.get(ENV_VAR))):
        if value is None or value == "":
            continue
        path = Path(value).expanduser()
        if not path.is_file():
            reason = "is a directory" if path.is_dir() else "does not exist"
            raise ConfigError([ConfigProblem(key, f"config file {path} {reason}", None, str(path))])
        return path.absolute()
    local = Path(DEFAULT_FILE)
    return local.absolute() if local.is_file() else None


def load(path: Path | None, *, read_secrets: bool = True) -> Config:
    """Read and validate a config file (None → the embedded defaults).

    Raises ConfigError listing every problem, each with its full key (`smtp.listen`,
    `shop.acme.invite_delay`, or `shop[2].id` for the second shop when it has no usable id) and
    its 1-based line in the file.

    `read_secrets=False` (CLI commands that never log in to a mail server): a password given as
    `*_file` or `*_env` is checked for form only and reads as NOT_READ, so `mailrelay
    shipments` works in a shell without the daemon's environment.
    """
    if path is None:
        return defaults()
    path = Path(path).expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "the file is not UTF-8 text"
        raise ConfigError(
            [ConfigProblem("config", f"cannot read {path}: {reason}", None, str(path))]
        ) from None
    return _build(_parse(text, path), text, path.parent, path, read_secrets)
