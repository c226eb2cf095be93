"""Ingest benchmark: mailrelay's SMTP path against a no-op aiosmtpd server, side by side.

The no-op server is the ceiling for a Python SMTP listener on this machine, so the ratio tells how
much mailrelay's durable 250 (group commit) and its intake worker cost, independent of the machine.
mailrelay reads DATA in blocks rather than aiosmtpd's line by line (smtp_server.BlockDataSMTP),
which makes its listener cheaper than stock aiosmtpd; so a second ceiling, "raw-blocks" (the
no-op handler on that same reader), shows what the durable 250 and intake cost on their own.
Every server runs in its own process; the same asyncio load generator drives them all.

    .venv/bin/python bench/ingest.py [--messages 5000] [--concurrency 1,10,50] [--quick]

With `--relays N` (and `--store postgresql://…`, else a PostgreSQL server started here) the
mailrelay column is N relays on one PostgreSQL database, the connections spread over them
round-robin; `--compare` runs SQLite (1 relay) and PostgreSQL (1, 2, 3 relays) one after another
and prints one table with the CPU each process used.

    .venv/bin/python bench/ingest.py --compare [--messages 3000] [--store postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiosmtplib
import psycopg

from benchconfig import relay_toml
from cluster import COMPARE, CpuMeter, CpuUse, Postgres, Relay, load_average, relay_group, table

HERE = Path(__file__).resolve()
MAILRELAY = Path(sys.executable).parent / "mailrelay"
BCC = "reviews+acme@relay.test"
SENDER = "platform@shop.example"
MESSAGE_SIZE = 5 * 1024
#: At concurrency 10 (the design point): accept rate and end-to-end rate relative to the ceiling.
TARGET_CONCURRENCY = 10
TARGET_ACCEPT = 0.85
TARGET_END_TO_END = 0.6
#: The SMTP limits every mailrelay under test runs with.
SMTP_EXTRA = 'max_message_size = "1MB"\nmax_sessions = 64\nmax_sessions_per_client = 64'

FILLER = (
    "Thank you for shopping with ACME Shoes. Your parcel is on its way and should arrive soon."
)


# --- the ceiling: aiosmtpd with a handler that does nothing -------------------------------------


class NoopHandler:
    """Answers 250 at once: what aiosmtpd alone costs per message."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 OK"


async def serve_raw(port: int, blocks: bool) -> None:
    """The raw server (run as `ingest.py --raw-server PORT` in its own process and GIL);
    `blocks`: on mailrelay's block DATA reader instead of stock aiosmtpd's."""
    from aiosmtpd.smtp import SMTP  # only the server process needs it

    from mailrelay.edges.smtp_server import BlockDataSMTP

    protocol = BlockDataSMTP if blocks else SMTP
    loop = asyncio.get_running_loop()
    handler = NoopHandler()
    server = await loop.create_server(
        lambda: protocol(
            handler, hostname="raw.test", data_size_limit=1 << 20, enable_SMTPUTF8=True,
            ident="raw", loop=loop,
        ),
        host="127.0.0.1", port=port, reuse_address=True,
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("raw server ready", flush=True)
    await stop.wait()
    server.close()


# --- servers under test, as subprocesses --------------------------------------------------------


def free_port() -> int:
    """A port that is free now (we write it into the config instead of parsing the log)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One server process: started, waited for, and always killed (even on failure)."""

    name = "server"
    #: The line in the server's output that says it listens.
    ready_line = ""
    #: mailrelay's store (a SQLite file or a PostgreSQL URL), for the end-to-end count (None:
    #: nothing happens after the 250).
    db: Path | str | None = None

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / f"{self.name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=workdir,
        )

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def wait_ready(self, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while self.ready_line not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()}")
            time.sleep(0.02)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it hangs; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


class RawServer(Server):
    name = "raw"
    ready_line = "raw server ready"

    def command(self) -> list[str]:
        return [sys.executable, str(HERE), "--raw-server", str(self.port)]


class RawBlocksServer(Server):
    name = "raw-blocks"
    ready_line = "raw server ready"

    def command(self) -> list[str]:
        return [sys.executable, str(HERE), "--raw-server", str(self.port), "--blocks"]


