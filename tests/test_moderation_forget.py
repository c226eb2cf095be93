"""`forget EMAIL` and moderation (issue 14): what agents and owners wrote about the customer's
review in its reports (reasons, owners' notes; in the reports, their audit entries, the replies'
outcomes and the mail about them) is erased from the store's files; who reported and decided,
the states and the public reasons stay, and another customer's reports keep their words."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.services import moderation

from .cli_runner import cli
from .conftest import ConfigFactory
from .mailtools import drain, send, settle, via_sink
from .sink import Sink
from .test_console_login import registered
from .test_forget import relay_files, rows_with
from .test_moderation import ALERTS, OWNER
from .tickets import AGENT, agent_reply, ticketed
from .traces import forms_of, scan

ANN_REASON = "mentions Ann's neighbour Wilhelmina by name"
ANN_AGAIN = "and the Zebedeegasse too"
ANN_NOTE = "Checked: Quillonby asked us to remove it"
#: One word of each text, scanned for in every byte form in the store's files.
WORDS = ("Wilhelmina", "Zebedeegasse", "Quillonby")
CLEO_REASON = "advert for the cobbler round the corner"


@pytest.fixture
def shops(make_config: ConfigFactory, sink: Sink) -> Config:
    return via_sink(make_config(shop_extra=f'alerts = ["{ALERTS}"]'), sink)


@pytest.fixture
async def daemon(shops: Config, clock: FrozenClock) -> AsyncIterator[Daemon]:
    async with Daemon(shops, clock) as running:
        yield running


def reports_table(shops: Config) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(shops.store.path)
    try:
        return list(conn.execute(
            "SELECT review_id, reporter, reason, state, decided_by, decision_note, category"
            " FROM review_reports ORDER BY id"))
    finally:
        conn.close()


@pytest.mark.sqlite_only  # scans the database's files for the words
async def test_forget_erases_the_reasons_and_notes_of_the_customers_reports_but_not_the_counts(
    daemon: Daemon, shops: Config, clock: FrozenClock, sink: Sink,
) -> None:
    await registered(daemon, shops, OWNER, "acme")
    ann = await ticketed(daemon, clock, sink)
    cleo = await ticketed(daemon, clock, sink, ref="2040", customer="cleo@example.com")
    for t, reason in ((ann, ANN_REASON), (ann, ANN_AGAIN), (cleo, CLEO_REASON)):
        await send(daemon, agent_reply(t, f"#report {reason}\n"), t.reply_to, sender=AGENT)
        await settle(daemon)
    ann_report, cleo_report = daemon.store.read(lambda q: q.reports("acme"))
    now = clock.now()
    for found, category, note in ((ann_report, "personal_data", ANN_NOTE),
                                  (cleo_report, "spam", "Seen it before")):
        refusal = await daemon.store.write(lambda q, f=found, c=category, n=note: moderation.decide(
            q, daemon.config, "acme", f.id, moderation.Decision(True, OWNER, n, c), now))
        assert refusal is None
    await drain(daemon)
    for word in WORDS:
        assert scan(relay_files(shops), forms_of(word)), word  # the test sees what it removes

    code, out = await asyncio.to_thread(cli, shops, "forget", "ann@example.com")
    assert code == 0, out

    for word in WORDS:
        assert scan(relay_files(shops), forms_of(word)) == {}, (word, rows_with(shops, word))
    assert reports_table(shops) == [
        (ann.review_id, AGENT, "erased on request", "confirmed", OWNER, None, "personal_data"),
        (cleo.review_id, AGENT, CLEO_REASON, "confirmed", OWNER, "Seen it before", "spam")]
    audit = daemon.store.read(lambda q: q.review_audit(ann.review_id))
    assert [(a.action, a.actor) for a in audit if a.action.startswith("moderation.")] == [
        ("moderation.reported", AGENT), ("moderation.reported_again", AGENT),
        ("moderation.confirmed", OWNER)]
    assert daemon.store.read(lambda q: q.removed_counts("acme")) == {"spam": 1}
    [cleo_trail] = [a for a in daemon.store.read(lambda q: q.review_audit(cleo.review_id))
                    if a.action == "moderation.confirmed"]
    assert cleo_trail.detail["reason"] == CLEO_REASON
