"""A customer's way through the daemon's real listeners at two shops: the shop's trigger by
SMTP, the review form over HTTP, a bounce with the null sender, and the mail the relay
delivered to its Maildir outbox (the ticket among it)."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from pathlib import Path

import aiohttp

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.routing import signed_sender
from mailrelay.store import InvitationRow

from .conftest import second_shop
from .mailtools import parsed, send, session_send, settle
from .web_forms import submit

SECOND_SHOP = second_shop(cancel_address="cancel+bolt@relay.test")


def outbox_files(config: Config) -> list[Path]:
    """Delivered mail (new/ and cur/; tmp/ holds files being written)."""
    folders = (config.outbound.maildir / "new", config.outbound.maildir / "cur")
    return sorted(p for f in folders if f.is_dir() for p in f.iterdir() if p.is_file())


def delivered(config: Config) -> list[EmailMessage]:
    return [parsed(p.read_bytes()) for p in outbox_files(config)]


def ticket_for(config: Config, review_id: int) -> EmailMessage:
    return next(m for m in delivered(config)
                if m["X-Mailrelay-Key"] and m["X-Mailrelay-Review"] == str(review_id))


def exchange_dsn(rcpt: str, message_id: str, *, name: str, address: str) -> bytes:
    """A DSN as Exchange sends it: the returned headers in base64, the text in QP."""
    local, domain = address.lower().split("@")
    returned = base64.encodebytes(
        f"From: ACME Shoes <reviews@acme.example>\r\nTo: {name} <{address}>\r\n"
        f"Message-ID: {message_id}\r\nSubject: How was your order?\r\n".encode()).decode()
    return (
        "From: Microsoft Outlook <postmaster@mx.example.com>\r\n"
        f"To: {rcpt}\r\nSubject: Undeliverable: How was your order?\r\n"
        "Message-ID: <dsn-bob@mx.example.com>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain; charset=us-ascii\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "Delivery has failed to these recipients or groups:\r\n\r\n"
        f"{local}=40{domain[:3]}=\r\n{domain[3:]}\r\n"
        "The recipient's mailbox is full and can't accept messages now.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.2.2\r\n"
        "Diagnostic-Code: smtp; 552 5.2.2 mailbox full\r\n\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: base64\r\n"
        f"\r\n{returned}--b--\r\n"
    ).encode()


async def bounce(daemon: Daemon, rcpt: str, raw: bytes) -> None:
    """DSNs come with the null reverse-path, MAIL FROM:<> (RFC 5321 4.5.5), to the signed VERP
    address the message left with (`rcpt` is the address as stored, unsigned)."""
    signed = signed_sender(rcpt, daemon.web.signer.bounce_tag)
    await session_send(daemon, raw, signed)
    await settle(daemon)


async def send_trigger(daemon: Daemon, bcc: str, raw: bytes) -> None:
    await send(daemon, raw, bcc, sender="orders@platform.example")


async def review(daemon: Daemon, invitation: InvitationRow, stars: int, text: str,
                 name: str) -> int:
    """The customer fills in the form their invitation links to (over HTTP, CSRF and all)."""
    full = daemon.store.read(lambda q: q.get_invitation(invitation.id))
    assert full is not None
    token = full.token
    async with aiohttp.ClientSession() as http:
        status, page = await submit(http, daemon, token, stars=str(stars), title=text[:20],
                                    text=text, name=name)
    assert status == 200, page
    row = daemon.store.read(lambda q: q.invitation_by_token(token))
    assert row is not None and row.review_id, row
    return row.review_id
