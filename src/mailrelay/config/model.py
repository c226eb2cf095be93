"""What a loaded configuration is: frozen dataclasses, one per TOML table.

No reading and no validation here; the table readers (`sections`, `shops`) build them.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from datetime import time, timedelta
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path
from zoneinfo import ZoneInfo

from mailrelay.core.relays import LEASE


@dataclass(frozen=True)
class StoreConfig:
    """[store]: the SQLite database at `path` (the default), or PostgreSQL at `url`.

    `url` is a libpq URI without a password (postgresql://user@host[:port][,host2…]/db?…);
    `password` comes from password_file/password_env (None: libpq's ~/.pgpass or PGPASSWORD),
    to be passed beside the URL. `relay_id` names this relay in rows it claims (default: the
    host name), so a restarted relay requeues its own interrupted work; with url, `path` is unused.
    `lease` is how long a claim keeps the other relays off a piece of work.
    """

    path: Path
    url: str | None = None
    password: str | None = field(default=None, repr=False)
    relay_id: str = field(default_factory=socket.gethostname)
    lease: timedelta = LEASE

    @property
    def backend(self) -> str:
        """"postgresql" with a url, else "sqlite"."""
        return "sqlite" if self.url is None else "postgresql"


@dataclass(frozen=True)
class SmtpConfig:
    """[smtp]: the inbound listener for BCC copies and direct replies."""

    host: str
    port: int
    hostname: str
    max_message_size: int
    allowed_clients: tuple[IPv4Network | IPv6Network, ...]
    tls_cert: Path | None
    tls_key: Path | None
    require_auth: bool
    users_file: Path | None
    max_sessions: int = 100
    timeout: timedelta = timedelta(minutes=5)
    #: Issue 10 §6: slow or idle clients must not hold the session cap.
    max_sessions_per_client: int = 50
    session_timeout: timedelta = timedelta(minutes=10)
    junk_command_limit: int = 20
    #: The MTA in front: only mail from these may carry Authentication-Results we believe.
    trusted_clients: tuple[IPv4Network | IPv6Network, ...] = ()

    def trusts(self, peer: str | None) -> bool:
        """Whether `peer` ("ip:port" as stored with a message) is in `trusted_clients`."""
        if not peer or not self.trusted_clients:
            return False
        host = peer.rpartition(":")[0] if ":" in peer else peer
        try:
            addr = ip_address(host.strip("[]").split("%")[0])
        except ValueError:
            return False
        return any(addr in net for net in self.trusted_clients)


@dataclass(frozen=True)
class HttpConfig:
    """[http]: the web listener and the public URL every link we send starts with."""

    host: str
    port: int
    base_url: str  # never ends with "/"
    #: Reverse proxies whose X-Forwarded-For is believed (rate limits, logs); nobody else's.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()


@dataclass(frozen=True)
class OutboundConfig:
    """[outbound]: how we send mail (an SMTP relay, or a Maildir for tests and demos)."""

    transport: str  # "smtp" | "maildir"
    host: str
    port: int
    starttls: bool
    tls: bool  # implicit TLS (port 465 style)
    username: str | None
    password: str | None
    maildir: Path
    rate_per_minute: int
    timeout: timedelta = timedelta(seconds=60)
    #: SMTP connections a relay sends over at once, each storing a mail's result before its
    #: next send (with "maildir": messages in progress at once).
    connections: int = 4


@dataclass(frozen=True)
class ImapConfig:
    """[imap]: the optional mailbox that receives agents' replies."""

    host: str
    port: int
    tls: bool
    starttls: bool
    username: str
    password: str | None
    oauth2_token_command: str | None
    folder: str
    authserv_id: str  # deprecated alias of [security] authserv_id
    processed_folder: str
    rejected_folder: str
    idle_timeout: timedelta = timedelta(minutes=5)
    poll_interval: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class SecurityConfig:
    """[security]: the HMAC key file for links and reply addresses."""

    secret_file: Path
    #: Our border MTA's authserv-id (RFC 8601); "" = do not require authenticated replies.
    authserv_id: str = ""


#: The events a [[shop.webhook]] may ask for (SPEC "Operators"), in the order they happen.
WEBHOOK_EVENTS: tuple[str, ...] = (
    "invitation.sent", "review.created", "review.updated", "response.published", "note.added",
    "review.reported",
)


@dataclass(frozen=True)
class WebhookConfig:
    """One [[shop.webhook]]: where a shop's events are POSTed, which ones, and the key that
    signs them."""

    url: str
    events: tuple[str, ...]
    secret: str
    #: How long one POST may take before it counts as a temporary failure.
    timeout: timedelta = timedelta(seconds=10)


@dataclass(frozen=True)
class ShopConfig:
    """One [[shop]]: its addresses, agents, timing, locale and templates."""

    id: str
    name: str
    bcc_address: str
    cancel_address: str | None
    from_address: str  # TOML key "from"; may carry a display name: "ACME <reviews@acme.example>"
    reply_address: str
    agents: tuple[str, ...]
    agent_senders: tuple[str, ...]  # addresses or glob patterns ("*@acme.example")
    trigger_senders: tuple[str, ...]  # empty = anyone may trigger
    invite_delay: timedelta
    reminder_after: timedelta | None
    dedupe_window: timedelta
    # Local times of `timezone`, start < end; an end of "24:00" is time.max. None = any time.
    send_hours: tuple[time, time] | None
    timezone: ZoneInfo
    locale: str
    templates_dir: Path | None
    auto_reply_min_stars: int  # 0 = off
    order_reference_pattern: re.Pattern[str] | None  # first group (if any) is the reference
    retention: timedelta
    #: Who gets the operator's alerts (new trigger sender, outages, reports); () = none.
    alerts: tuple[str, ...] = ()
    #: Where this shop's review events are POSTed ([[shop.webhook]]); () = nowhere.
    webhooks: tuple[WebhookConfig, ...] = ()
    #: Origins ("https://acme.example") that may frame the widgets and read the JSON routes.
    embed_origins: tuple[str, ...] = ()
    #: The shop's own site, linked from every page and mail; None = no link back.
    site_url: str | None = None
    #: An https:// image shown on pages and in mail; None = the shop's name only.
    logo_url: str | None = None
    #: "#rrggbb" as the shop chose it; pages and mail adjust it for WCAG AA contrast.
    accent_color: str = "#1d4ed8"
    #: Local time (in `timezone`) of the agents' daily digest; None = no digest.
    digest: time | None = None

    def webhooks_for(self, event: str) -> tuple[WebhookConfig, ...]:
        """The webhooks that asked for `event`."""
        return tuple(hook for hook in self.webhooks if event in hook.events)

    @property
    def reply_domain(self) -> str:
        """The domain of `reply_address`, where reply+<key>@ and bounce+<id>@ arrive."""
        return self.reply_address.rpartition("@")[2]


@dataclass(frozen=True)
class DraftsConfig:
    """[drafts]: a shop's own generator of suggested answers (issue 14); none = templates."""

    command: tuple[str, ...] = ()  # argv, shlex-split; () = the built-in templates only
    timeout: timedelta = timedelta(seconds=10)


@dataclass(frozen=True)
class Config:
    """The whole configuration; `source` is the file it came from (None = embedded defaults)."""

    store: StoreConfig
    smtp: SmtpConfig
    http: HttpConfig
    outbound: OutboundConfig
    imap: ImapConfig | None
    security: SecurityConfig
    shops: tuple[ShopConfig, ...]
    source: Path | None
    #: Deprecations and other things `check` and `serve` report without refusing to start.
    warnings: tuple[str, ...] = ()
    drafts: DraftsConfig = DraftsConfig()

    def shop(self, shop_id: str) -> ShopConfig | None:
        """The shop with this id, or None."""
        for shop in self.shops:
            if shop.id == shop_id:
                return shop
        return None
