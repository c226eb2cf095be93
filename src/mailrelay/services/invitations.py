"""The invitation lifecycle: decide, schedule, create, cancel, unsubscribe; then due invitations
and reminders → rendered mail in the outbox, and delivery results back onto the invitation.

It never sends: `delivery` does. Rendering happens before storing, so a resend is identical.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import partial

import jinja2

from mailrelay.config import Config, ShopConfig
from mailrelay.core.errors import DuplicateKey, UserError
from mailrelay.core.models import (
    REQUESTED_METHODS,
    Decision,
    InvitationMethod,
    InvitationStatus,
    OutboxKind,
    OutboxStatus,
    ShipmentStatus,
)
from mailrelay.core.tokens import REVIEW, TokenSigner
from mailrelay.parsing import normalize_address
from mailrelay.render import InvitationView, RenderedMail, invitation_mail
from mailrelay.services import events
from mailrelay.services.links import review_url, unsubscribe_url
from mailrelay.services.outbox import MailProducer, enqueue_mail
from mailrelay.store import (
    SUPPRESSION_TEXT,
    DueInvitation,
    InvitationRow,
    NewInvitation,
    OutboxRow,
    QueryInterface,
)

log = logging.getLogger("mailrelay.invitations")  # the name operators filter on


# --- the lifecycle: decide, schedule, create, cancel, unsubscribe --------------------------------


def due_time(shop: ShopConfig, base: datetime) -> datetime:
    """Move `base` into the shop's sending hours, in the shop's time zone."""
    if shop.send_hours is None:
        return base
    start, end = shop.send_hours
    local = base.astimezone(shop.timezone)
    now_t = local.time().replace(tzinfo=None)
    if start <= now_t and (end == time(0) or now_t < end):
        return base
    day = local.date() if now_t < start else local.date() + timedelta(days=1)
    moved = datetime.combine(day, start, tzinfo=shop.timezone)
    return moved.astimezone(base.tzinfo)


@dataclass(frozen=True)
class Candidate:
    """Someone we might invite: from a trigger, a manual invite or a CSV row."""

    customer_email: str | None
    customer_name: str | None
    reference: str | None
    locale: str | None
    send_at: datetime | None
    method: InvitationMethod


def decide(
    q: QueryInterface,
    shop: ShopConfig,
    cand: Candidate,
    now: datetime,
    *,
    delay: timedelta | None = None,
    exclude_shipment: int | None = None,
) -> tuple[ShipmentStatus, str]:
    """Whether `cand` may be invited, and why (runs inside the writer transaction).

    One look-up statement (`Queries.decision_facts`); the checks keep their order: order
    reference (invitation, then shipment), suppression, dedupe window.
    """
    if not cand.customer_email:
        return ShipmentStatus.REJECTED, "no valid customer address"
    facts = q.decision_facts(
        shop.id, cand.reference or None, cand.customer_email, now - shop.dedupe_window)
    if facts.reference_invitation is not None:
        return (
            ShipmentStatus.DUPLICATE,
            f"order reference {cand.reference} already has invitation "
            f"{facts.reference_invitation}",
        )
    earlier = facts.reference_shipment
    if earlier is not None and earlier != exclude_shipment:
        return (
            ShipmentStatus.DUPLICATE,
            f"order reference {cand.reference} already seen in shipment {earlier}",
        )
    if facts.suppressed:
        return ShipmentStatus.SUPPRESSED, SUPPRESSION_TEXT[facts.suppressed_by or "unsubscribed"]
    if facts.recent_invitation is not None:
        return (
            ShipmentStatus.CAPPED,
            "customer already invited within dedupe_window"
            f" (invitation {facts.recent_invitation})",
        )
    return ShipmentStatus.SCHEDULED, "invitation scheduled"


def create_invitation(
    q: QueryInterface,
    shop: ShopConfig,
    cand: Candidate,
    signer: TokenSigner,
    now: datetime,
    *,
    due: datetime,
    shipment_id: int | None = None,
    status: InvitationStatus = InvitationStatus.SCHEDULED,
    invitation_id: int | None = None,
) -> int:
    """Insert the invitation (with `invitation_id` when the caller allotted it already)."""
    if cand.customer_email is None:
        raise ValueError("an invitation needs a customer address")
    return q.insert_invitation(NewInvitation(
        shop=shop.id,
        shipment_id=shipment_id,
        customer_email=cand.customer_email,
        customer_name=cand.customer_name,
        reference=cand.reference,
        locale=cand.locale or shop.locale,
        method=cand.method,
        status=status,
        token=signer.issue(REVIEW),
        created_at=now,
        due_at=due,
        sent_at=now if status == InvitationStatus.SENT else None,
        id=invitation_id,
    ))


def schedule(
    q: QueryInterface,
    shop: ShopConfig,
    cand: Candidate,
    signer: TokenSigner,
    now: datetime,
    *,
    base: datetime | None = None,
    delay: timedelta | None = None,
    shipment_id: int | None = None,
) -> Decision:
    """Decide and, when allowed, create the invitation with its due time."""
    status, reason = decide(q, shop, cand, now, exclude_shipment=shipment_id)
    if status != ShipmentStatus.SCHEDULED:
        return Decision(status, reason)
    due = due_for(shop, cand, now, base=base, delay=delay)
    try:
        inv_id = create_invitation(q, shop, cand, signer, now, due=due, shipment_id=shipment_id)
    except DuplicateKey:
        # The (shop, reference) key caught a race the checks above could not see.
        return Decision(
            ShipmentStatus.DUPLICATE, f"order reference {cand.reference} already invited"
        )
    reason = f"invitation {inv_id} due {due.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return Decision(ShipmentStatus.SCHEDULED, reason, inv_id, due)


def due_for(
    shop: ShopConfig, cand: Candidate, now: datetime, *, base: datetime | None = None,
    delay: timedelta | None = None,
) -> datetime:
    """When a scheduled invitation is due: the trigger's send-at, else base + delay, moved
    into the shop's sending hours."""
    if cand.send_at is not None:
        wanted = max(cand.send_at, now)
    else:
        wanted = (base or now) + (shop.invite_delay if delay is None else delay)
    return due_time(shop, wanted)


