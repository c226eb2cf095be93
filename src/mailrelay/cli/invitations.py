"""`invitations`: list them, cancel them (or a sent one's reminder), send one now."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import click

from mailrelay.cli.options import config_option, format_option, user_errors
from mailrelay.cli.resources import (
    known_shop,
    load_config,
    load_signer,
    open_store,
    print_listing,
    shop_time,
)
from mailrelay.cli.subcommands import row_command, subcommand_config
from mailrelay.config import Config
from mailrelay.core.clock import SystemClock
from mailrelay.core.models import InvitationStatus, OutboxStatus
from mailrelay.core.tokens import TokenSigner
from mailrelay.edges.mailer import build_transport
from mailrelay.render import Templates
from mailrelay.services.delivery import Delivery
from mailrelay.services.invitations import (
    CancelTarget,
    Inviter,
    cancel_target,
    record_delivery,
)
from mailrelay.store import OutboxRow

INVITATION_FIELDS = (
    "id", "shop", "shipment_id", "customer_email", "customer_name", "reference", "method",
    "status", "due_at", "sent_at", "reminder_due_at", "review_id", "reason",
)
#: What a person reads in the table (JSON and CSV have every field).
INVITATION_COLUMNS = ("id", "shop", "customer_email", "reference", "status", "due_at", "reason")


@click.group(invoke_without_command=True)
@config_option
@click.option("--status", type=click.Choice([s.value for s in InvitationStatus]),
              help="Only invitations in this state.")
@click.option("--shop", "shop_id", help="Only this shop.")
@format_option
@click.pass_context
@user_errors
def invitations(ctx: click.Context, config_path: Path | None, status: str | None,
                shop_id: str | None, fmt: str | None) -> None:
    """List invitations; subcommands act on them."""
    ctx.obj = {"config_path": config_path, "shop_id": shop_id}
    if ctx.invoked_subcommand is not None:
        return
    print_listing(load_config(config_path),
                  lambda q: q.list_invitations(status=status, shop=shop_id), INVITATION_FIELDS, fmt,
                  table_fields=INVITATION_COLUMNS)


@invitations.command("cancel")
@config_option
@click.argument("target", required=False)
@click.option("--ref", "reference", help="The invitation of this order reference.")
@click.option("--id", "invitation_id", type=int, help="The invitation with this id.")
@click.option("--email", help="Every invitation of this customer address.")
@click.option("--shop", "shop_id", help="Only this shop's invitations.")
@click.pass_context
@user_errors
def invitations_cancel(ctx: click.Context, config_path: Path | None, target: str | None,
                       reference: str | None, invitation_id: int | None, email: str | None,
                       shop_id: str | None) -> None:
    """Cancel invitations by --ref REF, --id ID or --email EMAIL (one of them).

    A scheduled invitation is cancelled; one already sent keeps its review link, and its
    pending reminder is cancelled instead (the output says which). A bare TARGET is accepted
    when it is unambiguous: an id or an order reference, not both for different invitations.
    A reference or address found in several shops needs --shop. Exit status 1 when nothing was
    cancelled, with the reason.
    """
    given = [v for v in (target, reference, invitation_id, email) if v is not None]
    if len(given) != 1:
        raise click.UsageError("name the invitations one way: --ref REF, --id ID or --email "
                               "EMAIL (or a bare id or reference)")
    config = subcommand_config(ctx, config_path)
    shop_id = shop_id or ctx.obj.get("shop_id")
    if shop_id is not None:
        known_shop(config, shop_id)
    wanted = CancelTarget(invitation_id, reference, email, target)
    with open_store(config) as store:
        done = store.write_sync(
            lambda q: cancel_target(q, config, wanted, shop_id, "cancelled by operator"))
    click.echo(done.summary())


@row_command(invitations, "send-now", "invitation_id", read_secrets=True)
def invitations_send_now(config: Config, invitation_id: int) -> None:
    """Send one scheduled invitation now, ignoring its due time and sending hours."""
    signer = load_signer(config)
    result = asyncio.run(_send_now(config, signer, invitation_id))
    if result is None:
        raise click.ClickException(_not_sendable(config, invitation_id))
    if result.status != OutboxStatus.SENT:
        raise click.ClickException(
            f"invitation {invitation_id}: {result.status}: {result.last_error}")
    click.echo(f"invitation {invitation_id} sent to {result.recipient} "
               f"(message {result.message_id})")


def _not_sendable(config: Config, invitation_id: int) -> str:
    """Why `send-now` sent nothing: no such invitation, or the state it is in."""
    with open_store(config) as store:
        row = store.read(lambda q: q.get_invitation(invitation_id))
    if row is None:
        return f"invitation {invitation_id} does not exist ('mailrelay invitations' lists them)"
    why = f" ({row.reason})" if row.reason else ""
    if row.status == InvitationStatus.SENT:
        when = shop_time(config, row.shop, row.sent_at)
        return f"invitation {invitation_id} was already sent on {when}{why}: nothing to send"
    retry = (f"; 'mailrelay outbox retry {row.outbox_id}' queues its mail again"
             if row.status == InvitationStatus.FAILED and row.outbox_id else "")
    return (f"invitation {invitation_id} is {row.status}{why}: only a scheduled invitation "
            f"can be sent now{retry}")


async def _send_now(config: Config, signer: TokenSigner, invitation_id: int
                    ) -> OutboxRow | None:
    clock = SystemClock()
    store = open_store(config)
    transport = build_transport(config.outbound)
    try:
        inviter = Inviter(config, store, Templates(config), signer, clock)
        delivery = Delivery(store, transport, clock,
                            rate_per_minute=config.outbound.rate_per_minute,
                            on_result=functools.partial(record_delivery, config),
                            sign_sender=signer.bounce_tag,
                            # Not the daemon's name: its restart must not requeue this send.
                            relay=f"{config.store.relay_id}/send-now")
        outbox_id = await inviter.queue_one(invitation_id)
        if outbox_id is None:
            return None
        return await delivery.deliver_one(outbox_id)
    finally:
        await transport.close()
        store.close()
