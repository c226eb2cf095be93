"""Read relay.toml (or the embedded defaults) into frozen dataclasses.

Pure: reads the config file, `*_file` secrets and the environment only; every problem found is
reported at once, naming the key and the file line. Never opens sockets or creates files.
"""

from mailrelay.config.loader import defaults, load, locate
from mailrelay.config.model import (
    Config,
    HttpConfig,
    ImapConfig,
    OutboundConfig,
    SecurityConfig,
    ShopConfig,
    SmtpConfig,
    StoreConfig,
)
from mailrelay.config.tables import NOT_READ
from mailrelay.config.values import MAX_INVITE_DELAY, duration_text, parse_duration, parse_size

__all__ = [
    "NOT_READ",
    "Config",
    "HttpConfig",
    "ImapConfig",
    "MAX_INVITE_DELAY",
    "OutboundConfig",
    "SecurityConfig",
    "ShopConfig",
    "SmtpConfig",
    "StoreConfig",
    "defaults",
    "duration_text",
    "load",
    "locate",
    "parse_duration",
    "parse_size",
]
