"""Reading one TOML table: typed getters that record each problem with its key and line and
fall back to a default, so every problem in a file is reported at once.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from mailrelay.config.scanner import Where
from mailrelay.config.values import (
    DEFAULT_MAX_DURATION,
    MAX_DURATION,
    DurationTooLong,
    duration_text,
    parse_duration,
    parse_size,
    shortened,
)
from mailrelay.core.errors import ConfigProblem


class _Missing:
    pass


#: What a `*_file` / `*_env` secret reads as when the config is loaded without secrets.
NOT_READ = "(secret not read)"

_MISSING: Final = _Missing()


def kind_of(value: object) -> str:
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


class Problems:
    """Collects problems, looking up the line of each from the key path."""

    def __init__(self, lines: dict[Where, int], file: str, read_secrets: bool = True) -> None:
        self.lines = lines
        self.file = file
        self.items: list[ConfigProblem] = []
        #: False: `*_file` / `*_env` secrets are checked for form but not read (see `load`).
        self.read_secrets = read_secrets

    def line_of(self, where: Where) -> int | None:
        for n in range(len(where), 0, -1):  # the key's own line, else its table's header
            if where[:n] in self.lines:
                return self.lines[where[:n]]
        return None

    def add(self, where: Where, key: str, message: str) -> None:
        self.items.append(ConfigProblem(key, message, self.line_of(where), self.file))


class Table:
    """One TOML table being read: typed getters that record problems and fall back to defaults."""

    def __init__(
        self, data: dict[str, Any], where: Where, name: str, problems: Problems, base: Path
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
            self.problem(key, f"must be {wanted}, not {kind_of(value)}")
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
            self.problem(key, f'must be a duration string such as "7d", not {kind_of(value)}')
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
            self.problem(key, f'must be at most "{duration_text(maximum)}", not {shortened(value)}')
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
            self.problem(key, f'must be a size such as "25MB" or bytes, not {kind_of(value)}')
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
            self.problem(key, f"must be an array of strings, not {kind_of(value)}")
            return default
        return tuple(value)

    def secret(self, key: str, *, always: bool = False) -> str | None:
        """`key` inline, `key_file` (a path; trailing newline stripped) or `key_env` (a name);
        `always`: read even for a command that reads no secrets (one every command needs)."""
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
            self.problem(form, f"must be a string, not {kind_of(value)}")
            return None
        if form == key:
            return value
        if not value:
            self.problem(form, "must name a file" if form.endswith("_file")
                         else "must name an environment variable")
            return None
        if not (self.problems.read_secrets or always):
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
                self.problem(key, "unknown key" + did_you_mean(key, self.used))


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name a misspelt `name` most likely meant (difflib), if any is close."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.7)
    return close[0] if close else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """"; did you mean X?" for the known key closest to a misspelt `name`, else ""."""
    close = closest(name, known)
    return f"; did you mean {close}?" if close else ""
