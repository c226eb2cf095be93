"""The `mailrelay` command: every operator action, documented in --help.

Exit status: 0 success, 1 user error (one-line reason), 2 usage error, 3 serve could not start.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import json
import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click

from mailrelay import app
from mailrelay.config import (
    MAX_INVITE_DELAY,
    Config,
    ShopConfig,
    duration_text,
    load,
    locate,
    parse_duration,
)
from mailrelay.core.clock import SystemClock
from mailrelay.core.errors import ConfigError, DeliveryFailure, MailrelayError, StoreError
from mailrelay.core.files import make_private_dir
from mailrelay.core.models import InvitationStatus, OutboxStatus, ShipmentStatus
from mailrelay.core.output import FORMATS, localize, render
from mailrelay.core.tokens import TokenSigner, load_secret
from mailrelay.edges.imap_watcher import check_connection, delete_filed, describe
from mailrelay.edges.mailer import SmtpTransport, build_transport
from mailrelay.parsing import normalize_address, parse_trigger
from mailrelay.render import Templates
from mailrelay.services import intake, privacy
from mailrelay.services.delivery import Delivery
from mailrelay.services.invitations import Inviter, record_delivery
from mailrelay.store import OutboxRow, Queries, Store

F = TypeVar("F", bound=Callable[..., Any])

SHIPMENT_FIELDS = (
    "id", "shop", "received_at", "message_id", "sender", "customer_email", "customer_name",
    "reference", "locale", "status", "reason",
)
INVITATION_FIELDS = (
    "id", "shop", "shipment_id", "customer_email", "customer_name", "reference", "method",
    "status", "due_at", "sent_at", "reminder_due_at", "review_id", "reason",
)


def config_option(fn: F) -> F:
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
        help="Path to relay.toml (default: $MAILRELAY_CONFIG, else ./relay.toml, else built-in "
        "defaults).",
    )(fn)


def format_option(fn: F) -> F:
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS),
        help="Output format (default: table on a terminal, json otherwise).",
    )(fn)


def _load_config(path: Path | None, *, read_secrets: bool = False) -> Config:
    """The config for a command; mail server passwords only for one that logs in (send-now)."""
    try:
        return load(locate(path), read_secrets=read_secrets)
    except ConfigError as exc:
        raise click.ClickException(
            f"invalid configuration ({len(exc.problems)} problem(s)); run 'mailrelay check'.\n"
            + str(exc)
        ) from exc


def _fmt(fmt: str | None) -> str:
    if fmt:
        return fmt
    return "table" if sys.stdout.isatty() else "json"


def _shop(config: Config, shop_id: str) -> ShopConfig:
    shop = config.shop(shop_id)
    if shop is None:
        known = ", ".join(s.id for s in config.shops)
        raise click.ClickException(f"unknown shop {shop_id!r} (configured: {known})")
    return shop


def _open_store(config: Config) -> Store:
    try:
        return Store(config.store.path)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def _signer(config: Config) -> TokenSigner:
    try:
        return TokenSigner(load_secret(config.security.secret_file))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"secret key: {exc}") from exc


def _duration(value: str | None, name: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from exc


def _print_rows(config: Config, rows: list[dict[str, Any]], fields: tuple[str, ...],
                fmt: str | None) -> None:
    tzs = {s.id: s.timezone for s in config.shops}
    click.echo(render(localize(rows, tzs), fields, _fmt(fmt)))


def user_errors(fn: F) -> F:
    """Turn expected failures into one-line messages and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MailrelayError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}") from exc

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mailrelay")
def main() -> None:
    """mailrelay: shipping emails in, customer reviews and public responses out."""


# --- serve / check / parse --------------------------------------------------------------------


