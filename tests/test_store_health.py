"""The database in /healthz (backend, reachable, schema version, round trip; 503 while
PostgreSQL is down), in `mailrelay check` (server and schema version, nothing changed), and the
relay's id as a label on every /metrics series."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import aiohttp
import psycopg
import pytest

from mailrelay import app, store
from mailrelay.app import Daemon
from mailrelay.config import Config, load
from mailrelay.core.clock import FrozenClock
from mailrelay.store.coordination import shared_secret
from mailrelay.store.pg.database import PgStore

from .cli_runner import cli
from .conftest import ConfigFactory
from .mailtools import eventually, free_port, healthz, scrape
from .postgres import PostgresServer

NEWEST = len(store.MIGRATIONS)


def with_store_lines(config: Config, *lines: str) -> Config:
    """The test's relay.toml with more keys in its [store] table."""
    assert config.source is not None
    text = config.source.read_text().replace("[store]\n", "[store]\n" + "\n".join(lines) + "\n",
                                             1)
    config.source.write_text(text)
    return load(config.source)


@pytest.mark.postgresql
async def test_healthz_reports_postgresql_and_turns_503_while_the_server_is_down(
    config: Config, clock: FrozenClock, postgres_server: PostgresServer,
) -> None:
    async with Daemon(config, clock) as daemon:
        status, body = await healthz(daemon)
        assert status == 200
        database = body["database"]
        assert (database["backend"], database["reachable"], database["schema_version"]) == (
            "postgresql", True, NEWEST)
        assert 0 <= database["latency_ms"] < 5000
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{daemon.http_port}/healthz") as resp:
                text = await resp.text()
        for private in ("@", "127.0.0.1", str(postgres_server.port), "t_"):
            assert private not in text, private
        postgres_server.stop()
        try:
            status, body = await healthz(daemon)
            assert status == 503
            assert body["store"] == "failed"
            assert body["database"] == {"backend": "postgresql", "reachable": False,
                                        "schema_version": None, "latency_ms": None}
        finally:
            postgres_server.start()

        async def healthy() -> bool:
            return (await healthz(daemon))[0] == 200

        await eventually(healthy, limit=30, what="/healthz back to 200")


async def test_healthz_reports_the_sqlite_store_without_its_path(
    make_config: ConfigFactory, clock: FrozenClock,
) -> None:
    config = make_config()
    async with Daemon(config, clock) as daemon:
        status, body = await healthz(daemon)
    assert status == 200
    backend = "sqlite" if config.store.url is None else "postgresql"
    assert body["database"]["backend"] == backend
    assert body["database"]["schema_version"] == NEWEST


def check_line(config: Config, label: str) -> str:
    _, output = cli(config, "check")
    [line] = [line for line in output.splitlines() if f" {label}" in line]
    return line


@pytest.mark.postgresql
def test_check_reports_the_server_and_the_schema_and_creates_nothing(
    config: Config, pg_database: str,
) -> None:
    where = re.escape(pg_database.removeprefix("postgresql://"))
    line = check_line(config, "store postgresql")
    assert re.fullmatch(rf"ok +store postgresql {where}: PostgreSQL \d+\.\d+, empty: the "
                        r"schema will be created at first start, query \d+\.\d ms", line), line
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)
    PgStore(pg_database).close()
    line = check_line(config, "store postgresql")
    assert line.startswith("ok ") and f"schema version {NEWEST} (this mailrelay's)" in line
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (%s, 'later')", (NEWEST + 7,))
    line = check_line(config, "store postgresql")
    assert line.startswith("failed ")
    assert f"schema version {NEWEST + 7} is newer than this mailrelay's {NEWEST}" in line


