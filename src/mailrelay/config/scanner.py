"""The TOML text line by line: where each table and key is (tomllib keeps no positions), and
where a syntax error is. It reads no values.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from mailrelay.core.errors import ConfigError, ConfigProblem

Where = tuple[str | int, ...]

_KEYPART = r"""[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'"""
_KEYPATH = rf"(?:{_KEYPART})(?:\s*\.\s*(?:{_KEYPART}))*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_KEYPATH})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_KEYPATH})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_KEYPATH})\s*=")
_KEY_PARTS = re.compile(_KEYPART)


def key_parts(keypath: str) -> tuple[str, ...]:
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


def index_lines(text: str) -> dict[Where, int]:
    """Map each table and key path to its 1-based line; [[x]] tables get their 0-based index.

    tomllib keeps no positions, so we scan the (already valid) text: table headers set the
    current path, `key =` lines (outside multi-line strings and arrays) add to it.
    """
    lines: dict[Where, int] = {}
    arrays: dict[tuple[str, ...], int] = {}  # array-of-tables → index of its latest element
    table: Where = ()

    def with_indices(names: tuple[str, ...]) -> Where:
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
                names = key_parts(match[1])
                arrays[names] = arrays.get(names, -1) + 1
                # A new parent element restarts the numbering of its own sub-arrays.
                for nested in [k for k in arrays if k[: len(names)] == names and k != names]:
                    del arrays[nested]
                table = with_indices(names)
                lines.setdefault(table, number)
                continue
            if match := _TABLE_HEADER.match(line):
                table = with_indices(key_parts(match[1]))
                lines.setdefault(table, number)
                continue
            if match := _KEY_LINE.match(line):
                key = key_parts(match[1])
                for n in range(1, len(key) + 1):
                    lines.setdefault(table + key[:n], number)
                scanner.feed(line[match.end() :])
                continue
        scanner.feed(line)
    return lines


_SYNTAX_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)|\s*\(at end of document\)")


def _syntax_key(lines: list[str], line: int) -> str:
    """Best guess at the key a syntax error is in: the `key =` on its line, in its table."""
    table: tuple[str, ...] = ()
    for statement in lines[:line]:
        if header := _ARRAY_HEADER.match(statement) or _TABLE_HEADER.match(statement):
            table = key_parts(header[1])
    statement = lines[line - 1] if 0 < line <= len(lines) else ""
    if found := _KEY_LINE.match(statement):
        table += key_parts(found[1])
    return ".".join(table) or "toml"


def parse_toml(text: str, source: Path | None) -> dict[str, Any]:
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
