"""The review form under attack (issue 10 §6), over real HTTP against the daemon's web listener:
rate limits that forged tokens cannot turn against customers, X-Forwarded-For believed only from
`[http] trusted_proxies`, and odd form input answered 400 with the form, never a 500."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config, load
from mailrelay.core.clock import FrozenClock
from mailrelay.edges.web.ratelimit import ClientAddresses, FormLimits, client_address

from .conftest import BASE_CONFIG, second_shop
from .web_forms import base, csrf_of, flip, form_page, invite, stored_reviews

KIM = "Kim Customer"
SECOND_SHOP = second_shop(**{"from": "Bolt Bikes <hello@bolt.example>"},
                          agents=["team@bolt.example"], timezone="Europe/Berlin", locale="de")


def two_shop_config(tmp_path: Path, proxies: str | None) -> Config:
    text = BASE_CONFIG.format(smtp_extra="", shop_extra="") + SECOND_SHOP
    if proxies is not None:
        text = text.replace('base_url = "http://reviews.test"',
                            f'base_url = "http://reviews.test"\ntrusted_proxies = {proxies}')
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return load(path)


@pytest.fixture
async def direct(tmp_path: Path) -> AsyncIterator[Daemon]:
    """No trusted proxies: the socket address is the client, whatever a header says."""
    async with Daemon(two_shop_config(tmp_path, None), FrozenClock()) as daemon:
        yield daemon


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[Daemon]:
    """Behind a reverse proxy on loopback that is trusted."""
    async with Daemon(two_shop_config(tmp_path, '["127.0.0.1/32", "::1/128"]'),
                      FrozenClock()) as daemon:
        yield daemon


async def post(http: aiohttp.ClientSession, daemon: Daemon, token: str, data: Any = None, *,
               via: str | None = None, headers: dict[str, str] | None = None,
               ) -> tuple[int, str]:
    sent = dict(headers or {})
    if via is not None:
        sent["X-Forwarded-For"] = via
    async with http.post(f"{base(daemon)}/r/{token}", data=data, headers=sent) as resp:
        return resp.status, await resp.text()


async def review(http: aiohttp.ClientSession, daemon: Daemon, token: str,
                 via: str | None = None, **fields: str) -> tuple[int, str]:
    csrf = csrf_of(await form_page(http, daemon, token))
    data = {"stars": "5", "title": "Quick", "text": "Arrived on time and works.",
            "name": "Kim", "csrf": csrf, **fields}
    return await post(http, daemon, token, data, via=via)


async def ann_and_ben(daemon: Daemon) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ann's invitation at acme and Ben's at bolt."""
    return (await invite(daemon, "ann@example.com", KIM, shop_id="acme"),
            await invite(daemon, "ben@example.org", KIM, shop_id="bolt"))


# --- rate limits and X-Forwarded-For ----------------------------------------------------------


