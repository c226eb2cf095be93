"""What a command opens and prints: the config, a shop, the store, the token signer; rows in
the chosen output format. Each failure is a one-line click error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from mailrelay.config import Config, ShopConfig, load, locate
from mailrelay.core.errors import ConfigError, StoreError
from mailrelay.core.output import human_time, localize, render
from mailrelay.core.tokens import TokenSigner, load_secret
from mailrelay.store import QueryInterface, StoreBackend
from mailrelay.store import open_store as open_configured_store
from mailrelay.store.coordination import shared_secret

T = TypeVar("T")


def load_config(path: Path | None, *, read_secrets: bool = False) -> Config:
    """The config for a command; mail server passwords only for one that logs in (send-now)."""
    try:
        return load(locate(path), read_secrets=read_secrets)
    except ConfigError as exc:
        raise click.ClickException(
            f"invalid configuration ({len(exc.problems)} problem(s)); run 'mailrelay check'.\n"
            + str(exc)
        ) from exc


def output_format(fmt: str | None) -> str:
    if fmt:
        return fmt
    return "table" if sys.stdout.isatty() else "json"


def known_shop(config: Config, shop_id: str) -> ShopConfig:
    shop = config.shop(shop_id)
    if shop is None:
        known = ", ".join(s.id for s in config.shops)
        raise click.ClickException(f"unknown shop {shop_id!r} (configured: {known})")
    return shop


def open_store(config: Config) -> StoreBackend:
    try:
        return open_configured_store(config.store)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def load_signer(config: Config) -> TokenSigner:
    try:
        # The relays sharing a PostgreSQL store sign with the key kept there.
        return TokenSigner(shared_secret(config.store, load_secret(config.security.secret_file)))
    except (OSError, ValueError, StoreError) as exc:
        raise click.ClickException(f"secret key: {exc}") from exc


def print_rows(config: Config, rows: list[dict[str, Any]], fields: tuple[str, ...],
               fmt: str | None, table_fields: tuple[str, ...] | None = None) -> None:
    """Rows as JSON or CSV with every field in machine formats, or as a table of
    `table_fields` (default: all) with times as people read them in each shop's zone."""
    tzs = {s.id: s.timezone for s in config.shops}
    chosen = output_format(fmt)
    table = chosen == "table"
    shown = (table_fields or fields) if table else fields
    if table and len(config.shops) == 1:
        shown = tuple(f for f in shown if f != "shop")  # one shop: the column says nothing
    click.echo(render(localize(rows, tzs, human=table), shown, chosen))


def print_listing(config: Config, query: Callable[[QueryInterface], Sequence[Any]],
                  fields: tuple[str, ...], fmt: str | None,
                  as_dict: Callable[[Any], dict[str, Any]] = asdict,
                  table_fields: tuple[str, ...] | None = None) -> None:
    """Read rows (dataclasses) on one snapshot and print them in the chosen format; a table
    shows `table_fields`, the ones a person reads (default: all)."""
    with open_store(config) as store:
        rows = store.read(query)
    print_rows(config, [as_dict(row) for row in rows], fields, fmt, table_fields)


def write_or_fail(config: Config, work: Callable[[QueryInterface], T], failure: str) -> T:
    """Run `work` in one write transaction; a click error saying `failure` when it did nothing."""
    with open_store(config) as store:
        done = store.write_sync(work)
    if not done:
        raise click.ClickException(failure)
    return done


def shop_time(config: Config, shop_id: str | None, iso: str | None) -> str:
    """A stored time in the shop's zone as people read it, for a sentence (`… sent on …`)."""
    if not iso:
        return "an unknown time"
    shop = config.shop(shop_id) if shop_id else None
    return human_time(iso, shop.timezone if shop else None)
