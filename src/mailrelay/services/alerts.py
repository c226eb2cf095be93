"""The operator's alerts: a new trigger sender, outbound failing over an hour, the IMAP mailbox
unreachable over 15 minutes (and their end), a review reported by an agent. Each event is logged,
counted per kind and shop, and queued once to that shop's `alerts` addresses; never sent here.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum

import jinja2

from mailrelay.config import Config, ShopConfig
from mailrelay.core.clock import Clock
from mailrelay.core.errors import StoreError
from mailrelay.core.models import OutboxKind
from mailrelay.render import Templates
from mailrelay.render.alert import alert_mail
from mailrelay.services import moderation
from mailrelay.services.outbox import enqueue_mail
from mailrelay.store import QueryInterface, StoreBackend

log = logging.getLogger("mailrelay.alerts")  # the name operators filter on

OUTBOUND_AFTER = timedelta(hours=1)
IMAP_AFTER = timedelta(minutes=15)


class AlertKind(StrEnum):
    """What an alert is about (the `kind` label of mailrelay_alerts_total)."""

    NEW_SENDER = "new_sender"
    OUTBOUND_FAILING = "outbound_failing"
    OUTBOUND_RESOLVED = "outbound_resolved"
    IMAP_UNREACHABLE = "imap_unreachable"
    IMAP_RESOLVED = "imap_resolved"
    REVIEW_REPORTED = "review_reported"


class Outage:
    """One watched part's outage: alerts once when it has lasted `after`, and once when it
    ends after having alerted (a short "resolved"); a shorter outage stays silent."""

    def __init__(self, after: timedelta, failing: AlertKind, resolved: AlertKind) -> None:
        self.after = after
        self.failing = failing
        self.resolved = resolved
        self.since: datetime | None = None
        self.alerted = False

    def step(self, down_since: datetime | None, now: datetime) -> AlertKind | None:
        """The alert this observation calls for, if any (`down_since` None = working)."""
        if down_since is None:
            was_alerted, self.since, self.alerted = self.alerted, None, False
            return self.resolved if was_alerted else None
        self.since = self.since or down_since
        if not self.alerted and now - self.since >= self.after:
            self.alerted = True
            return self.failing
        return None


class Alerter:
    """Queues the operator's alerts into the outbox, and counts them for /metrics."""

    def __init__(self, config: Config, store: StoreBackend, templates: Templates, clock: Clock, *,
                 on_outbox: Callable[[], None] | None = None) -> None:
        self.config = config
        self.store = store
        self.templates = templates
        self.clock = clock
        self.on_outbox = on_outbox
        #: (kind, shop id) → alerts raised since start, for /metrics.
        self.counts: Counter[tuple[str, str]] = Counter()
        self.outbound = Outage(OUTBOUND_AFTER, AlertKind.OUTBOUND_FAILING,
                               AlertKind.OUTBOUND_RESOLVED)
        self.imap = Outage(IMAP_AFTER, AlertKind.IMAP_UNREACHABLE, AlertKind.IMAP_RESOLVED)

    def queue(self, q: QueryInterface, shop: ShopConfig, kind: AlertKind, facts: Mapping[str, str],
              now: datetime, *, by_mail: bool = True, review_id: int | None = None) -> int:
        """Log and count one alert of `shop`, and queue it to each of its `alerts` addresses
        (inside the writer's transaction; not with by_mail=False); returns the messages queued."""
        self.counts[(str(kind), shop.id)] += 1
        log.warning("alert %s shop=%s %s", kind, shop.id,
                    " ".join(f"{key}={value!r}" for key, value in facts.items()))
        queued = 0
        for address in shop.alerts if by_mail else ():
            try:
                mail = alert_mail(self.templates, self.config, shop, address, kind, facts,
                                  now=now)
            except (ValueError, jinja2.TemplateError) as exc:
                log.error("alert %s shop=%s cannot be rendered: %s", kind, shop.id, exc)
                continue
            queued += enqueue_mail(q, shop, OutboxKind.ALERT, mail, now,
                                   review_id=review_id) is not None
        return queued

    async def _raise(self, shops: Iterable[ShopConfig], kind: AlertKind,
                     facts: Mapping[str, str]) -> None:
        now = self.clock.now()
        chosen = list(shops)
        queued = await self.store.write(
            lambda q: sum(self.queue(q, shop, kind, facts, now) for shop in chosen), small=True)
        if queued and self.on_outbox is not None:
            self.on_outbox()

    async def new_sender(self, shop_id: str, sender: str, subject: str | None) -> None:
        """A sender's first trigger for a shop. The shop's very first sender is its own shop
        system (the demo's first trigger too): logged, not alerted. A store failure is logged:
        the trigger is processed, and intake goes on."""
        shop = self.config.shop(shop_id)
        if shop is None:
            return
        try:
            first = await self.store.aread(lambda q: q.first_trigger_sender(shop.id))
            if first == sender:
                log.info("first trigger sender of shop=%s: %s", shop.id, sender)
                return
            await self._raise([shop], AlertKind.NEW_SENDER,
                              {"sender": sender, "subject": subject or "(none)"})
        except StoreError as exc:
            log.error("alert new_sender shop=%s sender=%s could not be queued: %s",
                      shop.id, sender, exc)

    def reported(self, q: QueryInterface, shop_id: str, review_id: int, reason: str,
                 now: datetime) -> None:
        """An agent reported a review (inside the reply's transaction: once per reply). The
        review id and the reason only: the customer's address stays out of the mail. The reply
        path wakes the outbox after each reply."""
        shop = self.config.shop(shop_id)
        if shop is not None:
            # A shop without owner accounts had the owners' mail (report_pending) sent to
            # these same addresses: the alert is logged and counted, not mailed twice.
            self.queue(q, shop, AlertKind.REVIEW_REPORTED,
                       {"review_id": str(review_id), "reason": reason}, now,
                       by_mail=bool(moderation.owner_accounts(q, shop)),
                       review_id=review_id)  # forget erases it with the review's mail

    async def check(self, outbound_since: datetime | None, imap_since: datetime | None) -> None:
        """Observe both outages now (None = working); alert every shop of what crossed its
        threshold or ended. Called periodically and by tests with a frozen clock."""
        now = self.clock.now()
        for outage, since in ((self.outbound, outbound_since), (self.imap, imap_since)):
            began = outage.since or since
            kind = outage.step(since, now)
            if kind is not None and began is not None:
                await self._raise(self.config.shops, kind, {"since": _utc_text(began)})


def _utc_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
