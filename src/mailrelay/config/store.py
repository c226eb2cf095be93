"""The [store] table: SQLite at `path` (the default) or PostgreSQL at `url`, the database
password from a file or the environment (never in the URL), this relay's id and its claims'
lease."""

from __future__ import annotations

import re
import socket
from datetime import timedelta
from typing import Final
from urllib.parse import parse_qs, urlsplit

from mailrelay.config.model import StoreConfig
from mailrelay.config.tables import Table
from mailrelay.config.values import duration_text, parse_duration

DEFAULT_PATH: Final = "var/mailrelay.db"
DEFAULT_LEASE: Final = "5m"
#: Shorter leases would be overtaken by a relay's own renewals (every third of it) on a slow
#: database; a day is far beyond any send.
MIN_LEASE: Final = timedelta(seconds=10)
MAX_LEASE: Final = timedelta(days=1)
SCHEMES: Final = ("postgresql", "postgres")
#: Safe in logs, metric labels and a column: letters, digits and . _ : @ -, at most 64.
RELAY_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
KEEP_OUT: Final = ("password_file (a file only mailrelay reads) or password_env, or libpq's "
                   "own ~/.pgpass or PGPASSWORD")


def read_store(table: Table) -> StoreConfig:
    url = _url(table)
    if url is not None and table.has("path"):
        table.problem("url", "give either path (SQLite) or url (PostgreSQL), not both")
    password = _password(table, url)
    return StoreConfig(path=table.path("path", DEFAULT_PATH), url=url, password=password,
                       relay_id=_relay_id(table), lease=_lease(table))


def _url(table: Table) -> str | None:
    url = table.optional_string("url")
    if url is None:
        if table.has("url"):
            table.problem("url", "must not be empty (leave it out for SQLite at path)")
        return None
    problem = url_problem(url)
    if problem is not None:
        table.problem("url", problem)
        return None
    return url


def url_problem(url: str) -> str | None:
    """Why `url` is no usable PostgreSQL URL for the store, or None."""
    scheme, separator, _ = url.partition("://")
    if scheme.lower() not in SCHEMES or not separator:
        return (f"{_shown(url)} must start with postgresql:// or postgres:// "
                "(e.g. postgresql://mailrelay@db.example.com/mailrelay)")
    netloc = urlsplit(url).netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        return f"must not carry a password; give it with {KEEP_OUT}"
    if "password" in parse_qs(urlsplit(url).query):
        return f"must not carry a password (?password=); give it with {KEEP_OUT}"
    for host in hosts.split(","):  # libpq takes several hosts to fail over between
        port = host.rpartition("]")[2].rpartition(":")[2] if ":" in host else ""
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            return f"{_shown(url)} has an invalid port {port!r}"
    return None


def _shown(url: str) -> str:
    """The URL for an error message, any password in it masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return repr(url)
    return repr(url.replace(f":{parts.password}@", ":***@", 1))


def _password(table: Table, url: str | None) -> str | None:
    if table.has("password"):
        table.used.update(("password", "password_file", "password_env"))
        table.problem("password", f"keep the database password out of relay.toml: use {KEEP_OUT}")
        return None
    forms = [form for form in ("password_file", "password_env") if table.has(form)]
    # Read for every command, not only those that log in to a mail server: each opens the store.
    password = table.secret("password", always=True)
    table.used.update(("password_file", "password_env"))  # known keys, for "did you mean"
    if forms and url is None and not table.has("url"):
        table.problem(forms[0], "is only used with url (PostgreSQL)")
    return password


def _lease(table: Table) -> timedelta:
    lease = table.duration("lease", DEFAULT_LEASE, maximum=MAX_LEASE)
    if lease < MIN_LEASE:
        table.problem("lease", f'must be at least "{duration_text(MIN_LEASE)}", not '
                      f'"{duration_text(lease)}"')
        return parse_duration(DEFAULT_LEASE)
    return lease


def _relay_id(table: Table) -> str:
    default = socket.gethostname()
    relay_id = table.string("relay_id", default)
    if RELAY_ID.fullmatch(relay_id) is None:
        table.problem("relay_id", f"{relay_id!r} must be 1-64 letters, digits or . _ : @ - "
                      "(starting with a letter or digit)")
        return default
    return relay_id
