"""What `forget` costs on a store of N stored messages, and the two ways to leave no copy
of erased bytes in free pages: secure_delete (on for every connection) or a VACUUM after it.

    .venv/bin/python bench/forget.py [N]

Prints the time of the decoding scan and the erasure, with secure_delete on and off, and of
a VACUUM of the same store (the alternative to secure_delete).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from mailrelay.services import privacy
from mailrelay.store import NewMessage, Store


def message(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Shop <orders@shop.example>"
    msg["To"] = f"Customer {n} <customer{n}@example.com>"
    msg["Subject"] = f"Order #{n} has shipped"
    msg["Message-ID"] = f"<order{n}@platform.example>"
    msg.set_content(f"Dear customer {n},\n\n" + "Your parcel is on its way. " * 150)
    return msg.as_bytes()


def seed(path: Path, count: int) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with Store(path) as store:
        rows = [NewMessage(now, "127.0.0.1", "orders@shop.example", "reviews+a@relay.test",
                           "a", "shipment", f"<order{n}@platform.example>", f"mid:{n}",
                           message(n)) for n in range(count)]
        for start in range(0, count, 1000):
            store.write_sync(lambda q, s=start: [q.insert_message(m) for m in rows[s:s + 1000]])


def run(count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "base.db"
        seed(base, count)
        size = base.stat().st_size
        print(f"{count} messages, store {size / 1e6:.1f} MB")
        for secure in ("ON", "OFF"):
            path = Path(folder) / f"secure-{secure}.db"
            path.write_bytes(base.read_bytes())
            store = Store(path)
            store._writer_conn.execute(f"PRAGMA secure_delete={secure}")  # bench only
            start = time.perf_counter()
            report = privacy.forget(store, f"customer{count // 2}@example.com",
                                    datetime(2026, 12, 2, tzinfo=UTC), maildir=None)
            took = time.perf_counter() - start
            store.close()
            print(f"forget with secure_delete={secure}: {took:.2f} s "
                  f"(messages erased: {report.counts.get('messages', 0)})")
        conn = sqlite3.connect(Path(folder) / "secure-OFF.db")
        start = time.perf_counter()
        conn.execute("VACUUM")
        print(f"VACUUM instead: {time.perf_counter() - start:.2f} s more, holding the write"
              f" lock all along and needing {size / 1e6:.1f} MB of free disk")
        conn.close()


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
