"""Signed, URL-safe tokens for review links, unsubscribe links and reply addresses.

A token is 128 random bits plus an HMAC-SHA256 tag (truncated to 128 bits) over purpose and
randomness, so a forged or altered token is refused before any database look-up.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from mailrelay.core.files import make_private_dir

log = logging.getLogger("mailrelay.tokens")  # the name operators filter on

NONCE_BYTES = 16
TAG_BYTES = 16
REVIEW = "review"
UNSUBSCRIBE = "unsubscribe"
REPLY = "reply"
CSRF = "csrf"
BOUNCE = "bounce"
#: Reply keys live in an address's local part, which some mail systems lowercase: base32.
KEY_TAG_BYTES = 10


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def load_secret(path: Path) -> bytes:
    """Read the HMAC key, creating it (mode 0600) on first start so links survive restarts."""
    if not path.exists():
        make_private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        log.info("created secret key %s", path)
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path}: secret key is too short (want at least 32 characters)")
    return key.encode()


class TokenSigner:
    """Issues and verifies tokens for one secret key."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _tag(self, purpose: str, nonce: bytes) -> bytes:
        mac = hmac.new(self._secret, purpose.encode() + b"\0" + nonce, hashlib.sha256)
        return mac.digest()[:TAG_BYTES]

    def issue(self, purpose: str) -> str:
        """A fresh token for `purpose`."""
        return self.sign(purpose, secrets.token_bytes(NONCE_BYTES))

    def sign(self, purpose: str, nonce: bytes) -> str:
        return _b64(nonce + self._tag(purpose, nonce))

    def nonce(self, token: str, purpose: str) -> bytes | None:
        """The token's random part when its tag is valid for `purpose`, else None."""
        if not token or len(token) > 64:
            return None
        data = _unb64(token)
        if data is None or len(data) != NONCE_BYTES + TAG_BYTES:
            return None
        nonce, tag = data[:NONCE_BYTES], data[NONCE_BYTES:]
        if not hmac.compare_digest(tag, self._tag(purpose, nonce)):
            return None
        return nonce

    def verify(self, token: str, purpose: str) -> bool:
        return self.nonce(token, purpose) is not None

    def issue_key(self, purpose: str = REPLY) -> str:
        """A case-insensitive key for an address local part (reply+<key>@…): 42 characters."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        tag = self._tag(purpose, nonce)[:KEY_TAG_BYTES]
        return base64.b32encode(nonce + tag).decode("ascii").rstrip("=").lower()

    def key_valid(self, key: str, purpose: str = REPLY) -> bool:
        if not key or len(key) > 64:
            return False
        try:
            data = base64.b32decode(key.upper() + "=" * (-len(key) % 8))
        except (binascii.Error, ValueError):
            return False
        if len(data) != NONCE_BYTES + KEY_TAG_BYTES:
            return False
        nonce, tag = data[:NONCE_BYTES], data[NONCE_BYTES:]
        return hmac.compare_digest(tag, self._tag(purpose, nonce)[:KEY_TAG_BYTES])

    def bounce_tag(self, outbox_id: int) -> str:
        """The signature in a VERP address (`bounce+<id>.<tag>@`, issue 10): without it anyone
        who knows a customer's address could suppress them with a DSN to a guessed id. Base32
        lowercase like reply keys, since local parts may be lowercased on the way; 16 chars."""
        mac = hmac.new(self._secret, f"{BOUNCE}\0{outbox_id}".encode(), hashlib.sha256)
        return base64.b32encode(mac.digest()[:KEY_TAG_BYTES]).decode("ascii").lower()

    def bounce_valid(self, outbox_id: int, tag: str) -> bool:
        tag = tag.lower()
        return tag.isascii() and hmac.compare_digest(tag, self.bounce_tag(outbox_id))

    def form_token(self, subject: str, issued: int) -> str:
        """A CSRF token bound to `subject` (the review token) and its issue time (epoch s)."""
        mac = hmac.new(self._secret, f"{CSRF}\0{subject}\0{issued}".encode(), hashlib.sha256)
        return f"{issued}.{_b64(mac.digest()[:TAG_BYTES])}"

    def form_token_valid(self, token: str, subject: str, now: int, max_age: int) -> bool:
        if not token.isascii():
            return False
        issued_text, _, _tag = token.partition(".")
        if not issued_text.isdigit():
            return False
        issued = int(issued_text)
        if not 0 <= now - issued <= max_age:
            return False
        return hmac.compare_digest(token, self.form_token(subject, issued))

    def convert(self, token: str, from_purpose: str, to_purpose: str) -> str | None:
        """The sibling token with the same randomness for another purpose (review ↔ unsubscribe)."""
        nonce = self.nonce(token, from_purpose)
        return None if nonce is None else self.sign(to_purpose, nonce)
