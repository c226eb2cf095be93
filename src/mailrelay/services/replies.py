"""Agent reply → public response, note, report or tags, and the customer's email: once each.

Authorisation is the signed key plus the From address (never Reply-To or Sender), and, with
`[security] authserv_id`, our own mail server's Authentication-Results (mailauth.py). A refused
reply of an authorised agent is explained to that agent once per message; nobody else ever
gets mail back (issue 10 §2): strangers, forged keys, keyless and automatic mail are logged,
counted in /metrics and, over IMAP, filed in the rejected folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import jinja2

from mailrelay.config import Config, ShopConfig
from mailrelay.core.clock import Clock
from mailrelay.core.errors import DuplicateKey
from mailrelay.core.mailauth import authenticated
from mailrelay.core.models import AgentReply, OutboxKind
from mailrelay.core.routing import address_matches, reply_key_in
from mailrelay.core.tokens import REPLY, TokenSigner
from mailrelay.parsing import parse_reply
from mailrelay.render import (
    NoticeView,
    RenderedMail,
    ResponseView,
    ReviewView,
    Templates,
    notice_mail,
    response_mail,
)
from mailrelay.reply_text import Extraction, extract
from mailrelay.services import events, moderation
from mailrelay.services.links import public_url
from mailrelay.services.outbox import enqueue_mail
from mailrelay.store import NewReply, QueryInterface, ReplyKeyRow, ReviewRow, StoreBackend

log = logging.getLogger("mailrelay.replies")  # the name operators filter on

KEY_MAX_AGE = timedelta(days=90)
# A directive and what follows it on its line; several may share a line (issue 10 §2):
# "#note Customer called" is a note with that text, "#tag late #tag box" two tags.
_DIRECTIVE = re.compile(r"#(note|noemail|report|tag)(?![\w-])[ \t]*", re.IGNORECASE)
_TAG = re.compile(r"\w[\w.-]{0,39}")


class ReplyOutcome(StrEnum):
    PUBLISHED = "published"
    NOTE = "note"
    REPORTED = "reported"
    TAGGED = "tagged"
    DUPLICATE = "duplicate"
    AUTOMATIC = "automatic"
    REJECTED = "rejected"


PROCESSED_OUTCOMES = frozenset({ReplyOutcome.PUBLISHED, ReplyOutcome.NOTE,
                                ReplyOutcome.REPORTED, ReplyOutcome.TAGGED,
                                ReplyOutcome.DUPLICATE})


@dataclass(frozen=True)
class ReplyResult:
    """What became of one reply; `folder` says where the IMAP watcher files it."""

    outcome: ReplyOutcome
    reason: str
    review_id: int | None = None
    dedupe_key: str = ""
    previous: str | None = None  # for DUPLICATE: what the first copy became
    refusal: str | None = None  # the metric label of a refusal ("unauthorised_sender", …)
    notified: bool = False  # the authorised agent was sent a notice

    @property
    def processed(self) -> bool:
        """Filed as processed; a copy of a refused reply is filed as refused again."""
        if self.outcome == ReplyOutcome.DUPLICATE and self.previous is not None:
            return self.previous in PROCESSED_OUTCOMES
        return self.outcome in PROCESSED_OUTCOMES


@dataclass(frozen=True)
class Directives:
    """`#note`, `#noemail`, `#report <reason>`, `#tag <name>` at the top of a reply."""

    note: bool = False
    noemail: bool = False
    report: str | None = None
    tags: tuple[str, ...] = ()
    body: str = ""


#: What the console's answer form can do, as the directives a mail would carry.
CONSOLE_ACTIONS = ("email", "noemail", "note", "report", "tag")


def console_directives(action: str, body: str, tags: str, reason: str) -> Directives | str:
    """The directives of an answer written in the console, or why it cannot be acted on:
    "action", "tags" (a name that is no tag), "reason" (a report without one), "empty"."""
    names = tags.replace(",", " ").split()
    if action not in CONSOLE_ACTIONS:
        return "action"
    if len(names) > 10 or not all(_TAG.fullmatch(name) for name in names):
        return "tags"
    # As the review form does: a browser posts a textarea's lines with CRLF; no other
    # control characters reach a published text.
    body = "".join(ch for ch in body.replace("\r\n", "\n").replace("\r", "\n")
                   if ch in "\n\t" or (ch >= " " and ch != "\x7f")).strip()
    found = tuple(dict.fromkeys(name.lower() for name in names))
    if action == "report":
        reason = " ".join(reason.split())[:200]
        return Directives(report=reason, body=body, tags=found) if reason else "reason"
    if action == "tag":
        return Directives(tags=found) if found else "tags"
    if not body:
        return "empty"
    return Directives(note=action == "note", noemail=action == "noemail", body=body,
                      tags=found)


def parse_directives(text: str) -> Directives:
    """Directives at the top (blank lines between are allowed), one or several to a line.

    Read left to right: `#noemail` and `#tag <name>` may be followed by more directives on
    the same line; `#note` takes the rest of its line as the start of the note, `#report` as
    its reason. Other text after a directive starts the body, and so does a line that does not
    start with one; `#tag` without a usable name is text (`#1 priority…` is no directive).
    """
    lines = text.split("\n")
    note = noemail = False
    report: str | None = None
    tags: list[str] = []
    head = ""  # body text that began on a directive line
    index = 0
    while index < len(lines) and not head:
        line = lines[index].strip()
        if not line:
            index += 1
            continue
        if _DIRECTIVE.match(line) is None or _bare_tag(line, 0):
            break
        index += 1
        position = 0
        while position < len(line):
            match = _DIRECTIVE.match(line, position)
            if match is None or _bare_tag(line, position):
                head = line[position:].strip()
                break
            word, rest = match.group(1).lower(), line[match.end():]
            position = match.end()
            if word == "note":
                note, head = True, rest.strip()
                break
            if word == "report":
                report = rest.strip() or "reported by an agent"
                break
            if word == "noemail":
                noemail = True
            else:
                name = _TAG.match(rest)
                if name is None:  # ruled out by _bare_tag above
                    break
                tags.append(name.group(0).lower())
                position += name.end()
            position += len(line[position:]) - len(line[position:].lstrip())
    body = "\n".join([head, *lines[index:]]).strip()
    return Directives(note, noemail, report, tuple(dict.fromkeys(tags)), body)


def _bare_tag(line: str, position: int) -> bool:
    """`#tag` at `position` without a usable name after it (then it is text)."""
    match = _DIRECTIVE.match(line, position)
    if match is None or match.group(1).lower() != "tag":
        return False
    name = _TAG.match(line, match.end())
    return name is None or (name.end() < len(line) and not line[name.end()].isspace())


def reply_dedupe_key(reply: AgentReply, raw: bytes) -> str:
    """Message-ID, or a hash of the raw bytes when a mail system sent none."""
    if reply.message_id:
        return f"mid:{reply.message_id}"
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Refusal:
    """Why a reply is not acted on: a metric label, a sentence for the log, and for an
    authorised agent the subject reason and explanation of the notice (None: nobody is told)."""

    code: str
    sentence: str
    notice: str | None = None
    explanation: str = ""
    detail: str = ""  # what the reply guard found (held_back), for the notice


def _automatic_refusal(why: str) -> Refusal:
    return Refusal("automatic", f"Automatic mail ({why}) is never answered.")


LOOP = Refusal("loop", "Our own message came back (a mail loop); nobody is told.")
NO_KEY = Refusal("no_key", "The reply has no reply key and answers no ticket we sent; "
                 "nobody is told.")
INVALID_KEY = Refusal("invalid_key", "The reply key is altered, forged or unknown; "
                      "nobody is told.")
UNAUTHORISED = Refusal("unauthorised_sender", "The sender is neither the ticket's agent nor "
                       "in the shop's agent_senders; nobody is told.")
UNAUTHENTICATED = Refusal("unauthenticated", "Our mail server (authserv_id) did not vouch for "
                          "the From address; nobody is told, as it may be forged.")
NO_SHOP = Refusal("shop_removed", "The review's shop is no longer configured; nobody is told.")
EXPIRED = Refusal(
    "expired_key", "The reply key is older than 90 days; the agent is told.",
    "expired reply key",
    "Review emails can be answered for 90 days. Answer from a newer one, or ask the operator.")
EMPTY = Refusal(
    "empty", "Nothing was left after removing quoted text and signatures; the agent is told.",
    "empty",
    "Nothing was left after removing quoted text and signatures. Write your answer above the "
    "quoted review.")
EMPTY_NOTE = Refusal(
    "empty_note", "The #note directive came without any text; the agent is told.",
    "empty note",
    "A #note needs its text, on the same line (#note Customer called) or below it.")


def _held_back(detail: str) -> Refusal:
    return Refusal(
        "held_back", f"The reply still looked like it held quoted text ({detail}); the agent "
        "is told.", "held back",
        "The reply still looked like it contained quoted text. Write your answer above the "
        f"marker line and remove the quoted part. ({detail})", detail)


@dataclass(frozen=True)
class Context:
    """What the read phase found out about a reply, for the write phase to act on."""

    reply: AgentReply
    key: str | None
    key_row: ReplyKeyRow | None
    review: ReviewRow | None
    invitation_message_id: str | None


class Replier:
    """Processes agent replies from the IMAP watcher and the SMTP `reply+` path alike."""

    def __init__(self, config: Config, store: StoreBackend, templates: Templates,
                 signer: TokenSigner, clock: Clock) -> None:
        self.config = config
        self.store = store
        self.templates = templates
        self.signer = signer
        self.clock = clock
        self.domains = {s.reply_domain.lower() for s in config.shops}
        self.authserv_id = config.security.authserv_id
        #: (refusal label, "true"/"false" notified) → count since start, for /metrics.
        self.refused: Counter[tuple[str, str]] = Counter()
        #: Told, inside the reply's transaction, of a review an agent reported:
        #: (queries, shop id, review id, reason, now) — the operator's alert.
        self.on_report: ReportHook | None = None

    async def process(self, raw: bytes, *, source: str, envelope_sender: str | None = None,
                      trusted: bool = True) -> ReplyResult:
        """Handle one reply end to end; safe to call again with the same bytes.

        `envelope_sender` is the SMTP MAIL FROM ("" for the null sender, None when unknown,
        as over IMAP); `trusted` is False when the SMTP client is not in `trusted_clients`,
        so no Authentication-Results in the message are believed.
        """
        reply = await asyncio.to_thread(parse_reply, raw)
        key = reply_dedupe_key(reply, raw)
        seen = await self.store.aread(lambda q: q.reply_outcome(key))
        if seen is not None:
            return ReplyResult(ReplyOutcome.DUPLICATE, f"already {seen.outcome}",
                               seen.review_id, key, seen.outcome)
        ctx = await self.store.aread(lambda q: self._context(q, reply))
        known = [str(ctx.review.text)] if ctx.review and ctx.review.text else []
        private = ([ctx.review.customer_email] if ctx.review and ctx.review.customer_email
                   else [])
        extraction = await asyncio.to_thread(
            lambda: extract(reply.text, reply.html, known_texts=known, private=private))
        now = self.clock.now()
        null_sender = envelope_sender is not None and not envelope_sender.strip("<> ")
        try:
            result = await self.store.write(
                lambda q: self._apply(q, ctx, extraction, key, source, now,
                                      null_sender=null_sender, trusted=trusted))
        except DuplicateKey:
            return ReplyResult(ReplyOutcome.DUPLICATE, "processed concurrently", None, key)
        if result.refusal is not None:
            self.refused[result.refusal, "true" if result.notified else "false"] += 1
        # Ids only, never the sender's address (issue 10 §6).
        log.info("%s reply source=%s outcome=%s review=%s refusal=%s notified=%s reason=%r",
                 reply.message_id or key[:20], source, result.outcome, result.review_id,
                 result.refusal or "-", "yes" if result.notified else "no", result.reason)
        return result

    def _context(self, q: QueryInterface, reply: AgentReply) -> Context:
        key = reply_key_in(reply.recipients, self.domains)
        if key is None:
            # A mail system rewrote the address: find the ticket it answers (SPEC).
            for ident in reply.in_reply_to:
                found = q.ticket_recipient(ident)
                if found is not None:
                    key = q.key_for(found[0], found[1])
                    if key:
                        break
        key_row = q.reply_key(key) if key else None
        review = q.get_review(key_row.review_id) if key_row else None
        invitation_mid = (q.invitation_message_id(int(review.invitation_id))
                          if review and review.invitation_id else None)
        return Context(reply, key, key_row, review, invitation_mid)

    def _screen(self, ctx: Context, now: datetime, *, null_sender: bool,
                 trusted: bool) -> Refusal | None:
        """Why the reply may not be acted on, in the order that keeps strangers unanswered:
        only once the sender is known to be an authorised agent may a refusal be explained."""
        reply = ctx.reply
        if reply.ours:
            return LOOP
        if null_sender:  # MAIL FROM:<> (RFC 5321 4.5.5): a bounce or other automatic mail
            return _automatic_refusal("null envelope sender")
        if reply.automatic:
            return _automatic_refusal(reply.automatic)
        if ctx.key is None:
            return NO_KEY
        if not self.signer.key_valid(ctx.key, REPLY) or ctx.key_row is None or ctx.review is None:
            return INVALID_KEY
        shop = self.config.shop(str(ctx.review.shop))
        if shop is None:
            return NO_SHOP
        sender = reply.from_address or ""
        if not sender or (sender != ctx.key_row.agent.lower()
                          and not address_matches(sender, shop.agent_senders)):
            return UNAUTHORISED
        if self.authserv_id and not (trusted and authenticated(
                reply.trace, self.authserv_id, sender)):
            return UNAUTHENTICATED
        issued = datetime.fromisoformat(ctx.key_row.created_at)
        if now - issued > KEY_MAX_AGE:
            return EXPIRED
        return None

    def _apply(self, q: QueryInterface, ctx: Context, extraction: Extraction, key: str, source: str,
               now: datetime, *, null_sender: bool = False, trusted: bool = True) -> ReplyResult:
        reply = ctx.reply
        review_id = int(ctx.review.id) if ctx.review else None

        def done(outcome: ReplyOutcome, reason: str) -> ReplyResult:
            q.record_reply(NewReply(now, source, key, reply.message_id, reply.from_address,
                                    review_id, outcome, reason))
            return ReplyResult(outcome, reason, review_id, key)

        def refuse(refusal: Refusal) -> ReplyResult:
            notified = refusal.notice is not None and self._notify_agent(q, ctx, refusal, now)
            outcome = (ReplyOutcome.AUTOMATIC if refusal.code in ("automatic", "loop")
                       else ReplyOutcome.REJECTED)
            result = done(outcome, refusal.sentence)
            return ReplyResult(result.outcome, result.reason, review_id, key,
                               refusal=refusal.code, notified=notified)

        refusal = self._screen(ctx, now, null_sender=null_sender, trusted=trusted)
        if refusal is not None:
            return refuse(refusal)
        review = ctx.review
        if review is None:  # narrowed by _refusal; kept explicit for the type checker
            return refuse(INVALID_KEY)
        if not extraction.ok:
            return refuse(EMPTY if extraction.reason == "empty"
                          else _held_back(extraction.reason or "unknown"))
        return self._act(q, ctx, review, parse_directives(extraction.text), done, refuse, now)

    def _act(self, q: QueryInterface, ctx: Context, review: ReviewRow, directives: Directives,
             done: Callable[[ReplyOutcome, str], ReplyResult],
             refuse: Callable[[Refusal], ReplyResult], now: datetime) -> ReplyResult:
        answer = Answer(review, directives, ctx.reply.from_address or "agent",
                        ctx.reply.message_id, ctx.invitation_message_id)
        acted = act_on_answer(q, self.config, self.templates, answer, now, self.on_report)
        return refuse(acted) if isinstance(acted, Refusal) else done(*acted)

    async def answer_in_console(self, review_id: int, directives: Directives, author: str
                                ) -> ReplyResult:
        """An answer written in the console: the same rules, events, alert and customer mail
        as a mailed one (`act_on_answer`), recorded in the replies' audit with source
        "console" and the user's address."""
        now = self.clock.now()
        key = "console:" + secrets.token_hex(16)

        def write(q: QueryInterface) -> ReplyResult:
            review = q.get_review(review_id)
            if review is None:
                return ReplyResult(ReplyOutcome.REJECTED, "no such review", None, key)
            mid = (q.invitation_message_id(int(review.invitation_id))
                   if review.invitation_id else None)
            acted = act_on_answer(q, self.config, self.templates,
                                  Answer(review, directives, author, None, mid), now,
                                  self.on_report)
            outcome, reason = ((ReplyOutcome.REJECTED, acted.sentence)
                               if isinstance(acted, Refusal) else acted)
            q.record_reply(NewReply(now, "console", key, None, author, review_id, outcome,
                                    reason))
            return ReplyResult(outcome, reason, review_id, key,
                               refusal=acted.code if isinstance(acted, Refusal) else None)

        result = await self.store.write(write)
        log.info("console answer review=%s outcome=%s reason=%r", review_id, result.outcome,
                 result.reason)
        return result

    def preview(self, review: ReviewRow, body: str, invitation_message_id: str | None
                ) -> RenderedMail | None:
        """The customer's email an answer would send, rendered as `act_on_answer` renders it
        (None: no address, no shop, or it cannot be rendered)."""
        shop = self.config.shop(str(review.shop))
        if shop is None or not review.customer_email:
            return None
        return customer_mail(self.config, self.templates, shop, review, body,
                             invitation_message_id, self.clock.now())

    def _notify_agent(self, q: QueryInterface, ctx: Context, refusal: Refusal,
                      now: datetime) -> bool:
        """Explain a refusal to the authorised agent who sent the reply.

        Called only after `_screen` found the sender authorised, inside the transaction that
        records the reply under its dedupe key: so once per refused message (by Message-ID,
        a hash without one), never limited by day (issue 10 §2).
        """
        reply = ctx.reply
        sender = reply.from_address
        shop = self.config.shop(str(ctx.review.shop)) if ctx.review else None
        if not sender or shop is None or refusal.notice is None:
            return False
        view = NoticeView(
            to_email=sender, reason=refusal.notice, explanation=refusal.explanation,
            original_subject=reply.subject, original_text=reply.text,
            in_reply_to=reply.message_id, code=refusal.code, detail=refusal.detail,
        )
        try:
            mail = notice_mail(self.templates, self.config, shop, view, now=now)
        except (ValueError, jinja2.TemplateError) as exc:
            log.warning("review=%s refusal notice cannot be rendered: %s",
                        ctx.review.id if ctx.review else "-", exc)
            return False
        enqueue_mail(q, shop, OutboxKind.NOTICE, mail, now,
                     review_id=int(ctx.review.id) if ctx.review else None)
        return True



