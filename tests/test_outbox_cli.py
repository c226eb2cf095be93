"""Operator commands on outgoing mail (send-now, outbox, retry), the real-time clock, retention."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from mailrelay.app import Daemon
from mailrelay.core.clock import FrozenClock, SystemClock

from .cli_runner import invoked
from .conftest import BASE_CONFIG, ConfigFactory, smtp_outbound
from .mailtools import send, settle, sink_outbound, trigger
from .sink import Sink


def write_sink_config(tmp_path: Path, sink: Sink, shop_extra: str = "",
                      store_extra: str = "") -> str:
    text = smtp_outbound(BASE_CONFIG.format(smtp_extra="", shop_extra=shop_extra), sink.port,
                         "starttls = false", "rate_per_minute = 6000")
    text = text.replace("[store]\n", "[store]\n" + store_extra, 1)
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return str(path)


async def test_send_now_delivers_one_scheduled_invitation_at_once(
    tmp_path: Path, sink: Sink
) -> None:
    cfg = write_sink_config(tmp_path, sink)
    code, _ = await asyncio.to_thread(invoked, "invite", "--config", cfg, "--shop", "acme",
                                      "--email", "ann@example.com", "--ref", "N-1")
    assert code == 0
    await asyncio.to_thread(invoked, "invite", "--config", cfg, "--shop", "acme", "--email",
                            "bob@example.com", "--ref", "N-2")
    code, out = await asyncio.to_thread(invoked, "invitations", "send-now", "1", "--config", cfg)
    assert code == 0, out
    assert "sent to ann@example.com" in out
    await sink.wait_for(1)
    assert len(sink.messages) == 1  # only the one asked for
    code, out = await asyncio.to_thread(invoked, "invitations", "--config", cfg, "--format", "json")
    statuses = {r["reference"]: r["status"] for r in json.loads(out)}
    assert statuses == {"N-1": "sent", "N-2": "scheduled"}
    code, out = await asyncio.to_thread(invoked, "invitations", "send-now", "1", "--config", cfg)
    assert code == 1 and "invitation 1 was already sent on 20" in out, out
    code, out = await asyncio.to_thread(invoked, "invitations", "send-now", "9", "--config", cfg)
    assert code == 1 and "invitation 9 does not exist" in out, out
    await asyncio.to_thread(invoked, "invitations", "cancel", "--ref", "N-2", "--config", cfg)
    code, out = await asyncio.to_thread(invoked, "invitations", "send-now", "2", "--config", cfg)
    assert code == 1 and "invitation 2 is cancelled (cancelled by operator)" in out, out


async def test_send_now_names_the_configured_relay_in_the_row_it_sends(
    tmp_path: Path, sink: Sink
) -> None:
    """`[store] relay_id`, not the host name: two relays on one host each set one."""
    cfg = write_sink_config(tmp_path, sink, store_extra='relay_id = "relay2"\n')
    await asyncio.to_thread(invoked, "invite", "--config", cfg, "--shop", "acme", "--email",
                            "ann@example.com")
    code, out = await asyncio.to_thread(invoked, "invitations", "send-now", "1", "--config", cfg)
    assert code == 0, out
    code, out = await asyncio.to_thread(invoked, "outbox", "--config", cfg, "--format", "json")
    [row] = json.loads(out)
    assert (row["status"], row["claimed_by"]) == ("sent", "relay2/send-now")


async def test_outbox_lists_failures_and_retry_sends_again(tmp_path: Path, sink: Sink) -> None:
    cfg = write_sink_config(tmp_path, sink)
    await asyncio.to_thread(invoked, "invite", "--config", cfg, "--shop", "acme", "--email",
                            "ann@example.com")
    sink.fail_next("550 5.7.1 policy refusal", at="RCPT")
    code, out = await asyncio.to_thread(invoked, "invitations", "send-now", "1", "--config", cfg)
    assert code == 1 and "550 5.7.1 policy refusal" in out
    code, out = await asyncio.to_thread(invoked, "outbox", "--failed", "--config", cfg,
                                        "--format", "json")
    [row] = json.loads(out)
    assert row["status"] == "failed"
    assert row["to"] == "ann@example.com"
    assert "550" in row["last_error"]
    code, out = await asyncio.to_thread(invoked, "outbox", "retry", str(row["id"]), "--config", cfg)
    assert code == 0, out
    code, out = await asyncio.to_thread(invoked, "invitations", "--config", cfg, "--format", "json")
    [invitation] = json.loads(out)
    assert (invitation["status"], invitation["reason"]) == ("scheduled", None)  # no stale 550
    code, out = await asyncio.to_thread(invoked, "outbox", "--config", cfg, "--format", "csv")
    assert out.splitlines()[0] == (
        "id,kind,to,subject,message_id,status,attempts,due_at,sent_at,last_error,shop,"
        "claimed_by")
    assert ",queued," in out
    code, out = await asyncio.to_thread(invoked, "outbox", "retry", "999", "--config", cfg)
    assert code == 1 and "outbox message 999 does not exist" in out, out
    await asyncio.to_thread(invoked, "invitations", "send-now", "1", "--config", cfg)
    code, out = await asyncio.to_thread(invoked, "outbox", "retry", str(row["id"]), "--config", cfg)
    assert code == 1 and f"outbox message {row['id']} was already sent on 20" in out, out


async def test_the_real_clock_wakes_delivery_when_an_invitation_falls_due(
    make_config: ConfigFactory, sink: Sink
) -> None:
    config = make_config()
    outbound = sink_outbound(config, sink)
    shops = tuple(replace(s, invite_delay=timedelta(seconds=1)) for s in config.shops)
    async with Daemon(replace(config, outbound=outbound, shops=shops), SystemClock()) as daemon:
        await send(daemon, trigger())
        await sink.wait_for(1, timeout=10)
        for _ in range(100):  # the result commits right after the sink's 250
            [row] = daemon.store.read(lambda q: q.list_invitations())
            if row.status == "sent":
                break
            await asyncio.sleep(0.02)
        assert row.status == "sent"


@pytest.mark.sqlite_only  # reads the database file and its WAL
async def test_retention_purge_erases_personal_data_and_keeps_the_counts(
    make_config: ConfigFactory, clock: FrozenClock
) -> None:
    config = make_config(shop_extra='retention = "30d"')
    async with Daemon(config, clock) as daemon:
        await send(daemon, trigger(to="Private Person <private@example.com>"))
        await settle(daemon)
        clock.advance(timedelta(days=7))
        await daemon.tick()
        clock.advance(timedelta(days=40))
        assert await daemon.purge() > 0
        shipments = daemon.store.read(lambda q: q.list_shipments())
        invitations = daemon.store.read(lambda q: q.list_invitations())
        assert len(shipments) == 1 and len(invitations) == 1
        assert invitations[0].status == "sent"
    db = config.store.path.read_bytes()
    wal = config.store.path.with_name(config.store.path.name + "-wal")
    blob = db + (wal.read_bytes() if wal.exists() else b"")
    # Freed pages may still hold old bytes; live rows must not.
    import sqlite3

    conn = sqlite3.connect(config.store.path)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert "private@example.com" not in dump
    assert "Private Person" not in dump
    assert blob  # the store still exists
