"""The operator's alerts: mailed once per event to the shop's own `alerts` addresses through the
outbox, and counted in /metrics per kind and shop (issue 12)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config, defaults
from mailrelay.core.clock import FrozenClock
from mailrelay.services.alerts import AlertKind, Outage

from .conftest import ConfigFactory, second_shop
from .imap_servers import ImapServer
from .mailtools import (
    eventually,
    free_port,
    mails_to,
    raw_mails_to,
    scrape,
    send,
    settle,
    trigger,
    via_sink,
)
from .sink import Sink
from .tickets import agent_reply, ticketed

OWNER = "owner@acme.example"
BOSS = "boss@bolt.example"
BOLT_BCC = "reviews+bolt@relay.test"


def two_shops(make_config: ConfigFactory) -> Config:
    """acme and bolt, each with its own alerts address."""
    return make_config(shop_extra=f'alerts = ["{OWNER}"]',
                       more=second_shop(alerts=[BOSS]))


def alerts_to(sink: Sink, address: str) -> list[EmailMessage]:
    return [m for m in mails_to(sink, address) if m["Auto-Submitted"] == "auto-generated"]


def alert_count(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float],
                kind: str, shop: str) -> float:
    return samples.get(("mailrelay_alerts_total", (("kind", kind), ("shop", shop))), 0)


async def delivered(daemon: Daemon, sink: Sink, address: str, count: int,
                    step: FrozenClock | None = None) -> None:
    """Tick until `count` alerts reached `address`; with `step`, moving that clock a minute a
    tick (past the retry of a send the dispatcher tried while the sink was still down)."""
    async def arrived() -> bool:
        if step is not None:
            step.advance(timedelta(minutes=1))
        await daemon.tick()
        return len(alerts_to(sink, address)) >= count
    await eventually(arrived, what=f"{count} alert(s) to {address}")


async def test_a_new_trigger_sender_alerts_its_shop_once_but_not_the_shops_first_sender(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(two_shops(make_config), sink), clock) as daemon:
        await send(daemon, trigger())  # acme's own shop system: its first sender
        await settle(daemon)
        await send(daemon, trigger(sender="Leak <leak@elsewhere.example>",
                                   subject="Your order #2001 has shipped"))
        await settle(daemon)
        await delivered(daemon, sink, OWNER, 1)
        await send(daemon, trigger(sender="leak@elsewhere.example"))  # known now
        await settle(daemon)
        await daemon.tick()
        [alert] = alerts_to(sink, OWNER)
        assert "leak@elsewhere.example" in str(alert["Subject"])
        body = alert.get_body(("plain",))
        assert body is not None
        assert "Your order #2001 has shipped" in body.get_content()
        assert alert["X-Mailrelay-Shop"] == "acme"
        assert "john.smith@example.com" not in raw_mails_to(sink, OWNER)[0].decode()
        assert alerts_to(sink, BOSS) == []
        samples = await scrape(daemon)
        assert alert_count(samples, "new_sender", "acme") == 1
        assert alert_count(samples, "new_sender", "bolt") == 0


async def test_the_other_shops_new_sender_goes_to_that_shop_only(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(two_shops(make_config), sink), clock) as daemon:
        await send(daemon, trigger(sender="shop@bolt.example"), BOLT_BCC)
        await send(daemon, trigger(sender="other@bolt.example"), BOLT_BCC)
        await settle(daemon)
        await delivered(daemon, sink, BOSS, 1)
        assert alerts_to(sink, OWNER) == []
        assert alerts_to(sink, BOSS)[0]["X-Mailrelay-Shop"] == "bolt"


async def test_a_review_reported_by_an_agent_alerts_with_its_id_and_no_customer_address(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(two_shops(make_config), sink), clock) as daemon:
        t = await ticketed(daemon, clock, sink)
        await send(daemon, agent_reply(t, "#report abusive language\n"), t.reply_to,
                   sender="support@acme.example")
        await settle(daemon)
        await delivered(daemon, sink, OWNER, 1)
        [alert] = alerts_to(sink, OWNER)
        assert f"Review {t.review_id} reported" in str(alert["Subject"])
        raw = raw_mails_to(sink, OWNER)[-1].decode()
        assert "ann@example.com" not in raw and "Ann Lee" not in raw
        assert alerts_to(sink, BOSS) == []
        assert alert_count(await scrape(daemon), "review_reported", "acme") == 1


async def test_outbound_failing_over_an_hour_alerts_every_shop_once_and_then_resolved(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    async with Daemon(via_sink(two_shops(make_config), sink), clock) as daemon:
        await send(daemon, trigger())
        await settle(daemon)
        await sink.stop()
        clock.advance(timedelta(days=7))
        await daemon.tick()  # the invitation fails: the outage begins
        assert daemon.delivery.outage_since is not None
        clock.advance(timedelta(minutes=59))
        await daemon.check_alerts()
        assert alert_count(await scrape(daemon), "outbound_failing", "acme") == 0
        clock.advance(timedelta(minutes=2))
        await daemon.check_alerts()
        await daemon.check_alerts()  # still failing: no second alert
        samples = await scrape(daemon)
        assert alert_count(samples, "outbound_failing", "acme") == 1
        assert alert_count(samples, "outbound_failing", "bolt") == 1
        await sink.start()
        clock.advance(timedelta(hours=2))

        async def recovered() -> bool:
            await daemon.tick()  # the queued mail goes out: sending works again
            return daemon.delivery.outage_since is None
        await eventually(recovered, what="outbound recovered")
        await daemon.check_alerts()
        await delivered(daemon, sink, OWNER, 2, step=clock)
        await delivered(daemon, sink, BOSS, 2, step=clock)
        subjects = sorted(str(m["Subject"]) for m in alerts_to(sink, OWNER))  # either order
        assert subjects == ["[ACME Shoes] Outgoing mail failing for over an hour",
                            "[ACME Shoes] Resolved: outgoing mail works again"]
        assert {m["X-Mailrelay-Shop"] for m in alerts_to(sink, BOSS)} == {"bolt"}
        assert alert_count(await scrape(daemon), "outbound_resolved", "acme") == 1


async def test_imap_unreachable_over_15_minutes_alerts_once(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink, pymap: ImapServer
) -> None:
    config = via_sink(two_shops(make_config), sink)
    config = replace(config, imap=pymap.imap_config(port=free_port()))  # nobody listens
    async with Daemon(config, clock) as daemon:
        await daemon.check_alerts()
        clock.advance(timedelta(minutes=14))
        await daemon.check_alerts()
        assert alert_count(await scrape(daemon), "imap_unreachable", "acme") == 0
        clock.advance(timedelta(minutes=2))
        await daemon.check_alerts()
        await daemon.check_alerts()
        await delivered(daemon, sink, OWNER, 1)
        await daemon.tick()
        assert len(alerts_to(sink, OWNER)) == 1
        assert "IMAP" in str(alerts_to(sink, OWNER)[0]["Subject"])
        assert alert_count(await scrape(daemon), "imap_unreachable", "bolt") == 1


def test_alerts_default_to_none_and_the_demo_shop_has_none() -> None:
    [demo] = defaults().shops
    assert demo.alerts == ()


async def test_alerts_are_rendered_in_the_shops_locale(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink
) -> None:
    config = make_config(shop_extra=f'alerts = ["{OWNER}"]\nlocale = "de"')
    async with Daemon(via_sink(config, sink), clock) as daemon:
        await send(daemon, trigger())
        await send(daemon, trigger(sender="leak@elsewhere.example"))
        await settle(daemon)
        await delivered(daemon, sink, OWNER, 1)
        [alert] = alerts_to(sink, OWNER)
        assert alert["Content-Language"] == "de"
        assert "Neuer Auslöser-Absender" in str(alert["Subject"])


async def test_without_addresses_the_first_trigger_is_quiet_and_a_new_sender_only_logged(
    config: Config, clock: FrozenClock, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    """The demo's case: no `alerts`, so nothing is mailed; the shop's first trigger (the
    newcomer's first try) warns of nothing, a later new sender is logged and counted."""
    async with Daemon(via_sink(config, sink), clock) as daemon:
        with caplog.at_level(logging.INFO):
            await send(daemon, trigger())
            await settle(daemon)
            await daemon.tick()
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        await send(daemon, trigger(sender="leak@elsewhere.example"))
        await settle(daemon)
        await eventually(lambda: any("alert new_sender" in r.getMessage()
                                     for r in caplog.records), what="the alert's log line")
        assert alert_count(await scrape(daemon), "new_sender", "acme") == 1
        assert daemon.store.read(lambda q: q.outbox_depth()) == 0


def test_an_outage_shorter_than_its_threshold_stays_silent_and_ends_without_a_resolved() -> None:
    start = FrozenClock().now()
    outage = Outage(timedelta(minutes=15), AlertKind.IMAP_UNREACHABLE, AlertKind.IMAP_RESOLVED)
    assert outage.step(start, start + timedelta(minutes=10)) is None
    assert outage.step(None, start + timedelta(minutes=11)) is None  # back before 15 minutes
    later = start + timedelta(hours=1)
    assert outage.step(later, later) is None
    assert outage.step(later, later + timedelta(minutes=15)) == AlertKind.IMAP_UNREACHABLE
    assert outage.step(later, later + timedelta(hours=5)) is None
    assert outage.step(None, later + timedelta(hours=6)) == AlertKind.IMAP_RESOLVED
    assert outage.step(None, later + timedelta(hours=7)) is None


async def test_imap_back_after_an_alerted_outage_sends_one_resolved(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink, pymap: ImapServer
) -> None:
    config = replace(via_sink(two_shops(make_config), sink), imap=pymap.imap_config())
    async with Daemon(config, clock) as daemon:
        watcher = daemon.imap
        assert watcher is not None
        await eventually(lambda: watcher.connected, what="the watcher connected")
        pymap.stop()
        await eventually(lambda: not watcher.connected, limit=20, what="the watcher noticed")
        await daemon.check_alerts()
        clock.advance(timedelta(minutes=16))
        await daemon.check_alerts()
        pymap.start()
        await eventually(lambda: watcher.connected, limit=30, what="the watcher reconnected")
        await daemon.check_alerts()
        await delivered(daemon, sink, OWNER, 2)
        subjects = sorted(str(m["Subject"]) for m in alerts_to(sink, OWNER))
        assert subjects == ["[ACME Shoes] IMAP mailbox unreachable for over 15 minutes",
                            "[ACME Shoes] Resolved: IMAP mailbox reachable again"]
        assert alert_count(await scrape(daemon), "imap_resolved", "bolt") == 1