@dataclass(frozen=True)
class Answer:
    """One agent's answer to a review, from a mail or the console, for `act_on_answer`."""

    review: ReviewRow
    directives: Directives
    author: str
    message_id: str | None = None  # the agent's mail, when it came by mail
    invitation_message_id: str | None = None  # the customer's email threads under it


#: Told, inside the answer's transaction, of a review an agent reported:
#: (queries, shop id, review id, reason, now) — the operator's alert.
ReportHook = Callable[[QueryInterface, str, int, str, datetime], object]


def act_on_answer(q: QueryInterface, config: Config, templates: Templates, answer: Answer,
                  now: datetime, on_report: ReportHook | None
                  ) -> tuple[ReplyOutcome, str] | Refusal:
    """Tags, report, note or the public response (and the customer's email) of one answer,
    with their webhook events: the one place both the mail path and the console act."""
    review, directives, author = answer.review, answer.directives, answer.author
    review_id, shop_id = int(review.id), str(review.shop)
    for tag in directives.tags:
        q.add_tag(review_id, tag, now)
    if directives.report is not None:
        # Pending until an owner confirms it (issue 14): the review stays public.
        reported = moderation.report_and_notify(q, config, templates, review, author,
                                                directives.report, now)
        if on_report is not None and not reported.already_pending:
            on_report(q, shop_id, review_id, directives.report, now)
        if directives.body:
            q.add_note(review_id, directives.body, author, now)
        if reported.already_pending:
            return ReplyOutcome.REPORTED, (f"{directives.report} "
                                           f"{moderation.attached_note(reported.report_id)}")
        return ReplyOutcome.REPORTED, directives.report
    if directives.note:
        if not directives.body:
            return EMPTY_NOTE
        q.add_note(review_id, directives.body, author, now)
        events.emit(q, config, shop_id, "note.added", now, review_id=review_id,
                    extra={"note": {"text": directives.body, "author": author,
                                    "created_at": events.utc(now)}})
        return ReplyOutcome.NOTE, "internal note stored"
    if not directives.body:
        if directives.tags:
            events.emit(q, config, shop_id, "review.updated", now,
                        review_id=review_id, extra={"change": "tagged"})
            return ReplyOutcome.TAGGED, ",".join(directives.tags)
        return EMPTY
    return _publish(q, config, templates, answer, now)


