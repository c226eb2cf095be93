"""The console's door (issue 14): login (password, optional TOTP), logout, the one-time
set-password page, the home page listing the user's shops, and what every console page uses —
the session's user, CSRF tokens bound to the session, and a 404 for another shop's ids.

Protocol only: accounts, hashing and sessions are services.accounts; pages are templates.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailrelay.edges.web.forms import read_fields
from mailrelay.edges.web.i18n import Translator, accept_languages
from mailrelay.edges.web.ratelimit import RateLimiter
from mailrelay.services import accounts
from mailrelay.services.accounts import ConsoleUser, LoginRefusal

if TYPE_CHECKING:
    from mailrelay.edges.web.server import WebApp

log = logging.getLogger("mailrelay.web")

COOKIE = "mailrelay_console"
#: Every console page: private, never cached, never indexed, never framed (the site's CSP).
CONSOLE_HEADERS: Mapping[str, str] = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
#: Login attempts per account and per client address in LOGIN_WINDOW seconds.
LOGIN_PER_ACCOUNT = 10
LOGIN_PER_ADDRESS = 30
LOGIN_WINDOW = 15 * 60.0
#: A console form is good for a working day (its token is bound to the session).
CSRF_MAX_AGE = 12 * 3600
LOGIN_SUBJECT = "console-login"


class Console:
    """Login, logout, password links and home; `user()` and `csrf_*()` for the other pages."""

    def __init__(self, app: WebApp) -> None:
        self.app = app
        self.attempts = RateLimiter(LOGIN_WINDOW)
        self.secure = app.config.http.base_url.startswith("https://")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/console", self.home),
            web.get("/console/", self.home),
            web.get("/console/login", self.login_page),
            web.post("/console/login", self.login),
            web.post("/console/logout", self.logout),
            web.get("/console/password/{token}", self.password_page),
            web.post("/console/password/{token}", self.set_password),
        ]

    # -- what other console pages use

    def translator(self, request: web.Request) -> Translator:
        return self.app.strings.translator(
            *accept_languages(request.headers.get("Accept-Language")))

    async def user(self, request: web.Request) -> ConsoleUser | None:
        """The logged-in user of this request, or None (no, expired or ended session)."""
        token = request.cookies.get(COOKIE)
        if not token or len(token) > 128 or not token.isascii():
            return None
        now = self.app.clock.now()
        return await self.app.store.aread(lambda q: accounts.session_user(q, token, now))

    async def require(self, request: web.Request, shop_id: str | None = None) -> ConsoleUser:
        """The user, or a redirect to the login page; with `shop_id`, a 404 unless the user
        works for that shop (the same answer as for a shop that does not exist)."""
        user = await self.user(request)
        if user is None:
            raise web.HTTPSeeOther("/console/login", headers=CONSOLE_HEADERS)
        if shop_id is not None and not user.may_see(shop_id):
            raise web.HTTPNotFound()
        return user

    def csrf_token(self, request: web.Request) -> str:
        """A form token bound to this session (a stolen page cannot be posted elsewhere)."""
        subject = accounts.token_hash(request.cookies.get(COOKIE, ""))
        return self.app.signer.form_token(subject, int(self.app.clock.now().timestamp()))

    def csrf_valid(self, request: web.Request, value: object) -> bool:
        subject = accounts.token_hash(request.cookies.get(COOKIE, ""))
        return (isinstance(value, str) and value.isascii() and len(value) <= 128
                and self.app.signer.form_token_valid(
                    value, subject, int(self.app.clock.now().timestamp()), CSRF_MAX_AGE))

    def page(self, name: str, t: Translator, status: int = 200, **context: Any) -> web.Response:
        return self.app.page(name, status, t, CONSOLE_HEADERS, **context)

    # -- home

    async def home(self, request: web.Request) -> web.Response:
        user = await self.require(request)
        t = self.translator(request)
        shops = [(shop, user.role_in(shop.id)) for shop in self.app.config.shops
                 if user.may_see(shop.id)]
        return self.page("console_home.html.j2", t, user=user, shops=shops,
                         csrf=self.csrf_token(request))

    # -- login and logout

    def _login_form(self, t: Translator, *, email: str = "", error: str | None = None,
                    code_needed: bool = False, status: int = 200) -> web.Response:
        now = int(self.app.clock.now().timestamp())
        return self.page("console_login.html.j2", t, status, email=email, error=error,
                         code_needed=code_needed,
                         csrf=self.app.signer.form_token(LOGIN_SUBJECT, now))

    async def login_page(self, request: web.Request) -> web.Response:
        if await self.user(request) is not None:
            raise web.HTTPSeeOther("/console/", headers=CONSOLE_HEADERS)
        return self._login_form(self.translator(request))

    async def login(self, request: web.Request) -> web.Response:
        t = self.translator(request)
        form = await read_fields(request, ("csrf", "email", "password", "code"))
        email = str(form.get("email", "")).strip()[:320]
        now = self.app.clock.now()
        if not self.app.signer.form_token_valid(str(form.get("csrf", "")), LOGIN_SUBJECT,
                                                int(now.timestamp()), CSRF_MAX_AGE):
            return self._login_form(t, email=email, error=t("console.csrf"), status=400)
        client = self.app.client(request) or "?"
        wait = self.attempts.hit([(f"account:{email.lower()}", LOGIN_PER_ACCOUNT),
                                  (f"address:{client}", LOGIN_PER_ADDRESS)], now.timestamp())
        if wait is not None:
            log.warning("console login refused: too many attempts")
            response = self._login_form(t, email=email, status=429,
                                        error=t("console.too_many",
                                                minutes=max(1, math.ceil(wait / 60))))
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        password, code = str(form.get("password", "")), str(form.get("code", "")) or None
        result = await self.app.store.aread(
            lambda q: accounts.check_login(q, email, password, code, now))
        if result.user is None:
            log.info("console login failed: %s", result.refusal)
            needed = result.refusal in (LoginRefusal.CODE_NEEDED, LoginRefusal.BAD_CODE)
            error = (t("console.code_wrong") if result.refusal == LoginRefusal.BAD_CODE
                     else None if result.refusal == LoginRefusal.CODE_NEEDED
                     else t("console.wrong"))
            return self._login_form(t, email=email, error=error, code_needed=needed,
                                    status=200 if result.refusal == LoginRefusal.CODE_NEEDED
                                    else 401)
        user = result.user
        token = await self.app.store.write(lambda q: accounts.start_session(q, user, now))
        log.info("console login user=%s", user.id)
        response = web.HTTPSeeOther("/console/", headers=CONSOLE_HEADERS)
        response.set_cookie(COOKIE, token, path="/console", httponly=True, samesite="Strict",
                            secure=self.secure,
                            max_age=int(accounts.SESSION_LIFETIME.total_seconds()))
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        form = await read_fields(request, ("csrf",))
        if not self.csrf_valid(request, form.get("csrf")):
            raise web.HTTPSeeOther("/console/", headers=CONSOLE_HEADERS)
        token = request.cookies.get(COOKIE, "")
        if token:
            await self.app.store.write(
                lambda q: q.delete_session(accounts.token_hash(token)))
        response = web.HTTPSeeOther("/console/login", headers=CONSOLE_HEADERS)
        response.del_cookie(COOKIE, path="/console")
        raise response

    # -- the one-time password link

    async def _link_valid(self, token: str) -> bool:
        if len(token) > 128 or not token.isascii():
            return False
        now = self.app.clock.now()
        found = await self.app.store.aread(
            lambda q: q.password_link_user(accounts.token_hash(token), now))
        return found is not None

    def _password_form(self, t: Translator, token: str, error: str | None = None,
                       status: int = 200) -> web.Response:
        now = int(self.app.clock.now().timestamp())
        return self.page("console_password.html.j2", t, status, error=error,
                         minimum=accounts.MIN_PASSWORD,
                         csrf=self.app.signer.form_token(f"password\0{token}", now))

    async def password_page(self, request: web.Request) -> web.Response:
        t = self.translator(request)
        token = request.match_info["token"]
        if not await self._link_valid(token):
            return self.app.message(410, t, t("console.link_spent_title"),
                                    t("console.link_spent_body"))
        return self._password_form(t, token)

    async def set_password(self, request: web.Request) -> web.Response:
        t = self.translator(request)
        token = request.match_info["token"]
        form = await read_fields(request, ("csrf", "password", "again"))
        now = self.app.clock.now()
        if not await self._link_valid(token):
            return self.app.message(410, t, t("console.link_spent_title"),
                                    t("console.link_spent_body"))
        if not self.app.signer.form_token_valid(str(form.get("csrf", "")), f"password\0{token}",
                                                int(now.timestamp()), CSRF_MAX_AGE):
            return self._password_form(t, token, t("console.csrf"), 400)
        password = str(form.get("password", ""))
        problem = accounts.password_problem(password)
        if problem is not None:
            return self._password_form(
                t, token, t(f"console.password_{problem}", minimum=accounts.MIN_PASSWORD), 400)
        if password != str(form.get("again", "")):
            return self._password_form(t, token, t("console.password_mismatch"), 400)
        user_id = await self.app.store.write(
            lambda q: accounts.set_password(q, token, password, now))
        if user_id is None:
            return self.app.message(410, t, t("console.link_spent_title"),
                                    t("console.link_spent_body"))
        log.info("console password set user=%s", user_id)
        raise web.HTTPSeeOther("/console/login", headers=CONSOLE_HEADERS)
