"""`stats`: per-shop counts, conversion, stars and response times, each said in full, and the
figures of each product reviewed."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from mailrelay.cli.options import config_option, format_option, parse_when, user_errors
from mailrelay.cli.resources import known_shop, load_config, open_store, output_format
from mailrelay.core.clock import SystemClock
from mailrelay.core.models import REQUESTED_METHODS
from mailrelay.core.output import render
from mailrelay.store import QueryInterface

STATS_FIELDS = ("shop", "shipments", "invitations_sent", "reviews", "reviews_by_method",
                "reviews_from_invitations", "conversion", "stars", "average", "response_rate",
                "median_first_response_s", "auto_responses", "reviews_hidden", "products")


@click.command()
@config_option
@click.option("--shop", "shop_id", help="Only this shop.")
@click.option("--since", help="From this date (2026-11-01) or this long ago (30d).")
@click.option("--until", help="Up to this date (inclusive) or this long ago.")
@click.option("--sku", help="Only this product in the per-product figures.")
@format_option
@user_errors
def stats(config_path: Path | None, shop_id: str | None, since: str | None, until: str | None,
          sku: str | None, fmt: str | None) -> None:
    """Show each shop's figures: shipments, invitations, reviews, conversion and responses.

    Per shop, over the period (default: all time):

    \b
    shipments         trigger emails received, by status
    invitations sent  invitations mailed (automatic and manual; links are not mailed)
    reviews           reviews as the public page shows them, by how they came
                      (automatic invitation, manual invitation, generated link);
                      reported and forgotten ones are left out and counted as hidden
    conversion        reviews from the invitations sent ÷ invitations sent
    stars, average    star distribution and average score of those reviews
    response rate     share of those reviews a person answered publicly
    median first      median time from a review to a person's first response
    response
    automatic         reviews answered by the automatic response (auto_reply_min_stars);
    responses         they count neither in the response rate nor in the median
    products          per product (SKU) rated in the period: its public product reviews
                      and their average (--sku: that product only)

    JSON fields: shop, shipments, invitations_sent, reviews, reviews_by_method,
    reviews_from_invitations, conversion, stars, average, response_rate,
    median_first_response_s, auto_responses, reviews_hidden, products (a list of sku,
    name, count, average, stars; in CSV "SKU count×average" joined with ';').
    """
    config = load_config(config_path)
    shops = [known_shop(config, shop_id)] if shop_id else list(config.shops)
    now = SystemClock().now()
    with open_store(config) as store:
        rows = []
        for shop in shops:
            start = parse_when(since, now, shop.timezone) if since else None
            stop = parse_when(until, now, shop.timezone, end=True) if until else None
            rows.append(store.read(functools.partial(_shop_stats, shop.id, start, stop, sku)))
    if output_format(fmt) == "csv":
        click.echo(render([{**row, "products": [_product_cell(p) for p in row["products"]]}
                           for row in rows], STATS_FIELDS, "csv"))
        return
    if output_format(fmt) != "table":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(_stats_text(row))


def _stats_text(row: dict[str, Any]) -> str:
    """One shop's figures for people, each saying what it counts."""
    ships = ", ".join(f"{k} {v}" for k, v in row["shipments"].items()) or "none"
    # The ways a customer asks for a link on the shop's form are shown once a review came so.
    methods = ", ".join(f"{k} {v}" for k, v in row["reviews_by_method"].items()
                        if v or k not in REQUESTED_METHODS)
    hidden = f"; {row['reviews_hidden']} hidden: reported or forgotten" if row[
        "reviews_hidden"] else ""
    answered = row["reviews_from_invitations"]
    stars_line = "  ".join(f"{k}★ {v}" for k, v in row["stars"].items())
    return (
        f"{row['shop']}\n  shipments: {ships}\n"
        f"  invitations sent: {row['invitations_sent']}   reviews: {row['reviews']}"
        f" ({methods}{hidden})\n"
        f"  conversion: {_percent(row['conversion'])} ({answered} review"
        f"{'' if answered == 1 else 's'} from {row['invitations_sent']} invitations sent)\n"
        f"  stars: {stars_line}   average: {row['average'] or '-'}\n"
        f"  response rate: {_percent(row['response_rate'])}   median first response:"
        f" {_duration_text(row['median_first_response_s'])}\n"
        f"  automatic responses: {row['auto_responses']} (not counted as responses)"
        + "".join(f"\n  product {p['sku']} ({p['name'] or '-'}): {p['count']} review"
                  f"{'' if p['count'] == 1 else 's'}, average {p['average'] or '-'}"
                  for p in row["products"])
    )


def _shop_stats(shop_id: str, since: datetime | None, until: datetime | None,
                sku: str | None, q: QueryInterface) -> dict[str, Any]:
    row = asdict(q.stats(shop_id, since, until))
    row["products"] = [
        {"sku": p.sku, "name": p.name, "count": p.count,
         "average": round(p.average, 2) if p.average is not None else None,
         "stars": p.distribution}
        for p in q.shop_products(shop_id, since=since, until=until) if sku in (None, p.sku)]
    return row


def _product_cell(product: dict[str, Any]) -> str:
    return f"{product['sku']} {product['count']}×{product['average']}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m {secs}s"