def _withdraw(q: QueryInterface, rows: Iterable[InvitationRow], reason: str,
              shipment_status: ShipmentStatus) -> list[int]:
    """Cancel each of `rows` still scheduled, and say so on its shipment; returns their ids."""
    done = []
    for row in rows:
        if q.cancel_invitation(row.id, reason):
            done.append(row.id)
            if row.shipment_id:
                q.set_shipment_status(row.shipment_id, shipment_status, reason)
    return done


@dataclass(frozen=True)
class Cancellation:
    """What one cancellation did: invitations withdrawn before they were sent, and reminders
    stopped of invitations already sent (those stay sent: the customer has the mail)."""

    invitations: tuple[int, ...] = ()
    reminders: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.invitations or self.reminders)

    def __add__(self, other: Cancellation) -> Cancellation:
        return Cancellation(self.invitations + other.invitations, self.reminders + other.reminders)

    def summary(self) -> str:
        """One line for the CLI and the cancel mail's result."""
        parts = []
        if self.invitations:
            ids = ", ".join(map(str, self.invitations))
            parts.append(f"cancelled {len(self.invitations)} invitation(s): {ids}")
        if self.reminders:
            ids = ", ".join(map(str, self.reminders))
            parts.append(f"cancelled the pending reminder of invitation(s) {ids}"
                         " (already sent; the review link stays valid)")
        return "; ".join(parts) or "nothing cancelled"


def _stop_reminders(q: QueryInterface, rows: Iterable[InvitationRow], reason: str) -> list[int]:
    """Cancel the pending reminder of each sent invitation in `rows`; say so on it and on its
    shipment (whose status stays: it did yield an invitation). Returns their ids."""
    why = f"invitation sent; its reminder {reason}"
    done = []
    for row in rows:
        if q.cancel_reminder(row.id, why):
            done.append(row.id)
            shipment = q.shipment_of_invitation(row.id) if row.shipment_id else None
            if shipment is not None:
                q.set_shipment_status(shipment.id, ShipmentStatus(shipment.status), why)
    return done


def cancel(
    q: QueryInterface, shop: ShopConfig, reference: str | None, email: str | None, reason: str
) -> Cancellation:
    """Cancel an order reference's (else a customer address's) scheduled invitations, and the
    pending reminders of those already sent (a cancel mail, `invitations cancel`)."""
    if not (reference or email):
        return Cancellation()
    scheduled = q.scheduled_invitations(shop.id, reference=reference or None,
                                        email=None if reference else email)
    sent = q.sent_invitations(shop.id, reference=reference or None,
                              email=None if reference else email)
    return Cancellation(
        tuple(_withdraw(q, scheduled, reason, ShipmentStatus.CANCELLED)),
        tuple(_stop_reminders(q, sent, reason)),
    )


