"""Finding and loading relay.toml (or the embedded defaults): every table read, the checks across
tables, one ConfigError listing all problems. Reads files and the environment, nothing else.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, TypeVar

from mailrelay.config.model import Config, ImapConfig, SecurityConfig, ShopConfig, SmtpConfig
from mailrelay.config.scanner import index_lines, parse_toml
from mailrelay.config.sections import (
    read_drafts,
    read_http,
    read_imap,
    read_outbound,
    read_security,
    read_smtp,
)
from mailrelay.config.shops import check_addresses, read_shop
from mailrelay.config.store import read_store
from mailrelay.config.tables import Problems, Table, closest, kind_of
from mailrelay.config.values import SHOP_ID
from mailrelay.core.errors import ConfigError, ConfigProblem

ENV_VAR: Final = "MAILRELAY_CONFIG"
DEFAULT_FILE: Final = "relay.toml"

_T = TypeVar("_T")
_TABLES: Final = ("store", "smtp", "http", "outbound", "imap", "security", "shop", "drafts")


def _build(document: dict[str, Any], text: str, base: Path, source: Path | None,
           read_secrets: bool = True) -> Config:
    """Read every section, collecting all problems; raise one ConfigError at the end."""
    problems = Problems(index_lines(text), str(source) if source else "", read_secrets)

    for name, value in document.items():
        if name not in _TABLES:
            if isinstance(value, dict | list):
                table = closest(name, _TABLES)
                header = "[[shop]]" if table == "shop" else f"[{table}]"
                hint = f"; did you mean {header}?" if table else ""
                problems.add((name,), name, "unknown table" + hint)
            else:
                problems.add((name,), name, "unknown key")

    def section(name: str) -> Table:
        return _section(document, name, problems, base)

    store = _read(section("store"), read_store)
    smtp = _read(section("smtp"), read_smtp)
    http = _read(section("http"), read_http)
    outbound_present = isinstance(document.get("outbound"), dict)
    outbound = _read(section("outbound"), lambda t: read_outbound(t, outbound_present))
    imap = _read(section("imap"), read_imap) if "imap" in document else None
    security = _read(section("security"), read_security)
    security, warnings = _moved_authserv_id(problems, imap, security)
    warnings += _smtp_warnings(smtp, security)
    shops = _read_shops(document, problems, base, smtp.hostname)
    drafts = _read(section("drafts"), read_drafts)

    if problems.items:
        problems.items.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(problems.items)
    return Config(
        store=store,
        smtp=smtp,
        http=http,
        outbound=outbound,
        imap=imap,
        security=security,
        shops=tuple(shop for _, shop in shops),
        source=source,
        warnings=tuple(warnings),
        drafts=drafts,
    )


def _section(document: dict[str, Any], name: str, problems: Problems, base: Path) -> Table:
    value = document.get(name, {})
    if not isinstance(value, dict):
        problems.add((name,), name, f"must be a table [{name}], not {kind_of(value)}")
        value = {}
    return Table(value, (name,), name, problems, base)


def _read(table: Table, reader: Callable[[Table], _T]) -> _T:
    result = reader(table)
    table.finish()
    return result


def _moved_authserv_id(problems: Problems, imap: ImapConfig | None,
                       security: SecurityConfig) -> tuple[SecurityConfig, list[str]]:
    """[security] as it applies, with a deprecated imap.authserv_id moved into it (and the
    warning that says so)."""
    warnings: list[str] = []
    if imap is not None and imap.authserv_id:
        # Issue 10: authserv_id applies to SMTP and IMAP replies alike, so it moved.
        line = problems.line_of(("imap", "authserv_id"))
        where = f" (line {line})" if line else ""
        if security.authserv_id and security.authserv_id != imap.authserv_id:
            problems.add(("imap", "authserv_id"), "imap.authserv_id",
                         f"differs from security.authserv_id {security.authserv_id!r}; "
                         "keep only security.authserv_id")
        else:
            warnings.append(f"imap.authserv_id{where} is deprecated: move it to [security] "
                            "authserv_id, where it applies to SMTP and IMAP replies alike")
            security = replace(security, authserv_id=imap.authserv_id)
    return security, warnings


def _smtp_warnings(smtp: SmtpConfig, security: SecurityConfig) -> list[str]:
    """Settings that are valid but let replies or clients down."""
    warnings: list[str] = []
    if security.authserv_id and not smtp.trusted_clients:
        warnings.append("security.authserv_id is set but smtp.trusted_clients is empty: no "
                        "reply arriving by SMTP can be authenticated (list the MTA in front)")

    if 1 < smtp.max_sessions <= smtp.max_sessions_per_client:
        warnings.append(f"smtp.max_sessions_per_client = {smtp.max_sessions_per_client} is not "
                        f"below max_sessions = {smtp.max_sessions}: one client (slow ones until "
                        "session_timeout) can hold every session and lock the platforms out")
    return warnings


def _read_shops(document: dict[str, Any], problems: Problems, base: Path,
                hostname: str) -> list[tuple[Table, ShopConfig]]:
    """Every [[shop]] with the table it came from; ids and inbound addresses checked across."""
    shops: list[tuple[Table, ShopConfig]] = []
    raw_shops = document.get("shop", [])
    if not isinstance(raw_shops, list) or not all(isinstance(s, dict) for s in raw_shops):
        problems.add(("shop",), "shop", "each shop must be a [[shop]] table (note the [[ ]])")
        raw_shops = []
    elif not raw_shops:
        problems.add((), "shop", "at least one [[shop]] is required")
    for index, data in enumerate(raw_shops):
        shop_id = data.get("id")
        named = isinstance(shop_id, str) and SHOP_ID.fullmatch(shop_id) is not None
        # Problems name a shop by its id; without a usable id, by position (shop[1] = the first).
        name = f"shop.{shop_id}" if named else f"shop[{index + 1}]"
        table = Table(data, ("shop", index), name, problems, base)
        shops.append((table, _read(table, lambda t: read_shop(t, hostname))))
    seen: set[str] = set()
    for table, shop in shops:
        if shop.id and shop.id in seen:
            table.problem("id", f"{shop.id!r} is used by another [[shop]]")
        seen.add(shop.id)
    check_addresses(shops)
    return shops


# The embedded defaults: what `mailrelay serve` runs with no config at all. A short invite_delay
# so that a newcomer sees an invitation arrive in ./var/outbox within minutes. The domains are
# under .localhost (RFC 6761): reserved, never routed, and dotted like real mail domains.
_DEFAULTS_TOML: Final = """
[smtp]
listen = "127.0.0.1:2525"
hostname = "relay.localhost"

