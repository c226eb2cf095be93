"""A shop's own generator of suggested answers (`[drafts] command`): run without a shell, the
review as JSON on stdin, the draft on stdout. Any failure returns None (the caller falls back)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any, Final

log = logging.getLogger("mailrelay.drafts")

#: A draft longer than this is no draft: the command misbehaved.
MAX_DRAFT_CHARS: Final = 20_000
_MAX_READ: Final = MAX_DRAFT_CHARS * 4 + 1  # UTF-8 bytes of the longest acceptable draft


def run_command(command: Sequence[str], payload: Mapping[str, Any], timeout: float,
                *, review_id: int) -> str | None:
    """The command's draft for `payload`, or None (logged) on a non-zero exit, no output, more
    than MAX_DRAFT_CHARS, undecodable output, a time-out or a command that cannot start.

    Blocks up to `timeout` seconds: call it off the event loop. The command runs in its own
    process group, killed whole on a time-out."""
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    try:
        process = subprocess.Popen(  # noqa: S603 - argv from the operator's config, no shell
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)
    except OSError as error:
        log.warning("review=%s drafts.command cannot start: %s; using the templates",
                    review_id, error)
        return None
    try:
        out, err = process.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        log.warning("review=%s drafts.command timed out after %gs; using the templates",
                    review_id, timeout)
        return None
    return _draft_of(process.returncode, out, err, review_id)


def _draft_of(code: int, out: bytes, err: bytes, review_id: int) -> str | None:
    if code != 0:
        log.warning("review=%s drafts.command exited with %s (%s); using the templates",
                    review_id, code, err.decode("utf-8", "replace").strip()[:200])
        return None
    if len(out) > _MAX_READ:
        out = b"x" * _MAX_READ  # certainly too long, whatever it was
    try:
        text = out.decode("utf-8").replace("\r\n", "\n").strip()
    except UnicodeDecodeError:
        log.warning("review=%s drafts.command printed no UTF-8; using the templates", review_id)
        return None
    if not text:
        log.warning("review=%s drafts.command printed nothing; using the templates", review_id)
        return None
    if len(text) > MAX_DRAFT_CHARS:
        log.warning("review=%s drafts.command printed more than %d characters; using the "
                    "templates", review_id, MAX_DRAFT_CHARS)
        return None
    return text


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """End the command and anything it started, then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()
