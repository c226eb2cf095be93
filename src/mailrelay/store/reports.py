"""Read-only views across aggregates: listings, stats, the rating summary, customer context.

SQL only, and no writes.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from mailrelay.core.models import InvitationMethod
from mailrelay.store.connection import status_and_shop
from mailrelay.store.invitations import INVITATION_COLUMNS
from mailrelay.store.reviews import REVIEW_JOIN, REVIEW_SELECT, review_row
from mailrelay.store.rows import (
    CustomerContext,
    EarlierInvitation,
    EarlierReply,
    EarlierReview,
    InvitationRow,
    MailListing,
    MailStop,
    RatingSummary,
    ReviewRow,
    ShipmentRow,
    ShopStats,
)
from mailrelay.store.shipments import SHIPMENT_COLUMNS, read_shipment
from mailrelay.store.suppressions import SUPPRESSION_TEXT, SuppressionQueries
from mailrelay.store.timestamps import to_iso

_MAIL_LISTING = ", ".join(f.name for f in fields(MailListing))

#: Invitations mailed in the window (a generated link is never mailed; a link the customer
#: asked for on the shop's form is no invitation of ours) and how many of them have a public
#: review, written before the window ends.
_SENT_AND_ANSWERED = (
    "SELECT COUNT(*), SUM(CASE WHEN EXISTS (SELECT 1 FROM reviews r WHERE r.invitation_id = i.id"
    " AND r.reported = 0 AND r.created_at < ?3) THEN 1 ELSE 0 END) FROM invitations i"
    " WHERE i.shop = ?1 AND i.sent_at IS NOT NULL AND i.sent_at >= ?2 AND i.sent_at < ?3"
    " AND i.method NOT IN ('link', 'basic', 'organic', 'embedded')"
)
#: A shop's public reviews written in the window: how they came, their stars, when the first
#: response by a person came, and whether an automatic one was published (source 'auto').
_PUBLIC_REVIEWS = (
    "SELECT r.method, r.stars, r.created_at, (SELECT MIN(p.created_at) FROM responses p"
    " WHERE p.review_id = r.id AND p.source != 'auto'), EXISTS (SELECT 1 FROM responses p"
    " WHERE p.review_id = r.id AND p.source = 'auto') FROM reviews r WHERE r.shop = ?1"
    " AND r.created_at >= ?2 AND r.created_at < ?3 AND r.reported = 0"
)


class ReportQueries(SuppressionQueries):
    """Read-only views across aggregates: listings, stats, the rating summary, customer context."""

    def list_shipments(
        self, status: str | None = None, shop: str | None = None, limit: int | None = None
    ) -> list[ShipmentRow]:
        sql = f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE 1=1"  # noqa: S608
        where, args = status_and_shop(status, shop)
        sql += where + " ORDER BY id"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        return [read_shipment(r) for r in self.conn.execute(sql, args)]

    def shipment_invitations(self, shop: str,
                             shipments: Sequence[ShipmentRow]) -> dict[int, InvitationRow]:
        """Shipment id → the latest invitation made from it, as it is now (sent, cancelled,
        reviewed): what a ledger shows instead of the shipment's intake-time reason.

        An invitation is made when its shipment is read, so only the shop's invitations since
        the oldest of these shipments arrived are looked at (the time index's range)."""
        if not shipments:
            return {}
        ids = json.dumps(sorted({row.id for row in shipments}))
        since = min(row.received_at for row in shipments)
        rows = self.conn.execute(
            f"SELECT {INVITATION_COLUMNS} FROM invitations WHERE id IN"  # noqa: S608
            " (SELECT MAX(id) FROM invitations WHERE shop = ? AND created_at >= ?"
            " AND shipment_id IN (SELECT value FROM json_each(?)) GROUP BY shipment_id)",
            (shop, since, ids))
        found = [InvitationRow(*row) for row in rows]
        return {int(row.shipment_id): row for row in found if row.shipment_id is not None}

    def list_invitations(
        self, status: str | None = None, shop: str | None = None
    ) -> list[InvitationRow]:
        sql = f"SELECT {INVITATION_COLUMNS} FROM invitations WHERE 1=1"  # noqa: S608
        where, args = status_and_shop(status, shop)
        return [InvitationRow(*r) for r in self.conn.execute(sql + where + " ORDER BY id", args)]

    def list_mail(self, status: str | None = None, shop: str | None = None,
                  kind: str | None = None) -> list[MailListing]:
        sql = f"SELECT {_MAIL_LISTING} FROM outbox WHERE 1=1"  # noqa: S608
        where, args = status_and_shop(status, shop)
        if kind:
            where += " AND kind = ?"
            args.append(kind)
        return [MailListing(*r) for r in self.conn.execute(sql + where + " ORDER BY id", args)]

    #: The tags of each review, in one column (a tag holding a comma would split).
    _REVIEW_LIST = (
        f"{REVIEW_SELECT}, (SELECT group_concat(tag, ',') FROM (SELECT tag FROM review_tags t"  # noqa: S608
        f" WHERE t.review_id = r.id ORDER BY tag)) AS tags FROM {REVIEW_JOIN}"
    )

    def list_reviews(
        self, *, shop: str | None = None, stars: tuple[int, int] | None = None,
        replied: bool | None = None, reported: bool | None = None, tag: str | None = None,
        search: str | None = None, since: datetime | None = None, until: datetime | None = None,
        limit: int | None = None, offset: int = 0, newest_first: bool = False,
        method: str | None = None,
    ) -> list[ReviewRow]:
        """Reviews with their current response, filtered as the CLI and the web ask."""
        where: list[str] = []
        args: list[Any] = []
        if shop:
            where.append("r.shop = ?")
            args.append(shop)
        if stars:
            where.append("r.stars BETWEEN ? AND ?")
            args.extend(stars)
        if replied is not None:
            where.append("r.response_id IS NOT NULL" if replied else "r.response_id IS NULL")
        if reported is not None:
            where.append("r.reported = ?")
            args.append(int(reported))
        if tag:
            where.append("EXISTS (SELECT 1 FROM review_tags t WHERE t.review_id = r.id"
                         " AND t.tag = ?)")
            args.append(tag)
        if search:
            where.append("(r.title LIKE ? ESCAPE '\\' OR r.text LIKE ? ESCAPE '\\'"
                         " OR r.reviewer_name LIKE ? ESCAPE '\\' OR r.customer_email LIKE ?"
                         " ESCAPE '\\' OR r.reference LIKE ? ESCAPE '\\')")
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace(
                "_", "\\_") + "%"
            args.extend([pattern] * 5)
        if method:
            where.append("r.method = ?")
            args.append(method)
        if since:
            where.append("r.created_at >= ?")
            args.append(to_iso(since))
        if until:
            where.append("r.created_at < ?")
            args.append(to_iso(until))
        sql = self._REVIEW_LIST + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY r.created_at DESC, r.id DESC" if newest_first else " ORDER BY r.id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args.extend([limit, offset])
        return [review_row(r, r[-1].split(",") if r[-1] else [])
                for r in self.conn.execute(sql, args)]

    def rating_summary(self, shop: str) -> RatingSummary:
        """Count, average and star distribution of a shop's public (not reported) reviews."""
        dist = {str(n): 0 for n in range(1, 6)}
        for stars, count in self.conn.execute(
            "SELECT stars, COUNT(*) FROM reviews WHERE shop = ? AND reported = 0 GROUP BY stars",
            (shop,),
        ):
            dist[str(stars)] = count
        total = sum(dist.values())
        average = (sum(int(k) * v for k, v in dist.items()) / total) if total else None
        return RatingSummary(total, average, dist)

    def shop_revision(self, shop: str) -> str:
        """A fingerprint of everything a shop's public pages show of its reviews: it changes
        with every new or edited review or product review, response, report, unreport, tag
        and erasure.

        Read for each embed request before rendering, so it only walks the shop's rows of
        the (shop, created_at) and (shop, sku, created_at) indexes and their primary keys.
        """
        row = self.conn.execute(
            "SELECT count(*), max(id), max(updated_at), max(response_id), max(reported_at),"
            " total(reported), total(edits), (SELECT count(*) || '/' || max(t.rowid)"
            " FROM review_tags t JOIN reviews x ON x.id = t.review_id WHERE x.shop = ?1),"
            " (SELECT count(*) || '/' || max(id) || '/' || max(updated_at)"
            " FROM product_reviews WHERE shop = ?1)"
            " FROM reviews WHERE shop = ?1", (shop,)).fetchone()
        return "|".join("" if value is None else str(value) for value in row)

    def customer_context(self, shop: str, email: str, exclude_review: int,
                         limit: int = 3) -> CustomerContext:
        """The customer's most recent other reviews, invitations and replies at `shop`, and
        whether mail to them is stopped (for tickets and `reviews show`).

        Only this shop's rows: one shop's agents never see what the customer did at another
        (issue 10 §4). A bounce elsewhere shows as "address bounced", naming no shop.
        """
        reviews = [EarlierReview(*r) for r in self.conn.execute(
            "SELECT id, shop, stars, title, created_at FROM reviews WHERE shop = ?"
            " AND customer_email = ? AND id != ? ORDER BY created_at DESC LIMIT ?",
            (shop, email, exclude_review, limit))]
        invitations = [EarlierInvitation(*r) for r in self.conn.execute(
            "SELECT id, shop, reference, status, sent_at, created_at FROM invitations"
            " WHERE shop = ? AND customer_email = ? AND (review_id IS NULL OR review_id != ?)"
            " ORDER BY created_at DESC LIMIT ?", (shop, email, exclude_review, limit))]
        replies = [EarlierReply(*r) for r in self.conn.execute(
            "SELECT p.review_id, p.body, p.created_at FROM responses p"
            " JOIN reviews r ON r.id = p.review_id WHERE r.shop = ? AND r.customer_email = ?"
            " AND r.id != ? ORDER BY p.created_at DESC LIMIT ?",
            (shop, email, exclude_review, limit))]
        kind = self.suppression(shop, email)
        status = [MailStop(kind, SUPPRESSION_TEXT[kind])] if kind else []
        return CustomerContext(reviews, invitations, replies, status)

    def stats(self, shop: str, since: datetime | None,
              until: datetime | None = None) -> ShopStats:
        """The numbers `mailrelay stats` prints for one shop; purged rows still count.

        Reviews are those of the public page (not reported, so not forgotten either); an
        automatic response is no response: the rate and the median are of people's answers.
        Conversion follows the invitations sent in the window to their public reviews.
        """
        window = (shop, to_iso(since) if since else "", to_iso(until) if until else "9999")
        shipments = {r[0]: r[1] for r in self.conn.execute(
            "SELECT status, COUNT(*) FROM shipments WHERE shop = ? AND received_at >= ?"
            " AND received_at < ? GROUP BY status ORDER BY status", window)}
        sent, answered = self.conn.execute(_SENT_AND_ANSWERED, window).fetchone()
        hidden = int(self.conn.execute(
            "SELECT COUNT(*) FROM reviews WHERE shop = ? AND created_at >= ? AND created_at < ?"
            " AND reported != 0", window).fetchone()[0])
        public = [_PublicReview(*r) for r in self.conn.execute(_PUBLIC_REVIEWS, window)]
        return _figures_of(shop, shipments, int(sent), int(answered or 0), public, hidden)

    def counts(self, table: str, column: str) -> dict[str, int]:
        """Row counts grouped by one column (for /metrics); names come from our code."""
        return {str(k): int(v) for k, v in self.conn.execute(
            f"SELECT {column}, COUNT(*) FROM {table} GROUP BY {column}")}  # noqa: S608

    def schema_version(self) -> int:
        """The newest migration applied: a trivial query, /healthz's round trip to the store."""
        row = self.conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0) if row else 0

    def replies_by_outcome(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT outcome, COUNT(*) FROM replies GROUP BY outcome")}


@dataclass(frozen=True, slots=True)
class _PublicReview:
    method: str
    stars: int
    created_at: str
    first_answer_at: str | None
    auto_response: int


def _figures_of(shop: str, shipments: dict[str, int], sent: int, answered: int,
                public: list[_PublicReview], hidden: int) -> ShopStats:
    """The figures from the counted rows (the arithmetic apart from the SQL)."""
    stars = {str(n): 0 for n in range(1, 6)}
    by_method = {str(m): 0 for m in InvitationMethod}
    delays: list[float] = []
    for review in public:
        stars[str(review.stars)] += 1
        by_method[review.method] = by_method.get(review.method, 0) + 1
        if review.first_answer_at:
            delays.append((datetime.fromisoformat(review.first_answer_at)
                           - datetime.fromisoformat(review.created_at)).total_seconds())
    count = len(public)
    return ShopStats(
        shop=shop,
        shipments=shipments,
        invitations_sent=sent,
        reviews=count,
        reviews_by_method=by_method,
        reviews_from_invitations=answered,
        conversion=round(answered / sent, 4) if sent else None,
        stars=stars,
        average=round(sum(int(k) * v for k, v in stars.items()) / count, 2) if count else None,
        response_rate=round(len(delays) / count, 4) if count else None,
        median_first_response_s=statistics.median(delays) if delays else None,
        auto_responses=sum(1 for review in public if review.auto_response),
        reviews_hidden=hidden,
    )
