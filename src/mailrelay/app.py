"""Composition root and lifecycle: builds every part, starts them in order, stops them in reverse.

Each part registers its own cleanup on one AsyncExitStack as it starts (pymap's main.py is the
model); signals only set `stop`. No business logic here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from .clock import Clock, SystemClock
from .config import Config
from .errors import MailrelayError
from .intake import Intake
from .smtp_server import Handler, Listener
from .store import Store
from .tokens import TokenSigner, load_secret

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STARTUP = 3


def sd_notify(state: str) -> None:
    """Tell systemd about our state (Type=notify); a no-op without NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec, when the watchdog is on for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.5)
    except ValueError:
        return None


class Daemon:
    """All parts of one running mailrelay, reachable by tests (ports, store, intake)."""

    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.store: Store
        self.intake: Intake
        self.listener: Listener
        self._stack = AsyncExitStack()
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def smtp_port(self) -> int:
        return self.listener.port

    async def start(self) -> None:
        stack = self._stack
        try:
            self.store = Store(self.config.store.path)
            stack.callback(self.store.close)
            signer = TokenSigner(load_secret(self.config.security.secret_file))
            self.intake = Intake(self.config, self.store, signer, self.clock)
            worker = asyncio.create_task(self.intake.run(), name="intake")
            self._tasks.append(worker)
            stack.push_async_callback(_cancel, worker)
            self.listener = Listener(self.config.smtp, Handler(self.intake))
            await self.listener.start()
            stack.push_async_callback(self.listener.stop)
            interval = watchdog_interval()
            if interval:
                beat = asyncio.create_task(_heartbeat(interval), name="watchdog")
                stack.push_async_callback(_cancel, beat)
        except BaseException:
            await stack.aclose()
            raise

    async def stop(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> Daemon:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _heartbeat(interval: float) -> None:
    while True:
        sd_notify("WATCHDOG=1")
        await asyncio.sleep(interval)


async def run(
    config: Config,
    ready: Callable[[Daemon], object] | None = None,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
) -> int:
    """Run until `stop` is set (or SIGTERM/SIGINT); returns the process exit status."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_signal(signum: int) -> None:
        nonlocal interrupts
        interrupts += 1
        if signum == signal.SIGINT and interrupts > 1:
            log.warning("second interrupt: exiting at once")
            os._exit(130)
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (tests), or no signals on this platform
    daemon = Daemon(config, clock)
    try:
        try:
            await daemon.start()
        except (MailrelayError, OSError, ValueError) as exc:
            log.error("startup failed: %s", exc)
            return EXIT_STARTUP
        log.info("mailrelay ready: smtp %s:%d, %d shop(s)", config.smtp.host, daemon.smtp_port,
                 len(config.shops))
        sd_notify("READY=1")
        if ready is not None:
            ready(daemon)
        await stop.wait()
        sd_notify("STOPPING=1")
        await daemon.stop()
        log.info("mailrelay stopped")
        return EXIT_OK
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
