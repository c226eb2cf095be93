"""`mailrelay serve` killed while sending: every invitation still goes out, and only mail that was
in flight at the kill may reach the receiver twice, byte for byte the same.

The daemon is a real process (SIGKILL means no cleanup code runs); the receiving SMTP server is
tests/sink.py in this test's loop; the SQLite file is read with sqlite3 to see what was committed.
"""

from __future__ import annotations

import asyncio
import csv
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

from .conftest import BASE_CONFIG, smtp_outbound
from .serve_process import MAILRELAY, Serve, count, reaping
from .sink import Sink, running_sink

INVITATIONS = 500
#: Kill when the sink has seen this many distinct messages (one kill per entry). Not multiples of
#: the batch size: delivery pauses between batches to commit, and a kill there finds nothing in
#: flight; these land mid-batch, with claimed rows in `sending`.
KILL_AT = (150, 300)
#: Delivery claims this many rows per batch: the most a kill can leave in `sending`.
BATCH_SIZE = 100
#: Every wait below is bounded by this (the whole test takes a few seconds).
DEADLINE_S = 90.0


def write_config(directory: Path, sink_port: int) -> Path:
    """conftest's BASE_CONFIG, sending over SMTP to the sink, at once, without pacing or caps."""
    text = BASE_CONFIG.format(smtp_extra="", shop_extra='dedupe_window = "0s"\n')
    text = smtp_outbound(text, sink_port, "starttls = false", "rate_per_minute = 60000",
                         'timeout = "10s"')
    assert 'invite_delay = "7d"\n' in text, "BASE_CONFIG changed: no invite_delay"
    text = text.replace('invite_delay = "7d"\n', 'invite_delay = "0s"\n', 1)
    path = directory / "relay.toml"
    path.write_text(text)
    return path


