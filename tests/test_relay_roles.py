"""Two relays on one PostgreSQL database, in one process: one watches the IMAP mailbox while the
other stands by (and takes over), work queued elsewhere wakes a relay at once, and the web
answers alike on either: a form from one is posted to the other, a login on one works on the
other, though each relay has a key file of its own."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import psycopg
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.core.models import MessageKind, OutboxKind
from mailrelay.services import invitations
from mailrelay.store import NewMail, NewMessage
from mailrelay.store.pg.database import PgStore

from .cli_runner import cli
from .conftest import ConfigFactory
from .imap_servers import ImapServer
from .mailtools import eventually, healthz, trigger, via_sink
from .sink import Sink
from .test_console_login import browser, csrf_of, get, log_in, post, registered
from .web_forms import form_page, invite
from .web_forms import post as post_review

pytestmark = pytest.mark.postgresql

#: A relay asks for the watcher's role this often here (2 s in production).
ROLE_INTERVAL = 0.1


def relay(config: Config, tmp_path: Path, name: str) -> Config:
    """`config` as relay `name`: its own relay_id and its own key file."""
    return replace(config, store=replace(config.store, relay_id=name),
                   security=replace(config.security, secret_file=tmp_path / f"{name}.key"))


@contextlib.asynccontextmanager
async def relays(*configs: Config, clock: FrozenClock) -> AsyncIterator[list[Daemon]]:
    """The relays of `configs`, started in order, stopped in reverse."""
    async with contextlib.AsyncExitStack() as stack:
        started = []
        for config in configs:
            daemon = Daemon(config, clock)
            daemon.role_interval = ROLE_INTERVAL
            started.append(await stack.enter_async_context(daemon))
        yield started


async def test_one_relay_watches_the_mailbox_the_other_stands_by_and_takes_over(
    make_config: ConfigFactory, pymap: ImapServer, clock: FrozenClock, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "mailrelay.roles")
    config = make_config(more=pymap.toml())
    async with relays(relay(config, tmp_path, "relay-a"), relay(config, tmp_path, "relay-b"),
                      clock=clock) as (a, b):
        await eventually(lambda: a.watching_imap, what="relay a watching")
        await eventually(lambda: a.imap is not None and a.imap.connected, what="connected")
        _status, health_b = await healthz(b)
        status_a, health_a = await healthz(a)
        assert (status_a, health_a["imap"], health_a["imap_role"]) == (200, "ok", "watching")
        assert (_status, health_b["imap"], health_b["imap_role"]) == (200, "standby", "standby")
        assert not b.watching_imap and b.imap is not None and not b.imap.connected
        assert "this relay stands by: another relay watches the IMAP mailbox" in caplog.text
        # Relay a's connection to the database ends (as when its host fails): a stops watching
        # at its next look, and b takes the role.
        role = a.imap_role
        assert role is not None
        pid = getattr(role.role, "backend_pid", None)
        assert pid is not None
        with psycopg.connect(config.store.url or "", autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await eventually(lambda: b.watching_imap, limit=10, what="relay b watching")
        # a learns of it at its next look (the replies' dedupe covers that overlap)
        await eventually(lambda: not a.watching_imap, limit=1, what="relay a stopped")
        await eventually(lambda: b.imap is not None and b.imap.connected, what="b connected")
        assert "this relay stopped watching the IMAP mailbox" in caplog.text
        metrics = await scrape_text(b)
        assert 'mailrelay_imap_watching{relay="relay-b"} 1.0' in metrics
        assert 'mailrelay_imap_role_taken_total{relay="relay-b"} 1.0' in metrics
        assert 'mailrelay_imap_watching{relay="relay-a"} 0.0' in await scrape_text(a)


async def scrape_text(daemon: Daemon) -> str:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{daemon.http_port}/metrics") as resp:
        return await resp.text()


async def queue_alert(store: PgStore, now: datetime, subject: str, message_id: str) -> None:
    """An alert mail to acme's operator, due now, queued through `store` (another relay's
    writer): only a nudge wakes the relays' dispatchers before their 30-second poll."""
    await store.write(lambda q: q.enqueue(NewMail(
        kind=OutboxKind.ALERT, shop="acme", invitation_id=None, review_id=None,
        recipient="ops@acme.example", envelope_from="bounces@relay.test",
        subject=subject, message_id=message_id,
        raw=f"Subject: {subject}\r\n\r\nFrom another relay.\r\n".encode(),
        created_at=now, due_at=now)))


async def test_mail_queued_by_another_writer_wakes_the_relay_at_once(
    config: Config, clock: FrozenClock, sink: Sink,
) -> None:
    """Without the nudge the dispatcher would sleep until its 30-second poll, and intake
    until a message reached its own listener."""
    assert config.store.url is not None
    async with relays(via_sink(config, sink), clock=clock) as [daemon]:
        other = PgStore(config.store.url, relay_id="elsewhere")  # another relay's writes
        try:
            now = clock.now()
            await queue_alert(other, now, "Queued elsewhere", "<elsewhere@relay.test>")
            await sink.wait_for(1, timeout=5)
            assert sink.messages[0][1] == ["ops@acme.example"]
            raw = trigger(to="Ann Lee <ann@example.com>")
            await other.write(lambda q: q.insert_message(NewMessage(
                now, "127.0.0.1", "shop@acme.example", "reviews+acme@relay.test", "acme",
                MessageKind.SHIPMENT, "<order-1@acme.example>", "elsewhere-1", raw)))
            await eventually(lambda: daemon.intake.processed == 1, limit=5,
                             what="intake woken by the other writer")
        finally:
            other.close()


