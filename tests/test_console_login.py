"""The console's door (issue 14) over real HTTP: `mailrelay user add` → the one-time password
link → login (password, TOTP) → a session cookie that is HttpOnly and SameSite=Strict →
logout; wrong passwords, spent links, missing CSRF and too many attempts refused; each user
sees only their own shops."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pyotp
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.services import accounts

from .cli_runner import cli
from .conftest import ConfigFactory, second_shop

PASSWORD = "correct horse battery staple"
OWNER = "owner@acme.example"
BOLT_AGENT = "agent@bolt.example"


@pytest.fixture
def shops(make_config: ConfigFactory) -> Config:
    return make_config(more=second_shop())


@pytest.fixture
async def console(shops: Config, clock: FrozenClock) -> AsyncIterator[Daemon]:
    async with Daemon(shops, clock) as daemon:
        yield daemon


def browser() -> aiohttp.ClientSession:
    """A client that keeps cookies for 127.0.0.1 too, as a browser does."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def base(daemon: Daemon) -> str:
    return f"http://127.0.0.1:{daemon.http_port}"


def link_path(output: str) -> str:
    match = re.search(r"https?://[^/\s]+(/console/password/[A-Za-z0-9_-]+)", output)
    assert match, output
    return match.group(1)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def post(http: aiohttp.ClientSession, url: str,
               data: dict[str, str]) -> aiohttp.ClientResponse:
    async with http.post(url, data=data, allow_redirects=False) as resp:
        await resp.read()
        return resp


async def set_password(http: aiohttp.ClientSession, daemon: Daemon, path: str,
                       password: str = PASSWORD) -> aiohttp.ClientResponse:
    _, html = await get(http, base(daemon) + path)
    return await post(http, base(daemon) + path,
                      {"csrf": csrf_of(html), "password": password, "again": password})


async def log_in(http: aiohttp.ClientSession, daemon: Daemon, email: str,
                 password: str = PASSWORD, code: str = "") -> aiohttp.ClientResponse:
    _, html = await get(http, base(daemon) + "/console/login")
    return await post(http, base(daemon) + "/console/login",
                      {"csrf": csrf_of(html), "email": email, "password": password,
                       "code": code})


async def registered(daemon: Daemon, shops: Config, email: str, shop: str,
                     role: str = "owner") -> None:
    code, out = cli(shops, "user", "add", email, "--shop", shop, "--role", role)
    assert code == 0, out
    async with browser() as http:
        resp = await set_password(http, daemon, link_path(out))
        assert (resp.status, resp.headers["Location"]) == (303, "/console/login")


async def test_a_new_user_sets_a_password_once_logs_in_and_sees_only_their_shop(
    console: Daemon, shops: Config,
) -> None:
    code, out = cli(shops, "user", "add", "Owner@ACME.example", "--shop", "acme",
                    "--role", "owner")
    assert code == 0 and "owner of acme" in out, out
    path = link_path(out)
    await registered(console, shops, BOLT_AGENT, "bolt", "agent")
    async with browser() as http:
        status, html = await get(http, base(console) + "/console/")
        assert status == 303  # not logged in: to the login page
        resp = await set_password(http, console, path, "short")
        assert resp.status == 400
        resp = await set_password(http, console, path)
        assert resp.status == 303
        status, html = await get(http, base(console) + path)
        assert status == 410 and "no longer works" in html  # once only
        resp = await log_in(http, console, OWNER)
        assert (resp.status, resp.headers["Location"]) == (303, "/console/")
        cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Path=/console" in cookie and "Secure" not in cookie  # base_url is http here
        status, html = await get(http, base(console) + "/console/")
        assert status == 200
        assert "ACME Shoes" in html and "Bolt Bikes" not in html
        for path in ("/console/acme/", "/console/acme/moderation", "/console/acme/dashboard",
                     "/console/acme/ledgers/invitations", "/console/acme/ledgers/shipments"):
            assert f'href="{path}"' in html, path  # the home page leads to each page
            assert (await get(http, base(console) + path))[0] == 200, path
        assert resp.headers["Cache-Control"] == "no-store"


