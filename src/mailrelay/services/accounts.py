"""The console's accounts (issue 14): who may log in, as what, for which shops.

Passwords are hashed with argon2id (argon2-cffi's defaults, rehashed when they change); a
second factor is an optional TOTP code (pyotp, RFC 6238). Session and password-link tokens
are random, shown once, and stored only as SHA-256 hashes. No HTTP here: the web edge turns
these answers into cookies and pages.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailrelay.config import Config
from mailrelay.core.errors import UserError
from mailrelay.parsing import normalize_address
from mailrelay.store import QueryInterface, UserRow

#: A set-password link is good for a day: long enough to be read, short enough to leak little.
LINK_LIFETIME = timedelta(hours=24)
#: A login lasts a working day; the browser forgets the cookie when it closes sooner.
SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; a megabyte "password" is a denial of service

_HASHER = PasswordHasher()  # argon2id, RFC 9106's second recommended parameters
#: Verified when the address is unknown, so a login takes as long either way.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))


class Role(StrEnum):
    OWNER = "owner"
    AGENT = "agent"


class LoginRefusal(StrEnum):
    """Why a login did not succeed; the page says the same for the first three (no account
    probing), and asks for the code for the last."""

    WRONG = "wrong"
    NO_PASSWORD = "no_password"  # noqa: S105 - a reason, not a password
    BAD_CODE = "bad_code"
    CODE_NEEDED = "code_needed"


@dataclass(frozen=True)
class ConsoleUser:
    """A logged-in user: their shops and role in each (the only shops they may see)."""

    id: int
    email: str
    roles: dict[str, str]

    def role_in(self, shop_id: str) -> str | None:
        return self.roles.get(shop_id)

    def may_see(self, shop_id: str) -> bool:
        return shop_id in self.roles

    def owns(self, shop_id: str) -> bool:
        return self.roles.get(shop_id) == Role.OWNER


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def password_link(config: Config, token: str) -> str:
    return f"{config.http.base_url}/console/password/{token}"


def add_user(q: QueryInterface, config: Config, email: str, shop_id: str, role: str,
             now: datetime) -> str:
    """Make `email` a `role` of `shop_id` and return a one-time set-password link (a user
    who already has a password keeps it: the link lets them choose a new one)."""
    address = _address(email)
    if config.shop(shop_id) is None:
        known = ", ".join(shop.id for shop in config.shops)
        raise UserError(f"no shop {shop_id!r} in the config (shops: {known})")
    if role not in (Role.OWNER, Role.AGENT):
        raise UserError(f"role must be owner or agent, not {role!r}")
    user_id = q.add_member(address, shop_id, role, now)
    return _new_link(q, config, user_id, now)


def reset_password(q: QueryInterface, config: Config, email: str, now: datetime) -> str:
    """A new one-time link for an existing user (`user passwd`)."""
    user = q.user_by_email(_address(email))
    if user is None:
        raise UserError(f"no console user {email!r} ('mailrelay user list' lists them)")
    return _new_link(q, config, user.id, now)


def _new_link(q: QueryInterface, config: Config, user_id: int, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    q.create_password_link(user_id, token_hash(token), now, now + LINK_LIFETIME)
    return password_link(config, token)


def password_problem(password: str) -> str | None:
    """Why `password` is refused, or None (length only: NIST SP 800-63B, no composition rules)."""
    if len(password) < MIN_PASSWORD:
        return "too_short"
    if len(password) > MAX_PASSWORD:
        return "too_long"
    return None


def set_password(q: QueryInterface, token: str, password: str, now: datetime) -> int | None:
    """Use a one-time link to set `password`; the user id, or None for a spent link."""
    if password_problem(password) is not None:
        raise ValueError("password refused by policy")
    return q.use_password_link(token_hash(token), _HASHER.hash(password), now)


@dataclass(frozen=True)
class LoginResult:
    user: UserRow | None
    refusal: LoginRefusal | None


def check_login(q: QueryInterface, email: str, password: str, code: str | None,
                now: datetime) -> LoginResult:
    """The account `email` if `password` (and, when it has TOTP, `code`) are right."""
    user = q.user_by_email(normalize_address(email) or email.strip().lower())
    stored = user.password_hash if user is not None else None
    try:
        _HASHER.verify(stored or _DUMMY_HASH, password[:MAX_PASSWORD])
        matched = stored is not None
    except (VerificationError, InvalidHashError):
        matched = False
    if user is None or not matched:
        refusal = LoginRefusal.NO_PASSWORD if user is not None and stored is None \
            else LoginRefusal.WRONG
        return LoginResult(None, refusal)
    if user.totp_secret:
        if not code:
            return LoginResult(None, LoginRefusal.CODE_NEEDED)
        if not pyotp.TOTP(user.totp_secret).verify(code.replace(" ", ""), for_time=now,
                                                   valid_window=1):
            return LoginResult(None, LoginRefusal.BAD_CODE)
    if stored is not None and _HASHER.check_needs_rehash(stored):
        q.update_password_hash(user.id, _HASHER.hash(password))
    return LoginResult(user, None)


def start_session(q: QueryInterface, user: UserRow, now: datetime) -> str:
    """A new session for `user`; returns the token for the cookie (stored hashed)."""
    token = secrets.token_urlsafe(32)
    q.create_session(token_hash(token), user.id, now, now + SESSION_LIFETIME)
    return token


def session_user(q: QueryInterface, token: str, now: datetime) -> ConsoleUser | None:
    user = q.session_user(token_hash(token), now)
    if user is None or not user.roles:
        return None
    return ConsoleUser(user.id, user.email, dict(user.roles))


def enable_totp(q: QueryInterface, email: str, issuer: str) -> str:
    """Give `email` a new TOTP secret; returns the otpauth:// URI for an authenticator app."""
    user = q.user_by_email(_address(email))
    if user is None:
        raise UserError(f"no console user {email!r} ('mailrelay user list' lists them)")
    secret = pyotp.random_base32()
    q.set_totp(user.id, secret)
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=issuer)


def disable_totp(q: QueryInterface, email: str) -> None:
    user = q.user_by_email(_address(email))
    if user is None:
        raise UserError(f"no console user {email!r} ('mailrelay user list' lists them)")
    q.set_totp(user.id, None)


def _address(email: str) -> str:
    address = normalize_address(email)
    if address is None:
        raise UserError(f"not a valid email address: {email!r}")
    return address
