"""Micro-benchmark of intake's two hot paths, in-process, without SMTP.

(a) receive: CPU per `Intake.receive` call (the SMTP 250 path: store the raw message, commit, wake
    the caller) under N concurrent callers, split into the event-loop thread and the rest (the
    store's writer thread, SQLite included).
(b) process: CPU per message of `process_shipment` inside the writer, over pre-parsed notices
    (parsed once up front with `parsing.parse_trigger`; only the writer jobs are timed), in
    batches of 25 like `Intake._commit`, each batch stored (untimed) just before it is processed
    as when intake follows the listener; a mix of scheduled, duplicate, capped, suppressed and
    rejected outcomes. Its wall figure is the processing writes' (commit and fsync included).

    .venv/bin/python bench/intake_path.py [--calls 3000] [--callers 10] [--notices 2000]
        [--rounds 5] [--only receive|process] [--dir DIR]

It runs against whichever `mailrelay` it imports, so an old checkout can be compared with
`PYTHONPATH=<old>/src` (a store without `write_sync(..., small=)` is timed without it).

Each round uses a fresh store; the best (lowest) round and the median are reported. CPU time, not
wall time, is the figure of merit: the commit's fsync costs wall time but hardly any CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from benchconfig import relay_toml
from mailrelay.config import Config, load
from mailrelay.core.clock import SystemClock
from mailrelay.core.tokens import TokenSigner
from mailrelay.parsing import parse_trigger
from mailrelay.services.inbound import dispatch_table
from mailrelay.services.intake import Intake, process_shipment
from mailrelay.store import InboundMessage, NewMessage, Queries, Store

BCC = "reviews+acme@relay.test"
SENDER = "platform@shop.example"
MESSAGE_SIZE = 5 * 1024
BATCH = 25  # Intake's default batch_size
WARMUP = 200  # receive calls before the clock starts

FILLER = (
    "Thank you for shopping with ACME Shoes. Your parcel is on its way and should arrive soon."
)


def build_message(run: str, n: int, customer: str | None, reference: int) -> bytes:
    """A ~5 KB trigger like bench/ingest.py's (unique Message-ID)."""
    lines: list[str] = []
    size = 0
    while size < MESSAGE_SIZE - 600:
        line = f"{FILLER} ({len(lines)})\r\n"
        lines.append(line)
        size += len(line)
    to = f"Customer {n} <{customer}>" if customer else "undisclosed-recipients:;"
    head = (
        f"From: ACME Shoes <{SENDER}>\r\n"
        f"To: {to}\r\n"
        f"Subject: Order #{reference} has shipped\r\n"
        f"Message-ID: <bench-{run}-{n}@platform.example>\r\n"
        "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
        f"Hello Customer {n},\r\n\r\nyour order #{reference} has shipped.\r\n\r\n"
    )
    return (head + "".join(lines)).encode()


def notice_mix(count: int, run: str) -> list[bytes]:
    """Mostly new orders; every 10th repeats an order reference (duplicate), every 7th an
    earlier customer (capped), every 13th a suppressed customer, every 50th has no customer."""
    out = []
    for i in range(count):
        n = 10000 + i
        reference = n - 5 if i % 10 == 9 else n
        customer: str | None = f"customer{run}-{n}@example.com"
        if i % 7 == 6:
            customer = f"customer{run}-{n - 3}@example.com"
        elif i % 13 == 12:
            customer = f"suppressed-{n}@example.com"
        elif i % 50 == 49:
            customer = None
        out.append(build_message(run, n, customer, reference))
    return out


def cpu_of_thread(ident: int | None) -> float:
    """CPU seconds of another thread of this process (Linux: per-thread CPU clock)."""
    if ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


@dataclass
class Figures:
    label: str
    per_call_us: float  # process CPU per call or message
    loop_us: float | None = None  # event-loop thread CPU per call
    writer_us: float | None = None  # writer thread CPU per call
    wall_us: float = 0.0


def writer_thread() -> threading.Thread:
    return next(t for t in threading.enumerate() if t.name == "store-writer")


# --- (a) the 250 path -------------------------------------------------------------------------


async def run_receive(config: Config, workdir: Path, calls: int, callers: int) -> Figures:
    store = Store(workdir / "receive.db")
    try:
        clock = SystemClock()
        signer = TokenSigner(b"k" * 32)
        intake = Intake(config, store, signer, clock, dispatch=dispatch_table(signer))
        route = intake.recipients.route(BCC)
        assert route is not None
        run = os.urandom(4).hex()
        warm = [build_message(run + "w", n, f"c{n}@example.com", n) for n in range(WARMUP)]
        work = [build_message(run, n, f"c{n}@example.com", n) for n in range(calls)]

        async def caller(queue: list[bytes]) -> None:
            while queue:
                raw = queue.pop()
                await intake.receive("127.0.0.1:40000", SENDER, [route], raw)

        await asyncio.gather(*(caller(warm) for _ in range(callers)))
        writer = writer_thread()
        w0, m0, p0, t0 = (cpu_of_thread(writer.ident), time.thread_time(), time.process_time(),
                          time.perf_counter())
        await asyncio.gather(*(caller(work) for _ in range(callers)))
        w1, m1, p1, t1 = (cpu_of_thread(writer.ident), time.thread_time(), time.process_time(),
                          time.perf_counter())
        commits = store.read(lambda q: q.count_messages())
        assert commits == calls + WARMUP, commits
        scale = 1e6 / calls
        return Figures("receive", (p1 - p0) * scale, (m1 - m0) * scale, (w1 - w0) * scale,
                       (t1 - t0) * scale)
    finally:
        store.close()


