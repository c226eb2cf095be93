"""What the fault and fuzz suites (tests/test_fuzz_*.py) check after hostile input: every 250
stored once and processed, every refusal logged, no error logged, the workers alive, the public
pages unchanged; plus the two-shop relay they run against and the counts they print."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.services.intake import message_id_of

from .conftest import FUZZ_COUNTS, ConfigFactory, second_shop
from .hostile_mail import Answer, crlf

SIZE_LIMIT = 2 << 20  # room for the 900 KB header; the "beyond" cases go past it
SECOND_SHOP = second_shop(send_hours="09:00-17:00", timezone="Pacific/Kiritimati")


def two_shops(make_config: ConfigFactory, more: str = "") -> Config:
    config = make_config(more=SECOND_SHOP + more)
    return replace(config, smtp=replace(config.smtp, max_message_size=SIZE_LIMIT))


class Tally:
    """The answers of one fuzz run and the counts line the issue asks for."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.answers: list[Answer] = []

    def add(self, answer: Answer) -> None:
        case = answer.case
        assert answer.code == 250 or 400 <= answer.code < 600, (
            f"{case.name}: answered {answer.code} {answer.text!r}")
        if case.expect:
            assert answer.code in case.expect, (
                f"{case.name}: expected {sorted(case.expect)}, got {answer.code} {answer.text!r}")
        self.answers.append(answer)

    def line(self) -> str:
        codes = Counter(
            "accepted" if a.code == 250 else "4xx" if a.code < 500 else "5xx" for a in self.answers)
        return (f"{self.label}: {len(self.answers)} inputs, {sum(codes.values())} handled "
                f"({codes['accepted']} accepted, {codes['4xx']} refused 4xx, "
                f"{codes['5xx']} refused 5xx)")

    def record(self, request: pytest.FixtureRequest) -> None:
        record_line(request, self.line())


def record_line(request: pytest.FixtureRequest, line: str) -> None:
    """A counts line for the summary after the run (captured prints would be hidden)."""
    request.config.stash.setdefault(FUZZ_COUNTS, []).append(line)
    print(line)


async def get(daemon: Daemon, path: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{daemon.http_port}{path}") as resp:
        return resp.status, await resp.read()


async def public_pages(daemon: Daemon, shops: Iterable[str] = ("acme", "bolt")) -> dict[str, bytes]:
    """Each shop's public page and reviews.json, as served."""
    pages = {}
    for shop in shops:
        for path in (f"/s/{shop}", f"/s/{shop}/reviews.json"):
            status, body = await get(daemon, path)
            assert status == 200, path
            pages[path] = body
    return pages


def assert_stored_once_and_processed(daemon: Daemon, answers: list[Answer], after: int = 0) -> None:
    """Every 250 names its stored row; nothing else was stored (past row `after`); every row
    was processed: a shipment row with a status, a cancel result, or a reply outcome."""
    queued = [int(i) for a in answers for i in a.queued if i != "known"]
    assert len(queued) == len(set(queued)), "two 250s named the same stored row"
    rows = {r["id"]: dict(r) for r in daemon.store.read(lambda q: q.conn.execute(
        "SELECT id, kind, rcpt, message_id, state, result FROM messages WHERE id > ?",
        (after,)).fetchall())}
    assert sorted(rows) == sorted(queued), "stored rows differ from the 250'd messages"
    for answer in answers:
        if "known" in answer.queued:  # a retry of a stored Message-ID: the first copy is there
            mid = message_id_of(crlf(answer.case.raw))
            assert any(r["message_id"] == mid for r in rows.values()), answer.case.name
    shipments = {r["message_row_id"]: dict(r) for r in daemon.store.read(lambda q: q.conn.execute(
        "SELECT message_row_id, status, reason FROM shipments").fetchall())}
    for row_id, row in rows.items():
        assert row["state"] == "processed", f"message {row_id} never processed: {row}"
        assert row["result"] and not row["result"].startswith("failed"), row
        if row["kind"] == "shipment":
            assert shipments[row_id]["status"], f"message {row_id} has no shipment status"
        elif row["kind"] == "reply":
            assert row["result"].startswith("reply: "), row


def assert_refusals_logged(answers: list[Answer], records: list[logging.LogRecord]) -> None:
    """Each refusal has a mailrelay log line naming that client (peer=127.0.0.1:port)."""
    lines = [r.getMessage() for r in records if r.name.startswith("mailrelay")]
    silent = [f"{a.case.name}: {a.code} {a.text!r}" for a in answers if a.code >= 400
              and not any(f"127.0.0.1:{a.local_port}" in line for line in lines)]
    assert not silent, "refusals without a log line naming the client:\n" + "\n".join(silent)


#: Error lines that are the relay refusing input on purpose, with the reason, not a crash.
EXPECTED_ERRORS = ("cannot be rendered: recipient address needs SMTPUTF8",)


def assert_no_errors(records: list[logging.LogRecord]) -> None:
    """No exception or error was logged by any worker (a crash turned into a log line)."""
    errors = [f"{r.name}: {r.getMessage()}" for r in records
              if r.levelno >= logging.ERROR and r.name.startswith("mailrelay")
              and not any(known in r.getMessage() for known in EXPECTED_ERRORS)]
    assert errors == []


async def assert_alive(daemon: Daemon) -> None:
    status, body = await get(daemon, "/healthz")
    assert status == 200, body
    for task in daemon._tasks:
        assert not task.done(), f"worker {task.get_name()} ended"


async def assert_unharmed(daemon: Daemon, records: list[logging.LogRecord]) -> None:
    """Nothing logged as an error, and every worker still running."""
    assert_no_errors(records)
    await assert_alive(daemon)
