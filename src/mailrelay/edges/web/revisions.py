"""Each shop's review revision (store.shop_revision), read once for a burst of requests.

A product listing page asks for dozens of widgets at once: they share one store read, and a
request only ever joins a read that starts after it arrived, so it never sees an older state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class _Flight:
    """The read running for one shop, and the next one the late-comers wait for."""

    running: asyncio.Future[str] | None = None
    queued: asyncio.Future[str] | None = None


class ShopRevisions:
    """`await revisions.get(shop)`: a revision read after the call began."""

    def __init__(self, read: Callable[[str], Awaitable[str]]) -> None:
        self._read = read
        self._flights: dict[str, _Flight] = {}

    async def get(self, shop: str) -> str:
        flight = self._flights.setdefault(shop, _Flight())
        if flight.running is None:
            flight.running = asyncio.ensure_future(self._run(shop, flight))
            return await asyncio.shield(flight.running)
        if flight.queued is None:
            # The running read may have started before our caller's last write: wait for
            # the next one, shared by everyone who arrives while this one runs.
            flight.queued = asyncio.get_running_loop().create_future()
            flight.running.add_done_callback(lambda _: self._start_queued(shop, flight))
        return await asyncio.shield(flight.queued)

    def _start_queued(self, shop: str, flight: _Flight) -> None:
        queued, flight.queued = flight.queued, None
        flight.running = asyncio.ensure_future(self._run(shop, flight))
        if queued is not None:
            flight.running.add_done_callback(lambda done: _settle(queued, done))

    async def _run(self, shop: str, flight: _Flight) -> str:
        try:
            return await self._read(shop)
        finally:
            if flight.queued is None:
                flight.running = None
                self._flights.pop(shop, None)


def _settle(target: asyncio.Future[str], done: asyncio.Future[str]) -> None:
    if target.done():
        return
    if done.cancelled():
        target.cancel()
    elif (error := done.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(done.result())
