"""Durable receipt of inbound mail, and the worker that turns stored triggers into shipments.

The listener only calls `Intake.receive` (store the raw bytes, then answer 250); the worker hands
each stored message to what `dispatch` names for its kind. Whether to invite is `invitations`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol

from mailrelay.config import Config, ShopConfig
from mailrelay.core.clock import Clock
from mailrelay.core.errors import DuplicateKey, StoreError, StoreUnavailable
from mailrelay.core.models import (
    InvitationMethod,
    MessageKind,
    ShipmentNotice,
    ShipmentStatus,
)
from mailrelay.core.relays import LEASE, local_relay_id
from mailrelay.core.routing import Recipients, Route, address_matches
from mailrelay.core.tokens import TokenSigner
from mailrelay.parsing import normalize_address, parse_batch
from mailrelay.services.invitations import Candidate, cancel, create_invitation, decide, due_for
from mailrelay.services.parser_process import ParserGone, ParserProcess
from mailrelay.store import (
    SUPPRESSION_TEXT,
    InboundMessage,
    NewMessage,
    NewShipment,
    QueryInterface,
    StoreBackend,
)

log = logging.getLogger("mailrelay.intake")  # the name operators filter on

#: Only the header section is searched for Message-ID at receive time; a full parse happens later.
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
#: A burst this large is parsed in the parser process rather than a thread.
PARSER_PROCESS_THRESHOLD = 20
#: Longest intake holds back for SMTP sessions mid-DATA before it takes its turn: the 250s
#: of a burst go first, and under sustained load intake still gets a batch every 50 ms.
YIELD_LIMIT = 0.05
#: With the listener idle, intake takes batches this many times `batch_size`: no 250 waits
#: behind them, and a backlog then costs fewer commits and page writes (bench/ingest.py).
IDLE_BATCH_FACTOR = 8
#: A writer job touching at most this much raw mail is `small` (its undo pages may stay in
#: memory: Store._commit_batch); a burst of big messages takes the temporary file instead.
SMALL_WRITE_BYTES = 4 << 20
#: How long a message stays the relay's that accepted it (or that holds it while another
#: service handles it: a reply, a bounce) before other relays take it too: far longer than
#: processing one takes (milliseconds; a reply's handling, seconds). Then the messages of a
#: relay that died, or fell minutes behind, are processed by the others. A trigger is never
#: half done either way: its claim and its rows are one transaction.
MESSAGE_LEASE = LEASE


def header_end(raw: bytes) -> int:
    """Where `_HEADER_END` first matches (the empty line after the header section), or -1.

    Two `bytes.find` instead of the regex: 0.7 us instead of 2.9 on a 5 KB CRLF trigger (what
    SMTP delivers; bare-LF mail is a little slower than with the regex).
    """
    first = raw.find(b"\n\r\n")  # SMTP's CRLF; then a bare-LF empty line only before it
    bare = raw.find(b"\n\n", 0, first + 2 if first >= 0 else len(raw))
    if bare >= 0 and (first < 0 or bare < first):
        first = bare
    if first < 0:
        return -1
    # `first` is the first LF an empty line follows; the match starts at its CR, if any.
    return first - 1 if first > 0 and raw[first - 1] == 0x0D else first


def message_id_of(raw: bytes) -> str | None:
    """The Message-ID from the header section, cheaply, for the dedupe key."""
    end = header_end(raw)
    head = raw[:end] if end >= 0 else raw[:65536]
    match = _MESSAGE_ID.search(head)
    if not match:
        return None
    value = b" ".join(match.group(1).split()).decode("ascii", "replace").strip()
    return value[:998] or None


def message_dedupe_key(route: Route, message_id: str | None, raw: bytes) -> str:
    """Natural key of one inbound message per recipient: a client's retry maps to the same row."""
    ident = message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    return f"{route.shop}:{route.kind}:{route.address}:{ident}"


