"""`mailrelay check`: the configuration and every local and remote resource, one line each."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

import click

from mailrelay.cli.options import config_option
from mailrelay.config import (
    Config,
    ListenAddress,
    WebhookConfig,
    bind_failure,
    listeners,
    load,
    locate,
)
from mailrelay.core.errors import ConfigError, DeliveryFailure, StoreError
from mailrelay.core.tokens import load_secret
from mailrelay.edges.imap_client import describe
from mailrelay.edges.imap_watcher import check_connection
from mailrelay.edges.mailer import SmtpTransport, prepare_maildir
from mailrelay.edges.webhook_client import WebhookClient
from mailrelay.store import open_store


@click.command()
@config_option
def check(config_path: Path | None) -> None:
    """Validate the configuration (every problem at once) and the local resources.

    Checks the listener ports, the store (SQLite: opened and migrated; PostgreSQL: reached,
    its server and schema versions read, nothing changed), the secret key, the outbound SMTP
    login (or creates the Maildir outbox whole: tmp/ new/ cur/), the IMAP login and folders,
    and that each webhook's receiver accepts connections (nothing is POSTed). Prints one line
    per check with ok or failed and the reason; exit status 1 when any failed.
    """
    try:
        path = locate(config_path)
        config = load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"failed  config: {problem}")
        click.echo(f"{len(exc.problems)} problem(s) found")
        sys.exit(1)
    for warning in config.warnings:
        click.echo(f"warning config: {warning}")
    results: list[tuple[str, str | None]] = [
        (f"config {path or '(built-in defaults)'}: {len(config.shops)} shop(s)", None)
    ]
    smtp, http = listeners(config)
    results.append(_check_port("smtp listener", smtp, config))
    results.append(_check_port("web listener", http, config))
    results.append(_check_store(config))
    results.append(_check_secret(config))
    results.append(asyncio.run(_check_outbound(config)))
    if config.imap is not None:
        results.append(asyncio.run(_check_imap(config)))
    results += [asyncio.run(_check_webhook(shop.id, hook))
                for shop in config.shops for hook in shop.webhooks]
    failed = 0
    for label, error in results:
        if error:
            failed += 1
            click.echo(f"failed  {label}: {error}")
        else:
            click.echo(f"ok      {label}")
    if failed:
        sys.exit(1)


def _check_port(label: str, listener: ListenAddress, config: Config) -> tuple[str, str | None]:
    name = f"{label} {listener.address} free"
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((listener.host, listener.port))
        except OSError as exc:
            return name, bind_failure(exc, listener, config.source)
    return name, None


async def _check_outbound(config: Config) -> tuple[str, str | None]:
    out = config.outbound
    if out.transport == "maildir":
        name = f"outbound maildir {out.maildir} writable"
        try:
            # A whole Maildir or nothing: a bare folder made here broke every send (issue 12).
            prepare_maildir(out.maildir)  # owner-only: it will hold customers' mail (issue 10 §6)
            probe = out.maildir / "tmp" / ".mailrelay-check"  # tmp/ is what readers ignore
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            return name, str(exc)
        return name, None
    transport = SmtpTransport(out, reuse=False)
    try:
        what = await transport.probe()
    except DeliveryFailure as exc:
        return f"outbound smtp {out.host}:{out.port}", exc.reply
    finally:
        await transport.close()
    return f"outbound smtp {what}", None


async def _check_imap(config: Config) -> tuple[str, str | None]:
    imap = config.imap
    if imap is None:
        return "imap", None
    try:
        what = await check_connection(imap, seconds=20)
    except Exception as exc:  # noqa: BLE001 - every failure is reported as a line
        return f"imap {imap.host}:{imap.port}", describe(exc)
    return f"imap {what}", None


async def _check_webhook(shop_id: str, hook: WebhookConfig) -> tuple[str, str | None]:
    name = f"webhook {shop_id} {hook.url} reachable ({', '.join(hook.events)})"
    try:
        await WebhookClient.reachable(hook.url, hook.timeout.total_seconds())
    except OSError as exc:
        return name, f"{exc.strerror or exc}; events wait in the outbox until it answers"
    return name, None


def _check_store(config: Config) -> tuple[str, str | None]:
    if config.store.url is not None:
        return _check_postgresql(config, config.store.url)
    name = f"store sqlite {config.store.path} writable"
    try:
        store = open_store(config.store)
        try:
            started = time.perf_counter()
            version = store.read(lambda q: q.schema_version())
            latency = (time.perf_counter() - started) * 1000
        finally:
            store.close()
    except (StoreError, OSError) as exc:
        return name, str(exc)
    return f"{name}: schema version {version}, query {latency:.1f} ms", None


def _check_postgresql(config: Config, url: str) -> tuple[str, str | None]:
    """Connects and reads the schema version without migrating (the relay does at start)."""
    from mailrelay.store.pg.probe import probe, shown_database  # psycopg: PostgreSQL only

    name = f"store postgresql {shown_database(url)}"
    try:
        facts = probe(config.store)
    except StoreError as exc:
        return name, str(exc)
    return f"{name}: {facts.describe()}", facts.problem()


def _check_secret(config: Config) -> tuple[str, str | None]:
    path = config.security.secret_file
    name = f"secret key {path}"
    try:
        key = load_secret(path)
    except (OSError, ValueError) as exc:
        return name, str(exc)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return name, f"mode {mode:o} lets others read it; run chmod 600 {path}"
    if config.store.url is not None:
        return _shared_secret_line(config, key), None
    return name, None


def _shared_secret_line(config: Config, key: bytes) -> str:
    """Which key a relay on PostgreSQL signs with: the one stored in the database by the first
    relay, whatever its own key file holds."""
    from mailrelay.store.pg.probe import stored_secret_key  # psycopg: PostgreSQL only

    path = config.security.secret_file
    try:
        stored = stored_secret_key(config.store)
    except StoreError:
        return f"secret key {path}"  # the store's line says why the database cannot be read
    if stored is None:
        return (f"secret key {path}: the first relay to start stores it in the database as "
                "the relays' shared key")
    if stored.encode() == key:
        return f"secret key {path}: the same as the relays' shared key in the database"
    return f"secret key: the relays' shared key in the database ({path} is not used)"