@dataclass(frozen=True)
class CancelTarget:
    """What an operator names to cancel: exactly one of an invitation id, an order reference,
    a customer address, or a bare argument that may be an id or a reference."""

    id: int | None = None
    reference: str | None = None
    email: str | None = None
    bare: str | None = None


def cancel_target(
    q: QueryInterface, config: Config, target: CancelTarget, shop_id: str | None, reason: str
) -> Cancellation:
    """`invitations cancel`: resolve `target` within `shop_id` (else every shop) and cancel.

    Raises UserError when a bare argument is both an id and another invitation's reference,
    when a reference or address matches in several shops, or when nothing was cancelled.
    """
    shops = [s for s in config.shops if shop_id is None or s.id == shop_id]
    if target.bare is not None:
        target = _resolve_bare(q, shops, target.bare)
    if target.id is not None:
        done = _cancel_by_id(q, config, shops, target.id, reason)
    elif target.reference is not None:
        done = _cancel_in_one_shop(q, shops, target.reference, None, reason)
    else:
        email = normalize_address(target.email or "")
        if email is None:
            raise UserError(f"not a valid email address: {target.email!r}")
        done = _cancel_in_one_shop(q, shops, None, email, reason)
    if not done:
        raise UserError(_nothing_cancelled(q, shops, target))
    return done


def _resolve_bare(q: QueryInterface, shops: list[ShopConfig], bare: str) -> CancelTarget:
    """A bare argument: an id or a reference, refused when it is both for different
    invitations (issue 12: `cancel 1002` cancelled invitation 1002, not order 1002's)."""
    by_id = _invitation_in(q, shops, int(bare)) if bare.isdigit() else None
    by_ref = [row for row in (q.invitation_for_reference(s.id, bare) for s in shops) if row]
    others = [row for row in by_ref if by_id is None or row.id != by_id.id]
    if by_id is not None and others:
        matches = " and ".join(
            [f"invitation {by_id.id} ({_describe(by_id, reference=True)})"]
            + [f"order reference {bare} (invitation {row.id}, {_describe(row)})"
               for row in others])
        raise UserError(f"{bare!r} names {matches}; say which with --id {bare} or --ref {bare}")
    if by_id is not None:
        return CancelTarget(id=by_id.id)
    return CancelTarget(reference=bare)


def _describe(row: InvitationRow, *, reference: bool = False) -> str:
    order = [f"order {row.reference}"] if reference and row.reference else []
    return ", ".join([*order, row.customer_email or "(erased)", f"shop {row.shop}", row.status])


def _invitation_in(q: QueryInterface, shops: list[ShopConfig], invitation_id: int
                   ) -> InvitationRow | None:
    row = q.get_invitation(invitation_id)
    return row if row is not None and row.shop in {s.id for s in shops} else None


def _cancel_by_id(q: QueryInterface, config: Config, shops: list[ShopConfig], invitation_id: int,
                  reason: str) -> Cancellation:
    row = _invitation_in(q, shops, invitation_id)
    shop = config.shop(row.shop) if row is not None else None
    if row is None or shop is None:
        return Cancellation()
    if row.status == InvitationStatus.SCHEDULED and row.reference:
        return cancel(q, shop, row.reference, None, reason)
    return Cancellation(tuple(_withdraw(q, [row], reason, ShipmentStatus.CANCELLED)),
                        tuple(_stop_reminders(q, [row], reason)))


def _cancel_in_one_shop(q: QueryInterface, shops: list[ShopConfig], reference: str | None,
                        email: str | None, reason: str) -> Cancellation:
    """Cancel by reference or address in the one shop where it matches; several: --shop."""
    matching = [s for s in shops if q.scheduled_invitations(s.id, reference, email)
                or q.sent_invitations(s.id, reference, email)]
    if len(matching) > 1:
        what = f"order reference {reference}" if reference else f"customer {email}"
        names = ", ".join(s.id for s in matching)
        raise UserError(f"{what} has invitations in shops {names}; add --shop to say which")
    done = Cancellation()
    for shop in matching:
        done += cancel(q, shop, reference, email, reason)
    return done