@main.command()
@config_option
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Least severe log level to print.")
def serve(config_path: Path | None, log_level: str) -> None:
    """Run the daemon: SMTP listener, intake worker (and, as they land, web, IMAP, sender).

    Stops cleanly on SIGTERM or SIGINT (a second SIGINT exits at once). Exit status 3 when the
    configuration is invalid or a listener cannot start.
    """
    configure_logging(log_level)
    try:
        config = load(locate(config_path))
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"config error: {problem}", err=True)
        sys.exit(app.EXIT_STARTUP)
    sys.exit(asyncio.run(app.run(config)))


def configure_logging(level: str) -> None:
    import os

    # journald stamps each line itself (JOURNAL_STREAM is set under systemd).
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)
    # Library chatter (aiosmtpd per command, APScheduler per job run) drowns the events.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("aioimaplib").setLevel(logging.WARNING)


@main.command()
@config_option
def check(config_path: Path | None) -> None:
    """Validate the configuration (every problem at once) and the local resources.

    Prints one line per check with ok or failed and the reason; exit status 1 when any failed.
    """
    try:
        path = locate(config_path)
        config = load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"failed  config: {problem}")
        click.echo(f"{len(exc.problems)} problem(s) found")
        sys.exit(1)
    for warning in config.warnings:
        click.echo(f"warning config: {warning}")
    results: list[tuple[str, str | None]] = [
        (f"config {path or '(built-in defaults)'}: {len(config.shops)} shop(s)", None)
    ]
    results.append(_check_port("smtp listener", config.smtp.host, config.smtp.port))
    results.append(_check_port("web listener", config.http.host, config.http.port))
    results.append(_check_store(config))
    results.append(_check_secret(config))
    results.append(asyncio.run(_check_outbound(config)))
    if config.imap is not None:
        results.append(asyncio.run(_check_imap(config)))
    failed = 0
    for label, error in results:
        if error:
            failed += 1
            click.echo(f"failed  {label}: {error}")
        else:
            click.echo(f"ok      {label}")
    if failed:
        sys.exit(1)


def _check_port(label: str, host: str, port: int) -> tuple[str, str | None]:
    name = f"{label} {host}:{port} free"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return name, f"{exc.strerror or exc} (is mailrelay already running?)"
    return name, None


async def _check_outbound(config: Config) -> tuple[str, str | None]:
    out = config.outbound
    if out.transport == "maildir":
        name = f"outbound maildir {out.maildir} writable"
        try:
            make_private_dir(out.maildir)  # it will hold customers' mail (issue 10 §6)
            probe = out.maildir / ".mailrelay-check"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            return name, str(exc)
        return name, None
    transport = SmtpTransport(out, reuse=False)
    try:
        what = await transport.probe()
    except DeliveryFailure as exc:
        return f"outbound smtp {out.host}:{out.port}", exc.reply
    finally:
        await transport.close()
    return f"outbound smtp {what}", None


async def _check_imap(config: Config) -> tuple[str, str | None]:
    imap = config.imap
    if imap is None:
        return "imap", None
    try:
        what = await check_connection(imap, seconds=20)
    except Exception as exc:  # noqa: BLE001 - every failure is reported as a line
        return f"imap {imap.host}:{imap.port}", describe(exc)
    return f"imap {what}", None


def _check_store(config: Config) -> tuple[str, str | None]:
    name = f"store {config.store.path} writable"
    try:
        store = Store(config.store.path)
        store.close()
    except (StoreError, OSError) as exc:
        return name, str(exc)
    return name, None


def _check_secret(config: Config) -> tuple[str, str | None]:
    path = config.security.secret_file
    name = f"secret key {path}"
    try:
        load_secret(path)
    except (OSError, ValueError) as exc:
        return name, str(exc)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return name, f"mode {mode:o} lets others read it; run chmod 600 {path}"
    return name, None


