"""Shipments: `shipments` lists what came in and why; `parse` shows what a trigger yields."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from mailrelay.cli.options import config_option, format_option, user_errors
from mailrelay.cli.resources import known_shop, load_config, output_format, print_listing
from mailrelay.core.models import InvitationStatus, ShipmentStatus
from mailrelay.core.output import render
from mailrelay.parsing import parse_trigger
from mailrelay.store import InvitationRow, QueryInterface, ShipmentRow

SHIPMENT_FIELDS = (
    "id", "shop", "received_at", "message_id", "sender", "customer_email", "customer_name",
    "reference", "locale", "status", "reason",
)
#: What a person reads in the table (JSON and CSV have every field).
SHIPMENT_COLUMNS = ("id", "shop", "received_at", "customer_email", "customer_name", "reference",
                    "locale", "status", "reason")


@click.command()
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--shop", "shop_id", required=True, help="Shop whose rules apply.")
@format_option
@user_errors
def parse(config_path: Path | None, file: Path, shop_id: str, fmt: str | None) -> None:
    """Show what a trigger email yields, without storing anything.

    The locale is the one the invitation would get; locale_source says where it came from
    (block, content-language, html-lang, detected, or shop for the shop's locale).
    """
    config = load_config(config_path)
    shop = known_shop(config, shop_id)
    notice = parse_trigger(file.read_bytes(), reference_pattern=shop.order_reference_pattern)
    fields = {
        "customer_email": notice.customer_email,
        "customer_name": notice.customer_name,
        "reference": notice.reference,
        "reference_rule": notice.reference_rule,
        "locale": notice.locale or shop.locale,
        "locale_source": notice.locale_source or "shop",
        "send_at": notice.send_at.isoformat() if notice.send_at else None,
        "sender": notice.sender,
        "subject": notice.subject,
        "message_id": notice.message_id,
        "source": notice.source,
        "tags": list(notice.tags),
        "products": [p.__dict__ for p in notice.products],
        "defects": list(notice.defects),
    }
    if output_format(fmt) == "json":
        click.echo(json.dumps(fields, ensure_ascii=False, indent=2))
        return
    if output_format(fmt) == "csv":
        click.echo(render([fields], tuple(fields), "csv"))
        return
    for key, value in fields.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, list) else value
        click.echo(f"{key:15} {'' if shown is None else shown}")
    if notice.customer_email is None:
        click.echo("=> would be rejected: no valid customer address")


@click.command()
@config_option
@click.option("--status", type=click.Choice([s.value for s in ShipmentStatus]),
              help="Only shipments with this outcome.")
@click.option("--shop", "shop_id", help="Only this shop.")
@format_option
@user_errors
def shipments(config_path: Path | None, status: str | None, shop_id: str | None,
              fmt: str | None) -> None:
    """List received shipments with the reason each did or did not yield an invitation; for
    one that did, the reason is its invitation's state now (invited: sent …, reviewed,
    cancelled: …)."""
    print_listing(load_config(config_path), lambda q: _with_invitations(q, status, shop_id),
                  SHIPMENT_FIELDS, fmt, as_dict=_listed, table_fields=SHIPMENT_COLUMNS)


def _with_invitations(q: QueryInterface, status: str | None, shop_id: str | None
                      ) -> list[tuple[ShipmentRow, InvitationRow | None]]:
    rows = q.list_shipments(status=status, shop=shop_id)
    by_shop: dict[str, list[ShipmentRow]] = {}
    for row in rows:
        by_shop.setdefault(row.shop, []).append(row)
    invitations: dict[int, InvitationRow] = {}
    for shop, theirs in by_shop.items():
        invitations.update(q.shipment_invitations(shop, theirs))
    return [(row, invitations.get(row.id)) for row in rows]


def _listed(pair: tuple[ShipmentRow, InvitationRow | None]) -> dict[str, Any]:
    row, invitation = pair
    return {**asdict(row), "reason": current_reason(row, invitation)}


def current_reason(row: ShipmentRow, invitation: InvitationRow | None) -> str:
    """The shipment's reason as things stand: its invitation's state now, when it has one
    (the recorded reason was written when the shipment came in)."""
    if invitation is None or invitation.status == row.status not in ("scheduled", "sent"):
        return row.reason  # no invitation, or its end (cancelled, suppressed) written here too
    day = (invitation.sent_at or "")[:10]
    if invitation.review_id is not None:
        return f"reviewed (invitation {invitation.id} sent {day})"
    if invitation.status == InvitationStatus.SENT:
        return f"invited: sent {day}"
    if invitation.status == InvitationStatus.SCHEDULED:
        due = (invitation.due_at or "")[:16].replace("T", " ")
        return f"invitation {invitation.id} due {due} UTC"
    return f"{invitation.status}: {invitation.reason or 'no reason recorded'}"
