"""What any store backend offers the services: the statements of every aggregate, and how work
reaches them (one writer committing in groups, snapshot reads). SQLite (`database.Store`) and
PostgreSQL (`pg.database.PgStore`, issue 15) implement it.

Signatures only. Not here, because they are SQLite's own: PRAGMAs, `secure_delete`, the WAL,
sqlite-utils, `Queries.conn`.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, Self, TypeVar

from mailrelay.config.model import StoreConfig
from mailrelay.core.models import InvitationStatus, OutboxStatus, ShipmentStatus
from mailrelay.store.dashboard import FunnelFigures, GroupStars, LedgerPage, WeekFigures
from mailrelay.store.rows import (
    AuditEntry,
    CustomerContext,
    DecisionFacts,
    DueInvitation,
    Erasure,
    ImapSeenRow,
    InboundMessage,
    InboxFilter,
    InboxPage,
    InvitationRow,
    MailListing,
    NewInvitation,
    NewMail,
    NewMessage,
    NewProductReview,
    NewReply,
    NewReview,
    NewShipment,
    NoteRow,
    OutboxRow,
    ProductFigures,
    ProductReviewListing,
    ProductReviewRow,
    RatingSummary,
    ReplyKeyRow,
    ReplyRow,
    ReportRow,
    ResponseRow,
    ReviewRow,
    ReviewText,
    ShipmentRow,
    ShopStats,
    UserListing,
    UserRow,
)

T = TypeVar("T")


class MessageStatements(Protocol):
    """Inbound mail as the listener stored it: the queue intake works through."""

    def insert_message(self, msg: NewMessage) -> int | None:
        """Store a raw message once per dedupe key; returns the new row id or None if known."""

    def pending_messages(self, limit: int, after: int = 0, *, relay: str | None = None,
                         expired: datetime | None = None) -> list[InboundMessage]:
        """Messages still waiting for a worker, oldest first, with ids above `after`; with
        `relay`, only those it may take: held by no relay, by itself, or since before
        `expired`."""

    def claim_message(self, message_row_id: int, now: datetime, result: str) -> bool:
        """Mark a message processed; False when another pass already did (idempotence)."""

    def claim_message_handling(self, message_row_id: int, now: datetime, lease: timedelta, *,
                               relay: str) -> bool:
        """Hold an unprocessed message for `relay` while another service handles it; False
        while another relay's hold is younger than `lease`."""

    def erase_message_body(self, message_row_id: int) -> None:
        """Drop one message's raw bytes (a trigger naming an address erased by `forget`)."""

    def count_messages(self) -> int: ...

    def count_pending_messages(self) -> int:
        """Inbound messages no worker has processed yet (for /healthz)."""


class ShipmentStatements(Protocol):
    """Shipments (one per trigger mail) and the senders that triggered them."""

    def insert_shipment(self, new: NewShipment) -> int:
        """Insert a shipment; its lists are stored as JSON text."""

    def set_shipment_status(self, shipment_id: int, status: ShipmentStatus, reason: str) -> None:
        ...

    def count_shipments(self) -> int: ...

    def shipment_of_invitation(self, invitation_id: int) -> ShipmentRow | None: ...

    def note_trigger_sender(self, shop: str, sender: str, now: datetime) -> bool:
        """Record that `sender` triggered for `shop`; True when it is the first time."""

    def first_trigger_sender(self, shop: str) -> str | None:
        """The sender that triggered for `shop` first (of those not erased); None = none yet."""