@pytest.mark.postgresql
def test_check_says_which_secret_key_a_relay_on_postgresql_signs_with(
    config: Config, pg_database: str,
) -> None:
    key_file = config.security.secret_file
    line = check_line(config, "secret key")
    assert line == (f"ok      secret key {key_file}: the first relay to start stores it in the "
                    "database as the relays' shared key"), line
    shared_secret(config.store, key_file.read_text().strip().encode())  # this relay was first
    line = check_line(config, "secret key")
    assert line.endswith(f"{key_file}: the same as the relays' shared key in the database")
    with psycopg.connect(pg_database, autocommit=True) as conn:  # another relay was first
        conn.execute("UPDATE shared_values SET value = %s WHERE name = 'secret_key'",
                     ("another relay's key, at least 32 characters long",))
    line = check_line(config, "secret key")
    assert line == (f"ok      secret key: the relays' shared key in the database ({key_file} "
                    "is not used)"), line


@pytest.mark.postgresql
async def test_serve_exits_for_systemd_to_start_it_again_while_the_database_is_unreachable(
    make_config: ConfigFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    """Exit status 3 is never restarted (the unit's RestartPreventExitStatus): a relay that
    finds its database down at boot, or mid-failover, must not stay down with it."""
    config = make_config()
    assert config.source is not None
    text = re.sub(r'url = "[^"]*"', f'url = "postgresql://relay@127.0.0.1:{free_port()}/mr"',
                  config.source.read_text(), count=1)
    config.source.write_text(text)
    assert await app.run(load(config.source)) == app.EXIT_UNREACHABLE != app.EXIT_STARTUP
    failed, why = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert failed.startswith("startup failed: cannot open store postgresql://relay@"), failed
    assert why == "no connection to the database: exit status 1, so that systemd starts the " \
                  "relay again"


@pytest.mark.postgresql
def test_check_names_an_unreachable_server_without_a_password(
    make_config: ConfigFactory, tmp_path: Path,
) -> None:
    (tmp_path / "db.pass").write_text("never-shown-7731\n")
    config = make_config()
    assert config.source is not None
    text = re.sub(r'url = "[^"]*"', 'url = "postgresql://relay@127.0.0.1:1/mailrelay"\n'
                  'password_file = "db.pass"', config.source.read_text(), count=1)
    config.source.write_text(text)
    line = check_line(load(config.source), "store postgresql")
    assert line.startswith("failed  store postgresql relay@127.0.0.1:1/mailrelay: "), line
    assert "never-shown-7731" not in line


def test_check_reports_the_sqlite_store_and_its_schema_version(
    make_config: ConfigFactory,
) -> None:
    config = make_config()
    if config.store.url is not None:
        pytest.skip("the suite runs on PostgreSQL")
    line = check_line(config, "store sqlite")
    assert line == (f"ok      store sqlite {config.store.path} writable: schema version "
                    f"{NEWEST}, query {line.rsplit('query ', 1)[1]}")


async def test_every_metrics_series_carries_the_relays_id(
    make_config: ConfigFactory, clock: FrozenClock,
) -> None:
    config = with_store_lines(make_config(), 'relay_id = "relay-a"')
    async with Daemon(config, clock) as daemon:
        samples = await scrape(daemon)  # checks relay="relay-a" on every series
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{daemon.http_port}/metrics") as resp:
                text = await resp.text()
    assert samples[("mailrelay_outbox_depth", ())] == 0
    assert 'mailrelay_outbox_depth{relay="relay-a"} 0.0' in text
    assert 'mailrelay_outbound_messages_total{relay="relay-a",result="sent"} 0.0' in text \
        or 'mailrelay_outbound_messages_total{result="sent",relay="relay-a"} 0.0' in text


@pytest.mark.postgresql
async def test_two_relays_on_one_database_label_their_series_apart(
    config: Config, clock: FrozenClock,
) -> None:
    """The database-wide gauges are the same figure from each relay; the label tells the
    series apart (README: take max of those, sum the counters)."""
    one = replace(config, store=replace(config.store, relay_id="relay-a"))
    two = replace(config, store=replace(config.store, relay_id="relay-b"))
    async with Daemon(one, clock) as first, Daemon(two, clock) as second:
        for daemon in (first, second):
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{daemon.http_port}/metrics") as resp:
                    text = await resp.text()
            relay = daemon.config.store.relay_id
            assert f'mailrelay_outbox_depth{{relay="{relay}"}} 0.0' in text
            assert (await scrape(daemon))[("mailrelay_outbox_depth", ())] == 0
