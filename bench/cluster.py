"""What the issue-15 benches share: a PostgreSQL server (started here, durable, or given by URL)
with a fresh database per configuration, N `mailrelay serve` relays on one store, and the CPU
seconds each process (and the PostgreSQL server with all its backends) used meanwhile."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from benchconfig import relay_toml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # tests.postgres: the throw-away cluster the tests use
    sys.path.insert(0, str(REPO))

MAILRELAY = Path(sys.executable).parent / "mailrelay"
READY_LINE = "mailrelay ready:"
#: The test cluster trades durability for speed; a bench of durable 250s must not.
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
#: (backend, relays): the side-by-side table of `--compare`.
COMPARE = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 3))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- CPU seconds per process tree, from /proc (what `ps` shows as TIME) ---------------------------


def _stat(pid: int) -> list[str] | None:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return None


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of `pid`, its reaped children and its live descendants (a
    postmaster's exited backends are in its cutime/cstime, the live ones are its children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        fields = _stat(current)
        if fields is None:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        todo += children.get(current, [])
    return total / CLOCK_TICKS


def own_cpu() -> float:
    """This process's CPU seconds (the load generator: every thread of it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuUse:
    """CPU seconds per role over one measurement, and its wall time."""

    wall_s: float
    relays_s: float
    postgres_s: float | None
    generator_s: float
    sink_s: float | None = None

    def share(self, seconds: float | None) -> str:
        """As percent of one core over the wall time (this machine has os.cpu_count())."""
        return "-" if seconds is None or not self.wall_s else f"{100 * seconds / self.wall_s:.0f}%"

    def ceiling(self, count: int, relays: int, cores: int) -> float | None:
        """Messages/s the CPU spent here would allow on `cores` otherwise idle cores: the
        relays and the PostgreSQL server share them, and each relay (one Python process, one
        GIL) uses at most one."""
        if not count or not self.relays_s:
            return None
        relay_s = self.relays_s / count  # per message, whichever relay handled it
        total_s = relay_s + (self.postgres_s or 0.0) / count
        return min(relays / relay_s, cores / total_s)

    @staticmethod
    def per(seconds: float | None, count: int) -> str:
        """CPU milliseconds per message: what sets the ceiling on a machine with more cores."""
        return "-" if seconds is None or not count else f"{1000 * seconds / count:.1f}"


class CpuMeter:
    """`start()` then `stop()`: the CPU each role used in between."""

    def __init__(self, relays: list[int], postgres: int | None, sink: int | None = None) -> None:
        self.relays, self.postgres, self.sink = relays, postgres, sink

    def _sample(self) -> tuple[float, float, float | None, float, float | None]:
        return (time.monotonic(), sum(tree_cpu(pid) for pid in self.relays),
                None if self.postgres is None else tree_cpu(self.postgres), own_cpu(),
                None if self.sink is None else tree_cpu(self.sink))

    def start(self) -> None:
        self._began = self._sample()

    def stop(self) -> CpuUse:
        end = self._sample()
        began = self._began

        def spent(i: int) -> float | None:
            a, b = began[i], end[i]
            return None if a is None or b is None else b - a

        return CpuUse(end[0] - began[0], spent(1) or 0.0, spent(2), spent(3) or 0.0, spent(4))


# --- PostgreSQL: a fresh database per configuration ---------------------------------------------


