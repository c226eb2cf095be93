"""`mailrelay serve` as a real subprocess, for the tests that SIGKILL or SIGTERM it, and its
store read from outside (committed state only)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from mailrelay.config import Config

from .conftest import smtp_outbound

MAILRELAY = Path(sys.executable).parent / "mailrelay"


class Serve:
    """One `mailrelay serve` process with its log in a file (a full pipe would block it)."""

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(MAILRELAY), "serve", "--config", str(config), "--log-level", "INFO"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=env if env is not None else os.environ.copy(),
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def ready(self, within: float = 15.0) -> float:
        """Wait for the "mailrelay ready" line (listeners are bound); returns when (monotonic)."""
        deadline = time.monotonic() + within
        while "mailrelay ready:" not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"serve not ready after {within}s:\n{self.output()}")
            await asyncio.sleep(0.01)
        return time.monotonic()

    def kill(self) -> None:
        """SIGKILL and reap: no cleanup code in the daemon gets to run."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    async def terminate(self, within: float = 20.0) -> int:
        """SIGTERM; the exit status, waited for without blocking the event loop."""
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + within
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not stop within {within}s:\n{self.output()}")
            await asyncio.sleep(0.05)
        self._log.close()
        return self.proc.returncode


@contextlib.contextmanager
def reaping(processes: list[Serve] | None = None) -> Iterator[list[Serve]]:
    """Kill every daemon the test started, even when an assertion fails half-way."""
    daemons = processes if processes is not None else []
    try:
        yield daemons
    finally:
        for serve in daemons:
            with contextlib.suppress(Exception):
                serve.kill()


def count(db: Path, sql: str) -> int:
    """One number from the committed state of the store (WAL: readers see every commit)."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def relays_toml(config: Config, sink_port: int) -> str:
    """The relay.toml text for `mailrelay serve` processes sharing `config`'s (PostgreSQL)
    store: outbound to the test's sink, unpaced, no STARTTLS."""
    assert config.source is not None and config.store.url is not None
    return smtp_outbound(config.source.read_text(), sink_port, "starttls = false",
                         "rate_per_minute = 60000")