class Mailrelay(Server):
    name = "mailrelay"
    ready_line = "mailrelay ready:"

    def command(self) -> list[str]:
        config = self.workdir / "relay.toml"
        config.write_text(relay_toml(smtp_listen=f"127.0.0.1:{self.port}",
                                     smtp_extra=SMTP_EXTRA))
        self.db = self.workdir / "var" / "bench.db"
        # Default log level (INFO, one line per processed message): what production runs with.
        return [str(MAILRELAY), "serve", "--config", str(config), "--log-level", "INFO"]


@dataclass
class Group:
    """N `mailrelay serve` relays on one store, as the load generator sees them."""

    name: str
    ports: list[int]
    db: Path | str
    meter: CpuMeter
    relays: list[Relay]

    def errors_logged(self) -> int:
        """Errors the relays logged so far (a deadlock between two relays' intake, say)."""
        return sum(len(relay.problems()) for relay in self.relays)


@contextlib.contextmanager
def running_group(pg: Postgres | None, relays: int) -> Iterator[Group]:
    """`relays` relays on a fresh PostgreSQL database of `pg` (None: one on a fresh SQLite
    file)."""
    with contextlib.ExitStack() as stack:
        if pg is None:
            folder = Path(tempfile.mkdtemp(prefix="bench-sqlite-"))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            store: Path | str = folder / "bench.db"
        else:
            store = stack.enter_context(pg.database())
        group = stack.enter_context(relay_group(str(store), relays, smtp_extra=SMTP_EXTRA))
        meter = CpuMeter([relay.proc.pid for relay in group],
                         None if pg is None else pg.postmaster())
        name = f"{'sqlite' if pg is None else 'postgresql'} x{relays}"
        yield Group(name, [relay.port for relay in group], store, meter, group)


