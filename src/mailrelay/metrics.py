"""Prometheus text exposition (prometheus-client) of a snapshot the app gathers per scrape.

Counts that must survive restarts come from the store; live ones from the running parts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "Snapshot", "exposition"]


@dataclass
class Snapshot:
    """Everything one scrape reports."""

    inbound: Mapping[tuple[str, str], int] = field(default_factory=dict)
    outbound: Mapping[str, int] = field(default_factory=dict)
    #: Webhook POST attempts since start by result (sent, failed, deferred).
    webhooks: Mapping[str, int] = field(default_factory=dict)
    outbox_by_status: Mapping[str, int] = field(default_factory=dict)
    outbox_depth: int = 0
    outbox_oldest_due_age: float = 0.0
    replies: Mapping[str, int] = field(default_factory=dict)
    reviews_by_stars: Mapping[str, int] = field(default_factory=dict)
    shipments_by_status: Mapping[str, int] = field(default_factory=dict)
    bounces: Mapping[str, int] = field(default_factory=dict)
    #: (refusal label, "true"/"false" an agent was told) → count since start.
    replies_refused: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: (alert kind, shop id) → operator alerts raised since start.
    alerts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    imap_configured: bool = False
    imap_connected: bool = False
    imap_last_check_age: float | None = None
    #: Whether this relay holds the IMAP watcher's role, and how often it took it.
    imap_watching: bool = True
    imap_role_taken: int = 0
    #: Supervised background workers: failures since start, and whether each is ok now.
    worker_failures: Mapping[str, int] = field(default_factory=dict)
    worker_ok: Mapping[str, bool] = field(default_factory=dict)
    #: SMTP sessions open now, refused at connect by reason, and closed by a limit by reason.
    smtp_sessions: int = 0
    smtp_sessions_refused: Mapping[str, int] = field(default_factory=dict)
    smtp_sessions_closed: Mapping[str, int] = field(default_factory=dict)


class _SnapshotCollector(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        s = self.snap
        inbound = CounterMetricFamily(
            "mailrelay_inbound_messages", "Inbound SMTP outcomes by reason",
            labels=["outcome", "reason"])
        for (outcome, reason), value in sorted(s.inbound.items()):
            inbound.add_metric([outcome, reason], value)
        yield inbound
        yield _counter("mailrelay_outbound_messages", "Send attempts since start by result",
                       "result", s.outbound, ("sent", "failed", "deferred"))
        yield _counter("mailrelay_webhook_posts", "Webhook POST attempts since start by result",
                       "result", s.webhooks, ("sent", "failed", "deferred"))
        yield _by_label(GaugeMetricFamily("mailrelay_outbox_messages", "Outbox rows by status",
                                          labels=["status"]), s.outbox_by_status)
        yield GaugeMetricFamily("mailrelay_outbox_depth", "Messages queued or being sent",
                                value=s.outbox_depth)
        yield GaugeMetricFamily("mailrelay_outbox_oldest_due_age_seconds",
                                "How long the oldest due message has waited",
                                value=s.outbox_oldest_due_age)
        yield _counter("mailrelay_bounces", "Bounces processed since start", "kind", s.bounces,
                       ("hard", "soft", "ignored"))
        yield _counter("mailrelay_replies", "Agent replies by outcome", "outcome", s.replies)
        refused = CounterMetricFamily(
            "mailrelay_replies_refused",
            "Agent replies not acted on since start, by reason; notified=false: nobody was told",
            labels=["reason", "notified"])
        for (reason, notified), value in sorted(s.replies_refused.items()):
            refused.add_metric([reason, notified], value)
        yield refused
        yield _alerts(s.alerts)
        yield _counter("mailrelay_reviews", "Reviews by stars", "stars", s.reviews_by_stars,
                       ("1", "2", "3", "4", "5"))
        yield _counter("mailrelay_shipments", "Shipments by outcome", "status",
                       s.shipments_by_status)
        yield _counter("mailrelay_worker_failures",
                       "Background worker failures since start (each retried)", "worker",
                       s.worker_failures)
        yield _by_label(GaugeMetricFamily(
            "mailrelay_worker_healthy", "1 while a background worker is neither failing nor stuck",
            labels=["worker"]), {w: int(s.worker_ok.get(w, False)) for w in s.worker_failures})
        yield GaugeMetricFamily("mailrelay_smtp_sessions", "SMTP sessions open now",
                                value=s.smtp_sessions)
        yield _counter("mailrelay_smtp_sessions_refused",
                       "SMTP connections refused at connect by reason", "reason",
                       s.smtp_sessions_refused,
                       ("max_sessions", "max_sessions_per_client", "not_allowed"))
        yield _counter("mailrelay_smtp_sessions_closed",
                       "SMTP sessions we closed at a limit by reason", "reason",
                       s.smtp_sessions_closed, ("junk_commands", "session_timeout"))
        if s.imap_configured:
            yield GaugeMetricFamily("mailrelay_imap_connected", "1 when the IMAP watcher is up",
                                    value=1 if s.imap_connected else 0)
            yield GaugeMetricFamily(
                "mailrelay_imap_last_check_age_seconds",
                "Seconds since the last successful mailbox check",
                value=s.imap_last_check_age if s.imap_last_check_age is not None
                else float("nan"))
            yield GaugeMetricFamily(
                "mailrelay_imap_watching",
                "1 when this relay watches the IMAP mailbox, 0 on standby (another relay does)",
                value=1 if s.imap_watching else 0)
            yield CounterMetricFamily(
                "mailrelay_imap_role_taken", "Times this relay took over watching the mailbox",
                value=s.imap_role_taken)


_Family = CounterMetricFamily | GaugeMetricFamily


def _by_label(family: _Family, values: Mapping[str, int]) -> _Family:
    """`family` with one sample per label value, in label order."""
    for label, value in sorted(values.items()):
        family.add_metric([label], value)
    return family


def _alerts(values: Mapping[tuple[str, str], int]) -> CounterMetricFamily:
    """mailrelay_alerts_total{kind, shop}: the operator's alerts since start."""
    family = CounterMetricFamily(
        "mailrelay_alerts", "Operator alerts raised since start, by kind and shop",
        labels=["kind", "shop"])
    for (kind, shop), value in sorted(values.items()):
        family.add_metric([kind, shop], value)
    return family


def _counter(name: str, doc: str, label: str, values: Mapping[str, int],
             always: tuple[str, ...] = ()) -> _Family:
    """A counter with one label; the `always` values are shown even at 0, so a dashboard
    sees the series before the first event."""
    every = {key: values.get(key, 0) for key in always} | dict(values)
    return _by_label(CounterMetricFamily(name, doc, labels=[label]), every)


def exposition(snap: Snapshot) -> bytes:
    """The text format for one scrape; a fresh registry, so daemons never share state."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap))
    return generate_latest(registry)
