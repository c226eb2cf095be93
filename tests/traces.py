"""Every byte form a text can take in stored mail, and a scan of files for any of them.

Used to prove an erasure: an address (or a name) may sit in a file plainly, in any case,
quoted-printable (with a soft line break anywhere, '@' as =40), base64 at any of the three
byte alignments, in an RFC 2047 encoded-word (B or Q), or in a line-wrapped base64 body.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

_WRAPS = re.compile(rb"[\r\n\t ]+")


@dataclass(frozen=True)
class Forms:
    """Forms compared case-insensitively (`folded`) and case-sensitively (`exact`, base64)."""

    folded: frozenset[bytes] = field(default_factory=frozenset)
    exact: frozenset[bytes] = field(default_factory=frozenset)


def _qp(text: str) -> list[str]:
    """`text` as quoted-printable or Q-encoding would write it: each of '@', '.', ' ', '_' and
    '-' either plain or as =XX (and space as '_' in Q). A long text with many of them gets
    the all-plain and the all-encoded spellings only (the mix grows as 3 to the n)."""
    encodable = [ch for ch in text if ch in "@._- "]
    if len(encodable) > 6:
        coded = "".join(f"={ord(ch):02X}" if ch in "@._-" else ch for ch in text)
        return [text, coded, coded.replace(" ", "=20"), coded.replace(" ", "_")]
    spellings = [""]
    for ch in text:
        options = {ch}
        if ch in "@._- ":
            options.add(f"={ord(ch):02X}")
        if ch == " ":
            options.add("_")
        spellings = [s + o for s in spellings for o in options]
    return spellings


def _soft_breaks(text: str) -> list[str]:
    """A soft line break (`=` CRLF or `=` LF) at every position of `text`."""
    out = []
    for i in range(1, len(text)):
        for brk in ("=\r\n", "=\n"):
            out.append(text[:i] + brk + text[i:])
    return out


def _base64(data: bytes) -> list[bytes]:
    """The part of base64(x + data) that depends on `data` alone, for the 3 alignments."""
    out = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + data)
        start = 4 if pad else 0
        stop = ((pad + len(data)) // 3) * 4
        chunk = encoded[start:stop]
        if len(chunk) >= 8:
            out.append(chunk)
    return out


def forms_of(text: str) -> Forms:
    """Every form of `text` (an address or a name) to look for in raw bytes."""
    folded: set[bytes] = set()
    for spelling in {text, text.lower(), text.upper()}:
        for qp in _qp(spelling):
            folded.add(qp.encode().lower())
            for broken in _soft_breaks(qp) if len(qp) <= 64 else ():
                folded.add(broken.encode().lower())
    exact: set[bytes] = set()
    for spelling in {text, text.lower(), text.upper(), text.title()}:
        for data in (spelling.encode("utf-8"), spelling.encode("utf-16-le")):
            exact.update(_base64(data))
    return Forms(frozenset(folded), frozenset(exact))


def hits(data: bytes, forms: Forms) -> list[bytes]:
    """The forms found in `data`, also with line breaks and spaces taken out (a base64 body
    wrapped at 76 columns splits a form over lines)."""
    lowered = data.lower()
    unwrapped = _WRAPS.sub(b"", data)
    unwrapped_lower = unwrapped.lower()
    found = [f for f in forms.folded if f in lowered or f in unwrapped_lower]
    found += [f for f in forms.exact if f in data or f in unwrapped]
    return found


def scan(paths: list[Path], forms: Forms) -> dict[str, list[bytes]]:
    """Each file (and every file under each folder) with the forms found in it."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file())
        elif path.is_file():
            files.append(path)
    report = {}
    for file in files:
        found = hits(file.read_bytes(), forms)
        if found:
            report[str(file)] = sorted(found)[:5]
    return report
