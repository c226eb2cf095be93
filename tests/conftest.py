"""Shared fixtures: a real config file per test, an injected clock, the daemon in-process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config, load
from mailrelay.core.clock import FrozenClock

from .imap_servers import ImapServer, PymapServer, running
from .postgres import NOT_FOUND, DatabaseSupply, PostgresServer, binaries, running_postgres
from .sink import Sink, running_sink

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
NO_CORPUS = f"no shared corpus at {CORPUS} (a clone without ../shared; CI has it)"
#: MAILRELAY_TEST_STORE=postgresql: every config `make_config` writes puts the store in a fresh
#: PostgreSQL database (the session's server) instead of SQLite; a test marked `postgresql`
#: always does.
TEST_STORE = os.environ.get("MAILRELAY_TEST_STORE", "sqlite")


def missing(message: str) -> NoReturn:
    """Skip a test whose requirement is missing here; fail it in CI, which provides them all."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_corpus(*parts: str) -> Path:
    """A path in ../shared/corpus; skip without it (and fail in CI, which lays it beside us)."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{NO_CORPUS}: {path} is missing")
        pytest.skip(NO_CORPUS)
    return path


def corpus_cases(*parts: str) -> dict[str, Any]:
    """A JSON file of the shared corpus, or {} on a clone without it (see `corpus_params`)."""
    path = CORPUS.joinpath(*parts)
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    return loaded


def corpus_params(names: Iterable[str]) -> list[Any]:
    """Parameters for the corpus cases, or one that skips (fails in CI) when there are none."""
    params = sorted(names)
    if params:
        return params
    marks = pytest.mark.skipif(not IN_CI, reason=NO_CORPUS)
    return [pytest.param("missing-corpus", marks=marks)]


BASE_CONFIG = """
[store]
path = "var/test.db"

[smtp]
listen = "127.0.0.1:0"
hostname = "relay.test"
max_message_size = "64KB"
{smtp_extra}

[http]
listen = "127.0.0.1:0"
base_url = "http://reviews.test"

[outbound]
transport = "maildir"
maildir = "var/outbox"

[security]
secret_file = "var/secret.key"

[[shop]]
id = "acme"
name = "ACME Shoes"
bcc_address = "reviews+acme@relay.test"
cancel_address = "cancel+acme@relay.test"
from = "ACME Shoes <reviews@acme.example>"
reply_address = "reply@relay.test"
agents = ["support@acme.example"]
invite_delay = "7d"
send_hours = ""
timezone = "UTC"
{shop_extra}
"""


def smtp_outbound(text: str, port: int, *settings: str) -> str:
    """A relay.toml text from BASE_CONFIG with [outbound] sending over SMTP to 127.0.0.1:`port`
    instead of the Maildir; `settings` are more `key = value` lines for [outbound]."""
    maildir = 'transport = "maildir"\nmaildir = "var/outbox"'
    assert maildir in text, "BASE_CONFIG's [outbound] changed"
    smtp = "\n".join(['transport = "smtp"', 'host = "127.0.0.1"', f"port = {port}", *settings])
    return text.replace(maildir, smtp, 1)


def second_shop(**fields: str | list[str] | None) -> str:
    """A `[[shop]]` table for a second shop, "bolt", beside BASE_CONFIG's "acme": the tests that
    check nothing crosses between shops. `fields` override or add keys (None drops one)."""
    values: dict[str, str | list[str] | None] = {
        "id": "bolt", "name": "Bolt Bikes", "bcc_address": "reviews+bolt@relay.test",
        "from": "Bolt Bikes <reviews@bolt.example>", "reply_address": "reply@relay.test",
        "agents": ["help@bolt.example"], "invite_delay": "7d", "send_hours": "",
        "timezone": "UTC",
    }
    values.update(fields)
    lines = [f"{key} = {json.dumps(value, ensure_ascii=False)}"
             for key, value in values.items() if value is not None]
    return "\n[[shop]]\n" + "\n".join(lines) + "\n"


def keep_store_tests(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass (MAILRELAY_TEST_STORE=postgresql) is the suite's second run: it
    keeps the tests whose relay is built from a config (`make_config`, which then puts the
    store in PostgreSQL) and deselects the rest, which would run exactly as on SQLite, and
    those marked `postgresql`, which use PostgreSQL in the first pass already. Tests that
    inspect SQLite's files skip with their reason."""
    on_pg = pytest.mark.skip(reason="inspects SQLite's files; the store is PostgreSQL")
    kept, same = [], []
    for item in items:
        uses_config = "make_config" in getattr(item, "fixturenames", ())
        if not uses_config or item.get_closest_marker("postgresql") is not None:
            same.append(item)
            continue
        if "sqlite_only" in item.keywords:
            item.add_marker(on_pg)
        kept.append(item)
    if same:
        config.hook.pytest_deselected(items=same)
        items[:] = kept


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow soak/fault tests run in CI (CI=true) or with MAILRELAY_SLOW=1."""
    if TEST_STORE == "postgresql":
        keep_store_tests(config, items)
    if IN_CI or os.environ.get("MAILRELAY_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow test: set MAILRELAY_SLOW=1 (CI runs it)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def require_program(name: str, package: str) -> str:
    """Path of an external program; skip without it (and fail in CI, where .ci/run installs it)."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not found: install the Debian package {package} (.ci/run does)")
    return path


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert, key)."""
    openssl = require_program("openssl", "openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    arguments = "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
    san = "subjectAltName=IP:127.0.0.1,DNS:localhost"
    subprocess.run(
        [openssl, *arguments.split(), "-addext", san, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL cluster for the session (tests/postgres.py); skipped without
    Debian's postgresql (a failure in CI). Stopped and deleted at the end, failed tests or not."""
    bindir = binaries()
    if bindir is None:
        missing(NOT_FOUND)
    with running_postgres(bindir) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The session server's maintenance database (postgresql://mailrelay@127.0.0.1:port/postgres)."""
    return postgres_server.url


