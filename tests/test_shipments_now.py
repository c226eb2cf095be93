"""A shipment's reason as things stand (issue 14): once its invitation is sent or answered with
a review, `mailrelay shipments` and the console's shipments ledger say so, not the "invitation 1
due …" written when the trigger came in (a cancel already rewrites it); another shop's
shipments keep their own state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock

from .cli_runner import cli
from .conftest import ConfigFactory, second_shop
from .mailtools import drain, send, settle, trigger
from .test_console_login import base, browser, get, log_in, registered
from .tickets import submitted

OWNER = "owner@acme.example"
ORDERS = {"1057": "ann@example.com", "1058": "ben@example.com", "1059": "cy@example.com"}


@pytest.fixture
def shops(make_config: ConfigFactory) -> Config:
    return make_config(more=second_shop())


@pytest.fixture
async def daemon(shops: Config, clock: FrozenClock) -> AsyncIterator[Daemon]:
    async with Daemon(shops, clock) as running:
        yield running


def listed(shops: Config, shop: str) -> dict[str, str]:
    """`mailrelay shipments --shop S --format json`: order reference → reason."""
    code, out = cli(shops, "shipments", "--shop", shop, "--format", "json")
    assert code == 0, out
    return {row["reference"]: row["reason"] for row in json.loads(out)}


async def test_the_shipments_listing_and_ledger_show_each_invitations_state_now(
    daemon: Daemon, shops: Config, clock: FrozenClock,
) -> None:
    await registered(daemon, shops, OWNER, "acme")
    for reference, email in ORDERS.items():
        await send(daemon, trigger(to=f"Someone <{email}>",
                                   subject=f"A shipment from order #{reference} is on the way"))
    await send(daemon, trigger(to="Bo <bo@example.com>",
                               subject="A shipment from order #B-1 is on the way"),
               "reviews+bolt@relay.test")
    await settle(daemon)
    before = listed(shops, "acme")
    assert all(reason.startswith("invitation ") and " due " in reason
               for reason in before.values()), before

    code, out = await asyncio.to_thread(cli, shops, "invitations", "cancel", "--ref", "1059",
                                        "--shop", "acme")
    assert code == 0, out
    clock.advance(timedelta(days=7, minutes=1))
    await drain(daemon)
    sent_day = clock.now().date().isoformat()
    answered = daemon.store.read(lambda q: q.invitation_for_reference("acme", "1058"))
    assert answered is not None and answered.status == "sent"
    await submitted(daemon, clock, answered, stars="4", title="Fine", text="Good boots.",
                    name="Ben")

    now = listed(shops, "acme")
    assert now["1057"] == f"invited: sent {sent_day}"
    assert now["1058"] == f"reviewed (invitation {answered.id} sent {sent_day})"
    assert now["1059"] == "cancelled by operator"  # a cancel writes it on the shipment too
    assert listed(shops, "bolt") == {"B-1": f"invited: sent {sent_day}"}
    code, table = cli(shops, "shipments", "--shop", "acme")
    assert code == 0 and "invited: sent" in table and " due " not in table, table

    async with browser() as http:
        await log_in(http, daemon, OWNER)
        _, html = await get(http, f"{base(daemon)}/console/acme/ledgers/shipments")
    assert "Invited: sent" in html and "Reviewed (invited" in html
    assert "cancelled by operator" in html and " due " not in html
    assert "B-1" not in html
