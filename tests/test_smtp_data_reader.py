"""The listener's block DATA reader answers and stores exactly what aiosmtpd's own reader would.

Each DATA stream goes over a raw socket, whole and in 2-byte pieces (so a terminator or a dot
is split across reads), to mailrelay and to a stock aiosmtpd server in the same loop.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from mailrelay.app import Daemon

BCC = "reviews+acme@relay.test"
LIMIT = 64 * 1024  # conftest's max_message_size

STREAMS = {
    "empty": b".\r\n",
    "one-line": b"hello\r\n.\r\n",
    "blank-line-only": b"\r\n.\r\n",
    "dot-stuffed": b"..leading\r\n...\r\n..\r\nend.\r\nThanks.\r\n.\r\n",
    "dot-stuffed-first-line": b"..\r\nnext\r\n.\r\n",
    "lf-dot-crlf-is-content": b"a\n.\r\nb\r\n.\r\n",
    "crlf-dot-lf-is-content": b"a\r\n.\nb\r\n.\r\n",
    "cr-dot-cr-is-content": b"a\r.\rb\r\n.\r\n",
    "line-of-999": b"x" * 999 + b"\r\n.\r\n",
    "line-of-1000": b"x" * 1000 + b"\r\n.\r\n",
    "long-line-after-dots": b"a.\r\n" + b"y" * 1500 + b"\r\nz\r\n.\r\n",
    "exactly-the-limit": b"x" * 998 + b"\r\n" + (b"y" * 998 + b"\r\n") * (LIMIT // 1000 - 1)
    + b"z" * (LIMIT - 1000 * (LIMIT // 1000) - 2) + b"\r\n.\r\n",
    "one-over-the-limit": b"x" * 998 + b"\r\n" + (b"y" * 998 + b"\r\n") * (LIMIT // 1000 - 1)
    + b"z" * (LIMIT - 1000 * (LIMIT // 1000) - 1) + b"\r\n.\r\n",
    "far-over-the-limit": (b"w" * 98 + b".\r\n") * 2000 + b".\r\n",
}


class Capture:
    """A stock aiosmtpd handler that keeps what DATA delivered."""

    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.contents.append(envelope.original_content)
        return "250 OK"


def converse(port: int, stream: bytes, piece: int) -> list[bytes]:
    """MAIL, RCPT, DATA, the stream (in pieces of `piece` bytes) and QUIT pipelined after it;
    returns the reply codes from DATA on."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        file = sock.makefile("rb")

        def reply() -> bytes:
            while True:
                line = file.readline()
                if not line or line[3:4] != b"-":
                    return line[:3]

        reply()  # greeting
        for command in (b"EHLO client", b"MAIL FROM:<platform@shop.example>",
                        b"RCPT TO:<" + BCC.encode() + b">"):
            sock.sendall(command + b"\r\n")
            assert reply().startswith(b"2")
        sock.sendall(b"DATA\r\n")
        codes = [reply()]
        tail = stream + b"QUIT\r\n"
        for start in range(0, len(tail), piece):
            sock.sendall(tail[start:start + piece])
            if piece < 16:
                time.sleep(0.0005)
        codes += [reply(), reply()]
    return codes


@pytest.fixture
async def stock_port() -> Any:
    capture = Capture()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(capture, hostname="stock.test", data_size_limit=LIMIT,
                     enable_SMTPUTF8=True, loop=loop),
        host="127.0.0.1", port=0,
    )
    yield server.sockets[0].getsockname()[1], capture
    server.close()
    await server.wait_closed()


def stored(daemon: Daemon) -> list[bytes]:
    rows = daemon.store.read(
        lambda q: q.conn.execute("SELECT raw FROM message_bodies ORDER BY id").fetchall())
    return [bytes(r[0]) for r in rows]


#: Every stream whole; the short ones also in 2-byte pieces.
CASES = [pytest.param(name, 1 << 20, id=f"{name}-whole") for name in STREAMS] + [
    pytest.param(name, 2, id=f"{name}-2-byte-pieces")
    for name, stream in STREAMS.items() if len(stream) <= 4096
]


@pytest.mark.parametrize(("name", "piece"), CASES)
async def test_data_reader_answers_and_stores_what_aiosmtpd_would(
    daemon: Daemon, stock_port: tuple[int, Capture], name: str, piece: int
) -> None:
    stream = STREAMS[name]
    port, capture = stock_port
    expected = await asyncio.to_thread(converse, port, stream, piece)
    got = await asyncio.to_thread(converse, daemon.smtp_port, stream, piece)
    assert got == expected
    assert stored(daemon) == capture.contents
