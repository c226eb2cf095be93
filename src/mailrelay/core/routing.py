"""The recipient address forms mailrelay owns, built and read back in one place.

A shop's BCC and cancel addresses, `reply+<key>@<reply domain>` (tickets' Reply-To) and
`bounce+<outbox id>.<tag>@<reply domain>` (the signed VERP envelope sender). Pure: no config,
no I/O.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from mailrelay.core.models import MessageKind

_REPLY_LOCAL = re.compile(r"^reply\+([a-z0-9]{20,64})$")
_BOUNCE_LOCAL = re.compile(r"^bounce\+([0-9]{1,18})\.([a-z2-7]{16})$")
#: As stored in the outbox: the tag is added when the message is sent (`signed_sender`).
_UNSIGNED_BOUNCE_LOCAL = re.compile(r"^bounce\+([0-9]{1,18})$")


@dataclass(frozen=True)
class Route:
    """Where an accepted recipient address leads."""

    shop: str
    kind: MessageKind
    address: str


class ShopAddresses(Protocol):
    """What routing needs of a shop (`config.ShopConfig` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def bcc_address(self) -> str: ...
    @property
    def cancel_address(self) -> str | None: ...
    @property
    def reply_domain(self) -> str: ...


def bare_address(address: str) -> str:
    """An RCPT or envelope address without white space and angle brackets."""
    return address.strip().strip("<>")


def reply_address(key: str, reply_domain: str) -> str:
    """The `reply+<key>@<reply domain>` a ticket's Reply-To names."""
    return f"reply+{key}@{reply_domain}"


def reply_key_of(local: str) -> str | None:
    """The key of a `reply+<key>` local part (case-insensitive), else None."""
    match = _REPLY_LOCAL.match(local.lower())
    return match.group(1) if match else None


def reply_key_in(recipients: Iterable[str], domains: set[str]) -> str | None:
    """The reply key from the first `reply+<key>@<one of domains>` among `recipients`."""
    for address in recipients:
        local, _, domain = address.rpartition("@")
        key = reply_key_of(local)
        if key and domain.lower() in domains:
            return key
    return None


def unsigned_bounce_address(reply_domain: str) -> str:
    """The VERP envelope sender as stored (`bounce+{id}@<reply domain>`): a DSN that comes back
    names the exact message it is about. `{id}` is filled in by the store on insert, the
    signature by `signed_sender` when the message leaves."""
    return f"bounce+{{id}}@{reply_domain}"


def signed_sender(envelope_from: str, tag: Callable[[int], str]) -> str:
    """`bounce+<id>@d` → `bounce+<id>.<tag>@d`; any other sender unchanged. Signed at send time,
    so mail queued before the upgrade leaves signed too."""
    local, at, domain = envelope_from.rpartition("@")
    match = _UNSIGNED_BOUNCE_LOCAL.match(local)
    if not at or match is None:
        return envelope_from
    return f"{local}.{tag(int(match.group(1)))}@{domain}"


def bounce_id_of(local: str, valid: Callable[[int, str], bool]) -> int | None:
    """The outbox id of a `bounce+<id>.<tag>` local part whose tag `valid` accepts, else None.

    Unsigned `bounce+<id>` (what versions before issue 10 sent) and altered tags are refused:
    ids are sequential, so an unsigned id proves nothing about who sent the report.
    """
    match = _BOUNCE_LOCAL.match(local.lower())
    if match is None:
        return None
    outbox_id = int(match.group(1))
    return outbox_id if valid(outbox_id, match.group(2)) else None


def bounce_recipient_id(rcpt: str, valid: Callable[[int, str], bool]) -> int | None:
    """The message a signed VERP recipient names; None when unsigned or altered."""
    return bounce_id_of(bare_address(rcpt).rpartition("@")[0], valid)


def address_matches(address: str, patterns: Iterable[str]) -> bool:
    """Glob match of an address against patterns such as `*@acme.example`, ignoring case."""
    address = address.lower()
    return any(fnmatch.fnmatchcase(address, p.lower()) for p in patterns)


class Recipients:
    """The RCPT policy: only configured addresses are ours (never an open relay).

    `reply+<key>@<reply domain>` is ours only when the key's signature is valid, and
    `bounce+<id>.<tag>@<reply domain>` only when its tag signs the id, so a guessed or altered
    address is refused at RCPT time, before we accept any bytes.
    """

    def __init__(self, shops: Iterable[ShopAddresses],
                 key_valid: Callable[[str], bool] | None = None,
                 bounce_valid: Callable[[int, str], bool] | None = None) -> None:
        shops = list(shops)
        self._key_valid = key_valid
        self._bounce_valid = bounce_valid
        self._reply_domains: dict[str, str] = {}
        for shop in shops:
            self._reply_domains.setdefault(shop.reply_domain.lower(), shop.id)
        self._routes: dict[str, Route] = {}
        for shop in shops:
            bcc = shop.bcc_address.lower()
            self._routes[bcc] = Route(shop.id, MessageKind.SHIPMENT, bcc)
            if shop.cancel_address:
                cancel = shop.cancel_address.lower()
                self._routes[cancel] = Route(shop.id, MessageKind.CANCEL, cancel)

    def route(self, address: str) -> Route | None:
        address = bare_address(address).lower()
        found = self._routes.get(address)
        if found is not None:
            return found
        local, _, domain = address.rpartition("@")
        key = reply_key_of(local)
        shop = self._reply_domains.get(domain)
        if key and shop and self._key_valid is not None and self._key_valid(key):
            return Route(shop, MessageKind.REPLY, address)
        valid = self._bounce_valid
        if shop and valid is not None and bounce_id_of(local, valid) is not None:
            return Route(shop, MessageKind.BOUNCE, address)
        return None
