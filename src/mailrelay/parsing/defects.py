"""What could not be read in a message, as short human-readable lines (bounded for junk mail).

Every reading records here instead of raising: nothing accepted may be lost to a parse error.
"""

from __future__ import annotations

from typing import Any

from .decoding import clean_text

# Junk mail can carry thousands of defects; the notice only needs enough to explain itself.
_MAX_DEFECTS = 30
_MAX_DEFECT_LEN = 160


class Defects:
    """Collects short, deduplicated, human-readable problems (bounded for junk mail)."""

    def __init__(self) -> None:
        self._items: list[str] = []

    def add(self, text: str) -> None:
        line = clean_text(text) or "unknown defect"
        line = line[:_MAX_DEFECT_LEN]
        if line not in self._items and len(self._items) < _MAX_DEFECTS:
            self._items.append(line)

    def add_exception(self, where: str, exc: BaseException) -> None:
        detail = str(exc)
        self.add(f"{where}: {type(exc).__name__}" + (f": {detail}" if detail else ""))

    def add_all(self, where: str, found: Any) -> None:
        """Record the parser's own defect objects (a list on messages and header objects)."""
        try:
            for defect in found or ():
                name = type(defect).__name__
                detail = str(defect)
                self.add(f"{where}: {name}" + (f": {detail}" if detail and detail != name else ""))
        except Exception as exc:  # a defect list that cannot be read is itself a defect
            self.add_exception(where, exc)

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self._items)