class InvitationStatements(Protocol):
    """Invitations: the facts that decide one, its schedule, its mail and its reminder."""

    def decision_facts(
        self, shop: str, reference: str | None, email: str, since: datetime
    ) -> DecisionFacts:
        """Everything `invitations.decide` looks up, in one statement: the invitation and the
        earliest non-rejected shipment holding `reference` (none when it is None), whether
        `email` is suppressed, and its newest live invitation created since `since`."""

    def next_invitation_id(self) -> int:
        """The id the next invitation gets when inserted with it (inside the writer only:
        nothing else inserts between this and that INSERT)."""

    def invitation_for_reference(self, shop: str, reference: str) -> InvitationRow | None: ...

    def insert_invitation(self, new: NewInvitation) -> int: ...

    def get_invitation(self, invitation_id: int) -> InvitationRow | None: ...

    def invitation_by_token(self, token: str) -> InvitationRow | None: ...

    def scheduled_invitations(
        self, shop: str, reference: str | None = None, email: str | None = None
    ) -> list[InvitationRow]: ...

    def cancel_invitation(self, invitation_id: int, reason: str) -> bool:
        """Cancel a scheduled invitation and any of its mail not yet handed to a server."""

    def cancel_queued_mail(self, invitation_id: int, reason: str) -> None: ...

    def sent_invitations(
        self, shop: str, reference: str | None = None, email: str | None = None
    ) -> list[InvitationRow]: ...

    def cancel_reminder(self, invitation_id: int, reason: str) -> bool:
        """Stop a sent invitation's reminder, planned or rendered and not yet handed to a
        server, and put `reason` on the invitation; False when none was pending."""

    def cancel_reminders_of(self, shop: str, email: str) -> int: ...

    def due_invitations(self, now: datetime, limit: int, *, relay: str | None = None,
                        expired: datetime | None = None) -> list[DueInvitation]:
        """Scheduled invitations whose time has come and whose mail is not rendered yet; with
        `relay`, only those no other relay has held since `expired`."""

    def hold_invitations(self, ids: list[int], now: datetime, expired: datetime, *,
                         relay: str) -> set[int]:
        """Hold invitations for `relay` while it renders their mail; returns those it holds."""

    def unqueued_invitation(self, invitation_id: int) -> DueInvitation | None:
        """A scheduled invitation whose mail is not rendered yet, with its products."""

    def due_reminders(self, now: datetime, limit: int, *, relay: str | None = None,
                      expired: datetime | None = None) -> list[DueInvitation]:
        """Sent invitations without a review whose single reminder is due; with `relay`, as
        `due_invitations`."""

    def next_due(self) -> datetime | None:
        """The earliest moment any invitation, reminder or queued mail becomes due."""

    def set_invitation_status(self, invitation_id: int, status: InvitationStatus,
                              reason: str | None = None) -> None: ...

    def attach_invitation_mail(self, invitation_id: int, outbox_id: int) -> bool: ...

    def mark_reminder_queued(self, invitation_id: int) -> bool: ...

    def invitation_mail_sent(self, invitation_id: int, now: datetime,
                             reminder_due: datetime | None) -> None: ...

    def reminder_sent(self, invitation_id: int, now: datetime) -> None: ...

    def invitation_message_id(self, invitation_id: int) -> str | None: ...

    def count_invitations(self, status: str | None = None) -> int: ...


class OutboxStatements(Protocol):
    """The outbox: every outgoing message, stored rendered before it is sent, and its claims."""

    def enqueue(self, mail: NewMail) -> int:
        """Store a rendered message; it is sent byte-identically however often it is retried."""

    def claim_due_mail(self, now: datetime, limit: int, webhooks: bool = False, *,
                       relay: str) -> list[OutboxRow]:
        """Claim due queued mail (or, with `webhooks`, due webhook POSTs) for sending, in the
        name of `relay`: a conditional UPDATE, so no row is claimed twice."""

    def next_webhook_due(self) -> datetime | None:
        """When the earliest queued webhook POST is due (the webhook worker's timer)."""

    def claim_mail(self, outbox_id: int, now: datetime, *, relay: str) -> OutboxRow | None:
        """Claim one queued row whatever its due time (an operator's `send-now`)."""

    def requeue_interrupted(self, relay: str, ids: Iterable[int] | None = None) -> int:
        """Mail `relay` left in `sending` (or only its rows `ids`) goes back to the queue,
        unchanged; other relays' rows are left alone."""

    def requeue_expired(self, now: datetime, lease: timedelta, webhooks: bool = False) -> int:
        """Mail (or webhook POSTs) claimed longer than `lease` ago goes back to the queue,
        whichever relay claimed it."""

    def renew_claims(self, ids: Iterable[int], now: datetime, *, relay: str) -> set[int]:
        """Restart the lease of `relay`'s rows `ids` still sending; returns those it holds."""

    def finish_mail(self, outbox_id: int, status: OutboxStatus, now: datetime,
                    error: str | None = None, retry_at: datetime | None = None, *,
                    relay: str, attempt: int) -> bool:
        """Record the result of `relay`'s claim number `attempt`; False (nothing written) when
        another relay has claimed the row since."""

    def cancel_mail(self, outbox_id: int, reason: str) -> bool:
        """Cancel a queued row no relay has claimed."""

    def get_mail(self, outbox_id: int) -> OutboxRow | None: ...

    def retry_mail(self, outbox_id: int, now: datetime) -> bool:
        """Put failed (or waiting) mail back in the queue, due now (`outbox retry`)."""

    def mark_bounced(self, outbox_id: int, status: str, now: datetime) -> None: ...

    def oldest_due_mail(self) -> datetime | None: ...

    def outbox_depth(self) -> int: ...


