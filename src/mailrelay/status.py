"""What /healthz, /metrics and the systemd watchdog report: each running part's state and counters
and the store's counts, gathered into one answer. Reads only; it runs and decides nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sized
from datetime import datetime
from typing import Any, Protocol

from mailrelay.config import Config
from mailrelay.core.clock import Clock
from mailrelay.metrics import Snapshot, exposition
from mailrelay.services.alerts import Alerter
from mailrelay.services.bounces import Bouncer
from mailrelay.services.delivery import Delivery
from mailrelay.services.replies import Replier
from mailrelay.services.supervisor import WorkerHealth, WorkerState
from mailrelay.store import QueryInterface, StoreBackend

log = logging.getLogger(__name__)

#: How long /healthz waits for the store before calling it unreachable (a PostgreSQL server
#: gone away would otherwise hold the answer for the pool's 30 s).
STORE_WAIT_SECONDS = 5.0


class _SmtpHandler(Protocol):
    @property
    def outcomes(self) -> Mapping[tuple[str, str], int]: ...


class _Listener(Protocol):
    """What is read of the SMTP listener (`edges.smtp_server.Listener`)."""

    @property
    def handler(self) -> _SmtpHandler: ...
    @property
    def sessions(self) -> Sized: ...
    @property
    def refused_counts(self) -> Mapping[str, int]: ...
    @property
    def closed_counts(self) -> Mapping[str, int]: ...


class _Watcher(Protocol):
    """What is read of the IMAP watcher (`edges.imap_watcher.ImapWatcher`)."""

    @property
    def connected(self) -> bool: ...
    @property
    def last_ok(self) -> datetime | None: ...


class _Role(Protocol):
    """What is read of a role's worker (`services.roles.RoleWorker`)."""

    @property
    def active(self) -> bool: ...
    @property
    def taken(self) -> int: ...


class Parts(Protocol):
    """The running daemon as seen from here (`app.Daemon`)."""

    @property
    def config(self) -> Config: ...
    @property
    def store(self) -> StoreBackend: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def delivery(self) -> Delivery: ...
    @property
    def webhooks(self) -> Delivery: ...
    @property
    def bouncer(self) -> Bouncer: ...
    @property
    def replier(self) -> Replier: ...
    @property
    def alerts(self) -> Alerter: ...
    @property
    def listener(self) -> _Listener: ...
    @property
    def imap(self) -> _Watcher | None: ...
    @property
    def imap_role(self) -> _Role | None: ...
    @property
    def workers(self) -> Mapping[str, WorkerHealth]: ...


def _pending_counts(now: datetime, q: QueryInterface) -> dict[str, int]:
    due = q.next_due()
    webhook_due = q.next_webhook_due()
    by_status = q.counts("outbox", "status")
    return {"inbound_pending": q.count_pending_messages(),
            "outbox_queued": by_status.get("queued", 0),
            "outbox_sending": by_status.get("sending", 0),
            "due_now": int(due is not None and due <= now),
            "webhooks_due_now": int(webhook_due is not None and webhook_due <= now)}


def _stored_snapshot(now: datetime, q: QueryInterface) -> Snapshot:
    oldest = q.oldest_due_mail()
    return Snapshot(
        outbox_by_status=q.counts("outbox", "status"),
        outbox_depth=q.outbox_depth(),
        outbox_oldest_due_age=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
        replies=q.counts("replies", "outcome"),
        reviews_by_stars=q.counts("reviews", "stars"),
        shipments_by_status=q.counts("shipments", "status"),
    )


