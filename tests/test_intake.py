"""Shipment outcomes, end to end through the SMTP listener, and due-time rules."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.services.invitations import due_time
from mailrelay.store import InvitationRow, ShipmentRow

from .conftest import CORPUS, ConfigFactory, corpus_cases, corpus_params
from .mailtools import eventually, send, settle, trigger
from .test_parsing import block, html_mail

CANCEL = "cancel+acme@relay.test"


def shipments(daemon: Daemon) -> list[ShipmentRow]:
    return daemon.store.read(lambda q: q.list_shipments())


def invitations(daemon: Daemon) -> list[InvitationRow]:
    return daemon.store.read(lambda q: q.list_invitations())


CORPUS_CASES = corpus_cases("triggers", "expected.json")


@pytest.mark.parametrize("case", corpus_params(CORPUS_CASES))
async def test_corpus_trigger_through_the_listener_yields_the_expected_shipment(
    daemon: Daemon, clock: FrozenClock, case: str
) -> None:
    expected = CORPUS_CASES[case]
    await send(daemon, (CORPUS / "triggers" / f"{case}.eml").read_bytes())
    await settle(daemon)
    [row] = shipments(daemon)
    assert row.customer_email == expected["email"]
    assert row.customer_name == expected["name"]
    assert row.reference == expected["reference"]
    assert row.status == expected["status"]
    if "locale" in expected:
        assert row.locale == expected["locale"]
    invs = invitations(daemon)
    if expected["status"] == "scheduled":
        [inv] = invs
        due = datetime.fromisoformat(str(inv.due_at))
        if "send_at" in expected:
            assert due == datetime.fromisoformat(expected["send_at"])
        else:
            assert due == clock.now() + timedelta(days=7)
        if "locale" in expected:
            assert inv.locale == expected["locale"]
    else:
        assert invs == []


async def test_duplicate_order_reference_schedules_one_invitation(daemon: Daemon) -> None:
    await send(daemon, trigger(subject="Order #5001 shipped"))
    await send(daemon, trigger(subject="Order #5001 shipped (2nd parcel)",
                               to="Other Person <other@example.com>"))
    await settle(daemon)
    statuses = [r.status for r in shipments(daemon)]
    assert statuses == ["scheduled", "duplicate"]
    assert "5001" in str(shipments(daemon)[1].reason)
    assert len(invitations(daemon)) == 1


async def test_a_scheduled_shipments_reason_names_the_due_time_as_people_read_it(
    daemon: Daemon,
) -> None:
    """Issue 12: no microseconds in what `shipments` shows."""
    await send(daemon, trigger(subject="Order #5002 shipped"))
    await settle(daemon)
    [row] = shipments(daemon)
    assert re.fullmatch(r"invitation \d+ due \d{4}-\d\d-\d\d \d\d:\d\d UTC", str(row.reason)), row


async def test_customer_invited_within_dedupe_window_is_capped(
    daemon: Daemon, clock: FrozenClock
) -> None:
    await send(daemon, trigger(subject="Order #6001 shipped"))
    await settle(daemon)
    clock.advance(timedelta(days=30))
    await send(daemon, trigger(subject="Order #6002 shipped"))
    await settle(daemon)
    assert [r.status for r in shipments(daemon)] == ["scheduled", "capped"]
    assert "dedupe_window" in str(shipments(daemon)[1].reason)


async def test_customer_is_invited_again_after_the_dedupe_window(
    daemon: Daemon, clock: FrozenClock
) -> None:
    await send(daemon, trigger(subject="Order #6101 shipped"))
    await settle(daemon)
    clock.advance(timedelta(days=91))
    await send(daemon, trigger(subject="Order #6102 shipped"))
    await settle(daemon)
    assert [r.status for r in shipments(daemon)] == ["scheduled", "scheduled"]


async def test_unsubscribed_customer_is_suppressed(daemon: Daemon, clock: FrozenClock) -> None:
    await daemon.store.write(
        lambda q: q.suppress("acme", "john.smith@example.com", clock.now(), "unsubscribe")
    )
    await send(daemon, trigger(subject="Order #7001 shipped"))
    await settle(daemon)
    [row] = shipments(daemon)
    assert row.status == "suppressed"
    assert invitations(daemon) == []


async def test_a_blocks_sender_name_and_reply_to_are_stored_with_the_shipment(
    daemon: Daemon,
) -> None:
    payload = {"recipientEmail": "ana@example.pt", "referenceId": "PT-77120",
               "senderName": "ACME Portugal", "replyTo": "Help@Acme.example"}
    await send(daemon, html_mail(block(payload), "To: Archive <archive@acme.example>",
                                 "Subject: Order PT-77120"))
    await settle(daemon)
    [row] = shipments(daemon)
    assert (row.status, row.source) == ("scheduled", "block:mailrelay")
    assert (row.sender_name, row.reply_to) == ("ACME Portugal", "help@acme.example")


async def test_trigger_without_customer_address_is_rejected_but_kept(daemon: Daemon) -> None:
    await send(daemon, trigger(to="undisclosed-recipients:;", subject="Order #7101"))
    await settle(daemon)
    [row] = shipments(daemon)
    assert row.status == "rejected"
    assert "customer" in str(row.reason)
    assert daemon.store.read(lambda q: q.count_messages()) == 1


async def test_trigger_from_sender_outside_trigger_senders_is_rejected(
    make_config: ConfigFactory, clock: FrozenClock
) -> None:
    config = make_config(shop_extra='trigger_senders = ["*@shipmondo.example"]')
    async with Daemon(config, clock) as daemon:
        await send(daemon, trigger(sender="Mallory <mallory@evil.example>", subject="Order #7201"))
        await send(daemon, trigger(sender="Shop <noreply@shipmondo.example>",
                                   subject="Order #7202", to="ann@example.com"))
        await settle(daemon)
        rows = shipments(daemon)
        assert [r.status for r in rows] == ["rejected", "scheduled"]
        assert "trigger_senders" in str(rows[0].reason)


async def test_a_new_trigger_sender_after_the_shops_first_warns_once(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """The shop's first sender is its own shop system (a newcomer's first demo trigger): no
    warning. A later new sender may be a leaked BCC address: one WARNING (the alert, issue 12)."""
    caplog.set_level(logging.WARNING, logger="mailrelay")
    await send(daemon, trigger(subject="Order #7301"))
    await send(daemon, trigger(subject="Order #7302", to="b@example.com"))
    await settle(daemon)
    await send(daemon, trigger(subject="Order #7303", sender="leak@elsewhere.example"))
    await send(daemon, trigger(subject="Order #7304", sender="leak@elsewhere.example",
                               to="c@example.com"))
    await settle(daemon)
    await eventually(lambda: any("new_sender" in r.getMessage() for r in caplog.records),
                     what="the new sender's warning")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "leak@elsewhere.example" in warnings[0] and "Order #7303" in warnings[0]


async def test_message_to_cancel_address_cancels_pending_invitation_of_that_order(
    daemon: Daemon,
) -> None:
    await send(daemon, trigger(subject="Order #8001 shipped"))
    await send(daemon, trigger(subject="Order #8002 shipped", to="keep@example.com"))
    await settle(daemon)
    await send(daemon, trigger(subject="Cancel order #8001", to="john.smith@example.com"), CANCEL)
    await settle(daemon)
    by_ref = {r.reference: r for r in shipments(daemon)}
    assert by_ref["8001"].status == "cancelled"
    assert by_ref["8002"].status == "scheduled"
    statuses = {r.reference: r.status for r in invitations(daemon)}
    assert statuses == {"8001": "cancelled", "8002": "scheduled"}


async def test_cancel_without_reference_cancels_that_customers_pending_invitations(
    daemon: Daemon,
) -> None:
    await send(daemon, trigger(subject="Order #8101 shipped", to="ann@example.com"))
    await settle(daemon)
    await send(daemon, trigger(subject="Please cancel the review request", to="ann@example.com"),
               CANCEL)
    await settle(daemon)
    assert [r.status for r in invitations(daemon)] == ["cancelled"]


async def test_stored_messages_are_processed_after_a_restart(
    config: Config, clock: FrozenClock
) -> None:
    async with Daemon(config, clock) as daemon:
        daemon.intake.wake = lambda: None  # type: ignore[method-assign]
        worker = next(t for t in daemon._tasks if t.get_name() == "intake")
        worker.cancel()  # the worker "crashed": receipts stay on disk only
        await send(daemon, trigger(subject="Order #9001"))
        assert daemon.store.read(lambda q: q.count_shipments()) == 0
    async with Daemon(config, clock) as again:
        await settle(again)
        assert [r.reference for r in shipments(again)] == ["9001"]


# --- due time ---------------------------------------------------------------------------------


def shop_with(config: Config, **changes: object) -> object:
    from dataclasses import replace

    return replace(config.shops[0], **changes)


@pytest.mark.parametrize(
    ("local_received", "expected_local"),
    [
        ("2026-11-20 12:00", "2026-11-20 12:00"),  # inside the window: unchanged
        ("2026-11-20 06:30", "2026-11-20 08:00"),  # before: same morning
        ("2026-11-20 21:15", "2026-11-21 08:00"),  # after: next morning
        ("2026-11-20 20:00", "2026-11-21 08:00"),  # the end is exclusive
    ],
)
def test_due_time_moves_into_send_hours_in_the_shop_timezone(
    config: Config, local_received: str, expected_local: str
) -> None:
    tz = ZoneInfo("Europe/Copenhagen")
    shop = shop_with(config, send_hours=(time(8), time(20)), timezone=tz)
    base = datetime.fromisoformat(local_received).replace(tzinfo=tz).astimezone(UTC)
    due = due_time(shop, base)  # type: ignore[arg-type]
    assert due.astimezone(tz).strftime("%Y-%m-%d %H:%M") == expected_local


def test_due_time_respects_daylight_saving_changes(config: Config) -> None:
    tz = ZoneInfo("Europe/Copenhagen")
    shop = shop_with(config, send_hours=(time(8), time(20)), timezone=tz)
    # 2026-03-29 is the spring-forward day in Denmark: 08:00 local is 06:00 UTC.
    base = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    due = due_time(shop, base)  # type: ignore[arg-type]
    assert due == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


async def test_invitation_due_time_uses_invite_delay_and_send_hours(
    make_config: ConfigFactory,
) -> None:
    config = make_config(shop_extra="")
    from dataclasses import replace

    tz = ZoneInfo("Europe/Copenhagen")
    shop = replace(config.shops[0], send_hours=(time(8), time(20)), timezone=tz,
                   invite_delay=timedelta(days=7))
    config = replace(config, shops=(shop,))
    clock = FrozenClock(datetime(2026, 11, 20, 21, 30, tzinfo=UTC))  # 22:30 in Copenhagen
    async with Daemon(config, clock) as daemon:
        await send(daemon, trigger(subject="Order #9101"))
        await settle(daemon)
        [inv] = invitations(daemon)
        due = datetime.fromisoformat(str(inv.due_at)).astimezone(tz)
        assert due.strftime("%Y-%m-%d %H:%M") == "2026-11-28 08:00"
