"""A small store with known figures for the dashboard and ledger tests: two shops ("acme",
"bolt"), the clock at Friday 20 November 2026, 09:00 UTC (FrozenClock's start), so the
4-week period is the weeks starting 26 October, 2, 9 and 16 November."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mailrelay.store import NewInvitation, NewProductReview, NewReview, Queries, ReviewText
from mailrelay.store.rows import NewMessage, NewShipment

HOUR = timedelta(hours=1)
THIS_WEEK = datetime(2026, 11, 17, 10, 0, tzinfo=UTC)  # a Tuesday
LAST_WEEK = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)
EARLIER = datetime(2026, 10, 13, 10, 0, tzinfo=UTC)  # outside 4 weeks, inside 12


@dataclass
class Seeder:
    """Rows made up for the tests, numbered so that tokens and keys never collide."""

    q: Queries
    n: int = 0
    ids: dict[str, int] = field(default_factory=dict)

    def _next(self) -> int:
        self.n += 1
        return self.n

    def shipment(self, shop: str, status: str, at: datetime, reason: str = "ok",
                 reference: str | None = None) -> int:
        n = self._next()
        message = self.q.insert_message(NewMessage(
            received_at=at, peer="127.0.0.1", mail_from="orders@shop.example",
            rcpt=f"reviews+{shop}@relay.test", shop=shop, kind="trigger",
            message_id=f"<m{n}@shop.example>", dedupe_key=f"m{n}", raw=b"x"))
        assert message is not None
        return self.q.insert_shipment(NewShipment(
            message_row_id=message, shop=shop, received_at=at, message_id=f"<m{n}@shop.example>",
            sender="orders@shop.example", customer_email=f"buyer{n}@example.com",
            customer_name=f"Buyer {n}", reference=reference or f"R-{n}", reference_rule=None,
            locale="en", send_at=None, tags=(), products=(), source="bcc", defects=(),
            status=status, reason=reason))

    def invitation(self, shop: str, at: datetime, *, status: str = "sent",
                   shipment: int | None = None, email: str | None = None,
                   reference: str | None = None) -> int:
        n = self._next()
        return self.q.insert_invitation(NewInvitation(
            shop=shop, shipment_id=shipment, customer_email=email or f"buyer{n}@example.com",
            customer_name=f"Buyer {n}", reference=reference or f"I-{n}", locale="en",
            method="automatic", status=status, token=f"token-{n}", created_at=at, due_at=at,
            sent_at=at if status == "sent" else None))

    def review(self, shop: str, stars: int, at: datetime, *, invitation: int | None = None,
               answer_after: timedelta | None = None, auto: bool = False,
               tags: tuple[str, ...] = (), products: tuple[tuple[str, int], ...] = (),
               reported: bool = False) -> int:
        invitation = invitation or self.invitation(shop, at - 24 * HOUR)
        review = self.q.insert_review(NewReview(
            shop=shop, invitation_id=invitation, method="automatic",
            text=ReviewText(stars, "Our title", "Our words", "Sam"),
            customer_email=f"reviewer{invitation}@example.com", reference=None, locale="en",
            created_at=at))
        self.q.link_review(invitation, review)
        if auto:
            self.q.add_response(review, "Thanks!", "auto", "auto", at)
        if answer_after is not None:
            self.q.add_response(review, "Dear Sam", "agent@acme.example", "agent",
                                at + answer_after)
        for tag in tags:
            self.q.add_tag(review, tag, at)
        if products:
            self.q.save_product_reviews(review, shop, [
                NewProductReview(n=i, stars=s, text=None, sku=sku, name=f"The {sku.lower()}")
                for i, (sku, s) in enumerate(products, start=1)], at)
        if reported:
            self.q.report_review(review, "abuse", at + HOUR)
        return review


def seed_known(q: Queries) -> dict[str, int]:
    """The figures the tests expect (acme), and bolt's, which must never show at acme."""
    s = Seeder(q)
    shipped = s.shipment("acme", "scheduled", THIS_WEEK - 72 * HOUR)
    invited = s.invitation("acme", THIS_WEEK - 48 * HOUR, shipment=shipped)
    s.ids["reviewed_invitation"] = invited
    s.review("acme", 2, THIS_WEEK, invitation=invited, answer_after=2 * HOUR, tags=("late",),
             products=(("HAT", 2), ("CAP", 4)))
    s.invitation("acme", THIS_WEEK - 48 * HOUR,
                 shipment=s.shipment("acme", "scheduled", THIS_WEEK - 72 * HOUR))
    s.shipment("acme", "duplicate", LAST_WEEK, "already invited for this order")
    s.shipment("acme", "suppressed", LAST_WEEK, "unsubscribed")
    s.review("acme", 5, THIS_WEEK + HOUR, auto=True)
    s.review("acme", 4, THIS_WEEK + 2 * HOUR, answer_after=4 * HOUR, tags=("praise",),
             products=(("HAT", 4),))
    s.review("acme", 1, LAST_WEEK, tags=("late",))
    s.review("acme", 3, LAST_WEEK + HOUR, reported=True, tags=("late",))
    s.review("acme", 5, EARLIER, answer_after=HOUR)
    for _ in range(3):
        s.shipment("bolt", "rejected", THIS_WEEK, "no customer address")
    s.review("bolt", 1, THIS_WEEK, tags=("late",), products=(("HAT", 1),))
    s.review("bolt", 1, LAST_WEEK, answer_after=100 * HOUR)
    s.ids["to_cancel"] = s.invitation("acme", THIS_WEEK, status="scheduled",
                                      email="zoe@example.com", reference="ORD-77")
    for n in range(60):
        s.invitation("acme", THIS_WEEK, status="scheduled", reference=f"BULK-{n:02}")
    s.ids["bolt_invitation"] = s.invitation("bolt", THIS_WEEK, status="scheduled",
                                            reference="BOLT-1")
    return s.ids
