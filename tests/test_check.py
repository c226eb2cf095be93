"""`mailrelay check` for real: outbound login, IMAP login and folders, ports, secret, store;
and /healthz turning 503 while the IMAP server is down."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from mailrelay import app
from mailrelay.app import Daemon
from mailrelay.cli import main
from mailrelay.config import load
from mailrelay.core.clock import FrozenClock
from mailrelay.edges.mailer import build_transport

from .conftest import BASE_CONFIG, ConfigFactory, second_shop, smtp_outbound
from .imap_servers import PymapServer
from .sink import Sink, running_sink


@pytest.fixture
async def auth_sink(certificate: tuple[Path, Path],
                   monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Sink]:
    """A submission server with STARTTLS and AUTH; the client trusts its test certificate
    through SSL_CERT_FILE, as an operator's private CA would be trusted."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    async with running_sink(users={"relay": "s3cret"}, tls_context=context) as running:
        yield running


@pytest.fixture
def own_pymap(tmp_path: Path) -> Iterator[PymapServer]:
    """This file's own pymap server, stopped at the end (its tests stop or kill it midway)."""
    server = PymapServer(tmp_path / "imap")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def write_config(tmp_path: Path, sink: Sink, password: str, imap: str = "") -> Path:
    text = smtp_outbound(BASE_CONFIG.format(smtp_extra="", shop_extra=""), sink.port,
                         "starttls = true", 'username = "relay"', f'password = "{password}"') + imap
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return path


def check(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    return result.exit_code, result.output


async def test_check_logs_in_everywhere_and_prints_one_ok_line_per_check(
    tmp_path: Path, auth_sink: Sink, own_pymap: PymapServer
) -> None:
    path = write_config(tmp_path, auth_sink, "s3cret", own_pymap.toml())
    code, out = await asyncio.to_thread(check, path)
    assert code == 0, out
    lines = out.strip().splitlines()
    assert all(line.startswith("ok") for line in lines), out
    assert any("outbound smtp" in line and "logged in as relay" in line for line in lines)
    assert any(line.startswith("ok      imap") for line in lines)
    assert await own_pymap.folder_exists("mailrelay/processed")


async def test_check_reports_each_failure_with_its_reason_and_exits_1(
    tmp_path: Path, auth_sink: Sink, own_pymap: PymapServer
) -> None:
    path = write_config(tmp_path, auth_sink, "wrong", own_pymap.toml())
    own_pymap.stop()
    secret = tmp_path / "var" / "secret.key"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("x" * 64)
    secret.chmod(0o644)
    code, out = await asyncio.to_thread(check, path)
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("failed")]
    assert any("outbound smtp" in line and "authentication failed" in line for line in failed)
    assert any("imap" in line for line in failed)
    assert any("secret key" in line and "chmod 600" in line for line in failed)


async def test_healthz_turns_503_when_the_imap_server_is_stopped(
    tmp_path: Path, own_pymap: PymapServer
) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(BASE_CONFIG.format(smtp_extra="", shop_extra="") + own_pymap.toml())
    config = load(path)
    async with Daemon(config, FrozenClock()) as daemon:
        assert daemon.imap is not None
        daemon.imap.backoff_initial = 0.1
        daemon.imap.backoff_max = 0.2
        url = f"http://127.0.0.1:{daemon.http_port}/healthz"

        async def status() -> int:
            async with aiohttp.ClientSession() as http:
                async with http.get(url) as resp:
                    return resp.status

        for _ in range(100):
            if await status() == 200:
                break
            await asyncio.sleep(0.05)
        assert await status() == 200
        own_pymap.kill()
        for _ in range(200):
            if await status() == 503:
                break
            await asyncio.sleep(0.05)
        assert await status() == 503
        own_pymap.restart()
        for _ in range(200):
            if await status() == 200:
                break
            await asyncio.sleep(0.05)
        assert await status() == 200


async def test_check_warns_about_the_deprecated_imap_authserv_id_and_still_passes(
    tmp_path: Path, own_pymap: PymapServer
) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(BASE_CONFIG.format(smtp_extra="", shop_extra="") + own_pymap.toml()
                    + 'authserv_id = "mx.relay.test"\n')
    code, out = await asyncio.to_thread(check, path)
    assert code == 0, out
    warnings = [line for line in out.splitlines() if line.startswith("warning")]
    assert any("imap.authserv_id (line" in w and "[security] authserv_id" in w
               for w in warnings), out
    assert any("smtp.trusted_clients is empty" in w for w in warnings), out
    assert all(line.startswith(("ok", "warning")) for line in out.strip().splitlines()), out


