"""Moderation (issue 14): an agent's report leaves the review public until an owner of the shop
confirms it (hidden, with a public reason) or rejects it; owners are mailed at once, and every
step is in the audit trail; a further report while one waits is attached to it. Reports by an
operator on the CLI count as confirmed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import jinja2

from mailrelay.config import Config, ShopConfig
from mailrelay.core.models import OutboxKind
from mailrelay.render import Templates
from mailrelay.render.moderation import PendingReportView, report_pending_mail
from mailrelay.services import events
from mailrelay.services.outbox import enqueue_mail
from mailrelay.store import QueryInterface, ReportRow, ReviewRow

log = logging.getLogger("mailrelay.moderation")  # the name operators filter on

#: The public reasons an owner picks from when confirming (the public page counts them).
REMOVAL_REASONS = ("spam", "offensive", "personal_data", "not_a_customer", "off_topic",
                   "other")
OPERATOR = "operator (cli)"
MAX_NOTE = 1000


class ReportState(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class Refusal(StrEnum):
    """Why a decision was not taken (the console says it; the CLI prints it)."""

    NO_REPORT = "no_report"  # none with that id in this shop
    DECIDED = "decided"  # confirmed or rejected already
    NOT_OWNER = "not_owner"  # agents may see reports, not decide them
    BAD_REASON = "bad_reason"  # not one of REMOVAL_REASONS


@dataclass(frozen=True)
class Decision:
    """What an owner (or operator) decided about one report."""

    confirm: bool
    by: str
    note: str | None = None
    category: str = "other"


def moderation_url(config: Config, shop_id: str) -> str:
    return f"{config.http.base_url}/console/{shop_id}/moderation"


@dataclass(frozen=True)
class Reported:
    """What a report did: the pending report it is on, and whether that one was waiting
    already (a further report is attached to it: audited, no new report, no owners' mail)."""

    report_id: int
    already_pending: bool = False


#: Said in the reply's outcome (replies audit, log, console) of a report attached to a
#: pending one.
ALREADY_PENDING = "already waiting for an owner"


def attached_note(report_id: int) -> str:
    """The end of such an outcome's reason, after the agent's own words."""
    return f"({ALREADY_PENDING}: report {report_id})"


def was_attached(reason: str) -> bool:
    """Whether an outcome's reason says the report was attached to a pending one (by its
    whole ending, so an agent's reason quoting the words does not count)."""
    head, _, tail = reason.rpartition(f" ({ALREADY_PENDING}: report ")
    return bool(head) and tail.endswith(")") and tail[:-1].isdigit()


def waiting_report(q: QueryInterface, review_id: int) -> ReportRow | None:
    """The review's report waiting for an owner, if any."""
    return next((found for found in q.reports_of_review(review_id)
                 if found.state == ReportState.PENDING), None)


def report(q: QueryInterface, config: Config, review: ReviewRow, reporter: str, reason: str,
           now: datetime) -> int:
    """An agent's report (mail or console): pending, the review stays public. The webhooks
    hear `review.updated` (change "report_pending"); `review.reported` waits for an owner.
    While a report of the review is pending, a further one is attached to it in the audit
    trail (who, why) instead; returns the pending report's id either way."""
    waiting = waiting_report(q, review.id)
    if waiting is not None:
        q.audit("moderation.reported_again", {"review_id": review.id,
                                              "report_id": waiting.id, "reason": reason},
                now, actor=reporter)
        log.info("review=%s report=%s %s, attached by=%s", review.id, waiting.id,
                 ALREADY_PENDING, reporter)
        return waiting.id
    report_id = q.add_report(review.id, review.shop, reporter, reason, now)
    q.audit("moderation.reported", {"review_id": review.id, "report_id": report_id,
                                    "reason": reason}, now, actor=reporter)
    events.emit(q, config, review.shop, "review.updated", now, review_id=review.id,
                extra={"change": "report_pending", "report": {
                    "id": report_id, "reason": reason, "by": reporter,
                    "state": ReportState.PENDING}})
    log.info("review=%s report=%s pending by=%s", review.id, report_id, reporter)
    return report_id


def reporters(q: QueryInterface, found: ReportRow) -> list[tuple[str, str]]:
    """(who, reason) of everyone who reported the review into this report, the first first."""
    return [(found.reporter, found.reason), *(
        (entry.actor, str(entry.detail.get("reason", "")))
        for entry in q.review_audit(found.review_id)
        if entry.action == "moderation.reported_again"
        and entry.detail.get("report_id") == found.id)]


def decide(q: QueryInterface, config: Config, shop_id: str, report_id: int, decision: Decision,
           now: datetime) -> Refusal | None:
    """Confirm (hide the review, with a public reason) or reject (it stays public) one
    pending report of `shop_id`; None when done. Audited, and the webhooks hear of it."""
    found = q.get_report(report_id)
    if found is None or found.shop != shop_id:
        return Refusal.NO_REPORT
    if decision.confirm and decision.category not in REMOVAL_REASONS:
        return Refusal.BAD_REASON
    state = ReportState.CONFIRMED if decision.confirm else ReportState.REJECTED
    note = (decision.note or "").strip()[:MAX_NOTE] or None
    category = decision.category if decision.confirm else None
    if not q.decide_report(report_id, state, decision.by, note, category, now):
        return Refusal.DECIDED
    detail = {"review_id": found.review_id, "report_id": report_id, "reason": found.reason,
              "reporter": found.reporter, "note": note}
    if decision.confirm:
        q.report_review(found.review_id, found.reason, now)
        q.audit("moderation.confirmed", {**detail, "category": category}, now,
                actor=decision.by)
        events.emit(q, config, shop_id, "review.reported", now, review_id=found.review_id,
                    extra={"report": {"reason": found.reason, "by": found.reporter,
                                      "note": note, "confirmed_by": decision.by,
                                      "category": category}})
    else:
        q.audit("moderation.rejected", detail, now, actor=decision.by)
        events.emit(q, config, shop_id, "review.updated", now, review_id=found.review_id,
                    extra={"change": "report_rejected", "report": {
                        "id": report_id, "reason": found.reason, "by": found.reporter,
                        "rejected_by": decision.by, "note": note}})
    log.info("review=%s report=%s %s by=%s", found.review_id, report_id, state, decision.by)
    return None


def operator_report(q: QueryInterface, config: Config, review: ReviewRow, reason: str,
                    category: str, now: datetime) -> Refusal | None:
    """A report by the operator on the CLI: confirmed at once (hidden)."""
    report_id = report(q, config, review, OPERATOR, reason, now)
    return decide(q, config, review.shop, report_id,
                  Decision(True, OPERATOR, None, category), now)


def owner_accounts(q: QueryInterface, shop: ShopConfig) -> tuple[str, ...]:
    """The addresses of the shop's console users with the role owner."""
    return tuple(dict.fromkeys(
        user.email for user in q.list_users(shop.id) if user.role == "owner"))


def owners_to_mail(q: QueryInterface, shop: ShopConfig) -> tuple[str, ...]:
    """The shop's owner accounts; without any, its `alerts` addresses."""
    return owner_accounts(q, shop) or tuple(shop.alerts)


def mail_owners(q: QueryInterface, config: Config, templates: Templates, review: ReviewRow,
                found: ReportRow, now: datetime) -> int:
    """Queue the `report_pending` mail to each owner (inside the report's transaction);
    returns the messages queued."""
    shop = config.shop(review.shop)
    if shop is None:
        return 0
    queued = 0
    for address in owners_to_mail(q, shop):
        view = PendingReportView(
            to_email=address, review_id=review.id, stars=review.stars, title=review.title,
            text=review.text, reporter=found.reporter, reason=found.reason,
            moderation_url=moderation_url(config, shop.id))
        try:
            mail = report_pending_mail(templates, config, shop, view, now=now)
        except (ValueError, jinja2.TemplateError) as exc:
            log.error("report=%s owner mail cannot be rendered: %s", found.id, exc)
            continue
        queued += enqueue_mail(q, shop, OutboxKind.REPORT_PENDING, mail, now,
                               review_id=review.id) is not None
    return queued


def report_and_notify(q: QueryInterface, config: Config, templates: Templates, review: ReviewRow,
                      reporter: str, reason: str, now: datetime) -> Reported:
    """`report`, then the owners' mail (not for a report attached to a pending one): what the
    reply path and the console call."""
    already_pending = waiting_report(q, review.id) is not None
    reported = Reported(report(q, config, review, reporter, reason, now), already_pending)
    found = q.get_report(reported.report_id)
    if found is not None and not already_pending:
        mail_owners(q, config, templates, review, found, now)
    return reported
