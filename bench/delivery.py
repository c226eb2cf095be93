"""Delivery benchmark: (a) invitations/s from the outbox to a local SMTP sink, one pooled
connection against a new connection per message (and Maildir for scale); (b) how long
`mailrelay serve` takes to be READY, and how much memory it holds, with a million invitations
scheduled. Targets for (b): READY < 3 s, RSS < 150 MB.

The sink is a minimal accept-all aiosmtpd server in its own process (and GIL), so the numbers are
mailrelay's cost, not the sink's competing for the same interpreter.

    .venv/bin/python bench/delivery.py [--messages 2000] [--invitations 1000000] [--quick]

(c) sends/s of real `mailrelay serve` relays: `--relays N` runs N relays on one PostgreSQL
database (`--store postgresql://…`, else a server started here), `--compare` SQLite (1 relay)
and PostgreSQL (1, 2, 3 relays) one after another. The invitations all fall due at one moment
after every relay is READY; each relay renders and sends to the one shared sink, which counts
every Message-ID once and reports duplicates (there must be none).

    .venv/bin/python bench/delivery.py --compare [--messages 2000] [--store postgresql://…]

`--connections 1,4` runs each configuration with those `[outbound] connections` (else the
default); `--baseline DIR` runs each configuration with DIR's code too (a checkout with its own
`.venv`, e.g. the code before a change), alternating with this tree's in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psycopg

from benchconfig import relay_toml
from cluster import COMPARE, CpuMeter, CpuUse, Postgres, load_average, relay_group
from mailrelay.config import Config, OutboundConfig, load
from mailrelay.core.clock import FrozenClock
from mailrelay.core.models import ShipmentStatus
from mailrelay.core.tokens import NONCE_BYTES, REVIEW, TokenSigner, load_secret
from mailrelay.edges.mailer import MaildirTransport, SmtpTransport, Transport
from mailrelay.render import Templates
from mailrelay.services import invitations
from mailrelay.services.delivery import Delivery
from mailrelay.services.invitations import Inviter, record_delivery
from mailrelay.store import Queries, Store, open_store, to_iso

HERE = Path(__file__).resolve()
MAILRELAY = Path(sys.executable).parent / "mailrelay"
READY_LINE = "mailrelay ready:"
TARGET_READY_S = 3.0
TARGET_RSS_MB = 150.0
#: The scheduler's safety poll runs a full tick 30 s after start; sample memory after it too.
POLL_SAMPLE_S = 33.0
#: (a): the connections of the side-by-side row (the relays' default `[outbound] connections`).
LANES = OutboundConfig.connections
#: High enough that the Pacer never waits: we measure the transport, not the configured rate.
UNPACED = 10_000_000

def write_config(workdir: Path, *, store: Path, transport: str = "maildir", port: int = 25,
                 rate: int = UNPACED) -> Path:
    path = workdir / "relay.toml"
    path.write_text(relay_toml(
        store=str(store), invite_delay="1h",
        outbound=f'transport = "{transport}"\nhost = "127.0.0.1"\nport = {port}\n'
                 f'starttls = false\nmaildir = "var/outbox"\nrate_per_minute = {rate}'))
    return path


def free_port() -> int:
    """A port that is free now (written into the sink's command line, so no log parsing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the sink: aiosmtpd accepting everything, in its own process ----------------------------------


MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


class AcceptAll:
    """Answers 250 to every DATA and counts, each Message-ID once (a second time is a
    duplicate), with the wall-clock time of the first and last arrival; SIGUSR1 prints it all
    (the bench's check)."""

    def __init__(self) -> None:
        self.messages = 0
        self.connections = 0
        self.seen: set[bytes] = set()
        self.duplicates = 0
        self.first = 0.0
        self.last = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages += 1
        self.last = time.time()
        self.first = self.first or self.last
        head = bytes(envelope.content).split(b"\r\n\r\n", 1)[0]
        found = MESSAGE_ID.search(head)
        key = found.group(1) if found else b"(none)"
        if key in self.seen:
            self.duplicates += 1
        self.seen.add(key)
        return "250 2.0.0 OK"

    def stats(self) -> str:
        return (f"stats connections={self.connections} messages={self.messages} "
                f"unique={len(self.seen)} duplicates={self.duplicates} first={self.first:.6f} "
                f"last={self.last:.6f}")


async def serve_sink(port: int) -> None:
    """The sink (run as `delivery.py --sink PORT`); stops on SIGTERM."""
    from aiosmtpd.smtp import SMTP  # only the sink process needs it

    loop = asyncio.get_running_loop()
    handler = AcceptAll()

    def session() -> SMTP:
        handler.connections += 1
        return SMTP(handler, hostname="sink.test", data_size_limit=1 << 22, ident="sink",
                    loop=loop)

    server = await loop.create_server(session, host="127.0.0.1", port=port, reuse_address=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(handler.stats(), flush=True))
    print("sink ready", flush=True)
    await stop.wait()
    server.close()


# --- a child process whose log we watch -----------------------------------------------------------


class Child:
    """A subprocess with its output in a file (a pipe could fill and block it); always reaped."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, within: float = 60.0, after: int = 0) -> float:
        """Seconds from start until `text` appears in the output (past offset `after`)."""
        deadline = time.monotonic() + within
        while text not in self.output()[after:]:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log_path.name}: exited {self.proc.returncode}:\n"
                                   f"{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.log_path.name}: no {text!r} in {within}s")
            time.sleep(0.002)
        return time.monotonic() - self.started

    def status(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) in kB, from /proc."""
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out

    def cpu_s(self) -> float:
        """User + system CPU seconds the process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, within: float = 30.0) -> int:
        """SIGTERM, SIGKILL if it hangs; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


@contextlib.contextmanager
def child(command: list[str], log_path: Path) -> Iterator[Child]:
    proc = Child(command, log_path)
    try:
        yield proc
    finally:
        proc.stop()


# --- (a) throughput -------------------------------------------------------------------------------


@dataclass
class Throughput:
    """One timed `deliver_due()` over a pre-rendered outbox."""

    name: str
    messages: int
    seconds: float
    sent: int
    connections: int | None = None

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def prefill(config: Config, count: int, clock: FrozenClock) -> float:
    """`count` invitations through the same code path as `mailrelay invite`, then rendered into
    the outbox by the Inviter at a clock past their due time; returns seconds spent rendering."""
    shop = config.shops[0]
    signer = TokenSigner(load_secret(config.security.secret_file))
    store = open_store(config.store)
    try:
        now = clock.now()

        def invite_chunk(q: Queries, first: int, last: int) -> int:
            done = 0
            for n in range(first, last):
                decision = invitations.invite_manually(
                    q, shop, signer, now, email=f"customer{n}@example.com",
                    name=f"Customer {n}", reference=f"R{n}")
                done += decision.status == ShipmentStatus.SCHEDULED
            return done

        scheduled = sum(
            store.write_sync(functools.partial(invite_chunk, first=i, last=min(i + 500, count)))
            for i in range(0, count, 500)
        )
        assert scheduled == count, f"only {scheduled} of {count} invitations scheduled"
        clock.advance(shop.invite_delay + timedelta(minutes=1))
        inviter = Inviter(config, store, Templates(config), signer, clock)
        began = time.perf_counter()
        queued = asyncio.run(inviter.queue_due())
        rendered_s = time.perf_counter() - began
        assert queued == count, f"only {queued} of {count} rendered"
    finally:
        store.close()  # the last close checkpoints the WAL: the .db file alone is the store
    return rendered_s


async def deliver(config: Config, db: Path, transports: list[Transport],
                  clock: FrozenClock) -> float:
    """Seconds for `deliver_due()` to send the whole outbox of `db` through `transports` (one
    lane each, as `[outbound] connections`)."""
    store = Store(db)
    try:
        signer = TokenSigner(load_secret(config.security.secret_file))
        delivery = Delivery(store, transports, clock, rate_per_minute=UNPACED,
                            sign_sender=signer.bounce_tag,  # signs VERP as the daemon does
                            on_result=functools.partial(record_delivery, config))
        began = time.perf_counter()
        await delivery.deliver_due()
        for transport in transports:
            await transport.close()
        seconds = time.perf_counter() - began
        if delivery.failed or delivery.deferred:
            raise RuntimeError(f"{delivery.failed} failed, {delivery.deferred} deferred")
        return seconds
    finally:
        store.close()


def sent_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'sent'").fetchone()[0])
    finally:
        conn.close()


def sink_counts(sink: Child) -> dict[str, float]:
    """What the sink has seen so far: connections, messages, unique, duplicates, first, last."""
    offset = len(sink.output())
    sink.proc.send_signal(signal.SIGUSR1)
    sink.wait_for("last=", within=10, after=offset)
    line = [x for x in sink.output()[offset:].splitlines() if x.startswith("stats")][-1]
    return {key: float(value) for key, value in (part.split("=") for part in line.split()[1:])}


def sink_stats(sink: Child) -> tuple[int, int]:
    """(connections, messages) the sink has seen so far."""
    counts = sink_counts(sink)
    return int(counts["connections"]), int(counts["messages"])


def bench_throughput(workdir: Path, count: int, rounds: int) -> tuple[list[Throughput], float]:
    """Each transport sends a copy of the same pre-rendered outbox; the best round counts."""
    port = free_port()
    template = workdir / "outbox-template.db"
    config = load(write_config(workdir, store=template, transport="smtp", port=port))
    clock = FrozenClock(datetime.now(UTC))
    rendered_s = prefill(config, count, clock)
    print(f"  prefill: {count} invitations rendered into the outbox in {rendered_s:.1f} s "
          f"({count / rendered_s:,.0f}/s)", flush=True)

    kinds: list[tuple[str, Callable[[], list[Transport]]]] = [
        ("smtp, one connection reused", lambda: [SmtpTransport(config.outbound, reuse=True)]),
        (f"smtp, {LANES} connections reused",
         lambda: [SmtpTransport(config.outbound, reuse=True) for _ in range(LANES)]),
        ("smtp, new connection per message",
         lambda: [SmtpTransport(config.outbound, reuse=False)]),
        ("maildir", lambda: [MaildirTransport(workdir / f"maildir-{time.monotonic_ns()}")]),
    ]
    results: dict[str, Throughput] = {}
    sink_cmd = [sys.executable, str(HERE), "--sink", str(port)]
    with child(sink_cmd, workdir / "sink.log") as sink:
        sink.wait_for("sink ready", within=20)
        for round_no in range(rounds):
            for name, make in kinds:
                db = workdir / f"run-{round_no}-{len(results)}-{time.monotonic_ns()}.db"
                shutil.copyfile(template, db)
                before = sink_stats(sink)
                seconds = asyncio.run(deliver(config, db, make(), clock))
                after = sink_stats(sink)
                sent = sent_count(db)
                result = Throughput(name, count, seconds, sent)
                if name.startswith("smtp"):
                    result.connections = after[0] - before[0]
                    arrived = after[1] - before[1]
                    if arrived != count:
                        raise RuntimeError(f"{name}: the sink got {arrived} of {count}")
                if sent != count:
                    raise RuntimeError(f"{name}: {sent} of {count} marked sent")
                db.unlink()
                print(f"  round {round_no + 1}: {name:<34} {result.rate:7,.0f}/s "
                      f"({seconds:.2f} s, connections {result.connections or '-'})", flush=True)
                if name not in results or result.rate > results[name].rate:
                    results[name] = result
    return [results[name] for name, _ in kinds], rendered_s


# --- (b) startup with a million scheduled invitations ---------------------------------------------


def build_scheduled(db: Path, count: int, secret: bytes) -> float:
    """A store (schema by `Store`) holding `count` scheduled invitations due in 30-60 days, bulk
    inserted with executemany: minutes through the service layer, seconds this way."""
    Store(db).close()
    signer = TokenSigner(secret)
    began = time.perf_counter()
    now = datetime.now(UTC)
    created = to_iso(now)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")  # a bench fixture: rebuilt if the machine dies
        conn.execute("PRAGMA cache_size=-524288")  # 512 MB: random token inserts stay in memory
        sql = (
            "INSERT INTO invitations (shop, shipment_id, customer_email, customer_name,"
            " reference, locale, method, status, token, created_at, due_at)"
            " VALUES ('acme', NULL, ?, ?, ?, 'en', 'manual', 'scheduled', ?, ?, ?)"
        )
        chunk = 50_000
        for first in range(0, count, chunk):
            rows = [
                (
                    f"customer{n}@example.com",
                    f"Customer {n}",
                    f"R{n}",
                    signer.sign(REVIEW, secrets.token_bytes(NONCE_BYTES)),
                    created,
                    to_iso(now + timedelta(days=30, seconds=n * 2.592)),  # spread over 30 days
                )
                for n in range(first, min(first + chunk, count))
            ]
            conn.execute("BEGIN")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - began


@dataclass
class Startup:
    """One `mailrelay serve` from exec to READY, then idle."""

    label: str
    ready_s: float
    rss_ready_mb: float
    rss_idle_mb: float
    rss_poll_mb: float | None
    peak_mb: float
    cpu_ready_s: float
    cpu_idle_s: float  # CPU used between READY and the idle sample
    cpu_poll_s: float | None  # CPU used by the first safety-poll tick (and anything else then)
    stop_s: float
    exit_status: int
    problems: list[str] = field(default_factory=list)


def measure_startup(workdir: Path, label: str, db: Path, idle_s: float,
                    poll: bool) -> Startup:
    config = write_config(workdir, store=db)
    log_path = workdir / f"serve-{label.replace(',', '').replace(' ', '-')}.log"
    serve = Child([str(MAILRELAY), "serve", "--config", str(config), "--log-level", "INFO"],
                  log_path)
    try:
        ready_s = serve.wait_for(READY_LINE, within=120)
        rss_ready = serve.status()["VmRSS"] / 1024
        cpu_ready = serve.cpu_s()
        time.sleep(idle_s)
        rss_idle = serve.status()["VmRSS"] / 1024
        cpu_idle = serve.cpu_s()
        rss_poll = cpu_poll = None
        if poll:
            time.sleep(max(0.0, POLL_SAMPLE_S - idle_s))
            rss_poll = serve.status()["VmRSS"] / 1024
            cpu_poll = serve.cpu_s() - cpu_idle
        peak = serve.status()["VmHWM"] / 1024
        began = time.monotonic()
        status = serve.stop()
        stop_s = time.monotonic() - began
    finally:
        serve.stop()
    problems = [
        line for line in serve.output().splitlines() if " ERROR " in line or "Traceback" in line
    ]
    return Startup(label, ready_s, rss_ready, rss_idle, rss_poll, peak, cpu_ready,
                   cpu_idle - cpu_ready, cpu_poll, stop_s, status, problems)


class Recorder:
    """Stands in for a sqlite3 connection under `Queries`: records each statement it runs."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, Any]] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self.statements.append((sql, params))
        return self.conn.execute(sql, params)


def profile_queries(db: Path) -> list[tuple[str, float, list[str]]]:
    """Time the statements a start and an idle tick run (best of 3) and show their plans, with
    the same parameters the daemon binds (a partial index is only usable for some of them)."""
    Store(db).close()  # migrations, WAL mode, as the daemon opens it
    conn = sqlite3.connect(db, isolation_level=None)
    conn.row_factory = sqlite3.Row
    now = datetime.now(UTC)
    calls: list[tuple[str, Callable[[Queries], object]]] = [
        ("next_due (every rearm)", lambda q: q.next_due()),
        ("due_invitations (every tick)", lambda q: q.due_invitations(now, 500)),
        ("due_reminders (every tick)", lambda q: q.due_reminders(now, 500)),
        ("claim_due_mail (every tick)", lambda q: q.claim_due_mail(now, 100, relay="bench")),
        ("requeue_interrupted (start)", lambda q: q.requeue_interrupted("bench")),
        ("requeue_expired (every minute)",
         lambda q: q.requeue_expired(now, timedelta(minutes=5))),
        ("pending_messages (intake)", lambda q: q.pending_messages(200)),
        ("outbox_depth (/health)", lambda q: q.outbox_depth()),
    ]
    out = []
    try:
        for name, call in calls:
            best = float("inf")
            recorder = Recorder(conn)
            for _ in range(3):
                recorder.statements.clear()
                began = time.perf_counter()
                call(Queries(recorder))  # type: ignore[arg-type]
                best = min(best, time.perf_counter() - began)
            plans = []
            for sql, params in recorder.statements:
                rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
                plans.append("; ".join(str(r["detail"]).replace(";", ",") for r in rows))
            out.append((name, best, plans))
    finally:
        conn.close()
    return out


# --- (c) sends/s of real relays on one store ------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """What the relays of a run are: which code (`label`, the `mailrelay` executable it
    installed) with how many `[outbound] connections` (None: not written, the code's default)."""

    label: str  # "this" or "baseline"
    mailrelay: Path
    connections: int | None = None

    def outbound(self) -> str:
        return "" if self.connections is None else f"\nconnections = {self.connections}"

    @property
    def connections_text(self) -> str:
        return "default" if self.connections is None else str(self.connections)


@dataclass
class RelaySends:
    """One burst: every invitation due at once, rendered and sent by the group's relays."""

    name: str  # "sqlite x1", "postgresql x3"
    code: Code
    messages: int
    unique: int  # distinct Message-IDs the sink got
    duplicates: int  # Message-IDs it got again: must be 0
    seconds: float  # due moment → last arrival at the sink
    first_s: float  # due moment → first arrival
    sent_rows: int  # outbox rows the store says are sent
    cpu: CpuUse
    load: str
    late: bool  # a relay was not READY when the invitations fell due
    errors_logged: int = 0  # ERROR lines and tracebacks the relays logged
    #: PostgreSQL transactions committed from the due moment until the relays stopped (None:
    #: SQLite). Each result committed on its own makes it at least one per message.
    transactions: int | None = None

    @property
    def rate(self) -> float:
        return self.unique / self.seconds if self.seconds > 0 else 0.0


def schedule_invitations(store: str, secret: Path, count: int, workdir: Path) -> None:
    """`count` invitations through the same code path as `mailrelay invite`, due in a week (the
    bench moves them to the due moment once it knows when the relays are READY)."""
    path = workdir / "prefill.toml"
    url = store if store.startswith("postgres") else None
    path.write_text(relay_toml(store=store, url=url, secret_file=str(secret)))
    config = load(path)
    shop = config.shops[0]
    signer = TokenSigner(load_secret(secret))
    db = open_store(config.store)
    now = datetime.now(UTC)

    def invite_chunk(q: Queries, first: int, last: int) -> int:
        return sum(invitations.invite_manually(
            q, shop, signer, now, email=f"customer{n}@example.com", name=f"Customer {n}",
            reference=f"R{n}").status == ShipmentStatus.SCHEDULED for n in range(first, last))

    try:
        scheduled = sum(
            db.write_sync(functools.partial(invite_chunk, first=i, last=min(i + 500, count)))
            for i in range(0, count, 500))
    finally:
        db.close()
    assert scheduled == count, f"only {scheduled} of {count} invitations scheduled"


def on_store(store: str, statement: str, args: tuple[object, ...] = ()) -> int:
    """Run one statement on the store outside mailrelay; the first column of the first row,
    or the rows changed."""
    if store.startswith("postgres"):
        with psycopg.connect(store, autocommit=True) as pg_conn:
            cur = pg_conn.execute(statement.replace("?", "%s"), args)
            row = cur.fetchone() if cur.description else None
            return int(row[0]) if row else cur.rowcount
    conn = sqlite3.connect(store, timeout=30, isolation_level=None)
    try:
        lite = conn.execute(statement, args)
        found = lite.fetchone() if lite.description else None
        return int(found[0]) if found else lite.rowcount
    finally:
        conn.close()


def measure_sends(pg: Postgres | None, relays: int, count: int, lead: float,
                  code: Code) -> RelaySends:
    """`count` invitations falling due `lead` seconds after they are stored, `relays` relays
    running `code` started meanwhile; timed from the due moment to the sink's last arrival."""
    with contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="bench-sends-"))
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        store = str(folder / "bench.db") if pg is None else stack.enter_context(pg.database())
        secret = folder / "secret.key"
        schedule_invitations(store, secret, count, folder)
        port = free_port()
        sink = stack.enter_context(child([sys.executable, str(HERE), "--sink", str(port)],
                                         folder / "sink.log"))
        sink.wait_for("sink ready", within=20)
        due = datetime.now(UTC) + timedelta(seconds=lead)
        on_store(store, "UPDATE invitations SET due_at = ?", (to_iso(due),))
        outbound = (f'transport = "smtp"\nhost = "127.0.0.1"\nport = {port}\n'
                    f'starttls = false\nrate_per_minute = {UNPACED}' + code.outbound())
        running = stack.enter_context(contextlib.ExitStack())  # closed once measured
        group = running.enter_context(relay_group(store, relays, outbound=outbound,
                                                  secret=secret, mailrelay=code.mailrelay))
        late = time.time() > due.timestamp()
        meter = CpuMeter([relay.proc.pid for relay in group],
                         None if pg is None else pg.postmaster(), sink.proc.pid)
        time.sleep(max(0.0, due.timestamp() - time.time()))
        load = load_average()
        committed = transactions(store)
        meter.start()
        deadline = time.monotonic() + 60 + count / 20
        while sink_counts(sink)["unique"] < count and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu = meter.stop()
        time.sleep(1.0)  # a duplicate right after the last one still counts
        seen = sink_counts(sink)
        sent_rows = on_store(store, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
        errors = sum(len(relay.problems()) for relay in group)
        running.close()  # a stopped relay's backends have reported their transactions
        if committed is not None:
            committed = (transactions(store) or 0) - committed
    name = f"{'sqlite' if pg is None else 'postgresql'} x{relays}"
    return RelaySends(name, code, count, int(seen["unique"]), int(seen["duplicates"]),
                      seen["last"] - due.timestamp(), seen["first"] - due.timestamp(),
                      sent_rows, cpu, load, late, errors, committed)


def transactions(store: str) -> int | None:
    """Transactions committed in the PostgreSQL database so far (the relays' writes and read
    snapshots, and this query); None for SQLite."""
    if not store.startswith("postgres"):
        return None
    return on_store(store, "SELECT xact_commit FROM pg_stat_database"
                           " WHERE datname = current_database()")


def print_sends(run: RelaySends) -> None:
    cpu = run.cpu
    problems = [f"only {run.unique} of {run.messages} arrived"] if run.unique < run.messages else []
    if run.duplicates:
        problems.append(f"DUPLICATES: {run.duplicates} invitations sent twice")
    if run.late:
        problems.append("a relay was not READY when they fell due (raise --lead)")
    if run.errors_logged:
        problems.append(f"relays logged {run.errors_logged} error(s)")
    print(f"  {run.name:<14} {run.code.label:<8} conn {run.code.connections_text:<7} "
          f"{run.rate:7,.0f} sends/s ({run.unique} in {run.seconds:.2f} s, "
          f"first after {run.first_s:.2f} s, {run.sent_rows} rows sent)  CPU relays "
          f"{cpu.share(cpu.relays_s)} postgres {cpu.share(cpu.postgres_s)} sink "
          f"{cpu.share(cpu.sink_s)}  load {run.load}"
          + "".join(f"  ** {p} **" for p in problems), flush=True)


def report_sends(runs: list[RelaySends], cores: int) -> str:
    rows = [
        (*run.name.split(" x"), run.code.label, run.code.connections_text,
         f"{run.rate:,.0f}", f"{run.unique}/{run.messages}",
         str(run.duplicates), f"{run.first_s:.2f}", run.cpu.share(run.cpu.relays_s),
         run.cpu.share(run.cpu.postgres_s), run.cpu.share(run.cpu.sink_s),
         run.cpu.per(run.cpu.relays_s, run.unique), run.cpu.per(run.cpu.postgres_s, run.unique),
         "-" if run.transactions is None else f"{run.transactions / max(run.unique, 1):.2f}",
         opt(run.cpu.ceiling(run.unique, int(run.name.split(" x")[1]), cores), ",.0f"),
         str(run.errors_logged), run.load)
        for run in runs
    ]
    text = table(("(c) store", "relays", "code", "connections", "sends/s", "delivered",
                  "duplicates", "first s",
                  "CPU relays", "CPU PostgreSQL", "CPU sink", "ms CPU/msg relays",
                  "ms CPU/msg PostgreSQL", "PG tx/msg", f"CPU ceiling/s ({cores} cores)",
                  "relay errors",
                  "load avg (1/5/15 min)"),
                 rows, left=4)
    notes = [f"CPU: percent of one core from the due moment to the last arrival; this machine "
             f"has {cores}; relays summed over the relays; ms CPU/msg: CPU milliseconds per "
             "invitation delivered (render, claim, send, record); CPU ceiling: the rate those "
             "would allow on otherwise idle cores (each relay at most one core); PG tx/msg: "
             "PostgreSQL transactions committed per invitation delivered (writes and read "
             "snapshots), from the due moment until the relays stopped."]
    if any(run.duplicates for run in runs):
        notes.append("FAIL: the sink got an invitation twice: the claim across relays is broken "
                     "(a bug for the relays' claim work)")
    return "\n".join([text, *notes])


def codes(args: argparse.Namespace) -> list[Code]:
    """The code variants each configuration runs with: the baseline's (if any), then this
    tree's with each `--connections` value."""
    variants = [Code("this", MAILRELAY, n) for n in args.connections or [None]]
    if args.baseline is not None:
        found = args.baseline / ".venv" / "bin" / "mailrelay"
        variants.insert(0, Code("baseline", found if found.exists() else args.baseline))
    return variants


def sends(args: argparse.Namespace) -> int:
    """(c): `--relays N` on PostgreSQL, or with `--compare` the four configurations."""
    configs = list(COMPARE) if args.compare else [("postgresql", args.relays)]
    variants = codes(args)
    with Postgres(args.store) as pg:
        print(f"delivery (c): {args.messages} invitations due at once, {args.rounds} round(s), "
              f"{os.cpu_count()} CPU(s), Python {platform.python_version()}, SQLite "
              f"{sqlite3.sqlite_version}, PostgreSQL {pg.version} ({pg.settings()})", flush=True)
        best: dict[tuple[str, Code], RelaySends] = {}
        for _ in range(args.rounds):
            for backend, relays in configs:
                for code in variants:  # alternating: both see the same machine, minutes apart
                    lead = args.lead if args.lead is not None else 5.0 + 4.0 * relays
                    run = measure_sends(None if backend == "sqlite" else pg, relays,
                                        args.messages, lead, code)
                    print_sends(run)
                    key = (run.name, code)
                    if run.duplicates or key not in best or run.rate > best[key].rate:
                        if not best.get(key) or not best[key].duplicates:
                            best[key] = run
    print()
    print(report_sends(list(best.values()), os.cpu_count() or 1))
    return 1 if any(run.duplicates or run.unique < run.messages for run in best.values()) else 0


# --- report ---------------------------------------------------------------------------------------


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], left: int = 1) -> str:
    """Columns aligned: the first `left` ones (and the last, when it is text) to the left."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) if i < left else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def report_throughput(results: list[Throughput]) -> str:
    reused = results[0].rate
    rows = [
        (r.name, f"{r.sent}", f"{r.seconds:.2f}", f"{r.rate:,.0f}",
         "-" if r.connections is None else str(r.connections),
         f"{r.rate / reused:.2f}" if reused else "-")
        for r in results
    ]
    return table(("(a) transport", "sent", "seconds", "invitations/s", "connections",
                  "vs reused"), rows)


def report_startup(runs: list[Startup]) -> str:
    rows = [
        (s.label, f"{s.ready_s:.2f}", f"{s.rss_ready_mb:.0f}", f"{s.rss_idle_mb:.0f}",
         opt(s.rss_poll_mb, ".0f"), f"{s.peak_mb:.0f}", f"{s.cpu_ready_s:.2f}",
         f"{s.cpu_idle_s:.2f}", opt(s.cpu_poll_s, ".2f"), f"{s.stop_s:.2f}", str(s.exit_status))
        for s in runs
    ]
    return table(("(b) store", "READY s", "RSS@READY MB", "RSS+idle MB", "RSS@poll MB",
                  "peak MB", "CPU→READY s", "CPU idle s", "CPU poll s", "stop s", "exit"), rows)


def verdicts(run: Startup) -> list[str]:
    rss = max(run.rss_ready_mb, run.rss_idle_mb, run.rss_poll_mb or 0.0)
    ok_ready = run.ready_s < TARGET_READY_S
    ok_rss = rss < TARGET_RSS_MB
    lines = [
        f"target READY < {TARGET_READY_S:.0f} s with {run.label}: {run.ready_s:.2f} s "
        f"{'PASS' if ok_ready else 'FAIL'}",
        f"target RSS < {TARGET_RSS_MB:.0f} MB with {run.label}: {rss:.0f} MB "
        f"(largest sample; peak VmHWM {run.peak_mb:.0f} MB) {'PASS' if ok_rss else 'FAIL'}",
    ]
    if run.exit_status != 0:
        lines.append(f"FAIL: SIGTERM exit status {run.exit_status}")
    lines += [f"daemon logged: {p}" for p in run.problems[:5]]
    return lines


def report_queries(profile: list[tuple[str, float, list[str]]]) -> str:
    rows = []
    for name, seconds, plans in profile:
        steps = [step for plan in plans for step in plan.split("; ")] or ["(no statement)"]
        for i, step in enumerate(steps):
            rows.append(("" if i else name, "" if i else f"{seconds * 1000:.1f}", step))
    rows = [(name, ms.rjust(7), step) for name, ms, step in rows]
    return table(("query", "best ms", "plan (EXPLAIN QUERY PLAN)"), rows, left=3)


def connection_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("connections are whole numbers from 1")
    return counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000,
                        help="invitations delivered per transport in (a) (default 2000)")
    parser.add_argument("--invitations", type=int, default=1_000_000,
                        help="scheduled invitations in the store for (b) (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds per transport in (a); the best is reported (default 2)")
    parser.add_argument("--idle", type=float, default=3.0,
                        help="seconds after READY before the idle RSS sample (default 3)")
    parser.add_argument("--no-poll", dest="poll", action="store_false",
                        help=f"skip the sample {POLL_SAMPLE_S:.0f} s after READY (after the "
                        "scheduler's first safety-poll tick)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="work in DIR and keep it (the big store is reused if present)")
    parser.add_argument("--throughput-only", action="store_true",
                        help="(a) only: the transports and connections, no startup (b)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 500 messages, 100,000 invitations, one round, no poll")
    parser.add_argument("--store", metavar="URL",
                        help="(c) on this PostgreSQL server (its user may CREATE DATABASE) "
                        "instead of one started here")
    parser.add_argument("--relays", type=int, default=0, metavar="N",
                        help="(c) only: sends/s of N relays on one PostgreSQL database")
    parser.add_argument("--compare", action="store_true",
                        help="(c) only: SQLite x1 against PostgreSQL x1, x2, x3 relays, one table")
    parser.add_argument("--lead", type=float, metavar="S",
                        help="(c): seconds from scheduling until due; the relays start meanwhile "
                        "(default 5 + 4 per relay)")
    parser.add_argument("--connections", type=connection_counts, metavar="N[,N…]",
                        help="(c): run each configuration with these [outbound] connections "
                        "(default: not set, the relays' default)")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="(c): also run each configuration with the code of DIR (a checkout "
                        "with its own .venv, or a mailrelay executable), alternating")
    parser.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    given = {arg.partition("=")[0] for arg in (argv if argv is not None else sys.argv)}
    if (args.compare or args.relays) and "--messages" not in given:
        args.messages = 1000  # (c): every relay group sends them; minutes on 2 busy cores
    if (args.compare or args.relays) and "--rounds" not in given:
        args.rounds = 1
    if args.quick:
        args.messages = min(args.messages, 500)
        args.invitations = min(args.invitations, 100_000)
        args.rounds = 1
        args.poll = False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sink is not None:
        asyncio.run(serve_sink(args.sink))
        return 0
    if args.compare or args.relays:
        return sends(args)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # Like `serve` at its default level: one INFO line per message sent.
    logging.basicConfig(filename=workdir / "bench.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"delivery bench: {args.messages} invitations per transport, {args.invitations:,} "
          f"scheduled for startup, {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
          f"SQLite {sqlite3.sqlite_version}", flush=True)
    try:
        a_dir = workdir / "throughput"
        shutil.rmtree(a_dir, ignore_errors=True)
        a_dir.mkdir()
        throughput, _rendered = bench_throughput(a_dir, args.messages, args.rounds)
        if args.throughput_only:
            print(f"\n{report_throughput(throughput)}")
            return 0

        b_dir = workdir / "startup"
        b_dir.mkdir(exist_ok=True)
        secret = load_secret(b_dir / "var" / "secret.key")
        empty = b_dir / "empty.db"
        for path in b_dir.glob("empty.db*"):
            path.unlink()
        big = b_dir / f"scheduled-{args.invitations}.db"
        if big.exists() and args.keep:
            print(f"  reusing {big} ({big.stat().st_size / 1e6:,.0f} MB)", flush=True)
        else:
            for path in b_dir.glob(f"{big.name}*"):
                path.unlink()
            built_s = build_scheduled(big, args.invitations, secret)
            print(f"  built {args.invitations:,} scheduled invitations in {built_s:.1f} s "
                  f"({big.stat().st_size / 1e6:,.0f} MB)", flush=True)
        Store(empty).close()
        runs = []
        for label, db in (("empty", empty), (f"{args.invitations:,} scheduled", big)):
            run = measure_startup(b_dir, label, db, args.idle, args.poll)
            print(f"  serve with {label}: READY {run.ready_s:.2f} s, "
                  f"RSS {run.rss_ready_mb:.0f}/{run.rss_idle_mb:.0f} MB", flush=True)
            runs.append(run)
        profile = profile_queries(big)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(report_throughput(throughput))
    print()
    print(report_startup(runs))
    for line in verdicts(runs[-1]):
        print(line)
    print()
    print(f"queries on {args.invitations:,} scheduled invitations:")
    print(report_queries(profile))
    failed = any(("FAIL" in line) for line in verdicts(runs[-1]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
