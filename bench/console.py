"""Console benchmark (issue 14): the agents' inbox and the owners' dashboard with 100,000
reviews stored. Target: p95 under 100 ms for each row.

Fills a fresh store with 100,000 reviews over 60 weeks in four shops (acme has 40 % of them),
with the invitations and shipments they came from (and the shipments that were skipped),
realistic stars (mostly 5), answers by people and automatic ones, tags and product ratings.
Then runs mailrelay's daemon, logs in as acme's owner over HTTP, and times sequential requests:
the inbox's store query (`q.inbox`: a page and the counts per star, on a snapshot) and the
inbox page over HTTP, unfiltered, with each filter and far down the queue; the dashboard for
each period; a CSV; the invitations ledger and a search of it. One table: p50, p95, max.

    .venv/bin/python bench/console.py [--reviews 100000] [--requests 60] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from benchconfig import relay_toml
from mailrelay.app import Daemon
from mailrelay.config import Config, load
from mailrelay.services import accounts
from mailrelay.store import (
    InboxFilter,
    NewInvitation,
    NewProductReview,
    NewReview,
    Queries,
    ReviewText,
)
from mailrelay.store.rows import NewMessage, NewShipment

SHOPS = {"acme": 0.4, "bolt": 0.2, "cove": 0.2, "dune": 0.2}
OWNER = "owner@acme.example"
PASSWORD = "a bench password, long enough"  # noqa: S105 - made up for the run
WEEKS = 60
STARS = (1, 2, 3, 4, 5)
STAR_WEIGHTS = (9, 6, 10, 20, 55)
TAGS = ("late delivery", "damaged", "wrong item", "size", "refund", "quality", "service",
        "praise")
SKIPPED = (("duplicate", 8), ("capped", 5), ("suppressed", 4), ("rejected", 3))
TARGET_MS = 100.0
#: The inbox's cases: its filters as the store gets them and as the page's query string.
INBOX_CASES: dict[str, tuple[InboxFilter, int, str]] = {
    "all": (InboxFilter(), 1, ""),
    "stars=2": (InboxFilter(stars=2), 1, "stars=2"),
    "tag": (InboxFilter(tag="late delivery"), 1, "tag=late+delivery"),
    "sku": (InboxFilter(sku="SKU-42"), 1, "sku=SKU-42"),
    "q=crushed": (InboxFilter(search="crushed"), 1, "q=crushed"),
    "page 40": (InboxFilter(), 40, "page=40"),
}
INBOX_PAGE_SIZE = 25
SHOP_TOML = """
[[shop]]
id = "{id}"
name = "{name}"
bcc_address = "reviews+{id}@relay.test"
from = "{name} <reviews@{id}.example>"
reply_address = "reply@relay.test"
agents = ["help@{id}.example"]
invite_delay = "7d"
send_hours = ""
timezone = "Europe/Berlin"
"""


class Filler:
    """Writes one shop's made-up history through the store's own statements."""

    def __init__(self, q: Queries, rng: random.Random, now: datetime, start: int,
                 expected: int) -> None:
        self.q, self.rng, self.now, self.n, self.expected = q, rng, now, start, expected

    def _when(self) -> datetime:
        """Orders come in over the weeks in the order of their ids, as in a real store (a few
        hours of jitter), so ids and times grow together."""
        share = min(1.0, self.n / self.expected)
        return self.now - timedelta(weeks=WEEKS) * (1 - share) - timedelta(
            hours=self.rng.uniform(0, 6))

    def _shipment(self, shop: str, at: datetime, status: str) -> int:
        self.n += 1
        message = self.q.insert_message(NewMessage(
            received_at=at, peer="127.0.0.1", mail_from="orders@shop.example",
            rcpt=f"reviews+{shop}@relay.test", shop=shop, kind="shipment",
            message_id=None, dedupe_key=f"bench-{self.n}", raw=b""))
        assert message is not None
        self.q.claim_message(message, at, "bench")  # read already: not the daemon's work
        return self.q.insert_shipment(NewShipment(
            message_row_id=message, shop=shop, received_at=at, message_id=None,
            sender="orders@shop.example", customer_email=f"buyer{self.n}@example.com",
            customer_name=f"Buyer {self.n}", reference=f"{shop}-{self.n}", reference_rule=None,
            locale="de", send_at=None, tags=(), products=(), source="bcc", defects=(),
            status=status, reason="ok" if status == "scheduled" else f"bench: {status}"))

    def skipped(self, shop: str) -> None:
        at = self._when()
        status = self.rng.choices([s for s, _ in SKIPPED], [w for _, w in SKIPPED])[0]
        self._shipment(shop, at, status)

    def reviewed_order(self, shop: str) -> None:
        shipped = self._when()
        written = shipped + timedelta(days=self.rng.uniform(8, 20))
        shipment = self._shipment(shop, shipped, "scheduled")
        invitation = self.q.insert_invitation(NewInvitation(
            shop=shop, shipment_id=shipment, customer_email=f"buyer{self.n}@example.com",
            customer_name=f"Buyer {self.n}", reference=f"{shop}-{self.n}", locale="de",
            method="automatic", status="sent", token=f"bench-token-{self.n}",
            created_at=shipped, due_at=shipped + timedelta(days=7),
            sent_at=shipped + timedelta(days=7)))
        written = min(written, self.now - timedelta(hours=self.rng.uniform(1, 24)))
        if self.rng.random() < 0.35:
            return  # invited, never reviewed
        stars = self.rng.choices(STARS, STAR_WEIGHTS)[0]
        review = self.q.insert_review(NewReview(
            shop=shop, invitation_id=invitation, method="automatic",
            text=ReviewText(stars, "Bench title", ("The box came crushed. " if self.n % 50 == 0
                                                   else "") + "Words of a made-up customer " * 4,
                            f"Buyer {self.n}"),
            customer_email=f"buyer{self.n}@example.com", reference=f"{shop}-{self.n}",
            locale="de", created_at=written))
        self.q.link_review(invitation, review)
        self._annotate(shop, review, stars, written)

    def _annotate(self, shop: str, review: int, stars: int, written: datetime) -> None:
        rng = self.rng
        if rng.random() < 0.2:
            self.q.add_response(review, "Danke!", "auto", "auto", written)
        if rng.random() < 0.7:
            self.q.add_response(review, "Liebe Kundin, lieber Kunde", "agent@shop.example",
                                "agent", written + timedelta(hours=rng.uniform(0.2, 72)))
        if rng.random() < 0.25:
            self.q.add_tag(review, rng.choice(TAGS), written)
        if rng.random() < 0.6:
            skus = rng.sample(range(300), rng.choice((1, 1, 2)))
            self.q.save_product_reviews(review, shop, [
                NewProductReview(n=i, stars=max(1, min(5, stars + rng.choice((-1, 0, 0, 1)))),
                                 text=None, sku=f"SKU-{sku}", name=f"Product {sku}")
                for i, sku in enumerate(skus, start=1)], written)
        if rng.random() < 0.01:
            self.q.report_review(review, "abuse", written + timedelta(hours=1))


def write_config(folder: Path) -> Config:
    text = relay_toml(store=str(folder / "bench.db"), secret_file=str(folder / "secret.key"),
                      outbound=f'transport = "maildir"\nmaildir = "{folder / "outbox"}"')
    text += "".join(SHOP_TOML.format(id=shop, name=shop.title()) for shop in SHOPS
                    if shop != "acme")
    path = folder / "relay.toml"
    path.write_text(text)
    return load(path)


def fill(daemon: Daemon, reviews: int, now: datetime) -> None:
    """About `reviews` reviews (orders are drawn until that many were written)."""
    rng = random.Random(14)
    batch = 2000
    written = 0
    n = 0
    while written < reviews:
        def step(q: Queries, start: int = n) -> int:
            filler = Filler(q, rng, now, start, expected=int(reviews * 1.95))
            for _ in range(batch):
                shop = rng.choices(list(SHOPS), list(SHOPS.values()))[0]
                filler.reviewed_order(shop)
                if rng.random() < 0.25:
                    filler.skipped(shop)
            return filler.n
        n = daemon.store.write_sync(step)
        written = sum(daemon.store.read(lambda q: q.counts("reviews", "shop")).values())
        print(f"\r  {written:,} reviews", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


async def log_in(daemon: Daemon, config: Config, http: aiohttp.ClientSession) -> None:
    now = datetime.now(UTC)
    link = daemon.store.write_sync(
        lambda q: accounts.add_user(q, config, OWNER, "acme", "owner", now))
    token = link.rsplit("/", 1)[1]
    daemon.store.write_sync(lambda q: accounts.set_password(q, token, PASSWORD, now))
    base = f"http://127.0.0.1:{daemon.http_port}"
    async with http.get(base + "/console/login") as resp:
        found = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert found
    async with http.post(base + "/console/login", allow_redirects=False, data={
            "csrf": found.group(1), "email": OWNER, "password": PASSWORD}) as resp:
        assert resp.status == 303, resp.status


async def timed(call: Callable[[], Awaitable[None]], count: int) -> list[float]:
    for _ in range(3):
        await call()  # warm: templates compiled, pages of the file cached
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def get(http: aiohttp.ClientSession, url: str) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        async with http.get(url, allow_redirects=False) as resp:
            assert resp.status == 200, (url, resp.status)
            await resp.read()
    return call


def inbox_query(daemon: Daemon, wanted: InboxFilter, page: int) -> Callable[[], Awaitable[None]]:
    """The inbox's store query as the page runs it: one page (and one more row) and the counts."""
    async def call() -> None:
        await daemon.store.aread(lambda q: q.inbox(
            "acme", wanted, INBOX_PAGE_SIZE + 1, (page - 1) * INBOX_PAGE_SIZE))
    return call


