"""The tree compat32's feed parser builds, built directly for plain MIME (the fast path's parser).

It declines (None) whatever the feed parser would record a defect for or treat specially.
"""

from __future__ import annotations

import bisect
import io
import re
from email import policy
from email.message import Message

from .message import MAX_DEPTH

_HEADER_START_RE = re.compile(r"[\041-\071\073-\176]+:")  # the feed parser's headerRE


def split_message(data: bytes) -> Message | None:
    """The tree compat32's feed parser builds, for plain MIME; None when it is not sure.

    The feed parser costs most of the fast path: it reads line by line through generators and
    re-checks every boundary on every line. This does the same for the messages the fast path
    can take anyway, with the feed parser's own rules: lines split at CR LF or LF (no lone CR),
    header lines as its headerRE defines them and stored by policy.compat32.header_source_parse,
    the part after the blank line as the payload, a multipart split at its boundary lines (the
    feed parser's boundary regular expression, on whole lines) with the line break before each
    boundary taken off the part before it. It returns None (and the feed parser reads the
    message) for anything the feed parser would record a defect for or treat specially: an
    unterminated header block, a unix From line, a missing or empty boundary, a missing start or
    close boundary, repeated boundary lines, message/* and multipart/digest parts, an encoding
    other than 7bit/8bit/binary on a multipart, nesting deeper than MAX_DEPTH.
    tests/test_parsing.py compares its trees with the feed parser's.
    """
    text = data.decode("ascii", "surrogateescape")
    if text.count("\r") != text.count("\r\n"):
        return None  # a lone CR ends a line for the feed parser; rare enough to leave to it
    lines = io.StringIO(text, newline="").readlines()
    return _split_part(lines, None, 0, len(lines), 0, False)


def _split_part(
    lines: list[str],
    dashed: list[int] | None,
    start: int,
    end: int,
    depth: int,
    in_multipart: bool,
) -> Message | None:
    """One part of lines[start:end]; `dashed` lists the lines starting with "--" (made by the
    outermost multipart, for all the parts inside it)."""
    if depth > MAX_DEPTH:
        return None
    head = _split_headers(lines, start, end)
    if head is None:
        return None
    msg, body = head
    ctype = msg.get_content_type()
    if ctype.startswith("message/") or ctype == "multipart/digest":
        return None
    if ctype.startswith("multipart/"):
        return _split_multipart(msg, lines, dashed, body, end, depth, in_multipart)
    payload = "".join(lines[body:end])
    if in_multipart:  # RFC 2046: the line break before a boundary belongs to the boundary
        payload = _strip_eol(payload)
    msg.set_payload(payload)
    return msg


def _split_headers(lines: list[str], start: int, end: int) -> tuple[Message, int] | None:
    """The header block of lines[start:end] as a compat32 Message, and the index of the first
    body line; None for what the feed parser would record a defect for."""
    msg = Message()
    index = start
    header: list[str] = []
    while index < end:
        line = lines[index]
        if line[0] in " \t":
            if not header:
                return None  # FirstHeaderLineIsContinuationDefect
            header.append(line)
        elif line[0] in "\r\n":  # the blank line: headers done (CR is always CR LF here)
            index += 1
            break
        elif line.startswith("From ") or not _HEADER_START_RE.match(line):
            return None  # unix From, or MissingHeaderBodySeparatorDefect
        else:
            if header:
                msg.set_raw(*policy.compat32.header_source_parse(header))
            header = [line]
        index += 1
    if header:
        msg.set_raw(*policy.compat32.header_source_parse(header))
    return msg, index


def _split_multipart(
    msg: Message,
    lines: list[str],
    dashed: list[int] | None,
    body: int,
    end: int,
    depth: int,
    in_multipart: bool,
) -> Message | None:
    """Attach the parts between msg's boundary lines in lines[body:end] to msg."""
    boundary = msg.get_boundary()
    cte = str(msg.get("content-transfer-encoding", "8bit")).lower()
    if not boundary or cte not in ("7bit", "8bit", "binary"):
        return None
    if dashed is None:
        dashed = [at for at in range(body, end) if lines[at].startswith("--")]
    marks = _boundary_lines(lines, dashed, body, end, "--" + boundary)
    if len(marks) < 2 or marks[0][1] or not marks[-1][1]:
        return None  # Start/CloseBoundaryNotFoundDefect, or no part at all
    for (at, _), (following, _) in zip(marks, marks[1:], strict=False):
        if following == at + 1:
            return None  # the feed parser swallows repeated boundary lines
        part = _split_part(lines, dashed, at + 1, following, depth + 1, True)
        if part is None:
            return None
        msg.attach(part)
    # Preamble and epilogue as the feed parser keeps them (nothing here reads them).
    if marks[0][0] > body:
        msg.preamble = _strip_eol("".join(lines[body : marks[0][0]]))
    epilogue = "".join(lines[marks[-1][0] + 1 : end])
    if in_multipart:  # the enclosing multipart's boundary takes the last line break, too
        msg.epilogue = _strip_eol(epilogue) if epilogue else None
    else:
        msg.epilogue = epilogue
    return msg


def _boundary_lines(
    lines: list[str], dashed: list[int], body: int, end: int, separator: str
) -> list[tuple[int, bool]]:
    """(line index, is the close boundary) of each boundary line in lines[body:end], up to and
    including the first close boundary, as the feed parser's boundary expression finds them."""
    boundary_re = re.compile(
        "(?P<sep>" + re.escape(separator) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    )
    marks: list[tuple[int, bool]] = []
    for at in dashed[bisect.bisect_left(dashed, body) : bisect.bisect_left(dashed, end)]:
        line = lines[at]
        if line.startswith(separator):
            found = boundary_re.match(line)
            if found:
                marks.append((at, bool(found.group("end"))))
                if found.group("end"):
                    break
    return marks


def _strip_eol(text: str) -> str:
    """The feed parser's NLCRE_eol removal: one trailing CR LF, CR or LF."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(("\r", "\n")) else text