class Status:
    """Health, watchdog and metrics answers for one running daemon."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    async def health(self) -> dict[str, Any]:
        """Each part's state and a few counts; any part down makes /healthz answer 503.

        Served without login, so states and counts only: no error text (a server's reply
        can name a customer), no paths (issue 10 §6; SPEC § Trust).
        """
        parts: dict[str, str] = {}
        database = await self.database()
        counts = await self.pending_counts() if database["reachable"] else None
        parts["store"] = "ok" if counts is not None else "failed"
        parts["outbound"] = "ok" if self.parts.delivery.outage is None else "failing"
        watcher, role = self.parts.imap, self.parts.imap_role
        if watcher is None:
            parts["imap"] = "not configured"
        elif role is not None and not role.active:
            parts["imap"] = "standby"  # another relay watches the mailbox
        else:
            parts["imap"] = "ok" if watcher.connected else "disconnected"
        down = [k for k, v in parts.items() if v not in ("ok", "not configured", "standby")]
        if role is not None:
            parts["imap_role"] = "watching" if role.active else "standby"
        # A receiver that is down is the shop's tool failing, not mailrelay: shown, never 503.
        if not any(shop.webhooks for shop in self.parts.config.shops):
            parts["webhooks"] = "not configured"
        else:
            parts["webhooks"] = "ok" if self.parts.webhooks.outage is None else "failing"
        workers = self.worker_states(counts)
        down += [k for k, v in workers.items() if v != WorkerState.OK]
        return {"status": "ok" if not down else "failed", **parts, "database": database,
                "workers": {k: str(v) for k, v in workers.items()}, "counts": counts or {}}

    async def database(self) -> dict[str, Any]:
        """The store's backend, whether a trivial query came back (within
        STORE_WAIT_SECONDS), the schema version it read and its round trip in milliseconds.
        No path, host or database name: /healthz is public."""
        backend = "sqlite" if self.parts.config.store.url is None else "postgresql"
        started = time.perf_counter()
        try:
            version = await asyncio.wait_for(
                self.parts.store.aread(lambda q: q.schema_version()), STORE_WAIT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - reported as a state, not raised
            log.debug("store ping for health failed: %r", exc)
            return {"backend": backend, "reachable": False, "schema_version": None,
                    "latency_ms": None}
        latency = round((time.perf_counter() - started) * 1000, 3)
        return {"backend": backend, "reachable": True, "schema_version": version,
                "latency_ms": latency}

    async def pending_counts(self) -> dict[str, int] | None:
        """What waits for the workers, from the store; None when the store cannot be read
        (within STORE_WAIT_SECONDS)."""
        now = self.parts.clock.now()
        try:
            return await asyncio.wait_for(
                self.parts.store.aread(lambda q: _pending_counts(now, q)), STORE_WAIT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - reported as a state, not raised
            log.debug("store read for health failed: %r", exc)
            return None

    def worker_states(self, counts: dict[str, int] | None) -> dict[str, WorkerState]:
        """Each supervised worker's state; `stuck` needs work pending (from `counts`)."""
        pending = {
            "intake": bool(counts and counts["inbound_pending"]),
            "dispatch": bool(counts and (counts["due_now"] or counts["outbox_sending"])),
            "webhooks": bool(counts and counts["webhooks_due_now"]),
        }
        return {name: health.state(pending.get(name, False))
                for name, health in sorted(self.parts.workers.items())}

    async def trouble(self) -> list[str]:
        """The workers failing or stuck, and `store` when it cannot be read (the watchdog)."""
        counts = await self.pending_counts()
        trouble = sorted(k for k, v in self.worker_states(counts).items() if v != WorkerState.OK)
        if counts is None:
            trouble.append("store")
        return trouble

    async def metrics(self) -> bytes:
        """The Prometheus exposition: counts that survive restarts from the store, live ones
        from the running parts."""
        p = self.parts
        now = p.clock.now()
        snap = await p.store.aread(lambda q: _stored_snapshot(now, q))
        snap.relay = p.config.store.relay_id
        snap.inbound = dict(p.listener.handler.outcomes)
        snap.outbound = {"sent": p.delivery.sent, "failed": p.delivery.failed,
                         "deferred": p.delivery.deferred}
        snap.webhooks = {"sent": p.webhooks.sent, "failed": p.webhooks.failed,
                         "deferred": p.webhooks.deferred}
        snap.bounces = dict(p.bouncer.counts)
        snap.replies_refused = dict(p.replier.refused)
        snap.alerts = dict(p.alerts.counts)
        states = self.worker_states(await self.pending_counts())
        snap.worker_failures = {name: w.failures for name, w in p.workers.items()}
        snap.worker_ok = {name: state == WorkerState.OK for name, state in states.items()}
        snap.smtp_sessions = len(p.listener.sessions)
        snap.smtp_sessions_refused = dict(p.listener.refused_counts)
        snap.smtp_sessions_closed = dict(p.listener.closed_counts)
        if p.imap is not None:
            snap.imap_configured = True
            snap.imap_connected = p.imap.connected
            snap.imap_watching = p.imap_role is None or p.imap_role.active
            snap.imap_role_taken = p.imap_role.taken if p.imap_role is not None else 0
            last = p.imap.last_ok
            snap.imap_last_check_age = (now - last).total_seconds() if last else None
        return await asyncio.to_thread(exposition, snap)