async def test_an_invitation_due_at_once_made_elsewhere_wakes_the_relay_at_once(
    config: Config, clock: FrozenClock, sink: Sink,
) -> None:
    """`mailrelay invite --delay 0s` run on any host: the relays send it now, not at their
    dispatchers' 30-second poll."""
    assert config.store.url is not None
    async with relays(via_sink(config, sink), clock=clock) as [daemon]:
        shop = daemon.config.shop("acme")
        assert shop is not None
        other = PgStore(config.store.url, relay_id="elsewhere")  # the CLI's writes
        try:
            decision = await other.write(lambda q: invitations.invite_manually(
                q, shop, daemon.web.signer, clock.now(), email="ann@example.com",
                name="Ann Lee", reference="1090", delay=timedelta(0)))
            assert decision.invitation_id is not None, decision
            await sink.wait_for(1, timeout=5)
            assert sink.messages[0][1] == ["ann@example.com"]
        finally:
            other.close()


async def test_a_form_fetched_from_one_relay_is_posted_to_the_other(
    config: Config, clock: FrozenClock, tmp_path: Path,
) -> None:
    async with relays(relay(config, tmp_path, "relay-a"), relay(config, tmp_path, "relay-b"),
                      clock=clock) as (a, b):
        assert (tmp_path / "relay-a.key").read_text() != (tmp_path / "relay-b.key").read_text()
        invitation = await invite(a)
        async with aiohttp.ClientSession() as http:
            html = await form_page(http, a, invitation.token)
            status, page, _ = await post_review(http, b, invitation.token, {
                "stars": "5", "title": "Comfortable", "text": "Worn every day since.",
                "name": "John S.", "csrf": csrf_of(html)})
        assert status == 200, page
        [review] = b.store.read(lambda q: q.list_reviews(shop="acme"))
        assert (review.stars, review.text) == (5, "Worn every day since.")


async def test_a_console_login_on_one_relay_works_on_the_other(
    config: Config, clock: FrozenClock, tmp_path: Path,
) -> None:
    async with relays(relay(config, tmp_path, "relay-a"), relay(config, tmp_path, "relay-b"),
                      clock=clock) as (a, b):
        await registered(a, config, "owner@acme.example", "acme")
        async with browser() as http:
            resp = await log_in(http, a, "owner@acme.example")
            assert resp.status == 303
            status, html = await get(http, f"http://127.0.0.1:{b.http_port}/console/")
            assert status == 200, html
            assert "/console/acme/" in html
            # A form of relay a's console, posted to relay b: its CSRF token holds there.
            _, html = await get(http, f"http://127.0.0.1:{a.http_port}/console/")
            resp = await post(http, f"http://127.0.0.1:{b.http_port}/console/logout",
                              {"csrf": csrf_of(html)})
            assert resp.status == 303
            status, _ = await get(http, f"http://127.0.0.1:{a.http_port}/console/")
            assert status == 303  # logged out on both


async def test_a_link_the_cli_prints_opens_on_the_relays_whose_key_files_differ(
    config: Config, clock: FrozenClock, tmp_path: Path,
) -> None:
    """`mailrelay link` on another host (its own key file) signs with the relays' key."""
    async with relays(relay(config, tmp_path, "relay-a"), clock=clock) as [a]:
        code, out = cli(config, "link", "--shop", "acme", "--email", "ann@example.com")
        assert code == 0, out
        token = out.strip().rsplit("/r/", 1)[1]
        assert (tmp_path / "var" / "secret.key").read_text() != (
            tmp_path / "relay-a.key").read_text()
        async with aiohttp.ClientSession() as http:
            await form_page(http, a, token)  # 200, not "this link does not work"


async def test_the_writer_keeps_one_connection_across_batches(config: Config) -> None:
    """Each batch's cursor closed once closed the writer's connection too: every commit paid
    for a new connection, and the relay's own nudges came from ever new server processes."""
    assert config.store.url is not None
    store = PgStore(config.store.url, relay_id="relay-a")
    try:
        for n in range(5):
            await store.write(lambda q, n=n: q.enqueue(NewMail(
                kind=OutboxKind.ALERT, shop="acme", recipient="ops@acme.example",
                envelope_from="bounces@relay.test", subject=f"Batch {n}",
                message_id=f"<batch-{n}@relay.test>", raw=b"Subject: x\r\n\r\nx\r\n",
                created_at=datetime.now(UTC), due_at=datetime.now(UTC))))
        assert len(store.writer_pids) == 1
    finally:
        store.close()
