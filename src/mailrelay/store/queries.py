"""`Queries`: every statement mailrelay runs, one class per aggregate, bound to one connection.

Composition only; the SQL lives in the aggregates' modules.
"""

from __future__ import annotations

from mailrelay.store.accounts import AccountQueries
from mailrelay.store.dashboard import DashboardQueries
from mailrelay.store.digests import DigestQueries
from mailrelay.store.inbox import InboxQueries
from mailrelay.store.invitations import InvitationQueries
from mailrelay.store.jobs import JobQueries
from mailrelay.store.messages import MessageQueries
from mailrelay.store.moderation import ModerationQueries
from mailrelay.store.outbox import OutboxQueries
from mailrelay.store.privacy import PrivacyQueries
from mailrelay.store.products import ProductReviewQueries
from mailrelay.store.replies import ReplyQueries
from mailrelay.store.reports import ReportQueries
from mailrelay.store.reviews import ReviewQueries
from mailrelay.store.shipments import ShipmentQueries
from mailrelay.store.suppressions import SuppressionQueries


class Queries(
    # Privacy and reports build on invitations and suppressions: subclasses before bases.
    PrivacyQueries, ReportQueries, MessageQueries, ShipmentQueries, InvitationQueries,
    OutboxQueries, ReviewQueries, ReplyQueries, SuppressionQueries, ProductReviewQueries,
    AccountQueries, ModerationQueries, InboxQueries, DigestQueries, DashboardQueries, JobQueries,
):
    """Every SQL statement mailrelay runs, bound to one connection (a transaction or a reader)."""
