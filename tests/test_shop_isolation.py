"""Shops are isolated (issue 10 §4): the same customer at two shops, and what each shop's
tickets, listings, pages and commands show of them; a bounce stops mail for every shop and
says only "address bounced"; an unsubscribe stays with its shop."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.store import InvitationRow, Queries, Store

from .cli_runner import cli
from .conftest import ConfigFactory
from .customer_flow import (
    SECOND_SHOP,
    bounce,
    delivered,
    exchange_dsn,
    review,
    send_trigger,
    ticket_for,
)
from .mailtools import drain, settle, text_of, trigger

THIRD_SHOP = SECOND_SHOP.replace('"bolt"', '"cove"').replace("bolt", "cove").replace(
    "Bolt Bikes", "Cove Candles")
DANA = "dana.dale@example.com"
CLEO = "cleo.cole@example.com"


def dana_order(shop: str, number: str) -> bytes:
    """Dana's order at `shop`, as that shop's platform announces it."""
    return trigger(to=f"Dana Dale <{DANA}>", subject=f"Order #{number}",
                   sender=f"{shop.title()} <orders@{shop}.example>")


def ticket_text(config: Config, review_id: int) -> str:
    return text_of(ticket_for(config, review_id))


async def invited_at(daemon: Daemon, clock: FrozenClock, orders: list[tuple[str, str]]
                     ) -> dict[str, InvitationRow]:
    """Trigger one order per (shop, order number) for Dana; returns her invitations by shop."""
    for shop, order in orders:
        await send_trigger(daemon, f"reviews+{shop}@relay.test", dana_order(shop, order))
    await settle(daemon)
    clock.advance(timedelta(days=7))
    await drain(daemon)
    return {i.shop: i for i in daemon.store.read(lambda q: q.list_invitations())}


async def test_a_ticket_and_reviews_show_list_only_their_own_shops_history(
    make_config: ConfigFactory, clock: FrozenClock
) -> None:
    # No dedupe window: a second order at a shop gets an invitation of its own.
    config = make_config(shop_extra='dedupe_window = "0d"',
                         more=SECOND_SHOP + 'dedupe_window = "0d"\n' + THIRD_SHOP)
    async with Daemon(config, clock) as daemon:
        invitations = await invited_at(daemon, clock, [("acme", "1001"), ("bolt", "2001"),
                                                       ("cove", "3001")])
        at_acme = await review(daemon, invitations["acme"], 1, "Shoes came apart at acme.",
                               "Dana Dale")
        await drain(daemon)
        await send_trigger(daemon, "reviews+acme@relay.test", dana_order("acme", "1002"))
        await send_trigger(daemon, "reviews+bolt@relay.test", dana_order("bolt", "2002"))
        await settle(daemon)
        at_bolt = await review(daemon, invitations["bolt"], 4, "Good bike from bolt.",
                               "Dana Dale")
        await drain(daemon)

        text = ticket_text(config, at_bolt)
        assert "1001" not in text and "1002" not in text and "3001" not in text
        assert "Shoes came apart" not in text and "acme" not in text.lower()
        assert "2002" in text  # her other order at this very shop is context
        assert "order 1002" not in ticket_text(config, at_acme).replace("Order:", "")
        assert "2001" not in ticket_text(config, at_acme)

        code, out = cli(config, "reviews", "show", str(at_bolt), "--format", "json")
        assert code == 0, out
        shown = json.loads(out)
        assert {i["shop"] for i in shown["context"]["invitations"]} == {"bolt"}
        assert shown["context"]["reviews"] == []
        code, out = cli(config, "reviews", "show", str(at_bolt), "--format", "table")
        assert "acme" not in out and "1001" not in out and "cove" not in out
        # The invitation she reviewed is not "other": the labels say what is left out.
        assert "  other invitations: " in out and "  other reviews: none" in out
        assert "  invitations:" not in out

        # Every listing with --shop, the public page and its JSON: one shop's rows only.
        for command in (["shipments"], ["invitations"], ["reviews"], ["outbox"]):
            code, out = cli(config, *command, "--shop", "bolt", "--format", "json")
            assert code == 0, out
            assert {row["shop"] for row in json.loads(out)} == {"bolt"}, command
        code, out = cli(config, "stats", "--shop", "bolt", "--format", "json")
        assert [row["shop"] for row in json.loads(out)] == ["bolt"]
        assert json.loads(out)[0]["reviews"] == 1
        code, out = cli(config, "export", "--since", "2000-01-01", "--until", "2100-01-01",
                        "--shop", "bolt", "-o", "-", "--format", "json")
        assert {row["shop"] for row in json.loads(out)} == {"bolt"}
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{daemon.http_port}/s"
            async with http.get(f"{base}/bolt") as resp:
                page = await resp.text()
            async with http.get(f"{base}/bolt/reviews.json") as resp:
                data = await resp.text()
        assert "Good bike from bolt." in page and "Shoes came apart" not in page
        assert "Good bike from bolt." in data and "Shoes came apart" not in data


async def test_a_bounce_at_one_shop_stops_mail_at_every_shop_without_naming_it(
    make_config: ConfigFactory, clock: FrozenClock
) -> None:
    config = make_config(more=SECOND_SHOP + THIRD_SHOP)
    async with Daemon(config, clock) as daemon:
        invitations = await invited_at(daemon, clock, [("acme", "1001"), ("bolt", "2001")])
        # A later order at cove is scheduled, then the address bounces at acme for good.
        await send_trigger(daemon, "reviews+cove@relay.test", dana_order("cove", "3001"))
        await settle(daemon)
        acme = daemon.store.read(lambda q: q.get_invitation(invitations["acme"].id))
        assert acme is not None and acme.outbox_id is not None
        mail = daemon.store.read(lambda q: q.get_mail(acme.outbox_id))
        assert mail is not None
        await bounce(daemon, str(mail.envelope_from),
                     exchange_dsn(str(mail.envelope_from), mail.message_id,
                                  name="Dana Dale", address=DANA))
        bounced = daemon.store.read(lambda q: q.get_mail(mail.id))
        assert bounced is not None and bounced.status == "bounced"

        # The scheduled cove invitation is not sent; bolt's next shipment is suppressed.
        clock.advance(timedelta(days=7))
        await drain(daemon)
        await send_trigger(daemon, "reviews+bolt@relay.test", dana_order("bolt", "2002"))
        await settle(daemon)
        for shop in ("cove", "bolt"):
            code, out = cli(config, "invitations", "--shop", shop, "--format", "json")
            rows = json.loads(out)
            code, out = cli(config, "shipments", "--shop", shop, "--format", "json")
            ships = json.loads(out)
            texts = json.dumps(rows) + json.dumps(ships)
            assert "acme" not in texts.lower() and "ACME" not in texts, shop
        cove = json.loads(cli(config, "invitations", "--shop", "cove", "--format", "json")[1])
        assert [(i["status"], i["reason"]) for i in cove] == [("suppressed", "address bounced")]
        cove_ships = json.loads(cli(config, "shipments", "--shop", "cove", "--format", "json")[1])
        assert [(s["status"], s["reason"]) for s in cove_ships] == [
            ("suppressed", "address bounced")]
        bolt_ships = json.loads(cli(config, "shipments", "--shop", "bolt", "--format", "json")[1])
        assert (bolt_ships[-1]["status"], bolt_ships[-1]["reason"]) == (
            "suppressed", "address bounced")
        assert not [m for m in delivered(config) if m["X-Mailrelay-Shop"] == "cove"]

        # A review already possible at bolt: its ticket and `reviews show` say the address
        # bounced, and nothing of acme.
        at_bolt = await review(daemon, invitations["bolt"], 3, "Fine bike, slow delivery.",
                               "Dana Dale")
        await drain(daemon)
        text = ticket_text(config, at_bolt)
        assert "Mail: address bounced" in text and "acme" not in text.lower()
        code, out = cli(config, "reviews", "show", str(at_bolt), "--format", "table")
        assert "address bounced" in out and "acme" not in out.lower()


async def test_an_unsubscribe_stays_with_its_shop(
    make_config: ConfigFactory, clock: FrozenClock
) -> None:
    config = make_config(more=SECOND_SHOP)
    async with Daemon(config, clock) as daemon:
        await invited_at(daemon, clock, [("acme", "1001"), ("bolt", "2001")])
        links = {str(m["X-Mailrelay-Shop"]): str(m["List-Unsubscribe"]).strip("<>").replace(
                     config.http.base_url, f"http://127.0.0.1:{daemon.http_port}")
                 for m in delivered(config) if m["List-Unsubscribe"]}
        async with aiohttp.ClientSession() as http:
            async with http.post(links["acme"], data={"List-Unsubscribe": "One-Click"}) as resp:
                assert resp.status == 200
                assert "<form" not in await resp.text()  # done
            async with http.get(links["bolt"]) as resp:
                assert "<form" in await resp.text()  # bolt's page still asks
        await send_trigger(daemon, "reviews+acme@relay.test", dana_order("acme", "1002"))
        await send_trigger(daemon, "reviews+bolt@relay.test", dana_order("bolt", "2002"))
        await settle(daemon)
        ships = {s.shop: s for s in daemon.store.read(lambda q: q.list_shipments())
                 if s.reference in ("1002", "2002")}
        assert (ships["acme"].status, ships["acme"].reason) == (
            "suppressed", "customer has unsubscribed")
        assert ships["bolt"].status != "suppressed"


def test_a_hard_bounce_recorded_for_one_shop_before_the_upgrade_counts_for_every_shop(
    tmp_path: Path,
) -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with Store(tmp_path / "relay.db") as store:
        def legacy(q: Queries) -> None:  # what bounces.record wrote before issue 10
            q.note_bounce(DANA, True, "5.1.1", now)
            q.suppress("acme", DANA, now, "hard bounce 5.1.1")
            q.suppress("acme", CLEO, now, "unsubscribe link of invitation 7")

        store.write_sync(legacy)
        assert store.read(lambda q: q.suppression("bolt", DANA)) == "bounced"
        assert store.read(lambda q: q.suppression("acme", DANA)) == "bounced"
        assert store.read(lambda q: q.suppression("acme", CLEO)) == "unsubscribed"
        assert store.read(lambda q: q.suppression("bolt", CLEO)) is None
