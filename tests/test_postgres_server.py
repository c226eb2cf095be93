"""The PostgreSQL test server itself (tests/postgres.py): fresh databases, reachable from another
process, dropped after the test, and the cluster gone after its block even when the block fails."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from .conftest import missing
from .postgres import NOT_FOUND, PostgresServer, binaries, running_postgres

ROOT = Path(__file__).resolve().parents[1]


def test_each_test_gets_a_fresh_empty_database(pg_database: str) -> None:
    with psycopg.connect(pg_database) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        conn.execute("CREATE TABLE parcels (id integer PRIMARY KEY, label text)")
        conn.execute("INSERT INTO parcels VALUES (1, 'blue boots')")
    assert tables == (0,)


def test_another_process_reaches_the_database_by_its_url(pg_database: str) -> None:
    with psycopg.connect(pg_database) as conn:
        conn.execute("CREATE TABLE parcels (label text)")
        conn.execute("INSERT INTO parcels VALUES ('red scarf')")
    script = textwrap.dedent("""
        import sys, psycopg
        with psycopg.connect(sys.argv[1]) as conn:
            print(conn.execute("SELECT label FROM parcels").fetchone()[0])
    """)
    done = subprocess.run([sys.executable, "-c", script, pg_database],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "red scarf"


def test_a_database_can_start_as_a_copy_of_a_template(postgres_server: PostgresServer) -> None:
    with postgres_server.database() as template_url:
        with psycopg.connect(template_url) as conn:
            conn.execute("CREATE TABLE parcels (label text)")
            conn.execute("INSERT INTO parcels VALUES ('green gloves')")
        template = template_url.rsplit("/", 1)[1]
        with (postgres_server.database(template) as first,
              postgres_server.database(template) as second):
            with psycopg.connect(first) as conn:
                conn.execute("DELETE FROM parcels")
            with psycopg.connect(second) as conn:
                labels = conn.execute("SELECT label FROM parcels").fetchall()
    assert labels == [("green gloves",)]


def test_a_database_is_dropped_after_its_block_with_sessions_still_open(
        postgres_server: PostgresServer) -> None:
    with postgres_server.database() as url:
        lingering = psycopg.connect(url)
        name = url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.url) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                            (name,)).fetchone()
    lingering.close()
    assert left == (0,)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except OSError:
        return False
    return True


def test_the_cluster_stops_and_disappears_when_its_block_fails() -> None:
    bindir = binaries()
    if bindir is None:
        missing(NOT_FOUND)
    started: list[PostgresServer] = []
    with pytest.raises(RuntimeError, match="a test failed"), running_postgres(bindir) as server:
        started.append(server)
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        raise RuntimeError("a test failed")
    server = started[0]
    assert not server.home.exists()
    assert not listening(server.port)


def test_a_test_run_killed_without_teardown_leaves_no_cluster_behind() -> None:
    if binaries() is None:
        missing(NOT_FOUND)
    script = textwrap.dedent("""
        import time
        from tests.postgres import binaries, running_postgres
        with running_postgres(binaries()) as server:
            print(server.port, server.home, flush=True)
            time.sleep(120)
    """)
    run = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                           text=True)
    assert run.stdout is not None
    port, home = run.stdout.readline().split()
    run.stdout.close()
    assert listening(int(port))

    run.kill()  # as a CI timeout does: no finally, no fixture teardown
    run.wait(10)
    deadline = time.monotonic() + 20
    while listening(int(port)) or Path(home).exists():
        assert time.monotonic() < deadline, "the cluster outlived its test run"
        time.sleep(0.2)
