"""Header policy of every message we send: values made safe, ASCII folded only at spaces,
Message-IDs, recipient addresses and URLs checked. Builds no message and reads no template.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import parseaddr
from typing import Any, ClassVar, Final, Literal
from urllib.parse import urlsplit

from mailrelay.config import Config, ShopConfig
from mailrelay.core.mailauth import aligned

__all__ = [
    "MESSAGE_ID",
    "POLICY",
    "aware",
    "checked_address",
    "checked_message_id",
    "checked_url",
    "clean_header",
    "control_replacement",
    "new_message_id",
    "optional_url",
    "reply_to_for",
    "sender_for",
    "set_extra_headers",
    "shop_name",
    "shop_sender",
]

_HEADER_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,75}")
_DOMAIN: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
MESSAGE_ID: Final = re.compile(r"<[^<>@\s]{1,200}@[^<>@\s]{1,253}>")
_SPACES: Final = re.compile(r"\s+")

# Headers an extra_headers entry may not set: they define who gets the message, its identity
# and its MIME structure, which RenderedMail and the outbox rely on.
_RESERVED: Final = frozenset(
    {"from", "to", "cc", "bcc", "sender", "date", "subject", "message-id"}
    | {"mime-version", "content-type", "content-transfer-encoding"}
)


# --------------------------------------------------------------------------- header values


def control_replacement(char: str) -> str | None:
    """What a character becomes in a header: None = keep, "" = drop, " " = a space."""
    if char in "\t\n\r\v\f\x1c\x1d\x1e\x1f\x85\u2028\u2029":
        return " "  # line-breaking or spacing controls: the boundary between words stays
    category = unicodedata.category(char)
    if category in ("Cc", "Cs", "Zl", "Zp"):
        return ""  # NUL and other controls; lone surrogates cannot even be encoded
    if char in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
        return ""  # bidi overrides: used to disguise names and subjects (CVE-2021-42574 style)
    return None


def clean_header(value: str | None, limit: int = 200) -> str:
    """A value from input made safe for a header: no CR, LF, NUL or other control characters,
    whitespace collapsed, at most `limit` characters, and no RFC 2047 encoded-word opener.

    Python before 3.11.10 does not refuse CR/LF in header values (CVE-2024-6923); worse, the
    email package decodes "=?utf-8?q?=0D=0ABcc:...?=" inside a value we set and writes the
    decoded CR LF out raw. So "=?" is split into "= ?": no person's name or subject needs it.
    """
    if not value:
        return ""
    out: list[str] = []
    for char in str(value):
        replacement = control_replacement(char)
        out.append(char if replacement is None else replacement)
    text = _SPACES.sub(" ", "".join(out)).strip()
    text = text.replace("=?", "= ?")
    return text[: max(limit, 0)].rstrip()


def new_message_id(domain: str) -> str:
    """A fresh, globally unique Message-ID in the relay's domain: "<hex@domain>"."""
    domain = domain.strip().strip(".")
    if _DOMAIN.fullmatch(domain) is None or ".." in domain:
        raise ValueError(f"cannot make a Message-ID in domain {domain!r}")
    return f"<{uuid.uuid4().hex}@{domain}>"


def checked_message_id(config: Config, message_id: str | None) -> str:
    """The given Message-ID when it has the form "<left@right>", else a new one (None)."""
    if message_id is None:
        return new_message_id(config.smtp.hostname)
    if MESSAGE_ID.fullmatch(message_id) is None:
        raise ValueError(f"invalid Message-ID {message_id!r}")
    return message_id


def checked_url(value: str, what: str) -> str:
    """An http(s) URL fit for a header and a link, else ValueError naming `what`."""
    url = clean_header(value, limit=2000)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in url for c in ' <>"'):
        raise ValueError(f"{what} is not an http(s) URL: {value!r}")
    return url


def optional_url(value: str | None, what: str) -> str | None:
    return checked_url(value, what) if value else None


def checked_address(value: str) -> str:
    """The recipient as sent: an internationalized domain in its ASCII (IDNA) form.

    A non-ASCII local part would need SMTPUTF8 end to end and is refused (ValueError).
    """
    address = value.strip()
    local, at, domain = address.rpartition("@")
    if (
        not at
        or not local
        or not domain
        or clean_header(address, limit=254) != address
        or any(char in address for char in ' <>,;()[]\\"')
    ):
        raise ValueError("not a usable recipient address")
    if not local.isascii():
        raise ValueError("recipient address needs SMTPUTF8, which is not supported")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError("not a usable recipient address") from None
    return f"{local}@{domain}"


