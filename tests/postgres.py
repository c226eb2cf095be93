"""A real PostgreSQL server for the tests: Debian's `postgresql` binaries, a throw-away cluster
in a temporary directory (initdb + pg_ctl, as the `postgres` user when we are root), listening on
127.0.0.1 on a free port, so other processes (`mailrelay serve`, the bench) reach it by URL.

`python -m tests.postgres` starts one by hand and prints its URL (stop it with Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import contextlib
import glob
import os
import queue
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from .mailtools import free_port

HOST = "127.0.0.1"
#: The cluster's superuser; pg_hba trusts it from loopback only (no password in test URLs).
SUPERUSER = "mailrelay"
NOT_FOUND = "PostgreSQL not found: install the Debian package postgresql (.ci/run does)"
#: Speed over durability: a test cluster is thrown away, a crash only loses the test's data.
SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "32MB",
    "max_locks_per_transaction": "128",
    "log_min_messages": "warning",
    "log_connections": "off",
    "timezone": "UTC",
}


def binaries() -> Path | None:
    """The folder with initdb, pg_ctl and postgres: on PATH, or Debian's newest version."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit()
                   else 0)
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """One cluster: `start()` runs initdb and pg_ctl start, `stop()` stops it and deletes it."""

    def __init__(self, bindir: Path, port: int | None = None) -> None:
        self.bindir = bindir
        self.port = port or free_port()
        # A short path (the socket name must fit in 108 bytes) that the postgres user may enter:
        # pytest's tmp dirs are 0700 and belong to root.
        self.home = Path(tempfile.mkdtemp(prefix="mrpg-"))
        self.home.chmod(0o755)
        self.data = self.home / "data"
        self.log = self.home / "postgres.log"
        self.user = "postgres" if os.geteuid() == 0 else None
        self._guardian: subprocess.Popen[bytes] | None = None
        self._started = False  # once clients know the port, it must not change

    @property
    def url(self) -> str:
        """The maintenance database `postgres` (for CREATE/DROP DATABASE)."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{name}"

    def _command(self, program: str, *arguments: str) -> list[str]:
        """A server program as the cluster's owner (runuser from root: initdb refuses root)."""
        command = [str(self.bindir / program), *arguments]
        return command if self.user is None else ["runuser", "-u", self.user, "--", *command]

    def _run(self, program: str, *arguments: str) -> None:
        done = subprocess.run(self._command(program, *arguments), capture_output=True,
                              text=True, cwd=self.home, stdin=subprocess.DEVNULL, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}):\n{done.stdout}"
                               f"{done.stderr}\n{self.log_text()[-2000:]}")

    def _guard(self) -> None:
        """A watcher in its own session: when this process dies without its teardown (pytest
        SIGKILLed by a timeout), it stops the cluster and deletes it within a second or two."""
        if self._guardian is not None and self._guardian.poll() is None:
            return
        stop = shlex.join(self._command("pg_ctl", "stop", "-m", "immediate", "-D",
                                        str(self.data)))
        script = (f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
                  f"{stop} >/dev/null 2>&1; rm -rf {shlex.quote(str(self.home))}")
        self._guardian = subprocess.Popen(
            ["sh", "-c", script], start_new_session=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _initdb(self) -> None:
        self.data.mkdir(mode=0o700)
        self.log.touch()
        if self.user is not None:
            for path in (self.home, self.data, self.log):
                shutil.chown(path, self.user, self.user)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync")
        # Trust the superuser from loopback; any other role needs its password (the tests of
        # password_file/password_env create one). No unix-socket logins from other OS users.
        (self.data / "pg_hba.conf").write_text(
            f"local all {SUPERUSER} trust\n"
            f"host all {SUPERUSER} {HOST}/32 trust\n"
            f"host all all {HOST}/32 scram-sha-256\n")
        settings = {**SETTINGS, "unix_socket_directories": str(self.home)}  # port: at start
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("".join(f"{key} = '{value}'\n" for key, value in settings.items()))

    def start(self) -> None:
        """Start (after initdb, the first time) and wait until TCP logins work. A port taken
        meanwhile by another process is replaced by a free one (the first start only)."""
        if not self.data.exists():
            self._initdb()
        self._guard()
        for attempt in range(5):
            try:
                self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                          "-l", str(self.log), "-o", f"-p {self.port}")
                break
            except RuntimeError as error:
                if "could not bind" not in str(error) or attempt == 4 or self._started:
                    raise
                self.port = free_port()
        self._started = True
        deadline = time.monotonic() + 30
        while True:  # pg_ctl -w waited for the socket; make sure TCP logins work too
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (fast: roll back open transactions; immediate: like a crash)."""
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "stop", "-w", "-t", "30", "-m", mode, "-D", str(self.data))
            except (RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "stop", "-w", "-t", "30", "-m", "immediate",
                          "-D", str(self.data))

    def restart(self, mode: str = "fast") -> None:
        """Stop (every session is cut) and start again on the same port with the same data."""
        self.stop(mode)
        self.start()

    def remove(self) -> None:
        """Stop and delete the cluster's directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)
            if self._guardian is not None:
                self._guardian.kill()
                self._guardian.wait()

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")
        return ""

    def create_database(self, template: str = "template0") -> str:
        """A fresh database, a copy of `template` (default: empty); its URL. A template made
        once per session (say, migrated to the newest schema) saves each test the migrations;
        nobody may be connected to it while it is copied."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            # FILE_COPY (PostgreSQL 15+): half the time of WAL_LOG when fsync is off
            strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}" + strategy).format(
                sql.Identifier(name), sql.Identifier(template)))
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by `create_database`, ending the sessions still connected."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))

    @contextlib.contextmanager
    def database(self, template: str = "template0") -> Iterator[str]:
        """A fresh database for the block (its URL), dropped afterwards."""
        url = self.create_database(template)
        try:
            yield url
        finally:
            self.drop_database(url)


class DatabaseSupply:
    """Copies of one template made ahead, in a thread, while tests run (they mostly wait on
    sockets): `take()` hands one over at once instead of after a CREATE DATABASE, and
    `give_back(url)` drops it in the same thread. `close()` ends the thread and drops the
    copies nobody took."""

    def __init__(self, server: PostgresServer, template: str, ahead: int = 2) -> None:
        self.server, self.template = server, template
        self._ready: queue.Queue[str] = queue.Queue(maxsize=ahead)
        self._dropping: queue.Queue[str | None] = queue.Queue()
        self._closed = threading.Event()
        self._maker = threading.Thread(target=self._make, name="pg-supply", daemon=True)
        self._dropper = threading.Thread(target=self._drop, name="pg-drops", daemon=True)
        self._maker.start()
        self._dropper.start()

    def take(self) -> str:
        """A fresh copy of the template (its URL)."""
        while self._maker.is_alive():
            with contextlib.suppress(queue.Empty):
                return self._ready.get(timeout=1.0)
        return self.server.create_database(self.template)  # the maker failed: make it here

    def give_back(self, url: str) -> None:
        self._dropping.put(url)

    def _make(self) -> None:
        while not self._closed.is_set():
            try:
                url = self.server.create_database(self.template)
            except psycopg.Error:  # a test stopped the server for a while
                self._closed.wait(0.5)
                continue
            while not self._closed.is_set():
                with contextlib.suppress(queue.Full):
                    self._ready.put(url, timeout=0.5)
                    break
            else:
                self._dropping.put(url)

    def _drop(self) -> None:
        while (url := self._dropping.get()) is not None:
            with contextlib.suppress(psycopg.Error):
                self.server.drop_database(url)

    def close(self) -> None:
        self._closed.set()
        self._maker.join(timeout=30)
        while not self._ready.empty():
            self._dropping.put(self._ready.get_nowait())
        self._dropping.put(None)
        self._dropper.join(timeout=30)


@contextlib.contextmanager
def running_postgres(bindir: Path) -> Iterator[PostgresServer]:
    """A started cluster for the block; stopped and deleted afterwards, even on errors."""
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.remove()


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main() -> None:
    """Start a cluster by hand (for the bench or a look with psql) until Ctrl-C or SIGTERM;
    the cluster is stopped and deleted then."""
    bindir = binaries()
    if bindir is None:
        raise SystemExit(NOT_FOUND)
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started in the background
        signal.signal(signum, _stop)
    with running_postgres(bindir) as server:
        print(server.url, flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