@main.command()
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--shop", "shop_id", required=True, help="Shop whose rules apply.")
@format_option
@user_errors
def parse(config_path: Path | None, file: Path, shop_id: str, fmt: str | None) -> None:
    """Show what a trigger email yields, without storing anything."""
    config = _load_config(config_path)
    shop = _shop(config, shop_id)
    notice = parse_trigger(file.read_bytes(), reference_pattern=shop.order_reference_pattern)
    fields = {
        "customer_email": notice.customer_email,
        "customer_name": notice.customer_name,
        "reference": notice.reference,
        "reference_rule": notice.reference_rule,
        "locale": notice.locale or shop.locale,
        "send_at": notice.send_at.isoformat() if notice.send_at else None,
        "sender": notice.sender,
        "subject": notice.subject,
        "message_id": notice.message_id,
        "source": notice.source,
        "tags": list(notice.tags),
        "products": [p.__dict__ for p in notice.products],
        "defects": list(notice.defects),
    }
    if _fmt(fmt) == "json":
        click.echo(json.dumps(fields, ensure_ascii=False, indent=2))
        return
    if _fmt(fmt) == "csv":
        click.echo(render([fields], tuple(fields), "csv"))
        return
    for key, value in fields.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, list) else value
        click.echo(f"{key:15} {'' if shown is None else shown}")
    if notice.customer_email is None:
        click.echo("=> would be rejected: no valid customer address")


# --- listings ---------------------------------------------------------------------------------


@main.command()
@config_option
@click.option("--status", type=click.Choice([s.value for s in ShipmentStatus]),
              help="Only shipments with this outcome.")
@click.option("--shop", "shop_id", help="Only this shop.")
@format_option
@user_errors
def shipments(config_path: Path | None, status: str | None, shop_id: str | None,
              fmt: str | None) -> None:
    """List received shipments with the reason each did or did not yield an invitation."""
    config = _load_config(config_path)
    with _open_store(config) as store:
        rows = store.read(lambda q: q.list_shipments(status=status, shop=shop_id))
    _print_rows(config, [asdict(row) for row in rows], SHIPMENT_FIELDS, fmt)


@main.group(invoke_without_command=True)
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
    config = _load_config(config_path)
    with _open_store(config) as store:
        rows = store.read(lambda q: q.list_invitations(status=status, shop=shop_id))
    _print_rows(config, [asdict(row) for row in rows], INVITATION_FIELDS, fmt)


@invitations.command("cancel")
@config_option
@click.argument("target")
@click.option("--shop", "shop_id", help="Only this shop's invitations.")
@click.pass_context
@user_errors
def invitations_cancel(ctx: click.Context, config_path: Path | None, target: str,
                       shop_id: str | None) -> None:
    """Cancel scheduled invitations: TARGET is an invitation id or an order reference."""
    config = _load_config(config_path or ctx.obj.get("config_path"))
    shop_id = shop_id or ctx.obj.get("shop_id")
    with _open_store(config) as store:
        done = store.write_sync(
            lambda q: intake.cancel_target(q, config, target, shop_id, "cancelled by operator")
        )
    if not done:
        raise click.ClickException(f"no scheduled invitation matches {target!r}")
    click.echo(f"cancelled {len(done)} invitation(s): {', '.join(map(str, done))}")


@invitations.command("send-now")
@config_option
@click.argument("invitation_id", type=int)
@click.pass_context
@user_errors
def invitations_send_now(ctx: click.Context, config_path: Path | None, invitation_id: int) -> None:
    """Send one scheduled invitation now, ignoring its due time and sending hours."""
    config = _load_config(config_path or ctx.obj.get("config_path"), read_secrets=True)
    signer = _signer(config)
    result = asyncio.run(_send_now(config, signer, invitation_id))
    if result is None:
        raise click.ClickException(f"invitation {invitation_id} is not scheduled or not found")
    if result.status != OutboxStatus.SENT:
        raise click.ClickException(
            f"invitation {invitation_id}: {result.status}: {result.last_error}")
    click.echo(f"invitation {invitation_id} sent to {result.recipient} "
               f"(message {result.message_id})")