def test_check_creates_a_missing_maildir_outbox_owner_only_under_umask_022(
    make_config: ConfigFactory,
) -> None:
    """`check` is often the first command run; the Maildir it creates will hold customers'
    mail, so it must be 0700 like everything else the relay creates (issue 10 §6)."""
    config = make_config()
    old = os.umask(0o022)
    try:
        code, output = check(config.source)
    finally:
        os.umask(old)
    assert "outbound maildir" in output, output
    for folder in (config.outbound.maildir, config.outbound.maildir.parent):
        assert folder.stat().st_mode & 0o777 == 0o700, (folder, output)


async def test_the_maildir_check_creates_is_one_serve_can_deliver_into(
    make_config: ConfigFactory,
) -> None:
    """The README runs `check` before the first `serve`: the outbox it leaves behind must be a
    whole Maildir (tmp/ new/ cur/), with no probe file left in it."""
    config = make_config()
    code, output = await asyncio.to_thread(check, config.source)
    assert "ok      outbound maildir" in output, output
    outbox = config.outbound.maildir
    assert sorted(path.name for path in outbox.iterdir()) == ["cur", "new", "tmp"], output
    assert all(not list((outbox / sub).iterdir()) for sub in ("cur", "new", "tmp"))
    await build_transport(config.outbound).send("bounce@relay.test", "a@example.com", b"x\r\n")
    assert len(list((outbox / "new").iterdir())) == 1


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_check_says_which_address_is_in_use_and_which_key_sets_it(
    make_config: ConfigFactory, taken_port: int
) -> None:
    config = make_config()
    assert config.source is not None
    text = config.source.read_text().replace('listen = "127.0.0.1:0"',
                                             f'listen = "127.0.0.1:{taken_port}"', 1)
    config.source.write_text(text)
    code, out = check(config.source)
    assert code == 1
    [line] = [line for line in out.splitlines() if line.startswith("failed")]
    assert "Errno" not in line, line
    assert f"127.0.0.1:{taken_port} is in use" in line, line
    assert "[smtp] listen" in line and str(config.source) in line, line


async def test_serve_says_which_address_is_in_use_and_which_key_sets_it(
    make_config: ConfigFactory, taken_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config()
    assert config.source is not None
    text = config.source.read_text()
    at = text.index('listen = "127.0.0.1:0"', text.index("[http]"))
    config.source.write_text(text[:at] + f'listen = "127.0.0.1:{taken_port}"'
                             + text[at + len('listen = "127.0.0.1:0"'):])
    assert await app.run(load(config.source)) == app.EXIT_STARTUP
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "Errno" not in error, error
    assert f"127.0.0.1:{taken_port} is in use" in error and "[http] listen" in error, error


async def test_serve_says_at_start_which_config_store_outbox_and_urls_it_runs_with(
    make_config: ConfigFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12: an operator learns from the first lines what this relay runs with."""
    caplog.set_level("INFO", logger="mailrelay")
    config = make_config(more=second_shop(digest="09:00", timezone="Europe/Oslo")
                         + f'[drafts]\ncommand = "{sys.executable} --version"\n')
    stop = asyncio.Event()
    assert await app.run(config, ready=lambda _daemon: stop.set(), stop=stop) == app.EXIT_OK
    lines = [r.getMessage() for r in caplog.records if r.name == "mailrelay.app"]
    text = "\n".join(lines)
    assert f"config {config.source}" in text
    assert f"store {config.store.url or config.store.path}" in text
    assert "outbound mail to " in text
    assert f"web {config.http.base_url}/" in text
    for shop in config.shops:
        page = f"{config.http.base_url}/s/{shop.id}"
        assert f"shop {shop.id}: BCC {shop.bcc_address}, public page {page}" in text
    assert "shop bolt: digest at 09:00 Europe/Oslo" in text and "shop acme: digest" not in text
    assert (f"drafts from {sys.executable} (falling back to the templates after 10s)"
            in text)
    assert text.index("config ") < text.index("mailrelay ready")