def _nothing_cancelled(q: QueryInterface, shops: list[ShopConfig], target: CancelTarget) -> str:
    """Why nothing was cancelled: no such invitation, or the state it is in."""
    if target.id is not None:
        rows = [row] if (row := _invitation_in(q, shops, target.id)) else []
        what = f"invitation {target.id}"
    elif target.reference is not None:
        rows = [r for r in (q.invitation_for_reference(s.id, target.reference) for s in shops)
                if r]
        what = f"order reference {target.reference}"
    else:
        return (f"nothing to cancel for customer {normalize_address(target.email or '')}:"
                " no scheduled invitation and no pending reminder")
    if not rows:
        return f"no invitation has {what}" if target.id is None else f"{what} does not exist"
    states = "; ".join(f"invitation {row.id} is {_state(row)}" for row in rows)
    return f"nothing to cancel for {what}: {states}"


def _state(row: InvitationRow) -> str:
    if row.status == InvitationStatus.SENT:
        if row.review_id is not None:
            return f"sent and reviewed (review {row.review_id})"
        if row.reminder_sent_at:
            return "sent, and so was its reminder"
        return "sent, with no reminder pending"
    return f"{row.status}" + (f" ({row.reason})" if row.reason else "")


def unsubscribe(q: QueryInterface, invitation: InvitationRow, now: datetime) -> int:
    """Suppress the address for the shop and cancel what is pending; returns cancelled count."""
    shop, email = invitation.shop, invitation.customer_email
    if not email:
        return 0  # erased by retention or `forget`: nothing left to suppress
    q.suppress(shop, email, now, f"unsubscribe link of invitation {invitation.id}")
    withdrawn = _withdraw(q, q.scheduled_invitations(shop, email=email),
                          "customer unsubscribed", ShipmentStatus.SUPPRESSED)
    return len(withdrawn) + q.cancel_reminders_of(shop, email)


# --- operator entry points (CLI): same rules as the BCC path -------------------------------------


def invite_manually(
    q: QueryInterface, shop: ShopConfig, signer: TokenSigner, now: datetime, *, email: str,
    name: str | None = None, reference: str | None = None, delay: timedelta | None = None,
    locale: str | None = None,
) -> Decision:
    """A manual invitation: same dedupe, caps and opt-outs as a BCC'd shipment."""
    cand = Candidate(
        normalize_address(email), _operator_text(name), _operator_text(reference), locale, None,
        InvitationMethod.MANUAL,
    )
    if cand.customer_email is None:
        return Decision(ShipmentStatus.REJECTED, f"not a valid email address: {email!r}")
    return schedule(q, shop, cand, signer, now, delay=delay)


def generate_link(
    q: QueryInterface, shop: ShopConfig, signer: TokenSigner, now: datetime, *, email: str,
    name: str | None = None, reference: str | None = None,
) -> tuple[int, str, bool]:
    """A review link handed out by the operator: (invitation id, token, created now).

    The same order reference always yields the same link, so running the command twice is
    harmless.
    """
    address = normalize_address(email)
    if address is None:
        raise ValueError(f"not a valid email address: {email!r}")
    reference = _operator_text(reference)
    if reference:
        existing = q.invitation_for_reference(shop.id, reference)
        if existing is not None:
            return existing.id, existing.token, False
    cand = Candidate(address, _operator_text(name), reference, None, None, InvitationMethod.LINK)
    inv_id = create_invitation(q, shop, cand, signer, now, due=now, status=InvitationStatus.SENT)
    row = q.get_invitation(inv_id)
    if row is None:
        raise ValueError(f"invitation {inv_id} vanished")
    return inv_id, row.token, True


def _operator_text(text: str | None) -> str | None:
    """Operator input: trimmed, without control characters, None when empty."""
    if text is None:
        return None
    text = "".join(ch for ch in text if ch >= " " and ch != "\x7f").strip()
    return text or None


# --- links customers ask for on the shop's own form (issue 13) -----------------------------------

#: The longest name the shop's form keeps (as the review form's name field).
MAX_REQUEST_NAME = 80


@dataclass(frozen=True)
class LinkRequest:
    """What the shop's generic form (/s/<shop>/write) was given: an address, maybe a name."""

    email: str
    name: str | None
    locale: str | None
    method: InvitationMethod


