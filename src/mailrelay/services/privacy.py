"""Erasure, with its audit trail: the retention purge (daemon and CLI) and `forget`, which finds
every stored form of one person and leaves none on disk.

The SQL is in store/privacy.py (`Queries.purge_before`, `Queries.forget`); what counts as naming
the person, the order of the steps and the files outside the database (the Maildir outbox) are
decided here.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import functools
import html
import logging
import quopri
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from pathlib import Path
from urllib.parse import unquote_to_bytes

from mailrelay.config import ShopConfig
from mailrelay.store import (
    Erasure,
    QueryInterface,
    StoreBackend,
    address_hash,
    address_pattern_bytes,
)

log = logging.getLogger("mailrelay.privacy")  # the name operators filter on

#: Raw messages decoded per read while searching the store (about 1 MB of mail).
SCAN_BATCH = 200
#: Attachments that are mail again (an .eml forwarded as a file) are opened this deep.
_MAX_DEPTH = 4
_AROUND_PUNCTUATION = re.compile(rb"\s+(?=[@.])|(?<=[@.])\s+")
#: Signs that text in a message is encoded: a transfer encoding, an encoded-word, an HTML
#: part (entities, tags), a percent-escaped '@', a soft line break or a =XX escape.
_ENCODED = re.compile(
    rb"(?i)base64|quoted-printable|=\?|text/html|%40|=\r?\n|=[0-9a-f]{2}")
_TAG = re.compile(r"<[^>]*>")
_HEADER_LINE = re.compile(rb"\A[A-Za-z0-9-]{1,76}:")


@dataclass(frozen=True)
class ForgetReport:
    """What `forget` did, for the operator: rows per table, files deleted, WAL truncated."""

    counts: dict[str, int]
    files_deleted: int
    wal_truncated: bool


async def purge_expired(store: StoreBackend, shops: Iterable[ShopConfig], now: datetime) -> int:
    """Erase personal data past each shop's `retention` (the daemon's daily job); one write and
    one audit entry per shop that had something to erase."""
    total = 0
    for shop in shops:
        total += await store.write(functools.partial(_purge_shop, shop.id, now - shop.retention,
                                                     now))
    if total:
        log.info("retention purge erased personal data of %d record(s)", total)
    return total


def _purge_shop(shop_id: str, cutoff: datetime, now: datetime, q: QueryInterface) -> int:
    erased = q.purge_before(shop_id, cutoff)
    if erased:
        q.audit("retention", {"shop": shop_id, "cutoff": cutoff.isoformat(), "records": erased},
                now)
    return erased


def purge_older_than(store: StoreBackend, shops: Iterable[ShopConfig], older_than: str,
                     cutoff: datetime, now: datetime, *, actor: str = "cli") -> int:
    """`purge --older-than`: one cutoff for every shop in one write, audited even when nothing
    was erased (the operator asked)."""

    def run(q: QueryInterface) -> int:
        total = sum(q.purge_before(shop.id, cutoff) for shop in shops)
        q.audit("purge", {"older_than": older_than, "cutoff": cutoff.isoformat(),
                          "records": total}, now, actor=actor)
        return total

    return store.write_sync(run)


def _joined(data: bytes) -> bytes:
    """White space around '@' and '.' taken out: an address folded or wrapped there (RFC 5322
    obsolete syntax allows it, some clients wrap there) reads as one word again."""
    return _AROUND_PUNCTUATION.sub(b"", data)


def _header_texts(msg: Message) -> Iterator[str]:
    for name, value in msg.items():
        raw = str(value)
        yield f"{name}: {raw}"
        try:  # RFC 2047 encoded-words, B and Q, possibly split over several words
            yield str(email.header.make_header(email.header.decode_header(raw)))
        except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
            continue


def _body_texts(part: Message, depth: int) -> Iterator[bytes]:
    payload = part.get_payload(decode=True)  # undoes quoted-printable and base64
    if not isinstance(payload, bytes):
        return
    yield payload
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, "replace")
    except LookupError:
        text = payload.decode("latin-1")
    if part.get_content_subtype() == "html" or "<" in text:
        # `bob&#64;example.com`, `bob@<wbr>example.com`: entities and tags split nothing.
        yield html.unescape(_TAG.sub("", text)).encode("utf-8", "replace")
    yield text.encode("utf-8", "replace")
    if (depth < _MAX_DEPTH and part.get_content_maintype() == "application"
            and _HEADER_LINE.match(payload)):
        yield from _message_texts(payload, depth + 1)  # an attached message, as bytes


def _message_texts(raw: bytes, depth: int = 0) -> Iterator[bytes]:
    """Every form of the text in `raw` that could hold an address: the bytes as stored, the
    whole of them read as quoted-printable (a part whose header lies about its encoding),
    each header decoded, each part decoded, HTML without its tags and entities."""
    yield raw
    yield quopri.decodestring(raw)
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    for part in msg.walk():
        for text in _header_texts(part):
            yield text.encode("utf-8", "replace")
        if not part.is_multipart():
            yield from _body_texts(part, depth)


def names(raw: bytes, address: str) -> bool:
    """Whether a stored message names `address` in any case, encoding or line split.

    Decoded with the email package, every header and every part (issue 10 §5): a byte search
    misses an address that quoted-printable split at a soft line break, wrote with =40 for
    '@', or that sits in a base64 part or an encoded-word. A longer address that merely
    contains this one (`joann@…` for `ann@…`) does not count.
    """
    needle = address.strip().lower().encode("utf-8")
    if not needle:
        return False
    pattern = address_pattern_bytes(address)
    # The longest run without '@' or '.': present in any text that names the address, even
    # one wrapped at those; a cheap test before the regular expressions.
    word = max(re.split(rb"[@.]", needle), key=len)

    def found(form: bytes) -> bool:
        low = form.lower()
        if word not in low:
            return False
        if needle in low and pattern.search(form):
            return True
        joined = _joined(low)
        if needle in joined and pattern.search(joined):
            return True
        return b"%40" in low and bool(pattern.search(unquote_to_bytes(low)))  # a link's query

    if not _ENCODED.search(raw):
        # Nothing encoded or escaped (7bit and 8bit mail): the bytes are the text, and the
        # email package would only read the same again.
        return found(raw)
    return any(found(form) for form in _message_texts(raw))


def _scan(store: StoreBackend, table: str, address: str) -> tuple[list[int], int]:
    """Ids of the stored mail in `table` naming `address`, and the last id looked at.

    Read in snapshots of SCAN_BATCH rows, outside the writer: a running daemon keeps taking
    mail while a large store is searched; what arrives meanwhile is searched in the write.
    """
    found: list[int] = []
    last = 0
    while True:
        rows = store.read(functools.partial(_batch, table, last))
        if not rows:
            return found, last
        found.extend(row_id for row_id, raw in rows if names(raw, address))
        last = rows[-1][0]


def _batch(table: str, after: int, q: QueryInterface) -> list[tuple[int, bytes]]:
    return q.stored_mail(table, after, SCAN_BATCH)


def _catch_up(q: QueryInterface, table: str, after: int, address: str) -> list[int]:
    found: list[int] = []
    while rows := q.stored_mail(table, after, SCAN_BATCH):
        found.extend(row_id for row_id, raw in rows if names(raw, address))
        after = rows[-1][0]
    return found


def forget(store: StoreBackend, address: str, now: datetime, *, maildir: Path | None,
           actor: str = "cli") -> ForgetReport:
    """Erase `address` (already normalised) from the store and the Maildir outbox, then
    checkpoint and truncate the WAL so no old page image keeps it (SPEC § Trust)."""
    messages, last_message = _scan(store, "message_bodies", address)
    outgoing, last_outgoing = _scan(store, "outbox", address)

    def erase(q: QueryInterface) -> Erasure:
        erasure = q.forget(
            address, now,
            messages=messages + _catch_up(q, "message_bodies", last_message, address),
            outbox=outgoing + _catch_up(q, "outbox", last_outgoing, address))
        q.audit("forget", {"address": address_hash(address), **erasure.counts}, now,
                actor=actor)
        return erasure

    erasure = store.write_sync(erase)
    files = scrub_maildir(maildir, address, erasure.message_ids) if maildir else 0
    truncated = store.finalize_erasure()
    if not truncated:
        log.warning("forget: the WAL could not be truncated while other connections read;"
                    " it is overwritten by later writes, or truncated at the next forget")
    return ForgetReport(erasure.counts, files, truncated)


def scrub_maildir(maildir: Path, address: str, message_ids: frozenset[str]) -> int:
    """Delete the delivered copies naming the person from a Maildir outbox; returns how many.

    Deleted, not edited: each file is a copy of mail already handed on (or a demo's record
    of it), and a message with the person cut out would be a record of mail never sent.
    """
    deleted = 0
    for folder in ("new", "cur", "tmp"):
        directory = maildir / folder
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            try:
                raw = path.read_bytes()
            except (IsADirectoryError, FileNotFoundError):
                continue
            mid = email.message_from_bytes(raw, policy=email.policy.compat32)["Message-ID"]
            if (mid is not None and str(mid).strip() in message_ids) or names(raw, address):
                path.unlink(missing_ok=True)
                deleted += 1
    return deleted
