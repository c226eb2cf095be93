"""Console inbox benchmark (issue 14): the store's inbox query and the whole inbox page with
100,000 reviews in one shop. Target: p95 under 100 ms on this machine.

The store is filled like a busy shop: most reviews answered, some reported, a few tagged, a
third rating a product. The query is timed in-process on a snapshot (`q.inbox`); the page over
HTTP from the running daemon (`Daemon` in-process, a logged-in session), unfiltered and with
each filter, and page 40 of the queue.

    .venv/bin/python bench/console_inbox.py [--reviews 100000] [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from benchconfig import relay_toml
from mailrelay.app import Daemon
from mailrelay.config import load
from mailrelay.services import accounts
from mailrelay.store import (
    InboxFilter,
    NewInvitation,
    NewProductReview,
    NewReview,
    Queries,
    ReviewText,
    Store,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
STARS = (5, 5, 5, 5, 5, 4, 4, 3, 2, 1)  # a shop's usual spread
CASES: dict[str, tuple[InboxFilter, int, str]] = {
    "all": (InboxFilter(), 1, ""),
    "stars=2": (InboxFilter(stars=2), 1, "stars=2"),
    "tag=late": (InboxFilter(tag="late"), 1, "tag=late"),
    "sku=BOOT-42": (InboxFilter(sku="BOOT-42"), 1, "sku=BOOT-42"),
    "q=crushed": (InboxFilter(search="crushed"), 1, "q=crushed"),
    "page 40": (InboxFilter(), 40, "page=40"),
}


def seed(path: Path, reviews: int) -> None:
    """`reviews` reviews of shop acme: 85 % answered, 1 % reported, 5 % tagged "late", a
    third rating the boot, one in fifty mentioning a crushed box."""
    def fill(q: Queries, first: int, last: int) -> None:
        for n in range(first, last):
            at = START + timedelta(minutes=5 * n)
            email = f"customer{n}@example.com"
            invitation = q.insert_invitation(NewInvitation(
                shop="acme", shipment_id=None, customer_email=email,
                customer_name=f"Customer {n}", reference=f"order-{n}", locale="en",
                method="manual", status="sent", token=f"bench-token-{n}", created_at=at,
                due_at=at))
            text = ("The box came crushed. " if n % 50 == 0 else "") + \
                "Packed with care and here two days early."
            review = q.insert_review(NewReview(
                shop="acme", invitation_id=invitation, method="manual",
                text=ReviewText(STARS[n % 10], f"Order {n}", text, f"Customer {n}"),
                customer_email=email, reference=f"order-{n}", locale="en", created_at=at))
            if n % 100 < 85:
                q.add_response(review, "Thank you!", "agent@acme.example", "agent", at)
            elif n % 100 == 85:
                q.report_review(review, "spam", at)
            if n % 20 == 0:
                q.add_tag(review, "late", at)
            if n % 3 == 0:
                q.save_product_reviews(review, "acme", [NewProductReview(
                    n=1, stars=STARS[n % 10], text="Warm and dry.", sku="BOOT-42",
                    name="Trail boot")], at)

    path.parent.mkdir(parents=True, exist_ok=True)
    with Store(path) as store:
        for first in range(0, reviews, 5000):
            last = min(reviews, first + 5000)
            store.write_sync(lambda q, a=first, b=last: fill(q, a, b))


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered) * 1000, p95 * 1000


def timed(step: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        step()
        samples.append(time.perf_counter() - began)
    return samples


async def measure(workdir: Path, runs: int) -> list[tuple[str, str, float, float]]:
    config_path = workdir / "relay.toml"
    config_path.write_text(relay_toml(store=str(workdir / "var" / "bench.db")))
    config = load(config_path)
    rows = []
    async with Daemon(config) as daemon:
        now = datetime.now(UTC)
        daemon.store.write_sync(lambda q: accounts.add_user(
            q, config, "agent@acme.example", "acme", "agent", now))
        user = daemon.store.read(lambda q: q.user_by_email("agent@acme.example"))
        assert user is not None
        token = daemon.store.write_sync(lambda q: accounts.start_session(q, user, now))
        for name, (wanted, page, _) in CASES.items():
            samples = timed(lambda w=wanted, p=page: daemon.store.read(
                lambda q: q.inbox("acme", w, 26, (p - 1) * 25)), runs)
            rows.append(("query", name, *percentiles(samples)))
        jar = aiohttp.CookieJar(unsafe=True)
        base = f"http://127.0.0.1:{daemon.http_port}"
        async with aiohttp.ClientSession(cookie_jar=jar, cookies={
                "mailrelay_console": token}) as http:
            for name, (_, _, query) in CASES.items():
                url = f"{base}/console/acme/?{query}"
                samples = []
                for _ in range(runs):
                    began = time.perf_counter()
                    async with http.get(url, allow_redirects=False) as resp:
                        await resp.read()
                        assert resp.status == 200, (url, resp.status)
                    samples.append(time.perf_counter() - began)
                rows.append(("page", name, *percentiles(samples)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailrelay-bench-") as tmp:
        workdir = Path(tmp)
        began = time.perf_counter()
        seed(workdir / "var" / "bench.db", args.reviews)
        print(f"seeded {args.reviews} reviews in {time.perf_counter() - began:.1f} s")
        rows = asyncio.run(measure(workdir, args.runs))
    print(f"{'what':6} {'case':12} {'p50 ms':>8} {'p95 ms':>8}")
    for what, name, p50, p95 in rows:
        print(f"{what:6} {name:12} {p50:8.1f} {p95:8.1f}")
    worst = max(p95 for _, _, _, p95 in rows)
    print(f"worst p95 {worst:.1f} ms: {'within' if worst < 100 else 'OVER'} the 100 ms target")


if __name__ == "__main__":
    main()
