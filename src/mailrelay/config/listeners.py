"""Which config key sets each listening address, and a failure to listen as a sentence that
names the address, the key and what to do (issue 12: not `[Errno 98] error while attempting…`).

Pure: reads the config and the error's text; never opens a socket.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from mailrelay.config.model import Config


@dataclass(frozen=True)
class ListenAddress:
    """One address the relay listens on and the key that sets it."""

    key: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def listeners(config: Config) -> tuple[ListenAddress, ...]:
    """The SMTP and the web listener, in the order `serve` starts them."""
    return (ListenAddress("[smtp] listen", config.smtp.host, config.smtp.port),
            ListenAddress("[http] listen", config.http.host, config.http.port))


def bind_failure(error: OSError, listener: ListenAddress, source: Path | None) -> str:
    """Why `listener` cannot listen, and what to do about it, in one sentence."""
    where = f"{listener.key} in {source}" if source else (
        f"{listener.key} in a relay.toml (these are the built-in defaults)")
    if error.errno == errno.EADDRINUSE:
        return (f"{listener.address} is in use by another program (is mailrelay already "
                f"running? `ss -ltnp 'sport = :{listener.port}'` shows which): stop it, or set "
                f"another address with {where}")
    if error.errno == errno.EACCES:
        return (f"{listener.address} needs privileges: ports below 1024 need root or "
                f"CAP_NET_BIND_SERVICE (contrib/mailrelay.service grants it); or set another "
                f"port with {where}")
    if error.errno == errno.EADDRNOTAVAIL:
        return (f"{listener.host} is not an address of this host: set {where} to one of its "
                f"addresses (0.0.0.0 for all)")
    reason = (error.strerror or str(error)).lower()
    return f"cannot listen on {listener.address} ({reason}): check {where}"


def explain_startup_error(error: BaseException, config: Config) -> str:
    """A listener's bind failure as `bind_failure`'s sentence; any other error as it is."""
    if isinstance(error, OSError) and error.errno is not None:
        listener = _listener_in(str(error), config)
        if listener is not None:
            return bind_failure(error, listener, config.source)
    return str(error)


def _listener_in(text: str, config: Config) -> ListenAddress | None:
    """The listener asyncio names in "error while attempting to bind on address ('127.0.0.1',
    2525): …" (aiohttp's and aiosmtpd's servers both come from loop.create_server)."""
    if "bind" not in text:
        return None
    candidates = listeners(config)
    for listener in candidates:
        if f"{listener.host!r}, {listener.port}" in text:
            return listener
    for listener in candidates:
        if f", {listener.port})" in text or f", {listener.port}," in text:
            return listener
    return None
