"""Read relay.toml (or the embedded defaults) into frozen dataclasses.

Pure: reads the config file, `*_file` secrets and the environment only; every problem found is
reported at once, naming the key and the file line. Never opens sockets or creates files.
"""

from mailrelay.config.listeners import ListenAddress, bind_failure, explain_startup_error, listeners
from mailrelay.config.loader import defaults, load, locate
from mailrelay.config.model import (
    WEBHOOK_EVENTS,
    Config,
    DraftsConfig,
    HttpConfig,
    ImapConfig,
    OutboundConfig,
    SecurityConfig,
    ShopConfig,
    SmtpConfig,
    StoreConfig,
    WebhookConfig,
)
from mailrelay.config.tables import NOT_READ
from mailrelay.config.values import MAX_INVITE_DELAY, duration_text, parse_duration, parse_size

__all__ = [
    "NOT_READ",
    "Config",
    "DraftsConfig",
    "HttpConfig",
    "ImapConfig",
    "ListenAddress",
    "MAX_INVITE_DELAY",
    "OutboundConfig",
    "SecurityConfig",
    "ShopConfig",
    "WEBHOOK_EVENTS",
    "WebhookConfig",
    "SmtpConfig",
    "StoreConfig",
    "bind_failure",
    "defaults",
    "duration_text",
    "explain_startup_error",
    "listeners",
    "load",
    "locate",
    "parse_duration",
    "parse_size",
]
