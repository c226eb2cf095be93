"""The agents' daily digest ([[shop]] digest = "09:00"): once per local day per shop, each agent
of the shop gets the list of its unanswered 1–3★ reviews (one reported to the owners says it
waits for them; a hidden one is left out); the store records the day, so a
restart never sends it twice. Nothing is sent on a day without such reviews."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

import jinja2

from mailrelay.config import Config, ShopConfig
from mailrelay.core.clock import Clock
from mailrelay.core.models import OutboxKind
from mailrelay.render.digest import DigestItem, digest_mail
from mailrelay.render.message import RenderedMail
from mailrelay.render.templates import Templates
from mailrelay.services.outbox import enqueue_mail
from mailrelay.store import QueryInterface, StoreBackend
from mailrelay.store.timestamps import from_iso

log = logging.getLogger("mailrelay.digest")

#: At most this many reviews in one digest, oldest first (the console lists them all).
MAX_LISTED: Final = 100


@dataclass(frozen=True, slots=True)
class _ShopFacts:
    last_day: str | None
    items: list[DigestItem]
    agents: list[str]


def _report_waits(q: QueryInterface, review_id: int) -> bool:
    """Whether an agent's report of the review waits for an owner (a confirmed one hides the
    review, which the list leaves out)."""
    return any(found.state == "pending" for found in q.reports_of_review(review_id))


def due_day(shop: ShopConfig, now: datetime) -> date | None:
    """The shop's local date when its digest time has come today, else None (or no digest)."""
    if shop.digest is None:
        return None
    local = now.astimezone(shop.timezone)
    return local.date() if local.time() >= shop.digest else None


class Digests:
    """Queues each shop's digest when its time has come; called every minute by the clock."""

    def __init__(self, config: Config, store: StoreBackend, templates: Templates, clock: Clock, *,
                 on_outbox: Callable[[], None] | None = None) -> None:
        self.config = config
        self.store = store
        self.templates = templates
        self.clock = clock
        self.on_outbox = on_outbox
        #: shop id → the last day whose digest this process knows to be done.
        self._done: dict[str, str] = {}

    async def send_due(self) -> int:
        """Queue every digest due now and not yet done today; returns the mails queued."""
        now = self.clock.now()
        queued = 0
        for shop in self.config.shops:
            day = due_day(shop, now)
            if day is not None:
                queued += await self._shop_digest(shop, day.isoformat(), now)
        if queued and self.on_outbox is not None:
            self.on_outbox()
        return queued

    async def _shop_digest(self, shop: ShopConfig, day: str, now: datetime) -> int:
        if self._done.get(shop.id, "") >= day:
            return 0  # known without asking the store: the minute's tick costs nothing
        facts = await self.store.aread(lambda q: self._facts(q, shop))
        if facts.last_day is not None and facts.last_day >= day:
            self._done[shop.id] = facts.last_day
            return 0
        mails = await asyncio.to_thread(self._render, shop, facts, now) if facts.items else []
        queued: int = await self.store.write(lambda q: self._queue(q, shop, day, mails, now))
        self._done[shop.id] = day
        log.info("digest shop=%s day=%s reviews=%d mails=%d", shop.id, day, len(facts.items),
                 queued)
        return queued

    def _facts(self, q: QueryInterface, shop: ShopConfig) -> _ShopFacts:
        rows = q.list_reviews(shop=shop.id, stars=(1, 3), replied=False, reported=False,
                              limit=MAX_LISTED)
        base = self.config.http.base_url
        items = [DigestItem(stars=row.stars, title=row.title,
                            created_at=from_iso(row.created_at) or self.clock.now(),
                            url=f"{base}/console/{shop.id}/r/{row.id}",
                            reported=_report_waits(q, row.id)) for row in rows]
        agents: dict[str, str] = {}
        for address in [*shop.agents, *(user.email for user in q.list_users(shop.id)
                                        if user.role == "agent")]:
            agents.setdefault(address.lower(), address)
        return _ShopFacts(q.last_digest_date(shop.id), items, list(agents.values()))

    def _render(self, shop: ShopConfig, facts: _ShopFacts, now: datetime) -> list[RenderedMail]:
        inbox = f"{self.config.http.base_url}/console/{shop.id}/"
        mails = []
        for agent in facts.agents:
            try:
                mails.append(digest_mail(self.templates, self.config, shop, agent, facts.items,
                                         inbox, now=now))
            except (ValueError, jinja2.TemplateError) as exc:
                log.error("digest shop=%s to=%s cannot be rendered: %s", shop.id, agent, exc)
        return mails

    @staticmethod
    def _queue(q: QueryInterface, shop: ShopConfig, day: str, mails: list[RenderedMail],
               now: datetime) -> int:
        """Claim the day, then queue its mails: two relays (or a restart) queue them once."""
        if not q.claim_digest(shop.id, day, now):
            return 0
        return sum(enqueue_mail(q, shop, OutboxKind.DIGEST, mail, now) is not None
                   for mail in mails)