async def _send_now(config: Config, signer: TokenSigner, invitation_id: int
                    ) -> OutboxRow | None:
    clock = SystemClock()
    store = _open_store(config)
    transport = build_transport(config.outbound)
    try:
        inviter = Inviter(config, store, Templates(config), signer, clock)
        delivery = Delivery(store, transport, clock,
                            rate_per_minute=config.outbound.rate_per_minute,
                            on_result=functools.partial(record_delivery, config),
                            sign_sender=signer.bounce_tag)
        outbox_id = await inviter.queue_one(invitation_id)
        if outbox_id is None:
            return None
        return await delivery.deliver_one(outbox_id)
    finally:
        await transport.close()
        store.close()


OUTBOX_FIELDS = ("id", "kind", "to", "subject", "message_id", "status", "attempts", "due_at",
                 "sent_at", "last_error", "shop")


@main.group(invoke_without_command=True)
@config_option
@click.option("--failed", is_flag=True, help="Only mail that failed for good.")
@click.option("--shop", "shop_id", help="Only this shop.")
@format_option
@click.pass_context
@user_errors
def outbox(ctx: click.Context, config_path: Path | None, failed: bool, shop_id: str | None,
           fmt: str | None) -> None:
    """List outgoing mail with its state, attempts and last error; subcommands act on it."""
    ctx.obj = {"config_path": config_path}
    if ctx.invoked_subcommand is not None:
        return
    config = _load_config(config_path)
    with _open_store(config) as store:
        rows = store.read(lambda q: q.list_mail(OutboxStatus.FAILED if failed else None,
                                                shop=shop_id))
    _print_rows(config, [{**asdict(row), "to": row.recipient} for row in rows], OUTBOX_FIELDS,
                fmt)


@outbox.command("retry")
@config_option
@click.argument("outbox_id", type=int)
@click.pass_context
@user_errors
def outbox_retry(ctx: click.Context, config_path: Path | None, outbox_id: int) -> None:
    """Queue a failed message again, due now (the running daemon sends it within a minute)."""
    config = _load_config(config_path or ctx.obj.get("config_path"))
    now = SystemClock().now()
    with _open_store(config) as store:
        done = store.write_sync(lambda q: q.retry_mail(outbox_id, now))
    if not done:
        raise click.ClickException(f"outbox message {outbox_id} is not failed or queued")
    click.echo(f"outbox message {outbox_id} queued again")


# --- reviews -----------------------------------------------------------------------------------

REVIEW_FIELDS = (
    "id", "shop", "stars", "title", "text", "reviewer_name", "customer_email", "reference",
    "method", "created_at", "response", "responded_at", "reported", "report_reason", "tags",
)


def parse_when(text: str, now: datetime, tz: tzinfo, *, end: bool = False) -> datetime:
    """`2026-11-01` (a day in `tz`; as an end, the whole day counts) or a duration ago (`30d`).

    In UTC; a day at the calendar's edge (`--until 9999-12-31`, `--since 0001-01-01` east of
    Greenwich) means the edge, and a duration beyond 100 years is a usage error (issue 10).
    """
    text = text.strip()
    try:
        when = _when(text, now, tz, end)
    except ValueError as exc:
        hint = f" ({exc})" if "too long" in str(exc) else ""
        raise click.BadParameter(
            f"{_quoted(text)}: give a date like 2026-11-01 or a duration like 30d{hint}") from None
    try:
        return when.astimezone(UTC)
    except OverflowError:
        return (datetime.max if when.year == datetime.max.year else datetime.min).replace(
            tzinfo=UTC)


def _when(text: str, now: datetime, tz: tzinfo, end: bool) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = datetime.combine(day, time(0), tzinfo=tz)
        if end and day == date.max:
            return datetime.max.replace(tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return when if when.tzinfo else when.replace(tzinfo=tz)
    return now - parse_duration(text)


def _quoted(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:30] + "…")


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