def _publish(q: QueryInterface, config: Config, templates: Templates, answer: Answer,
             now: datetime) -> tuple[ReplyOutcome, str]:
    review, body, author = answer.review, answer.directives.body, answer.author
    review_id = int(review.id)
    email = not answer.directives.noemail and bool(review.customer_email)
    mail: RenderedMail | None = None
    shop = config.shop(str(review.shop))
    if email and shop is not None:
        mail = customer_mail(config, templates, shop, review, body,
                             answer.invitation_message_id, now)
    q.add_response(review_id, body, author, "agent", now,
                   message_id=answer.message_id, emailed=mail is not None)
    if mail is not None and shop is not None:
        enqueue_mail(q, shop, OutboxKind.RESPONSE, mail, now, review_id=review_id)
    events.emit(q, config, str(review.shop), "response.published", now, review_id=review_id,
                extra={"response": events.response_payload(
                    body, author, now, automatic=False, emailed=mail is not None)})
    return ReplyOutcome.PUBLISHED, "published and emailed" if mail else "published, no email"


def customer_mail(config: Config, templates: Templates, shop: ShopConfig, review: ReviewRow,
                  body: str, invitation_mid: str | None, now: datetime) -> RenderedMail | None:
    """The customer's copy of a published answer, threaded under the invitation."""
    refs = [invitation_mid] if invitation_mid else []
    try:
        view = ResponseView(
            to_email=str(review.customer_email), to_name=review.reviewer_name,
            locale=review.locale, body=body,
            review=ReviewView(id=review.id, stars=review.stars,
                              title=review.title, text=review.text),
            public_url=public_url(config, shop.id, int(review.id)),
            in_reply_to=invitation_mid, references=refs,
        )
        return response_mail(templates, config, shop, view, now=now)
    except (ValueError, jinja2.TemplateError) as exc:
        log.error("review=%s customer email cannot be rendered: %s", review.id, exc)
        return None
