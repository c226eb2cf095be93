"""A review with its ticket delivered to the agent, and the agent's reply to it: the start of
every reply test (SMTP, IMAP, fuzzing, a full disk). Builders and waits only; no assertions of
their own beyond what the flow must reach."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from mailrelay.app import Daemon
from mailrelay.core.clock import FrozenClock
from mailrelay.services import intake, reviews

from .mailtools import parsed, text_of
from .sink import Sink

AGENT = "support@acme.example"


class Ticketed:
    """A review with its ticket delivered to the agent's sink."""

    def __init__(self, review_id: int, ticket: EmailMessage, invitation_mid: str) -> None:
        self.review_id = review_id
        self.ticket = ticket
        self.reply_to = str(ticket["Reply-To"])
        self.invitation_mid = invitation_mid


async def ticketed(daemon: Daemon, clock: FrozenClock, sink: Sink, *, ref: str = "1057",
                   customer: str = "ann@example.com") -> Ticketed:
    shop = daemon.config.shops[0]
    now = clock.now()
    decision = await daemon.store.write(lambda q: intake.invite(
        q, shop, daemon.web.signer, now, email=customer, name="Ann Lee", reference=ref,
        delay=timedelta(0)))
    await daemon.tick()
    inv = daemon.store.read(lambda q: q.get_invitation(decision.invitation_id))  # type: ignore[arg-type]
    assert inv is not None
    form, _ = reviews.validate({"stars": "2", "title": "Late delivery",
                                "text": "The parcel took two weeks to arrive.",
                                "name": "Ann Lee"})
    assert form is not None
    _, review_id = await daemon.store.write(lambda q: reviews.submit(q, inv, form, now))
    await daemon.tick()
    ticket = next(m for m in (parsed(raw) for _, _, raw in sink.messages)
                  if m["X-Mailrelay-Key"] and m["X-Mailrelay-Review"] == str(review_id))
    mid = daemon.store.read(lambda q: q.invitation_message_id(inv["id"]))
    assert review_id is not None and mid is not None
    return Ticketed(review_id, ticket, mid)


def agent_reply(t: Ticketed, body: str, *, sender: str = AGENT, quote: bool = True,
                headers: dict[str, str] | None = None, to: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Support <{sender}>"
    msg["To"] = to or t.reply_to
    msg["Subject"] = "Re: " + str(t.ticket["Subject"])
    msg["Message-ID"] = make_msgid(domain="acme.example")
    msg["In-Reply-To"] = t.ticket["Message-ID"]
    msg["References"] = t.ticket["Message-ID"]
    for key, value in (headers or {}).items():
        msg[key] = value
    quoted = "\n".join("> " + line for line in text_of(t.ticket).splitlines())
    attribution = f"On Mon, 23 Nov 2026 at 10:00, ACME Shoes <{sender}> wrote:"
    msg.set_content(body + ("\n\n" + attribution + "\n" + quoted if quote else "") + "\n")
    return msg.as_bytes()
