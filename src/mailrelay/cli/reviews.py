"""Reviews: list, show one with its history, unreport, export with responses."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, BinaryIO

import click

from mailrelay.cli.options import config_option, format_option, parse_when, user_errors
from mailrelay.cli.resources import (
    known_shop,
    load_config,
    open_store,
    output_format,
    print_listing,
    write_or_fail,
)
from mailrelay.cli.subcommands import row_command
from mailrelay.config import Config
from mailrelay.core.clock import SystemClock
from mailrelay.core.models import InvitationMethod
from mailrelay.core.output import localize, render
from mailrelay.services.reviews import unreport
from mailrelay.store import Queries

REVIEW_FIELDS = (
    "id", "shop", "stars", "title", "text", "reviewer_name", "customer_email", "reference",
    "method", "created_at", "response", "responded_at", "reported", "report_reason", "tags",
)
#: What a person reads in the table (JSON and CSV have every field).
REVIEW_COLUMNS = ("id", "shop", "stars", "title", "text", "reviewer_name", "reference",
                  "method", "created_at", "response", "reported", "tags")
#: How a review came: verified buyers (automatic, manual), a generated link, or a link the
#: customer asked for on the shop's form (basic, organic, embedded).
METHOD_OPTION = click.option(
    "--method", type=click.Choice([str(m) for m in InvitationMethod]),
    help="Only reviews that came this way: automatic, manual (verified buyers), link, or basic,"
         " organic, embedded (the customer asked on the shop's form).")


def _stars_range(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    low, sep, high = text.partition("-")
    try:
        lo, hi = int(low), int(high) if sep else int(low)
    except ValueError:
        raise click.BadParameter(f"{text!r}: use N or N-M with stars 1-5",
                                 param_hint="--stars") from None
    if not (1 <= lo <= hi <= 5):
        raise click.BadParameter(f"{text!r}: use N or N-M with stars 1-5", param_hint="--stars")
    return lo, hi


@click.group(invoke_without_command=True)
@config_option
@click.option("--shop", "shop_id", help="Only this shop.")
@click.option("--stars", help="Star rating or range, e.g. 1-3 or 5.")
@click.option("--replied/--unreplied", default=None, help="Only answered or unanswered reviews.")
@click.option("--reported", is_flag=True, help="Only reported (hidden) reviews.")
@click.option("--tag", help="Only reviews with this tag.")
@click.option("--search", help="Text to find in title, text, name, email or reference.")
@click.option("--since", help="From this date (2026-11-01) or this long ago (30d).")
@click.option("--until", help="Up to this date (inclusive) or this long ago.")
@METHOD_OPTION
@format_option
@click.pass_context
@user_errors
def reviews(ctx: click.Context, config_path: Path | None, shop_id: str | None, stars: str | None,
            replied: bool | None, reported: bool, tag: str | None, search: str | None,
            since: str | None, until: str | None, method: str | None,
            fmt: str | None) -> None:
    """List reviews with their current public response; subcommands act on one."""
    ctx.obj = {"config_path": config_path}
    if ctx.invoked_subcommand is not None:
        return
    config = load_config(config_path)
    tz = known_shop(config, shop_id).timezone if shop_id else UTC
    now = SystemClock().now()
    window = _stars_range(stars)
    start = parse_when(since, now, tz) if since else None
    stop = parse_when(until, now, tz, end=True) if until else None
    print_listing(config, lambda q: q.list_reviews(
        shop=shop_id, stars=window, replied=replied, reported=True if reported else None,
        tag=tag, search=search, since=start, until=stop, method=method), REVIEW_FIELDS, fmt,
        table_fields=REVIEW_COLUMNS)


@row_command(reviews, "show", "review_id")
@format_option
def reviews_show(config: Config, review_id: int, fmt: str | None) -> None:
    """One review with its response history, internal notes and customer context."""
    with open_store(config) as store:
        def gather(q: Queries) -> dict[str, Any] | None:
            review = q.get_review(review_id)
            if review is None:
                return None
            email = review.customer_email or ""
            return {
                "review": asdict(review),
                "responses": [asdict(row) for row in q.responses_of(review_id)],
                "notes": [asdict(row) for row in q.notes_of(review_id)],
                "context": asdict(q.customer_context(review.shop, email, review_id))
                if email else {},
            }

        data = store.read(gather)
    if data is None:
        raise click.ClickException(f"no review {review_id}")
    review = data["review"]
    if output_format(fmt) != "table":
        out = {k: review.get(k) for k in REVIEW_FIELDS}
        out["reported"] = bool(out["reported"])
        out.update(history=data["responses"], notes=data["notes"], context=data["context"])
        click.echo(json.dumps(out, ensure_ascii=False, indent=2, default=str))
        return
    owner = config.shop(review["shop"])
    tz: tzinfo = owner.timezone if owner else UTC
    when = localize([review], {review["shop"]: tz})[0]
    click.echo(f"Review {review['id']} · {review['shop']} · {'★' * review['stars']}"
               f"{'☆' * (5 - review['stars'])} ({review['stars']}/5) · {review['method']}")
    click.echo(f"From: {review['reviewer_name'] or '-'} <{review['customer_email'] or '-'}>"
               f"  order: {review['reference'] or '-'}  written: {when['created_at']}")
    if review["reported"]:
        click.echo(f"REPORTED (hidden): {review['report_reason'] or ''}")
    if review["tags"]:
        click.echo(f"Tags: {', '.join(review['tags'])}")
    click.echo(f"\n{review['title'] or '(no title)'}\n{review['text'] or ''}\n")
    click.echo("Responses:" if data["responses"] else "Responses: none")
    for resp in data["responses"]:
        state = "replaced" if resp["replaced_at"] else "current"
        click.echo(f"  [{resp['created_at']}] {resp['author']} ({resp['source']}, {state}):")
        click.echo("    " + resp["body"].replace("\n", "\n    "))
    click.echo("Notes:" if data["notes"] else "Notes: none")
    for note in data["notes"]:
        click.echo(f"  [{note['created_at']}] {note['author']}: {note['body']}")
    context = data["context"]
    click.echo("Customer context:")
    # The review's own invitation is left out, so "invitations: none" read as "never invited".
    for kind, label in (("status", "mail"), ("reviews", "other reviews"),
                        ("invitations", "other invitations"),
                        ("replies", "replies to other reviews")):
        items = context.get(kind) or []
        click.echo(f"  {label}: " + ("none" if not items else "; ".join(
            ", ".join(f"{k}={v}" for k, v in item.items() if v is not None) for item in items)))


@row_command(reviews, "unreport", "review_id")
def reviews_unreport(config: Config, review_id: int) -> None:
    """Show a reported review on the public page again."""
    now = SystemClock().now()
    write_or_fail(config, lambda q: unreport(q, config, review_id, now),
                  f"review {review_id} is not reported (or does not exist)")
    click.echo(f"review {review_id} is public again")


@click.command()
@config_option
@click.option("--since", help="From this date (2026-11-01), this long ago (30d) or 'today'."
              "  [default: all time]")
@click.option("--until", help="Up to this date (inclusive), this long ago, or 'today'"
              " (up to the end of today).  [default: no end]")
@click.option("--shop", "shop_id", help="Only this shop (and its time zone for the dates).")
@click.option("-o", "--output", "output", default="-", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="File to write ('-' = stdout).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True, help="File format.")
@click.option("--bom", is_flag=True, help="Start the CSV with a UTF-8 BOM (for spreadsheets).")
@METHOD_OPTION
@user_errors
def export(config_path: Path | None, since: str | None, until: str | None, shop_id: str | None,
           output: Path, fmt: str, bom: bool, method: str | None) -> None:
    """Export reviews with their current public response, one row each, oldest first.

    Every review, reported (hidden) and forgotten (anonymous) ones included: the `reported`
    column says which. Columns: id, shop, stars, title, text, reviewer_name, customer_email,
    reference, method (automatic, manual, link, basic, organic or embedded), created_at,
    response, responded_at, reported, report_reason, tags. Times are ISO 8601 in the shop's
    time zone. In CSV, tags are joined with ';' and booleans are written true/false; JSON
    keeps lists and booleans. --method keeps only the reviews that came one way.
    """
    config = load_config(config_path)
    tz = known_shop(config, shop_id).timezone if shop_id else UTC
    now = SystemClock().now()
    start = _export_when(since, now, tz, end=False)
    stop = _export_when(until, now, tz, end=True)
    with open_store(config) as store:
        rows = store.read(lambda q: q.list_reviews(shop=shop_id, since=start, until=stop,
                                                   method=method))
    tzs = {s.id: s.timezone for s in config.shops}
    text = render(localize([asdict(row) for row in rows], tzs), REVIEW_FIELDS, fmt)
    data = (("\ufeff" if bom and fmt == "csv" else "") + text + "\n").encode("utf-8")
    if str(output) == "-":
        stream: BinaryIO = sys.stdout.buffer
        stream.write(data)
        stream.flush()
    else:
        output.write_bytes(data)
        click.echo(f"{len(rows)} review(s) written to {output}", err=True)


def _export_when(text: str | None, now: datetime, tz: tzinfo, *, end: bool) -> datetime | None:
    """An export bound: none (all time), `today` (its start or, as the end, its end, in `tz`),
    or what `parse_when` reads."""
    if text is None:
        return None
    if text.strip().lower() == "today":
        text = now.astimezone(tz).date().isoformat()
    return parse_when(text, now, tz, end=end)
