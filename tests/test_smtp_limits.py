"""Session limits of the inbound listener on loopback with real sockets: a burst gets exactly
`max_sessions`, one address at most `max_sessions_per_client`, and slow or idle clients are
closed (junk commands, the per-command `timeout`, `session_timeout`) (issue 10 §6)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.edges import smtp_server

from .conftest import ConfigFactory
from .mailtools import send, settle, trigger

BCC = "reviews+acme@relay.test"
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


#: Every connection a test opened, closed when its daemon stops.
_opened: list[Connection] = []


@contextlib.asynccontextmanager
async def running(config: Config, **smtp: object) -> AsyncIterator[Daemon]:
    config = replace(config, smtp=replace(config.smtp, **smtp))
    try:
        async with Daemon(config, FrozenClock()) as daemon:
            yield daemon
    finally:
        await close(*_opened)
        _opened.clear()


async def connect(daemon: Daemon, source: str = "127.0.0.1") -> tuple[Connection, bytes]:
    """A raw connection and the server's first line (220 greeting or 421 refusal)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", daemon.smtp_port, local_addr=(source, 0))
    _opened.append((reader, writer))
    return (reader, writer), await asyncio.wait_for(reader.readline(), 10)


async def command(conn: Connection, line: bytes) -> bytes:
    reader, writer = conn
    writer.write(line + b"\r\n")
    await writer.drain()
    return await asyncio.wait_for(reader.readline(), 10)


async def closed_by_server(conn: Connection) -> bytes:
    """Everything the server still sends until it closes the connection."""
    return await asyncio.wait_for(conn[0].read(), 10)


async def close(*conns: Connection) -> None:
    for _, writer in conns:
        writer.close()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await writer.wait_closed()


async def test_a_burst_of_connections_admits_exactly_max_sessions_and_refuses_the_rest(
    config: Config,
) -> None:
    async with running(config, max_sessions=5) as daemon:
        opened = await asyncio.gather(*(connect(daemon) for _ in range(20)))
        greetings = [line[:3] for _, line in opened]
        assert greetings.count(b"220") == 5
        assert greetings.count(b"421") == 15
        refused = [conn for conn, line in opened if line.startswith(b"421")]
        for conn in refused:  # the server hangs up on a refused connection at once
            assert await closed_by_server(conn) == b""
        assert daemon.listener.refused_counts["max_sessions"] == 15
        # A refused connection never held a slot: with one admitted session gone, the next
        # connection is served although 15 were refused meanwhile.
        admitted = [conn for conn, line in opened if line.startswith(b"220")]
        assert await command(admitted[0], b"QUIT") == b"221 Bye\r\n"
        await closed_by_server(admitted[0])
        conn, line = await connect(daemon)
        assert line.startswith(b"220")
        await close(conn, *admitted[1:], *refused)


async def test_one_address_gets_at_most_max_sessions_per_client_while_others_still_get_in(
    config: Config,
) -> None:
    async with running(config, max_sessions=10, max_sessions_per_client=2) as daemon:
        first, second = (await connect(daemon))[0], (await connect(daemon))[0]
        conn, line = await connect(daemon)
        assert line.startswith(b"421 4.7.0")
        assert await closed_by_server(conn) == b""
        # 127.0.0.2 is another client on the same loopback.
        other, line = await connect(daemon, source="127.0.0.2")
        assert line.startswith(b"220")
        assert daemon.listener.refused_counts["max_sessions_per_client"] == 1
        await close(first)
        await asyncio.sleep(0.05)
        again, line = await connect(daemon)
        assert line.startswith(b"220")
        await close(second, other, again)


async def test_commands_without_progress_end_the_session_with_421(config: Config) -> None:
    async with running(config, junk_command_limit=4) as daemon:
        conn, _ = await connect(daemon)
        assert (await command(conn, b"EHLO client.example"))[:3] == b"250"
        while not (await conn[0].readline()).startswith(b"250 "):
            pass  # the rest of the EHLO answer
        assert await command(conn, b"NOOP") == b"250 OK\r\n"
        assert (await command(conn, b"HELP"))[:3] == b"250"
        assert (await command(conn, b"XJUNK"))[:3] == b"500"  # unknown commands count too
        answer = await command(conn, b"NOOP")
        assert answer.startswith(b"421 4.7.0")
        assert await closed_by_server(conn) == b""
        assert daemon.listener.closed_counts["junk_commands"] == 1


async def test_accepted_mail_commands_reset_the_junk_count(config: Config) -> None:
    async with running(config, junk_command_limit=3) as daemon:
        conn, _ = await connect(daemon)
        assert (await command(conn, b"HELO client.example"))[:3] == b"250"
        for n in range(3):
            assert await command(conn, b"NOOP") == b"250 OK\r\n"
            assert (await command(conn, b"RSET"))[:3] == b"250"
            assert (await command(conn, b"MAIL FROM:<platform@shop.example>"))[:3] == b"250"
            assert (await command(conn, f"RCPT TO:<{BCC}>".encode()))[:3] == b"250"
            assert (await command(conn, b"DATA"))[:3] == b"354"
            raw = trigger(message_id=f"<reset-{n}@platform.example>")
            conn[1].write(raw.replace(b"\n", b"\r\n") + b".\r\n")
            assert (await conn[0].readline())[:3] == b"250"
        assert (await command(conn, b"QUIT"))[:3] == b"221"
        await close(conn)
        await settle(daemon)
        assert len(daemon.store.read(lambda q: q.list_shipments())) == 3


