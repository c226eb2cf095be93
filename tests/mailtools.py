"""Small builders, senders and waits shared by the tests: real messages, real SMTP and HTTP
clients, what the sink received. No fixtures: conftest has those."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiohttp
import aiosmtplib
from prometheus_client.parser import text_string_to_metric_families

from mailrelay.app import Daemon
from mailrelay.config import Config, OutboundConfig

from .sink import Sink

ACME_BCC = "reviews+acme@relay.test"

#: /metrics samples by (name, sorted labels).
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


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


async def send(daemon: Daemon, raw: bytes, *rcpts: str,
               sender: str = "platform@shop.example") -> None:
    """One message to the daemon's SMTP listener (to ACME's BCC address unless told)."""
    await aiosmtplib.send(raw, sender=sender, recipients=list(rcpts or [ACME_BCC]),
                          hostname="127.0.0.1", port=daemon.smtp_port, timeout=10)


async def session_send(daemon: Daemon, raw: bytes, rcpt: str, sender: str = "",
                       wait: float = 60.0) -> None:
    """One SMTP session MAIL, RCPT, DATA; sender "" is the null reverse-path `MAIL FROM:<>`
    that DSNs come with (RFC 5321 4.5.5), which aiosmtplib.send refuses to send. `wait`:
    seconds the client waits for each reply."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port,
                               timeout=wait) as client:
        await client.mail(sender)
        await client.rcpt(rcpt)
        await client.data(raw)


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


def sink_outbound(config: Config, sink: Sink, **changes: object) -> OutboundConfig:
    """`config`'s [outbound] as plain SMTP to `sink` (no TLS, no login), `changes` on top."""
    return replace(config.outbound, transport="smtp", host="127.0.0.1", port=sink.port,
                   starttls=False, tls=False, username=None, password=None, **changes)


def via_sink(config: Config, sink: Sink, **shop_changes: object) -> Config:
    """`config` sending through `sink` (no TLS, no pacing to speak of), shops changed as given."""
    outbound = sink_outbound(config, sink, rate_per_minute=60000)
    shops = tuple(replace(s, **shop_changes) for s in config.shops)
    return replace(config, outbound=outbound, shops=shops)


def free_port() -> int:
    """A loopback port free right now (for a listener that must keep it across restarts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Awaitable[bool] | bool], limit: float = 10,
                     what: str = "condition") -> None:
    """Poll `check` (plain or async) until it holds; AssertionError after `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:g} s waiting for {what}")
        await asyncio.sleep(0.01)


def raw_mails_to(sink: Sink, address: str) -> list[bytes]:
    """Every message the sink received for `address`, as sent."""
    return [raw for _, rcpts, raw in sink.messages if address in rcpts]


def mails_to(sink: Sink, address: str) -> list[EmailMessage]:
    """Every message the sink received for `address`, parsed."""
    return [parsed(raw) for raw in raw_mails_to(sink, address)]


def customer_mails(sink: Sink, to: str = "ann@example.com") -> list[EmailMessage]:
    """The agent's answers mailed to the customer (Auto-Submitted: auto-replied)."""
    return [m for m in mails_to(sink, to) if m["Auto-Submitted"] == "auto-replied"]


def notices(sink: Sink, address: str) -> list[EmailMessage]:
    """The "not published" notices an agent got back for a reply."""
    return [m for m in mails_to(sink, address) if "not published" in str(m["Subject"])]


async def healthz(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    """The daemon's /healthz: its status code and JSON body."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{daemon.http_port}/healthz") as resp:
            return resp.status, await resp.json()


async def scrape(daemon: Daemon) -> Samples:
    """The daemon's /metrics page, as served (200, text/plain), parsed; every series carries
    the relay's id as its `relay` label (checked here, then left out of the keys)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{daemon.http_port}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    assert {s.labels.get("relay") for s in samples} == {daemon.config.store.relay_id}
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "relay"))): s.value
            for s in samples}