async def test_forged_tokens_from_behind_an_untrusted_proxy_never_lock_out_customers(
    direct: Daemon, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    acme, bolt = await ann_and_ben(direct)
    statuses = []
    for n in range(40):
        # A new X-Forwarded-For each time buys nothing: the peer is not a trusted proxy.
        status, _html = await post(http, direct, flip(acme.token, n % 20 + 2), {"stars": "5"},
                                   via=f"198.51.100.{n}")
        statuses.append(status)
    assert statuses == [404] * 30 + [429] * 10
    # Every customer behind the same address still gets through, in both shops.
    assert (await review(http, direct, acme.token))[0] == 200
    status, html = await review(http, direct, bolt.token)
    assert status == 200 and "Vielen Dank" in html
    assert sorted(r.shop for r in stored_reviews(direct)) == ["acme", "bolt"]
    messages = [r.getMessage() for r in caplog.records]
    assert "X-Forwarded-For from 127.0.0.1 ignored: not in [http] trusted_proxies" in messages
    limited = [m for m in messages if m.startswith("review form rate limit reached")]
    assert limited == ["review form rate limit reached (address) client=127.0.0.1"]


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(
    proxied: Daemon, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    acme, bolt = await ann_and_ben(proxied)
    attacker = "203.0.113.9"
    for _ in range(30):
        assert (await post(http, proxied, flip(acme.token), {}, via=attacker))[0] == 404
    assert (await post(http, proxied, flip(acme.token), {}, via=attacker))[0] == 429
    # Writing another address to the left changes nothing: the proxy appended the real one.
    spoofed = f"192.0.2.77, {attacker}"
    assert (await post(http, proxied, flip(acme.token), {}, via=spoofed))[0] == 429
    # Another client of the same proxy has its own budget for unknown links...
    assert (await post(http, proxied, flip(bolt.token), {}, via="192.0.2.77"))[0] == 404
    # ...and the customers' real links work, even from the attacker's own address.
    assert (await review(http, proxied, acme.token, via="192.0.2.10"))[0] == 200
    assert (await review(http, proxied, bolt.token, via=attacker))[0] == 200
    # A chain of trusted proxies (a CDN hop on ::1 here) is skipped to reach the client.
    assert (await post(http, proxied, flip(acme.token), {}, via=f"{attacker}, ::1"))[0] == 429
    messages = [r.getMessage() for r in caplog.records]
    assert f"review form rate limit reached (address) client={attacker}" in messages
    assert not any("X-Forwarded-For from" in m for m in messages)


async def test_a_valid_link_is_limited_by_its_own_budget_before_its_address(
    proxied: Daemon, http: aiohttp.ClientSession
) -> None:
    acme, bolt = await ann_and_ben(proxied)
    for _ in range(10):
        assert (await post(http, proxied, acme.token, {"stars": "5"}, via="192.0.2.5"))[0] \
            == 403  # no CSRF field
    assert (await post(http, proxied, acme.token, {}, via="192.0.2.5"))[0] == 429
    # Refused posts spent neither that link's address budget nor anybody else's.
    assert (await review(http, proxied, bolt.token, via="192.0.2.5"))[0] == 200
    for n in range(19):
        other = await invite(proxied, f"c{n}@example.com", KIM, shop_id="acme")
        assert (await post(http, proxied, other.token, {}, via="192.0.2.5"))[0] == 403
    late = await invite(proxied, "late@example.org", KIM, shop_id="bolt")
    # 10 + 1 + 19 = 30 posts with real links from one client: its address budget is spent.
    assert (await post(http, proxied, late.token, {}, via="192.0.2.5"))[0] == 429
    assert (await review(http, proxied, late.token, via="192.0.2.6"))[0] == 200


def test_the_client_is_the_rightmost_forwarded_hop_that_is_not_a_trusted_proxy() -> None:
    trusted = (ip_network("127.0.0.0/8"), ip_network("10.0.0.0/8"))
    assert client_address("127.0.0.1", ["192.0.2.1, 198.51.100.2"], trusted) == "198.51.100.2"
    assert client_address("127.0.0.1", ["192.0.2.1", "198.51.100.2, 10.0.0.3"],
                          trusted) == "198.51.100.2"  # two headers are one list; 10/8 trusted
    assert client_address("::ffff:127.0.0.1", ["[2001:db8::5]:4711"], trusted) == "2001:db8::5"
    assert client_address("127.0.0.1", ["198.51.100.2:80"], trusted) == "198.51.100.2"
    assert client_address("127.0.0.1", ["unknown"], trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", ["192.0.2.1, garbage, 10.0.0.3"], trusted) == "10.0.0.3"
    assert client_address("127.0.0.1", ["10.0.0.3"], trusted) == "10.0.0.3"  # all trusted
    assert client_address("127.0.0.1", [], trusted) == "127.0.0.1"
    assert client_address("192.0.2.200", ["198.51.100.2"], trusted) == "192.0.2.200"
    assert client_address(None, ["198.51.100.2"], trusted) is None


def test_form_limits_spend_a_token_then_its_address_and_log_once_per_key_and_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    limits = FormLimits(per_token=2, per_ip=3, unknown_per_ip=1, window=600)
    assert [limits.wait("192.0.2.1", "t1", True, 1000.0 + n) for n in range(2)] == [None, None]
    assert limits.wait("192.0.2.1", "t1", True, 1002.0) == pytest.approx(598.0)
    assert limits.wait("192.0.2.1", "t1", True, 1003.0) == pytest.approx(597.0)
    assert limits.wait("192.0.2.1", "t2", True, 1004.0) is None  # the address's third post
    assert limits.wait("192.0.2.1", "t3", True, 1005.0) == pytest.approx(595.0)
    # Unknown tokens spend a budget of their own: the address's real links are untouched.
    assert limits.wait("192.0.2.9", "forged", False, 1006.0) is None
    assert limits.wait("192.0.2.9", "forged", False, 1007.0) == pytest.approx(599.0)
    assert limits.wait("192.0.2.9", "t4", True, 1008.0) is None
    assert [r.getMessage() for r in caplog.records] == [
        "review form rate limit reached (token) client=192.0.2.1",
        "review form rate limit reached (address) client=192.0.2.1",
        "review form rate limit reached (address) client=192.0.2.9",
    ]


def test_a_forwarded_header_from_an_untrusted_peer_is_ignored_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    addresses = ClientAddresses((ip_network("10.0.0.0/8"),))
    assert addresses.client("10.0.0.2", ["198.51.100.2"]) == "198.51.100.2"
    assert addresses.client("192.0.2.7", ["198.51.100.2"]) == "192.0.2.7"
    assert addresses.client("192.0.2.8", ["198.51.100.3"]) == "192.0.2.8"
    assert addresses.client("192.0.2.9", []) == "192.0.2.9"
    assert [r.getMessage() for r in caplog.records] == [
        "X-Forwarded-For from 192.0.2.7 ignored: not in [http] trusted_proxies",
    ]


# --- odd form input -----------------------------------------------------------------------------

ODD_STARS = ["²", "٣", "9" * 5000, "1e3", "-1", "0", "6", "", " ", "4.5", "0x3", "३"]


@pytest.mark.parametrize("stars", ODD_STARS, ids=range(len(ODD_STARS)))
async def test_odd_star_values_get_400_with_the_forms_message(
    direct: Daemon, http: aiohttp.ClientSession, stars: str
) -> None:
    acme = await invite(direct, "ann@example.com", KIM, shop_id="acme")
    status, html = await review(http, direct, acme.token, stars=stars)
    assert status == 400
    assert "Please choose from 1 to 5 stars." in html
    assert "Traceback" not in html and stored_reviews(direct) == []


async def test_odd_input_on_a_german_form_is_explained_in_german(
    direct: Daemon, http: aiohttp.ClientSession
) -> None:
    bolt = await invite(direct, "ben@example.org", KIM, shop_id="bolt")
    status, html = await review(http, direct, bolt.token, stars="9" * 5000)
    assert status == 400 and "Bitte wählen Sie 1 bis 5 Sterne" in html
    status, html = await post(http, direct, bolt.token, b"stars=5&stars=1&text=\xff",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400
    assert "Wir konnten das Formular so, wie es gesendet wurde, nicht lesen" in html


def multipart(boundary: str, *parts: bytes) -> bytes:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return body + b"--" + boundary.encode() + b"--\r\n"


def field(name: str, value: bytes, extra: bytes = b"") -> bytes:
    return (b'Content-Disposition: form-data; name="' + name.encode() + b'"\r\n' + extra
            + b"\r\n" + value)


async def test_bodies_that_are_not_our_form_get_400_and_nothing_is_stored(
    direct: Daemon, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailrelay")
    for n, (label, content_type, make) in enumerate(NOT_OUR_FORM):
        customer = await invite(direct, f"c{n}@example.com", KIM, shop_id=("acme", "bolt")[n % 2])
        csrf = csrf_of(await form_page(http, direct, customer.token)).encode()
        status, html = await post(http, direct, customer.token, make(csrf),
                                  headers={"Content-Type": content_type})
        assert status == 400, label
        assert ("We could not read the form as it was sent" in html
                or "Wir konnten das Formular" in html), label
        assert "Traceback" not in html
    assert stored_reviews(direct) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    refusals = [r.getMessage().partition(" review form refused: ")[2] for r in caplog.records]
    assert {"stars given 2 times", "csrf given 2 times", "text sent as a file or binary part",
            "unreadable body (UnicodeDecodeError)", "unreadable body (LookupError)",
            "unreadable body (HTTPRequestEntityTooLarge)",
            "not a form (Content-Type 'application/json')"} <= set(refusals)
    # A well-formed multipart form is still a form.
    acme = await invite(direct, "ann@example.com", KIM, shop_id="acme")
    csrf = csrf_of(await form_page(http, direct, acme.token)).encode()
    body = multipart("ok", field("stars", b"4"), field("csrf", csrf),
                     field("text", "Passt gut, danke schön.".encode()))
    status, _html = await post(http, direct, acme.token, body,
                               headers={"Content-Type": "multipart/form-data; boundary=ok"})
    assert status == 200
    [saved] = stored_reviews(direct)
    assert (saved.stars, saved.text) == (4, "Passt gut, danke schön.")


def good(csrf: bytes) -> bytes:
    return b"stars=4&text=Fits+well+and+looks+good.&csrf=" + csrf


FORM = "application/x-www-form-urlencoded"
NOT_OUR_FORM: list[tuple[str, str, Callable[[bytes], bytes]]] = [
    ("invalid UTF-8", FORM, lambda c: good(c) + b"&title=\xff\xfe"),
    ("unknown charset", FORM + "; charset=x-no-such-charset", good),
    ("duplicate stars", FORM, lambda c: good(c) + b"&stars=1"),
    ("duplicate csrf", FORM, lambda c: good(c) + b"&csrf=" + c),
    ("huge field", FORM, lambda c: good(c) + b"&text=" + b"a" * 300_000),
    ("many fields", FORM, lambda c: good(c) + b"".join(b"&f%d=1" % n for n in range(5000))),
    ("broken multipart", "multipart/form-data; boundary=xyz",
     lambda c: b'--xyz\r\nContent-Disposition: form-data; name="stars"\r\n\r\n4'),
    ("multipart without names", "multipart/form-data; boundary=b1",
     lambda c: multipart("b1", b"Content-Disposition: form-data\r\n\r\n4")),
    ("multipart file as the text", "multipart/form-data; boundary=b2",
     lambda c: multipart("b2", field("stars", b"4"), field("csrf", c),
                         b'Content-Disposition: form-data; name="text"; filename="t.txt"\r\n'
                         b"Content-Type: text/plain\r\n\r\nFits well and looks good.")),
    ("multipart invalid UTF-8", "multipart/form-data; boundary=b3",
     lambda c: multipart("b3", field("stars", b"4"), field("csrf", c),
                         field("text", b"\xc3\x28 ok"))),
    ("multipart binary field", "multipart/form-data; boundary=b4",
     lambda c: multipart("b4", field("stars", b"4"), field("csrf", c),
                         field("text", b"Fits well.",
                               b"Content-Type: application/octet-stream\r\n"))),
    ("nested multipart", "multipart/form-data; boundary=b5",
     lambda c: multipart("b5", b"Content-Type: multipart/mixed; boundary=in\r\n\r\n"
                         + multipart("in", field("stars", b"4")))),
    # aiohttp would store U+FFFD for each bad byte, and read any other body as an empty form.
    ("percent-escaped invalid UTF-8", FORM,
     lambda c: good(c).replace(b"Fits+well", b"Fits+%FF%FE%FD+well")),
    ("a JSON body", "application/json", lambda c: b'{"stars": 4, "csrf": "' + c + b'"}'),
]
