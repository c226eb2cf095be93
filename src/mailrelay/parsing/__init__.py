"""Inbound mail read into values: triggers (trigger, with fast_mime's fast path), order references,
agents' replies and DSNs. Pure: bytes in, values out; no I/O, never raises on malformed mail.

The parser child (services/parser_process) imports this package and nothing else of ours, so what
it imports at load time stays cheap: html_text (bs4) is imported by the first HTML-only trigger.
"""

from .addresses import normalize_address
from .dsn import parse_dsn
from .references import find_reference
from .reply import parse_reply
from .trigger import parse_batch, parse_trigger

__all__ = [
    "find_reference",
    "normalize_address",
    "parse_batch",
    "parse_dsn",
    "parse_reply",
    "parse_trigger",
]
