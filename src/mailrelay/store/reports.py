"""Read-only views across aggregates: listings, stats, the rating summary, customer context.

SQL only, and no writes.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

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
from mailrelay.store.shipments import SHIPMENT_COLUMNS, shipment_row
from mailrelay.store.suppressions import SUPPRESSION_TEXT, SuppressionQueries
from mailrelay.store.timestamps import to_iso

_MAIL_LISTING = ", ".join(f.name for f in fields(MailListing))


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
        return [shipment_row(r) for r in self.conn.execute(sql, args)]

    def list_invitations(
        self, status: str | None = None, shop: str | None = None
    ) -> list[InvitationRow]:
        sql = f"SELECT {INVITATION_COLUMNS} FROM invitations WHERE 1=1"  # noqa: S608
        where, args = status_and_shop(status, shop)
        return [InvitationRow(*r) for r in self.conn.execute(sql + where + " ORDER BY id", args)]

    def list_mail(self, status: str | None = None, shop: str | None = None
                  ) -> list[MailListing]:
        sql = f"SELECT {_MAIL_LISTING} FROM outbox WHERE 1=1"  # noqa: S608
        where, args = status_and_shop(status, shop)
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
        """The numbers `mailrelay stats` prints for one shop; purged rows still count."""
        lo = to_iso(since) if since else ""
        hi = to_iso(until) if until else "9999"
        shipments = {r[0]: r[1] for r in self.conn.execute(
            "SELECT status, COUNT(*) FROM shipments WHERE shop = ? AND received_at >= ?"
            " AND received_at < ? GROUP BY status ORDER BY status", (shop, lo, hi))}
        sent = int(self.conn.execute(
            "SELECT COUNT(*) FROM invitations WHERE shop = ? AND sent_at IS NOT NULL"
            " AND sent_at >= ? AND sent_at < ? AND method != 'link'", (shop, lo, hi)
        ).fetchone()[0])
        rows = self.conn.execute(
            "SELECT stars, created_at, first_response_at FROM reviews WHERE shop = ?"
            " AND created_at >= ? AND created_at < ?", (shop, lo, hi)).fetchall()
        stars = {str(n): 0 for n in range(1, 6)}
        delays: list[float] = []
        for star, created, first in rows:
            stars[str(star)] += 1
            if first:
                delays.append((datetime.fromisoformat(first)
                               - datetime.fromisoformat(created)).total_seconds())
        count = len(rows)
        delays.sort()
        median = None
        if delays:
            mid = len(delays) // 2
            median = delays[mid] if len(delays) % 2 else (delays[mid - 1] + delays[mid]) / 2
        return ShopStats(
            shop=shop,
            shipments=shipments,
            invitations_sent=sent,
            reviews=count,
            conversion=round(count / sent, 4) if sent else None,
            stars=stars,
            average=round(sum(int(k) * v for k, v in stars.items()) / count, 2)
            if count else None,
            response_rate=round(len(delays) / count, 4) if count else None,
            median_first_response_s=median,
        )

    def counts(self, table: str, column: str) -> dict[str, int]:
        """Row counts grouped by one column (for /metrics); names come from our code."""
        return {str(k): int(v) for k, v in self.conn.execute(
            f"SELECT {column}, COUNT(*) FROM {table} GROUP BY {column}")}  # noqa: S608

    def replies_by_outcome(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT outcome, COUNT(*) FROM replies GROUP BY outcome")}