@dataclass(frozen=True)
class MessageOutcome:
    """What processing one stored message produced (for logs and callers)."""

    message_row_id: int
    shop: str
    kind: MessageKind
    status: str
    reason: str
    shipment_id: int | None = None
    invitation_id: int | None = None
    new_sender: str | None = None
    due_at: datetime | None = None
    #: The subject of a new sender's first trigger (for the operator's alert).
    first_subject: str | None = None


def shipment_row(
    msg: InboundMessage, notice: ShipmentNotice, status: ShipmentStatus = ShipmentStatus.REJECTED,
    reason: str = "processing",
) -> NewShipment:
    """The shipments row of a trigger."""
    return NewShipment(
        message_row_id=msg.id,
        shop=msg.shop,
        received_at=msg.received_at,
        message_id=notice.message_id or msg.message_id,
        sender=notice.sender,
        customer_email=notice.customer_email,
        customer_name=notice.customer_name,
        reference=notice.reference,
        reference_rule=notice.reference_rule,
        locale=notice.locale,
        send_at=notice.send_at,
        tags=notice.tags,
        products=notice.products,
        source=notice.source,
        defects=notice.defects,
        status=status,
        reason=reason,
        sender_name=notice.sender_name,
        reply_to=notice.reply_to,
    )


def process_shipment(
    q: QueryInterface, msg: InboundMessage, notice: ShipmentNotice, shop: ShopConfig,
    signer: TokenSigner, now: datetime,
) -> MessageOutcome | None:
    """One trigger message → one shipment row with its decision (inside the writer).

    Decides first, then inserts the shipment once with its final status: the decision does
    not depend on the row (its look-ups never saw it: a row being processed was 'rejected').
    A scheduled shipment's reason names its invitation, so that id is allotted before either
    row is written (`Queries.next_invitation_id`; the writer is the only one inserting).
    """
    if not q.claim_message(msg.id, now, "shipment"):
        return None  # already processed by an earlier pass
    # The trigger's own locale, else the shop's: what `parse` shows and the invitation uses.
    notice = replace(notice, locale=notice.locale or shop.locale)
    sender = notice.sender or normalize_address(msg.mail_from) or ""
    new_sender = sender if sender and q.note_trigger_sender(shop.id, sender, now) else None
    first_subject = notice.subject if new_sender else None
    cand = Candidate(
        notice.customer_email, notice.customer_name, notice.reference, notice.locale,
        notice.send_at, InvitationMethod.AUTOMATIC,
    )
    if shop.trigger_senders and not address_matches(sender, shop.trigger_senders):
        status, reason = (
            ShipmentStatus.REJECTED, f"sender {sender or '(none)'} is not in trigger_senders")
    else:
        status, reason = decide(q, shop, cand, now)
    if reason == SUPPRESSION_TEXT["forgotten"]:
        # The person asked to be erased (issue 10 §5): a later order keeps the decision, not
        # their name, address or the raw mail (found shown again by `shipments`).
        notice = replace(notice, customer_email=None, customer_name=None)
        q.erase_message_body(msg.id)
    if status != ShipmentStatus.SCHEDULED:
        shipment_id = q.insert_shipment(shipment_row(msg, notice, status, reason))
        return MessageOutcome(msg.id, shop.id, MessageKind.SHIPMENT, status, reason,
                              shipment_id, None, new_sender, None, first_subject)
    due = due_for(shop, cand, now, base=msg.received_at)
    inv_id = q.next_invitation_id()
    reason = f"invitation {inv_id} due {due.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    shipment_id = q.insert_shipment(shipment_row(msg, notice, status, reason))
    try:
        create_invitation(q, shop, cand, signer, now, due=due, shipment_id=shipment_id,
                          invitation_id=inv_id)
    except DuplicateKey:
        # The (shop, reference) key caught a race the checks above could not see.
        status = ShipmentStatus.DUPLICATE
        reason = f"order reference {cand.reference} already invited"
        q.set_shipment_status(shipment_id, status, reason)
        return MessageOutcome(msg.id, shop.id, MessageKind.SHIPMENT, status, reason,
                              shipment_id, None, new_sender, None, first_subject)
    return MessageOutcome(msg.id, shop.id, MessageKind.SHIPMENT, status, reason, shipment_id,
                          inv_id, new_sender, due, first_subject)


