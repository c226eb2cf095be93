"""Small builders and waits shared by the tests (real messages, real SMTP clients)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from dataclasses import replace
from email.message import EmailMessage
from email.utils import make_msgid

from mailrelay.app import Daemon
from mailrelay.config import Config

from .sink import Sink


def parsed(raw: bytes) -> EmailMessage:
    """A message as a mail client reads it (the modern policy, so get_body() works)."""
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def text_of(msg: EmailMessage) -> str:
    """The text/plain body a reader would see."""
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def trigger(
    to: str = "John Smith <john.smith@example.com>",
    subject: str = "A shipment from order #1057 is on the way",
    body: str = "Your order is on the way.",
    sender: str = "ACME Shoes <shop@acme.example>",
    message_id: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="platform.example")
    msg.set_content(body)
    return msg.as_bytes()


async def settle(daemon: Daemon, limit: float = 10.0) -> None:
    """Wait until the intake worker has processed every stored message."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    daemon.intake.wake()
    while await daemon.store.aread(lambda q: q.pending_messages(1)):
        if loop.time() > deadline:
            raise TimeoutError("intake did not settle")
        await asyncio.sleep(0.01)


def raw_smtp(port: int, lines: list[bytes], timeout: float = 5.0) -> list[bytes]:
    """Speak SMTP byte by byte (for smuggling tests); returns every reply line received."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        replies = bytearray(sock.recv(4096))
        for chunk in lines:
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            replies += data
    return bytes(replies).splitlines()


async def drain(daemon: Daemon, limit: float = 10.0) -> None:
    """Run due work until nothing is queued or being sent (the dispatcher may be mid-send)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    await daemon.tick()
    while await daemon.store.aread(lambda q: q.outbox_depth()):
        if loop.time() > deadline:
            raise TimeoutError("outbox did not drain")
        await asyncio.sleep(0.01)
        await daemon.tick()


def via_sink(config: Config, sink: Sink, **shop_changes: object) -> Config:
    """`config` sending through `sink` (no TLS, no pacing to speak of), shops changed as given."""
    outbound = replace(config.outbound, transport="smtp", host="127.0.0.1", port=sink.port,
                       starttls=False, tls=False, username=None, password=None,
                       rate_per_minute=60000)
    shops = tuple(replace(s, **shop_changes) for s in config.shops)
    return replace(config, outbound=outbound, shops=shops)