def request_link(q: QueryInterface, shop: ShopConfig, signer: TokenSigner, now: datetime,
                 request: LinkRequest) -> Decision:
    """An invitation to `request.email`, due now, when the shop's rules allow one: the same
    suppression and dedupe window as a shipment, so a flood of requests for one address sends
    one mail per window. The caller answers alike whatever this decides (no enumeration)."""
    if request.method not in REQUESTED_METHODS:
        raise ValueError(f"{request.method} is not a method a customer can ask for")
    cand = Candidate(normalize_address(request.email), _operator_text(request.name), None,
                     request.locale, None, request.method)
    if cand.customer_email is None:
        return Decision(ShipmentStatus.REJECTED, "not a valid email address")
    status, reason = decide(q, shop, cand, now)
    if status != ShipmentStatus.SCHEDULED:
        return Decision(status, reason)
    # Due now, outside the shop's sending hours too: the customer is waiting for this mail.
    inv_id = create_invitation(q, shop, cand, signer, now, due=now)
    return Decision(ShipmentStatus.SCHEDULED, f"invitation {inv_id} requested", inv_id, now)


# --- due invitations and reminders → the outbox -------------------------------------------------


@dataclass(frozen=True)
class PendingMail:
    invitation: DueInvitation
    kind: OutboxKind
    mail: RenderedMail


