"""Erasure statements: the retention purge, `forget` (GDPR art. 17), scrubbing, the audit.

SQL only; which mail names a person is decided in services.privacy.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from mailrelay.core.errors import DuplicateKey
from mailrelay.core.models import (
    InvitationStatus,
    MessageState,
    OutboxStatus,
)
from mailrelay.store.addresses import address_hash, address_pattern
from mailrelay.store.connection import SqlConnection
from mailrelay.store.invitations import InvitationQueries
from mailrelay.store.rows import Erasure
from mailrelay.store.timestamps import to_iso


class _Erasing:
    """One `forget` in progress: the address, and rows changed per table so far."""

    def __init__(self, conn: SqlConnection, email: str) -> None:
        self.conn = conn
        self.email = email
        self.counts: dict[str, int] = {}

    def run(self, name: str, sql: str, args: tuple[Any, ...]) -> None:
        """Run one statement and count its rows under `name`."""
        self.counts[name] = self.counts.get(name, 0) + self.conn.execute(sql, args).rowcount

    def ids(self, sql: str, args: tuple[Any, ...]) -> list[int]:
        """The ids a SELECT returns, NULLs left out."""
        return [int(r[0]) for r in self.conn.execute(sql, args) if r[0] is not None]


def _forget_reports(erasing: _Erasing, reviews: str) -> None:
    """Reports of their reviews keep who reported and decided, when, the state and the public
    reason (the public counts); the agents' reasons and the owners' notes about the customer
    go, from the reports, their audit entries and the replies (and their mail's result) that
    made them."""
    erased = "erased on request"
    erasing.run("review_reports", "UPDATE review_reports SET reason = ?, decision_note = NULL"
                " WHERE review_id IN (SELECT value FROM json_each(?))", (erased, reviews))
    erasing.run("audit", "UPDATE audit SET detail = json_replace(detail, '$.reason', ?,"
                " '$.note', NULL) WHERE action LIKE 'moderation.%'"
                " AND json_extract(detail, '$.review_id') IN (SELECT value FROM json_each(?))",
                (erased, reviews))
    reports = ("SELECT message_id FROM replies WHERE outcome = 'reported'"
               " AND review_id IN (SELECT value FROM json_each(?))")
    erasing.run("report replies", f"UPDATE messages SET result = 'reply: reported ' || ?"  # noqa: S608
                f" WHERE message_id IN ({reports})", (erased, reviews))
    erasing.run("report replies", "UPDATE replies SET reason = ? WHERE outcome = 'reported'"
                " AND review_id IN (SELECT value FROM json_each(?))", (erased, reviews))


class PrivacyQueries(InvitationQueries):
    """Erasure statements: the retention purge, `forget` (GDPR art. 17), scrubbing, the audit."""

    def purge_before(self, shop: str, cutoff: datetime) -> int:
        """Erase personal data of a shop's records older than `cutoff`; keeps rows for counts."""
        c = to_iso(cutoff)
        erased = 0
        old_messages = (
            "SELECT id FROM messages WHERE shop = ? AND received_at < ? AND state != ?")
        erased += self.conn.execute(
            f"UPDATE message_bodies SET raw = x'' WHERE id IN ({old_messages})"  # noqa: S608
            " AND length(raw) > 0",
            (shop, c, MessageState.RECEIVED),
        ).rowcount
        self.conn.execute(
            f"UPDATE messages SET mail_from = NULL, peer = NULL WHERE id IN ({old_messages})"  # noqa: S608
            " AND (mail_from IS NOT NULL OR peer IS NOT NULL)",
            (shop, c, MessageState.RECEIVED),
        )
        erased += self.conn.execute(
            "UPDATE shipments SET customer_email = NULL, customer_name = NULL"
            " WHERE shop = ? AND received_at < ? AND customer_email IS NOT NULL",
            (shop, c),
        ).rowcount
        erased += self.conn.execute(
            "UPDATE invitations SET customer_email = '', customer_name = NULL"
            " WHERE shop = ? AND created_at < ? AND status != ? AND customer_email != ''",
            (shop, c, InvitationStatus.SCHEDULED),
        ).rowcount
        erased += self.conn.execute(
            "UPDATE outbox SET raw = x'', recipient = '' WHERE shop = ? AND created_at < ?"
            " AND status IN (?, ?, ?) AND recipient != ''",
            (shop, c, OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.CANCELLED),
        ).rowcount
        # Published reviews stay public; what links them to a person, and hidden text, goes.
        erased += self.conn.execute(
            "UPDATE reviews SET customer_email = NULL WHERE shop = ? AND created_at < ?"
            " AND customer_email IS NOT NULL", (shop, c)).rowcount
        erased += self.conn.execute(
            "UPDATE reviews SET title = NULL, text = NULL, reviewer_name = NULL"
            " WHERE shop = ? AND created_at < ? AND reported = 1 AND text IS NOT NULL",
            (shop, c)).rowcount
        erased += self.conn.execute(
            "UPDATE product_reviews SET text = NULL WHERE shop = ? AND created_at < ?"
            " AND text IS NOT NULL AND review_id IN (SELECT id FROM reviews WHERE reported = 1)",
            (shop, c)).rowcount
        erased += self.conn.execute(
            "UPDATE notes SET body = '' WHERE created_at < ? AND body != '' AND review_id IN"
            " (SELECT id FROM reviews WHERE shop = ?)", (c, shop)).rowcount
        return erased

    def stored_mail(self, table: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """(id, raw) of stored raw mail, inbound (`message_bodies`) or outgoing (`outbox`),
        in id order after `after`: `forget` decodes each to find a person."""
        if table not in ("message_bodies", "outbox"):
            raise ValueError(f"no raw mail in {table!r}")
        return [(int(r[0]), bytes(r[1])) for r in self.conn.execute(
            f"SELECT id, raw FROM {table} WHERE id > ? AND length(raw) > 0"  # noqa: S608
            " ORDER BY id LIMIT ?", (after, limit))]

    def forget(self, email: str, now: datetime, *, messages: Iterable[int] = (),
               outbox: Iterable[int] = ()) -> Erasure:
        """Erase one person's data everywhere (GDPR art. 17) and suppress the address by hash.

        `messages` and `outbox` are the ids of stored raw mail found to name the person
        (privacy.py decodes every part to find them); the mail stored for their shipments,
        about their reviews and to their address goes too. Their reviews keep only the star
        rating; the responses, notes and tags on them, the keys to answer them, and the words
        of their reports (reasons, owners' notes), go.
        Rows stay, with the personal fields emptied, so counts survive.
        """
        email = email.strip().lower()
        erasing = _Erasing(self.conn, email)
        reviews = json.dumps(erasing.ids(
            "SELECT id FROM reviews WHERE lower(customer_email) = ?", (email,)))
        invitations = json.dumps(erasing.ids(
            "SELECT id FROM invitations WHERE lower(customer_email) = ?", (email,)))
        self._forget_inbound(erasing, now, messages, reviews)
        self._forget_invitations(erasing, invitations)
        erased_mail = self._forget_outgoing(erasing, outbox, invitations, reviews)
        self._forget_reviews(erasing, reviews)
        counts = erasing.counts
        counts["other fields"] = self._scrub_text(email)
        self.conn.execute(
            "INSERT OR IGNORE INTO suppressions (shop, email, created_at, reason)"
            " VALUES ('*', ?, ?, 'forgotten on request')", (address_hash(email), to_iso(now)))
        return Erasure(counts, erased_mail)

    def _forget_inbound(self, erasing: _Erasing, now: datetime, messages: Iterable[int],
                        reviews: str) -> None:
        """Inbound mail: named in its bytes, a trigger of their shipments, a reply about their
        reviews (by Message-ID: an agent's reply need not repeat the address), or sent by
        them; and their shipments. `reviews` is a JSON list of their reviews' ids."""
        email, run = erasing.email, erasing.run
        message_ids = set(messages) | set(erasing.ids(
            "SELECT message_row_id FROM shipments WHERE lower(customer_email) = ?1"
            " UNION SELECT id FROM messages WHERE lower(mail_from) = ?1"
            " UNION SELECT m.id FROM messages m JOIN replies p ON p.message_id = m.message_id"
            " WHERE p.review_id IN (SELECT value FROM json_each(?2))", (email, reviews)))
        mentioned = json.dumps(sorted(message_ids))
        run("messages", "UPDATE messages SET mail_from = NULL, peer = NULL, state = ?,"
            " processed_at = COALESCE(processed_at, ?), result = CASE WHEN state = ?"
            " THEN 'erased on request' ELSE result END"
            " WHERE id IN (SELECT value FROM json_each(?))",
            (MessageState.PROCESSED, to_iso(now), MessageState.RECEIVED, mentioned))
        self.conn.execute("DELETE FROM message_bodies WHERE id IN (SELECT value FROM json_each(?))",
                          (mentioned,))
        run("shipments", "UPDATE shipments SET customer_email = NULL, customer_name = NULL"
            " WHERE lower(customer_email) = ?", (email,))
        self.conn.execute("UPDATE shipments SET sender = NULL WHERE lower(sender) = ?", (email,))

    def _forget_invitations(self, erasing: _Erasing, invitations: str) -> None:
        """Their invitations: the scheduled ones cancelled, every one emptied."""
        for invitation_id in erasing.ids("SELECT id FROM invitations WHERE id IN"
                                         " (SELECT value FROM json_each(?)) AND status = ?",
                                         (invitations, InvitationStatus.SCHEDULED)):
            self.cancel_invitation(invitation_id, "erased on request")
        erasing.run("invitations", "UPDATE invitations SET customer_email = '',"
                    " customer_name = NULL, reminder_due_at = NULL, reason = 'erased on request'"
                    " WHERE id IN (SELECT value FROM json_each(?))", (invitations,))

    def _forget_outgoing(self, erasing: _Erasing, outbox: Iterable[int], invitations: str,
                         reviews: str) -> frozenset[str]:
        """Outgoing mail: to them, about their invitations and reviews (tickets, notices,
        responses), or naming them anywhere; returns the emptied mail's Message-IDs."""
        outbox_ids = json.dumps(sorted(set(outbox) | set(erasing.ids(
            "SELECT id FROM outbox WHERE lower(recipient) = ?1"
            " OR invitation_id IN (SELECT value FROM json_each(?2))"
            " OR review_id IN (SELECT value FROM json_each(?3))",
            (erasing.email, invitations, reviews)))))
        erased_mail = frozenset(str(r[0]) for r in self.conn.execute(
            "SELECT message_id FROM outbox WHERE id IN (SELECT value FROM json_each(?))",
            (outbox_ids,)))
        erasing.run("outbox", "UPDATE outbox SET raw = x'', recipient = '', subject = NULL,"
                    " last_error = NULL, status = CASE WHEN status IN ('queued', 'sending')"
                    " THEN 'cancelled' ELSE status END"
                    " WHERE id IN (SELECT value FROM json_each(?))", (outbox_ids,))
        return erased_mail

    @staticmethod
    def _forget_reviews(erasing: _Erasing, reviews: str) -> None:
        """Their reviews keep an anonymous star rating, hidden; what was said about them goes,
        and so do the traces of their address in replies, notices, bounces and senders."""
        email, run = erasing.email, erasing.run
        run("reviews", "UPDATE reviews SET customer_email = NULL, reviewer_name = NULL,"
            " title = NULL, text = NULL, reference = NULL, reported = 1,"
            " report_reason = 'erased on request', response_id = NULL, first_answer_secs = NULL,"
            " ticket_state = NULL"
            " WHERE id IN (SELECT value FROM json_each(?))", (reviews,))
        run("product_reviews", "UPDATE product_reviews SET text = NULL"
            " WHERE review_id IN (SELECT value FROM json_each(?))", (reviews,))
        for table in ("responses", "notes", "review_tags", "reply_keys"):
            run(table, f"DELETE FROM {table} WHERE review_id IN"  # noqa: S608
                " (SELECT value FROM json_each(?))", (reviews,))
        _forget_reports(erasing, reviews)
        run("replies", "UPDATE replies SET from_address = NULL WHERE lower(from_address) = ?",
            (email,))
        run("reply_notices", "DELETE FROM reply_notices WHERE lower(address) = ?", (email,))
        run("bounces", "DELETE FROM bounces WHERE lower(email) = ?", (email,))
        run("suppressions", "DELETE FROM suppressions WHERE lower(email) = ?", (email,))
        run("trigger_senders", "DELETE FROM trigger_senders WHERE lower(sender) = ?", (email,))

    def _scrub_text(self, email: str) -> int:
        """The address wherever else a text column holds it (an error text, someone else's
        note quoting it), cut out: the targeted statements above cannot know every column."""
        pattern = address_pattern(email)
        changed = 0
        for table, columns in self._text_columns().items():
            for column in columns:
                rows = self.conn.execute(
                    f"SELECT rowid, {column} FROM {table}"  # noqa: S608
                    f" WHERE typeof({column}) = 'text' AND instr(lower({column}), ?) > 0",
                    (email,)).fetchall()
                update = f"UPDATE {table} SET {column} = ? WHERE rowid = ?"  # noqa: S608
                for rowid, value in rows:
                    if not pattern.search(value):
                        continue  # only part of a longer address
                    if not self._replace(update, pattern.sub("[erased]", value), rowid):
                        # A unique key (a Message-ID) stays unique.
                        self.conn.execute(update, (f"[erased {table} {rowid}]", rowid))
                    changed += 1
        return changed

    def _replace(self, update: str, value: str, rowid: object) -> bool:
        """Run one scrubbing UPDATE in a savepoint (a failed statement would end a PostgreSQL
        transaction); False when it would break a unique key."""
        failed = self.each(lambda q: q.conn.execute(update, (value, rowid)))
        if isinstance(failed, sqlite3.IntegrityError | DuplicateKey):
            return False
        if isinstance(failed, BaseException):
            raise failed
        return True

    def _text_columns(self) -> dict[str, list[str]]:
        """Every table's text columns (SQLite: those declared TEXT or without a type)."""
        found: dict[str, list[str]] = {}
        if self.backend == "postgresql":
            for table, column in self.conn.execute(
                    "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND data_type = 'text'"
                    " ORDER BY table_name, ordinal_position"):
                found.setdefault(str(table), []).append(str(column))
            return found
        tables = [str(r[0]) for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            found[table] = [str(r[1]) for r in self.conn.execute(
                f"PRAGMA table_info({table})") if str(r[2]).upper() in ("TEXT", "")]
        return found

    def audit(self, action: str, detail: dict[str, Any], now: datetime,
              actor: str = "mailrelay") -> None:
        self.conn.execute(
            "INSERT INTO audit (at, action, actor, detail) VALUES (?,?,?,?)",
            (to_iso(now), action, actor, json.dumps(detail, sort_keys=True)))
