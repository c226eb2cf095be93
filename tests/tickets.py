"""A review with its ticket delivered to the agent, and the agent's reply to it: the start of
every reply test (SMTP, IMAP, fuzzing, a full disk). Builders and waits only; no assertions of
their own beyond what the flow must reach."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from mailrelay.app import Daemon
from mailrelay.core.clock import FrozenClock
from mailrelay.services import invitations, reviews
from mailrelay.store import InvitationRow

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


async def invited_now(daemon: Daemon, clock: FrozenClock, *, shop_id: str, email: str,
                      name: str, reference: str) -> InvitationRow:
    """An invitation made by hand without delay and sent (one tick), as its row."""
    shop = daemon.config.shop(shop_id)
    assert shop is not None
    now = clock.now()
    decision = await daemon.store.write(lambda q: invitations.invite_manually(
        q, shop, daemon.web.signer, now, email=email, name=name, reference=reference,
        delay=timedelta(0)))
    await daemon.tick()
    invitation_id = decision.invitation_id
    assert invitation_id is not None
    inv = daemon.store.read(lambda q: q.get_invitation(invitation_id))
    assert inv is not None
    return inv


async def submitted(daemon: Daemon, clock: FrozenClock, invitation: InvitationRow,
                    **fields: str) -> int:
    """The customer's review of `invitation` (the form's fields), through the service."""
    form, _ = reviews.validate(fields)
    assert form is not None
    now = clock.now()
    _, review_id = await daemon.store.write(
        lambda q: reviews.submit_review(q, invitation, form, now))
    assert review_id is not None
    return review_id


def ticket_of(sink: Sink, review_id: int) -> EmailMessage:
    """The ticket about review `review_id` that reached the agent through the sink."""
    return next(m for m in (parsed(raw) for _, _, raw in sink.messages)
                if m["X-Mailrelay-Key"] and m["X-Mailrelay-Review"] == str(review_id))


async def ticketed(daemon: Daemon, clock: FrozenClock, sink: Sink, *, ref: str = "1057",
                   customer: str = "ann@example.com") -> Ticketed:
    inv = await invited_now(daemon, clock, shop_id=daemon.config.shops[0].id, email=customer,
                            name="Ann Lee", reference=ref)
    review_id = await submitted(daemon, clock, inv, stars="2", title="Late delivery",
                                text="The parcel took two weeks to arrive.", name="Ann Lee")
    await daemon.tick()
    ticket = ticket_of(sink, review_id)
    mid = daemon.store.read(lambda q: q.invitation_message_id(inv.id))
    assert mid is not None
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