def process_cancel(
    q: QueryInterface, msg: InboundMessage, notice: ShipmentNotice, shop: ShopConfig, now: datetime
) -> MessageOutcome | None:
    """A message to `cancel_address`: cancel that order's (else that customer's) invitations,
    or the pending reminders of those already sent."""
    reason = f"cancelled by message {notice.message_id or msg.id}"
    done = cancel(q, shop, notice.reference, notice.customer_email, reason)
    what = (
        f"reference {notice.reference}" if notice.reference
        else f"customer {notice.customer_email}" if notice.customer_email
        else "nothing identifiable"
    )
    result = f"cancel {what}: {done.summary()}"
    if not q.claim_message(msg.id, now, result):
        return None
    return MessageOutcome(msg.id, shop.id, MessageKind.CANCEL, "cancelled" if done else "ignored",
                          result)


class ParsedStep(Protocol):
    """A stored message read as a trigger, turned into rows inside intake's batch job."""

    def __call__(self, q: QueryInterface, *, msg: InboundMessage, notice: ShipmentNotice,
                 shop: ShopConfig, now: datetime) -> MessageOutcome | None: ...


#: A stored message handed whole to another service (a reply, a bounce); says what was done.
RawHandler = Callable[[InboundMessage], Awaitable[str]]


@dataclass(frozen=True)
class InBatch:
    """Parsed as a trigger and handled inside intake's writer job (one fsync per batch)."""

    step: ParsedStep


@dataclass(frozen=True)
class HandOver:
    """Handled by another service, one message at a time, before the batch is written."""

    handle: RawHandler


#: Each `MessageKind` → what handles it (`services.inbound.dispatch_table` builds the one table).
Dispatch = Mapping[str, InBatch | HandOver]


@dataclass(frozen=True)
class Prepared:
    """A parsed batch waiting for its writer job."""

    batch: list[InboundMessage]
    notices: list[ShipmentNotice]
    others: int


