"""Trigger parsing in a child process, so a burst's parsing does not hold the daemon's GIL.

The child is `python -m mailrelay.services.parser_process`: it imports `mailrelay.parsing`
and nothing else of ours. (A multiprocessing pool re-imports the parent's main module, the
`mailrelay` console script and with it the whole daemon: 0.7 s of CPU and 50 MB inside the
first burst.)
Parent and child speak over the child's stdin/stdout: a 4-byte big-endian length, then a
pickle. Pickle is safe here: the two ends are the same program, and nothing else reaches the
pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import re
import signal
import sys
from typing import BinaryIO

from mailrelay.core.models import ShipmentNotice
from mailrelay.parsing import parse_batch

#: One parse request: raw triggers, each with its shop's `order_reference_pattern`.
Jobs = list[tuple[bytes, re.Pattern[str] | None]]
_LENGTH = 4
#: A batch is at most 25 messages of max_message_size each; this only catches a stuck child.
REPLY_TIMEOUT = 120.0


class ParserGone(RuntimeError):
    """The child exited or broke the protocol; the caller parses in-process instead."""


class ParserProcess:
    """One long-lived child, started on first use; requests go one at a time."""

    #: How the child is started.
    command: tuple[str, ...] = (sys.executable, "-m", "mailrelay.services.parser_process")

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def parse(self, jobs: Jobs) -> list[ShipmentNotice]:
        """`parse_batch(jobs)` in the child. Raises ParserGone when the child is unusable
        (it is restarted on the next call)."""
        async with self._lock:
            proc = self._proc
            try:
                if proc is None or proc.returncode is not None:
                    proc = self._proc = await asyncio.create_subprocess_exec(
                        *self.command, stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                    )
                if proc.stdin is None or proc.stdout is None:  # not with PIPE for both
                    raise OSError("parser process has no pipes")
                payload = pickle.dumps(jobs, protocol=pickle.HIGHEST_PROTOCOL)
                async with asyncio.timeout(REPLY_TIMEOUT):
                    proc.stdin.write(len(payload).to_bytes(_LENGTH, "big") + payload)
                    await proc.stdin.drain()
                    size = int.from_bytes(await proc.stdout.readexactly(_LENGTH), "big")
                    ok, value = pickle.loads(  # noqa: S301 - our own child
                        await proc.stdout.readexactly(size))
            except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError,
                    pickle.PickleError) as exc:
                if proc is not None:
                    await self._discard(proc)
                raise ParserGone(f"parser process failed: {exc!r}") from exc
            if not ok:
                raise ParserGone(f"parser process raised {value}")
            notices: list[ShipmentNotice] = value
            return notices

    async def close(self) -> None:
        """End the child: EOF on its stdin, then a kill if it lingers."""
        if self._proc is not None:
            await self._discard(self._proc)

    async def _discard(self, proc: asyncio.subprocess.Process) -> None:
        if self._proc is proc:
            self._proc = None
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 2.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def serve_requests(source: BinaryIO, sink: BinaryIO) -> None:
    """The child's loop: requests in, notices out, until EOF."""
    while True:
        head = source.read(_LENGTH)
        if len(head) < _LENGTH:
            return
        jobs = pickle.loads(source.read(int.from_bytes(head, "big")))  # noqa: S301 - our parent
        try:
            answer: tuple[bool, object] = (True, parse_batch(jobs))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which falls back
            answer = (False, repr(exc))
        data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        sink.write(len(data).to_bytes(_LENGTH, "big") + data)
        sink.flush()


if __name__ == "__main__":
    # Ctrl-C in a terminal, and systemd's SIGTERM, reach the whole process group: the
    # daemon ends this child itself (EOF on stdin, also when the daemon dies), so a batch in
    # flight at shutdown is still answered.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve_requests(sys.stdin.buffer, sys.stdout.buffer)