async def measure(config: Config, reviews: int, count: int) -> list[tuple[str, list[float]]]:
    async with Daemon(config) as daemon:
        started = time.perf_counter()
        if not daemon.store.read(lambda q: q.counts("reviews", "shop")):
            fill(daemon, reviews, datetime.now(UTC))
        print(f"  filled in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        base = f"http://127.0.0.1:{daemon.http_port}/console/acme"
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            await log_in(daemon, config, http)
            targets = [(f"inbox query {name}", inbox_query(daemon, wanted, page))
                       for name, (wanted, page, _) in INBOX_CASES.items()]
            targets += [(f"inbox {name} (HTTP)", get(http, f"{base}/?{query}"))
                        for name, (_, _, query) in INBOX_CASES.items()]
            targets += [(f"dashboard {weeks} weeks (HTTP)",
                         get(http, f"{base}/dashboard?weeks={weeks}")) for weeks in (4, 12, 52)]
            targets += [
                ("reviews.csv 52 weeks (HTTP)",
                 get(http, f"{base}/dashboard/reviews.csv?weeks=52")),
                ("invitations ledger (HTTP)", get(http, f"{base}/ledgers/invitations")),
                ("ledger search (HTTP)", get(http, f"{base}/ledgers/invitations?q=buyer12")),
            ]
            return [(name, await timed(call, count)) for name, call in targets]


def percentile(times: list[float], share: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="10,000 reviews, 20 requests")
    parser.add_argument("--keep", type=Path, help="a folder for the store, kept and reused "
                        "by the next run (filled only when empty)")
    args = parser.parse_args()
    reviews, count = (10_000, 20) if args.quick else (args.reviews, args.requests)
    with tempfile.TemporaryDirectory(prefix="mailrelay-console-bench-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        config = write_config(folder)
        results = asyncio.run(measure(config, reviews, count))
    print(f"{reviews:,} reviews in 4 shops (acme: 40 %), {count} sequential requests each;"
          f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'what':<32} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  target p95 < {TARGET_MS:.0f}")
    failed = False
    for name, times in results:
        p95 = percentile(times, 0.95)
        failed |= p95 >= TARGET_MS
        print(f"{name:<32} {statistics.median(times):8.1f} {p95:8.1f} {max(times):8.1f}"
              f"  {'ok' if p95 < TARGET_MS else 'SLOW'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