@pytest.fixture
def pg_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database for one test: its postgresql:// URL (works from any process on
    this host); dropped afterwards, its open sessions ended."""
    with postgres_server.database() as url:
        yield url


ConfigFactory = Callable[..., Config]


@pytest.fixture(scope="session")
def pg_migrated_stores(postgres_server: PostgresServer) -> Iterator[DatabaseSupply]:
    """Databases for the PostgreSQL pass's stores: copies of one migrated to the newest schema
    once per session, made ahead while tests run. A test's store costs it neither the
    migrations (which the tests marked `postgresql` still run from empty) nor the wait for
    CREATE DATABASE."""
    from mailrelay.store.pg.database import PgStore

    template = postgres_server.create_database()
    PgStore(template).close()
    supply = DatabaseSupply(postgres_server, template.rsplit("/", 1)[1])
    yield supply
    supply.close()


def store_line_for(request: pytest.FixtureRequest) -> str | None:
    """The `[store] url` line of a test on PostgreSQL (see TEST_STORE), None on SQLite. In the
    PostgreSQL pass a test's store starts migrated (`pg_migrated_stores`); a test marked
    `postgresql` gets an empty database, as a relay's first start does."""
    if request.node.get_closest_marker("postgresql") is not None:
        return f'url = "{request.getfixturevalue("pg_database")}"'
    if TEST_STORE != "postgresql":
        return None
    supply: DatabaseSupply = request.getfixturevalue("pg_migrated_stores")
    url = supply.take()
    request.addfinalizer(lambda: supply.give_back(url))
    return f'url = "{url}"'


@pytest.fixture
def make_config(tmp_path: Path, request: pytest.FixtureRequest) -> ConfigFactory:
    """Write a relay.toml into tmp_path (with extra TOML for [smtp] and the shop) and load it."""
    store_url = store_line_for(request)

    def factory(smtp_extra: str = "", shop_extra: str = "", more: str = "",
                security_extra: str = "") -> Config:
        text = BASE_CONFIG.format(
            smtp_extra=textwrap.dedent(smtp_extra), shop_extra=textwrap.dedent(shop_extra)
        ) + textwrap.dedent(more)
        if store_url is not None:
            text = text.replace('path = "var/test.db"', store_url, 1)
        secret = 'secret_file = "var/secret.key"\n'
        text = text.replace(secret, secret + textwrap.dedent(security_extra), 1)
        path = tmp_path / "relay.toml"
        path.write_text(text)
        return load(path)

    return factory


@pytest.fixture
def config(make_config: ConfigFactory) -> Config:
    return make_config()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A real aiosmtpd server standing in for the shop's submission server."""
    async with running_sink() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A real HTTP client session (for the review form and the public pages)."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def pymap(tmp_path: Path) -> Iterator[ImapServer]:
    """A pymap IMAP server (pure Python, always there) for the relay to watch."""
    with running(PymapServer(tmp_path / "imap")) as server:
        yield server


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def daemon(config: Config, clock: FrozenClock) -> AsyncIterator[Daemon]:
    async with Daemon(config, clock) as running:
        yield running


#: Count lines of the fault and fuzz suite (tests/test_fuzz_*.py), printed after the run.
FUZZ_COUNTS = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Show the fuzz counts in plain `pytest -q` output (captured prints would be hidden)."""
    lines = config.stash.get(FUZZ_COUNTS, [])
    if lines:
        terminalreporter.section("fuzz counts")
        for line in lines:
            terminalreporter.write_line(line)
