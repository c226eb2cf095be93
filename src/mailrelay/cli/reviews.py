"""Reviews: list, show one with its history, unreport, export with responses (or the
product reviews, one row each)."""

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
from mailrelay.store import ProductReviewListing, QueryInterface

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
#: With `reviews --sku`: that product's rating in each review.
SKU_FIELDS = ("sku", "product_stars", "product_text")
#: `export --products` (or `--sku`): one row per product review, as a spreadsheet wants it.
PRODUCT_FIELDS = (
    "review_id", "shop", "sku", "product_name", "gtin", "mpn", "brand", "product_url", "stars",
    "text", "reviewer_name", "reference", "method", "created_at", "updated_at", "reported",
    "tags",
)


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
@click.option("--sku", help="Only reviews that rated this product, with its stars and text.")
@format_option
@click.pass_context
@user_errors
def reviews(ctx: click.Context, config_path: Path | None, shop_id: str | None, stars: str | None,
            replied: bool | None, reported: bool, tag: str | None, search: str | None,
            since: str | None, until: str | None, method: str | None, sku: str | None,
            fmt: str | None) -> None:
    """List reviews with their current public response; subcommands act on one.

    With --sku, only the reviews that rated that product (at every shop selling it, unless
    --shop), each with the product's stars and text (sku, product_stars, product_text).
    """
    ctx.obj = {"config_path": config_path}
    if ctx.invoked_subcommand is not None:
        return
    config = load_config(config_path)
    tz = known_shop(config, shop_id).timezone if shop_id else UTC
    now = SystemClock().now()
    window = _stars_range(stars)
    start = parse_when(since, now, tz) if since else None
    stop = parse_when(until, now, tz, end=True) if until else None

    def listed(q: QueryInterface) -> list[dict[str, Any]]:
        rows = [asdict(row) for row in q.list_reviews(
            shop=shop_id, stars=window, replied=replied, reported=True if reported else None,
            tag=tag, search=search, since=start, until=stop, method=method)]
        return rows if sku is None else _with_product(q, rows, shop_id, sku)

    print_listing(config, listed, REVIEW_FIELDS + (SKU_FIELDS if sku else ()), fmt,
                  as_dict=dict, table_fields=REVIEW_COLUMNS + (("product_stars",) if sku else ()))


def _with_product(q: QueryInterface, rows: list[dict[str, Any]], shop_id: str | None,
                  sku: str) -> list[dict[str, Any]]:
    """The reviews that rated `sku`, each with that product's stars and text."""
    rated = {r.product.review_id: r.product for r in q.list_product_reviews(
        shop=shop_id, sku=sku, public=None)}
    return [{**row, "sku": sku, "product_stars": rated[row["id"]].stars,
             "product_text": rated[row["id"]].text} for row in rows if row["id"] in rated]


@row_command(reviews, "show", "review_id")
@format_option
def reviews_show(config: Config, review_id: int, fmt: str | None) -> None:
    """One review with its response history, internal notes and customer context."""
    with open_store(config) as store:
        def gather(q: QueryInterface) -> dict[str, Any] | None:
            review = q.get_review(review_id)
            if review is None:
                return None
            email = review.customer_email or ""
            return {
                "review": asdict(review),
                "responses": [asdict(row) for row in q.responses_of(review_id)],
                "notes": [asdict(row) for row in q.notes_of(review_id)],
                "products": [{"sku": p.sku, "name": p.name, "stars": p.stars, "text": p.text}
                             for p in q.product_reviews_of(review_id)],
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
        out.update(history=data["responses"], notes=data["notes"], context=data["context"],
                   products=data["products"])
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
    _echo_products(data["products"])
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


def _echo_products(products: list[dict[str, Any]]) -> None:
    """A review's product ratings, one line each, for `reviews show`."""
    for product in products:
        click.echo(f"Product {product['name'] or product['sku']} ({product['sku'] or '-'}):"
                   f" {product['stars']}/5" + (f" {product['text']}" if product["text"] else ""))


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
@click.option("--products", "per_product", is_flag=True,
              help="One row per product review instead of per review.")
@click.option("--sku", help="Only this product's reviews (one row each; implies --products).")
@user_errors
def export(config_path: Path | None, since: str | None, until: str | None, shop_id: str | None,
           output: Path, fmt: str, bom: bool, method: str | None, per_product: bool,
           sku: str | None) -> None:
    """Export reviews with their current public response, one row each, oldest first.

    Every review, reported (hidden) and forgotten (anonymous) ones included: the `reported`
    column says which. Columns: id, shop, stars, title, text, reviewer_name, customer_email,
    reference, method (automatic, manual, link, basic, organic or embedded), created_at,
    response, responded_at, reported, report_reason, tags. Times are ISO 8601 in the shop's
    time zone. In CSV, tags are joined with ';' and booleans are written true/false; JSON
    keeps lists and booleans. --method keeps only the reviews that came one way.

    With --products (or --sku), one row per product review instead, newest first, so a
    spreadsheet can filter and average per product: review_id, shop, sku, product_name, gtin,
    mpn, brand, product_url, stars (the product's), text (about the product), reviewer_name,
    reference, method, created_at, updated_at, reported (its review is hidden), tags (its
    review's).
    """
    config = load_config(config_path)
    tz = known_shop(config, shop_id).timezone if shop_id else UTC
    now = SystemClock().now()
    start = _export_when(since, now, tz, end=False)
    stop = _export_when(until, now, tz, end=True)
    fields = PRODUCT_FIELDS if per_product or sku else REVIEW_FIELDS
    with open_store(config) as store:
        if fields is PRODUCT_FIELDS:
            rows = [_product_row(r) for r in store.read(lambda q: q.list_product_reviews(
                shop=shop_id, sku=sku, public=None, since=start, until=stop))
                if method is None or r.method == method]
        else:
            rows = [asdict(row) for row in store.read(
                lambda q: q.list_reviews(shop=shop_id, since=start, until=stop,
                                         method=method))]
    tzs = {s.id: s.timezone for s in config.shops}
    text = render(localize(rows, tzs), fields, fmt)
    data = (("\ufeff" if bom and fmt == "csv" else "") + text + "\n").encode("utf-8")
    if str(output) == "-":
        stream: BinaryIO = sys.stdout.buffer
        stream.write(data)
        stream.flush()
    else:
        output.write_bytes(data)
        kind = "product review(s)" if fields is PRODUCT_FIELDS else "review(s)"
        click.echo(f"{len(rows)} {kind} written to {output}", err=True)


def _product_row(row: ProductReviewListing) -> dict[str, Any]:
    product = row.product
    return {"review_id": product.review_id, "shop": product.shop, "sku": product.sku,
            "product_name": product.name, "gtin": product.gtin, "mpn": product.mpn,
            "brand": product.brand, "product_url": product.url, "stars": product.stars,
            "text": product.text, "reviewer_name": row.reviewer_name,
            "reference": row.reference, "method": row.method,
            "created_at": product.created_at, "updated_at": product.updated_at,
            "reported": row.reported, "tags": row.tags}


def _export_when(text: str | None, now: datetime, tz: tzinfo, *, end: bool) -> datetime | None:
    """An export bound: none (all time), `today` (its start or, as the end, its end, in `tz`),
    or what `parse_when` reads."""
    if text is None:
        return None
    if text.strip().lower() == "today":
        text = now.astimezone(tz).date().isoformat()
    return parse_when(text, now, tz, end=end)
