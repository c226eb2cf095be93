"""The console's moderation pages (issue 14): a shop's pending reports with the review, the
agent and the reason; an owner confirms (hides) or rejects each, with an optional note; the
audit trail of a review. Also the public page's line of removed reviews per reason.

Protocol only: the decisions are services.moderation; pages are templates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailrelay.edges.web.console import CONSOLE_HEADERS
from mailrelay.edges.web.forms import read_fields
from mailrelay.edges.web.i18n import Translator
from mailrelay.services import moderation
from mailrelay.services.accounts import ConsoleUser
from mailrelay.services.moderation import Decision, Refusal
from mailrelay.services.report_category import suggested_category
from mailrelay.store import AuditEntry, QueryInterface, ReportRow, ReviewRow

if TYPE_CHECKING:
    from mailrelay.edges.web.server import WebApp

log = logging.getLogger("mailrelay.web")

#: How many decided reports the page lists under the pending ones.
RECENT_DECISIONS = 20
_DONE = {"confirmed": "moderation.done_confirmed", "rejected": "moderation.done_rejected"}


def removed_json(counts: dict[str, int]) -> dict[str, Any]:
    """The removed reviews as reviews.json says them: the total and per public reason."""
    return {"count": sum(counts.values()), "reasons": dict(counts)}


def removed_line(t: Translator, counts: dict[str, int]) -> str | None:
    """"3 reviews removed: 2 spam, 1 personal data" in the page's language; None for none."""
    total = sum(counts.values())
    if not total:
        return None
    reasons = ", ".join(
        t("moderation.reason_count", n=str(count),
          reason=t(f"moderation.because.{reason}" if reason in moderation.REMOVAL_REASONS
                   else "moderation.because.other"))
        for reason, count in counts.items())
    return t.plural("moderation.removed", total, reasons=reasons)


@dataclass(frozen=True)
class ReportItem:
    """One report as the page shows it: the report, its review, the dates in words; for a
    pending one, who else reported the review into it (and why), and the public reason its
    reason names (the select starts on it)."""

    report: ReportRow
    review: ReviewRow | None
    reported_on: str
    decided_on: str
    also_reported: tuple[tuple[str, str], ...] = ()
    suggested: str = "other"


def _items(q: QueryInterface, reports: list[ReportRow], t: Translator) -> list[ReportItem]:
    return [ReportItem(report, q.get_review(report.review_id), _when(t, report.created_at),
                       _when(t, report.decided_at)) for report in reports]


def _pending_items(q: QueryInterface, reports: list[ReportRow], t: Translator) -> list[ReportItem]:
    labels = {reason: t(f"moderation.because.{reason}")
              for reason in moderation.REMOVAL_REASONS}
    return [ReportItem(item.report, item.review, item.reported_on, item.decided_on,
                       tuple(moderation.reporters(q, item.report)[1:]),
                       suggested_category(item.report.reason, labels))
            for item in _items(q, reports, t)]


def _when(t: Translator, stamp: str | None) -> str:
    return t.date(datetime.fromisoformat(stamp)) if stamp else ""


class ModerationPages:
    """`/console/{shop}/moderation`: the list, the decisions, a review's audit trail."""

    def __init__(self, app: WebApp) -> None:
        self.app = app

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/console/{shop}/moderation", self.listing),
            web.post("/console/{shop}/moderation/{report}", self.decide),
            web.get("/console/{shop}/moderation/review/{review}", self.trail),
        ]

    async def listing(self, request: web.Request) -> web.Response:
        shop_id = request.match_info["shop"]
        user = await self.app.console.require(request, shop_id)
        t = self.app.console.translator(request)
        done = _DONE.get(request.query.get("done", ""))
        return await self._listing(request, user, shop_id, t,
                                   notice=t(done) if done else None)

    async def _listing(self, request: web.Request, user: ConsoleUser, shop_id: str,
                       t: Translator, *, status: int = 200, notice: str | None = None,
                       error: str | None = None) -> web.Response:
        def gather(q: QueryInterface) -> tuple[list[ReportItem], list[ReportItem]]:
            return (_pending_items(q, q.reports(shop_id), t),
                    _items(q, q.recent_decisions(shop_id, RECENT_DECISIONS), t))

        pending, decided = await self.app.store.aread(gather)
        return self.app.console.page(
            "console_moderation.html.j2", t, status, user=user,
            csrf=self.app.console.csrf_token(request), shop=self.app.config.shop(shop_id),
            shop_id=shop_id, pending=pending, decided=decided, owner=user.owns(shop_id),
            reasons=moderation.REMOVAL_REASONS, notice=notice, error=error)

    async def decide(self, request: web.Request) -> web.Response:
        shop_id = request.match_info["shop"]
        user = await self.app.console.require(request, shop_id)
        t = self.app.console.translator(request)
        form = await read_fields(request, ("csrf", "decision", "note", "category"))
        if not self.app.console.csrf_valid(request, form["csrf"]):
            return await self._listing(request, user, shop_id, t, status=400,
                                       error=t("console.csrf"))
        if not user.owns(shop_id):
            log.info("moderation refused: user=%s is no owner of shop=%s", user.id, shop_id)
            return self.app.console.page(
                "message.html.j2", t, 403, heading=t("moderation.not_owner_title"),
                paragraphs=[t("moderation.not_owner_body")],
                link=(f"/console/{shop_id}/moderation", t("moderation.back")),
                shop=self.app.config.shop(shop_id))
        report_id = _number(request.match_info["report"])
        if report_id is None or form["decision"] not in ("confirm", "reject"):
            raise web.HTTPNotFound()
        decision = Decision(form["decision"] == "confirm", user.email, form["note"],
                            form["category"] or "other")
        now = self.app.clock.now()
        refusal = await self.app.store.write(
            lambda q: moderation.decide(q, self.app.config, shop_id, report_id, decision, now))
        if refusal == Refusal.NO_REPORT:
            raise web.HTTPNotFound()
        if refusal is not None:
            return await self._listing(request, user, shop_id, t, status=409,
                                       error=t(f"moderation.refused_{refusal}"))
        done = "confirmed" if decision.confirm else "rejected"
        raise web.HTTPSeeOther(f"/console/{shop_id}/moderation?done={done}",
                               headers=CONSOLE_HEADERS)

    async def trail(self, request: web.Request) -> web.Response:
        shop_id = request.match_info["shop"]
        user = await self.app.console.require(request, shop_id)
        t = self.app.console.translator(request)
        review_id = _number(request.match_info["review"])

        def gather(q: QueryInterface) -> tuple[ReviewRow | None, list[AuditEntry], list[ReportRow]]:
            review = q.get_review(review_id) if review_id is not None else None
            if review is None or review.shop != shop_id:
                return None, [], []
            return review, q.review_audit(review.id), q.reports_of_review(review.id)

        review, entries, reports = await self.app.store.aread(gather)
        if review is None:
            raise web.HTTPNotFound()  # another shop's review reads as none at all
        trail = [{"when": _when(t, entry.at), "datetime": entry.at, "actor": entry.actor,
                  "action": entry.action.removeprefix("moderation."),
                  "reason": entry.detail.get("reason"), "note": entry.detail.get("note"),
                  "category": entry.detail.get("category")} for entry in entries]
        return self.app.console.page(
            "console_moderation_trail.html.j2", t, user=user,
            csrf=self.app.console.csrf_token(request), shop=self.app.config.shop(shop_id),
            shop_id=shop_id, review=review, trail=trail, reports=reports)


def _number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None
