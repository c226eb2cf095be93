"""Reading what render produced: its text and HTML bodies, its header block, and the header
injections every renderer must refuse; plus writing a template override file."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

from mailrelay.render import RenderedMail

INJECTIONS = [
    "Eve\r\nBcc: evil@example.com",
    "Eve\nBcc: evil",
    "Eve\rBcc: evil",
    "Eve\0\r\nBcc: evil",
    "Eve\u2028Bcc: evil",
    "Eve\x85Bcc: evil",
    "=?utf-8?q?Eve=0D=0ABcc:_evil?=",
    "=?utf-8?b?RXZlDQpCY2M6IGV2aWw=?=",
]


def parse(mail: RenderedMail) -> EmailMessage:
    """The rendered mail as a mail client reads it (the modern policy)."""
    message = email.message_from_bytes(mail.raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def rendered_text(mail: RenderedMail) -> str:
    """The text/plain body of a rendered mail, with LF line ends."""
    part = parse(mail).get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")  # the raw body has CRLF


def rendered_html(mail: RenderedMail) -> str:
    part = parse(mail).get_body(("html",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def header_names(raw: bytes) -> list[str]:
    return [
        line.split(b":", 1)[0].decode().lower()
        for line in header_block(raw).split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]


def write(path: Path, text: str) -> None:
    """A template file (a shop's override), its folders made as needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