async def test_a_command_line_trickled_a_byte_at_a_time_is_cut_off_at_the_timeout(
    config: Config,
) -> None:
    async with running(config, timeout=timedelta(seconds=0.5)) as daemon:
        conn, _ = await connect(daemon)
        reader, writer = conn
        sent = 0
        with contextlib.suppress(ConnectionError):
            for byte in b"NOOP NOOP NOOP NOOP NOOP NOOP\r\n":  # 32 bytes over 3 s
                writer.write(bytes([byte]))
                await writer.drain()
                sent += 1
                await asyncio.sleep(0.1)
                if reader.at_eof():
                    break
        assert await closed_by_server(conn) == b""
        assert sent < 32  # the line never completed: bytes trickling in did not extend it
        await close(conn)


async def test_a_busy_session_is_closed_at_session_timeout(config: Config) -> None:
    async with running(config, session_timeout=timedelta(seconds=1),
                       junk_command_limit=1000) as daemon:
        conn, _ = await connect(daemon)
        answers = []
        for _ in range(100):  # a NOOP every 50 ms would otherwise keep it open for 5 s
            try:
                answers.append(await command(conn, b"NOOP"))
            except ConnectionError:
                break
            if not answers[-1].startswith(b"250"):
                break
            await asyncio.sleep(0.05)
        assert answers[-1].startswith(b"421 4.4.2") or answers[-1] == b""
        assert len(answers) < 100
        assert daemon.listener.closed_counts["session_timeout"] == 1
        await close(conn)


async def test_mail_keeps_flowing_while_slow_clients_hold_their_address_s_share(
    make_config: ConfigFactory,
) -> None:
    config = make_config(smtp_extra="max_sessions = 6\nmax_sessions_per_client = 3")
    async with running(config) as daemon:
        slow = [(await connect(daemon, source="127.0.0.9"))[0] for _ in range(5)]
        await send(daemon, trigger(message_id="<through@platform.example>"))
        await settle(daemon)
        rows = daemon.store.read(lambda q: q.list_shipments())
        assert [r.message_id for r in rows] == ["<through@platform.example>"]
        assert daemon.listener.refused_counts["max_sessions_per_client"] == 2
        await close(*slow)


async def test_refused_recipients_count_as_commands_without_progress(config: Config) -> None:
    async with running(config, junk_command_limit=3) as daemon:
        conn, _ = await connect(daemon)
        assert (await command(conn, b"HELO client.example"))[:3] == b"250"
        assert (await command(conn, b"MAIL FROM:<platform@shop.example>"))[:3] == b"250"
        answers = [await command(conn, f"RCPT TO:<guess{n}@relay.test>".encode())
                   for n in range(4)]
        assert [a[:3] for a in answers] == [b"550"] * 4
        assert (await conn[0].readline()).startswith(b"421 4.7.0")
        assert await closed_by_server(conn) == b""


async def test_with_only_max_sessions_set_101_slow_connections_from_one_address_leave_room(
    make_config: ConfigFactory,
) -> None:
    """max_sessions = 5 alone once left the per-client cap at 50: one address held all five
    sessions until session_timeout (issue 10 §6, found from outside). Now it gets half."""
    config = make_config(smtp_extra="max_sessions = 5")
    async with running(config) as daemon:
        opened = [await connect(daemon, source="127.0.0.9") for _ in range(101)]
        assert [line[:3] for _, line in opened].count(b"220") == 2
        await send(daemon, trigger(message_id="<past-the-slow-ones@platform.example>"))
        await settle(daemon)
        rows = daemon.store.read(lambda q: q.list_shipments())
        assert [r.message_id for r in rows] == ["<past-the-slow-ones@platform.example>"]
        await close(*(conn for conn, _ in opened))


async def test_a_flood_of_refused_connections_writes_one_log_line_then_how_many_followed(
    config: Config, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """96 WARNING lines for one attacker's 101 connections: a log can fill the disk too."""
    caplog.set_level(logging.WARNING, logger="mailrelay.smtp_server")

    def refusals() -> list[str]:
        return [r.getMessage() for r in caplog.records if "client refused" in r.getMessage()]

    async with running(config, max_sessions=5, max_sessions_per_client=20) as daemon:
        opened = await asyncio.gather(*(connect(daemon) for _ in range(20)))
        assert [line[:3] for _, line in opened].count(b"421") == 15
        assert daemon.listener.refused_counts["max_sessions"] == 15  # /metrics sees them all
        assert len(refusals()) == 1 and "max_sessions=5 reached" in refusals()[0]
        monkeypatch.setattr(smtp_server, "REFUSAL_LOG_EVERY", 0.0)  # the minute has passed
        _, line = await connect(daemon)
        assert line.startswith(b"421")
        assert len(refusals()) == 2
        assert refusals()[1].endswith("; 14 more refused for this since the last such line")