class Postgres:
    """A PostgreSQL server to make bench databases on: the one `url` names (its user needs
    CREATEDB), or one started here (Debian's binaries, as the tests do) with fsync on."""

    def __init__(self, url: str | None) -> None:
        self.given = url
        self._stack = contextlib.ExitStack()
        self.admin_url = url or ""
        self.version = ""

    def __enter__(self) -> Postgres:
        if self.given is None:
            from tests.postgres import NOT_FOUND, binaries, running_postgres

            bindir = binaries()
            if bindir is None:
                raise SystemExit(NOT_FOUND)
            server = self._stack.enter_context(running_postgres(bindir))
            self.admin_url = server.url
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                for name, value in DURABLE.items():
                    conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(name), sql.Literal(value)))
                conn.execute("SELECT pg_reload_conf()")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            self.version = str(row[0]) if row else "?"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def settings(self) -> str:
        shown = []
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in DURABLE:
                row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
                shown.append(f"{name}={row[0] if row else '?'}")
        return ", ".join(shown)

    def postmaster(self) -> int | None:
        """The server's main process id, when it runs on this machine and we may read its
        postmaster.pid (its CPU then counts; else the table says '-')."""
        with contextlib.suppress(OSError, psycopg.Error, ValueError, IndexError):
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                row = conn.execute("SHOW data_directory").fetchone()
            pid_file = Path(str(row[0] if row else "")) / "postmaster.pid"
            return int(pid_file.read_text().split()[0])
        return None

    def _url(self, name: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh empty database for one configuration (its URL), dropped afterwards."""
        name = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield self._url(name)
        finally:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- relays: real `mailrelay serve` processes on one store ----------------------------------------


class Relay:
    """One `mailrelay serve` in `workdir`: its own SMTP port and relay id, the group's store
    and secret key."""

    def __init__(self, workdir: Path, *, index: int, store: str, secret: Path,
                 smtp_extra: str, outbound: str, invite_delay: str,
                 mailrelay: Path = MAILRELAY) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = f"relay-{index + 1}"
        self.port = free_port()
        self.log_path = workdir / "serve.log"
        postgres = store.startswith(("postgresql://", "postgres://"))
        config = workdir / "relay.toml"
        config.write_text(relay_toml(
            store=store, url=store if postgres else None,
            relay_id=self.name if postgres else None, smtp_listen=f"127.0.0.1:{self.port}",
            smtp_extra=smtp_extra, outbound=outbound, secret_file=str(secret),
            invite_delay=invite_delay))
        self._log: IO[bytes] = self.log_path.open("wb")
        # Default log level (INFO, one line per processed message): what production runs with.
        self.proc = subprocess.Popen(
            [str(mailrelay), "serve", "--config", str(config), "--log-level", "INFO"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n"
                               f"{self.output()[-3000:]}")
        return READY_LINE in self.output()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode

    def problems(self) -> list[str]:
        """Lines logged at ERROR or above, and the last line of each traceback (the error)."""
        lines = self.output().splitlines()
        found = [line for line in lines if " ERROR " in line or " CRITICAL " in line]
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                rest = [x for x in lines[i + 1:] if x and not x.startswith(" ")]
                found.append(rest[0] if rest else line)
        return found


@contextlib.contextmanager
def relay_group(store: str, count: int, *, smtp_extra: str = "", outbound: str = "",
                invite_delay: str = "7d", secret: Path | None = None,
                within: float = 90.0, mailrelay: Path = MAILRELAY) -> Iterator[list[Relay]]:
    """`count` relays on `store` (a SQLite path or a PostgreSQL URL), started together and
    READY; each stopped afterwards, and any error it logged printed. One `secret` key file for
    the group (links work on every relay); by default a new one. `mailrelay`: the executable
    (another checkout's, to compare code)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-relays-"))
    secret = secret or workdir / "secret.key"
    relays: list[Relay] = []
    try:
        for index in range(count):
            relays.append(Relay(workdir / f"relay-{index + 1}", index=index, store=store,
                                secret=secret, smtp_extra=smtp_extra, outbound=outbound,
                                invite_delay=invite_delay, mailrelay=mailrelay))
            if index == 0:  # the first writes the secret key (and migrates); then the others
                _wait_ready(relays, within)
        _wait_ready(relays, within)
        yield relays
    finally:
        for relay in relays:
            status = relay.stop()
            problems = relay.problems()
            if status not in (0, -signal.SIGTERM) or problems:
                kept = Path(tempfile.mkdtemp(prefix=f"bench-{relay.name}-")) / "serve.log"
                shutil.copyfile(relay.log_path, kept)
                print(f"warning: {relay.name} exited {status}; its log is kept in {kept}; it "
                      "logged:", *(problems or relay.output().splitlines()[-10:])[:8],
                      sep="\n  ", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(relays: list[Relay], within: float) -> None:
    deadline = time.monotonic() + within
    while not all(relay.ready() for relay in relays):
        if time.monotonic() > deadline:
            raise RuntimeError(f"relays not READY within {within:.0f} s")
        time.sleep(0.05)


def load_average() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], left: int = 2) -> str:
    """Columns aligned, the first `left` to the left (a Markdown-friendly pipe table)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) if i < left else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
