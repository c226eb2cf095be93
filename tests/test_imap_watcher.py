"""The IMAP watcher against real servers (pymap always, Dovecot when installed): exactly once,
never by \\Seen, filed after commit, surviving crashes, restarts and UIDVALIDITY changes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import logging
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest

from mailrelay.app import Daemon
from mailrelay.config import ImapConfig
from mailrelay.core.clock import FrozenClock
from mailrelay.edges.imap_watcher import ImapWatcher, check_connection, delete_filed
from mailrelay.services.privacy import names
from mailrelay.store import Store

from .conftest import ConfigFactory, require_program
from .imap_servers import DovecotServer, ImapServer, PymapServer, running
from .mailtools import customer_mails, eventually, via_sink
from .sink import Sink
from .tickets import agent_reply, ticketed

LOG = "mailrelay.imap_watcher"
INBOX, PROCESSED, REJECTED = "INBOX", "mailrelay/processed", "mailrelay/rejected"


def make_server(kind: str, root: Path, **options: Any) -> ImapServer:
    if kind == "dovecot":
        require_program("dovecot", "dovecot-imapd")
        return DovecotServer(root, **options)
    return PymapServer(root)


@pytest.fixture(params=["pymap", "dovecot"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ImapServer]:
    with running(make_server(request.param, tmp_path)) as started:
        yield started


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[ImapServer]:
    with running(make_server("dovecot", tmp_path)) as started:
        yield started


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "watcher.db")
    yield opened
    opened.close()


@dataclass(frozen=True)
class Result:
    processed: bool
    dedupe_key: str


class Recorder:
    """A `process` callback: records every call; `X-Test: reject` is rejected, `fail` raises."""

    def __init__(self) -> None:
        self.calls: list[str] = []  # Message-IDs, in call order

    async def __call__(self, raw: bytes) -> Result:
        msg = email.message_from_bytes(raw)
        mid = str(msg["Message-ID"])
        self.calls.append(mid)
        if msg["X-Test"] == "fail":
            raise RuntimeError("processing failed (on purpose)")
        return Result(processed=msg["X-Test"] != "reject", dedupe_key=mid)

    def count(self, mid: str) -> int:
        return self.calls.count(mid)


def message(test: str = "ok", subject: str = "Re: your ticket") -> tuple[str, bytes]:
    msg = EmailMessage()
    msg["From"] = "Support <support@acme.example>"
    msg["To"] = "reply+abc@relay.test"
    msg["Subject"] = subject
    msg["Message-ID"] = mid = make_msgid(domain="acme.example")
    msg["X-Test"] = test
    msg.set_content("Thanks for the review.\n")
    return mid, msg.as_bytes()


def mids(raws: list[bytes]) -> list[str]:
    return [str(email.message_from_bytes(raw)["Message-ID"]) for raw in raws]


@contextlib.asynccontextmanager
async def watching(server: ImapServer, store: Store, process: Any, *,
                   config: ImapConfig | None = None, wait: bool = True,
                   **options: Any) -> AsyncIterator[ImapWatcher]:
    """A running watcher with fast timeouts and backoff; stopped (cancelled) on exit."""
    settings: dict[str, Any] = {"connect_timeout": 5, "command_timeout": 5,
                                "backoff_initial": 0.05, "backoff_max": 0.2}
    settings.update(options)
    watcher = ImapWatcher(config or server.imap_config(), store, process, FrozenClock(),
                          **settings)
    task = asyncio.create_task(watcher.run(), name="imap-watcher")
    try:
        if wait:
            await eventually(lambda: watcher.connected or task.done(), what="connection")
            assert not task.done(), task
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def filed(server: ImapServer, *, inbox: int = 0, processed: int = 0,
                rejected: int = 0) -> bool:
    counts = await server.counts()
    return (counts.get(INBOX, 0), counts.get(PROCESSED, 0), counts.get(REJECTED, 0)) == (
        inbox, processed, rejected)


def records(caplog: pytest.LogCaptureFixture, level: int, text: str = "") -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == LOG and r.levelno == level and text in r.getMessage()]


async def test_a_reply_is_processed_once_and_filed_in_folders_created_when_missing(
    server: ImapServer, store: Store
) -> None:
    assert not await server.folder_exists(PROCESSED)
    assert not await server.folder_exists(REJECTED)
    recorder = Recorder()
    async with watching(server, store, recorder) as watcher:
        assert await server.folder_exists(PROCESSED)
        assert await server.folder_exists(REJECTED)
        good, raw = message()
        await server.append(raw)
        appended = time.monotonic()
        await eventually(lambda: bool(recorder.calls), what="the pickup")
        latency = time.monotonic() - appended
        print(f"\n{server.kind}: picked up {latency * 1000:.0f} ms after APPEND (IDLE)")
        assert latency < 5  # pymap looks at its maildir each second; Dovecot uses inotify
        await eventually(lambda: filed(server, processed=1), what="the reply filed")

        bad, raw = message("reject")
        await server.append(raw)
        await eventually(lambda: filed(server, processed=1, rejected=1), what="rejected filed")
        await asyncio.sleep(0.3)  # time for a duplicate to show up, if there were one
        assert recorder.calls == [good, bad]
        assert watcher.processed == 2
        assert watcher.last_ok is not None
    assert mids(await server.messages(PROCESSED)) == [good]
    assert mids(await server.messages(REJECTED)) == [bad]
    assert await filed(server, processed=1, rejected=1)  # nothing deleted
    rows = store.read(lambda q: q.conn.execute(
        "SELECT dedupe_key, folder, moved FROM imap_seen ORDER BY uid").fetchall())
    assert [tuple(r) for r in rows] == [(good, PROCESSED, 1), (bad, REJECTED, 1)]


async def test_a_message_marked_seen_before_we_look_is_still_processed(
    server: ImapServer, store: Store
) -> None:
    recorder = Recorder()
    mid, raw = message()
    await server.append(raw, flags="\\Seen")
    async with watching(server, store, recorder):
        await eventually(lambda: filed(server, processed=1), what="the seen message filed")
    assert recorder.calls == [mid]


async def test_a_message_that_fails_processing_stays_in_the_inbox_unseen(
    server: ImapServer, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    failing, raw = message("fail")
    uid = await server.append(raw)
    async with watching(server, store, recorder) as watcher:
        await eventually(lambda: recorder.count(failing) >= 1, what="the first attempt")
        for _ in range(2):  # every sync tries the failing message again
            _, raw = message()
            await server.append(raw)
        await eventually(lambda: filed(server, inbox=1, processed=2), what="the others filed")
        assert watcher.connected
    assert recorder.count(failing) >= 2
    assert mids(await server.messages(INBOX)) == [failing]
    assert "\\Seen" not in await server.flags(uid)  # BODY.PEEK[]
    assert len(records(caplog, logging.ERROR, "could not be processed")) == 1
    assert not records(caplog, logging.WARNING)


async def test_mail_arriving_during_every_pass_is_filed_without_waiting_for_the_idle_timeout(
    server: ImapServer, store: Store
) -> None:
    """Each message lands while the one before is being processed, so every pass sees an
    EXISTS: more passes than the needless-EXISTS bound, and the last one must not wait for
    the next IDLE re-issue (25 minutes here) to be filed."""
    recorder = Recorder()
    count = 9
    appended: list[int] = []

    class AppendWhileProcessing:
        async def __call__(self, raw: bytes) -> Result:
            result = await recorder(raw)
            if len(appended) < count:
                appended.append(await server.append(message()[1]))
                await asyncio.sleep(1.2)  # pymap notices its maildir changed once a second
            return result

    config = server.imap_config(idle_timeout=timedelta(minutes=25))
    async with watching(server, store, AppendWhileProcessing(), config=config):
        appended.append(await server.append(message()[1]))
        await eventually(lambda: filed(server, processed=count), limit=40,
                         what=f"all {count} filed")
    assert len(set(recorder.calls)) == count


async def test_a_message_committed_but_not_moved_before_a_crash_is_moved_not_reprocessed(
    server: ImapServer, store: Store
) -> None:
    mid, raw = message()
    uid = await server.append(raw)
    uidvalidity = await server.uidvalidity()
    now = FrozenClock().now()
    await store.write(lambda q: q.mark_imap_seen(INBOX, uidvalidity, uid, mid, REJECTED, now))
    recorder = Recorder()
    async with watching(server, store, recorder):
        await eventually(lambda: filed(server, rejected=1), what="the message moved")
    assert recorder.calls == []
    row = store.read(lambda q: q.imap_seen(INBOX, uidvalidity, uid))
    assert row is not None and row.moved == 1


async def test_the_watcher_reconnects_after_the_server_dies_during_idle_and_logs_the_outage_once(
    server: ImapServer, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    recorder = Recorder()
    async with watching(server, store, recorder, backoff_initial=0.2,
                        backoff_max=0.4) as watcher:
        first, raw = message()
        await server.append(raw)
        await eventually(lambda: filed(server, processed=1), what="the first reply filed")
        await asyncio.sleep(0.3)  # back in IDLE
        server.kill()
        await eventually(lambda: not watcher.connected, what="the outage noticed")
        await asyncio.sleep(0.8)  # several failed reconnects
        server.start()  # same port
        second, raw = message()
        await server.append(raw)  # most likely while the watcher is still backing off
        await eventually(lambda: filed(server, processed=2), limit=15, what="after restart")
        await eventually(lambda: watcher.connected, what="connected again")
        await asyncio.sleep(0.3)
    assert Counter(recorder.calls) == {first: 1, second: 1}
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert "unavailable" in warnings[0]
    restored = records(caplog, logging.INFO, "restored")
    assert len(restored) == 1, restored


async def test_a_server_restart_loses_nothing_and_duplicates_nothing(
    server: ImapServer, store: Store
) -> None:
    recorder = Recorder()
    sent = []
    async with watching(server, store, recorder) as watcher:
        for _ in range(3):
            mid, raw = message()
            sent.append(mid)
            await server.append(raw)
        await eventually(lambda: filed(server, processed=3), what="three filed")
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.restart)
        for _ in range(3):
            mid, raw = message()
            sent.append(mid)
            await server.append(raw)
        await eventually(lambda: filed(server, processed=6), limit=15, what="six filed")
        await eventually(lambda: watcher.connected, what="connected again")
    assert Counter(recorder.calls) == dict.fromkeys(sent, 1)
    assert sorted(mids(await server.messages(PROCESSED))) == sorted(sent)


async def test_a_uidvalidity_change_reprocesses_what_is_left_and_files_it(
    server: ImapServer, store: Store
) -> None:
    recorder = Recorder()
    async with watching(server, store, recorder):
        first, raw = message()
        await server.append(raw)  # UID 1 under the old UIDVALIDITY
        await eventually(lambda: filed(server, processed=1), what="the first filed")
    # Stopped between commit and move, so the store knows a UID that is still in INBOX:
    left, raw = message()
    uid = await server.append(raw)
    old = await server.uidvalidity()
    now = FrozenClock().now()
    await store.write(lambda q: q.mark_imap_seen(INBOX, old, uid, left, PROCESSED, now))
    await asyncio.to_thread(server.reset_uidvalidity)
    assert await server.uidvalidity() != old
    assert await server.uids() == [1]  # renumbered: UID 1 was `first` before
    async with watching(server, store, recorder):
        new, raw = message()
        await server.append(raw)
        await eventually(lambda: filed(server, processed=3), what="all filed")
    # The UIDs are new, so `left` is handed over again (the reply path dedupes by Message-ID).
    assert Counter(recorder.calls) == {first: 1, left: 1, new: 1}


async def test_a_wrong_password_is_an_outage_with_a_clear_reason_not_a_crash(
    server: ImapServer, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    config = server.imap_config(password="wrong")
    async with watching(server, store, Recorder(), config=config, wait=False) as watcher:
        await eventually(lambda: bool(records(caplog, logging.WARNING)), what="a warning")
        await asyncio.sleep(0.6)  # more attempts, no more warnings
        assert not watcher.connected
    [warning] = records(caplog, logging.WARNING)
    assert f"login as {server.username} refused" in warning
    assert watcher.last_error is not None and "refused" in watcher.last_error


async def test_a_message_deleted_by_someone_else_while_processed_is_no_outage(
    server: ImapServer, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()

    async def process_then_lose(raw: bytes) -> Result:
        result = await recorder(raw)
        await server.delete_all()  # a person cleaning up the mailbox at that moment
        return result

    async with watching(server, store, process_then_lose) as watcher:
        mid, raw = message()
        await server.append(raw)
        await eventually(lambda: bool(recorder.calls), what="the pickup")
        await eventually(lambda: filed(server), what="the message gone")
        await asyncio.sleep(0.3)
        assert watcher.connected
    assert recorder.calls == [mid]
    assert not records(caplog, logging.WARNING)


async def test_a_tls_client_on_a_plain_port_is_an_outage_not_a_hang(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with running(PymapServer(tmp_path)) as server:
        config = server.imap_config(tls=True)
        async with watching(server, store, Recorder(), config=config, wait=False,
                            connect_timeout=1):
            await eventually(lambda: bool(records(caplog, logging.WARNING)), what="a warning")
    [warning] = records(caplog, logging.WARNING)
    assert "the port does not speak TLS" in warning


async def test_a_plain_client_on_a_tls_port_is_an_outage_not_a_hang(
    tmp_path: Path, store: Store, certificate: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server("dovecot", tmp_path, security="implicit", cert=certificate)
    with running(server):
        config = server.imap_config(tls=False)  # it waits for a TLS hello, we for a greeting
        async with watching(server, store, Recorder(), config=config, wait=False,
                            connect_timeout=0.5):
            await eventually(lambda: bool(records(caplog, logging.WARNING)), what="a warning")
    [warning] = records(caplog, logging.WARNING)
    assert "no answer to connect and greeting within 0.5 s" in warning


async def test_a_silently_frozen_server_is_noticed_by_the_idle_read_timeout(
    server: ImapServer, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # SIGSTOP: the TCP connection stays up but nothing answers (a NAT dropping state, a hung
    # server). The DONE that ends each IDLE round then goes unanswered.
    caplog.set_level(logging.INFO, logger=LOG)
    config = server.imap_config(idle_timeout=timedelta(seconds=0.3))
    recorder = Recorder()
    async with watching(server, store, recorder, config=config, command_timeout=0.5,
                        connect_timeout=0.5) as watcher:
        await asyncio.sleep(0.7)  # a couple of IDLE rounds
        server.pause()
        try:
            await eventually(lambda: not watcher.connected, what="the freeze noticed")
        finally:
            server.resume()
        mid, raw = message()
        await server.append(raw)
        await eventually(lambda: filed(server, processed=1), what="filed after the freeze")
        # Under load the "restored" line can follow the filing by a moment.
        await eventually(lambda: bool(records(caplog, logging.INFO, "restored")),
                         what="the end of the outage logged")
    assert recorder.calls == [mid]
    [warning] = records(caplog, logging.WARNING)
    assert "no answer to" in warning
    assert len(records(caplog, logging.INFO, "restored")) == 1


@pytest.mark.parametrize("capabilities", ["IMAP4rev1 LITERAL+ SASL-IR UIDPLUS",
                                          "IMAP4rev1 LITERAL+ SASL-IR"],
                         ids=["uidplus", "neither-uidplus"])
async def test_without_idle_or_move_the_watcher_polls_and_files_with_copy_and_expunge(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture, capabilities: str
) -> None:
    with running(make_server("dovecot", tmp_path, capabilities=capabilities)) as server:
        recorder = Recorder()
        config = server.imap_config(poll_interval=timedelta(seconds=0.2))
        async with watching(server, store, recorder, config=config):
            good, raw = message()
            await server.append(raw)
            bad, raw = message("reject")
            await server.append(raw)
            await eventually(lambda: filed(server, processed=1, rejected=1), what="filed")
        assert Counter(recorder.calls) == {good: 1, bad: 1}
        assert mids(await server.messages(PROCESSED)) == [good]
    expunge_warnings = records(caplog, logging.WARNING, "neither MOVE nor UIDPLUS")
    assert len(expunge_warnings) == (0 if "UIDPLUS" in capabilities else 1)


@pytest.mark.parametrize("security", ["implicit", "starttls"])
async def test_tls_and_starttls_connections_verify_the_certificate(
    tmp_path: Path, store: Store, certificate: tuple[Path, Path], security: str
) -> None:
    context = ssl.create_default_context(cafile=str(certificate[0]))
    server = make_server("dovecot", tmp_path, security=security, cert=certificate)
    with running(server):
        recorder = Recorder()
        async with watching(server, store, recorder, ssl_context=context):
            mid, raw = message()
            await server.append(raw)
            await eventually(lambda: filed(server, processed=1), what="filed over TLS")
        assert recorder.calls == [mid]
        summary = await check_connection(server.imap_config(), ssl_context=context)
        assert "IDLE" in summary and "0 message(s)" in summary


async def test_a_self_signed_certificate_is_refused_by_default(
    tmp_path: Path, store: Store, certificate: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server("dovecot", tmp_path, security="implicit", cert=certificate)
    with running(server):
        async with watching(server, store, Recorder(), wait=False):
            await eventually(lambda: bool(records(caplog, logging.WARNING)), what="a warning")
    [warning] = records(caplog, logging.WARNING)
    assert "TLS certificate not trusted: self-signed certificate" in warning


@pytest.mark.parametrize(("command", "expected"), [
    (None, None),
    ("echo nope >&2; exit 3", "oauth2_token_command failed with exit status 3: nope"),
    ("printf wrong-token", "login as relay refused"),
], ids=["valid-token", "failing-command", "rejected-token"])
async def test_xoauth2_takes_its_token_from_the_command(
    dovecot: ImapServer, store: Store, caplog: pytest.LogCaptureFixture,
    command: str | None, expected: str | None
) -> None:
    # Dovecot verifies an XOAUTH2 bearer token against the passdb like a password.
    config = dovecot.imap_config(password=None,
                                 oauth2_token_command=command or f"printf {dovecot.password}")
    recorder = Recorder()
    async with watching(dovecot, store, recorder, config=config, wait=expected is None):
        if expected is None:
            mid, raw = message()
            await dovecot.append(raw)
            await eventually(lambda: filed(dovecot, processed=1), what="filed")
            assert recorder.calls == [mid]
        else:
            # A rejected token gets a JSON challenge; answering it must not hang the login.
            await eventually(lambda: bool(records(caplog, logging.WARNING)), what="a warning")
            [warning] = records(caplog, logging.WARNING)
            assert expected in warning


async def test_check_connection_reports_a_login_failure_as_an_error(server: ImapServer) -> None:
    from mailrelay.edges.imap_client import ImapError

    with pytest.raises(ImapError, match="refused"):
        await check_connection(server.imap_config(password="wrong"), seconds=5)


# End to end: the real reply path (the Daemon's Replier) behind the watcher.

async def test_an_agent_reply_by_imap_is_published_once_even_after_a_uidvalidity_change(
    server: ImapServer, make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    config = make_config(more=server.toml())
    async with Daemon(via_sink(config, sink), clock) as daemon:
        # Once app.py runs the watcher for [imap] (as `daemon.imap`), that one is used;
        # until then the test composes it with the daemon's own Replier and store.
        wired = isinstance(getattr(daemon, "imap", None), ImapWatcher)

        async def process(raw: bytes) -> Any:
            return await daemon.replier.process(raw, source="imap")

        def watcher() -> contextlib.AbstractAsyncContextManager[Any]:
            if wired:
                return contextlib.nullcontext()
            return watching(server, daemon.store, process)

        t = await ticketed(daemon, clock, sink)
        raw = agent_reply(t, "Sorry about the delay, Ann!\n\nWe have refunded the shipping.")
        async with watcher():
            await server.append(raw)
            await eventually(lambda: filed(server, processed=1), what="the reply filed")
        await daemon.tick()
        review = daemon.store.read(lambda q: q.get_review(t.review_id))
        assert review is not None and "refunded the shipping" in review.response
        assert len(customer_mails(sink)) == 1

        # The same reply is back in INBOX (a crash before the move), and the server then
        # forgets its UIDs: the watcher hands it over again and the Replier dedupes it.
        await server.append(raw)
        await asyncio.to_thread(server.reset_uidvalidity)
        async with watcher():
            await eventually(lambda: filed(server, processed=2), limit=15, what="copy filed")
        await daemon.tick()
        assert len(customer_mails(sink)) == 1
        outcomes = daemon.store.read(lambda q: q.conn.execute(
            "SELECT outcome FROM replies").fetchall())
        assert [tuple(r) for r in outcomes] == [("published",)]


def quoting(address_lines: str, cte: str) -> bytes:
    """An agent's answer above a quoted ticket, the customer's address in it as given."""
    body = f"Sorted, thanks.\r\n\r\n> Reviewer: Bob Brook\r\n> {address_lines}\r\n"
    if cte == "base64":
        body = base64.encodebytes(body.replace("=\r\n", "").encode()).decode()
    return ("From: Support <support@acme.example>\r\nTo: reply+abc@relay.test\r\n"
            f"Subject: Re: your ticket\r\nMessage-ID: {make_msgid(domain='acme.example')}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n{body}").encode()


async def filed_forget(server: ImapServer) -> None:
    config = server.imap_config()
    await check_connection(config)  # creates the processed and rejected folders
    bob = "bob.brook@example.com"
    await server.append(quoting("Email: bob.br=\r\nook=40Example.com", "quoted-printable"),
                        PROCESSED)
    await server.append(quoting("Email: ann.able@example.com", "quoted-printable"), PROCESSED)
    await server.append(quoting("Email: Bob.Brook@example.com", "base64"), REJECTED)
    await server.append(quoting("Email: bob.brook@example.com", "7bit"), INBOX)
    deleted = await delete_filed(config, lambda raw: names(raw, bob))
    assert deleted == 2
    assert [names(raw, "ann.able@example.com") for raw in await server.messages(PROCESSED)] == [
        True]
    assert await server.messages(REJECTED) == []
    # The watched folder is not ours to clean: what is there has not been processed yet.
    assert len(await server.messages(INBOX)) == 1


async def test_forget_deletes_filed_replies_naming_the_person_in_any_encoding_and_no_other(
    server: ImapServer,
) -> None:
    await filed_forget(server)


async def test_forget_deletes_filed_replies_on_a_server_without_uidplus(tmp_path: Path) -> None:
    with running(make_server("dovecot", tmp_path, capabilities="IMAP4rev1 LITERAL+ SASL-IR")
                 ) as server:
        await filed_forget(server)
