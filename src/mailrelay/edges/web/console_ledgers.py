"""The invitations and shipments ledgers of a shop (issue 14): search by customer address, name
or order reference and by status, paged; an owner cancels an invitation from there, as
`mailrelay invitations cancel --id` does.

Protocol only: the search is the store's, the cancelling services.invitations'.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailrelay.config import ShopConfig
from mailrelay.core.errors import UserError
from mailrelay.core.models import InvitationStatus, ShipmentStatus
from mailrelay.edges.web.console import CONSOLE_HEADERS
from mailrelay.edges.web.forms import read_fields
from mailrelay.services.invitations import Cancellation, CancelTarget, cancel_target
from mailrelay.store import InvitationRow, QueryInterface, ShipmentRow

if TYPE_CHECKING:
    from mailrelay.edges.web.server import WebApp
    from mailrelay.store.dashboard import LedgerPage

log = logging.getLogger("mailrelay.web")

PAGE_SIZE = 50
LEDGERS = {"invitations": tuple(InvitationStatus), "shipments": tuple(ShipmentStatus)}


def cancellable(row: InvitationRow) -> bool:
    """Still something to cancel: the invitation itself, or the reminder of a sent one."""
    if row.status == InvitationStatus.SCHEDULED:
        return True
    return (row.status == InvitationStatus.SENT and row.review_id is None
            and row.reminder_due_at is not None and not row.reminder_sent_at)


class LedgerPages:
    """`/console/{shop}/ledgers/invitations|shipments` and the cancel button's POST."""

    def __init__(self, app: WebApp) -> None:
        self.app = app

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/console/{shop}/ledgers/{ledger}", self.ledger),
            web.post("/console/{shop}/ledgers/invitations/{id}/cancel", self.cancel),
        ]

    def _shop(self, shop_id: str) -> ShopConfig:
        shop = self.app.config.shop(shop_id)
        if shop is None:
            raise web.HTTPNotFound()
        return shop

    async def ledger(self, request: web.Request) -> web.Response:
        shop_id, ledger = request.match_info["shop"], request.match_info["ledger"]
        user = await self.app.console.require(request, shop_id)
        shop = self._shop(shop_id)
        if ledger not in LEDGERS:
            raise web.HTTPNotFound()
        search = request.query.get("q", "").strip()[:200]
        status = request.query.get("status", "")
        status = status if status in LEDGERS[ledger] else ""
        page = _page_number(request.query.get("page"))
        query = (self.app.store.aread(lambda q: q.search_invitations(
            shop.id, search=search or None, status=status or None, limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE)) if ledger == "invitations"
            else self.app.store.aread(lambda q: _shipments_now(
                q, shop.id, search or None, status or None, page)))
        found: Any = await query
        found, invitations = found if ledger == "shipments" else (found, {})
        t = self.app.console.translator(request)
        return self.app.console.page(
            f"console_ledger_{ledger}.html.j2", t, user=user, shop=shop,
            csrf=self.app.console.csrf_token(request), owner=user.owns(shop.id),
            search=search, chosen=status, statuses=LEDGERS[ledger], page=page,
            pages=max(1, math.ceil(found.total / PAGE_SIZE)), total=found.total,
            rows=found.rows, invitations=invitations, cancellable=cancellable,
            done=_done(request, t),
            local_date=lambda iso: t.date(datetime.fromisoformat(iso).astimezone(shop.timezone)))

    async def cancel(self, request: web.Request) -> web.Response:
        shop_id = request.match_info["shop"]
        user = await self.app.console.require(request, shop_id)
        shop = self._shop(shop_id)
        t = self.app.console.translator(request)
        form = await read_fields(request, ("csrf",))
        if not self.app.console.csrf_valid(request, form.get("csrf")):
            return self.app.message(400, t, t("console.csrf"), headers=CONSOLE_HEADERS)
        if not user.owns(shop.id):
            return self.app.message(403, t, t("ledger.owners_only_title"),
                                    t("ledger.owners_only_body"), headers=CONSOLE_HEADERS)
        raw = request.match_info["id"]
        invitation_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 12 else 0
        found = await self.app.store.aread(lambda q: q.get_invitation(invitation_id))
        if found is None or found.shop != shop.id:
            raise web.HTTPNotFound()
        reason = f"cancelled in the console by {user.email}"
        try:
            done = await self.app.store.write(lambda q: cancel_target(
                q, self.app.config, CancelTarget(id=invitation_id), shop.id, reason))
        except UserError:
            done = Cancellation()
        log.info("console cancel invitation=%s user=%s: %s", invitation_id, user.id,
                 done.summary() if done else "nothing")
        outcome = "invitation" if done.invitations else "reminder" if done.reminders else "none"
        raise web.HTTPSeeOther(
            f"/console/{shop.id}/ledgers/invitations?done={outcome}-{invitation_id}",
            headers=CONSOLE_HEADERS)


def _shipments_now(q: QueryInterface, shop_id: str, search: str | None, status: str | None,
                   page: int) -> tuple[LedgerPage[ShipmentRow], dict[int, InvitationRow]]:
    """A page of shipments with the invitation each yielded, as it is now (the shipment's
    own reason was written when it came in)."""
    found = q.search_shipments(shop_id, search=search, status=status, limit=PAGE_SIZE,
                               offset=(page - 1) * PAGE_SIZE)
    invitations = q.shipment_invitations(shop_id, found.rows)
    # An invitation's end (cancelled, suppressed) is written on its shipment too.
    return found, {row.id: invitations[row.id] for row in found.rows if row.id in invitations
                   and not invitations[row.id].status == row.status not in ("scheduled", "sent")}


def _page_number(value: str | None) -> int:
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 6:
        return 1
    return max(1, int(value))


def _done(request: web.Request, t: Any) -> str | None:
    """The message of a cancel just made (after its redirect)."""
    outcome, _, number = request.query.get("done", "").partition("-")
    if outcome not in ("invitation", "reminder", "none") or not number.isdigit():
        return None
    return str(t(f"ledger.done_{outcome}", id=number))
