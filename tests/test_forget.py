"""`forget EMAIL` after a whole loop (trigger, invitation, review, ticket, agent replies by SMTP
and IMAP) at two shops: no form of the address is left in the database, its WAL, or any file
the relay wrote, and nobody else's data is touched (issue 10 §5)."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.services import privacy
from mailrelay.services.privacy import names
from mailrelay.store import NewMessage, Store

from .cli_runner import cli
from .conftest import ConfigFactory
from .customer_flow import (
    SECOND_SHOP,
    bounce,
    exchange_dsn,
    outbox_files,
    review,
    send_trigger,
    ticket_for,
)
from .imap_servers import ImapServer, PymapServer
from .mailtools import drain, parsed, send, settle, text_of, trigger
from .traces import forms_of, hits, scan

BOB = "Bob.Brook@Example.com"  # as the shop platform wrote it; stored lower-case
BOB_NAME = "Bob Brook"
BOB_TEXTS = ("The courier left my parcel in the rain", "Brake cable arrived frayed")
ANN, CLEO = "ann.able@example.com", "cleo.cole@example.com"

AGENTS = {"acme": "support@acme.example", "bolt": "help@bolt.example"}


# --- the variant generator and the matcher, on their own ----------------------------------


def qp_split_everywhere(address: str) -> Iterator[bytes]:
    """A quoted-printable part with the address split by a soft break at each position."""
    for i in range(1, len(address)):
        body = f"Email: {address[:i]}=\r\n{address[i:]}\r\n".replace("@", "=40")
        yield (b"Content-Type: text/plain; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body.encode())


def test_a_message_names_the_address_in_every_encoding_and_split() -> None:
    address = BOB.lower()
    for raw in qp_split_everywhere(BOB):
        assert names(raw, address), raw
    for pad in ("", "x", "xy"):
        part = base64.encodebytes(f"{pad}Reviewer: {BOB}\n".encode()).decode()
        raw = ("Content-Type: text/plain; charset=utf-8\r\n"
               f"Content-Transfer-Encoding: base64\r\n\r\n{part}").encode()
        assert names(raw, address)
    b_word = base64.b64encode(f"Re: {BOB_NAME} <{BOB}>".encode()).decode()
    assert names(f"Subject: =?utf-8?b?{b_word}?=\r\n\r\nhi\r\n".encode(), address)
    assert names(b"Subject: =?utf-8?q?Re:_Bob_=3CBob=2EBrook=40Example=2Ecom=3E?=\r\n\r\n",
                 address)
    # An encoded-word split in two, and a header folded at the '@'.
    assert names(b"Subject: =?utf-8?q?bob.brook?=\r\n =?utf-8?q?=40example.com?=\r\n\r\n",
                 address)
    assert names(b"To: Bob <bob.brook@\r\n example.com>\r\n\r\n", address)
    html = b"<p>bob.brook&#64;<wbr>example.com</p>"
    assert names(b"Content-Type: text/html\r\n\r\n" + html, address)


def test_a_longer_address_that_contains_it_is_not_the_person() -> None:
    raw = b"To: joann.able@example.com, ann.able@example.com.au\r\n\r\nann.able@example.co\r\n"
    assert not names(raw, ANN)
    assert names(raw + b"cc ANN.ABLE@example.com.\r\n", ANN)


def test_the_scanner_finds_each_generated_form() -> None:
    forms = forms_of(BOB)
    assert hits(b"xx BOB.BROOK=40EXAMPLE.COM", forms)
    assert hits(b"bob.bro=\r\nok@example.com", forms)
    assert hits(base64.encodebytes(b"ab " + BOB.lower().encode() * 3), forms)
    assert not hits(b"ann.able@example.com " + base64.b64encode(ANN.encode()), forms)


# --- the whole loop -----------------------------------------------------------------------


def quoted_ticket(ticket: EmailMessage) -> str:
    return "\n".join("> " + line for line in text_of(ticket).splitlines())


def smtp_reply(ticket: EmailMessage, agent: str, answer: str, *, message_id: bool = True
               ) -> bytes:
    """Plain text in quoted-printable, the way Thunderbird sends it: the quoted ticket's long
    lines broken with soft breaks, one of them inside the customer's address. Without a
    Message-ID (some scripts send none) nothing but its text ties it to the customer."""
    quoted = quoted_ticket(ticket).replace(
        f"> Email:       {BOB.lower()}", "> Email:       Bob.Bro=\nok=40Example.com")
    body = (f"{answer}\r\n\r\nOn Mon, 23 Nov 2026 at 10:00, Support <{agent}> wrote:\r\n"
            + quoted.replace("\n", "\r\n") + "\r\n")
    head = (f"From: Support <{agent}>\r\nTo: {ticket['Reply-To']}\r\n"
            f"Subject: Re: {ticket['Subject']}\r\n"
            + (f"Message-ID: {make_msgid(domain='agent.example')}\r\n" if message_id else "")
            + f"In-Reply-To: {ticket['Message-ID']}\r\nReferences: {ticket['Message-ID']}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n")
    return head.encode() + body.encode()


def imap_reply(ticket: EmailMessage, agent: str, answer: str, *, about: str) -> bytes:
    """multipart/alternative, both parts base64 (as Outlook on the web sends them), with the
    customer named in an encoded-word Subject."""
    msg = EmailMessage()
    msg["From"] = f"Help Desk <{agent}>"
    msg["To"] = str(ticket["Reply-To"])
    subject = base64.b64encode(f"Re: review by {about}".encode()).decode()
    msg["Subject"] = f"=?utf-8?b?{subject}?="
    msg["Message-ID"] = make_msgid(domain="agent.example")
    msg["In-Reply-To"] = msg["References"] = str(ticket["Message-ID"])
    quoted = quoted_ticket(ticket)
    text = f"{answer}\n\nOn Tue, 24 Nov 2026, Bolt Bikes <{agent}> wrote:\n{quoted}\n"
    msg.set_content(text, cte="base64")
    html_quote = quoted.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "<br>")
    msg.add_alternative(f"<div>{answer.replace(chr(10), '<br>')}</div><blockquote>"
                        f"{html_quote}</blockquote>", subtype="html", cte="base64")
    return msg.as_bytes()


def bob_at_bolt(order: str) -> bytes:
    """Bolt's trigger for Bob: his name and address in the To header and, base64-encoded, in
    the body, where only decoding finds them."""
    msg = EmailMessage()
    msg["From"] = "Bolt Bikes <shop@bolt.example>"
    msg["To"] = f"{BOB_NAME} <{BOB}>"
    msg["Subject"] = f"Order #{order} has shipped"
    msg["Message-ID"] = make_msgid(domain="platform.example")
    msg.set_content(f"Ship to: {BOB_NAME} <{BOB}>\nOrder #{order}\n", cte="base64")
    return msg.as_bytes()


async def replied(daemon: Daemon, count: int, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while daemon.store.read(lambda q: sum(q.replies_by_outcome().values())) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} replies processed")
        await asyncio.sleep(0.05)
    await settle(daemon)
    await drain(daemon)


def relay_files(config: Config) -> list[Path]:
    db = config.store.path
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"), db.parent]


def rows_with(config: Config, text: str) -> list[tuple[str, str, str]]:
    """(table, column, value) of live rows holding `text`: what a failed scan points at."""
    conn = sqlite3.connect(config.store.path)
    found = []
    try:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            cursor = conn.execute(f"SELECT * FROM {table}")  # noqa: S608
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    data = value if isinstance(value, bytes) else str(value).encode()
                    if text.lower().encode() in data.lower():
                        found.append((table, column, repr(data[:6000])))
    finally:
        conn.close()
    return found


@pytest.fixture
def umask_022() -> Iterator[None]:
    """Run as an operator does by hand (umask 022): the relay must set its own modes."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_forget_after_a_full_loop_leaves_no_form_of_the_address_on_disk(
    make_config: ConfigFactory, clock: FrozenClock, pymap: ImapServer, umask_022: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mailrelay")
    config = make_config(more=pymap.toml() + SECOND_SHOP)
    async with Daemon(config, clock) as daemon:
        # The same person at both shops, and one other customer at each.
        await send_trigger(daemon, "reviews+acme@relay.test", trigger(
            to=f"=?utf-8?q?Bob_Brook?= <{BOB}>", subject="Order #1001"))
        await send_trigger(daemon, "reviews+bolt@relay.test", bob_at_bolt("2001"))
        await send_trigger(daemon, "reviews+acme@relay.test",
                           trigger(to=f"Ann Able <{ANN}>", subject="Order #1002"))
        await send_trigger(daemon, "reviews+bolt@relay.test",
                           trigger(to=f"Cleo Cole <{CLEO}>", subject="Order #2002"))
        await settle(daemon)
        clock.advance(timedelta(days=7))
        await daemon.tick()
        invitations = {(i.shop, i.customer_email): i
                       for i in daemon.store.read(lambda q: q.list_invitations())}
        assert len(invitations) == 4, invitations
        ids = {
            "bob-acme": await review(daemon, invitations["acme", BOB.lower()], 2,
                                     BOB_TEXTS[0] + ", soaked through.", BOB_NAME),
            "bob-bolt": await review(daemon, invitations["bolt", BOB.lower()], 1,
                                     BOB_TEXTS[1] + " and bent.", BOB_NAME),
            "ann": await review(daemon, invitations["acme", ANN], 5,
                                "Lovely shoes, they fit at once.", "Ann Able"),
            "cleo": await review(daemon, invitations["bolt", CLEO], 4,
                                 "The bell rings loud and clear.", "Cleo Cole"),
        }
        await drain(daemon)

        # Agent replies: SMTP in quoted-printable (published, emailed, and one only quoted
        # text, refused and explained), IMAP in base64 (a note, and a published answer).
        acme, bolt = AGENTS["acme"], AGENTS["bolt"]
        for raw in (
            smtp_reply(ticket_for(config, ids["bob-acme"]), acme,
                       "We are sorry: a new pair is on its way."),
            smtp_reply(ticket_for(config, ids["bob-acme"]), acme, "", message_id=False),
            smtp_reply(ticket_for(config, ids["ann"]), acme, "Glad they fit, enjoy them!"),
        ):
            ticket_to = parsed(raw)["To"]
            await send(daemon, raw, str(ticket_to), sender=acme)
        await pymap.append(imap_reply(ticket_for(config, ids["bob-bolt"]), bolt,
                                     "#note\nCalled him, a new cable is in the post.",
                                     about=f"{BOB_NAME} <{BOB}>"))
        await pymap.append(imap_reply(ticket_for(config, ids["cleo"]), bolt,
                                     "Thank you, ring on!", about=f"Cleo Cole <{CLEO}>"))
        await replied(daemon, 5)
        # Bob's mailbox at acme is full for good: a DSN as Exchange sends it, the returned
        # headers in base64 and the text in quoted-printable.
        bob_acme = daemon.store.read(
            lambda q: q.get_invitation(invitations["acme", BOB.lower()].id))
        assert bob_acme is not None and bob_acme.outbox_id is not None
        invitation = daemon.store.read(lambda q: q.get_mail(bob_acme.outbox_id))
        assert invitation is not None
        await bounce(daemon, str(invitation.envelope_from),
                     exchange_dsn(str(invitation.envelope_from), str(invitation.message_id),
                                  name=BOB_NAME, address=BOB))
        bounced = daemon.store.read(lambda q: q.get_mail(invitation.id))
        assert bounced is not None and bounced.status == "bounced"
        outcomes = daemon.store.read(lambda q: q.replies_by_outcome())
        assert outcomes == {"published": 3, "note": 1, "rejected": 1}, outcomes
        before = {k: daemon.store.read(lambda q, i=v: q.get_review(i)) for k, v in ids.items()}
        ann_files = [p for p in outbox_files(config) if ANN.encode() in p.read_bytes()]
        assert len(ann_files) >= 2  # her invitation and the response to her review

        forms = forms_of(BOB)
        assert scan(relay_files(config), forms)  # the test can see the traces it removes

        code, out = await asyncio.to_thread(cli, config, "forget", "BOB.Brook@example.COM")
        assert code == 0, out
        assert "warning" not in out
        # The agents' replies we filed on the IMAP server quote him: deleted there too (a
        # check from outside found them kept); Cleo's stays.
        filed = await pymap.messages("mailrelay/processed")
        assert filed and not any(names(raw, BOB.lower()) for raw in filed), out
        assert any(names(raw, CLEO) for raw in filed)
        assert "1 filed reply deleted on the IMAP server" in out

        # While the daemon still runs (its WAL in use): nothing of Bob, in any form.
        for text in (BOB_NAME, *BOB_TEXTS):
            forms = forms_of(text)
            assert scan(relay_files(config), forms) == {}, (text, rows_with(config, text))
        assert scan(relay_files(config), forms_of(BOB)) == {}

        # Bob's reviews keep only their stars, hidden; responses and notes are gone.
        for key in ("bob-acme", "bob-bolt"):
            row = daemon.store.read(lambda q, k=key: q.get_review(ids[k]))
            assert row is not None
            earlier = before[key]
            assert earlier is not None and row.stars == earlier.stars
            assert (row.title, row.text, row.reviewer_name, row.customer_email,
                    row.response, row.reported) == (None, None, None, None, None, 1)
            assert daemon.store.read(lambda q, k=key: q.responses_of(ids[k])) == []
            assert daemon.store.read(lambda q, k=key: q.notes_of(ids[k])) == []

        # Ann (same shop) and Cleo (the other shop) are untouched.
        for key in ("ann", "cleo"):
            row = daemon.store.read(lambda q, k=key: q.get_review(ids[k]))
            assert row == before[key]
        assert all(p.exists() for p in ann_files)
        assert any(CLEO.encode() in p.read_bytes() for p in outbox_files(config))
        bodies = daemon.store.read(lambda q: q.stored_mail("message_bodies", 0, 100))
        assert any(ANN.encode() in raw for _, raw in bodies)
        assert any(CLEO.encode() in raw for _, raw in bodies)
        code, out = cli(config, "invite", "--shop", "bolt", "--email", BOB)
        assert code == 1 and "suppressed" in out

    # After a clean stop, too.
    assert scan(relay_files(config), forms_of(BOB)) == {}
    # The log named messages, invitations and reviews, never a customer or an agent.
    logged = "\n".join(r.getMessage() for r in caplog.records).lower()
    assert "outbox:" in logged and "reply source=" in logged
    for address in (BOB.lower(), ANN, CLEO, *AGENTS.values()):
        assert address not in logged, address


