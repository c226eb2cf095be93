"""`store`: the store itself; `store copy` moves a SQLite store into an empty PostgreSQL
database and checks the counts."""

from __future__ import annotations

from pathlib import Path

import click

from mailrelay.cli.options import config_option, user_errors
from mailrelay.cli.resources import load_config
from mailrelay.config.store import url_problem


@click.group()
def store() -> None:
    """The store itself: copy a SQLite store into PostgreSQL."""


@store.command("copy")
@config_option
@click.option("--to", "url", required=True, metavar="URL",
              help="The empty PostgreSQL database, as [store] url writes it "
              "(postgresql://user@host/db), never with a password in it.")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="A file holding the database password (else libpq's PGPASSWORD or "
              "~/.pgpass, or none).")
@click.option("--from", "source", type=click.Path(dir_okay=False, path_type=Path),
              help="The SQLite store to copy (default: the config's [store] path).")
@user_errors
def store_copy(config_path: Path | None, url: str, password_file: Path | None,
               source: Path | None) -> None:
    """Copy the SQLite store into an empty PostgreSQL database, then compare the counts.

    Stop the relay first. The copy reads one snapshot of the SQLite store, so it is
    consistent even while a relay writes, but mail a relay accepts after that snapshot would
    not be in PostgreSQL. The target is migrated to the same schema version; every table is
    copied with its ids (raw mail byte for byte) in one transaction; refused, untouched, when
    the target holds any row but the secret key of a relay with this config's key file.
    Prints each table's rows in SQLite and in PostgreSQL; exit status 1 when any differ.
    Then set [store] url to URL and start the relay.
    """
    from mailrelay.store.pg.copy import connector, copy_store  # psycopg only for PostgreSQL

    problem = url_problem(url)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--to")
    path = source or _configured_path(config_path)
    password = _password(password_file)
    click.echo(f"copying {path} to {url}", err=True)
    result = copy_store(path, connector(url, password),
                        lambda table, rows: click.echo(f"  {table}: {rows} rows", err=True),
                        secret=_secret_key(config_path))
    width = max(len("table"), *(len(count.table) for count in result.counts))
    click.echo(f"{'table':<{width}}  {'sqlite':>10}  {'postgresql':>10}")
    for count in result.counts:
        mark = "" if count.matches else "  DIFFERS"
        click.echo(f"{count.table:<{width}}  {count.sqlite:>10}  {count.postgresql:>10}{mark}")
    rate = result.rows / result.seconds if result.seconds else 0.0
    click.echo(f"{result.rows} rows in {len(result.counts)} tables in {result.seconds:.1f} s "
               f"({rate:,.0f} rows/s)")
    if result.differences:
        names = ", ".join(count.table for count in result.differences)
        raise click.ClickException(f"the counts differ in {names}: do not switch to this copy")
    password_line = f' and password_file = "{password_file}"' if password_file else ""
    click.echo(f'counts match: in relay.toml set [store] url = "{url}"{password_line} instead of '
               "path, and start the relay")


def _configured_path(config_path: Path | None) -> Path:
    config = load_config(config_path)
    if config.store.url is not None:
        raise click.ClickException(
            "the config's store is PostgreSQL already ([store] url); give the SQLite store "
            "with --from PATH")
    return config.store.path


def _secret_key(config_path: Path | None) -> bytes | None:
    """The copied relay's link key ([security] secret_file), if its config and file are
    there: a relay started on the target may have stored this very key already."""
    try:
        path = load_config(config_path).security.secret_file
        return path.read_text(encoding="utf-8").strip().encode() if path.is_file() else None
    except (click.ClickException, OSError):
        return None


def _password(password_file: Path | None) -> str | None:
    if password_file is None:
        return None
    return password_file.read_text(encoding="utf-8").rstrip("\r\n")
