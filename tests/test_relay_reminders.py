"""Two relays on one store looking for due work at the same moments send each customer one
invitation and, days later, one reminder: the reminder is claimed like the invitation (runs on
SQLite and, in the PostgreSQL pass, on one PostgreSQL database)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock

from .mailtools import eventually, send, settle, trigger, via_sink
from .sink import Sink
from .test_relays import copies

CUSTOMERS = 12


async def test_two_relays_send_each_customer_one_invitation_and_one_reminder(
    config: Config, clock: FrozenClock, sink: Sink,
) -> None:
    shared = via_sink(config, sink, reminder_after=timedelta(days=5))
    async with (Daemon(shared, clock, relay_id="relay-a") as a,
                Daemon(shared, clock, relay_id="relay-b") as b):
        for n in range(CUSTOMERS):
            await send((a, b)[n % 2], trigger(
                to=f"Customer {n} <customer{n}@example.com>",
                subject=f"A shipment from order #{4000 + n} is on the way"))
        await settle(a)
        await settle(b)

        def kinds_sent() -> Counter[str]:
            return Counter(row.kind for row in a.store.read(lambda q: q.list_mail())
                           if row.status == "sent")

        clock.advance(timedelta(days=7))
        await asyncio.gather(a.tick(), b.tick(), a.tick(), b.tick())
        await eventually(lambda: kinds_sent() == {"invitation": CUSTOMERS}, limit=30,
                         what="every invitation sent")
        clock.advance(timedelta(days=5))
        await asyncio.gather(a.tick(), b.tick(), a.tick(), b.tick())
        await eventually(lambda: kinds_sent() == {"invitation": CUSTOMERS,
                                                  "reminder": CUSTOMERS},
                         limit=30, what="every reminder sent")
        clock.advance(timedelta(days=30))
        await asyncio.gather(a.tick(), b.tick())
        await asyncio.sleep(0.5)  # time for a second copy, were there one
    seen = copies(sink)
    assert len(seen) == 2 * CUSTOMERS and set(seen.values()) == {1}, "a mail went out twice"
    assert Counter(rcpt for _f, rcpts, _raw in sink.messages for rcpt in rcpts) == {
        f"customer{n}@example.com": 2 for n in range(CUSTOMERS)}
