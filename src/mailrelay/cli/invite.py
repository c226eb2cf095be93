"""Inviting by hand: `invite` (one customer or a CSV) and `link` (a review link to hand over)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import click

from mailrelay.cli.options import config_option, format_option, read_duration, user_errors
from mailrelay.cli.resources import known_shop, load_config, load_signer, open_store, output_format
from mailrelay.config import MAX_INVITE_DELAY, duration_text
from mailrelay.core.clock import SystemClock
from mailrelay.core.models import ShipmentStatus
from mailrelay.core.output import human_time, render
from mailrelay.services.invitations import generate_link, invite_manually
from mailrelay.store import QueryInterface


@click.command()
@config_option
@click.option("--shop", "shop_id", required=True, help="Shop to invite for.")
@click.option("--email", help="Customer's email address.")
@click.option("--name", help="Customer's name (used in the greeting).")
@click.option("--ref", "reference", help="Order reference (one invitation per reference).")
@click.option("--delay", help="Send after this duration instead of the shop's invite_delay.")
@click.option("--csv", "csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with a header row: email, and optionally name, reference (or ref).")
@format_option
@user_errors
def invite(config_path: Path | None, shop_id: str, email: str | None, name: str | None,
           reference: str | None, delay: str | None, csv_file: Path | None,
           fmt: str | None) -> None:
    """Invite customers by hand: same dedupe, caps and opt-outs as BCC'd shipments.

    With --csv, prints a report of the rows skipped and why.
    """
    if (email is None) == (csv_file is None):
        raise click.UsageError("give exactly one of --email or --csv")
    config = load_config(config_path)
    shop = known_shop(config, shop_id)
    wait = read_duration(delay, "--delay")
    if wait is not None and wait > MAX_INVITE_DELAY:
        raise click.BadParameter(f'at most "{duration_text(MAX_INVITE_DELAY)}", not {delay!r}',
                                 param_hint="--delay")
    signer = load_signer(config)
    now = SystemClock().now()
    if email is not None:
        with open_store(config) as store:
            decision = store.write_sync(
                lambda q: invite_manually(q, shop, signer, now, email=email, name=name,
                                          reference=reference, delay=wait)
            )
        if decision.status != ShipmentStatus.SCHEDULED:
            raise click.ClickException(f"not invited ({decision.status}): {decision.reason}")
        due = human_time((decision.due_at or now).isoformat(), shop.timezone)
        click.echo(f"invitation {decision.invitation_id} scheduled for {due}")
        return
    rows = _read_invite_csv(csv_file) if csv_file else []
    with open_store(config) as store:
        def run_all(q: QueryInterface) -> list[tuple[int, dict[str, str], Any]]:
            out = []
            for line_no, row in rows:
                out.append((line_no, row, invite_manually(
                    q, shop, signer, now, email=row.get("email", ""), name=row.get("name"),
                    reference=row.get("reference"), delay=wait)))
            return out

        results = store.write_sync(run_all)
    skipped = [
        {"line": line_no, "email": row.get("email", ""), "reference": row.get("reference"),
         "status": d.status, "reason": d.reason}
        for line_no, row, d in results if d.status != ShipmentStatus.SCHEDULED
    ]
    invited = len(results) - len(skipped)
    click.echo(f"{invited} invited, {len(skipped)} skipped", err=bool(skipped))
    if skipped:
        click.echo(render(skipped, ("line", "email", "reference", "status", "reason"),
                          output_format(fmt)))


def _read_invite_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows keyed by lower-case header; `ref`/`order`/`name` variants are accepted."""
    aliases = {"ref": "reference", "order": "reference", "order_reference": "reference",
               "customer_email": "email", "e-mail": "email", "customer_name": "name"}
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames:
        raise click.ClickException(f"{path}: empty CSV")
    headers = [aliases.get(h.strip().lower(), h.strip().lower()) for h in reader.fieldnames]
    if "email" not in headers:
        raise click.ClickException(f"{path}: the header row needs an 'email' column")
    out = []
    for index, raw in enumerate(csv.reader(text.splitlines()[1:]), start=2):
        if not any(cell.strip() for cell in raw):
            continue
        row = {h: (raw[i].strip() if i < len(raw) else "") for i, h in enumerate(headers)}
        out.append((index, {k: v for k, v in row.items() if v}))
    return out


@click.command()
@config_option
@click.option("--shop", "shop_id", required=True, help="Shop the review is for.")
@click.option("--email", required=True, help="Customer's email address.")
@click.option("--name", help="Customer's name (prefilled on the form).")
@click.option("--ref", "reference", help="Order reference; the same reference gives the same link.")
@user_errors
def link(config_path: Path | None, shop_id: str, email: str, name: str | None,
         reference: str | None) -> None:
    """Print a review link to hand to a customer yourself.

    The link has no language of its own: its form follows the browser's Accept-Language,
    then the shop's locale.
    """
    config = load_config(config_path)
    shop = known_shop(config, shop_id)
    signer = load_signer(config)
    now = SystemClock().now()
    with open_store(config) as store:
        try:
            _inv_id, token, _created = store.write_sync(
                lambda q: generate_link(q, shop, signer, now, email=email, name=name,
                                        reference=reference)
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{config.http.base_url}/r/{token}")