# --- (b) process_shipment in the writer -------------------------------------------------------


def run_process(config: Config, workdir: Path, count: int) -> Figures:
    shop = config.shop("acme")
    assert shop is not None
    store = Store(workdir / "process.db")
    try:
        clock = SystemClock()
        signer = TokenSigner(b"k" * 32)
        intake = Intake(config, store, signer, clock, dispatch=dispatch_table(signer))
        route = intake.recipients.route(BCC)
        assert route is not None
        run = os.urandom(4).hex()
        raws = notice_mix(count, run)
        now = clock.now()

        def store_batch(raws: list[bytes], q: Queries) -> None:
            for raw in raws:
                q.insert_message(NewMessage(now, "127.0.0.1:40000", SENDER, route.address,
                                            route.shop, route.kind, None, os.urandom(8).hex(),
                                            raw))

        def suppress(q: Queries) -> None:
            for n in range(10000, 10000 + count):
                q.suppress("acme", f"suppressed-{n}@example.com", now, "unsubscribe")

        store.write_sync(suppress)
        notices = [parse_trigger(raw, reference_pattern=shop.order_reference_pattern)
                   for raw in raws]
        spent = 0.0

        def timed(steps: list[Callable[[Queries], Any]], q: Queries) -> list[Any]:
            nonlocal spent
            began = time.thread_time()
            out = [q.each(step) for step in steps]
            spent += time.thread_time() - began
            return out

        # As `Intake._commit` marks its job (stores from before `small` existed lack it).
        small = {"small": True} if "small" in inspect.signature(store.write_sync).parameters else {}
        outcomes: dict[str, int] = {}
        wall = 0.0
        for start in range(0, count, BATCH):
            # As under load: each batch is stored just before intake takes it (so its pages are
            # as warm as when intake follows the listener closely); storing is not timed.
            store.write_sync(partial(store_batch, raws[start:start + BATCH]))
            pending: list[InboundMessage] = store.read(lambda q: q.pending_messages(BATCH))
            at = clock.now()
            steps: list[Callable[[Queries], Any]] = [
                partial(process_shipment, msg=m, notice=n, shop=shop, signer=signer, now=at)
                for m, n in zip(pending, notices[start:start + BATCH], strict=True)
            ]
            t0 = time.perf_counter()
            results = store.write_sync(partial(timed, steps), **small)
            wall += time.perf_counter() - t0
            for result in results:
                key = str(getattr(result, "status", type(result).__name__))
                outcomes[key] = outcomes.get(key, 0) + 1
        assert sum(outcomes.values()) == count
        assert all(isinstance(k, str) and k in _STATUSES for k in outcomes), outcomes
        return Figures(f"process {dict(sorted(outcomes.items()))}", spent * 1e6 / count,
                       wall_us=wall * 1e6 / count)
    finally:
        store.close()


_STATUSES = {"scheduled", "duplicate", "capped", "suppressed", "rejected"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="receive calls per round")
    parser.add_argument("--callers", type=int, default=10, help="concurrent receive callers")
    parser.add_argument("--notices", type=int, default=2000, help="notices per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary stores go")
    parser.add_argument("--only", choices=("receive", "process"), default=None)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-intake-", dir=args.dir))
    try:
        (root / "relay.toml").write_text(relay_toml())
        config = load(root / "relay.toml")
        receive: list[Figures] = []
        process: list[Figures] = []
        for n in range(args.rounds):
            workdir = root / f"round{n}"
            workdir.mkdir()
            if args.only in (None, "receive"):
                receive.append(asyncio.run(run_receive(config, workdir, args.calls,
                                                       args.callers)))
            if args.only in (None, "process"):
                process.append(run_process(config, workdir, args.notices))
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} cpus, {args.rounds} rounds (best, median), "
          f"mailrelay from {Path(sys.modules['mailrelay'].__file__ or '').parent}")
    if receive:
        best = min(receive, key=lambda f: f.per_call_us)
        mid = statistics.median(f.per_call_us for f in receive)
        print(f"(a) receive x{args.calls}, {args.callers} callers: "
              f"{best.per_call_us:6.1f} us CPU/call (median {mid:.1f}); best round: loop "
              f"{best.loop_us:.1f}, writer {best.writer_us:.1f}, wall {best.wall_us:.1f} us/call")
    if process:
        best = min(process, key=lambda f: f.per_call_us)
        mid = statistics.median(f.per_call_us for f in process)
        print(f"(b) process_shipment x{args.notices}: {best.per_call_us:6.1f} us CPU/message"
              f" (median {mid:.1f}); best round: wall incl. commit {best.wall_us:.1f} us/message")
        print(f"    outcomes: {best.label.removeprefix('process ')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
