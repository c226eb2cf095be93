"""The review form and the public review pages, over HTTP against the whole daemon."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.core.clock import FrozenClock
from mailrelay.core.tokens import REVIEW, UNSUBSCRIBE
from mailrelay.edges.web.i18n import I18N, accept_languages
from mailrelay.edges.web.ratelimit import RateLimiter, client_key
from mailrelay.services import invitations, reviews
from mailrelay.store import InvitationRow

from .conftest import ConfigFactory
from .mailtools import send, settle, trigger
from .web_forms import base, csrf_of, flip, form_page, invite, post, stored_reviews, submit

XSS_1 = "<script>alert(1)</script>"
XSS_2 = "</script><script>alert(2)</script>"
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


# --- helpers ------------------------------------------------------------------------------------


class Page(HTMLParser):
    """Just enough of the DOM to check structure: every start tag with its attributes and text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self._script: dict[str, str] | None = None
        self._text: list[str] = []
        self.texts: dict[str, str] = {}  # element id → its text
        self._open: list[tuple[str, str | None, int]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script = attributes
            self._text = []
        if tag not in ("input", "meta", "br", "link"):
            self._open.append((tag, attributes.get("id"), len(self._text)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None
        while self._open:
            open_tag, element_id, start = self._open.pop()
            if element_id:
                self.texts[element_id] = " ".join("".join(self._text[start:]).split())
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags
                if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]


async def link_invitation(daemon: Daemon, email: str = "link@example.com") -> InvitationRow:
    shop = daemon.config.shop("acme")
    assert shop is not None
    now = daemon.clock.now()
    inv_id, _token, _new = await daemon.store.write(lambda q: invitations.generate_link(
        q, shop, daemon.web.signer, now, email=email, name="Linda Link"))
    row = daemon.store.read(lambda q: q.get_invitation(inv_id))
    assert row is not None
    return row


async def add_review(daemon: Daemon, n: int, stars: int = 5, title: str = "",
                     text: str | None = None, name: str = "") -> int:
    """A stored review through the service (no HTTP), for the public page tests."""
    inv = await invite(daemon, email=f"customer{n}@example.com", name=f"Customer {n}")
    form = reviews.ReviewForm(stars, title or f"Title {n}", text or f"Review number {n}",
                              name or f"Customer {n}")
    now = daemon.clock.now()
    outcome, review_id = await daemon.store.write(
        lambda q: reviews.submit_review(q, inv, form, now))
    assert outcome == reviews.SubmitOutcome.CREATED and review_id is not None
    if isinstance(daemon.clock, FrozenClock):
        daemon.clock.advance(timedelta(minutes=1))  # distinct created_at: a stable order
    return review_id


# --- the review form ----------------------------------------------------------------------------


async def test_the_form_is_prefilled_with_the_customers_name_and_carries_a_csrf_field(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    inv = await invite(daemon)
    async with http.get(f"{base(daemon)}/r/{inv.token}") as resp:
        assert resp.status == 200
        html = await resp.text()
        assert resp.headers["Content-Security-Policy"] == CSP
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Cache-Control"] == "no-store"
    page = Page(html)
    assert page.find("input", name="name")[0]["value"] == "John Smith"
    [csrf] = page.find("input", name="csrf")
    assert csrf["type"] == "hidden"
    assert daemon.web.signer.form_token_valid(
        csrf["value"], inv.token, int(daemon.clock.now().timestamp()), 3600)
    assert page.find("meta", name="viewport")
    assert "Verified buyer" in html


async def test_the_form_is_accessible_one_h1_labelled_inputs_and_real_star_radios(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    inv = await invite(daemon)
    page = Page(await form_page(http, daemon, inv.token))
    assert len(page.find("h1")) == 1
    assert page.find("html")[0]["lang"] == "en"
    label_for = {a["for"] for a in page.find("label")}
    fields = [a for a in page.find("input") if a.get("type") != "hidden"] + page.find("textarea")
    assert fields and all(a["id"] in label_for for a in fields)
    radios = page.find("input", type="radio", name="stars")
    assert [r["value"] for r in radios] == ["1", "2", "3", "4", "5"]
    assert page.find("fieldset") and page.find("legend")
    html = await form_page(http, daemon, inv.token)
    for n, label in enumerate(["1 star", "2 stars", "3 stars", "4 stars", "5 stars"], start=1):
        assert re.search(rf'<label for="stars-{n}">.*?{label}</span></label>', html)
    assert ":focus-visible" in html


async def test_posting_the_form_stores_the_review_and_thanks_the_customer(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    calls: list[int] = []
    daemon.web.on_review = lambda: calls.append(1)
    inv = await invite(daemon)
    status, html = await submit(http, daemon, inv.token, text="Great fit.\nFast delivery.")
    assert status == 200
    assert "Thank you for your review!" in html
    assert "http://reviews.test/s/acme#review-" in html
    assert "Verified buyer" in html
    [row] = stored_reviews(daemon)
    assert (row.stars, row.title, row.text, row.reviewer_name) == (
        4, "Good shoes", "Great fit.\nFast delivery.", "John S.")
    assert row.method == "manual"
    assert calls == [1]


async def test_a_second_post_edits_the_same_review_and_the_form_shows_it_again(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    inv = await invite(daemon)
    assert (await submit(http, daemon, inv.token))[0] == 200
    html = await form_page(http, daemon, inv.token)
    page = Page(html)
    assert page.find("input", name="stars", value="4")[0].get("checked") == ""
    assert page.find("input", name="title")[0]["value"] == "Good shoes"
    assert page.find("input", name="name")[0]["value"] == "John S."
    assert "They fit well." in html
    assert "You can change your review until ACME Shoes answers it." in html
    status, html = await submit(http, daemon, inv.token, stars="2", text="Sole came off.")
    assert status == 200
    assert "Your review was updated" in html
    [row] = stored_reviews(daemon)
    assert (row.stars, row.text) == (2, "Sole came off.")


async def test_an_answered_review_can_no_longer_be_changed(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    inv = await invite(daemon)
    csrf = csrf_of(await form_page(http, daemon, inv.token))
    data = {"stars": "5", "title": "", "text": "Lovely.", "name": "J", "csrf": csrf}
    assert (await post(http, daemon, inv.token, data))[0] == 200
    [row] = stored_reviews(daemon)
    now = daemon.clock.now()
    await daemon.store.write(lambda q: q.add_response(row.id, "Thanks", "agent@x", "agent",
                                                      now))
    status, html, _resp = await post(http, daemon, inv.token, {**data, "text": "Changed."})
    assert status == 409
    assert "already answered your review" in html
    [row] = stored_reviews(daemon)
    assert row.text == "Lovely."
    async with http.get(f"{base(daemon)}/r/{inv.token}") as resp:
        assert resp.status == 200
        assert "This review has been answered" in await resp.text()


async def test_forged_and_altered_tokens_get_a_friendly_404(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    inv = await invite(daemon)
    signer = daemon.web.signer
    unknown = signer.issue(REVIEW)  # correctly signed, but no such invitation
    other_purpose = signer.convert(inv.token, REVIEW, UNSUBSCRIBE)
    assert other_purpose is not None
    for token in (flip(inv.token), flip(inv.token, -1), "nonsense", unknown,
                  other_purpose, "é" * 10):
        async with http.get(f"{base(daemon)}/r/{token}") as resp:
            assert resp.status == 404, token
            html = await resp.text()
            assert "This link is not valid." in html
            assert "Traceback" not in html
            assert resp.headers["Referrer-Policy"] == "no-referrer"
        status, _html, _resp = await post(http, daemon, token, {"stars": "5", "text": "xx"})
        assert status == 404
    assert stored_reviews(daemon) == []


async def test_cancelled_erased_and_year_old_invitations_get_410(
    daemon: Daemon, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    cancelled = await invite(daemon, email="cancel@example.com")
    await daemon.store.write(lambda q: q.cancel_invitation(cancelled.id, "order returned"))
    erased = await link_invitation(daemon, email="erased@example.com")
    await daemon.store.write(lambda q: q.purge_before("acme", clock.now() + timedelta(days=1)))
    for token in (cancelled.token, erased.token):
        async with http.get(f"{base(daemon)}/r/{token}") as resp:
            assert resp.status == 410
            assert "This review link has expired" in await resp.text()
        status, _html, _resp = await post(http, daemon, token, {"stars": "5", "text": "xx"})
        assert status == 410
    old = await invite(daemon, email="old@example.com")
    assert (await form_page(http, daemon, old.token))
    clock.advance(timedelta(days=366))
    async with http.get(f"{base(daemon)}/r/{old.token}") as resp:
        assert resp.status == 410
    assert stored_reviews(daemon) == []


async def test_a_missing_wrong_or_stale_csrf_token_is_refused_and_nothing_is_stored(
    daemon: Daemon, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    inv = await invite(daemon)
    other = await invite(daemon, email="other@example.com")
    token = inv.token
    good = csrf_of(await form_page(http, daemon, token))
    foreign = csrf_of(await form_page(http, daemon, other.token))
    data = {"stars": "3", "title": "Mine", "text": "Kept text", "name": "J"}
    for csrf in (None, "", "garbage", "123.abc", "²³.x", good[:-2] + "xx", foreign):
        fields = dict(data) if csrf is None else {**data, "csrf": csrf}
        status, html, resp = await post(http, daemon, token, fields)
        assert status == 403, csrf
        page = Page(html)
        assert "your review was not saved" in html
        assert page.find("a", href=f"/r/{token}")  # a fresh form
        assert page.find("div", role="alert")
        assert page.find("input", name="title")[0]["value"] == "Mine"
        assert page.find("input", name="csrf")[0]["value"] != csrf
        assert resp.headers["Content-Security-Policy"] == CSP
    clock.advance(timedelta(hours=24, seconds=1))
    status, _html, _resp = await post(http, daemon, token, {**data, "csrf": good})
    assert status == 403
    assert stored_reviews(daemon) == []


async def test_invalid_input_is_explained_next_to_each_field_and_kept(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    inv = await invite(daemon)
    long_title = "T" * (reviews.MAX_TITLE + 1)
    status, html = await submit(http, daemon, inv.token, stars="", title=long_title,
                                text=" ", name="Jo & <b>Jo</b>")
    assert status == 400
    page = Page(html)
    [summary] = page.find("div", role="alert")
    assert summary["id"] == "error-summary"
    assert "Please choose from 1 to 5 stars." in page.texts["error-summary"]
    assert "Please write a few words about your experience." in page.texts["error-summary"]
    assert f"at most {reviews.MAX_TITLE} characters" in page.texts["title-error"]
    title = page.find("input", name="title")[0]
    assert (title["value"], title["aria-invalid"], title["aria-describedby"]) == (
        long_title, "true", "title-error")
    text = page.find("textarea", name="text")[0]
    assert text["aria-invalid"] == "true"
    assert text["aria-describedby"] == "text-hint text-error"
    assert all(r["aria-invalid"] == "true" and r["aria-describedby"] == "stars-error"
               for r in page.find("input", type="radio"))
    name = page.find("input", name="name")[0]
    assert name["value"] == "Jo & <b>Jo</b>" and "aria-invalid" not in name
    assert "&lt;b&gt;Jo&lt;/b&gt;" in html
    assert page.find("a", href="#stars-1") and page.find("a", href="#text")
    assert stored_reviews(daemon) == []
    status, html = await submit(http, daemon, inv.token, text="x")
    assert status == 400
    assert f"at least {reviews.MIN_TEXT} characters" in html


async def test_too_many_posts_per_token_or_per_address_get_429_with_retry_after(
    daemon: Daemon, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    inv = await invite(daemon)
    for _ in range(10):
        status, _html, _resp = await post(http, daemon, inv.token, {"stars": "9"})
        assert status == 403
    status, html, resp = await post(http, daemon, inv.token, {"stars": "9"})
    assert status == 429
    assert "Too many attempts" in html
    assert 1 <= int(resp.headers["Retry-After"]) <= 600
    # Other invitations from the same address have room until the address's own limit (30).
    others = [await invite(daemon, email=f"other{n}@example.com") for n in range(3)]
    for n in range(20):
        status, _html, _resp = await post(http, daemon, others[n % 3].token, {})
        assert status == 403
    status, _html, resp = await post(http, daemon, others[0].token, {})
    assert status == 429
    assert "Retry-After" in resp.headers
    clock.advance(timedelta(minutes=10, seconds=1))
    assert (await submit(http, daemon, inv.token))[0] == 200


async def test_a_german_invitation_gets_a_german_form(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    inv = await invite(daemon, locale="de-DE")
    html = await form_page(http, daemon, inv.token)
    page = Page(html)
    assert page.find("html")[0]["lang"] == "de"
    assert "Bewerten Sie Ihre Bestellung bei ACME Shoes" in html
    assert "1 Stern<" in html and "5 Sterne<" in html
    assert "Verifizierter Kauf" in html
    status, html = await submit(http, daemon, inv.token, text="")
    assert status == 400
    assert "Bitte schreiben Sie ein paar Worte" in html
    status, html = await submit(http, daemon, inv.token)
    assert "Vielen Dank für Ihre Bewertung!" in html


async def test_a_danish_shop_speaks_danish_and_generated_links_are_not_verified(
    make_config: ConfigFactory, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    async with Daemon(make_config(shop_extra='locale = "da"'), clock) as daemon:
        inv = await link_invitation(daemon)
        html = await form_page(http, daemon, inv.token)
        assert "Anmeld din ordre hos ACME Shoes" in html
        assert "3 stjerner" in html
        assert "Verificeret køb" not in html
        status, html = await submit(http, daemon, inv.token)
        assert status == 200
        assert "Tak for din anmeldelse!" in html and "Verificeret køb" not in html
        async with http.get(f"{base(daemon)}/s/acme") as resp:
            page = await resp.text()
        assert "Anmeldelser af ACME Shoes" in page and "4,0 ud af 5" in page
        assert "Verificeret køb" not in page


async def test_a_german_trigger_gets_a_german_form_and_unsubscribe_page(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    """Issue 12: the locale read from a German shipping email reaches the customer's pages."""
    await send(daemon, trigger(to="Klaus Müller <klaus@example.de>", subject="Bestellung #1057",
                               body="Vielen Dank für Ihre Bestellung. Ihr Paket wurde heute "
                                    "versandt und kommt in zwei Tagen an."))
    await settle(daemon)
    inv = daemon.store.read(lambda q: q.get_invitation(1))
    assert inv is not None and inv.locale == "de"
    html = await form_page(http, daemon, inv.token)
    assert Page(html).find("html")[0]["lang"] == "de"
    assert "Bewerten Sie Ihre Bestellung bei ACME Shoes" in html
    token = daemon.web.signer.convert(inv.token, REVIEW, UNSUBSCRIBE)
    async with http.get(f"{base(daemon)}/u/{token}") as resp:
        assert "Abmelden" in await resp.text()


async def test_a_generated_link_follows_the_browser_s_accept_language(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    inv = await link_invitation(daemon)
    pages = {}
    for header in ("pt-PT, da;q=0.9, en;q=0.5", "de-AT", "pt, *;q=0.1", ""):
        async with http.get(f"{base(daemon)}/r/{inv.token}",
                            headers={"Accept-Language": header}) as resp:
            pages[header] = Page(await resp.text()).find("html")[0]["lang"]
    assert pages == {"pt-PT, da;q=0.9, en;q=0.5": "da", "de-AT": "de", "pt, *;q=0.1": "en",
                     "": "en"}
    # The review is in the language the form spoke (its auto-response and ticket follow it).
    http.cookie_jar.clear()
    csrf = csrf_of(await (await http.get(f"{base(daemon)}/r/{inv.token}",
                                         headers={"Accept-Language": "de"})).text())
    async with http.post(f"{base(daemon)}/r/{inv.token}", headers={"Accept-Language": "de"},
                         data={"stars": "5", "title": "Gut", "text": "Passt.", "name": "L",
                               "csrf": csrf}) as resp:
        assert "Vielen Dank für Ihre Bewertung!" in await resp.text()
    [review] = stored_reviews(daemon)
    assert review.locale == "de"
    # An invitation with a locale of its own keeps it, whatever the browser says.
    german = await invite(daemon, email="k@example.de", locale="de")
    async with http.get(f"{base(daemon)}/r/{german.token}",
                        headers={"Accept-Language": "da"}) as resp:
        assert Page(await resp.text()).find("html")[0]["lang"] == "de"


def test_accept_language_is_read_by_weight() -> None:
    assert accept_languages("en;q=0.5, da, de;q=0.8, fr;q=0, *") == ["da", "de", "en"]
    assert accept_languages("da;q=bad, nl") == ["nl"]
    assert accept_languages(None) == []


def test_every_locale_has_every_english_text() -> None:
    for path in I18N.glob("*.json"):
        # <locale>.json beside en.json, <locale>.<area>.json beside en.<area>.json (issue 13)
        area = path.name.split(".", 1)[1]
        english = json.loads((I18N / f"en.{area}").read_text(encoding="utf-8"))
        table = json.loads(path.read_text(encoding="utf-8"))
        # Plural forms beyond one/other (fr "many", pl "few"/"many"): tests/test_locales.py.
        forms = {key for key in table if key.rpartition("_")[2] in ("zero", "two", "few", "many")
                 and key.rpartition("_")[0] + "_other" in english}
        assert set(table) - forms == set(english), path.name


# --- the public pages ---------------------------------------------------------------------------


async def test_the_public_page_shows_reviews_and_responses_and_hides_reported_ones(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    first = await add_review(daemon, 1, stars=5, title="Perfect", text="Line one\nLine two")
    second = await add_review(daemon, 2, stars=2, title="Too small")
    hidden = await add_review(daemon, 3, stars=1, title="Spam spam")
    now = daemon.clock.now()
    await daemon.store.write(lambda q: q.add_response(second, "Sorry!\nWe will exchange them.",
                                                      "agent@acme.example", "agent", now))
    await daemon.store.write(lambda q: q.report_review(hidden, "spam", now))
    async with http.get(f"{base(daemon)}/s/acme") as resp:
        assert resp.status == 200
        html = await resp.text()
        assert resp.headers["Cache-Control"] == "public, max-age=60"
        assert resp.headers["Content-Security-Policy"] == CSP
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    page = Page(html)
    assert len(page.find("h1")) == 1
    assert "Reviews of ACME Shoes" in page.texts.get("summary-title", "") or "Reviews of" in html
    assert "3.5 out of 5" in html and "2 reviews" in html
    assert "Line one\nLine two" in html
    assert "Perfect" in page.texts[f"review-{first}"]
    second_text = page.texts[f"review-{second}"]
    assert "Response from ACME Shoes" in second_text and "We will exchange them." in second_text
    assert "Verified buyer" in second_text and "Customer 2" in second_text
    assert "November 20, 2026" in second_text  # Babel's long date for "en"
    assert f"review-{hidden}" not in page.texts and "Spam spam" not in html
    assert html.index(f'id="review-{second}"') < html.index(f'id="review-{first}"')  # newest first
    [(_attrs, script)] = page.scripts
    data = json.loads(script)
    assert data["@type"] == "Organization" and data["name"] == "ACME Shoes"
    assert data["aggregateRating"] == {"@type": "AggregateRating", "ratingValue": 3.5,
                                       "reviewCount": 2, "bestRating": 5, "worstRating": 1}
    assert [r["name"] for r in data["review"]] == ["Too small", "Perfect"]
    assert data["review"][0]["author"] == {"@type": "Person", "name": "Customer 2"}
    assert data["review"][0]["reviewRating"]["ratingValue"] == 2
    assert data["review"][0]["datePublished"] == "2026-11-20"


async def test_a_shop_without_reviews_has_no_structured_data_and_unknown_shops_are_404(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{base(daemon)}/s/acme") as resp:
        assert resp.status == 200
        html = await resp.text()
    assert "No reviews yet." in html and "application/ld+json" not in html
    for path in ("/s/nope", "/s/nope/reviews.json", "/no/such/page"):
        async with http.get(f"{base(daemon)}{path}") as resp:
            assert resp.status == 404, path
            assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_public_page_paginates_ten_at_a_time_and_filters_by_stars(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    ids = [await add_review(daemon, n, stars=5 if n % 5 else 3) for n in range(1, 26)]
    newest_first = ids[::-1]
    seen: list[int] = []
    for number in (1, 2, 3):
        async with http.get(f"{base(daemon)}/s/acme", params={"page": str(number)}) as resp:
            assert resp.status == 200
            html = await resp.text()
        page = Page(html)
        shown = [int(k.split("-")[1]) for k in page.texts if re.fullmatch(r"review-\d+", k)]
        seen += sorted(shown, key=newest_first.index)
        assert f"Page {number} of 3" in html
        assert bool(page.find("a", rel="prev")) == (number > 1)
        assert bool(page.find("a", rel="next")) == (number < 3)
    assert seen == newest_first
    assert page.find("a", rel="prev")[0]["href"] == "/s/acme?page=2"
    async with http.get(f"{base(daemon)}/s/acme", params={"page": "4"}) as resp:
        assert resp.status == 404
    async with http.get(f"{base(daemon)}/s/acme", params={"stars": "3"}) as resp:
        html = await resp.text()
    page = Page(html)
    shown = [k for k in page.texts if re.fullmatch(r"review-\d+", k)]
    assert len(shown) == 5
    assert "Showing reviews with 3 stars." in html
    assert "Page 1 of" not in html  # one page only: no pagination
    assert "25 reviews" in html  # the summary is the whole shop's
    async with http.get(f"{base(daemon)}/s/acme", params={"stars": "3", "page": "2"}) as resp:
        assert resp.status == 404


async def test_reviews_json_matches_the_public_page(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    for n in range(1, 13):
        await add_review(daemon, n, stars=4 if n % 2 else 5)
    [newest] = daemon.store.read(lambda q: q.list_reviews(limit=1, newest_first=True))
    now = daemon.clock.now()
    await daemon.store.write(lambda q: q.add_response(newest.id, "Thank you", "a@acme.example",
                                                      "agent", now))
    async with http.get(f"{base(daemon)}/s/acme/reviews.json") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert resp.headers["Cache-Control"] == "public, max-age=60"
        data = await resp.json()
    assert data["shop"] == {"id": "acme", "name": "ACME Shoes"}
    assert data["summary"] == {"count": 12, "average": 4.5,
                               "distribution": {"1": 0, "2": 0, "3": 0, "4": 6, "5": 6}}
    assert (data["page"], data["pages"]) == (1, 2)
    assert len(data["reviews"]) == 10
    top = data["reviews"][0]
    assert set(top) == {"id", "stars", "title", "text", "reviewer_name", "created_at",
                        "verified", "method", "response"}
    assert top["id"] == newest.id and top["verified"] is True
    assert top["response"]["text"] == "Thank you" and top["response"]["created_at"]
    assert data["reviews"][1]["response"] is None
    async with http.get(f"{base(daemon)}/s/acme/reviews.json",
                        params={"page": "2", "stars": "4"}) as resp:
        assert resp.status == 404  # six 4-star reviews: one page
    async with http.get(f"{base(daemon)}/s/acme/reviews.json", params={"stars": "4"}) as resp:
        filtered = await resp.json()
    assert {r["stars"] for r in filtered["reviews"]} == {4} and len(filtered["reviews"]) == 6
    async with http.get(f"{base(daemon)}/s/acme/reviews.json", params={"page": "2"}) as resp:
        second = await resp.json()
    async with http.get(f"{base(daemon)}/s/acme", params={"page": "2"}) as resp:
        html = await resp.text()
    page = Page(html)
    shown = sorted(int(k.split("-")[1]) for k in page.texts if re.fullmatch(r"review-\d+", k))
    assert shown == sorted(r["id"] for r in second["reviews"])


async def test_script_in_a_review_is_inert_on_every_page(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    evil = f"{XSS_1} & {XSS_2}"
    inv = await invite(daemon, name=XSS_1)
    html = await form_page(http, daemon, inv.token)
    assert "<script>alert" not in html
    status, html = await submit(http, daemon, inv.token, stars="1", title=evil,
                                text=f"{evil}\nline two", name=evil)
    assert status == 200
    assert "<script>alert" not in html
    html = await form_page(http, daemon, inv.token)
    assert "<script>alert" not in html and "</script><script>" not in html
    async with http.get(f"{base(daemon)}/s/acme") as resp:
        html = await resp.text()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = Page(html)
    [(attrs, script)] = page.scripts  # the only script element is the JSON-LD
    assert attrs == {"type": "application/ld+json"}
    assert "\\u003c/script" in script and "</script" not in script.lower()
    assert "<" not in script and "&" not in script
    data = json.loads(script)
    [review] = data["review"]
    assert review["name"] == evil
    assert review["reviewBody"] == f"{evil}\nline two"
    assert review["author"]["name"] == evil
    async with http.get(f"{base(daemon)}/s/acme/reviews.json") as resp:
        raw = await resp.text()
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in raw and "</script" not in raw
    [item] = json.loads(raw)["reviews"]
    assert (item["title"], item["text"], item["reviewer_name"]) == (
        evil, f"{evil}\nline two", evil)


async def test_unsubscribe_pages_keep_working_with_security_headers(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    inv = await invite(daemon, locale="de")
    token = daemon.web.signer.convert(inv.token, REVIEW, UNSUBSCRIBE)
    async with http.get(f"{base(daemon)}/u/{token}") as resp:
        assert resp.status == 200
        assert "Abmelden" in await resp.text()
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert not daemon.store.read(lambda q: q.is_suppressed("acme", "john.smith@example.com"))
    async with http.post(f"{base(daemon)}/u/{token}",
                         data={"List-Unsubscribe": "One-Click"}) as resp:
        assert resp.status == 200
        assert "Sie sind abgemeldet" in await resp.text()
    assert daemon.store.read(lambda q: q.is_suppressed("acme", "john.smith@example.com"))
    async with http.get(f"{base(daemon)}/u/{inv.token}") as resp:  # a review token
        assert resp.status == 404


async def test_a_failure_shows_a_friendly_page_and_a_failing_wake_up_loses_nothing(
    daemon: Daemon, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = await invite(daemon)

    def broken() -> None:
        raise RuntimeError("ticket worker is gone")

    daemon.web.on_review = broken
    status, html = await submit(http, daemon, inv.token)
    assert status == 200 and "Thank you" in html
    assert len(stored_reviews(daemon)) == 1

    async def failing(token: str) -> tuple[None, None]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(daemon.web, "_review_target", failing)
    async with http.get(f"{base(daemon)}/r/{inv.token}") as resp:
        assert resp.status == 500
        html = await resp.text()
        assert resp.headers["Content-Security-Policy"] == CSP
    assert "Something went wrong" in html and "disk on fire" not in html


def test_rate_limits_count_an_ipv6_client_by_its_64_and_forget_after_the_window() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == client_key("192.0.2.7") == "ip:192.0.2.7"
    assert client_key(None) == "ip:-"
    limiter = RateLimiter(window=600)
    assert all(limiter.hit([("a", 3)], 1000.0 + n) is None for n in range(3))
    assert limiter.hit([("a", 3), ("b", 5)], 1010.0) == pytest.approx(590.0)
    assert limiter.hit([("b", 5)], 1010.0) is None  # a refused hit counted on no key
    assert limiter.hit([("a", 3)], 1600.5) is None


async def test_the_form_answers_303_so_a_reload_shows_the_thanks_without_posting_again(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    # Issue 12: a 200 to the POST made the browser's reload re-send the form.
    inv = await invite(daemon, locale="de")
    csrf = csrf_of(await form_page(http, daemon, inv.token))
    data = {"stars": "4", "title": "Gute Schuhe", "text": "Passen gut.", "name": "Jo",
            "csrf": csrf}
    async with http.post(f"{base(daemon)}/r/{inv.token}", data=data,
                         allow_redirects=False) as resp:
        assert resp.status == 303
        location = resp.headers["Location"]
        assert resp.headers["Cache-Control"] == "no-store"
    assert location == f"/r/{inv.token}/thanks"
    for _reload in range(2):
        async with http.get(f"{base(daemon)}{location}") as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "no-store"
            html = await resp.text()
        assert '<html lang="de"' in html
        assert "Vielen Dank für Ihre Bewertung" in html
        assert "Gute Schuhe" in html and "Passen gut." in html and "Jo" in html
    [row] = stored_reviews(daemon)
    assert row.edits == 0
    async with http.post(f"{base(daemon)}/r/{inv.token}", data={**data, "stars": "2"},
                         allow_redirects=False) as resp:
        assert resp.status == 303
    async with http.get(f"{base(daemon)}{location}") as resp:
        assert "Ihre Bewertung wurde aktualisiert" in await resp.text()


async def test_the_thanks_page_without_a_review_sends_back_to_the_form(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    inv = await invite(daemon)
    async with http.get(f"{base(daemon)}/r/{inv.token}/thanks",
                        allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == f"/r/{inv.token}"
    async with http.get(f"{base(daemon)}/r/{flip(inv.token)}/thanks") as resp:
        assert resp.status == 404