def invite_all(config: Path, directory: Path, invitations: int = INVITATIONS) -> None:
    """Schedule every invitation through the operator's CLI, before any daemon runs."""
    sheet = directory / "customers.csv"
    with sheet.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name", "reference"])
        for n in range(invitations):
            writer.writerow([f"customer{n}@example.com", f"Customer {n}", f"R{10000 + n}"])
    result = subprocess.run(
        [str(MAILRELAY), "invite", "--csv", str(sheet), "--shop", "acme", "--config", str(config)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert f"{invitations} invited, 0 skipped" in result.stdout + result.stderr


class Seen:
    """The sink's messages by Message-ID, parsed once each as they arrive."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.copies: Counter[str] = Counter()
        self._parsed = 0

    def distinct(self) -> int:
        for _sender, _rcpts, raw in self.sink.messages[self._parsed:]:
            self.copies[header(raw, "Message-ID")] += 1
            self._parsed += 1
        return len(self.copies)

    def more_than(self, received: int) -> Callable[[], bool]:
        """A check: has the sink received more than `received` messages (copies included)?"""
        return lambda: len(self.sink.messages) > received

    def at_least(self, distinct: int) -> Callable[[], bool]:
        """A check: has the sink seen at least `distinct` different Message-IDs?"""
        return lambda: self.distinct() >= distinct


def message_ids(db: Path, sql: str) -> set[str]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return {str(row[0]) for row in conn.execute(sql)}
    finally:
        conn.close()


def header(raw: bytes, name: str) -> str:
    return str(BytesHeaderParser().parsebytes(raw).get(name, ""))


async def wait_until(what: str, done: Callable[[], bool], deadline: float) -> None:
    """Poll `done()` every 10 ms until true; it runs in the loop, so the sink pauses meanwhile."""
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.mark.slow
async def test_sigkill_while_sending_a_batch_loses_nothing_and_resends_only_what_was_in_flight(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    deadline = started + DEADLINE_S
    db = tmp_path / "var" / "test.db"
    async with running_sink() as sink:
        seen = Seen(sink)
        config = write_config(tmp_path, sink.port)
        invite_all(config, tmp_path)
        assert count(db, "SELECT COUNT(*) FROM invitations WHERE status = 'scheduled'") == (
            INVITATIONS
        )
        in_flight: list[set[str]] = []  # Message-IDs of the rows in `sending` at each kill
        with reaping() as daemons:
            for round_no, kill_at in enumerate(KILL_AT):
                daemons.append(Serve(config, tmp_path / f"serve-{round_no}.log"))
                ready_at = await daemons[-1].ready()
                await wait_until(f"the first message after start {round_no}",
                                 seen.more_than(len(sink.messages)), deadline)
                # Rows scheduled by the CLI before the start must go out at once (the start-up
                # rearm), not after the scheduler's 30 s safety poll.
                first_after = time.monotonic() - ready_at
                assert first_after < 10, f"first send {first_after:.1f}s after READY"
                await wait_until(f"{kill_at} messages at the sink", seen.at_least(kill_at),
                                 deadline)
                daemons[-1].kill()
                sending = message_ids(db, "SELECT message_id FROM outbox WHERE status = 'sending'")
                in_flight.append(sending)
                seen.distinct()
                print(
                    f"kill {round_no + 1}: READY→first send {first_after * 1000:.0f} ms, "
                    f"{len(sink.messages)} received, {len(sending)} row(s) in sending, of which "
                    f"{len(sending & set(seen.copies))} already at the sink"
                )
            daemons.append(Serve(config, tmp_path / "serve-last.log"))
            await daemons[-1].ready()
            sent_sql = "SELECT COUNT(*) FROM invitations WHERE status = 'sent'"
            await wait_until(
                "every invitation sent", lambda: count(db, sent_sql) == INVITATIONS, deadline
            )
            status = await daemons[-1].terminate()
            assert status == 0, daemons[-1].output()

        # Every invitation arrived, under one Message-ID of its own.
        first_copy: dict[str, bytes] = {}
        invitation_of: dict[str, str] = {}
        for _sender, _rcpts, raw in sink.messages:
            mid = header(raw, "Message-ID")
            assert mid, "a message without Message-ID"
            first = first_copy.setdefault(mid, raw)
            # A resend after a crash is the stored bytes again (receivers collapse duplicates).
            assert raw == first, f"{mid} arrived twice with different bytes"
            invitation_of[mid] = header(raw, "X-Mailrelay-Invitation")
        per_invitation = Counter(invitation_of.values())
        assert len(per_invitation) == INVITATIONS
        assert set(per_invitation.values()) == {1}, "an invitation got two Message-IDs"
        sent = message_ids(db, "SELECT message_id FROM outbox WHERE kind = 'invitation'"
                               " AND status = 'sent'")
        assert sent == set(first_copy)

        # Only mail in flight at a kill (claimed, result not yet committed) may come twice.
        seen.distinct()
        twice = {mid for mid, n in seen.copies.items() if n > 1}
        extra_copies = sum(n - 1 for n in seen.copies.values())
        assert twice <= set().union(*in_flight), "a message not in flight was sent twice"
        assert extra_copies <= sum(len(ids) for ids in in_flight) <= BATCH_SIZE * len(KILL_AT)
        print(
            f"delivery crash test: {INVITATIONS} invitations, {len(sink.messages)} received, "
            f"{len(twice)} Message-ID(s) seen more than once ({extra_copies} extra copies), "
            f"in sending at the kills: {[len(ids) for ids in in_flight]}, "
            f"{time.monotonic() - started:.1f}s"
        )


async def test_sigterm_while_the_receiver_holds_our_data_waits_for_its_250_and_records_it(
    tmp_path: Path,
) -> None:
    """A SIGTERM mid-DATA (the whole message sent, the 250 not yet back): the relay waits for
    the reply, stores the result and exits 0; started again, it sends nothing a second time."""
    db = tmp_path / "var" / "test.db"
    sent_sql = "SELECT COUNT(*) FROM outbox WHERE status = 'sent'"
    async with running_sink() as sink:
        config = write_config(tmp_path, sink.port)
        invite_all(config, tmp_path, invitations=1)
        release = sink.hold_next()
        with reaping() as daemons:
            daemons.append(Serve(config, tmp_path / "serve-1.log"))
            await daemons[0].ready()
            await asyncio.wait_for(sink.held.wait(), DEADLINE_S)
            stopping = asyncio.create_task(daemons[0].terminate())
            await wait_until("the SIGTERM logged", lambda: "shutting down" in daemons[0].output(),
                             time.monotonic() + DEADLINE_S)
            await asyncio.sleep(1.0)  # the relay's stop cancels its dispatcher meanwhile
            assert not stopping.done(), "the relay exited with the 250 still to come"
            release.set()
            assert await stopping == 0, daemons[0].output()
            assert count(db, sent_sql) == 1
            assert sink.acknowledged == [True]
            daemons.append(Serve(config, tmp_path / "serve-2.log"))
            await daemons[1].ready()
            await asyncio.sleep(1.0)  # what a restart resends, it sends at once
            assert await daemons[1].terminate() == 0
    assert len(sink.messages) == 1
