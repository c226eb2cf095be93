"""One relay's delivery worker as a process of its own, for tests/test_relays.py: opens the
relays' shared store, says "ready", waits for "go" on its stdin, sends everything due to the
sink, prints how many messages it attempted.

    python -m tests.relay_worker STORE RELAY_ID SINK_PORT NOW_ISO
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta
from pathlib import Path

from mailrelay.config.model import OutboundConfig
from mailrelay.core.clock import FrozenClock
from mailrelay.edges.mailer import SmtpTransport
from mailrelay.services.delivery import Delivery
from mailrelay.store import Store

#: Rows one claim takes: small, so that two relays interleave their claims.
BATCH = 10


def open_shared(location: str) -> Store:
    """The store the relays share at `location`: a PostgreSQL URL or a SQLite file."""
    if location.startswith("postgresql://"):
        from mailrelay.store.pg.database import PgStore  # with the PostgreSQL backend

        return PgStore(location)
    return Store(Path(location))


def to_sink(port: int) -> OutboundConfig:
    return OutboundConfig(transport="smtp", host="127.0.0.1", port=port, starttls=False,
                          tls=False, username=None, password=None, maildir=Path("unused"),
                          rate_per_minute=600_000, timeout=timedelta(seconds=10))


async def deliver(location: str, relay: str, port: int, now: datetime) -> int:
    store = open_shared(location)
    transport = SmtpTransport(to_sink(port), local_hostname=f"{relay}.test")
    try:
        delivery = Delivery(store, transport, FrozenClock(now), rate_per_minute=600_000,
                            sign_sender=str, relay=relay, batch_size=BATCH)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "go": both relays start together
        return await delivery.deliver_due()
    finally:
        await transport.close()
        store.close()


if __name__ == "__main__":
    location, relay, port, now = sys.argv[1:]
    attempted = asyncio.run(deliver(location, relay, int(port), datetime.fromisoformat(now)))
    print(f"attempted {attempted}", flush=True)
