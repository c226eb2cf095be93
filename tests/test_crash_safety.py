"""`mailrelay serve` as a real process: SIGKILL never loses a 250, SIGTERM stops cleanly, exit 3.

These tests treat the daemon as a black box (subprocess, real sockets, the SQLite file read with
sqlite3 after the fact), because crash safety is only meaningful across a real process death.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sqlite3
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib
import pytest

from .conftest import BASE_CONFIG
from .mailtools import free_port, trigger
from .serve_process import MAILRELAY, Serve, count, reaping

BCC = "reviews+acme@relay.test"
SENDER = "platform@shop.example"

MESSAGES = 2000
CLIENTS = 20
KILLS = 3
FIRST_REFERENCE = 10000
#: Every loop below is bounded by this (the whole test should take well under it).
DEADLINE_S = 80.0


def write_config(directory: Path, listen: str = "127.0.0.1:0", shop_extra: str = "") -> Path:
    """A relay.toml in the shape of conftest's BASE_CONFIG, with its paths under `directory`."""
    text = BASE_CONFIG.format(smtp_extra="", shop_extra=textwrap.dedent(shop_extra))
    text = text.replace('listen = "127.0.0.1:0"\nhostname', f'listen = "{listen}"\nhostname', 1)
    path = directory / "relay.toml"
    path.write_text(text)
    return path


@dataclass
class Ledger:
    """What the clients saw: which messages got their 250, how many attempts it took."""

    accepted: dict[str, float] = field(default_factory=dict)  # Message-ID → time of the 250
    retries: int = 0
    known: int = 0  # 250s for a retry the store already had ("queued as known")
    permanent: list[str] = field(default_factory=list)


def build_messages() -> list[tuple[str, bytes]]:
    """2,000 distinct triggers: unique Message-ID, order reference and customer each."""
    out = []
    for i in range(MESSAGES):
        n = FIRST_REFERENCE + i
        mid = f"<crash-{n}@platform.example>"
        raw = trigger(
            to=f"Customer {n} <customer{n}@example.com>",
            subject=f"Order #{n} has shipped",
            body=f"Your order #{n} is on the way.",
            message_id=mid,
        )
        out.append((mid, raw))
    return out


async def client(
    port: int, work: asyncio.Queue[tuple[str, bytes]], ledger: Ledger, deadline: float
) -> None:
    """One SMTP client: one connection, reopened after a failure; a message without 250 is
    retried with the same bytes until the daemon (restarted) answers 250."""
    smtp: aiosmtplib.SMTP | None = None
    try:
        while not work.empty():
            mid, raw = work.get_nowait()
            while True:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{mid} still not accepted at the deadline")
                try:
                    if smtp is None:
                        smtp = aiosmtplib.SMTP(
                            hostname="127.0.0.1", port=port, timeout=10, start_tls=False
                        )
                        await smtp.connect()
                    _errors, reply = await smtp.sendmail(SENDER, [BCC], raw)
                except aiosmtplib.SMTPResponseException as exc:
                    if exc.code >= 500:
                        ledger.permanent.append(f"{mid}: {exc.code} {exc.message}")
                        break
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    pass  # connection refused / reset / 421 on the way out: retry below
                else:
                    ledger.accepted[mid] = time.monotonic()
                    ledger.known += "known" in reply
                    break
                ledger.retries += 1
                if smtp is not None:
                    smtp.close()
                    smtp = None
                await asyncio.sleep(0.05)
    finally:
        if smtp is not None:
            smtp.close()


