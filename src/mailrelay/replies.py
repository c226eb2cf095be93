"""Agent reply → public response, note, report or tags, and the customer's email: once each.

Authorisation is the signed key plus the From address (never Reply-To or Sender); automatic
mail is dropped quietly; a refused human reply is explained to its sender once a day.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import jinja2

from .clock import Clock
from .config import Config, ShopConfig
from .links import public_url
from .models import AgentReply, OutboxKind
from .outbox import enqueue_mail, reply_key_of
from .parsing import parse_reply
from .render import RenderedMail, Templates, notice_mail, response_mail
from .reply_text import Extraction, extract
from .store import Queries, Store, address_ref, to_iso
from .tokens import REPLY, TokenSigner

log = logging.getLogger(__name__)

KEY_MAX_AGE = timedelta(days=90)
_DIRECTIVE = re.compile(r"^#(note|noemail|report|tag)\b[ \t]*(.*)$", re.IGNORECASE)
_TAG = re.compile(r"^[\w][\w.-]{0,39}$")


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

    @property
    def processed(self) -> bool:
        """Filed as processed; a copy of a refused reply is filed as refused again."""
        if self.outcome == ReplyOutcome.DUPLICATE and self.previous is not None:
            return self.previous in PROCESSED_OUTCOMES
        return self.outcome in PROCESSED_OUTCOMES


@dataclass(frozen=True)
class Directives:
    """`#note`, `#noemail`, `#report <reason>`, `#tag <name>` lines at the top of a reply."""

    note: bool = False
    noemail: bool = False
    report: str | None = None
    tags: tuple[str, ...] = ()
    body: str = ""


def parse_directives(text: str) -> Directives:
    """Directives, each alone on a line at the top (blank lines between are allowed)."""
    lines = text.split("\n")
    note = noemail = False
    report: str | None = None
    tags: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        if not line:
            index += 1
            continue
        match = _DIRECTIVE.match(line)
        if not match:
            break
        word, arg = match.group(1).lower(), match.group(2).strip()
        if word == "note":
            note = True
        elif word == "noemail":
            noemail = True
        elif word == "report":
            report = arg or "reported by an agent"
        elif word == "tag" and _TAG.match(arg):
            tags.append(arg.lower())
        elif word == "tag":
            break  # "#tag" with no usable name is text, not a directive
        index += 1
    body = "\n".join(lines[index:]).strip()
    return Directives(note, noemail, report, tuple(dict.fromkeys(tags)), body)


def dedupe_key(reply: AgentReply, raw: bytes) -> str:
    """Message-ID, or a hash of the raw bytes when a mail system sent none."""
    if reply.message_id:
        return f"mid:{reply.message_id}"
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def key_in(recipients: tuple[str, ...], domains: set[str]) -> str | None:
    """The reply key from a `reply+<key>@<reply domain>` recipient."""
    for address in recipients:
        local, _, domain = address.rpartition("@")
        key = reply_key_of(local)
        if key and domain.lower() in domains:
            return key
    return None


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def _aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment (RFC 7489 3.1): the same domain, or one a subdomain of the other."""
    domain = domain.lower().rstrip(".")
    return bool(domain) and (domain == from_domain or from_domain.endswith("." + domain)
                             or domain.endswith("." + from_domain))


def authenticated(results: tuple[str, ...], authserv_id: str, from_address: str) -> bool:
    """RFC 8601: a result from *our* server showing DKIM or SPF pass aligned with From
    (or DMARC pass). Results from any other server are ignored: anyone can write them."""
    from_domain = _domain(from_address)
    for header in results:
        parts = [p.strip() for p in header.split(";")]
        if not parts or parts[0].split()[0].lower() != authserv_id.lower():
            continue
        for resinfo in parts[1:]:
            tokens = resinfo.split()
            if not tokens or "=" not in tokens[0]:
                continue
            method, _, result = tokens[0].partition("=")
            method, result = method.lower(), result.lower()
            props = dict(t.split("=", 1) for t in tokens[1:] if "=" in t)
            props = {k.lower(): v.strip('"') for k, v in props.items()}
            if result != "pass":
                continue
            if method == "dmarc":
                return True
            if method == "dkim" and _aligned(props.get("header.d", ""), from_domain):
                return True
            if method == "spf":
                mailfrom = props.get("smtp.mailfrom", "")
                if _aligned(_domain(mailfrom) if "@" in mailfrom else mailfrom, from_domain):
                    return True
    return False


def _matches(address: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(address.lower(), p.lower()) for p in patterns)


