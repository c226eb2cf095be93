"""Moderation (issue 14): agents' reports waiting for an owner, the decisions, the public
counts of removed reviews per reason, and a review's audit trail. SQL only."""

from __future__ import annotations

import json
from datetime import datetime

from mailrelay.store.connection import Bound
from mailrelay.store.rows import AuditEntry, ReportRow
from mailrelay.store.timestamps import to_iso

_REPORT = ("SELECT id, review_id, shop, reporter, reason, created_at, state, decided_by,"
           " decided_at, decision_note, category FROM review_reports")
#: A review hidden by an owner's (or operator's) confirmation, counted once under the public
#: reason of its latest confirmed report; unreported and forgotten reviews are not counted.
_REMOVED = (
    "SELECT rr.category, COUNT(*) FROM review_reports rr JOIN reviews r ON r.id = rr.review_id"
    " WHERE rr.shop = ? AND rr.state = 'confirmed' AND r.reported = 1"
    " AND r.report_reason IS NOT 'erased on request'"
    " AND rr.id = (SELECT MAX(x.id) FROM review_reports x WHERE x.review_id = rr.review_id"
    " AND x.state = 'confirmed') GROUP BY rr.category ORDER BY COUNT(*) DESC, rr.category"
)


def _report(row: tuple[object, ...]) -> ReportRow:
    (report_id, review_id, shop, reporter, reason, created_at, state, decided_by, decided_at,
     note, category) = row
    return ReportRow(int(str(report_id)), int(str(review_id)), str(shop), str(reporter),
                     str(reason), str(created_at), str(state), _text(decided_by),
                     _text(decided_at), _text(note), _text(category))


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class ModerationQueries(Bound):
    """Reports, decisions, removed counts and the audit trail of one review."""

    def add_report(self, review_id: int, shop: str, reporter: str, reason: str,
                   now: datetime) -> int:
        """A new pending report; returns its id."""
        cursor = self.conn.execute(
            "INSERT INTO review_reports (review_id, shop, reporter, reason, created_at)"
            " VALUES (?, ?, ?, ?, ?)", (review_id, shop, reporter, reason, to_iso(now)))
        return int(cursor.lastrowid or 0)

    def get_report(self, report_id: int) -> ReportRow | None:
        row = self.conn.execute(_REPORT + " WHERE id = ?", (report_id,)).fetchone()
        return _report(row) if row else None

    def reports(self, shop: str, state: str | None = "pending",
                limit: int = 200) -> list[ReportRow]:
        """A shop's reports in one state (None: all), oldest first."""
        sql, args = _REPORT + " WHERE shop = ?", [shop]
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        rows = self.conn.execute(sql + " ORDER BY id LIMIT ?", (*args, limit))
        return [_report(row) for row in rows]

    def recent_decisions(self, shop: str, limit: int = 20) -> list[ReportRow]:
        """A shop's decided reports, the latest decision first."""
        return [_report(row) for row in self.conn.execute(
            _REPORT + " WHERE shop = ? AND state != 'pending'"
            " ORDER BY decided_at DESC, id DESC LIMIT ?", (shop, limit))]

    def reports_of_review(self, review_id: int) -> list[ReportRow]:
        return [_report(row) for row in self.conn.execute(
            _REPORT + " WHERE review_id = ? ORDER BY id", (review_id,))]

    def decide_report(self, report_id: int, state: str, by: str, note: str | None,
                      category: str | None, now: datetime) -> bool:
        """Confirm or reject a pending report; False when it is decided already."""
        cursor = self.conn.execute(
            "UPDATE review_reports SET state = ?, decided_by = ?, decided_at = ?,"
            " decision_note = ?, category = ? WHERE id = ? AND state = 'pending'",
            (state, by, to_iso(now), note, category, report_id))
        return cursor.rowcount == 1

    def removed_counts(self, shop: str) -> dict[str, int]:
        """Public reason → how many of the shop's reviews an owner's confirmation hides."""
        return {str(reason or "other"): int(count)
                for reason, count in self.conn.execute(_REMOVED, (shop,))}

    def review_audit(self, review_id: int) -> list[AuditEntry]:
        """The audit trail of one review (moderation and erasures naming it), oldest first."""
        return [AuditEntry(str(at), str(action), str(actor or ""), json.loads(detail or "{}"))
                for at, action, actor, detail in self.conn.execute(
                    "SELECT at, action, actor, detail FROM audit"
                    " WHERE json_extract(detail, '$.review_id') = ? ORDER BY id",
                    (review_id,))]
