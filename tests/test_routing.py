"""The address forms mailrelay hands out read back to what they name, in one module
(core/routing.py), and the inbound table names a handler for every kind the listener accepts."""

from __future__ import annotations

from dataclasses import dataclass

from mailrelay.core.models import MessageKind
from mailrelay.core.routing import (
    Recipients,
    address_matches,
    bounce_recipient_id,
    reply_address,
    reply_key_in,
    signed_sender,
    unsigned_bounce_address,
)
from mailrelay.core.tokens import TokenSigner
from mailrelay.services.inbound import dispatch_table
from mailrelay.services.intake import HandOver, InBatch

SIGNER = TokenSigner(b"k" * 32)


@dataclass(frozen=True)
class Shop:
    id: str
    bcc_address: str
    cancel_address: str | None
    reply_domain: str


ACME = Shop("acme", "reviews+acme@relay.test", "cancel+acme@relay.test", "reply.acme.test")


def test_a_reply_address_built_for_a_ticket_reads_back_to_its_key() -> None:
    key = SIGNER.issue_key()
    address = reply_address(key, ACME.reply_domain)
    assert reply_key_in(("someone@else.test", address.upper()), {ACME.reply_domain}) == key
    assert reply_key_in((address,), {"other.test"}) is None


def test_a_stored_envelope_sender_signed_at_send_time_names_its_outbox_row() -> None:
    stored = unsigned_bounce_address(ACME.reply_domain).replace("{id}", "42")
    signed = signed_sender(stored, SIGNER.bounce_tag)
    assert bounce_recipient_id(f"<{signed}>", SIGNER.bounce_valid) == 42
    assert bounce_recipient_id(stored, SIGNER.bounce_valid) is None  # unsigned proves nothing
    assert signed_sender("someone@else.test", SIGNER.bounce_tag) == "someone@else.test"


def test_recipients_route_each_address_form_to_its_kind_and_refuse_the_rest() -> None:
    recipients = Recipients([ACME], SIGNER.key_valid, SIGNER.bounce_valid)
    bounce = signed_sender(f"bounce+7@{ACME.reply_domain}", SIGNER.bounce_tag)
    kinds = {
        "Reviews+ACME@relay.test": MessageKind.SHIPMENT,
        "<cancel+acme@relay.test>": MessageKind.CANCEL,
        reply_address(SIGNER.issue_key(), ACME.reply_domain): MessageKind.REPLY,
        bounce: MessageKind.BOUNCE,
    }
    for address, kind in kinds.items():
        route = recipients.route(address)
        assert route is not None and (route.shop, route.kind) == ("acme", kind), address
    assert recipients.route(f"reply+{'a' * 42}@{ACME.reply_domain}") is None
    assert recipients.route("postmaster@relay.test") is None


def test_address_globs_ignore_case() -> None:
    assert address_matches("Orders@Shop.Example", ["*@shop.example"])
    assert not address_matches("orders@shop.example.evil", ["*@shop.example"])


def test_the_inbound_table_has_a_handler_for_every_message_kind() -> None:
    async def handled(_msg: object) -> str:
        return "ok"

    table = dispatch_table(SIGNER, reply=handled, bounce=handled)
    assert set(table) == set(MessageKind)
    assert isinstance(table[MessageKind.SHIPMENT], InBatch)
    assert isinstance(table[MessageKind.CANCEL], InBatch)
    assert isinstance(table[MessageKind.REPLY], HandOver)
    assert isinstance(table[MessageKind.BOUNCE], HandOver)
