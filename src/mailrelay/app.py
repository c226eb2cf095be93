"""Composition root and lifecycle: builds every part, starts them in order, stops them in reverse.

Each part registers its own cleanup on one AsyncExitStack as it starts (pymap's main.py is the
model); signals only set `stop`. No business logic here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any

from mailrelay import __version__
from mailrelay.config import Config, explain_startup_error
from mailrelay.core.clock import Clock, SystemClock
from mailrelay.core.errors import MailrelayError, StoreError, StoreUnreachable
from mailrelay.core.relays import local_relay_id
from mailrelay.core.tokens import TokenSigner, load_secret
from mailrelay.edges.imap_watcher import ImapWatcher
from mailrelay.edges.mailer import build_transports
from mailrelay.edges.scheduler import Clockwork
from mailrelay.edges.smtp_server import Handler, Listener
from mailrelay.edges.web import WebApp
from mailrelay.edges.webhook_client import WebhookClient
from mailrelay.render import Templates
from mailrelay.services import daily, privacy
from mailrelay.services.alerts import Alerter
from mailrelay.services.bounces import Bouncer
from mailrelay.services.delivery import Delivery
from mailrelay.services.digest import Digests
from mailrelay.services.inbound import Inbound
from mailrelay.services.intake import Intake
from mailrelay.services.invitations import Inviter, record_delivery
from mailrelay.services.links import public_url
from mailrelay.services.replies import Replier
from mailrelay.services.reviews import Reviewer
from mailrelay.services.roles import (
    ROLE_RETRY_SECONDS,
    RelayIdInUse,
    RoleWorker,
    hold_relay_id,
    keep_relay_id,
)
from mailrelay.services.supervisor import (
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    WorkerHealth,
    supervise,
)
from mailrelay.services.webhooks import WebhookDelivery
from mailrelay.status import Status
from mailrelay.store import StoreBackend, channels, open_store
from mailrelay.store.interface import Coordination

log = logging.getLogger(__name__)

#: How often the outages are looked at for the operator's alerts.
ALERT_CHECK_SECONDS = 60.0
#: The longest the webhook worker sleeps: events queued by another process (the CLI's
#: `send-now`) go out within this, and a retry never waits longer than its due time plus this.
WEBHOOK_POLL_SECONDS = 30.0
#: With relays sharing a store (PostgreSQL), intake also looks this often for messages another
#: relay stored, should its wake-up (NOTIFY) have been missed (the dispatcher has the
#: clockwork's poll, the webhook worker WEBHOOK_POLL_SECONDS).
SAFETY_POLL_SECONDS = 30.0
EXIT_OK = 0
#: The database could not be reached at start, or another relay held this relay's id: a failure
#: systemd restarts (Restart=on-failure), unlike EXIT_STARTUP, for a relay must come back once
#: its database does (or its own dead session on it ends).
EXIT_UNREACHABLE = 1
EXIT_STARTUP = 3


def sd_notify(state: str) -> None:
    """Tell systemd about our state (Type=notify); a no-op without NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # Never block the event loop: a reader that stopped reading fills its queue.
            sock.setblocking(False)
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec, when the watchdog is on for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.5)
    except ValueError:
        return None


