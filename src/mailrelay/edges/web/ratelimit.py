"""Who is asking, and how often: client addresses behind trusted proxies and the form's limits.

In memory, for the one daemon process that serves the web. It answers "how long to wait" and
logs a refusal once per key and window; building the 429 page is the server's job.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections import deque
from collections.abc import Sequence

log = logging.getLogger("mailrelay.web")  # the name operators filter on

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """One X-Forwarded-For hop or socket peer: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:80`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(remote: str | None, forwarded: Sequence[str],
                   trusted: Sequence[Network]) -> str | None:
    """Who sent the request: the socket peer, unless that peer is one of `[http] trusted_proxies`;
    then the right-most X-Forwarded-For hop that is not itself a trusted proxy. Hops further left
    were written by the client and prove nothing (anyone can send the header)."""
    peer = _address(remote or "")
    if peer is None or not forwarded or not any(peer in net for net in trusted):
        return remote
    hops = [hop for value in forwarded for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # unreadable: the proxy that passed it on is the last address we know
        peer = address
        if not any(address in net for net in trusted):
            break
    return str(peer)


def client_key(remote: str | None) -> str:
    """Whom a rate limit counts: the address, or for IPv6 its /64 (one customer's whole LAN,
    where a new address per request costs nothing)."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return f"ip:{remote or '-'}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ipaddress.ip_network((address, 64), strict=False)}"
    return f"ip:{address}"


class RateLimiter:
    """Sliding-window hit counts per key, in memory (one daemon process serves the web)."""

    def __init__(self, window: float, max_keys: int = 100_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._swept = 0.0

    def _recent(self, key: str, now: float) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is not None:
            while hits and hits[0] <= now - self.window:
                hits.popleft()
        return hits

    def count(self, key: str, now: float) -> int:
        """Hits on `key` within the window."""
        return len(self._recent(key, now) or ())

    def hit(self, limits: Sequence[tuple[str, int]], now: float) -> float | None:
        """Count one hit on every key if all are under their limit; else seconds to wait."""
        wait = 0.0
        for key, limit in limits:
            hits = self._recent(key, now)
            if hits is not None and len(hits) >= limit:
                wait = max(wait, hits[-limit] + self.window - now)
        if wait > 0:
            return wait  # refused attempts do not count, so waiting out the window is enough
        for key, _limit in limits:
            self._hits.setdefault(key, deque()).append(now)
        if len(self._hits) > self.max_keys:
            self._sweep(now)
        return None

    def _sweep(self, now: float) -> None:
        """Forget idle keys; under a flood of fresh keys, the oldest (a bounded memory wins)."""
        if now - self._swept >= self.window / 10:
            self._swept = now
            for key in list(self._hits):
                if not self._recent(key, now):
                    del self._hits[key]
        while len(self._hits) > 2 * self.max_keys:
            del self._hits[next(iter(self._hits))]


def from_trusted_proxy(remote: str | None, trusted: Sequence[Network]) -> bool:
    """Whether the socket peer is one of `[http] trusted_proxies`."""
    peer = _address(remote or "")
    return peer is not None and any(peer in net for net in trusted)


class ClientAddresses:
    """The client's address for rate limits and logs (X-Forwarded-For only via a trusted
    proxy, issue 10); a forwarded header from anyone else is logged once, then ignored."""

    def __init__(self, trusted: Sequence[Network]) -> None:
        self.trusted = trusted
        self._untrusted_forwarding_logged = False

    def client(self, remote: str | None, forwarded: Sequence[str]) -> str | None:
        address = client_address(remote, forwarded, self.trusted)
        if forwarded and address == remote and not self._untrusted_forwarding_logged:
            if not from_trusted_proxy(remote, self.trusted):
                self._untrusted_forwarding_logged = True
                log.warning("X-Forwarded-For from %s ignored: not in [http] trusted_proxies",
                            remote)
        return address


class FormLimits:
    """The review form's rate limits (issue 10): a known token's own budget first, then its
    address's; a forged or unknown token only spends its address's separate budget, so it
    can never lock out a customer who holds a real link."""

    def __init__(self, per_token: int, per_ip: int, unknown_per_ip: int,
                 window: float) -> None:
        self.per_token = per_token
        self.per_ip = per_ip
        self.unknown_per_ip = unknown_per_ip
        self.limiter = RateLimiter(window)
        self._limited: dict[str, float] = {}  # key → when its refusal was last logged

    def wait(self, client: str | None, token: str, known: bool, now: float) -> float | None:
        """Count one post; None when it is allowed, else the seconds until it would be."""
        if known:
            limits = [(f"token:{token}", self.per_token), (client_key(client), self.per_ip)]
        else:
            limits = [(f"unknown:{client_key(client)}", self.unknown_per_ip)]
        wait = self.limiter.hit(limits, now)
        if wait is None:
            return None
        which = limits[0][0] if self.limiter.count(limits[0][0], now) >= limits[0][1] else (
            limits[-1][0])
        if now - self._limited.get(which, -math.inf) >= self.limiter.window:
            self._limited[which] = now  # once per key and window: a flood is one line
            kind = "token" if which.startswith("token:") else "address"
            log.warning("review form rate limit reached (%s) client=%s", kind, client or "-")
            if len(self._limited) > self.limiter.max_keys:
                self._limited.clear()
        return wait