@contextlib.contextmanager
def running(kind: type[Server]) -> Iterator[Server]:
    """A fresh server (and, for mailrelay, a fresh database) for exactly one measurement."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{kind.name}-"))
    server = kind(workdir)
    failed = True
    try:
        server.wait_ready()
        yield server
        failed = False
    finally:
        status = server.stop()
        if failed or status not in (0, -signal.SIGTERM):
            tail = server.log_path.read_text(errors="replace").splitlines()[-15:]
            print(f"warning: {kind.name} exited with status {status}; its log ends:",
                  *tail, sep="\n  ", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


# --- load generator ------------------------------------------------------------------------------


def build_messages(count: int, run: int) -> list[bytes]:
    """`count` distinct ~5 KB triggers (Message-ID, order reference and customer all unique)."""
    body_lines: list[str] = []
    size = 0
    while size < MESSAGE_SIZE - 600:  # headers take the rest
        line = f"{FILLER} ({len(body_lines)})\r\n"
        body_lines.append(line)
        size += len(line)
    body = "".join(body_lines)
    out: list[bytes] = []
    for i in range(count):
        n = 10000 + i
        head = (
            f"From: ACME Shoes <{SENDER}>\r\n"
            f"To: Customer {n} <customer{run}-{n}@example.com>\r\n"
            f"Subject: Order #{n} has shipped\r\n"
            f"Message-ID: <bench-{run}-{n}@platform.example>\r\n"
            "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: 7bit\r\n\r\n"
            f"Hello Customer {n},\r\n\r\nyour order #{n} has shipped.\r\n\r\n"
        )
        out.append((head + body).encode())
    return out


@dataclass
class Result:
    """One burst against one server at one concurrency."""

    server: str
    concurrency: int
    messages: int
    accept_s: float = 0.0  # first send → last 250
    end_to_end_s: float | None = None  # first send → shipments reach `messages`
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cpu: CpuUse | None = None  # relays, PostgreSQL, load generator (relay groups only)
    errors_logged: int = 0  # errors the relays logged during the burst
    load: str = ""  # the machine's load average as the run began

    @property
    def accept_rate(self) -> float:
        return len(self.latencies) / self.accept_s if self.accept_s else 0.0

    @property
    def end_to_end_rate(self) -> float | None:
        if self.end_to_end_s is None:
            return None
        return len(self.latencies) / self.end_to_end_s

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class ShipmentWatch(threading.Thread):
    """Polls the store until `shipments` holds `target` rows; records when (monotonic)."""

    def __init__(self, db: Path | str, target: int, limit_s: float) -> None:
        super().__init__(name="shipment-watch", daemon=True)
        self.db = db
        self.target = target
        self.limit_s = limit_s
        self.done_at: float | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        if isinstance(self.db, str):  # a PostgreSQL URL: each count sees the newest commits
            conn: Any = psycopg.connect(self.db, autocommit=True)
        else:
            conn = sqlite3.connect(self.db, timeout=30)
        try:
            deadline = time.monotonic() + self.limit_s
            while not self.halt.is_set() and time.monotonic() < deadline:
                (rows,) = conn.execute("SELECT COUNT(*) FROM shipments").fetchone()
                if rows >= self.target:
                    self.done_at = time.monotonic()
                    return
                time.sleep(0.01)
        finally:
            conn.close()


async def client(port: int, work: list[bytes], result: Result, start: asyncio.Event) -> None:
    """One connection, messages back to back; the latency is the DATA exchange up to the 250."""
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60, start_tls=False)
    await smtp.connect()
    try:
        await start.wait()
        while work:
            raw = work.pop()
            try:
                await smtp.mail(SENDER)
                await smtp.rcpt(BCC)
                began = time.perf_counter()
                await smtp.data(raw)
                result.latencies.append(time.perf_counter() - began)
            except aiosmtplib.SMTPResponseException as exc:
                result.errors.append(f"{exc.code} {exc.message}")
                if exc.code == 421:  # the server closes the session after a 421
                    return
                await smtp.rset()
    finally:
        smtp.close()


async def burst(server: Server | Group, concurrency: int, messages: list[bytes]) -> Result:
    """Send every message over `concurrency` open connections (spread over the server's ports
    round-robin, as an MTA with several next hops); time the 250s and the shipments."""
    result = Result(server.name, concurrency, len(messages))
    work = list(reversed(messages))
    start = asyncio.Event()
    ports = server.ports
    clients = [
        asyncio.create_task(client(ports[i % len(ports)], work, result, start))
        for i in range(concurrency)
    ]
    meter = server.meter if isinstance(server, Group) else None
    await asyncio.sleep(0.2)  # every client connected and greeted before the clock starts
    watch = ShipmentWatch(server.db, len(messages), 120.0) if server.db else None
    began = time.monotonic()
    if meter:
        meter.start()
    if watch:
        watch.start()
    start.set()
    try:
        await asyncio.gather(*clients)
    finally:
        result.accept_s = time.monotonic() - began
        if watch:
            watch.target = len(result.latencies)  # fewer when some were refused: don't wait
            await asyncio.to_thread(watch.join)
            watch.halt.set()
        if meter:
            result.cpu = meter.stop()
    if watch is None:
        result.end_to_end_s = result.accept_s  # nothing happens after a no-op 250
    elif watch.done_at is not None:
        result.end_to_end_s = watch.done_at - began
    return result


def measure(kind: type[Server] | Callable[[], contextlib.AbstractContextManager[Group]],
            concurrency: int, count: int, run: int) -> Result:
    messages = build_messages(count, run)
    opened = running(kind) if isinstance(kind, type) else kind()
    with opened as server:
        load = load_average()
        result = asyncio.run(burst(server, concurrency, messages))
        result.load = load
        if isinstance(server, Group):
            result.errors_logged = server.errors_logged()
        return result


# --- report --------------------------------------------------------------------------------------


def best(results: list[Result]) -> Result:
    """The least disturbed run on a noisy machine: highest accept rate."""
    return max(results, key=lambda r: r.accept_rate)


def fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or not b else f"{a / b:.2f}"


def report(rows: list[tuple[Result, Result, Result]], best_e2e: dict[int, float | None]) -> str:
    header = (
        "concurrency", "raw accept/s", "raw-blocks accept/s", "mailrelay accept/s",
        "ratio (a)", "(a) vs raw-blocks", "mailrelay end-to-end/s", "ratio (b)",
        "(b) vs raw-blocks", "raw p50/p99 ms", "mailrelay p50/p99 ms",
    )
    table: list[tuple[str, ...]] = [header]
    for raw, blocks, relay in rows:
        e2e = best_e2e[relay.concurrency]
        table.append((
            str(raw.concurrency),
            fmt_rate(raw.accept_rate),
            fmt_rate(blocks.accept_rate),
            fmt_rate(relay.accept_rate),
            fmt_ratio(relay.accept_rate, raw.accept_rate),
            fmt_ratio(relay.accept_rate, blocks.accept_rate),
            fmt_rate(e2e),
            fmt_ratio(e2e, raw.end_to_end_rate),
            fmt_ratio(e2e, blocks.end_to_end_rate),
            f"{raw.percentile(0.5):.1f} / {raw.percentile(0.99):.1f}",
            f"{relay.percentile(0.5):.1f} / {relay.percentile(0.99):.1f}",
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        " | ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in table
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    target = [row for row in rows if row[0].concurrency == TARGET_CONCURRENCY]
    if not target:
        lines.append(f"targets: concurrency {TARGET_CONCURRENCY} not measured")
    else:
        raw, blocks, relay = target[0]
        e2e = best_e2e[TARGET_CONCURRENCY] or 0.0
        for ceiling in (raw, blocks):
            a = relay.accept_rate / ceiling.accept_rate if ceiling.accept_rate else 0.0
            b = e2e / (ceiling.end_to_end_rate or 1.0)
            verdict_a = "PASS" if a >= TARGET_ACCEPT else "FAIL"
            verdict_b = "PASS" if b >= TARGET_END_TO_END else "FAIL"
            lines.append(
                f"targets at concurrency {TARGET_CONCURRENCY} against {ceiling.server}: "
                f"(a) accept ratio {a:.2f} >= {TARGET_ACCEPT} {verdict_a}; "
                f"(b) end-to-end ratio {b:.2f} >= {TARGET_END_TO_END} {verdict_b}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000,
                        help="messages per burst (default 5000)")
    parser.add_argument("--concurrency", default="1,10,50",
                        help="comma-separated client counts (default 1,10,50)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating raw/mailrelay runs per level; the best is reported")
    parser.add_argument("--quick", action="store_true", help="1000 messages, one round")
    parser.add_argument("--store", metavar="URL",
                        help="a PostgreSQL server (postgresql://user@host:port/db; the user may "
                        "CREATE DATABASE: each run gets a fresh one) instead of starting one")
    parser.add_argument("--relays", type=int, default=0, metavar="N",
                        help="mailrelay as N relays on one PostgreSQL database (default: one "
                        "relay on SQLite)")
    parser.add_argument("--compare", action="store_true",
                        help="SQLite x1 against PostgreSQL x1, x2, x3 relays, one table "
                        "(concurrency: the first of --concurrency, default 24; 3000 messages, "
                        "2 rounds)")
    parser.add_argument("--raw-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--blocks", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compare:
        defaults = {"messages": 3000, "rounds": 2, "concurrency": "24"}
        given = argv if argv is not None else sys.argv
        for name, value in defaults.items():
            if not any(arg.partition("=")[0] == f"--{name}" for arg in given):
                setattr(args, name, value)
    if args.quick:
        args.messages = min(args.messages, 1000)
        args.rounds = 1
    return args


def report_compare(rows: list[Result], cores: int) -> str:
    """One line per configuration: rates, latency, and where the CPU went."""
    header = ("store", "relays", "accept/s", "end-to-end/s", "p50/p99 ms", "CPU relays",
              "CPU PostgreSQL", "CPU load gen", "ms CPU/msg relays", "ms CPU/msg PostgreSQL",
              f"CPU ceiling/s ({cores} cores)", "relay errors", "load avg (1/5/15 min)")
    lines = []
    for res in rows:
        backend, _, count = res.server.partition(" x")
        cpu = res.cpu
        lines.append((
            backend, count, fmt_rate(res.accept_rate), fmt_rate(res.end_to_end_rate),
            f"{res.percentile(0.5):.1f} / {res.percentile(0.99):.1f}",
            cpu.share(cpu.relays_s) if cpu else "-", cpu.share(cpu.postgres_s) if cpu else "-",
            cpu.share(cpu.generator_s) if cpu else "-",
            cpu.per(cpu.relays_s, len(res.latencies)) if cpu else "-",
            cpu.per(cpu.postgres_s, len(res.latencies)) if cpu else "-",
            fmt_rate(cpu.ceiling(len(res.latencies), int(count), cores)) if cpu else "-",
            str(res.errors_logged), res.load,
        ))
    return (table(header, lines) + f"\nCPU: percent of one core over the burst (first send to "
            f"the last shipment), this machine has {cores}; relays summed over the relays; "
            "ms CPU/msg: CPU milliseconds per accepted trigger (250 and intake); CPU ceiling: "
            "the rate those would allow on otherwise idle cores (each relay at most one core); "
            "relay errors: ERROR lines and tracebacks the relays logged (their logs are kept).")


def compare(args: argparse.Namespace) -> int:
    """The four configurations one after another, each on a fresh store; the best round."""
    concurrency = int(args.concurrency.split(",")[0])
    with Postgres(args.store) as pg:
        print(f"ingest compare: {args.messages} x {MESSAGE_SIZE // 1024} KB triggers, "
              f"concurrency {concurrency}, {args.rounds} round(s), {os.cpu_count()} CPU(s), "
              f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
              f"PostgreSQL {pg.version} ({pg.settings()})", flush=True)
        runs: dict[str, list[Result]] = {}
        run = 0
        for _ in range(args.rounds):
            for backend, relays in COMPARE:
                run += 1
                server = None if backend == "sqlite" else pg
                res = measure(functools.partial(running_group, server, relays), concurrency,
                              args.messages, run)
                runs.setdefault(res.server, []).append(res)
                print_run(res)
    print()
    print(report_compare([best(found) for found in runs.values()], os.cpu_count() or 1))
    return 0


def print_run(res: Result) -> None:
    e2e = fmt_rate(res.end_to_end_rate)
    errors = f", {len(res.errors)} error(s): {res.errors[:3]}" if res.errors else ""
    cpu = res.cpu
    usage = (f"  CPU relays {cpu.share(cpu.relays_s)} postgres {cpu.share(cpu.postgres_s)} "
             f"generator {cpu.share(cpu.generator_s)}" if cpu else "")
    print(
        f"  c={res.concurrency:<3} {res.server:<14} accept {res.accept_rate:8,.0f}/s  "
        f"end-to-end {e2e:>6}/s  p50 {res.percentile(0.5):6.1f} ms  "
        f"p99 {res.percentile(0.99):6.1f} ms{usage}  load {res.load}{errors}"
        + (f"  ** relays logged {res.errors_logged} error(s) **" if res.errors_logged else ""),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.raw_server is not None:
        asyncio.run(serve_raw(args.raw_server, args.blocks))
        return 0
    if args.compare:
        return compare(args)
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(Postgres(args.store)) if args.relays or args.store else None
        return levels_table(args, pg)


def levels_table(args: argparse.Namespace, pg: Postgres | None) -> int:
    """The raw ceilings and mailrelay (SQLite, or `--relays` relays on PostgreSQL) per level."""
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    group = (lambda: running_group(pg, max(1, args.relays))) if pg is not None else None
    print(
        f"ingest bench: {args.messages} x {MESSAGE_SIZE // 1024} KB messages per burst, "
        f"{args.rounds} round(s) per level, {os.cpu_count()} CPU(s), "
        f"Python {platform.python_version()}",
        flush=True,
    )
    rows: list[tuple[Result, Result, Result]] = []
    best_e2e: dict[int, float | None] = {}
    run = 0
    for level in levels:
        kinds: list[type[Server] | Callable[[], contextlib.AbstractContextManager[Group]]] = [
            RawServer, RawBlocksServer, group or Mailrelay]
        buckets: list[list[Result]] = [[], [], []]
        for _ in range(args.rounds):  # alternate, so machine noise hits all alike
            for kind, bucket in zip(kinds, buckets, strict=True):
                run += 1
                res = measure(kind, level, args.messages, run)
                bucket.append(res)
                print_run(res)
        relays = buckets[2]
        rows.append((best(buckets[0]), best(buckets[1]), best(relays)))
        rates = [r.end_to_end_rate for r in relays if r.end_to_end_rate is not None]
        best_e2e[level] = max(rates) if rates else None
    print()
    print(report(rows, best_e2e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