def shop_name(shop: ShopConfig) -> str:
    """The shop's name as the mail shows it; its id when the name cleans to nothing."""
    return clean_header(shop.name) or shop.id


def shop_sender(shop: ShopConfig) -> str:
    """The shop's From (and Reply-To) of invitations, tickets and responses."""
    return clean_header(shop.from_address, limit=500)


def sender_for(shop: ShopConfig, display_name: str | None) -> str | Address:
    """The shop's From with a trigger block's `senderName` as its display name (SPEC, issue 9);
    the shop's own From when the name cleans to nothing or shows an address ("@": a name
    that reads as someone else's address is a phishing shape, and the block can come from
    anyone who knows the trigger address)."""
    name = clean_header(display_name, limit=100)
    address = parseaddr(shop.from_address)[1]
    if not name or "@" in name:
        return shop_sender(shop)
    try:
        return Address(display_name=name, addr_spec=checked_address(address))
    except ValueError:  # a From the shop wrote in a form we do not take apart: left as it is
        return shop_sender(shop)


def reply_to_for(shop: ShopConfig, reply_to: str | None) -> str:
    """A trigger block's `replyTo` when it is one plain, sendable address the shop vouches for;
    else the shop's From (a list, a display name, an encoded word or a line break never
    reaches the header).

    Anyone who learns a shop's BCC address can send a block, so a `replyTo` outside the shop's
    own organizational domain would let them collect its customers' replies: it is honoured
    only when the shop restricts `trigger_senders`, or when it shares the domain of `from`."""
    if reply_to:
        try:
            address = checked_address(reply_to)
        except ValueError:
            return shop_sender(shop)
        shop_domain = parseaddr(shop.from_address)[1].rpartition("@")[2]
        if aligned(address.rpartition("@")[2], shop_domain) or shop.trigger_senders:
            return address
    return shop_sender(shop)


def aware(now: datetime) -> datetime:
    """The Clock gives UTC; a naive time is taken as UTC (else Date would print -0000)."""
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def set_extra_headers(msg: EmailMessage, extra_headers: Mapping[str, str]) -> None:
    """Replace or add the caller's own headers; ValueError for a malformed or reserved name."""
    for key, value in extra_headers.items():
        if _HEADER_NAME.fullmatch(key) is None or key.lower() in _RESERVED:
            raise ValueError(f"extra header {key!r} is not allowed")
        del msg[key]
        msg[key] = clean_header(value, limit=900)


# --------------------------------------------------------------------------- folding policy


class _PlainHeader(UnstructuredHeader, BaseHeader):
    """An unstructured header written as given: never RFC 2047-decoded, and when it is ASCII,
    folded only at spaces and never turned into encoded words.

    The stock folder of Python 3.11 encodes any word too long for a 78-character line, so a
    long List-Unsubscribe URL or an Outlook Message-ID would come out as "=?utf-8?q?=3Chttps..."
    and no receiver could use it. Non-ASCII values (subjects, shop names) are encoded as usual.
    """

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        super().parse(value, kwds)
        kwds["decoded"] = str(value)  # what we set is what is sent: no encoded-word decoding

    def fold(self, *, policy: Policy) -> str:
        value = str(self)
        if not value.isascii():
            return BaseHeader.fold(self, policy=policy)
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise ValueError(f"control character in the {self.name} header")  # never expected
        width = policy.max_line_length or 998
        lines = [f"{self.name}:"]
        for word in value.split(" "):
            if not word:
                continue
            if len(lines[-1]) + 1 + len(word) > width and lines[-1].strip() != f"{self.name}:":
                lines.append("")
            lines[-1] += " " + word
        linesep = str(policy.linesep)
        return linesep.join(lines) + linesep


class _UniquePlainHeader(_PlainHeader):
    max_count: ClassVar[Literal[1] | None] = 1


def _make_policy() -> Policy:
    registry = HeaderRegistry(base_class=BaseHeader, default_class=_PlainHeader)
    registry.map_to_type("subject", _UniquePlainHeader)
    registry.map_to_type("message-id", _UniquePlainHeader)
    return SMTP.clone(header_factory=registry)


# SMTP = the default policy with CRLF line endings. Address, Date and MIME headers keep their
# standard classes; every other header is a _PlainHeader.
POLICY: Final = _make_policy()
