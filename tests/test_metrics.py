"""/metrics in Prometheus text format and /healthz per part."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import aiohttp
import aiosmtplib
import pytest

from mailrelay import store
from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock

from .mailtools import healthz, scrape, send, settle, sink_outbound, trigger
from .sink import Sink


async def test_metrics_parse_and_the_counters_move_with_the_traffic(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    outbound = sink_outbound(config, sink)
    async with Daemon(replace(config, outbound=outbound), clock) as daemon:
        before = await scrape(daemon)
        assert before[("mailrelay_outbox_depth", ())] == 0
        await send(daemon, trigger())
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await send(daemon, trigger(), "nobody@relay.test")
        await settle(daemon)
        after = await scrape(daemon)
        accepted = ("mailrelay_inbound_messages_total",
                    (("outcome", "accepted"), ("reason", "shipment")))
        rejected = ("mailrelay_inbound_messages_total",
                    (("outcome", "rejected"), ("reason", "unknown_recipient")))
        assert after[accepted] == 1 and after[rejected] == 1
        assert after[("mailrelay_shipments_total", (("status", "scheduled"),))] == 1
        clock.advance(timedelta(days=7))
        await daemon.tick()
        sent = await scrape(daemon)
        assert sent[("mailrelay_outbound_messages_total", (("result", "sent"),))] == 1
        assert sent[("mailrelay_outbox_messages", (("status", "sent"),))] == 1
        assert sent[("mailrelay_reviews_total", (("stars", "5"),))] == 0


async def test_healthz_reports_each_part(daemon: Daemon) -> None:
    status, body = await healthz(daemon)
    assert status == 200
    database = body.pop("database")
    assert database.pop("latency_ms") >= 0
    assert database == {"backend": "sqlite" if daemon.config.store.url is None else "postgresql",
                        "reachable": True, "schema_version": len(store.MIGRATIONS)}
    assert body == {
        "status": "ok", "store": "ok", "outbound": "ok", "imap": "not configured",
        "webhooks": "not configured",
        "workers": {"alerts": "ok", "digest": "ok", "dispatch": "ok", "intake": "ok",
                    "retention": "ok", "webhooks": "ok"},
        "counts": {"inbound_pending": 0, "outbox_queued": 0, "outbox_sending": 0, "due_now": 0,
                   "webhooks_due_now": 0},
    }


async def test_healthz_turns_503_while_outbound_delivery_fails(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    outbound = sink_outbound(config, sink)
    async with Daemon(replace(config, outbound=outbound), clock) as daemon:
        await send(daemon, trigger())
        await settle(daemon)
        await sink.stop()
        clock.advance(timedelta(days=7))
        await daemon.tick()
        status, body = await healthz(daemon)
        assert status == 503
        assert body["outbound"] == "failing"
        await sink.start()
        clock.advance(timedelta(minutes=1))
        await daemon.tick()
        assert (await healthz(daemon))[0] == 200


async def test_healthz_shows_states_and_counts_but_no_address_path_or_server_reply(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    outbound = sink_outbound(config, sink)
    async with Daemon(replace(config, outbound=outbound), clock) as daemon:
        await send(daemon, trigger(to="Jane Roe <jane.roe@example.com>"))
        await settle(daemon)
        sink.fail_next("452 4.2.2 <jane.roe@example.com>: mailbox over quota at /var/mail/jane",
                       at="RCPT")
        clock.advance(timedelta(days=7))
        await daemon.tick()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{daemon.http_port}/healthz") as resp:
                status, text = resp.status, await resp.text()
    assert status == 503
    assert '"outbound": "failing"' in text
    assert '"outbox_queued": 1' in text
    report = json.loads(text)
    report["database"].pop("latency_ms")  # a measured number, which may contain any digits
    shown = json.dumps(report)
    for secret in ("jane", "@", "quota", "452", "/var", str(config.store.path.parent)):
        assert secret not in shown


async def test_metrics_count_refused_sessions_and_report_each_worker(
    make_config: Callable[..., Config], clock: FrozenClock
) -> None:
    async with Daemon(make_config(smtp_extra="max_sessions = 1"), clock) as daemon:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port) as first:
            with pytest.raises(aiosmtplib.SMTPConnectResponseError):
                await send(daemon, trigger())
            samples = await scrape(daemon)
            await first.quit()
    assert samples[("mailrelay_smtp_sessions_refused_total", (("reason", "max_sessions"),))] == 1
    assert samples[("mailrelay_smtp_sessions", ())] == 1
    for worker in ("intake", "dispatch", "retention"):
        assert samples[("mailrelay_worker_healthy", (("worker", worker),))] == 1
        assert samples[("mailrelay_worker_failures_total", (("worker", worker),))] == 0


async def test_healthz_names_a_worker_stuck_on_a_hanging_relay_until_it_moves_again(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    outbound = sink_outbound(config, sink)
    shops = tuple(replace(s, invite_delay=timedelta(0)) for s in config.shops)
    async with Daemon(replace(config, outbound=outbound, shops=shops), clock) as daemon:
        release = sink.hold_next()
        await send(daemon, trigger())
        await settle(daemon)
        await asyncio.wait_for(sink.held.wait(), 10)  # the invitation hangs mid-DATA
        url = f"http://127.0.0.1:{daemon.http_port}/healthz"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 200  # sending, but not for long yet
            clock.advance(timedelta(minutes=11))
            async with http.get(url) as resp:
                assert resp.status == 503
                body = await resp.json()
            assert body["workers"]["dispatch"] == "stuck"
            assert body["counts"]["outbox_sending"] == 1
            release.set()
            await sink.wait_for(1)
            for _ in range(100):
                async with http.get(url) as resp:
                    if resp.status == 200:
                        break
                await asyncio.sleep(0.05)
            assert resp.status == 200