@main.group(invoke_without_command=True)
@config_option
@click.option("--shop", "shop_id", help="Only this shop.")
@click.option("--stars", help="Star rating or range, e.g. 1-3 or 5.")
@click.option("--replied/--unreplied", default=None, help="Only answered or unanswered reviews.")
@click.option("--reported", is_flag=True, help="Only reported (hidden) reviews.")
@click.option("--tag", help="Only reviews with this tag.")
@click.option("--search", help="Text to find in title, text, name, email or reference.")
@click.option("--since", help="From this date (2026-11-01) or this long ago (30d).")
@click.option("--until", help="Up to this date (inclusive) or this long ago.")
@format_option
@click.pass_context
@user_errors
def reviews(ctx: click.Context, config_path: Path | None, shop_id: str | None, stars: str | None,
            replied: bool | None, reported: bool, tag: str | None, search: str | None,
            since: str | None, until: str | None, fmt: str | None) -> None:
    """List reviews with their current public response; subcommands act on one."""
    ctx.obj = {"config_path": config_path}
    if ctx.invoked_subcommand is not None:
        return
    config = _load_config(config_path)
    tz = _shop(config, shop_id).timezone if shop_id else UTC
    now = SystemClock().now()
    window = _stars_range(stars)
    start = parse_when(since, now, tz) if since else None
    stop = parse_when(until, now, tz, end=True) if until else None
    with _open_store(config) as store:
        rows = store.read(lambda q: q.list_reviews(
            shop=shop_id, stars=window, replied=replied, reported=True if reported else None,
            tag=tag, search=search, since=start, until=stop))
    _print_rows(config, [asdict(row) for row in rows], REVIEW_FIELDS, fmt)


@reviews.command("show")
@config_option
@click.argument("review_id", type=int)
@format_option
@click.pass_context
@user_errors
def reviews_show(ctx: click.Context, config_path: Path | None, review_id: int,
                 fmt: str | None) -> None:
    """One review with its response history, internal notes and customer context."""
    config = _load_config(config_path or ctx.obj.get("config_path"))
    with _open_store(config) as store:
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
    if _fmt(fmt) != "table":
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
    for kind in ("status", "reviews", "invitations", "replies"):
        items = context.get(kind) or []
        click.echo(f"  {kind}: " + ("none" if not items else "; ".join(
            ", ".join(f"{k}={v}" for k, v in item.items() if v is not None) for item in items)))


@reviews.command("unreport")
@config_option
@click.argument("review_id", type=int)
@click.pass_context
@user_errors
def reviews_unreport(ctx: click.Context, config_path: Path | None, review_id: int) -> None:
    """Show a reported review on the public page again."""
    config = _load_config(config_path or ctx.obj.get("config_path"))
    with _open_store(config) as store:
        done = store.write_sync(lambda q: q.unreport_review(review_id))
    if not done:
        raise click.ClickException(f"review {review_id} is not reported (or does not exist)")
    click.echo(f"review {review_id} is public again")


# --- reporting and privacy -----------------------------------------------------------------------

STATS_FIELDS = ("shop", "shipments", "invitations_sent", "reviews", "conversion", "stars",
                "average", "response_rate", "median_first_response_s")


