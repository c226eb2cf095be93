"""`outbox`: list outgoing mail and queue a failed message again."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from mailrelay.cli.options import config_option, format_option, user_errors
from mailrelay.cli.resources import load_config, open_store, print_listing, shop_time
from mailrelay.cli.subcommands import row_command
from mailrelay.config import Config
from mailrelay.core.clock import SystemClock
from mailrelay.core.models import OutboxKind, OutboxStatus
from mailrelay.store import OutboxRow

OUTBOX_FIELDS = ("id", "kind", "to", "subject", "message_id", "status", "attempts", "due_at",
                 "sent_at", "last_error", "shop", "claimed_by")
#: What a person reads in the table (JSON and CSV have every field).
OUTBOX_COLUMNS = ("id", "shop", "kind", "to", "subject", "status", "attempts", "due_at", "sent_at",
                  "last_error")


@click.group(invoke_without_command=True)
@config_option
@click.option("--failed", is_flag=True, help="Only mail that failed for good.")
@click.option("--shop", "shop_id", help="Only this shop.")
@click.option("--kind", type=click.Choice([k.value for k in OutboxKind]),
              help="Only this kind (webhook: the events POSTed to the shops' webhooks).")
@format_option
@click.pass_context
@user_errors
def outbox(ctx: click.Context, config_path: Path | None, failed: bool, shop_id: str | None,
           kind: str | None, fmt: str | None) -> None:
    """List outgoing mail and webhook events with their state, attempts and last error
    (a webhook's `to` is its URL, its `subject` the event; JSON and CSV name the relay that
    last claimed each, the one sending it while `sending`); subcommands act on them."""
    ctx.obj = {"config_path": config_path}
    if ctx.invoked_subcommand is not None:
        return
    print_listing(load_config(config_path),
                  lambda q: q.list_mail(OutboxStatus.FAILED if failed else None, shop=shop_id,
                                        kind=kind),
                  OUTBOX_FIELDS, fmt, lambda row: {**asdict(row), "to": row.recipient},
                  table_fields=OUTBOX_COLUMNS)


@row_command(outbox, "retry", "outbox_id")
def outbox_retry(config: Config, outbox_id: int) -> None:
    """Queue a failed message or webhook event again, due now (the running daemon sends it
    within a minute)."""
    now = SystemClock().now()
    with open_store(config) as store:
        if not store.write_sync(lambda q: q.retry_mail(outbox_id, now)):
            raise click.ClickException(_not_retryable(config, store.read(
                lambda q: q.get_mail(outbox_id)), outbox_id))
    click.echo(f"outbox message {outbox_id} queued again")


def _not_retryable(config: Config, mail: OutboxRow | None, outbox_id: int) -> str:
    """Why `outbox retry` queued nothing: no such message, or the state it is in."""
    if mail is None:
        return f"outbox message {outbox_id} does not exist ('mailrelay outbox' lists them)"
    if mail.status == OutboxStatus.SENT:
        when = shop_time(config, mail.shop, mail.sent_at)
        return f"outbox message {outbox_id} was already sent on {when}: nothing to retry"
    why = f" ({mail.last_error})" if mail.last_error else ""
    return (f"outbox message {outbox_id} is {mail.status}{why}: only failed or queued mail "
            "can be retried")