class ReviewStatements(Protocol):
    """Reviews with their responses (and history), internal notes, tags and tickets."""

    def insert_review(self, new: NewReview) -> int: ...

    def get_review(self, review_id: int) -> ReviewRow | None: ...

    def edit_review(self, review_id: int, edit: ReviewText, now: datetime) -> None:
        """A customer's second submit: new text, ticket to agents again."""

    def link_review(self, invitation_id: int, review_id: int) -> None:
        """The invitation has its review: no reminder any more."""

    def pending_tickets(self, limit: int, *, relay: str | None = None,
                        expired: datetime | None = None) -> list[int]:
        """Reviews waiting for their tickets; with `relay`, only those no other relay has
        held since `expired`."""

    def hold_reviews(self, ids: list[int], now: datetime, expired: datetime, *,
                     relay: str) -> set[int]:
        """Hold reviews for `relay` while it renders their tickets; returns those it holds."""

    def mark_ticket_queued(self, review_id: int, edits: int) -> bool:
        """Only when the review was not edited again meanwhile (then it is rendered anew)."""

    def add_response(self, review_id: int, body: str, author: str, source: str, now: datetime,
                     message_id: str | None = None, emailed: bool = True) -> int:
        """Publish a response; the previous one stays in the history, marked replaced."""

    def responses_of(self, review_id: int) -> list[ResponseRow]: ...

    def add_note(self, review_id: int, body: str, author: str, now: datetime) -> int: ...

    def notes_of(self, review_id: int) -> list[NoteRow]: ...

    def add_tag(self, review_id: int, tag: str, now: datetime) -> None: ...

    def tags_of(self, review_id: int) -> list[str]: ...

    def report_review(self, review_id: int, reason: str, now: datetime) -> None: ...

    def unreport_review(self, review_id: int) -> bool: ...


class ReplyStatements(Protocol):
    """Agents' replies: reply keys, each reply's outcome, tickets sent, IMAP messages seen."""

    def key_for(self, review_id: int, agent: str) -> str | None: ...

    def first_ticket_message_id(self, review_id: int, agent: str) -> str | None: ...

    def insert_reply_key(self, key: str, review_id: int, agent: str, now: datetime,
                         ticket_message_id: str | None) -> None: ...

    def reply_key(self, key: str) -> ReplyKeyRow | None: ...

    def reply_outcome(self, dedupe_key: str) -> ReplyRow | None: ...

    def record_reply(self, new: NewReply) -> int:
        """Raises DuplicateKey when this reply was processed before."""

    def ticket_recipient(self, message_id: str) -> tuple[int, str] | None:
        """(review id, agent) of a ticket we sent, found by its Message-ID."""

    def imap_seen(self, mailbox: str, uidvalidity: int, uid: int) -> ImapSeenRow | None: ...

    def mark_imap_seen(self, mailbox: str, uidvalidity: int, uid: int, dedupe_key: str,
                       folder: str, now: datetime) -> None: ...

    def mark_imap_moved(self, mailbox: str, uidvalidity: int, uid: int) -> None: ...


class SuppressionStatements(Protocol):
    """Who gets no mail: unsubscribes, bounces and erased addresses (by hash)."""

    def suppression(self, shop: str, email: str) -> str | None:
        """Why `email` gets no mail from `shop`: "bounced" (a bounce at any shop of the relay:
        the address is dead for all of them), "unsubscribed" (from this shop only),
        "forgotten" (`forget`), or None."""

    def is_suppressed(self, shop: str, email: str) -> bool: ...

    def unsubscribed(self, shop: str, email: str) -> bool:
        """Whether the customer unsubscribed from this very shop (the unsubscribe page)."""

    def suppress(self, shop: str, email: str, now: datetime, reason: str) -> None: ...

    def note_bounce(self, email: str, hard: bool, status: str, now: datetime) -> int:
        """Count a bounce for an address; returns its soft (or hard) bounce count now."""


