"""A real full disk (a small tmpfs holding the store): SMTP defers, every worker backs off and
resumes once space is freed, /healthz and the systemd watchdog say so meanwhile (issue 10 §6)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import aiosmtplib
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock

from .conftest import missing
from .mailtools import eventually, healthz, trigger, via_sink
from .sink import Sink
from .tickets import agent_reply, ticketed

#: The full disk is the one under the SQLite store; a PostgreSQL store's disk is the database
#: server's (its outage: tests/test_store_outage.py).
pytestmark = pytest.mark.sqlite_only

BCC = "reviews+acme@relay.test"
PLATFORM = "platform@shop.example"


@contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` for the test (root only; CI runs as root)."""
    path.mkdir()
    mount = shutil.which("mount")
    result = (subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                              str(path)], capture_output=True, check=False)
              if mount else None)
    if result is None or result.returncode != 0:
        why = result.stderr.decode(errors="replace").strip() if result else "no mount program"
        missing(f"cannot mount a tmpfs for the disk-full test: {why}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def stored_on(disk: Path, config: Config) -> Config:
    """`config` with its store on `disk`."""
    return replace(config, store=replace(config.store, path=disk / "relay.db"))


async def started(config: Config, clock: FrozenClock) -> Daemon:
    """A running daemon that retries a failing worker within a fraction of a second."""
    daemon = Daemon(config, clock)
    daemon.worker_backoff = (0.05, 0.4)
    await daemon.start()
    return daemon


class Filler:
    """A file that takes up whatever space is left on its file system, and gives it back."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        self.size = 0

    def fill(self) -> None:
        block = b"\0" * 65536
        while True:
            try:
                written = os.write(self.fd, block if len(block) > 4096 else block[:4096])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 512:
                    return
                block = block[:512]  # the last few pages
                continue
            self.size += written

    def free(self, nbytes: int) -> None:
        self.size = max(self.size - nbytes, 0)
        os.ftruncate(self.fd, self.size)

    def close(self) -> None:
        os.ftruncate(self.fd, 0)
        os.close(self.fd)


def order(name: str, number: int) -> bytes:
    """A trigger for its own order, so none is a duplicate of another."""
    return trigger(to=f"{name.title()} <{name}@example.com>",
                   subject=f"A shipment from order #{number} is on the way",
                   message_id=f"<{name}@platform.example>")


async def send(port: int, raw: bytes) -> int:
    """One trigger over SMTP; the reply code of DATA (250) or of the refusal."""
    try:
        await aiosmtplib.send(raw, sender=PLATFORM, recipients=[BCC], hostname="127.0.0.1",
                              port=port, timeout=10)
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code
    return 250


def pings(notify: socket.socket) -> int:
    """WATCHDOG=1 datagrams received since the last call."""
    count = 0
    while True:
        try:
            data = notify.recv(256)
        except BlockingIOError:
            return count
        count += data == b"WATCHDOG=1"


@pytest.mark.slow
async def test_a_full_disk_defers_mail_and_every_worker_resumes_once_space_is_freed(
    tmp_path: Path, config: Config, clock: FrozenClock, sink: Sink,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # a ping every 0.5 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    with small_disk(tmp_path / "disk", "4m") as disk:
        config = via_sink(config, sink, invite_delay=timedelta(0))
        config = stored_on(disk, config)
        daemon = await started(config, clock)
        filler = Filler(disk / "filler")
        try:
            await run_disk_full(daemon, sink, filler, notify)
        finally:
            filler.close()
            await daemon.stop()
            notify.close()
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "mailrelay.supervisor" and r.levelno >= logging.WARNING]
    # One WARNING per failure streak, not one per retry (the dispatcher once logged 128 in 2 s).
    assert sorted(w.split()[0] for w in warnings) == ["dispatch", "intake"]
    recovered = [r.getMessage() for r in caplog.records
                 if r.name == "mailrelay.supervisor" and r.levelno == logging.INFO]
    assert sorted(m.split()[0] for m in recovered) == ["dispatch", "intake"]


async def run_disk_full(daemon: Daemon, sink: Sink, filler: Filler,
                        notify: socket.socket) -> None:
    port = daemon.smtp_port
    accepted: list[str] = []

    async def accept(name: str) -> None:
        assert await send(port, order(name, 1000 + len(accepted))) == 250
        accepted.append(f"<{name}@platform.example>")

    # Before: one invitation goes out; the next one is being sent when the disk fills.
    await accept("anna")
    await sink.wait_for(1)
    release = sink.hold_next()
    await accept("bruno")
    await asyncio.wait_for(sink.held.wait(), 10)
    filler.fill()
    release.set()  # the relay's result for bruno's invitation cannot be written now

    async def dispatch_failing() -> bool:
        status, body = await healthz(daemon)
        return status == 503 and body["workers"]["dispatch"] == "failing"

    await eventually(dispatch_failing, 20, "dispatch never reported failing")
    _, body = await healthz(daemon)
    assert "full" not in str(body) and "/" not in str(body)  # states only: no error, no path
    sending = daemon.store.read(lambda q: q.counts("outbox", "status")).get("sending", 0)
    assert sending == 1

    # While the disk is full, SMTP defers: the platform keeps the message and retries.
    codes = [await send(port, order(f"deferred{n}", 2000 + n)) for n in range(3)]
    assert codes == [451, 451, 451]

    # Intake holding accepted mail when the disk fills: free a little, take one message,
    # fill again before intake's turn (it yields to a session that just committed).
    for n in range(10):
        filler.free(256 * 1024)
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10) as client:
            errors, _ = await client.sendmail(PLATFORM, [BCC], order(f"carla{n}", 3000 + n))
            filler.fill()
            assert errors == {}
            accepted.append(f"<carla{n}@platform.example>")
        if daemon.store.read(lambda q: q.count_pending_messages()):
            break
    assert daemon.store.read(lambda q: q.count_pending_messages()) >= 1

    async def intake_failing() -> bool:
        status, body = await healthz(daemon)
        return status == 503 and body["workers"]["intake"] == "failing"

    await eventually(intake_failing, 20, "intake never reported failing")
    pings(notify)
    await asyncio.sleep(1.2)
    assert pings(notify) == 0, "the watchdog was pinged while a worker was failing"

    # Space is back: every worker resumes by itself, nothing accepted is lost or sent twice.
    filler.free(filler.size)

    async def healthy() -> bool:
        status, body = await healthz(daemon)
        return status == 200 and body["counts"]["inbound_pending"] == 0

    await eventually(healthy, 20, "the relay did not recover")
    await accept("after")
    await sink.wait_for(len(accepted), timeout=20)

    async def drained() -> bool:
        status, body = await healthz(daemon)
        counts = body["counts"]
        return (status == 200 and counts["inbound_pending"] == 0
                and counts["outbox_queued"] == 0 and counts["outbox_sending"] == 0)

    await eventually(drained, 20, "the outbox did not drain")
    shipments = daemon.store.read(lambda q: q.list_shipments())
    assert sorted(r.message_id for r in shipments) == sorted(accepted)
    assert all(r.status == "scheduled" for r in shipments)
    ids = sink.message_ids()
    assert len(ids) == len(set(ids)) == len(accepted)  # bruno's invitation went out once
    pings(notify)
    await asyncio.sleep(1.2)
    assert pings(notify) >= 1, "the watchdog ping did not resume"


@pytest.mark.slow
async def test_the_relay_starts_on_a_full_disk_and_sends_interrupted_mail_once_space_is_back(
    tmp_path: Path, config: Config, clock: FrozenClock, sink: Sink,
) -> None:
    with small_disk(tmp_path / "disk", "4m") as disk:
        config = via_sink(config, sink, invite_delay=timedelta(0))
        config = stored_on(disk, config)
        # The watchdog kills a relay while an invitation is being sent. A killed process leaves
        # its -wal and -shm files behind; this open connection keeps them, as a kill would.
        async with Daemon(config, clock) as first:
            release = sink.hold_next()
            assert await send(first.smtp_port, order("dora", 4000)) == 250
            await asyncio.wait_for(sink.held.wait(), 10)
            survivor = sqlite3.connect(config.store.path)
            survivor.execute("SELECT COUNT(*) FROM outbox").fetchone()
        release.set()
        filler = Filler(disk / "filler")
        try:
            filler.fill()
            # a full disk is no startup error: systemd would not restart
            again = await started(config, clock)
            try:
                assert await send(again.smtp_port, order("emil", 4001)) == 451

                async def dispatch_failing() -> bool:
                    status, body = await healthz(again)
                    return status == 503 and body["workers"]["dispatch"] == "failing"

                await eventually(dispatch_failing, 20, "dispatch never reported failing")
                assert again.store.read(lambda q: q.counts("outbox", "status")) == {"sending": 1}
                filler.free(filler.size)
                await sink.wait_for(1, timeout=20)

                async def healthy() -> bool:
                    status, body = await healthz(again)
                    return status == 200 and body["counts"]["outbox_sending"] == 0

                await eventually(healthy, 20, "the relay did not recover")
            finally:
                await again.stop()
        finally:
            filler.close()
            survivor.close()
    assert sink.message_ids() and len(sink.messages) == 1


@pytest.mark.slow
async def test_an_agent_reply_taken_in_just_before_the_disk_fills_is_published_afterwards(
    tmp_path: Path, config: Config, clock: FrozenClock, sink: Sink,
) -> None:
    with small_disk(tmp_path / "disk", "4m") as disk:
        config = via_sink(config, sink)
        config = stored_on(disk, config)
        daemon = await started(config, clock)
        filler = Filler(disk / "filler")
        try:
            ticket = await ticketed(daemon, clock, sink)
            raw = agent_reply(ticket, "Sorry for the wait, Ann. The refund is on its way.")
            filler.fill()
            taken = False
            for _ in range(10):  # as above: one 250, then full again before intake's turn
                filler.free(256 * 1024)
                async with aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port,
                                           timeout=10) as client:
                    errors, _ = await client.sendmail("support@acme.example",
                                                      [ticket.reply_to], raw)
                    filler.fill()
                    assert errors == {}
                if daemon.store.read(lambda q: q.count_pending_messages()):
                    taken = True
                    break
            assert taken

            async def intake_failing() -> bool:
                status, body = await healthz(daemon)
                return status == 503 and body["workers"]["intake"] == "failing"

            await eventually(intake_failing, 20, "intake never reported failing")
            filler.free(filler.size)

            async def published() -> bool:
                review = daemon.store.read(lambda q: q.get_review(ticket.review_id))
                return bool(review and review.response)

            await eventually(published, 20, "the reply was never published")
            review = daemon.store.read(lambda q: q.get_review(ticket.review_id))
            assert review is not None
            assert review.response == "Sorry for the wait, Ann. The refund is on its way."
        finally:
            filler.close()
            await daemon.stop()
