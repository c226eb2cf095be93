"""A real HTTP receiver for webhook tests (aiohttp on 127.0.0.1): it records every POST and
answers as told — a status, or no answer in time — so a test can make it fail, time out and
recover."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

#: Tell the receiver to hold the request this long before answering (a receiver that hangs).
HANG = -1


@dataclass
class Delivery:
    """One POST as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    accepted: bool = False

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """What arrived, and the answers still to give (then 200 for everything)."""

    port: int = 0
    received: list[Delivery] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    hang_seconds: float = 5.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/reviews"

    def events(self) -> list[dict[str, Any]]:
        """The bodies of the POSTs answered 2xx, in order (what the receiver kept)."""
        return [d.event for d in self.received if d.accepted]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        delivery = Delivery(request.path, dict(request.headers), body)
        self.received.append(delivery)
        answer = self.answers.pop(0) if self.answers else 200
        if answer == HANG:
            await asyncio.sleep(self.hang_seconds)
            answer = 200
        delivery.accepted = 200 <= answer < 300
        return web.Response(status=answer, text="ok" if answer < 300 else "receiver says no")


@asynccontextmanager
async def running_receiver(port: int) -> AsyncIterator[Receiver]:
    """A receiver on 127.0.0.1:`port` (from `free_port`, so a test can start it late)."""
    receiver = Receiver(port)
    app = web.Application()
    app.router.add_post("/hooks/reviews", receiver.handle)
    # A hanging answer outlives its test: stop waiting for it after a second (aiohttp's
    # default is 60 s) instead of holding the test's teardown.
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield receiver
    finally:
        await runner.cleanup()