@dataclass(eq=False, repr=False)
class Inviter(MailProducer):
    """Turns due invitations and reminders into outbox rows."""

    _: KW_ONLY
    batch_size: int = 500
    unrenderable: list[tuple[int, OutboxKind, str]] = field(default_factory=list, init=False)
    _last_read: int = field(default=0, init=False)

    async def queue_due(self, max_batches: int | None = None) -> int:
        """Render and store due invitations and reminders; returns how many were queued.

        `max_batches` lets the dispatcher interleave rendering with sending, so a large
        backlog starts leaving at once instead of after everything is rendered.
        """
        total = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            batches += 1
            now = self.clock.now()
            invitations, reminders = await self._hold_due(now)
            if invitations is None:
                return total
            pending = await asyncio.to_thread(self._render_all, invitations, reminders, now)
            await self._record_unrenderable()
            results = await asyncio.gather(
                *(self.store.write(partial(self._store_mail, pending=p, now=now))
                  for p in pending),
                return_exceptions=True,
            )
            for item, result in zip(pending, results, strict=True):
                if isinstance(result, BaseException):
                    log.error("invitation=%s %s could not be queued: %r",
                              item.invitation.id, item.kind, result)
                    # Leave a record instead of retrying a broken row forever.
                    await self._mark_failed(item.invitation.id,
                                            f"could not be queued: {result!r}")
                elif result:
                    total += 1
            if self._last_read < self.batch_size:
                return total
        return total

    async def _hold_due(self, now: datetime) -> tuple[list[DueInvitation] | None,
                                                       list[DueInvitation]]:
        """The due invitations and reminders this relay renders: read, then held for it (one
        relay renders each, whichever relays share the store); (None, []) when none is due."""
        expired = now - self.lease
        invitations = await self.store.aread(lambda q: q.due_invitations(
            now, self.batch_size, relay=self.relay, expired=expired))
        reminders = await self.store.aread(lambda q: q.due_reminders(
            now, self.batch_size, relay=self.relay, expired=expired))
        self._last_read = max(len(invitations), len(reminders))
        if not invitations and not reminders:
            return None, []
        ids = {row.id for row in [*invitations, *reminders]}
        held = await self.store.write(lambda q: q.hold_invitations(
            sorted(ids), now, expired, relay=self.relay))
        return ([row for row in invitations if row.id in held],
                [row for row in reminders if row.id in held])

    async def _record_unrenderable(self) -> None:
        failures, self.unrenderable = self.unrenderable, []
        for inv_id, kind, error in failures:
            if kind == OutboxKind.INVITATION:
                await self._mark_failed(inv_id, f"cannot be rendered: {error}")
            else:
                await self._reminder_done(inv_id)

    async def _mark_failed(self, invitation_id: int, reason: str) -> None:
        await self.store.write(lambda q: q.set_invitation_status(
            invitation_id, InvitationStatus.FAILED, reason))

    async def _reminder_done(self, invitation_id: int) -> None:
        """A reminder that cannot be rendered is not tried again."""
        await self.store.write(lambda q: q.mark_reminder_queued(invitation_id))

    async def queue_one(self, invitation_id: int) -> int | None:
        """Render one scheduled invitation now (`send-now`); returns its outbox id."""
        now = self.clock.now()
        row = await self.store.aread(lambda q: q.unqueued_invitation(invitation_id))
        if row is not None:
            pending = self._render_all([row], [], now)
            await self._record_unrenderable()
            for item in pending:
                await self.store.write(partial(self._store_mail, pending=item, now=now))
        current = await self.store.aread(lambda q: q.get_invitation(invitation_id))
        if current is None or current.status != InvitationStatus.SCHEDULED:
            return None
        return current.outbox_id

    def _render_all(self, invitations: list[DueInvitation], reminders: list[DueInvitation],
                    now: datetime) -> list[PendingMail]:
        out: list[PendingMail] = []
        for kind, rows in ((OutboxKind.INVITATION, invitations),
                           (OutboxKind.REMINDER, reminders)):
            for row in rows:
                shop = self.config.shop(row.shop)
                if shop is None:
                    log.warning("invitation=%s shop=%s is no longer configured; left as is",
                                row.id, row.shop)
                    continue
                try:
                    mail = self.render_mail(shop, row, kind, now)
                except (ValueError, jinja2.TemplateError) as exc:
                    # One bad address or template must not hold back the rest of the batch.
                    log.error("invitation=%s %s cannot be rendered: %s", row.id, kind, exc)
                    self.unrenderable.append((row.id, kind, str(exc)))
                    continue
                out.append(PendingMail(row, kind, mail))
        return out

    def render_mail(self, shop: ShopConfig, row: DueInvitation, kind: OutboxKind,
                    now: datetime) -> RenderedMail:
        # A link the customer asked for is mailed as such: no "thank you for your order".
        purpose = ("review_link" if kind == OutboxKind.INVITATION
                   and row.method in REQUESTED_METHODS else str(kind))
        view = InvitationView(
            purpose=purpose, to_email=row.customer_email, to_name=row.customer_name,
            locale=row.locale, reference=row.reference,
            review_url=review_url(self.config, row.token),
            unsubscribe_url=unsubscribe_url(self.config, self.signer, row.token),
            products=row.products, sender_name=row.sender_name, reply_to=row.reply_to,
            extra_headers={"X-Mailrelay-Invitation": str(row.id)},
        )
        return invitation_mail(self.templates, self.config, shop, view, now=now)

    def _store_mail(self, q: QueryInterface, pending: PendingMail, now: datetime) -> bool:
        inv = pending.invitation
        shop = self.config.shop(inv.shop)
        if shop is None:
            return False
        if pending.kind == OutboxKind.REMINDER and not q.mark_reminder_queued(inv.id):
            return False  # cancelled (review, unsubscribe) since we read it
        suppressed_by = q.suppression(shop.id, inv.customer_email)
        if suppressed_by is not None:
            if pending.kind == OutboxKind.INVITATION:
                reason = ("customer unsubscribed before sending" if suppressed_by ==
                          "unsubscribed" else SUPPRESSION_TEXT[suppressed_by])
                q.set_invitation_status(inv.id, InvitationStatus.SUPPRESSED, reason)
                if inv.shipment_id:  # its shipment says so too (issue 10 §4)
                    q.set_shipment_status(inv.shipment_id, ShipmentStatus.SUPPRESSED, reason)
            return False
        outbox_id = enqueue_mail(q, shop, pending.kind, pending.mail, now,
                                 invitation_id=inv.id)
        if outbox_id is None:
            return False  # already queued by an earlier pass (one mail per kind)
        if pending.kind == OutboxKind.INVITATION and not q.attach_invitation_mail(
            inv.id, outbox_id
        ):
            q.cancel_mail(outbox_id, "invitation no longer scheduled")
            return False
        return True


def record_delivery(config: Config, q: QueryInterface, mail: OutboxRow, status: OutboxStatus,
                    now: datetime, error: str | None) -> None:
    """Carry a delivery result over to the invitation it belongs to (inside the writer)."""
    inv_id = mail.invitation_id
    if not inv_id:
        return
    if mail.kind == OutboxKind.INVITATION:
        if status == OutboxStatus.SENT:
            shop = config.shop(mail.shop) if mail.shop else None
            after = shop.reminder_after if shop else None
            invitation = q.get_invitation(inv_id) if after else None
            if invitation is not None and invitation.method in REQUESTED_METHODS:
                after = None  # asked for once, answered once: a typed-in address gets no more
            q.invitation_mail_sent(inv_id, now, now + after if after else None)
            if shop is not None:
                events.emit(q, config, shop.id, "invitation.sent", now, invitation_id=inv_id)
        elif status == OutboxStatus.FAILED:
            q.set_invitation_status(inv_id, InvitationStatus.FAILED, error)
    elif mail.kind == OutboxKind.REMINDER and status == OutboxStatus.SENT:
        q.reminder_sent(inv_id, now)


