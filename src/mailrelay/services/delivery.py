"""The only sender: claims due outbox rows, hands them to the transport, retries with backoff.

Retries back off from minutes to hours and give up after five days (RFC 5321 4.5.4.1). Each
claim names its relay and holds for a lease, so several relays may share one store (issue 15).
A batch goes out over one lane per transport (outbound connection), each lane storing a mail's
result before its own next send; the store's one writer commits the lanes' results together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from mailrelay.core.clock import Clock
from mailrelay.core.errors import PermanentFailure, StoreError, TemporaryFailure
from mailrelay.core.models import OutboxStatus
from mailrelay.core.relays import LEASE, local_relay_id
from mailrelay.core.routing import signed_sender
from mailrelay.store import OutboxRow, QueryInterface, StoreBackend, from_iso

log = logging.getLogger("mailrelay.delivery")  # the name operators filter on

#: Delay before retry n (1-based); the last step repeats until GIVE_UP_AFTER.
BACKOFF = (
    timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=30),
    timedelta(hours=1), timedelta(hours=2), timedelta(hours=4),
)
GIVE_UP_AFTER = timedelta(days=5)
#: How long a relay's claim holds a row before another relay may take it over (its relay died
#: for good, or lost the store). Far longer than one SMTP step may take (outbound `timeout`,
#: 60 s by default) or a webhook POST (at most 2 min); and since a whole send, or a batch
#: waiting for its pace, can take longer still, a relay renews the claims of the batch it is
#: sending every third of the lease: a relay that is merely slow is never overtaken.
CLAIM_LEASE = LEASE
#: How often (by the injected clock) a relay looks for claims whose lease ran out; at least
#: twice a lease when `[store] lease` is shorter than two minutes.
EXPIRY_CHECK = timedelta(minutes=1)
#: How long a stopping relay (SIGTERM) waits for the mail its lanes are sending to be answered
#: and its result stored, in seconds: a receiver's 250 after our final dot usually takes
#: milliseconds; a relay cut off mid-DATA would send that mail again at its next start.
FINISH_ON_STOP = 10.0


class Sender(Protocol):
    async def send(self, envelope_from: str, recipient: str, raw: bytes) -> Any: ...


ResultHook = Callable[[QueryInterface, OutboxRow, OutboxStatus, datetime, str | None], None]


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed try."""
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


class Pacer:
    """Spaces sends to `rate_per_minute`, allowing a one-second burst, so a backlog trickles."""

    def __init__(self, rate_per_minute: int) -> None:
        self.interval = 60.0 / max(rate_per_minute, 1)
        self.capacity = max(1.0, rate_per_minute / 60.0)
        self._tokens = self.capacity
        self._stamp: float | None = None
        self._turn = asyncio.Lock()  # lanes wait one after another: the pace is shared

    async def wait(self) -> None:
        async with self._turn:
            await self._take_token()

    async def _take_token(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._stamp is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) / self.interval)
        self._stamp = now
        if self._tokens < 1.0:
            delay = (1.0 - self._tokens) * self.interval
            await asyncio.sleep(delay)
            self._stamp = loop.time()
            self._tokens = 1.0
        self._tokens -= 1.0


def recipient_ref(mail: OutboxRow) -> str:
    """Who a message is for, as ids: logs name no customer or agent address (issue 10 §6)."""
    if mail.invitation_id:
        return f"invitation:{mail.invitation_id}/outbox:{mail.id}"
    if mail.review_id:
        return f"review:{mail.review_id}/outbox:{mail.id}"
    return f"outbox:{mail.id}"


def without_recipient(reply: str, mail: OutboxRow) -> str:
    """A server's reply for the log, with the recipient's address (servers quote it) cut."""
    address = mail.recipient or ""
    if not address:
        return reply
    return re.sub(re.escape(address), "<recipient>", reply, flags=re.IGNORECASE)


