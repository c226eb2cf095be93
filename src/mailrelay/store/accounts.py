"""Console accounts (issue 14): users with their shops and roles, sessions, and one-time links
that set a password. SQL only: hashing and the rules live in services.accounts; tokens arrive
here already hashed."""

from __future__ import annotations

from datetime import datetime

from mailrelay.store.connection import Bound
from mailrelay.store.rows import UserListing, UserRow
from mailrelay.store.timestamps import to_iso

_USER = "SELECT id, email, password_hash, totp_secret, created_at, password_set_at FROM users"


class AccountQueries(Bound):
    """Users, memberships, sessions and password links."""

    def add_member(self, email: str, shop: str, role: str, now: datetime) -> int:
        """Make `email` (lower-cased by the caller) a `role` of `shop`; returns the user id."""
        self.conn.execute(
            "INSERT INTO users (email, created_at) VALUES (?, ?) ON CONFLICT(email) DO NOTHING",
            (email, to_iso(now)))
        user_id = int(self.conn.execute(
            "SELECT id FROM users WHERE email = ?", (email,)).fetchone()[0])
        self.conn.execute(
            "INSERT INTO memberships (user_id, shop, role, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(user_id, shop) DO UPDATE SET role = excluded.role",
            (user_id, shop, role, to_iso(now)))
        return user_id

    def user_by_email(self, email: str) -> UserRow | None:
        return self._user(self.conn.execute(_USER + " WHERE email = ?", (email,)).fetchone())

    def user_by_id(self, user_id: int) -> UserRow | None:
        return self._user(self.conn.execute(_USER + " WHERE id = ?", (user_id,)).fetchone())

    def _user(self, row: tuple[object, ...] | None) -> UserRow | None:
        if row is None:
            return None
        roles = {str(shop): str(role) for shop, role in self.conn.execute(
            "SELECT shop, role FROM memberships WHERE user_id = ? ORDER BY shop", (row[0],))}
        return UserRow(int(str(row[0])), str(row[1]), _text(row[2]), _text(row[3]),
                       str(row[4]), _text(row[5]), roles)

    def list_users(self, shop: str | None = None) -> list[UserListing]:
        sql = ("SELECT u.email, m.shop, m.role, u.password_hash IS NOT NULL,"
               " u.totp_secret IS NOT NULL, u.created_at FROM memberships m"
               " JOIN users u ON u.id = m.user_id")
        args: list[str] = []
        if shop:
            sql += " WHERE m.shop = ?"
            args.append(shop)
        return [UserListing(str(r[0]), str(r[1]), str(r[2]), bool(r[3]), bool(r[4]), str(r[5]))
                for r in self.conn.execute(sql + " ORDER BY u.email, m.shop", args)]

    def remove_member(self, email: str, shop: str | None = None) -> int:
        """End `email`'s membership of `shop` (every shop when None); a user left without a
        shop is deleted with its sessions and links. Returns the memberships ended."""
        row = self.conn.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()
        if row is None:
            return 0
        user_id = int(row[0])
        where, args = ("user_id = ?", [user_id]) if shop is None else (
            "user_id = ? AND shop = ?", [user_id, shop])
        ended = self.conn.execute(f"DELETE FROM memberships WHERE {where}", args).rowcount  # noqa: S608
        self.conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        left = self.conn.execute(
            "SELECT COUNT(*) FROM memberships WHERE user_id = ?", (user_id,)).fetchone()[0]
        if not left:
            self.conn.execute("DELETE FROM password_links WHERE user_id = ?", (user_id,))
            self.conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
        return int(ended)

    def create_password_link(self, user_id: int, token_hash: str, now: datetime,
                             expires: datetime) -> None:
        """A new one-time link; the user's older unused links stop working."""
        self.conn.execute("DELETE FROM password_links WHERE user_id = ? AND used_at IS NULL",
                          (user_id,))
        self.conn.execute(
            "INSERT INTO password_links (token_hash, user_id, created_at, expires_at)"
            " VALUES (?, ?, ?, ?)", (token_hash, user_id, to_iso(now), to_iso(expires)))

    def password_link_user(self, token_hash: str, now: datetime) -> int | None:
        """The user an unused, unexpired link belongs to."""
        row = self.conn.execute(
            "SELECT user_id FROM password_links WHERE token_hash = ? AND used_at IS NULL"
            " AND expires_at > ?", (token_hash, to_iso(now))).fetchone()
        return int(row[0]) if row else None

    def use_password_link(self, token_hash: str, password_hash: str,
                          now: datetime) -> int | None:
        """Set the password through a link, once; every session of the user ends (a new
        password logs out everywhere). Returns the user id, None for a spent or expired link."""
        user_id = self.password_link_user(token_hash, now)
        if user_id is None:
            return None
        self.conn.execute("UPDATE password_links SET used_at = ? WHERE token_hash = ?",
                          (to_iso(now), token_hash))
        self.conn.execute(
            "UPDATE users SET password_hash = ?, password_set_at = ? WHERE id = ?",
            (password_hash, to_iso(now), user_id))
        self.conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        return user_id

    def update_password_hash(self, user_id: int, password_hash: str) -> None:
        """The same password hashed with newer parameters (argon2's rehash on login)."""
        self.conn.execute("UPDATE users SET password_hash = ? WHERE id = ?",
                          (password_hash, user_id))

    def set_totp(self, user_id: int, secret: str | None) -> None:
        self.conn.execute("UPDATE users SET totp_secret = ? WHERE id = ?", (secret, user_id))

    def create_session(self, token_hash: str, user_id: int, now: datetime,
                       expires: datetime) -> None:
        self.conn.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)"
            " VALUES (?, ?, ?, ?)", (token_hash, user_id, to_iso(now), to_iso(expires)))

    def session_user(self, token_hash: str, now: datetime) -> UserRow | None:
        row = self.conn.execute(
            "SELECT user_id FROM sessions WHERE token_hash = ? AND expires_at > ?",
            (token_hash, to_iso(now))).fetchone()
        return self.user_by_id(int(row[0])) if row else None

    def delete_session(self, token_hash: str) -> None:
        self.conn.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))


def _text(value: object) -> str | None:
    return None if value is None else str(value)
