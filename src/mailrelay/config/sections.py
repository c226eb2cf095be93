"""The service tables: [smtp], [http], [outbound], [imap], [security] and [drafts], each
checked key by key into its dataclass.
"""

from __future__ import annotations

import shlex
import shutil
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

from mailrelay.config.model import (
    DraftsConfig,
    HttpConfig,
    ImapConfig,
    OutboundConfig,
    SecurityConfig,
    SmtpConfig,
)
from mailrelay.config.tables import Table
from mailrelay.config.values import DOMAIN, parse_listen


def _read_listen(table: Table, default: str) -> tuple[str, int]:
    value = table.string("listen", default)
    try:
        return parse_listen(value)
    except ValueError as error:
        table.problem("listen", str(error))
        return parse_listen(default)


def read_smtp(table: Table) -> SmtpConfig:
    host, port = _read_listen(table, "127.0.0.1:2525")
    # Default under .localhost (RFC 6761): dotted, so reply+/bounce+ addresses built from it
    # are valid mail addresses, and never routed off this host.
    hostname = table.string("hostname", "relay.localhost")
    if DOMAIN.fullmatch(hostname) is None:
        table.problem("hostname", f"{hostname!r} is not a valid host name")
        hostname = "relay.localhost"
    clients = _networks(table, "allowed_clients")
    trusted = _networks(table, "trusted_clients")
    tls_cert = table.optional_path("tls_cert")
    tls_key = table.optional_path("tls_key")
    if (tls_cert is None) != (tls_key is None):
        missing = "tls_key" if tls_key is None else "tls_cert"
        table.problem(missing, "tls_cert and tls_key must be given together")
    require_auth = table.boolean("require_auth", False)
    users_file = table.optional_path("users_file")
    if require_auth and users_file is None:
        table.problem("users_file", "is required when require_auth = true")
    max_sessions = table.integer("max_sessions", 100, minimum=1)
    return SmtpConfig(
        host=host,
        port=port,
        hostname=hostname,
        max_message_size=table.size("max_message_size", "25MB"),
        allowed_clients=clients,
        tls_cert=tls_cert,
        tls_key=tls_key,
        require_auth=require_auth,
        users_file=users_file,
        max_sessions=max_sessions,
        timeout=table.duration("timeout", "5m", positive=True, maximum=timedelta(hours=1)),
        trusted_clients=trusted,
        # Default half of max_sessions (50 of 100, as Postfix): a fixed 50 let one client
        # take all of a smaller cap, e.g. 5, until session_timeout (issue 10 §6).
        max_sessions_per_client=table.integer("max_sessions_per_client",
                                              max(1, max_sessions // 2), minimum=1),
        session_timeout=table.duration("session_timeout", "10m", positive=True),
        junk_command_limit=table.integer("junk_command_limit", 20, minimum=1),
    )


def _networks(table: Table, key: str) -> tuple[IPv4Network | IPv6Network, ...]:
    networks: list[IPv4Network | IPv6Network] = []
    for entry in table.strings(key, ()):
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            table.problem(key, f"{entry!r} is not an IP address or CIDR network")
    return tuple(networks)


def read_http(table: Table) -> HttpConfig:
    host, port = _read_listen(table, "127.0.0.1:8025")
    shown = f"[{host}]" if ":" in host else host
    derived = f"http://{shown}:{port}"
    base_url = table.string("base_url", derived).rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "://" not in base_url:
        table.problem("base_url", f"{base_url!r} must start with http:// or https:// and a host")
        base_url = derived
    elif parts.query or parts.fragment:
        table.problem("base_url", "must not have a query or fragment")
        base_url = derived
    proxies: list[IPv4Network | IPv6Network] = []
    for entry in table.strings("trusted_proxies", ()):
        try:
            proxies.append(ip_network(entry, strict=False))
        except ValueError:
            table.problem("trusted_proxies", f"{entry!r} is not an IP address or CIDR network")
    return HttpConfig(host=host, port=port, base_url=base_url, trusted_proxies=tuple(proxies))


#: [outbound] connections: a relay's SMTP connections at once are bounded well below what
#: receivers allow one client (Postfix: smtpd_client_connection_count_limit = 50).
MAX_CONNECTIONS = 32


def read_outbound(table: Table, present: bool) -> OutboundConfig:
    host = table.string("host", "")
    default_transport = "smtp" if present and host else "maildir"
    transport = table.string("transport", default_transport)
    if transport not in ("smtp", "maildir"):
        table.problem("transport", f'must be "smtp" or "maildir", not {transport!r}')
        transport = default_transport
    if transport == "smtp" and not host:
        table.problem("host", 'is required when transport = "smtp"')
    if host and DOMAIN.fullmatch(host) is None and not _is_ip(host):
        table.problem("host", f"{host!r} is not a valid host name")
    tls = table.boolean("tls", False)
    starttls = table.boolean("starttls", not tls)
    if tls and starttls:
        table.problem("starttls", "tls (implicit TLS) and starttls exclude each other")
    username = table.optional_string("username")
    before = len(table.problems.items)
    password = table.secret("password")
    if (username is None) != (password is None) and len(table.problems.items) == before:
        if username is None:
            table.problem("username", "is required when a password is given")
        else:
            table.problem("password", "is required when username is given")
    return OutboundConfig(
        transport=transport,
        host=host or "localhost",
        port=table.port("port", 465 if tls else 587),
        starttls=starttls,
        tls=tls,
        username=username,
        password=password,
        maildir=table.path("maildir", "var/outbox"),
        rate_per_minute=table.integer("rate_per_minute", 600, minimum=1),
        timeout=table.duration("timeout", "60s", positive=True, maximum=timedelta(hours=1)),
        connections=table.integer("connections", OutboundConfig.connections, minimum=1,
                                  maximum=MAX_CONNECTIONS),
    )


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def read_imap(table: Table) -> ImapConfig:
    host = table.required_string("host") or ""
    if host and DOMAIN.fullmatch(host) is None and not _is_ip(host):
        table.problem("host", f"{host!r} is not a valid host name")
    username = table.required_string("username") or ""
    tls = table.boolean("tls", True)
    starttls = table.boolean("starttls", False)
    if tls and starttls:
        table.problem("starttls", "tls (implicit TLS) and starttls exclude each other")
    password = table.secret("password")
    command = table.optional_string("oauth2_token_command")
    forms = [k for k in ("password", "password_file", "password_env") if table.has(k)]
    if forms and table.has("oauth2_token_command"):
        table.problem("oauth2_token_command", f"give either {forms[0]} or oauth2_token_command")
    elif not forms and command is None:
        table.problem(
            "password", "give password, password_file, password_env or oauth2_token_command"
        )
    idle_timeout = table.duration("idle_timeout", "5m", positive=True)
    if idle_timeout >= timedelta(minutes=29):
        # RFC 2177: servers may drop an IDLE after 30 minutes; it must be re-issued before.
        table.problem("idle_timeout", "must be shorter than 29m (RFC 2177)")
    folders = {
        key: table.string(key, default)
        for key, default in (
            ("folder", "INBOX"),
            ("processed_folder", "mailrelay/processed"),
            ("rejected_folder", "mailrelay/rejected"),
        )
    }
    for key, value in folders.items():
        if not value.strip():
            table.problem(key, "must not be empty")
    return ImapConfig(
        host=host,
        port=table.port("port", 993 if tls else 143),
        tls=tls,
        starttls=starttls,
        username=username,
        password=password,
        oauth2_token_command=command,
        folder=folders["folder"],
        authserv_id=table.string("authserv_id", ""),
        processed_folder=folders["processed_folder"],
        rejected_folder=folders["rejected_folder"],
        idle_timeout=idle_timeout,
        poll_interval=table.duration("poll_interval", "60s", positive=True,
                                     maximum=timedelta(days=1)),
    )


def read_security(table: Table) -> SecurityConfig:
    authserv_id = table.string("authserv_id", "").strip()
    if any(c.isspace() or c == ";" for c in authserv_id):
        table.problem("authserv_id", f"{authserv_id!r} must be one word, such as the host name "
                      "your MTA writes first in its Authentication-Results headers")
    return SecurityConfig(secret_file=table.path("secret_file", "var/secret.key"),
                          authserv_id=authserv_id)


def read_drafts(table: Table) -> DraftsConfig:
    """[drafts]: `command` (run without a shell, shlex-split) and its `timeout`."""
    text = table.string("command", "").strip()
    try:
        command = tuple(shlex.split(text))
    except ValueError as error:
        table.problem("command", f"cannot be split into words: {error}")
        command = ()
    if command and "\n" in text:
        table.problem("command", "must be a single line")
    elif command and shutil.which(command[0]) is None:
        table.problem("command", f"{command[0]!r} is no executable program (give its full "
                      "path, or a name found on PATH)")
    return DraftsConfig(command=command,
                        timeout=table.duration("timeout", "10s", positive=True,
                                               maximum=timedelta(minutes=5)))
