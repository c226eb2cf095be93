"""The review form over real HTTP: an invitation to review, the form page and its CSRF token,
a POST of the fields, a token with one character changed, and the reviews that got stored."""

from __future__ import annotations

import re

import aiohttp

from mailrelay.app import Daemon
from mailrelay.services import invitations
from mailrelay.store import InvitationRow, ReviewRow


def base(daemon: Daemon) -> str:
    return f"http://127.0.0.1:{daemon.http_port}"


async def invite(daemon: Daemon, email: str = "john.smith@example.com",
                 name: str | None = "John Smith", locale: str | None = None, *,
                 shop_id: str = "acme") -> InvitationRow:
    """An invitation made by hand (`mailrelay invite`), as its row with the token."""
    shop = daemon.config.shop(shop_id)
    assert shop is not None
    now = daemon.clock.now()
    decision = await daemon.store.write(lambda q: invitations.invite_manually(
        q, shop, daemon.web.signer, now, email=email, name=name, locale=locale))
    assert decision.invitation_id is not None, decision
    row = daemon.store.read(lambda q: q.get_invitation(decision.invitation_id or 0))
    assert row is not None
    return row


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def form_page(http: aiohttp.ClientSession, daemon: Daemon, token: str) -> str:
    async with http.get(f"{base(daemon)}/r/{token}") as resp:
        assert resp.status == 200
        return await resp.text()


async def post(http: aiohttp.ClientSession, daemon: Daemon, token: str,
               data: dict[str, str]) -> tuple[int, str, aiohttp.ClientResponse]:
    async with http.post(f"{base(daemon)}/r/{token}", data=data) as resp:
        return resp.status, await resp.text(), resp


async def submit(http: aiohttp.ClientSession, daemon: Daemon, token: str,
                 **fields: str) -> tuple[int, str]:
    """GET the form for a CSRF token, then POST the fields (defaults: a valid review)."""
    csrf = csrf_of(await form_page(http, daemon, token))
    data = {"stars": "4", "title": "Good shoes", "text": "They fit well.", "name": "John S.",
            "csrf": csrf, **fields}
    status, text, _resp = await post(http, daemon, token, data)
    return status, text


def flip(token: str, index: int = 5) -> str:
    char = "A" if token[index] != "A" else "B"
    return token[:index] + char + token[index + 1:]


def stored_reviews(daemon: Daemon) -> list[ReviewRow]:
    return daemon.store.read(lambda q: q.list_reviews())