@pytest.mark.sqlite_only  # the database file's mode
def test_the_store_and_the_outbox_are_created_owner_only(
    make_config: ConfigFactory, tmp_path: Path, umask_022: None
) -> None:
    config = make_config()

    async def run() -> None:
        clock = FrozenClock()
        async with Daemon(config, clock) as daemon:
            await send_trigger(daemon, "reviews+acme@relay.test", trigger())
            await settle(daemon)
            clock.advance(timedelta(days=7))
            await daemon.tick()
            db = config.store.path
            for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"),
                         *outbox_files(config)):
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert outbox_files(config)
            for folder in (db.parent, config.outbound.maildir,
                           config.outbound.maildir / "new"):
                assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder

    asyncio.run(run())
    assert stat.S_IMODE(config.security.secret_file.stat().st_mode) == 0o600
    assert sqlite3.connect(config.store.path).execute("PRAGMA integrity_check").fetchone()[0] \
        == "ok"


def stored(store: Store, raw: bytes, n: int) -> int:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    row_id = store.write_sync(lambda q: q.insert_message(NewMessage(
        now, "127.0.0.1", "orders@platform.example", "reviews+acme@relay.test", "acme",
        "shipment", f"<m{n}@platform.example>", f"mid:{n}", raw)))
    assert row_id is not None
    return row_id