class Intake:
    """Durable receipt for the listener, and the worker that turns receipts into shipments."""

    def __init__(
        self, config: Config, store: StoreBackend, signer: TokenSigner, clock: Clock,
        *, dispatch: Dispatch, batch_size: int = 25,
        on_scheduled: Callable[[datetime], None] | None = None,
        busy: Callable[[], bool] | None = None,
        on_progress: Callable[[], None] | None = None,
        relay: str | None = None,
        lease: timedelta = MESSAGE_LEASE,
    ) -> None:
        self.config = config
        self.store = store
        #: The name this relay's holds on messages carry, and how long they keep others off.
        self.relay = relay or local_relay_id()
        self.lease = lease
        self.signer = signer
        self.clock = clock
        self.recipients = Recipients(config.shops, signer.key_valid, signer.bounce_valid)
        self.dispatch = dispatch
        self.busy = busy
        #: Told of a sender's first trigger for a shop: (shop id, sender, its subject), the
        #: operator's alert; None = logged here.
        self.on_new_sender: Callable[[str, str, str | None], Awaitable[None]] | None = None
        self._parser = ParserProcess()
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        #: Seconds between looks without a wake-up (relays sharing a store); None: woken only.
        self.poll: float | None = None
        self.processed = 0
        self.on_scheduled = on_scheduled
        #: Told after each committed batch and whenever nothing is pending (the supervisor).
        self.on_progress = on_progress

    async def receive(
        self, peer: str, mail_from: str, routes: list[Route], raw: bytes
    ) -> list[int | None]:
        """Store the raw message once per recipient; returns when it is committed to disk."""
        now = self.clock.now()
        mid = message_id_of(raw)
        rows = [
            NewMessage(now, peer, mail_from, r.address, r.shop, r.kind, mid,
                       message_dedupe_key(r, mid, raw), raw, relay=self.relay)
            for r in routes
        ]
        ids = await self.store.write(lambda q: [q.insert_message(m) for m in rows],
                                     small=len(raw) * len(rows) <= SMALL_WRITE_BYTES, pure=True)
        self._wake.set()
        return ids

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Process stored messages until cancelled; resumes whatever a crash left behind.

        Pipelined: the next batch is read and parsed while the previous one is written.
        A failed read or commit (a full disk) raises: the supervisor runs this again after
        a pause, and everything not committed is still pending (issue 10 §6).
        """
        writing: asyncio.Task[int] | None = None
        after = 0
        try:
            while True:
                await self._yield_to_listener()
                batch = await self.store.aread(
                    partial(self._pending, self._batch_limit(), after))
                if not batch:
                    if writing is not None:
                        await writing
                        writing = None
                        after = 0  # re-read from the start: nothing is in flight now
                        continue
                    self._progress()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll)
                    self._wake.clear()
                    after = 0
                    continue
                after = batch[-1].id
                prepared = await self._prepare(batch)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(self._commit(prepared))
        finally:
            if writing is not None:
                writing.cancel()
                # Retrieved, so a failed commit is not reported again as never retrieved.
                await asyncio.gather(writing, return_exceptions=True)
            await self._parser.close()

    def _pending(self, limit: int, after: int, q: QueryInterface) -> list[InboundMessage]:
        """What this relay may process: what it accepted, and others' after their lease."""
        return q.pending_messages(limit, after, relay=self.relay,
                                  expired=self.clock.now() - self.lease)

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress()

    async def _yield_to_listener(self) -> None:
        """The 250 path first: while SMTP sessions are mid-DATA, hold back (up to
        YIELD_LIMIT) so their commits do not queue behind intake's (bench/ingest.py)."""
        if self.busy is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + YIELD_LIMIT
        while self.busy() and loop.time() < deadline:  # noqa: ASYNC110 - time-based
            await asyncio.sleep(0.005)

    def _batch_limit(self) -> int:
        """`batch_size` while SMTP sessions are active, more when nobody waits for a 250."""
        if self.busy is None or self.busy():
            return self.batch_size
        return self.batch_size * IDLE_BATCH_FACTOR

    async def _parse_triggers(self, batch: list[InboundMessage]) -> list[ShipmentNotice]:
        """Parse in the parser process when a burst is waiting (parsing is most of intake's
        CPU and would hold the GIL the listener needs); small batches stay in a thread."""
        jobs = [(m.raw, self._pattern(m.shop)) for m in batch]
        if len(batch) >= PARSER_PROCESS_THRESHOLD:
            try:
                return await self._parser.parse(jobs)
            except ParserGone as exc:
                log.warning("%s; parsing in a thread instead", exc)
        return await asyncio.to_thread(parse_batch, jobs)

    def _pattern(self, shop_id: str) -> re.Pattern[str] | None:
        shop = self.config.shop(shop_id)
        return shop.order_reference_pattern if shop else None

    async def process_pending(self) -> int:
        """Process one batch of stored messages; returns how many were looked at."""
        batch = await self.store.aread(partial(self._pending, self.batch_size, 0))
        if not batch:
            return 0
        return await self._commit(await self._prepare(batch))

    async def _prepare(self, batch: list[InboundMessage]) -> Prepared:
        """Hand replies and bounces to their services; parse the rest."""
        others = [m for m in batch if not isinstance(self.dispatch.get(m.kind), InBatch)]
        for msg in others:
            await self._hand_over(msg)
        batch = [m for m in batch if isinstance(self.dispatch.get(m.kind), InBatch)]
        return Prepared(batch, await self._parse_triggers(batch) if batch else [], len(others))

    async def _commit(self, prepared: Prepared) -> int:
        batch, notices = prepared.batch, prepared.notices
        now = self.clock.now()
        steps: list[Callable[[QueryInterface], object]] = []
        for msg, notice in zip(batch, notices, strict=True):
            shop = self.config.shop(msg.shop)
            handler = self.dispatch[msg.kind]
            if shop is None:
                steps.append(partial(_orphan, msg, now))
            elif isinstance(handler, InBatch):  # always: `_prepare` kept only these kinds
                steps.append(partial(handler.step, msg=msg, notice=notice, shop=shop, now=now))
        # One writer job for the batch, a savepoint per message: one fsync, one hand-off.
        small = sum(len(m.raw) for m in batch) <= SMALL_WRITE_BYTES
        results = (await self.store.write(lambda q: [q.each(step) for step in steps],
                                          small=small, background=True, pure=True)
                   if steps else [])
        transient: StoreUnavailable | None = None
        for msg, result in zip(batch, results, strict=True):
            if isinstance(result, StoreUnavailable):
                # A full disk or an I/O error is not the message's fault: it is not marked
                # failed but left pending, and tried again after a pause (issue 10 §6).
                transient = result
                continue
            self._log(msg, result)
            if isinstance(result, MessageOutcome) and result.new_sender and self.on_new_sender:
                await self.on_new_sender(result.shop, result.new_sender, result.first_subject)
        if transient is not None:
            raise StoreError(f"intake batch failed: {transient}") from transient
        self.processed += len(batch) + prepared.others
        self._progress()
        return len(batch) + prepared.others

    async def _hand_over(self, msg: InboundMessage) -> None:
        """An agent reply or a bounce: held for this relay, processed by its service, then
        marked done here. One held by another relay is left to it."""
        relay, held_at, lease = self.relay, self.clock.now(), self.lease
        if not await self.store.write(
                lambda q: q.claim_message_handling(msg.id, held_at, lease, relay=relay),
                small=True):
            log.info("%s %s is being handled by another relay", msg.message_id or msg.id,
                     msg.kind)
            return
        handler = self.dispatch.get(MessageKind(msg.kind))
        if not isinstance(handler, HandOver):
            log.error("%s %s received but nothing handles it", msg.message_id, msg.kind)
            result = "no handler"
        else:
            try:
                result = await handler.handle(msg)
            except StoreError:
                raise  # the store's fault, not the message's: left pending and tried again
            except Exception as exc:
                log.exception("%s %s processing failed", msg.message_id, msg.kind)
                result = f"failed: {exc!r}"
        now = self.clock.now()
        await self.store.write(lambda q: q.claim_message(msg.id, now, f"{msg.kind}: {result}"),
                               small=True, background=True)

    def _log(self, msg: InboundMessage, result: object) -> None:
        ident = msg.message_id or f"row-{msg.id}"
        if isinstance(result, BaseException):
            log.error("%s processing failed shop=%s error=%r", ident, msg.shop, result)
            self.store.submit(partial(_mark_failed, msg.id, self.clock.now(), repr(result)),
                              small=True, background=True)
            return
        if not isinstance(result, MessageOutcome):
            return
        log.info(
            "%s %s shop=%s status=%s shipment=%s invitation=%s reason=%r",
            ident, result.kind, result.shop, result.status, result.shipment_id,
            result.invitation_id, result.reason,
        )
        if result.due_at is not None and self.on_scheduled is not None:
            self.on_scheduled(result.due_at)
        if result.new_sender and self.on_new_sender is None:
            log.warning(
                "%s first trigger from sender=%s for shop=%s (a leaked BCC address shows up here)",
                ident, result.new_sender, result.shop,
            )


def _orphan(msg: InboundMessage, now: datetime, q: QueryInterface) -> None:
    """A stored message whose shop left the config: keep it, mark it, never drop it."""
    q.claim_message(msg.id, now, f"shop {msg.shop} is no longer configured")


def _mark_failed(row_id: int, now: datetime, error: str, q: QueryInterface) -> None:
    q.claim_message(row_id, now, f"failed: {error}")