class Delivery:
    """Sends what the outbox says is due; one instance, one task."""

    #: What the log calls this channel, and whether it takes webhook rows instead of mail.
    channel = "outbound delivery"
    webhooks = False

    def __init__(self, store: StoreBackend, transport: Sender | Sequence[Sender] | None,
                 clock: Clock, *,
                 rate_per_minute: int, sign_sender: Callable[[int], str],
                 on_result: ResultHook | None = None, batch_size: int = 100,
                 on_progress: Callable[[], None] | None = None, relay: str | None = None,
                 lease: timedelta = CLAIM_LEASE, renew_every: float | None = None) -> None:
        self.store = store
        #: The name this relay's claims carry; `lease` and the renewal period (seconds).
        self.relay = relay or local_relay_id()
        self.lease = lease
        self.renew_every = renew_every or lease.total_seconds() / 3
        self.finish_on_stop = FINISH_ON_STOP
        self._expiry_checked: datetime | None = None
        self.sign_sender = sign_sender  # the VERP tag for an outbox id (TokenSigner.bounce_tag)
        #: One lane per transport (an outbound connection each); a lone transport is one lane.
        self.transports: list[Sender | None] = (
            list(transport) or [None] if isinstance(transport, Sequence) else [transport])
        self.clock = clock
        self.pacer = Pacer(rate_per_minute)
        self.on_result = on_result
        self.batch_size = batch_size
        self.sent = 0
        self.failed = 0
        self.deferred = 0
        self._outage_since: datetime | None = None
        self._outage_reason = ""
        #: Results of mail already handed to the transport whose write failed (a full disk):
        #: committed again before anything else, so the row does not stay `sending`.
        self._unsettled: dict[int, Callable[[QueryInterface], None]] = {}
        #: Claimed rows never handed to the transport before a failure: back to the queue.
        self._stranded: set[int] = set()
        self._recorded: set[int] = set()  # rows of the current batch with a known result
        self._batches: list[_Batch] = []  # the batches being sent right now, their claims held
        #: Told after each batch whose results are committed (the supervisor).
        self.on_progress = on_progress

    async def recover(self) -> int:
        """Requeue the mail this relay's previous life left in `sending` (a crash); it goes out
        again byte for byte. Other relays' rows may be in flight: their lease says when not."""
        relay = self.relay
        count = await self.store.write(lambda q: q.requeue_interrupted(relay))
        if count:
            log.warning("requeued %d message(s) interrupted while sending", count)
        return count

    async def settle(self) -> int:
        """Finish what a failed write left behind: commit the results of mail already sent
        (not sent again) and requeue claimed rows never attempted; returns how many rows.

        Raises while the store still refuses writes; the dispatcher backs off and retries.
        """
        writes = dict(self._unsettled)
        stranded = set(self._stranded)
        if not writes and not stranded:
            return 0

        def run(q: QueryInterface) -> None:
            for write in writes.values():
                write(q)
            q.requeue_interrupted(self.relay, stranded)

        await self.store.write(run)
        for outbox_id, write in writes.items():
            if self._unsettled.get(outbox_id) is write:
                del self._unsettled[outbox_id]
        self._stranded -= stranded
        log.info("recorded %d delivery result(s) and requeued %d message(s) a failed write "
                 "had left sending", len(writes), len(stranded))
        return len(writes) + len(stranded)

    async def deliver_due(self) -> int:
        """Send everything due now; returns how many messages were attempted."""
        total = 0
        while True:
            await self.settle()
            now = self.clock.now()
            await self._requeue_expired(now)
            batch = await self._claim_due(now)
            if not batch:
                return total
            await self._send_batch(batch, now)
            total += len(batch)
            if self.on_progress is not None:
                self.on_progress()

    async def _claim_due(self, now: datetime) -> list[OutboxRow]:
        return await self.store.write(lambda q: q.claim_due_mail(
            now, self.batch_size, self.webhooks, relay=self.relay))

    async def _requeue_expired(self, now: datetime) -> None:
        """Every EXPIRY_CHECK (or half lease), put back what any relay claimed longer than the
        lease ago. The claims this relay is sending right now are renewed first, in the same
        transaction: a clock stepped forward (NTP) never makes a relay take over, and send
        again, mail it still has in flight."""
        every = min(EXPIRY_CHECK, self.lease / 2)
        if self._expiry_checked is not None and now - self._expiry_checked < every:
            return
        batches = list(self._batches)
        held: set[int] = set().union(*(batch.waiting for batch in batches))

        def run(q: QueryInterface) -> tuple[set[int], int]:
            kept = q.renew_claims(sorted(held), now, relay=self.relay) if held else set()
            return kept, q.requeue_expired(now, self.lease, self.webhooks)

        kept, count = await self.store.write(run)
        for batch in batches:
            self._renewed(batch, held, kept, now)
        self._expiry_checked = now
        if count:
            log.warning("requeued %d message(s) claimed more than %s ago by a relay that did "
                        "not finish them", count, self.lease)

    async def _send_batch(self, rows: list[OutboxRow], claimed_at: datetime) -> None:
        """Send a claimed batch over the lanes; stopped (cancelled), it lets the mail in flight
        finish and its result be stored, for at most `finish_on_stop` seconds."""
        batch = _Batch(iter(rows), {mail.id for mail in rows}, claimed_at, len(rows))
        self._batches.append(batch)
        keeper = asyncio.create_task(self._keep_claims(batch))
        lanes = [asyncio.create_task(self._lane(transport, batch))
                 for transport in self.transports[:len(rows)]]
        try:
            await asyncio.wait(lanes)  # a lane's failure stops the others between mails
            for lane in lanes:
                failure = lane.exception()
                if failure is not None:
                    raise failure
        except asyncio.CancelledError:
            batch.stopped = True
            await _finish(lanes, self.finish_on_stop)
            raise
        finally:
            if batch.stopped:
                # A failure, a stop, or claims left unrenewed: the rows without a result that
                # are still this relay's go back to the queue at the next settle (or at the
                # next start, if this is the end), another relay's takeover left alone;
                # results not committed are in _unsettled.
                self._stranded.update(m.id for m in rows if m.id not in self._recorded)
            keeper.cancel()
            self._batches.remove(batch)
            self._recorded.difference_update(m.id for m in rows)

    async def _lane(self, transport: Sender | None, batch: _Batch) -> None:
        """Send the batch's next rows over `transport` until none are left or the batch
        stops; each mail's result is committed before this lane sends its next one."""
        try:
            while not batch.stopped:
                mail = next(batch.rows, None)
                if mail is None:
                    return
                await self.pacer.wait()
                if mail.id not in batch.waiting:
                    continue  # taken over by another relay after its lease: not ours to send
                if batch.stopped or self._lease_running_out(batch):
                    return
                recorded = await self._attempt(mail, transport)
                batch.waiting.discard(mail.id)
                # Its result is committed before this lane's next message goes out: the
                # receiver sees our next command on this connection only once the row is
                # `sent`. So a crash resends only mail whose 250 had not reached us (or came
                # the instant before the crash), never one the receiver saw us acknowledge
                # (issue 15). Shielded: a relay stopping now still stores the result.
                await asyncio.shield(recorded)
        except BaseException:
            batch.stopped = True
            raise

    def _lease_running_out(self, batch: _Batch) -> bool:
        """Have the claims gone unrenewed for two thirds of the lease (the store did not take
        the renewals in time)? Then another relay may take the rows over any moment: this one
        sends no more of them; they go back to the queue when their lease ran out."""
        if self.clock.now() - batch.held_since < self.lease * 2 / 3:
            return False
        if not batch.stopped:
            batch.stopped = True
            log.warning("the claims of this batch (%d message(s)) were not renewed for %s: "
                        "leaving the rest to whichever relay takes them over", batch.size,
                        self.lease * 2 / 3)
        return True

    async def _renew(self, ids: list[int], now: datetime) -> set[int]:
        """Renew `ids` (a function of its own: a lambda in the loop would not bind them)."""
        return await self.store.write(lambda q: q.renew_claims(ids, now, relay=self.relay))

    async def _keep_claims(self, batch: _Batch) -> None:
        """Renew the lease of the batch's rows not yet sent (those in flight included) every
        `renew_every` seconds; drop from `waiting` any another relay took over meanwhile."""
        waiting = batch.waiting
        while waiting:
            await asyncio.sleep(self.renew_every)
            asked, now = sorted(waiting), self.clock.now()
            try:
                kept = await self._renew(asked, now)
            except StoreError as exc:
                log.warning("could not renew the claims of %d message(s): %s", len(asked), exc)
                continue
            self._renewed(batch, set(asked), kept, now)

    @staticmethod
    def _renewed(batch: _Batch, asked: set[int], kept: set[int], now: datetime) -> None:
        """The claims `asked` of `batch` were renewed at `now`; those not `kept` were taken
        over by another relay after their lease, and are no longer this relay's to send."""
        batch.held_since = now
        lost = batch.waiting.intersection(asked) - kept
        if lost:
            batch.waiting -= lost
            log.warning("%d claimed message(s) were taken over by another relay after "
                        "the lease; this relay leaves them to it", len(lost))

    async def deliver_one(self, outbox_id: int) -> OutboxRow | None:
        """Send a single queued row now (CLI `send-now`); returns the row as it ends."""
        now = self.clock.now()
        relay = self.relay
        batch = await self.store.write(lambda q: _claim_one(q, outbox_id, now, relay))
        if batch:
            await self._send_batch(batch, now)  # its claim renewed while the send takes long
        return await self.store.aread(lambda q: q.get_mail(outbox_id))

    async def _attempt(self, mail: OutboxRow, transport: Sender | None) -> asyncio.Future[None]:
        ident = mail.message_id
        try:
            result = await self._transmit(mail, transport)
        except TemporaryFailure as exc:
            return self._record_temporary(mail, exc.reply)
        except PermanentFailure as exc:
            self.failed += 1
            log.warning("%s to=%s failed permanently: %s", ident, recipient_ref(mail),
                        without_recipient(exc.reply, mail))
            self._outage_over()
            return self._record(mail, OutboxStatus.FAILED, exc.reply)
        self.sent += 1
        self._outage_over()
        reply = str(getattr(result, "reply", result))
        log.info("%s sent kind=%s to=%s reply=%r", ident, mail.kind, recipient_ref(mail),
                 without_recipient(reply, mail))
        return self._record(mail, OutboxStatus.SENT, None)

    async def _transmit(self, mail: OutboxRow, transport: Sender | None) -> Any:
        """Hand one row to the lane's transport; raises Temporary- or PermanentFailure."""
        if transport is None:
            raise PermanentFailure(f"{self.channel} has no transport for {mail.kind}")
        sender = signed_sender(str(mail.envelope_from), self.sign_sender)
        return await transport.send(sender, mail.recipient, mail.raw)

    def _record_temporary(self, mail: OutboxRow, reply: str) -> asyncio.Future[None]:
        now = self.clock.now()
        created = from_iso(mail.created_at) or now
        if now - created >= GIVE_UP_AFTER:
            self.failed += 1
            log.warning("%s to=%s gave up after %d attempts: %s", mail.message_id,
                        recipient_ref(mail), mail.attempts, without_recipient(reply, mail))
            return self._record(mail, OutboxStatus.FAILED, f"gave up after 5 days: {reply}")
        self.deferred += 1
        if self._outage_since is None:
            self._outage_since = now
            self._outage_reason = reply
            log.warning("%s failing (will retry with backoff): %s", self.channel,
                        without_recipient(reply, mail))
        retry_at = now + retry_delay(mail.attempts)
        return self._record(mail, OutboxStatus.QUEUED, reply, retry_at)

    @property
    def outage(self) -> str | None:
        """The failure that started the current outage, or None while sending works."""
        return self._outage_reason if self._outage_since is not None else None

    @property
    def outage_since(self) -> datetime | None:
        """When the current outage began (its first temporary failure); None while sending works."""
        return self._outage_since

    def _outage_over(self) -> None:
        if self._outage_since is not None:
            log.info("%s recovered after %s", self.channel, self.clock.now() - self._outage_since)
            self._outage_since = None

    def _record(self, mail: OutboxRow, status: OutboxStatus, error: str | None,
                retry_at: datetime | None = None) -> asyncio.Future[None]:
        now = self.clock.now()
        hook = self.on_result
        outbox_id, relay = mail.id, self.relay

        def write(q: QueryInterface) -> None:
            if not q.finish_mail(outbox_id, status, now, error, retry_at, relay=relay,
                                 attempt=mail.attempts):
                # Another relay claimed the row again after the lease: its result counts.
                # If this one was sent, the customer may get it twice, byte for byte.
                log.warning("%s result %s not recorded: %s was taken over by another relay",
                            mail.message_id, status, recipient_ref(mail))
                return
            if hook is not None and status != OutboxStatus.QUEUED:
                hook(q, mail, status, now, error)

        self._recorded.add(outbox_id)
        self._unsettled[outbox_id] = write

        def committed(fut: asyncio.Future[None]) -> None:
            # exception() also marks a failure as seen: settle() writes it again.
            if not fut.cancelled() and fut.exception() is None \
                    and self._unsettled.get(outbox_id) is write:
                del self._unsettled[outbox_id]

        future = asyncio.wrap_future(self.store.submit(write))
        future.add_done_callback(committed)
        return future


@dataclass
class _Batch:
    """A claimed batch while its lanes send it: the rows no lane took yet, the ids still this
    relay's to send, when its claims were last written (claimed, then renewed), its size, and
    whether the lanes are to stop taking rows (a failure, a stop, or claims not renewed)."""

    rows: Iterator[OutboxRow]
    waiting: set[int]
    held_since: datetime
    size: int
    stopped: bool = field(default=False)


async def _finish(lanes: list[asyncio.Task[None]], within: float) -> None:
    """Wait up to `within` seconds for the lanes to finish the mail they are sending (the
    daemon's stop cancels again and again meanwhile); then cancel what is still running."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not all(lane.done() for lane in lanes) and loop.time() < deadline:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(lanes, timeout=deadline - loop.time())
    for lane in lanes:
        lane.cancel()
    await asyncio.gather(*lanes, return_exceptions=True)


def _claim_one(q: QueryInterface, outbox_id: int, now: datetime, relay: str) -> list[OutboxRow]:
    mail = q.claim_mail(outbox_id, now, relay=relay)
    return [mail] if mail else []
