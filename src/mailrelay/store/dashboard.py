"""The owners' dashboard and ledgers (issue 14): a shop's figures per week, its invitation
funnel, stars per product and per tag, and its invitations and shipments searched and paged.

SQL only, and no writes; every figure is aggregated here, over indexes (migration 11).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from mailrelay.store.connection import Bound
from mailrelay.store.invitations import INVITATION_COLUMNS
from mailrelay.store.rows import InvitationRow, ShipmentRow
from mailrelay.store.shipments import SHIPMENT_COLUMNS, read_shipment
from mailrelay.store.timestamps import to_iso


@dataclass(frozen=True, slots=True)
class WeekFigures:
    """One week of a shop's public reviews: how many, their average stars, how many a person
    answered (an automatic response is no answer, as in `stats`) and the median hours to that
    first answer."""

    n: int  # the week's position, 0 = the first of the period
    reviews: int
    average: float | None
    answered: int
    median_hours: float | None


@dataclass(frozen=True, slots=True)
class FunnelFigures:
    """Shipments received in a period → invited (the invitation was mailed) → reviewed (a public
    review from that invitation); the shipments that yielded no invitation, per status."""

    shipments: int
    skipped: dict[str, int]
    invited: int
    reviewed: int


@dataclass(frozen=True, slots=True)
class GroupStars:
    """Stars of one product (by SKU) or one tag: how many ratings and their average."""

    key: str
    label: str
    reviews: int
    average: float


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LedgerPage(Generic[T]):
    """One page of a ledger and how many rows match in all."""

    total: int
    rows: list[T]


#: Each review of the weeks (not reported) with its first answer by a person (looked up only
#: for a review with a response); the totals and the median per week, by window functions
#: (one pass over idx_reviews_figures).
_WEEKS = (
    "WITH weeks(n, start, stop) AS (VALUES {values}),"
    " week_reviews AS MATERIALIZED (SELECT w.n AS n, r.stars AS stars, r.created_at AS created,"
    " CASE WHEN r.response_id IS NOT NULL THEN (SELECT MIN(p.created_at) FROM responses p"
    " WHERE p.review_id = r.id AND p.source != 'auto') END AS answered"
    " FROM weeks w JOIN reviews r ON r.shop = ?"
    " AND r.created_at >= w.start AND r.created_at < w.stop AND r.reported = 0),"
    " totals AS (SELECT n, COUNT(*) AS reviews, AVG(stars) AS average,"
    " COUNT(answered) AS answered FROM week_reviews GROUP BY n),"
    " delays AS (SELECT n, (julianday(answered) - julianday(created)) * 24 AS hours"
    " FROM week_reviews WHERE answered IS NOT NULL),"
    " ranked AS (SELECT n, hours, ROW_NUMBER() OVER byweek AS k, COUNT(*) OVER (byweek"
    " ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS c FROM delays"
    " WINDOW byweek AS (PARTITION BY n ORDER BY hours)),"
    " medians AS (SELECT n, AVG(hours) AS median FROM ranked"
    " WHERE k IN ((c + 1) / 2, (c + 2) / 2) GROUP BY n)"
    " SELECT w.n, COALESCE(t.reviews, 0), t.average, COALESCE(t.answered, 0), m.median"
    " FROM weeks w LEFT JOIN totals t ON t.n = w.n LEFT JOIN medians m ON m.n = w.n"
    " ORDER BY w.n"
)
_FUNNEL_STATUSES = (
    "SELECT status, COUNT(*) FROM shipments WHERE shop = ? AND received_at >= ?"
    " AND received_at < ? GROUP BY status"
)
#: Invitations made from the period's shipments (an invitation is made when its shipment is
#: read, so by its own time, from one index) that were mailed, and those with a review; then
#: the few of those reviews that are hidden (reported), to take away (from the few: CROSS JOIN
#: keeps that order).
_FUNNEL_INVITED = (
    "SELECT COUNT(*), COUNT(review_id) FROM invitations WHERE shop = ? AND created_at >= ?"
    " AND created_at < ? AND shipment_id IS NOT NULL AND sent_at IS NOT NULL"
)
_FUNNEL_HIDDEN = (
    "SELECT COUNT(*) FROM reviews r CROSS JOIN invitations i ON i.id = r.invitation_id"
    " WHERE r.shop = ?1 AND r.reported != 0 AND i.shop = ?1 AND i.created_at >= ?2"
    " AND i.created_at < ?3 AND i.shipment_id IS NOT NULL AND i.sent_at IS NOT NULL"
)
#: From the figures index alone (the names of the few products shown are read after).
_BY_PRODUCT = (
    "SELECT p.sku, COUNT(*), AVG(p.stars) FROM product_reviews p INDEXED BY"
    " idx_product_reviews_figures JOIN reviews r INDEXED BY idx_reviews_reported"
    " ON r.id = p.review_id AND r.reported = 0"
    " WHERE p.shop = ? AND p.sku IS NOT NULL AND p.created_at >= ? AND p.created_at < ?"
    " GROUP BY p.sku ORDER BY COUNT(*) DESC, p.sku LIMIT ?"
)
_PRODUCT_NAME = (
    "SELECT name FROM product_reviews WHERE shop = ? AND sku = ? AND name IS NOT NULL"
    " ORDER BY created_at DESC LIMIT 1"
)
_BY_TAG = (
    "SELECT t.tag, COUNT(*), AVG(r.stars) FROM reviews r"
    " JOIN review_tags t ON t.review_id = r.id WHERE r.shop = ? AND r.created_at >= ?"
    " AND r.created_at < ? AND r.reported = 0 GROUP BY t.tag ORDER BY COUNT(*) DESC, t.tag"
    " LIMIT ?"
)


def _ledger_where(shop: str, search: str | None, status: str | None,
                  by_id: bool = False) -> tuple[str, list[Any]]:
    """The filters: a search is the start of the customer's address or of the order reference
    (two index ranges, however many rows the shop has). `by_id` keeps SQLite from the shop's
    index when nothing narrows it, so the newest rows come straight from the table's id order,
    stopping after one page (no sort of the whole shop)."""
    where, args = " WHERE +shop = ?" if by_id and not search else " WHERE shop = ?", [shop]
    if status:
        where += " AND status = ?"
        args.append(status)
    if search:
        where += (" AND ((customer_email >= ? AND customer_email < ?)"
                  " OR (reference >= ? AND reference < ?))")
        address = search.lower()
        args += [address, address + "\U0010ffff", search, search + "\U0010ffff"]
    return where, args


class DashboardQueries(Bound):
    """A shop's figures for the dashboard and its ledgers, read-only."""

    def weekly_figures(self, shop: str, bounds: Sequence[datetime]) -> list[WeekFigures]:
        """Figures of the weeks between consecutive `bounds` (len(bounds) - 1 weeks)."""
        weeks = [(n, to_iso(start), to_iso(stop))
                 for n, (start, stop) in enumerate(zip(bounds, bounds[1:], strict=False))]
        if not weeks:
            return []
        sql = _WEEKS.format(values=", ".join("(?, ?, ?)" for _ in weeks))
        args = [value for week in weeks for value in week] + [shop]
        return [WeekFigures(int(n), int(count), average, int(answered), median)
                for n, count, average, answered, median in self.conn.execute(sql, args)]

    def invitation_funnel(self, shop: str, since: datetime, until: datetime) -> FunnelFigures:
        """Shipments received in [since, until) → mailed invitations → public reviews."""
        window = (shop, to_iso(since), to_iso(until))
        statuses = {str(s): int(c) for s, c in self.conn.execute(_FUNNEL_STATUSES, window)}
        invited, reviewed = self.conn.execute(_FUNNEL_INVITED, window).fetchone()
        hidden = self.conn.execute(_FUNNEL_HIDDEN, window).fetchone()[0]
        skipped = {s: c for s, c in sorted(statuses.items()) if s != "scheduled"}
        return FunnelFigures(sum(statuses.values()), skipped, int(invited),
                             int(reviewed) - int(hidden))

    def stars_by_product(self, shop: str, since: datetime, until: datetime,
                         limit: int = 20) -> list[GroupStars]:
        """The most rated products of the period (product reviews of public reviews)."""
        found = []
        for sku, count, average in self.conn.execute(
                _BY_PRODUCT, (shop, to_iso(since), to_iso(until), limit)).fetchall():
            name = self.conn.execute(_PRODUCT_NAME, (shop, sku)).fetchone()
            found.append(GroupStars(str(sku), str(name[0] if name else sku), int(count),
                                    float(average)))
        return found

    def stars_by_tag(self, shop: str, since: datetime, until: datetime,
                     limit: int = 20) -> list[GroupStars]:
        """The most used tags on the period's public reviews, with those reviews' stars."""
        return [GroupStars(str(tag), str(tag), int(count), float(average))
                for tag, count, average in self.conn.execute(
                    _BY_TAG, (shop, to_iso(since), to_iso(until), limit))]

    def search_invitations(self, shop: str, *, search: str | None = None,
                           status: str | None = None, limit: int = 50,
                           offset: int = 0) -> LedgerPage[InvitationRow]:
        """A shop's invitations, newest first, found by the start of the customer's address or
        of the order reference, and by status."""
        where, args = _ledger_where(shop, search, status)
        total = int(self.conn.execute(
            "SELECT COUNT(*) FROM invitations" + where, args).fetchone()[0])  # noqa: S608
        where, args = _ledger_where(shop, search, status, by_id=True)
        rows = [InvitationRow(*r) for r in self.conn.execute(
            f"SELECT {INVITATION_COLUMNS} FROM invitations{where}"  # noqa: S608
            " ORDER BY id DESC LIMIT ? OFFSET ?", [*args, limit, offset])]
        return LedgerPage(total, rows)

    def search_shipments(self, shop: str, *, search: str | None = None,
                         status: str | None = None, limit: int = 50,
                         offset: int = 0) -> LedgerPage[ShipmentRow]:
        """A shop's shipments, newest first, found as `search_invitations` finds invitations."""
        where, args = _ledger_where(shop, search, status)
        total = int(self.conn.execute(
            "SELECT COUNT(*) FROM shipments" + where, args).fetchone()[0])  # noqa: S608
        where, args = _ledger_where(shop, search, status, by_id=True)
        rows = [read_shipment(r) for r in self.conn.execute(
            f"SELECT {SHIPMENT_COLUMNS} FROM shipments{where}"  # noqa: S608
            " ORDER BY id DESC LIMIT ? OFFSET ?", [*args, limit, offset])]
        return LedgerPage(total, rows)