class PrivacyStatements(Protocol):
    """Erasure statements: the retention purge, `forget` (GDPR art. 17), scrubbing, the audit."""

    def purge_before(self, shop: str, cutoff: datetime) -> int:
        """Erase personal data of a shop's records older than `cutoff`; keeps rows for counts."""

    def stored_mail(self, table: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """(id, raw) of stored raw mail, inbound (`message_bodies`) or outgoing (`outbox`),
        in id order after `after`: `forget` decodes each to find a person."""

    def forget(self, email: str, now: datetime, *, messages: Iterable[int] = (),
               outbox: Iterable[int] = ()) -> Erasure:
        """Erase one person's data everywhere (GDPR art. 17) and suppress the address by hash."""

    def audit(self, action: str, detail: dict[str, Any], now: datetime,
              actor: str = "mailrelay") -> None: ...


class ReportStatements(Protocol):
    """Read-only views across aggregates: listings, stats, the rating summary, customer context."""

    def list_shipments(
        self, status: str | None = None, shop: str | None = None, limit: int | None = None
    ) -> list[ShipmentRow]: ...

    def shipment_invitations(self, shop: str,
                             shipments: Sequence[ShipmentRow]) -> dict[int, InvitationRow]: ...

    def list_invitations(
        self, status: str | None = None, shop: str | None = None
    ) -> list[InvitationRow]: ...

    def list_mail(self, status: str | None = None, shop: str | None = None,
                  kind: str | None = None) -> list[MailListing]: ...

    def list_reviews(
        self, *, shop: str | None = None, stars: tuple[int, int] | None = None,
        replied: bool | None = None, reported: bool | None = None, tag: str | None = None,
        search: str | None = None, since: datetime | None = None, until: datetime | None = None,
        limit: int | None = None, offset: int = 0, newest_first: bool = False,
        method: str | None = None,
    ) -> list[ReviewRow]:
        """Reviews with their current response, filtered as the CLI and the web ask."""

    def rating_summary(self, shop: str) -> RatingSummary:
        """Count, average and star distribution of a shop's public (not reported) reviews."""

    def shop_revision(self, shop: str) -> str:
        """A fingerprint of what a shop's public pages show: it changes with every review,
        edit, response, report, unreport, tag and erasure (the embeds' ETags and cache)."""

    def customer_context(self, shop: str, email: str, exclude_review: int,
                         limit: int = 3) -> CustomerContext:
        """The customer's most recent other reviews, invitations and replies at `shop`, and
        whether mail to them is stopped (for tickets and `reviews show`)."""

    def stats(self, shop: str, since: datetime | None,
              until: datetime | None = None) -> ShopStats:
        """The numbers `mailrelay stats` prints for one shop; purged rows still count;
        reported and forgotten reviews and automatic responses are counted apart."""

    def counts(self, table: str, column: str) -> dict[str, int]:
        """Row counts grouped by one column (for /metrics); names come from our code."""

    def schema_version(self) -> int:
        """The newest migration applied: a trivial query, /healthz's round trip to the store."""

    def replies_by_outcome(self) -> dict[str, int]: ...


class ProductReviewStatements(Protocol):
    """Product reviews (issue 13), linked to their service review, and figures per product.
    Public means as on the public page: the service review is neither reported nor forgotten."""

    def save_product_reviews(self, review_id: int, shop: str,
                             items: Sequence[NewProductReview], now: datetime) -> None:
        """Set a review's product reviews to `items` (by position `n`): new ones inserted,
        changed ones updated (`updated_at` moves only when stars or text changed), and those
        the customer no longer rates removed."""

    def product_reviews_of(self, review_id: int) -> list[ProductReviewRow]:
        """A service review's product reviews, in the trigger's order."""

    def product_rating(self, shop: str, sku: str,
                       tag: str | None = None) -> ProductFigures | None:
        """One product's figures from its public reviews (those tagged `tag` only, if given);
        None when no review at `shop` ever rated `sku` (an unknown product)."""

    def product_reviews(self, shop: str, sku: str, *, tag: str | None = None,
                        limit: int | None = None,
                        offset: int = 0) -> list[ProductReviewListing]:
        """One product's public reviews at `shop`, newest first, a page at a time."""

    def shop_products(self, shop: str, *, tag: str | None = None,
                      since: datetime | None = None,
                      until: datetime | None = None) -> list[ProductFigures]:
        """A shop's products that have public reviews (written in the window, tagged `tag`
        if given), with their figures; most reviewed first, then by SKU."""

    def list_product_reviews(
        self, *, shop: str | None = None, sku: str | None = None, tag: str | None = None,
        public: bool | None = True, since: datetime | None = None,
        until: datetime | None = None, limit: int | None = None, offset: int = 0,
    ) -> list[ProductReviewListing]:
        """Product reviews with their service review's reviewer, method, time, response and
        tags, newest first (feeds, the CLI). `public`: True those of the public page, False
        the reported and forgotten ones, None all."""


class AccountStatements(Protocol):
    """Console accounts (issue 14): users with their shops and roles, sessions, and one-time
    password links. Tokens arrive hashed; emails lower-cased."""

    def add_member(self, email: str, shop: str, role: str, now: datetime) -> int:
        """Make `email` a `role` of `shop` (the user is created if new); returns its id."""

    def user_by_email(self, email: str) -> UserRow | None: ...

    def user_by_id(self, user_id: int) -> UserRow | None: ...

    def list_users(self, shop: str | None = None) -> list[UserListing]: ...

    def remove_member(self, email: str, shop: str | None = None) -> int:
        """End memberships (of `shop`, or all); a user without a shop is deleted."""

    def create_password_link(self, user_id: int, token_hash: str, now: datetime,
                             expires: datetime) -> None: ...

    def password_link_user(self, token_hash: str, now: datetime) -> int | None: ...

    def use_password_link(self, token_hash: str, password_hash: str,
                          now: datetime) -> int | None:
        """Set the password through a link, once; the user's sessions end."""

    def update_password_hash(self, user_id: int, password_hash: str) -> None: ...

    def set_totp(self, user_id: int, secret: str | None) -> None: ...

    def create_session(self, token_hash: str, user_id: int, now: datetime,
                       expires: datetime) -> None: ...

    def session_user(self, token_hash: str, now: datetime) -> UserRow | None: ...

    def delete_session(self, token_hash: str) -> None: ...


class DigestStatements(Protocol):
    """The agents' daily digest (issue 14): the last local date each shop's digest was done."""

    def last_digest_date(self, shop: str) -> str | None: ...

    def claim_digest(self, shop: str, day: str, now: datetime) -> bool:
        """Record `day` as done for `shop`; False when it (or a later day) already was."""


class JobStatements(Protocol):
    """Daily jobs run once a day across the relays sharing the store (issue 15)."""

    def claim_job_day(self, name: str, day: str, now: datetime, *, relay: str) -> bool:
        """Record that `relay` runs job `name` on `day`; False when another relay does."""


class ModerationStatements(Protocol):
    """Moderation (issue 14): reports waiting for an owner, decisions, removed counts, audit."""

    def add_report(self, review_id: int, shop: str, reporter: str, reason: str,
                   now: datetime) -> int: ...

    def get_report(self, report_id: int) -> ReportRow | None: ...

    def reports(self, shop: str, state: str | None = "pending",
                limit: int = 200) -> list[ReportRow]: ...

    def recent_decisions(self, shop: str, limit: int = 20) -> list[ReportRow]:
        """A shop's decided reports, the latest decision first."""

    def reports_of_review(self, review_id: int) -> list[ReportRow]: ...

    def decide_report(self, report_id: int, state: str, by: str, note: str | None,
                      category: str | None, now: datetime) -> bool: ...

    def removed_counts(self, shop: str) -> dict[str, int]:
        """Public reason → how many of the shop's reviews an owner's confirmation hides."""

    def review_audit(self, review_id: int) -> list[AuditEntry]: ...


class InboxStatements(Protocol):
    """The console's inbox (issue 14): reviews awaiting an answer."""

    def inbox(self, shop: str, wanted: InboxFilter, limit: int, offset: int = 0) -> InboxPage:
        """A page of the shop's reviews awaiting an answer, 1–3★ first, then oldest first."""


class DashboardStatements(Protocol):
    """The owners' dashboard and ledgers: a shop's figures, aggregated by the store."""

    def weekly_figures(self, shop: str, bounds: Sequence[datetime]) -> list[WeekFigures]:
        """Reviews, average stars, answered (not automatically) and median hours to the first
        answer, per week between consecutive `bounds`."""

    def invitation_funnel(self, shop: str, since: datetime, until: datetime) -> FunnelFigures:
        """Shipments received in the period → invited → reviewed, and the skipped by status."""

    def stars_by_product(self, shop: str, since: datetime, until: datetime,
                         limit: int = 20) -> list[GroupStars]: ...

    def stars_by_tag(self, shop: str, since: datetime, until: datetime,
                     limit: int = 20) -> list[GroupStars]: ...

    def search_invitations(self, shop: str, *, search: str | None = None,
                           status: str | None = None, limit: int = 50,
                           offset: int = 0) -> LedgerPage[InvitationRow]: ...

    def search_shipments(self, shop: str, *, search: str | None = None,
                         status: str | None = None, limit: int = 50,
                         offset: int = 0) -> LedgerPage[ShipmentRow]: ...


class QueryInterface(
    MessageStatements,
    ShipmentStatements,
    InvitationStatements,
    OutboxStatements,
    ReviewStatements,
    ReplyStatements,
    SuppressionStatements,
    PrivacyStatements,
    ReportStatements,
    ProductReviewStatements,
    AccountStatements,
    ModerationStatements,
    InboxStatements,
    DigestStatements,
    DashboardStatements,
    JobStatements,
    Protocol,
):
    """Every statement the services run, on one transaction (a write) or snapshot (a read)."""

    def each(self, step: Callable[[Self], T]) -> T | BaseException:
        """Run one unit of a batched job so that its failure is returned, and undone, without
        undoing its neighbours."""


class StoreBackend(Protocol):
    """How work reaches a store: writes queued to one writer and committed in groups, reads on
    a consistent snapshot."""

    schema_version: int

    def submit(
        self, fn: Callable[[QueryInterface], T], *, small: bool = False,
        background: bool = False, pure: bool = False,
    ) -> concurrent.futures.Future[T]:
        """Queue `fn` for the next group transaction (from any thread)."""

    async def write(
        self, fn: Callable[[QueryInterface], T], *, small: bool = False,
        background: bool = False, pure: bool = False,
    ) -> T:
        """Run `fn` in the writer; returns once its transaction is durable."""

    def write_sync(self, fn: Callable[[QueryInterface], T], *, small: bool = False) -> T:
        """`submit` and wait for the outcome."""

    def read(self, fn: Callable[[QueryInterface], T]) -> T:
        """Run `fn` on a consistent snapshot."""

    async def aread(self, fn: Callable[[QueryInterface], T]) -> T:
        """`read` off the event loop."""

    def finalize_erasure(self) -> bool:
        """Leave no old copy of erased data in the backend's files; True when done, False
        when other readers kept it from finishing (later writes overwrite the copies)."""

    def coordination(self, config: StoreConfig) -> Coordination:
        """How this relay agrees with the others sharing the store (roles, nudges, daily
        jobs), as `config` (the `[store]` the store was opened from) names them: each
        backend brings its own, so a relay never asks which backend it runs on."""

    def close(self) -> None:
        """Finish queued writes, then release every connection."""

    def __enter__(self) -> Self:
        """A store is a context manager (a CLI command's): leaving it closes the store."""

    def __exit__(self, *exc: object) -> None: ...


class Leadership(Protocol):
    """A named role that one relay at a time holds (the IMAP watcher's). Ask `try_acquire`
    every few seconds: it takes the role when free and confirms it while held; when the store
    loses the holder (its process or connection died) another relay's next call takes over."""

    @property
    def held(self) -> bool:
        """Whether this relay held the role at the last `try_acquire`."""

    async def try_acquire(self) -> bool:
        """Take the role, or confirm it is still ours; False while another relay holds it or
        the store cannot be reached."""

    async def release(self) -> None:
        """Give the role up (at shutdown), so another relay takes it at once."""


class Wakeups(Protocol):
    """Nudges between relays: work queued on any relay wakes the waiting workers on every
    relay (each nudge only says "look again"; the store is the queue)."""

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop) for each nudge on `channel`; before `start`."""

    async def start(self) -> None: ...

    async def notify(self, channel: str) -> None:
        """Nudge every subscriber of `channel`, on every relay."""

    async def close(self) -> None: ...


class Coordination(Protocol):
    """How relays that share one store agree: a leader per role, nudges, a shared secret key.
    (Daily jobs are claimed through the writer: `claim_job_day`.)"""

    @property
    def wakeups(self) -> Wakeups: ...

    def leadership(self, name: str) -> Leadership: ...

    def identity(self) -> Leadership:
        """This relay's `[store] relay_id`, held while it runs: not acquired at start means
        another running relay has the same id (it must not start: requeueing "its own"
        interrupted rows would take the other's)."""

    async def shared_secret(self, offered: bytes) -> bytes:
        """The secret key every relay signs links and forms with: the first relay's
        `offered` key (its key file), kept in the store; on SQLite `offered` itself."""

    async def close(self) -> None: ...
