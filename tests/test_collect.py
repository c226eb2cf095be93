"""Issue 13: the shop's own review links. `/s/<shop>/write` (basic), the public page's "Write a
review" (organic) and `/s/<shop>/write/embed` (embedded) mail a one-time link to the review
form, over real HTTP, a real SMTP sink and the CLI; never a verified buyer."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock
from mailrelay.store import InvitationRow

from .browser import browser_page, require_browser, screenshot
from .cli_runner import cli
from .conftest import ConfigFactory, missing, second_shop
from .mailtools import drain, mails_to, text_of, via_sink
from .sink import Sink
from .test_browser import live
from .web_forms import base, csrf_of, invite, submit

ACME_ORIGIN = "https://acme.example"
BOLT_ORIGINS = ["https://bolt.example", "https://shop.bolt.example:8443"]
TWO_SHOPS = dict(shop_extra=f'embed_origins = ["{ACME_ORIGIN}"]\nreminder_after = "3d"',
                 more=second_shop(embed_origins=BOLT_ORIGINS))


@pytest.fixture
def two_shops(make_config: ConfigFactory) -> Config:
    return make_config(**TWO_SHOPS)


@pytest.fixture
async def relay(two_shops: Config, sink: Sink, clock: FrozenClock) -> AsyncIterator[Daemon]:
    """The daemon with two shops, sending its mail to the SMTP sink."""
    async with Daemon(via_sink(two_shops, sink), clock) as running:
        yield running


async def ask(http: aiohttp.ClientSession, daemon: Daemon, path: str,
              headers: dict[str, str] | None = None, **fields: str
              ) -> tuple[int, str, aiohttp.ClientResponse]:
    """GET the form at `path` for its CSRF token, POST `fields` to it (no redirects followed)."""
    async with http.get(base(daemon) + path, headers=headers) as resp:
        assert resp.status == 200, path
        csrf = csrf_of(await resp.text())
    async with http.post(base(daemon) + path, data={"csrf": csrf, **fields}, headers=headers,
                         allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp


def invitations_of(daemon: Daemon) -> list[InvitationRow]:
    return daemon.store.read(lambda q: q.list_invitations())


def review_link(mail: EmailMessage) -> str:
    match = re.search(r"http://reviews\.test/r/([A-Za-z0-9_\-.]+)", text_of(mail))
    assert match, text_of(mail)
    return match.group(1)


async def test_basic_link_mails_a_one_time_link_and_the_review_is_basic_and_not_verified(
    relay: Daemon, sink: Sink, http: aiohttp.ClientSession
) -> None:
    status, _text, resp = await ask(http, relay, "/s/acme/write", email="ann@example.com",
                                    name="Ann Berg")
    assert status == 303 and resp.headers["Location"] == "/s/acme/write/sent"
    await drain(relay)
    mails = mails_to(sink, "ann@example.com")
    assert len(mails) == 1
    mail = mails[0]
    assert mail["Subject"] == "Your link to review ACME Shoes"
    assert "You asked ACME Shoes for a link" in text_of(mail)
    assert mail["List-Unsubscribe"] and mail["X-Mailrelay-Shop"] == "acme"
    token = review_link(mail)
    form = await (await http.get(f"{base(relay)}/r/{token}")).text()
    assert "Verified buyer" not in form and 'value="Ann Berg"' in form
    status, _html = await submit(http, relay, token, text="Asked for a link, got it.")
    assert status == 200
    review = relay.store.read(lambda q: q.list_reviews())[0]
    assert review.method == "basic" and review.customer_email == "ann@example.com"
    async with http.get(f"{base(relay)}/s/acme/reviews.json") as resp:
        public = json.loads(await resp.text())["reviews"][0]
    assert public["method"] == "basic" and public["verified"] is False
    async with http.get(f"{base(relay)}/s/acme") as resp:
        page = await resp.text()
    assert "Asked for a link, got it." in page and "Verified buyer" not in page
    invitation = invitations_of(relay)[0]
    assert invitation.method == "basic" and invitation.reminder_due_at is None  # no reminder


async def test_the_ticket_says_the_review_came_by_the_shop_s_link(
    relay: Daemon, sink: Sink, http: aiohttp.ClientSession
) -> None:
    await ask(http, relay, "/s/acme/write", email="ann@example.com")
    await drain(relay)
    token = review_link(mails_to(sink, "ann@example.com")[0])
    await submit(http, relay, token)
    await drain(relay)
    ticket = mails_to(sink, "support@acme.example")[0]
    assert re.search(r"Source:\s+shop's review link \(email confirmed, no order\)",
                     text_of(ticket))


async def test_a_flood_of_requests_for_one_address_sends_one_mail(
    relay: Daemon, sink: Sink, http: aiohttp.ClientSession
) -> None:
    answers = set()
    for _ in range(4):
        status, _text, resp = await ask(http, relay, "/s/acme/write", email="Ann@Example.com")
        answers.add((status, resp.headers["Location"]))
        await drain(relay)
    assert answers == {(303, "/s/acme/write/sent")}
    assert len(mails_to(sink, "Ann@example.com") + mails_to(sink, "ann@example.com")) == 1
    assert len(invitations_of(relay)) == 1


async def test_a_suppressed_or_invited_address_gets_the_same_answer_and_no_mail(
    relay: Daemon, sink: Sink, http: aiohttp.ClientSession
) -> None:
    now = relay.clock.now()
    await relay.store.write(lambda q: q.suppress("acme", "gone@example.com", now, "test"))
    await invite(relay, "known@example.com")
    fresh = await ask(http, relay, "/s/acme/write", email="new@example.com")
    suppressed = await ask(http, relay, "/s/acme/write", email="gone@example.com")
    known = await ask(http, relay, "/s/acme/write", email="known@example.com")
    assert {(s, r.headers["Location"], t) for s, t, r in (fresh, suppressed, known)} == {
        (303, "/s/acme/write/sent", fresh[1])}
    async with http.get(f"{base(relay)}/s/acme/write/sent") as resp:
        assert resp.status == 200 and "Check your email" in await resp.text()
        assert resp.headers["Cache-Control"] == "no-store"
    await drain(relay)
    assert mails_to(sink, "new@example.com")
    assert not mails_to(sink, "gone@example.com")
    assert [i.method for i in invitations_of(relay)] == ["manual", "basic"]


async def test_organic_and_embedded_requests_are_marked_so_and_a_form_field_cannot_say_otherwise(
    relay: Daemon, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{base(relay)}/s/acme") as resp:
        assert 'href="/s/acme/write?via=page">Write a review<' in await resp.text()
    status, _t, resp = await ask(http, relay, "/s/acme/write?via=page", email="o@example.com",
                                 method="automatic")
    assert status == 303 and resp.headers["Location"] == "/s/acme/write/sent?via=page"
    status, _t, resp = await ask(http, relay, "/s/bolt/write/embed", email="e@example.com",
                                 method="manual", via="page")
    assert status == 303 and resp.headers["Location"] == "/s/bolt/write/embed/sent"
    await ask(http, relay, "/s/acme/write?via=automatic", email="b@example.com")
    rows = {(i.customer_email, i.shop, i.method) for i in invitations_of(relay)}
    assert rows == {("o@example.com", "acme", "organic"), ("e@example.com", "bolt", "embedded"),
                    ("b@example.com", "acme", "basic")}


async def test_the_embedded_form_may_be_framed_only_by_each_shop_s_own_origins(
    relay: Daemon, http: aiohttp.ClientSession
) -> None:
    def ancestors(resp: aiohttp.ClientResponse) -> str:
        policy = resp.headers["Content-Security-Policy"]
        return re.search(r"frame-ancestors ([^;]+)", policy).group(1)  # type: ignore[union-attr]

    async with http.get(f"{base(relay)}/s/acme/write/embed") as resp:
        assert ancestors(resp) == ACME_ORIGIN
    async with http.get(f"{base(relay)}/s/bolt/write/embed") as resp:
        assert ancestors(resp) == " ".join(BOLT_ORIGINS)
    _s, _t, resp = await ask(http, relay, "/s/bolt/write/embed", email="e@example.com")
    assert ancestors(resp) == " ".join(BOLT_ORIGINS)  # the redirect, and the page it leads to
    async with http.get(f"{base(relay)}/s/bolt/write/embed/sent") as resp:
        assert ancestors(resp) == " ".join(BOLT_ORIGINS)
    for path in ("/s/acme/write", "/s/bolt/write?via=page", "/s/acme"):
        async with http.get(base(relay) + path) as resp:
            assert ancestors(resp) == "'none'", path


async def test_a_shop_without_embed_origins_lets_no_one_frame_its_form(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{base(daemon)}/s/acme/write/embed") as resp:
        assert resp.status == 200
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


async def test_a_post_without_its_csrf_token_or_with_another_form_s_is_refused(
    relay: Daemon, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{base(relay)}/s/acme/write", data={"email": "x@example.com"},
                         allow_redirects=False) as resp:
        assert resp.status == 403 and "This form has expired" in await resp.text()
    async with http.get(f"{base(relay)}/s/acme/write") as resp:
        basic_csrf = csrf_of(await resp.text())
    for path in ("/s/acme/write/embed", "/s/bolt/write", "/s/acme/write?via=page"):
        async with http.post(base(relay) + path, allow_redirects=False,
                             data={"email": "x@example.com", "csrf": basic_csrf}) as resp:
            assert resp.status == 403, path
    assert invitations_of(relay) == []


async def test_the_form_names_each_error_and_links_to_its_field(
    relay: Daemon, http: aiohttp.ClientSession
) -> None:
    status, html, _resp = await ask(http, relay, "/s/acme/write", email="not an address",
                                    name="x" * 81)
    assert status == 400
    assert '<a href="#email">Please enter an email address such as' in html
    assert '<a href="#name">The name can be at most 80 characters long.</a>' in html
    assert 'aria-invalid="true"' in html and 'aria-describedby="email-hint email-error"' in html
    assert "<script" not in html and invitations_of(relay) == []


async def test_a_filled_honeypot_gets_the_usual_answer_and_no_invitation(
    relay: Daemon, http: aiohttp.ClientSession
) -> None:
    status, _t, resp = await ask(http, relay, "/s/acme/write", email="bot@example.com",
                                 website="http://spam.example")
    assert status == 303 and resp.headers["Location"] == "/s/acme/write/sent"
    assert invitations_of(relay) == []


async def test_too_many_requests_from_one_address_are_refused_for_a_while(
    relay: Daemon, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    statuses = []
    for n in range(11):
        async with http.post(f"{base(relay)}/s/acme/write", data={"email": f"{n}@example.com"},
                             allow_redirects=False) as resp:
            statuses.append(resp.status)
            retry = resp.headers.get("Retry-After")
    assert statuses == [403] * 10 + [429] and retry is not None and int(retry) > 0
    clock.advance(timedelta(seconds=601))
    async with http.post(f"{base(relay)}/s/acme/write", data={"email": "z@example.com"},
                         allow_redirects=False) as resp:
        assert resp.status == 403  # refused for its missing token again, not for its rate


@pytest.mark.parametrize(("language", "subject", "unsubscribe"), [
    ("de-DE,de;q=0.9", "Ihr Link zur Bewertung von ACME Shoes", "Keine Bewertungs-E-Mails mehr"),
    ("da", "Dit link til at anmelde ACME Shoes", "Ikke flere anmeldelsesmails"),
    ("fr", "Votre lien pour donner votre avis sur ACME Shoes", "Ne plus recevoir les e-mails"),
    ("pt", "Your link to review ACME Shoes", "No more review emails"),
])
async def test_the_link_mail_follows_the_browser_s_language(
    relay: Daemon, sink: Sink, http: aiohttp.ClientSession, language: str, subject: str,
    unsubscribe: str,
) -> None:
    _s, _page, _r = await ask(http, relay, "/s/acme/write", headers={"Accept-Language": language},
                             email="kim@example.net")
    await drain(relay)
    mail = mails_to(sink, "kim@example.net")[0]
    assert mail["Subject"] == subject
    assert mail["Content-Language"] == language[:2].replace("pt", "en")
    html = mail.get_body(("html",))
    assert html is not None and unsubscribe in html.get_content()
    assert unsubscribe in text_of(mail) and "/u/" in text_of(mail)


async def test_reviews_and_export_filter_by_method_and_stats_count_each(
    relay: Daemon, sink: Sink, http: aiohttp.ClientSession
) -> None:
    manual = await invite(relay, "m@example.com")
    await submit(http, relay, manual.token, text="Came by the manual invite.")
    await ask(http, relay, "/s/acme/write?via=page", email="o@example.com")
    await drain(relay)
    await submit(http, relay, review_link(mails_to(sink, "o@example.com")[0]),
                 text="Came from the public page.")
    config = relay.config
    code, out = cli(config, "reviews", "--method", "organic", "--format", "json")
    assert code == 0, out
    assert [r["text"] for r in json.loads(out)] == ["Came from the public page."]
    code, out = cli(config, "reviews", "--method", "manual")
    assert code == 0 and "manual" in out and "Came from the public page." not in out
    code, out = cli(config, "export", "--method", "organic", "--format", "json")
    assert [r["method"] for r in json.loads(out)] == ["organic"]
    code, out = cli(config, "reviews", "--method", "verified")
    assert code == 2 and "basic" in out
    code, out = cli(config, "stats", "--shop", "acme", "--format", "json")
    figures = json.loads(out)[0]
    assert figures["reviews_by_method"]["organic"] == 1
    assert figures["reviews_by_method"]["manual"] == 1
    assert figures["reviews_by_method"]["basic"] == 0
    # The manual invitation is not due yet; the link mailed on request is no invitation.
    assert figures["invitations_sent"] == 0
    code, out = cli(config, "stats", "--shop", "acme", "--format", "table")
    assert "reviews: 2 (automatic 0, manual 1, link 0, organic 1)" in out


async def test_a_customer_on_a_phone_asks_for_a_link_from_the_public_page_and_reviews(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    """Chromium at phone width: "Write a review" on the public page, the form by keyboard
    (the honeypot never takes focus), "check your email", the mailed link, the review."""
    require_browser()
    async with Daemon(live(config, sink), clock) as daemon, browser_page() as page:
        site = daemon.config.http.base_url
        await page.goto(f"{site}/s/acme")
        await page.get_by_role("link", name="Write a review").click()
        assert page.url == f"{site}/s/acme/write?via=page"
        assert await page.locator("h1").inner_text() == "Write a review of ACME Shoes"
        assert await page.evaluate(
            "() => document.documentElement.scrollWidth <= window.innerWidth")
        await page.get_by_label("Your email address").click()
        await page.keyboard.type("ann@example.com")
        order = []
        for _ in range(3):
            await page.keyboard.press("Tab")
            order.append(await page.evaluate(
                "() => document.activeElement.name || document.activeElement.tagName"))
        assert order == ["name", "BUTTON", "A"]
        await screenshot(page, "collect-write-form-phone")
        await page.get_by_role("button", name="Send me the link").click()
        assert page.url == f"{site}/s/acme/write/sent?via=page"
        assert await page.locator("h1").inner_text() == "Check your email"
        await screenshot(page, "collect-write-sent-phone")
        await drain(daemon)
        match = re.search(rf"{re.escape(site)}/r/[A-Za-z0-9_\-.]+",
                          text_of(mails_to(sink, "ann@example.com")[0]))
        assert match
        await page.goto(match.group(0))
        assert await page.get_by_text("Verified buyer").count() == 0
        await page.locator("label[for=stars-4]").click()
        await page.get_by_label("Your review").fill("Asked on my phone, got the link.")
        await page.get_by_role("button", name="Send review").click()
        assert await page.locator("h1").inner_text() == "Thank you for your review!"
        review = daemon.store.read(lambda q: q.list_reviews())[0]
        assert (review.method, review.stars) == ("organic", 4)


AXE_VIOLATIONS = """async () => (await axe.run()).violations.map(v => v.id + ': ' +
    v.nodes.map(n => n.target.join(' ')).join(', '))"""


async def test_the_new_pages_have_no_axe_violations_on_a_phone_or_a_desktop(
    config: Config, clock: FrozenClock, sink: Sink
) -> None:
    """axe-core (WCAG rules) on the request form (empty, embedded, with errors), its answer and
    a shared review, at 360 and 1280 px."""
    require_browser()
    if importlib.util.find_spec("axe_playwright_python") is None:
        missing("axe-playwright-python not installed (the test extra has it)")
    import axe_playwright_python

    axe = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text("utf-8")
    async with Daemon(live(config, sink), clock) as daemon, aiohttp.ClientSession() as http:
        invitation = await invite(daemon, "ann@example.com")
        await submit(http, daemon, invitation.token)
        site = daemon.config.http.base_url
        for width in (360, 1280):
            async with browser_page(viewport={"width": width, "height": 800}) as page:
                for path in ("/s/acme/write", "/s/acme/write/embed", "/s/acme/write/sent",
                             "/s/acme/r/1", "errors"):
                    if path == "errors":
                        await page.goto(f"{site}/s/acme/write")
                        await page.fill("#email", "not an address")
                        await page.evaluate("document.querySelector('form').noValidate = true")
                        await page.click("button")
                        assert await page.locator("#error-summary").count() == 1
                    else:
                        await page.goto(site + path)
                    await page.evaluate(axe)  # by the driver: the pages' CSP allows no script
                    assert await page.evaluate(AXE_VIOLATIONS) == [], (width, path)


async def test_a_link_asked_for_at_night_leaves_at_once_outside_send_hours(
    make_config: ConfigFactory, clock: FrozenClock, sink: Sink, http: aiohttp.ClientSession
) -> None:
    clock.set(datetime(2026, 11, 20, 3, 0, tzinfo=UTC))
    config = make_config(more=second_shop(send_hours="09:00-17:00"))
    async with Daemon(via_sink(config, sink), clock) as daemon:
        await ask(http, daemon, "/s/bolt/write", email="owl@example.com")
        await drain(daemon)
        assert [m["X-Mailrelay-Shop"] for m in mails_to(sink, "owl@example.com")] == ["bolt"]