def stored_message_ids(db: Path) -> list[str]:
    """Every Message-ID in `messages`, duplicates included (read straight from the file)."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        return [r[0] for r in conn.execute("SELECT message_id FROM messages")]
    finally:
        conn.close()


@pytest.mark.slow
async def test_every_message_answered_250_survives_three_sigkills_exactly_once(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("MAILRELAY_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    print(f"crash test seed={seed} (rerun with MAILRELAY_CRASH_SEED={seed})")
    started = time.monotonic()
    deadline = started + DEADLINE_S
    port = free_port()
    config = write_config(tmp_path, listen=f"127.0.0.1:{port}")
    db = tmp_path / "var" / "test.db"

    messages = build_messages()
    work: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in messages:
        work.put_nowait(item)
    ledger = Ledger()
    # Kill at random points of the burst (by progress, so each kill lands mid-traffic), plus a
    # random few milliseconds so the kill falls anywhere inside a commit or a session.
    kill_points = sorted(rng.sample(range(100, MESSAGES - 100), KILLS))
    print(f"SIGKILL after {kill_points} accepted messages")

    with reaping([]) as daemons:
        daemons.append(Serve(config, tmp_path / "serve-0.log"))
        await daemons[-1].ready()
        clients = [
            asyncio.create_task(client(port, work, ledger, deadline)) for _ in range(CLIENTS)
        ]
        for round_no, point in enumerate(kill_points, start=1):
            while len(ledger.accepted) < point:
                assert time.monotonic() < deadline, f"stuck before kill {round_no}"
                assert not all(c.done() for c in clients), "clients ended before the kills"
                await asyncio.sleep(0.005)
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            daemons[-1].kill()
            # Every 250 a client holds now was answered by the dead process: it must be on disk.
            promised = set(ledger.accepted)
            on_disk = set(stored_message_ids(db))
            lost = promised - on_disk
            assert not lost, f"kill {round_no}: {len(lost)} message(s) answered 250 but not stored"
            print(f"kill {round_no}: {len(promised)} answered 250, {len(on_disk)} stored")
            await asyncio.sleep(rng.uniform(0.0, 0.3))  # clients meet a refused port meanwhile
            daemons.append(Serve(config, tmp_path / f"serve-{round_no}.log"))
            await daemons[-1].ready()
        await asyncio.wait_for(asyncio.gather(*clients), max(1.0, deadline - time.monotonic()))

        assert ledger.permanent == []
        assert set(ledger.accepted) == {mid for mid, _ in messages}
        # The restarted worker must finish whatever the kills left in state 'received'.
        pending_sql = "SELECT COUNT(*) FROM messages WHERE state = 'received'"
        while count(db, pending_sql):
            assert time.monotonic() < deadline, "intake worker did not catch up"
            await asyncio.sleep(0.1)
        status = await daemons[-1].terminate()
        assert status == 0, daemons[-1].output()

    ids = stored_message_ids(db)
    assert len(ids) == MESSAGES
    assert set(ids) == set(ledger.accepted)
    assert count(db, "SELECT COUNT(*) FROM shipments") == MESSAGES
    conn = sqlite3.connect(db)
    try:
        refs = [r[0] for r in conn.execute("SELECT reference FROM invitations")]
        failed = conn.execute(
            "SELECT COUNT(*) FROM messages WHERE result LIKE 'failed:%'"
        ).fetchone()[0]
    finally:
        conn.close()
    assert failed == 0
    # A retry of a message stored before its 250 got lost must not invite the customer twice.
    assert sorted(refs) == [str(FIRST_REFERENCE + i) for i in range(MESSAGES)]
    print(
        f"crash test: {MESSAGES} accepted, {len(ids)} stored, {len(refs)} invitations, "
        f"{ledger.retries} client retries ({ledger.known} answered 'known'), "
        f"{time.monotonic() - started:.1f}s"
    )


def notify_socket(directory: Path) -> tuple[socket.socket, str]:
    """A bound unix datagram socket standing in for systemd's NOTIFY_SOCKET."""
    path = str(directory / "notify.sock")
    if len(path) > 100:  # sun_path holds 108 bytes; the daemon inherits our working directory
        path = os.path.relpath(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(15)
    return sock, path


def await_state(sock: socket.socket, state: bytes, serve: Serve) -> None:
    """Read notifications until one carries `state` (a datagram may hold several lines)."""
    seen: list[bytes] = []
    while True:
        try:
            datagram = sock.recv(4096)
        except TimeoutError:
            raise AssertionError(f"no {state!r} (got {seen}):\n{serve.output()}") from None
        seen.append(datagram)
        if state in datagram.split(b"\n"):
            return


def test_sigterm_stops_serve_cleanly_with_exit_0_and_notifies_systemd(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    sock, address = notify_socket(tmp_path)
    env = os.environ.copy()
    env["NOTIFY_SOCKET"] = address
    env.pop("WATCHDOG_USEC", None)
    with sock, reaping([Serve(config, tmp_path / "serve.log", env)]) as (serve,):
        await_state(sock, b"READY=1", serve)
        serve.proc.send_signal(signal.SIGTERM)
        await_state(sock, b"STOPPING=1", serve)
        assert serve.proc.wait(timeout=15) == 0, serve.output()
    assert "mailrelay stopped" in serve.output()


def test_serve_with_broken_config_exits_3_and_names_every_problem(tmp_path: Path) -> None:
    config = write_config(tmp_path, shop_extra="invite_delay = 7\ncolour = \"blue\"\n")
    lines = config.read_text().split("\n")
    # The shop already has invite_delay = "7d"; TOML forbids a key twice, so drop that one.
    lines = [line for line in lines if line != 'invite_delay = "7d"']
    config.write_text("\n".join(lines))
    delay_line = lines.index("invite_delay = 7") + 1
    colour_line = lines.index('colour = "blue"') + 1
    result = subprocess.run(
        [str(MAILRELAY), "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 3, result.stderr
    problems = result.stderr.splitlines()
    assert any(f"relay.toml:{delay_line}:" in p and "invite_delay" in p for p in problems), (
        result.stderr
    )
    assert any(f"relay.toml:{colour_line}:" in p and "colour" in p for p in problems), (
        result.stderr
    )
    assert not (tmp_path / "var" / "test.db").exists()  # nothing started