async def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(
    console: Daemon, shops: Config,
) -> None:
    await registered(console, shops, OWNER, "acme")
    async with browser() as http:
        wrong = await log_in(http, console, OWNER, "not the password at all")
        unknown = await log_in(http, console, "nobody@acme.example")
        assert wrong.status == unknown.status == 401
        _, html = await get(http, base(console) + "/console/")
    assert "Set-Cookie" not in wrong.headers


async def test_login_without_its_csrf_token_is_refused(console: Daemon, shops: Config) -> None:
    await registered(console, shops, OWNER, "acme")
    async with browser() as http:
        resp = await post(http, base(console) + "/console/login",
                          {"email": OWNER, "password": PASSWORD})
    assert resp.status == 400 and "Set-Cookie" not in resp.headers


async def test_too_many_attempts_on_one_account_wait_for_the_window(
    console: Daemon, shops: Config,
) -> None:
    await registered(console, shops, OWNER, "acme")
    async with browser() as http:
        for _ in range(10):
            assert (await log_in(http, console, OWNER, "guess guess guess")).status == 401
        refused = await log_in(http, console, OWNER)  # even the right password, for now
        assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
        assert "Set-Cookie" not in refused.headers


async def test_a_user_with_totp_needs_the_current_code(
    console: Daemon, shops: Config, clock: FrozenClock,
) -> None:
    await registered(console, shops, OWNER, "acme")
    code, out = cli(shops, "user", "totp", OWNER)
    assert code == 0 and "otpauth://totp/" in out, out
    secret = re.search(r"secret=([A-Z2-7]+)", out)
    assert secret
    totp = pyotp.TOTP(secret.group(1))
    async with browser() as http:
        asked = await log_in(http, console, OWNER)
        assert asked.status == 200 and "Set-Cookie" not in asked.headers
        wrong = await log_in(http, console, OWNER, code="000000")
        assert wrong.status == 401
        right = await log_in(http, console, OWNER, code=totp.at(clock.now()))
        assert right.status == 303 and "mailrelay_console=" in right.headers["Set-Cookie"]


async def test_logout_and_removal_end_the_session_at_once(
    console: Daemon, shops: Config, clock: FrozenClock,
) -> None:
    await registered(console, shops, OWNER, "acme")
    await registered(console, shops, BOLT_AGENT, "bolt", "agent")
    async with browser() as owner, browser() as agent:
        await log_in(owner, console, OWNER)
        await log_in(agent, console, BOLT_AGENT)
        _, html = await get(owner, base(console) + "/console/")
        resp = await post(owner, base(console) + "/console/logout", {"csrf": csrf_of(html)})
        assert (resp.status, resp.headers["Location"]) == (303, "/console/login")
        assert (await get(owner, base(console) + "/console/"))[0] == 303
        assert (await get(agent, base(console) + "/console/"))[0] == 200
        code, out = cli(shops, "user", "remove", BOLT_AGENT)
        assert code == 0, out
        assert (await get(agent, base(console) + "/console/"))[0] == 303
        code, out = cli(shops, "user", "remove", BOLT_AGENT)
        assert code == 1 and "has no console access" in out


async def test_a_session_expires_after_a_working_day(
    console: Daemon, shops: Config, clock: FrozenClock,
) -> None:
    await registered(console, shops, OWNER, "acme")
    async with browser() as http:
        await log_in(http, console, OWNER)
        assert (await get(http, base(console) + "/console/"))[0] == 200
        clock.advance(accounts.SESSION_LIFETIME + timedelta(seconds=1))
        assert (await get(http, base(console) + "/console/"))[0] == 303


def test_user_add_refuses_an_unknown_shop_and_role_and_user_list_shows_each_membership(
    shops: Config,
) -> None:
    code, out = cli(shops, "user", "add", OWNER, "--shop", "nope", "--role", "owner")
    assert code == 1 and "no shop 'nope'" in out
    code, out = cli(shops, "user", "add", OWNER, "--shop", "acme", "--role", "boss")
    assert code == 2
    assert cli(shops, "user", "add", OWNER, "--shop", "acme", "--role", "owner")[0] == 0
    assert cli(shops, "user", "add", OWNER, "--shop", "bolt", "--role", "agent")[0] == 0
    code, out = cli(shops, "user", "list", "--format", "csv")
    assert code == 0
    assert "owner@acme.example,acme,owner,false,false" in out
    assert "owner@acme.example,bolt,agent,false,false" in out