def test_forget_erases_waiting_mail_that_names_the_person_and_leaves_a_longer_address(
    tmp_path: Path,
) -> None:
    with Store(tmp_path / "var" / "relay.db") as store:
        bob_id = stored(store, trigger(to=f"=?utf-8?b?{base64.b64encode(BOB.encode()).decode()}"
                                          "?= <orders@elsewhere.example>"), 1)
        jo_id = stored(store, trigger(to="Jo <jo.bob.brook@example.com>",
                                      body="Copy to bob.brook@example.com.au"), 2)
        report = privacy.forget(store, BOB.lower(), datetime(2026, 12, 1, tzinfo=UTC),
                                maildir=tmp_path / "var" / "outbox")
        assert report.counts["messages"] == 1 and report.wal_truncated
        pending = store.read(lambda q: q.pending_messages(10))
        assert [m.id for m in pending] == [jo_id]  # Bob's is no longer waiting for intake
        assert b"jo.bob.brook@example.com" in pending[0].raw
        assert store.read(lambda q: q.stored_mail("message_bodies", 0, 10)) == [
            (jo_id, pending[0].raw)]
        assert bob_id != jo_id


def test_forget_with_the_imap_server_down_still_erases_locally_and_says_what_it_skipped(
    make_config: ConfigFactory, tmp_path: Path
) -> None:
    server = PymapServer(tmp_path / "imap")  # configured, never started: nothing listens
    config = make_config(more=server.toml())
    code, out = cli(config, "forget", BOB)
    assert code == 0, out
    assert "the address is suppressed" in out
    assert "warning: replies filed on the IMAP server" in out
    assert "mailrelay/processed" in out and "run forget again" in out