class Daemon:
    """All parts of one running mailrelay, reachable by tests (ports, store, workers)."""

    #: A failing worker waits this long before its next try, doubling up to the cap.
    worker_backoff: tuple[float, float] = (BACKOFF_INITIAL, BACKOFF_MAX)
    #: How often a relay asks for the IMAP watcher's role (services.roles).
    role_interval: float = ROLE_RETRY_SECONDS

    def __init__(self, config: Config, clock: Clock | None = None, *,
                 relay_id: str | None = None, lease: timedelta | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        #: The name this relay's claims carry in a store several relays share (issue 15), and
        #: how long a claim keeps the other relays off (then its relay is taken to be gone):
        #: `[store] relay_id` and `[store] lease` unless a test gives them.
        self.relay_id = relay_id or config.store.relay_id or local_relay_id()
        self.lease = lease or config.store.lease
        self.store: StoreBackend
        self.templates: Templates
        self.inbound: Inbound
        self.intake: Intake
        self.listener: Listener
        self.handler: Handler
        self.inviter: Inviter
        self.reviewer: Reviewer
        self.replier: Replier
        self.bouncer: Bouncer
        self.alerts: Alerter
        self.digests: Digests
        self.imap: ImapWatcher | None = None
        #: Runs the IMAP watcher while this relay holds its role (one relay at a time).
        self.imap_role: RoleWorker | None = None
        self.coordination: Coordination
        self.delivery: Delivery
        self.webhooks: WebhookDelivery
        self.clockwork: Clockwork
        self.web: WebApp
        self._stack = AsyncExitStack()
        self._tasks: list[asyncio.Task[Any]] = []
        self._due = asyncio.Event()
        self._webhooks_due = asyncio.Event()
        self._purge_due = asyncio.Event()
        self._digest_due = asyncio.Event()
        self._recovered = True  # mail left `sending` by a crash is back in the queue
        #: Every supervised background worker by name (/healthz, /metrics, the watchdog).
        self.workers: dict[str, WorkerHealth] = {}
        #: What /healthz, /metrics and the watchdog report, read from the parts above.
        self.status = Status(self)

    @property
    def smtp_port(self) -> int:
        return self.listener.port

    @property
    def http_port(self) -> int:
        return self.web.port

    @property
    def watching_imap(self) -> bool:
        """Whether this relay runs the IMAP watcher now (holds its role)."""
        return self.imap_role is not None and self.imap_role.active

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        self._stack.push_async_callback(_cancel, task)

    def _worker(self, name: str) -> WorkerHealth:
        health = self.workers.get(name)
        if health is None:
            health = self.workers[name] = WorkerHealth(name, self.clock)
        return health

    def _supervise(self, name: str, work: Callable[[], Any]) -> None:
        """Run a background worker that survives any exception (issue 10 §6)."""
        initial, cap = self.worker_backoff
        self._spawn(supervise(self._worker(name), work, initial=initial, cap=cap), name)

    async def start(self) -> None:
        for warning in self.config.warnings:
            log.warning("config: %s", warning)
        try:
            signer = await self._start_outbound()
            self._start_inbound(signer)
            await self._listen_for_wakeups()
            self._supervise("intake", self.inbound.intake.run)
            self._supervise("dispatch", self._dispatch)
            self._supervise("webhooks", self._post_webhooks)
            self._supervise("retention", self._retention)
            self._supervise("digest", self._digest)
            self.clockwork.start()
            self._stack.callback(self.clockwork.stop)
            await self.clockwork.rearm()
            await self._start_edges(signer)
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start_outbound(self) -> TokenSigner:
        """The store, the services that queue mail, and delivery (requeueing what a crash left
        `sending`); returns the signer of tokens and addresses."""
        config, stack = self.config, self._stack
        self.store = open_store(config.store)
        stack.callback(self.store.close)
        # As this relay (`relay_id` given to the Daemon wins over the config's): its id held,
        # its connections named.
        self.coordination = self.store.coordination(
            dataclasses.replace(config.store, relay_id=self.relay_id))
        stack.push_async_callback(self.coordination.close)
        await hold_relay_id(self.coordination.identity(), self.relay_id)  # before requeueing
        self._spawn(keep_relay_id(self.coordination.identity(), self.relay_id,
                                  interval=self.role_interval), "relay-id")
        signer = TokenSigner(await self.coordination.shared_secret(
            load_secret(config.security.secret_file)))
        self.templates = Templates(config)
        transports = build_transports(config.outbound)
        for transport in transports:
            stack.push_async_callback(transport.close)
        self.inviter = Inviter(config, self.store, self.templates, signer, self.clock,
                               relay=self.relay_id, lease=self.lease)
        self.reviewer = Reviewer(config, self.store, self.templates, signer, self.clock,
                                 relay=self.relay_id, lease=self.lease)
        self.delivery = Delivery(
            self.store, transports, self.clock,
            rate_per_minute=config.outbound.rate_per_minute,
            on_result=functools.partial(record_delivery, config),
            sign_sender=signer.bounce_tag,
            on_progress=self._worker("dispatch").progress,
            relay=self.relay_id, lease=self.lease,
        )
        client = WebhookClient(f"mailrelay/{__version__}")
        stack.push_async_callback(client.close)
        self.webhooks = WebhookDelivery(config, self.store, client, self.clock,
                                        on_progress=self._worker("webhooks").progress,
                                        relay=self.relay_id, lease=self.lease)
        try:
            await self.delivery.recover()
        except StoreError as exc:
            # A full disk must not stop the start (exit 3 is never restarted by systemd):
            # SMTP still answers 451, and the dispatcher requeues once it can write.
            log.warning("could not requeue interrupted mail at start: %s", exc)
            self._recovered = False
        self.digests = Digests(config, self.store, self.templates, self.clock,
                               on_outbox=self._wake)
        self.clockwork = Clockwork(self.clock, self._next_due, self._wake,
                                   self._request_purge, digest=self._request_digest)
        return signer

    def _start_inbound(self, signer: TokenSigner) -> None:
        """Replies, bounces and the inbound dispatcher over intake (its worker starts later)."""
        config = self.config
        self.replier = Replier(config, self.store, self.templates, signer, self.clock)
        self.bouncer = Bouncer(self.store, self.clock, signer)
        self.inbound = Inbound(config, self.store, signer, self.clock,
                               replier=self.replier, bouncer=self.bouncer,
                               on_outbox=self._wake, on_scheduled=self.clockwork.note_due,
                               busy=lambda: self.handler.busy(),
                               on_progress=self._worker("intake").progress,
                               relay=self.relay_id, lease=self.lease)
        self.intake = self.inbound.intake
        self.handler = Handler(self.inbound)
        self.alerts = Alerter(config, self.store, self.templates, self.clock,
                              on_outbox=self._wake)
        self.intake.on_new_sender = self.alerts.new_sender
        self.replier.on_report = self.alerts.reported

    async def _listen_for_wakeups(self) -> None:
        """Work queued on any relay (store.channels) wakes this relay's workers; with relays
        sharing the store, a slow poll covers a wake-up missed while reconnecting."""
        wakeups = self.coordination.wakeups
        wakeups.subscribe(channels.INTAKE, self.intake.wake)
        wakeups.subscribe(channels.DISPATCH, self._wake)
        wakeups.subscribe(channels.WEBHOOKS, self._webhooks_due.set)
        await wakeups.start()
        if self.config.store.url is not None:
            self.intake.poll = SAFETY_POLL_SECONDS

    async def _start_edges(self, signer: TokenSigner) -> None:
        """Web, IMAP and SMTP, in that order: mail is accepted only once everything runs."""
        config, stack = self.config, self._stack
        self.web = WebApp(config, self.store, signer, self.clock, health=self.status.health,
                          on_review=self._wake, metrics=self.status.metrics)
        self.web.replier = self.replier
        await self.web.start()
        stack.push_async_callback(self.web.stop)
        if config.imap is not None:
            self.imap = ImapWatcher(config.imap, self.store, self.inbound.reply_by_imap,
                                    self.clock)
            self.imap_role = RoleWorker(self.coordination.leadership("imap-watcher"),
                                        self._watch_imap, "the IMAP mailbox",
                                        interval=self.role_interval)
            await self.imap_role.check()  # the first relay watches from its start on
            self._spawn(self.imap_role.run(), "imap-role")
        self.listener = Listener(config.smtp, self.handler)
        await self.listener.start()
        stack.push_async_callback(self.listener.stop)
        self._supervise("alerts", self._watch_outages)
        interval = watchdog_interval()
        if interval:
            self._spawn(self._heartbeat(interval), "watchdog")

    async def _watch_imap(self) -> None:
        """The IMAP watcher, supervised, while this relay holds its role."""
        if self.imap is not None:
            initial, cap = self.worker_backoff
            await supervise(self._worker("imap"), self.imap.run, initial=initial, cap=cap)

    def _wake(self) -> None:
        """Something was queued: the dispatcher renders and sends it, and the webhook worker
        posts the events that came with it."""
        self._due.set()
        self._webhooks_due.set()

    async def _post_webhooks(self) -> None:
        """The webhook worker: post what is due, then sleep until the next retry is due, a
        wake-up, or WEBHOOK_POLL_SECONDS. A failed pass raises: the supervisor backs off."""
        while True:
            self._webhooks_due.clear()
            await self.post_webhooks()
            due = await self.store.aread(lambda q: q.next_webhook_due())
            delay = WEBHOOK_POLL_SECONDS
            if due is not None:
                delay = min(max((due - self.clock.now()).total_seconds(), 0.0), delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._webhooks_due.wait(), delay)

    async def post_webhooks(self) -> int:
        """POST every webhook event due now; returns how many were attempted (tests with a
        frozen clock call this)."""
        attempted = await self.webhooks.deliver_due()
        self._worker("webhooks").progress()
        return attempted

    async def _next_due(self) -> datetime | None:
        return await self.store.aread(lambda q: q.next_due())

    async def _dispatch(self) -> None:
        """The one worker the clock wakes: render what is due, then send what is queued.

        A failed pass raises: the supervisor waits (backing off) and runs this again, which
        then starts with a pass, not with a wait for the next wake-up."""
        if self._worker("dispatch").streak:
            self._due.set()
        if not self._recovered:
            await self.delivery.recover()
            self._recovered = True
            self._due.set()  # the requeued mail is due
        while True:
            await self._due.wait()
            self._due.clear()
            await self.tick()
            await self.clockwork.rearm()

    async def _request_purge(self) -> None:
        self._purge_due.set()

    async def _retention(self) -> None:
        """The daily purge, asked for by the clock; a failed one is tried again (backing off)
        until it succeeds, not a day later."""
        while True:
            await self._purge_due.wait()
            await self.purge()
            self._purge_due.clear()
            self._worker("retention").progress()

    async def _request_digest(self) -> None:
        self._digest_due.set()

    async def _digest(self) -> None:
        """The agents' digests: checked at start and every minute; a failed pass is tried
        again (backing off)."""
        self._digest_due.set()
        while True:
            await self._digest_due.wait()
            await self.send_digests()
            self._digest_due.clear()
            self._worker("digest").progress()

    async def send_digests(self) -> int:
        """Queue the digests due now (tests with a frozen clock call this); returns mails."""
        return await self.digests.send_due()

    async def tick(self) -> int:
        """Do all work that is due by the clock now; returns messages attempted.

        Tests with a frozen clock call this instead of waiting for the scheduler.
        """
        attempted = 0
        while True:
            queued = await self.inviter.queue_due(max_batches=1)
            await self.reviewer.queue_tickets()
            sent = await self.delivery.deliver_due()
            if sent:
                self._webhooks_due.set()  # a sent invitation is an `invitation.sent` event
            attempted += sent
            if queued < self.inviter.batch_size:
                self._worker("dispatch").progress()
                return attempted

    async def purge(self) -> int:
        """Erase personal data past each shop's `retention` (the daily job, on one relay of
        those sharing the store); 0 when another relay runs today's."""
        now = self.clock.now()
        if not await daily.claim_today(self.store, daily.RETENTION, now, self.relay_id):
            return 0
        return await privacy.purge_expired(self.store, self.config.shops, now)

    async def _heartbeat(self, interval: float) -> None:
        """systemd's WATCHDOG=1, withheld while a worker fails or is stuck (or the store
        cannot be read): WatchdogSec later systemd restarts us (contrib/mailrelay.service)."""
        withheld = False
        while True:
            trouble = await self.status.trouble()
            if not trouble:
                sd_notify("WATCHDOG=1")
                if withheld:
                    log.info("watchdog ping resumed")
                    withheld = False
            elif not withheld:
                log.warning("watchdog ping withheld while %s is failing or stuck",
                            ", ".join(trouble))
                withheld = True
            await asyncio.sleep(interval)

    async def check_alerts(self) -> None:
        """Alert the operators of an outbound or IMAP outage that crossed its threshold or
        ended (the watch loop's step; tests with a frozen clock call it)."""
        now = self.clock.now()
        imap_since = None
        if self.imap is not None and self.watching_imap and not self.imap.connected:
            imap_since = self.imap.last_ok or now
        await self.alerts.check(self.delivery.outage_since, imap_since)

    async def _watch_outages(self) -> None:
        """`check_alerts` every ALERT_CHECK_SECONDS. A supervised worker like the others: a
        failing check backs off, logs once per streak and shows in /healthz."""
        while True:
            await asyncio.sleep(ALERT_CHECK_SECONDS)
            await self.check_alerts()
            self._worker("alerts").progress()

    async def stop(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> Daemon:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel and wait; cancel again if it was swallowed (aiosmtplib's wait_for on Python 3.11
    can eat a cancellation, which once left shutdown waiting forever)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


def startup_summary(config: Config) -> list[str]:
    """What an operator needs at start (issue 12): which config was read, where the store and
    the outbox are, and the URLs the shops' pages and review links use."""
    outbound = config.outbound
    where = (f"Maildir {outbound.maildir}" if outbound.transport == "maildir"
             else f"SMTP {outbound.host}:{outbound.port}")
    imap = config.imap
    lines = [
        f"config {config.source or 'embedded defaults (no relay.toml found)'}",
        f"store {config.store.url or config.store.path}",
        f"outbound mail to {where}",
        "replies mailbox " + (f"{imap.host}:{imap.port} folder {imap.folder}" if imap
                              else "none (agents reply over SMTP only)"),
        f"web {config.http.base_url}/ (review links {config.http.base_url}/r/…)",
    ]
    lines += [f"shop {shop.id}: BCC {shop.bcc_address}, public page {public_url(config, shop.id)}"
              for shop in config.shops]
    lines += [f"shop {shop.id}: webhook {hook.url} ({', '.join(hook.events)})"
              for shop in config.shops for hook in shop.webhooks]
    lines += [f"shop {shop.id}: digest at {shop.digest:%H:%M} {shop.timezone.key}"
              for shop in config.shops if shop.digest is not None]
    if config.drafts.command:
        lines.append(f"drafts from {config.drafts.command[0]} (falling back to the templates "
                     f"after {config.drafts.timeout.total_seconds():g}s)")
    return lines


async def run(
    config: Config,
    ready: Callable[[Daemon], object] | None = None,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
) -> int:
    """Run until `stop` is set (or SIGTERM/SIGINT); returns the process exit status."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_signal(signum: int) -> None:
        nonlocal interrupts
        interrupts += 1
        if signum == signal.SIGINT and interrupts > 1:
            log.warning("second interrupt: exiting at once")
            os._exit(130)
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (tests), or no signals on this platform
    daemon = Daemon(config, clock)
    try:
        try:
            await daemon.start()
        except (StoreUnreachable, RelayIdInUse) as exc:  # may pass: systemd tries again
            log.error("startup failed: %s", exc)
            log.error("%s: exit status %d, so that systemd starts the relay again",
                      "no connection to the database" if isinstance(exc, StoreUnreachable)
                      else "its id in use", EXIT_UNREACHABLE)
            return EXIT_UNREACHABLE
        except (MailrelayError, OSError, ValueError) as exc:
            log.error("startup failed: %s", explain_startup_error(exc, config))
            return EXIT_STARTUP
        for line in startup_summary(config):
            log.info("%s", line)
        log.info("mailrelay ready: smtp %s:%d, web %s:%d, %d shop(s)", config.smtp.host,
                 daemon.smtp_port, config.http.host, daemon.http_port, len(config.shops))
        sd_notify("READY=1")
        if ready is not None:
            ready(daemon)
        await stop.wait()
        sd_notify("STOPPING=1")
        await daemon.stop()
        log.info("mailrelay stopped")
        return EXIT_OK
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