EXPLANATIONS = {
    "no reply key": "Answer by replying to the review email itself, so the reply goes to its "
                    "reply+… address.",
    "invalid reply key": "The reply address was altered. Reply to the review email itself.",
    "expired reply key": "Review emails can be answered for 90 days. Answer from a newer one, "
                         "or ask the operator.",
    "sender not authorised": "This address may not answer reviews for this shop. Reply from "
                             "the address the review email was sent to.",
    "empty": "Nothing was left after removing quoted text and signatures. Write your answer "
             "above the quoted review.",
    "held back": "The reply still looked like it contained quoted text. Write your answer above "
                 "the marker line and remove the quoted part.",
}


@dataclass(frozen=True)
class Context:
    """What the read phase found out about a reply, for the write phase to act on."""

    reply: AgentReply
    key: str | None
    key_row: dict[str, Any] | None
    review: dict[str, Any] | None
    invitation_message_id: str | None


class Replier:
    """Processes agent replies from the IMAP watcher and the SMTP `reply+` path alike."""

    def __init__(self, config: Config, store: Store, templates: Templates, signer: TokenSigner,
                 clock: Clock) -> None:
        self.config = config
        self.store = store
        self.templates = templates
        self.signer = signer
        self.clock = clock
        self.domains = {s.reply_domain.lower() for s in config.shops}
        self.authserv_id = config.imap.authserv_id if config.imap else ""

    async def process(self, raw: bytes, *, source: str) -> ReplyResult:
        """Handle one reply end to end; safe to call again with the same bytes."""
        reply = await asyncio.to_thread(parse_reply, raw)
        key = dedupe_key(reply, raw)
        seen = await self.store.aread(lambda q: q.reply_outcome(key))
        if seen is not None:
            return ReplyResult(ReplyOutcome.DUPLICATE, f"already {seen['outcome']}",
                               seen["review_id"], key, str(seen["outcome"]))
        ctx = await self.store.aread(lambda q: self._context(q, reply))
        known = [str(ctx.review["text"])] if ctx.review and ctx.review.get("text") else []
        extraction = await asyncio.to_thread(extract, reply.text, reply.html, known_texts=known)
        now = self.clock.now()
        try:
            result = await self.store.write(
                lambda q: self._apply(q, ctx, extraction, key, source, now))
        except sqlite3.IntegrityError:
            return ReplyResult(ReplyOutcome.DUPLICATE, "processed concurrently", None, key)
        log.info("%s reply source=%s from=%s outcome=%s review=%s reason=%r",
                 reply.message_id or key[:20], source, address_ref(reply.from_address),
                 result.outcome, result.review_id, result.reason)
        return result

    def _context(self, q: Queries, reply: AgentReply) -> Context:
        key = key_in(reply.recipients, self.domains)
        if key is None:
            # A mail system rewrote the address: find the ticket it answers (SPEC).
            for ident in reply.in_reply_to:
                found = q.ticket_recipient(ident)
                if found is not None:
                    key = q.key_for(found[0], found[1])
                    if key:
                        break
        key_row = q.reply_key(key) if key else None
        review = q.get_review(int(key_row["review_id"])) if key_row else None
        invitation_mid = (q.invitation_message_id(int(review["invitation_id"]))
                          if review and review["invitation_id"] else None)
        return Context(reply, key, key_row, review, invitation_mid)

    def _refusal(self, ctx: Context, now: datetime) -> tuple[str, bool] | None:
        """(reason, tell the sender) when the reply may not be acted on."""
        reply = ctx.reply
        if ctx.key is None:
            return "no reply key", True
        if not self.signer.key_valid(ctx.key, REPLY) or ctx.key_row is None or ctx.review is None:
            return "invalid reply key", True
        issued = datetime.fromisoformat(str(ctx.key_row["created_at"]))
        if now - issued > KEY_MAX_AGE:
            return "expired reply key", True
        shop = self.config.shop(str(ctx.review["shop"]))
        sender = reply.from_address or ""
        if shop is None:
            return "shop no longer configured", False
        if sender != str(ctx.key_row["agent"]).lower() and not _matches(sender,
                                                                          shop.agent_senders):
            return "sender not authorised", True
        if self.authserv_id and not authenticated(reply.authentication_results,
                                                  self.authserv_id, sender):
            # Possibly forged: never answer it (that would be backscatter to a stranger).
            return "not authenticated", False
        return None

    def _apply(self, q: Queries, ctx: Context, extraction: Extraction, key: str, source: str,
               now: datetime) -> ReplyResult:
        reply = ctx.reply
        review_id = int(ctx.review["id"]) if ctx.review else None

        def done(outcome: ReplyOutcome, reason: str) -> ReplyResult:
            q.record_reply({"received_at": to_iso(now), "source": source, "dedupe_key": key,
                            "message_id": reply.message_id, "from_address": reply.from_address,
                            "review_id": review_id, "outcome": outcome, "reason": reason})
            return ReplyResult(outcome, reason, review_id, key)

        if reply.ours:
            return done(ReplyOutcome.AUTOMATIC, "our own message came back")
        if reply.automatic:
            return done(ReplyOutcome.AUTOMATIC, reply.automatic)
        refusal = self._refusal(ctx, now)
        if refusal is not None:
            reason, tell = refusal
            if tell:
                self._notify(q, ctx, reason, now)
            return done(ReplyOutcome.REJECTED, reason)
        if not extraction.ok:
            reason = "empty" if extraction.reason == "empty" else "held back"
            self._notify(q, ctx, reason, now, detail=extraction.reason)
            return done(ReplyOutcome.REJECTED, f"{reason}: {extraction.reason}")
        assert_review = ctx.review
        if assert_review is None:  # narrowed by _refusal; kept explicit for the type checker
            return done(ReplyOutcome.REJECTED, "invalid reply key")
        return self._act(q, ctx, assert_review, parse_directives(extraction.text), done, now)

    def _act(self, q: Queries, ctx: Context, review: dict[str, Any], directives: Directives,
             done: Any, now: datetime) -> ReplyResult:
        review_id = int(review["id"])
        author = ctx.reply.from_address or "agent"
        for tag in directives.tags:
            q.add_tag(review_id, tag, now)
        if directives.report is not None:
            q.report_review(review_id, directives.report, now)
            if directives.body:
                q.add_note(review_id, directives.body, author, now)
            return done(ReplyOutcome.REPORTED, directives.report)  # type: ignore[no-any-return]
        if directives.note:
            if not directives.body:
                self._notify(q, ctx, "empty", now)
                return done(ReplyOutcome.REJECTED, "empty note")  # type: ignore[no-any-return]
            q.add_note(review_id, directives.body, author, now)
            return done(ReplyOutcome.NOTE, "internal note stored")  # type: ignore[no-any-return]
        if not directives.body:
            if directives.tags:
                return done(ReplyOutcome.TAGGED, ",".join(directives.tags))  # type: ignore[no-any-return]
            self._notify(q, ctx, "empty", now)
            return done(ReplyOutcome.REJECTED, "empty")  # type: ignore[no-any-return]
        email = not directives.noemail and bool(review.get("customer_email"))
        mail: RenderedMail | None = None
        shop = self.config.shop(str(review["shop"]))
        if email and shop is not None:
            mail = self._customer_mail(shop, review, directives.body, ctx.invitation_message_id,
                                       now)
        q.add_response(review_id, directives.body, author, "agent", now,
                       message_id=ctx.reply.message_id, emailed=mail is not None)
        if mail is not None and shop is not None:
            enqueue_mail(q, shop, OutboxKind.RESPONSE, mail, now, review_id=review_id)
        how = "published and emailed" if mail else "published, no email"
        return done(ReplyOutcome.PUBLISHED, how)  # type: ignore[no-any-return]

    def _customer_mail(self, shop: ShopConfig, review: dict[str, Any], body: str,
                       invitation_mid: str | None, now: datetime) -> RenderedMail | None:
        refs = [invitation_mid] if invitation_mid else []
        try:
            return response_mail(
                self.templates, self.config, shop, to_email=str(review["customer_email"]),
                to_name=review.get("reviewer_name"), locale=review.get("locale"), body=body,
                review=review, public_url=public_url(self.config, shop.id, int(review["id"])),
                in_reply_to=invitation_mid, references=refs, now=now,
            )
        except (ValueError, jinja2.TemplateError) as exc:
            log.error("review=%s customer email cannot be rendered: %s", review["id"], exc)
            return None

    def _notify(self, q: Queries, ctx: Context, reason: str, now: datetime,
                detail: str | None = None) -> None:
        """Explain a refusal to the sender, at most once per address and reason a day."""
        reply = ctx.reply
        sender = reply.from_address
        if not sender or reply.automatic or reply.ours:
            return
        shop = (self.config.shop(str(ctx.review["shop"])) if ctx.review else None) or (
            self.config.shops[0] if self.config.shops else None)
        if shop is None or not q.note_reply_notice(sender, reason, now.date().isoformat(), now):
            return
        explanation = EXPLANATIONS.get(reason, "")
        if detail and detail != reason:
            explanation = f"{explanation} ({detail})".strip()
        try:
            mail = notice_mail(
                self.templates, self.config, shop, to_email=sender, reason=reason,
                explanation=explanation, original_subject=reply.subject,
                original_text=reply.text, in_reply_to=reply.message_id, now=now,
            )
        except (ValueError, jinja2.TemplateError) as exc:
            log.warning("cannot tell %s why their reply was refused: %s", address_ref(sender), exc)
            return
        enqueue_mail(q, shop, OutboxKind.NOTICE, mail, now,
                     review_id=int(ctx.review["id"]) if ctx.review else None)