async def test_an_order_arriving_after_forget_keeps_the_decision_but_not_the_person(
    make_config: ConfigFactory, clock: FrozenClock
) -> None:
    """The shop keeps BCC'ing orders; `shipments` once showed the erased name and address
    again, next to "address erased on request", for the whole retention period."""
    config = make_config(more=SECOND_SHOP)
    async with Daemon(config, clock) as daemon:
        code, out = await asyncio.to_thread(cli, config, "forget", BOB)
        assert code == 0, out
        await send_trigger(daemon, "reviews+bolt@relay.test", bob_at_bolt("2077"))
        await send_trigger(daemon, "reviews+acme@relay.test",
                           trigger(to=f"Ann Able <{ANN}>", subject="Order #1077"))
        await settle(daemon)
        rows = {r.reference: r for r in daemon.store.read(lambda q: q.list_shipments())}
        assert (rows["2077"].status, rows["2077"].reason) == (
            "suppressed", "address erased on request")
        assert (rows["2077"].customer_email, rows["2077"].customer_name) == (None, None)
        assert rows["1077"].customer_email == ANN  # someone else's order is kept whole
        bodies = daemon.store.read(lambda q: q.stored_mail("message_bodies", 0, 100))
        assert not any(names(raw, BOB.lower()) for _, raw in bodies)
        assert any(names(raw, ANN) for _, raw in bodies)
        code, out = await asyncio.to_thread(cli, config, "shipments", "--format", "json")
        assert BOB.lower() not in out.lower() and BOB_NAME not in out


@pytest.mark.postgresql
def test_forget_on_postgresql_says_the_old_row_versions_are_freed_not_zeroed(
    make_config: ConfigFactory,
) -> None:
    config = make_config()
    assert config.store.url is not None
    code, out = cli(config, "forget", BOB)
    assert code == 0, out
    assert "the address is suppressed" in out
    assert "freed for reuse, not zeroed" in out and "backups keep them" in out
    assert "VACUUM of the emptied tables failed" not in out


@pytest.mark.sqlite_only  # the test above is its PostgreSQL twin
def test_forget_on_sqlite_says_nothing_of_postgresql(make_config: ConfigFactory) -> None:
    config = make_config()
    code, out = cli(config, "forget", BOB)
    assert code == 0, out
    assert "not zeroed" not in out and "warning" not in out