@main.command()
@config_option
@click.option("--shop", "shop_id", help="Only this shop.")
@click.option("--since", help="From this date (2026-11-01) or this long ago (30d).")
@click.option("--until", help="Up to this date (inclusive) or this long ago.")
@format_option
@user_errors
def stats(config_path: Path | None, shop_id: str | None, since: str | None, until: str | None,
          fmt: str | None) -> None:
    """Per shop: shipments by status, invitations sent, reviews, conversion, stars,
    average score, response rate and median time to first response."""
    config = _load_config(config_path)
    shops = [_shop(config, shop_id)] if shop_id else list(config.shops)
    now = SystemClock().now()
    with _open_store(config) as store:
        rows = []
        for shop in shops:
            start = parse_when(since, now, shop.timezone) if since else None
            stop = parse_when(until, now, shop.timezone, end=True) if until else None
            rows.append(store.read(functools.partial(_shop_stats, shop.id, start, stop)))
    if _fmt(fmt) != "table":
        click.echo(render(rows, STATS_FIELDS, _fmt(fmt)) if _fmt(fmt) == "csv"
                   else json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        ships = ", ".join(f"{k} {v}" for k, v in row["shipments"].items()) or "none"
        stars_line = "  ".join(f"{k}★ {v}" for k, v in row["stars"].items())
        median = row["median_first_response_s"]
        click.echo(f"{row['shop']}\n  shipments: {ships}\n"
                   f"  invitations sent: {row['invitations_sent']}   reviews: {row['reviews']}"
                   f"   conversion: {_percent(row['conversion'])}\n"
                   f"  stars: {stars_line}   average: {row['average'] or '-'}\n"
                   f"  response rate: {_percent(row['response_rate'])}   median first response:"
                   f" {_duration_text(median)}")


def _shop_stats(shop_id: str, since: datetime | None, until: datetime | None,
                q: Queries) -> dict[str, Any]:
    return asdict(q.stats(shop_id, since, until))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m {secs}s"


@main.command()
@config_option
@click.option("--since", required=True, help="From this date (2026-11-01) or this long ago.")
@click.option("--until", required=True, help="Up to this date (inclusive) or this long ago.")
@click.option("--shop", "shop_id", help="Only this shop.")
@click.option("-o", "--output", "output", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="File to write ('-' = stdout).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True, help="File format.")
@click.option("--bom", is_flag=True, help="Start the CSV with a UTF-8 BOM (for spreadsheets).")
@user_errors
def export(config_path: Path | None, since: str, until: str, shop_id: str | None, output: Path,
           fmt: str, bom: bool) -> None:
    """Export reviews with their responses, one row each."""
    config = _load_config(config_path)
    tz = _shop(config, shop_id).timezone if shop_id else UTC
    now = SystemClock().now()
    start, stop = parse_when(since, now, tz), parse_when(until, now, tz, end=True)
    with _open_store(config) as store:
        rows = store.read(lambda q: q.list_reviews(shop=shop_id, since=start, until=stop))
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


@main.command()
@config_option
@click.option("--older-than", "older_than", required=True,
              help="Erase personal data of items older than this (e.g. 180d).")
@user_errors
def purge(config_path: Path | None, older_than: str) -> None:
    """Erase personal data (names, addresses, raw mail, hidden texts) of old items.

    Counts for `stats` are kept. `serve` applies each shop's `retention` daily.
    """
    config = _load_config(config_path)
    age = _duration(older_than, "--older-than")
    now = SystemClock().now()
    cutoff = now - (age or timedelta(0))  # at most 100 years (parse_duration): no overflow
    with _open_store(config) as store:
        def run(q: Queries) -> int:
            total = sum(q.purge_before(shop.id, cutoff) for shop in config.shops)
            q.audit("purge", {"older_than": older_than, "cutoff": cutoff.isoformat(),
                              "records": total}, now, actor="cli")
            return total

        total = store.write_sync(run)
    click.echo(f"erased personal data of {total} record(s) older than {cutoff:%Y-%m-%d %H:%M} UTC")


@main.command()
@config_option
@click.argument("email_address", metavar="EMAIL")
@user_errors
def forget(config_path: Path | None, email_address: str) -> None:
    """Erase one person's data everywhere (a GDPR request) and suppress the address.

    Stored raw mail naming the person (decoded: any case, quoted-printable, base64,
    encoded-words) is deleted, and so are delivered copies in the Maildir outbox and the
    replies filed in the IMAP processed and rejected folders. Their
    reviews keep only the star rating, hidden; responses and notes on them are deleted. The
    suppression keeps only a hash of the address, so no trace of it stays in clear text.
    """
    config = _load_config(config_path)
    address = normalize_address(email_address)
    if address is None:
        raise click.ClickException(f"not a valid email address: {email_address!r}")
    now = SystemClock().now()
    with _open_store(config) as store:
        report = privacy.forget(store, address, now, maildir=config.outbound.maildir)
    touched = ", ".join(f"{k} {v}" for k, v in report.counts.items() if v) or "nothing stored"
    files = f"; {report.files_deleted} outbox file(s) deleted" if report.files_deleted else ""
    click.echo(f"forgot {address}: {touched}{files}; the address is suppressed")
    if config.imap is not None:
        imap = config.imap
        try:
            filed = asyncio.run(delete_filed(imap, lambda raw: privacy.names(raw, address)))
        except (MailrelayError, OSError, TimeoutError) as exc:
            click.echo(f"warning: replies filed on the IMAP server ({imap.processed_folder}, "
                       f"{imap.rejected_folder}) were not searched: {describe(exc)}; run "
                       "forget again when the server is reachable", err=True)
        else:
            click.echo(f"{filed} filed repl{'y' if filed == 1 else 'ies'} deleted on the IMAP "
                       f"server ({imap.processed_folder}, {imap.rejected_folder})")
    if not report.wal_truncated:
        click.echo("warning: the write-ahead log could not be truncated while the daemon was "
                   "reading; run forget again, or stop the daemon, to be sure it is gone",
                   err=True)


# --- manual invitations and links --------------------------------------------------------------


@main.command()
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
    config = _load_config(config_path)
    shop = _shop(config, shop_id)
    wait = _duration(delay, "--delay")
    if wait is not None and wait > MAX_INVITE_DELAY:
        raise click.BadParameter(f'at most "{duration_text(MAX_INVITE_DELAY)}", not {delay!r}',
                                 param_hint="--delay")
    signer = _signer(config)
    now = SystemClock().now()
    if email is not None:
        with _open_store(config) as store:
            decision = store.write_sync(
                lambda q: intake.invite(q, shop, signer, now, email=email, name=name,
                                        reference=reference, delay=wait)
            )
        if decision.status != ShipmentStatus.SCHEDULED:
            raise click.ClickException(f"not invited ({decision.status}): {decision.reason}")
        due = (decision.due_at or now).astimezone(shop.timezone).isoformat(timespec="seconds")
        click.echo(f"invitation {decision.invitation_id} scheduled for {due}")
        return
    rows = _read_invite_csv(csv_file) if csv_file else []
    with _open_store(config) as store:
        def run_all(q: Queries) -> list[tuple[int, dict[str, str], Any]]:
            out = []
            for line_no, row in rows:
                out.append((line_no, row, intake.invite(
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
        click.echo(render(skipped, ("line", "email", "reference", "status", "reason"), _fmt(fmt)))


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


@main.command()
@config_option
@click.option("--shop", "shop_id", required=True, help="Shop the review is for.")
@click.option("--email", required=True, help="Customer's email address.")
@click.option("--name", help="Customer's name (prefilled on the form).")
@click.option("--ref", "reference", help="Order reference; the same reference gives the same link.")
@user_errors
def link(config_path: Path | None, shop_id: str, email: str, name: str | None,
         reference: str | None) -> None:
    """Print a review link to hand to a customer yourself."""
    config = _load_config(config_path)
    shop = _shop(config, shop_id)
    signer = _signer(config)
    now = SystemClock().now()
    with _open_store(config) as store:
        try:
            _inv_id, token, _created = store.write_sync(
                lambda q: intake.generate_link(q, shop, signer, now, email=email, name=name,
                                               reference=reference)
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{config.http.base_url}/r/{token}")