[http]
listen = "127.0.0.1:8025"

[[shop]]
id = "demo"
name = "Demo Shop"
bcc_address = "reviews+demo@relay.localhost"
cancel_address = "cancel+demo@relay.localhost"
from = "Demo Shop <reviews@demo.localhost>"
reply_address = "reply@relay.localhost"
agents = ["agent@demo.localhost"]
agent_senders = ["*@demo.localhost"]
invite_delay = "2m"
send_hours = ""
timezone = "UTC"
embed_origins = ["http://127.0.0.1:8000"]
"""


def defaults() -> Config:
    """The embedded defaults; relative paths (./var/...) resolve against the current directory."""
    return _build(tomllib.loads(_DEFAULTS_TOML), _DEFAULTS_TOML, Path.cwd(), None)


def locate(explicit: str | Path | None) -> Path | None:
    """--config PATH, else $MAILRELAY_CONFIG, else ./relay.toml if it exists, else None."""
    for key, value in (("--config", explicit), (ENV_VAR, os.environ.get(ENV_VAR))):
        if value is None or value == "":
            continue
        path = Path(value).expanduser()
        if not path.is_file():
            reason = "is a directory" if path.is_dir() else "does not exist"
            raise ConfigError([ConfigProblem(key, f"config file {path} {reason}", None, str(path))])
        return path.absolute()
    local = Path(DEFAULT_FILE)
    return local.absolute() if local.is_file() else None


def load(path: Path | None, *, read_secrets: bool = True) -> Config:
    """Read and validate a config file (None → the embedded defaults).

    Raises ConfigError listing every problem, each with its full key (`smtp.listen`,
    `shop.acme.invite_delay`, or `shop[2].id` for the second shop when it has no usable id) and
    its 1-based line in the file.

    `read_secrets=False` (CLI commands that never log in to a mail server): a password given as
    `*_file` or `*_env` is checked for form only and reads as NOT_READ, so `mailrelay
    shipments` works in a shell without the daemon's environment. The database password
    (`[store]`) is read all the same: every command opens the store.
    """
    if path is None:
        return defaults()
    path = Path(path).expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "the file is not UTF-8 text"
        raise ConfigError(
            [ConfigProblem("config", f"cannot read {path}: {reason}", None, str(path))]
        ) from None
    return _build(parse_toml(text, path), text, path.parent, path, read_secrets)
