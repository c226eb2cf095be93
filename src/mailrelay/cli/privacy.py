"""Privacy: `purge` erases old personal data, `forget` one person's everywhere."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import click

from mailrelay.cli.options import config_option, read_duration, user_errors
from mailrelay.cli.resources import load_config, open_store
from mailrelay.core.clock import SystemClock
from mailrelay.core.errors import MailrelayError
from mailrelay.edges.imap_client import describe
from mailrelay.edges.imap_watcher import delete_filed
from mailrelay.parsing import normalize_address
from mailrelay.services import privacy


@click.command()
@config_option
@click.option("--older-than", "older_than", required=True,
              help="Erase personal data of items older than this (e.g. 180d).")
@user_errors
def purge(config_path: Path | None, older_than: str) -> None:
    """Erase personal data (names, addresses, raw mail, hidden texts) of old items.

    Counts for `stats` are kept. `serve` applies each shop's `retention` daily.
    """
    config = load_config(config_path)
    age = read_duration(older_than, "--older-than")
    now = SystemClock().now()
    cutoff = now - (age or timedelta(0))  # at most 100 years (parse_duration): no overflow
    with open_store(config) as store:
        total = privacy.purge_older_than(store, config.shops, older_than, cutoff, now)
    click.echo(f"erased personal data of {total} record(s) older than {cutoff:%Y-%m-%d %H:%M} UTC")


@click.command("forget")
@config_option
@click.argument("email_address", metavar="EMAIL")
@user_errors
def forget_address(config_path: Path | None, email_address: str) -> None:
    """Erase one person's data everywhere (a GDPR request) and suppress the address.

    Stored raw mail naming the person (decoded: any case, quoted-printable, base64,
    encoded-words) is deleted, and so are delivered copies in the Maildir outbox and the
    replies filed in the IMAP processed and rejected folders. Their
    reviews keep only the star rating, hidden; responses and notes on them are deleted, and
    so are the agents' reasons and owners' notes in reports of them (the reports stay, with
    who, when and the public reason, for the counts). The
    suppression keeps only a hash of the address, so no trace of it stays in clear text.
    """
    config = load_config(config_path)
    address = normalize_address(email_address)
    if address is None:
        raise click.ClickException(f"not a valid email address: {email_address!r}")
    now = SystemClock().now()
    with open_store(config) as store:
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
    if config.store.url is not None:
        say_what_postgresql_keeps(report.wal_truncated)
    elif not report.wal_truncated:
        click.echo("warning: the write-ahead log could not be truncated while the daemon was "
                   "reading; run forget again, or stop the daemon, to be sure it is gone",
                   err=True)


def say_what_postgresql_keeps(vacuumed: bool) -> None:
    """PostgreSQL cannot zero freed rows as SQLite's secure_delete does: say where copies stay
    (README § Shops and privacy), and whether the VACUUM that frees them for reuse ran."""
    if not vacuumed:
        click.echo("warning: VACUUM of the emptied tables failed; run forget again so the "
                   "erased rows' old versions are freed for reuse", err=True)
    click.echo("note: on PostgreSQL the erased rows' old versions are freed for reuse, not "
               "zeroed; the WAL, its archive, replicas and backups keep them until they expire "
               "(VACUUM FULL rewrites the tables at once)", err=True)
