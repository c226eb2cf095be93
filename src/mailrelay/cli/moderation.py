"""Moderation for operators (issue 14): list a shop's pending reports, confirm or reject one,
and report a review yourself (an operator's report counts as confirmed: hidden at once)."""

from __future__ import annotations

import click

from mailrelay.cli.resources import open_store, write_or_fail
from mailrelay.cli.subcommands import row_command
from mailrelay.config import Config
from mailrelay.core.clock import SystemClock
from mailrelay.services import moderation
from mailrelay.services.moderation import OPERATOR, REMOVAL_REASONS, Decision, Refusal
from mailrelay.store import QueryInterface

#: The commands, added to `mailrelay reviews` by the CLI's assembly (cli/__init__.py).
commands = click.Group("moderation")
_PUBLIC_REASON = click.option(
    "--public-reason", type=click.Choice(REMOVAL_REASONS), default="other", show_default=True,
    help="The reason the public page counts the removed review under.")
_NOTE = click.option("--note", default=None, help="Kept in the audit trail with the decision.")
_WHY = {Refusal.NO_REPORT: "there is no report {id}",
        Refusal.DECIDED: "report {id} has been decided already",
        Refusal.BAD_REASON: "unknown public reason", Refusal.NOT_OWNER: "not an owner"}


def _decide(config: Config, report_id: int, decision: Decision) -> None:
    now = SystemClock().now()

    def work(q: QueryInterface) -> Refusal | None:
        found = q.get_report(report_id)
        shop = found.shop if found else ""
        return moderation.decide(q, config, shop, report_id, decision, now)

    with open_store(config) as store:
        refusal = store.write_sync(work)
    if refusal is not None:
        raise click.ClickException(_WHY[refusal].format(id=report_id))


@row_command(commands, "confirm-report", "report_id")
@_PUBLIC_REASON
@_NOTE
def confirm_report(config: Config, report_id: int, public_reason: str,
                   note: str | None) -> None:
    """Confirm an agent's report (REPORT_ID from `reviews reports`): the review is hidden."""
    _decide(config, report_id, Decision(True, OPERATOR, note, public_reason))
    click.echo(f"report {report_id} confirmed: the review is hidden")


@row_command(commands, "reject-report", "report_id")
@_NOTE
def reject_report(config: Config, report_id: int, note: str | None) -> None:
    """Reject an agent's report: the review stays public."""
    _decide(config, report_id, Decision(False, OPERATOR, note))
    click.echo(f"report {report_id} rejected: the review stays public")


@row_command(commands, "report", "review_id")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@_PUBLIC_REASON
def report_review(config: Config, review_id: int, reason: str, public_reason: str) -> None:
    """Hide a review as the operator: a report confirmed at once, in the audit trail."""
    now = SystemClock().now()

    def work(q: QueryInterface) -> bool:
        review = q.get_review(review_id)
        return review is not None and moderation.operator_report(
            q, config, review, reason, public_reason, now) is None

    write_or_fail(config, work, f"no review {review_id}")
    click.echo(f"review {review_id} reported and hidden")


@row_command(commands, "reports", "review_id")
def list_reports(config: Config, review_id: int) -> None:
    """The reports of one review: id, state, who, why, the decision; and who else reported
    the review while a report waited (attached to it)."""
    with open_store(config) as store:
        found = store.read(lambda q: [(item, moderation.reporters(q, item)[1:])
                                      for item in q.reports_of_review(review_id)])
    for item, others in found:
        decided = (f" by {item.decided_by} {item.decided_at}"
                   f"{' (' + item.category + ')' if item.category else ''}"
                   if item.decided_by else "")
        click.echo(f"report {item.id} {item.state}{decided}: {item.reporter}"
                   f" {item.created_at}: {item.reason}")
        for who, why in others:
            click.echo(f"  also reported by {who}: {why}")
