"""Embeds benchmark: the widget, the badge and the product JSON against a static file, side by side.

A shop's product listing page asks for dozens of widgets at once. mailrelay (`mailrelay serve`,
its store filled with reviews) and a plain aiohttp server handing out a static file of the same
size (the ceiling for an aiohttp route on this machine) each run in their own process; one
asyncio load generator with N keep-alive clients asks them in turns, first for the body (200),
then with the ETag in If-None-Match (304). Targets: >= 0.5x the static file for 200s, >= 0.8x
for 304s. The same process also answers the bytes from memory (an aiohttp handler with its
own ETag and nothing else): a second, higher ceiling, shown for information.

    .venv/bin/python bench/embeds.py [--clients 32] [--seconds 3] [--rounds 2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from benchconfig import relay_toml
from ingest import MAILRELAY, Server, free_port
from mailrelay.store import NewInvitation, NewProductReview, NewReview, Queries, ReviewText, Store

HERE = Path(__file__).resolve()
SITE = "https://shop.bench.example"
REVIEWS = 300
SKU = "BOOT-42"
#: What is measured: a name and mailrelay's path (the product JSON falls back to the shop's
#: while the product routes are not there).
TARGETS = (("widget", "/s/acme/widget"), ("badge", "/s/acme/badge.svg"),
           ("product json", f"/s/acme/p/{SKU}/reviews.json"))
FALLBACK_JSON = "/s/acme/reviews.json"


async def serve_static(port: int, folder: Path) -> None:
    """The ceiling (run as `embeds.py --static-server PORT DIR` in its own process)."""
    from aiohttp import web

    async def from_memory(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in memory:
            memory[name] = (folder / name).read_bytes()
        body = memory[name]
        etag = f'"{len(body)}-{hash(body) & 0xFFFFFFFF:x}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, headers={"ETag": etag})

    memory: dict[str, bytes] = {}
    app = web.Application()
    app.router.add_get("/memory/{name}", from_memory)
    app.router.add_static("/", folder)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("static server ready", flush=True)
    await asyncio.Event().wait()


class StaticServer(Server):
    name = "static"
    ready_line = "static server ready"

    def command(self) -> list[str]:
        return [sys.executable, str(HERE), "--static-server", str(self.port),
                str(self.workdir / "files")]


class Mailrelay(Server):
    name = "mailrelay"
    ready_line = "mailrelay ready:"

    def command(self) -> list[str]:
        config = self.workdir / "relay.toml"
        text = relay_toml(smtp_listen=f"127.0.0.1:{free_port()}").replace(
            'listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{self.port}"', 1)
        config.write_text(text + f'embed_origins = ["{SITE}"]\n')
        seed(self.workdir / "var" / "bench.db")
        return [str(MAILRELAY), "serve", "--config", str(config), "--log-level", "INFO"]


def seed(path: Path) -> None:
    """REVIEWS reviews of shop acme, one in three rating the boot as well."""
    path.parent.mkdir(parents=True, exist_ok=True)
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def fill(q: Queries) -> None:
        for n in range(REVIEWS):
            at = start + timedelta(hours=n)
            email = f"customer{n}@example.com"
            invitation = q.insert_invitation(NewInvitation(
                shop="acme", shipment_id=None, customer_email=email,
                customer_name=f"Customer {n}", reference=f"order-{n}", locale="en",
                method="manual", status="sent", token=f"bench-token-{n}", created_at=at,
                due_at=at))
            review = q.insert_review(NewReview(
                shop="acme", invitation_id=invitation, method="manual",
                text=ReviewText(5 - n % 3, f"Order {n} arrived",
                                "Packed with care and here two days early. " * 3,
                                f"Customer {n}"),
                customer_email=email, reference=f"order-{n}", locale="en", created_at=at))
            if n % 3 == 0:
                q.save_product_reviews(review, "acme", [NewProductReview(
                    n=1, stars=4 + n % 2, text="Warm, dry and comfortable.", sku=SKU,
                    name="Trail boot")], at)

    with Store(path) as store:
        store.write_sync(fill)


@contextmanager
def started(server: Server) -> Iterator[Server]:
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@dataclass
class Result:
    rate: float
    status: int


async def hammer(url: str, headers: dict[str, str], clients: int, seconds: float) -> Result:
    """Requests per second from `clients` keep-alive clients asking back to back."""
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        statuses: set[int] = set()
        done = 0
        warm_until = time.monotonic() + min(0.5, seconds / 4)
        end = warm_until + seconds

        async def client() -> None:
            nonlocal done
            while (now := time.monotonic()) < end:
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    statuses.add(resp.status)
                if now >= warm_until:
                    done += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    assert len(statuses) == 1, statuses
    return Result(done / seconds, statuses.pop())


async def fetch(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.read(), resp.headers.get("ETag", "")


Row = tuple[str, str, int, float, float, float]


async def measure(args: argparse.Namespace, relay: Server, static: Server) -> list[Row]:
    """(target, "200"/"304", body size, mailrelay/s, static file/s, memory/s), each the best
    of the rounds."""
    rows = []
    files = static.workdir / "files"
    for name, path in TARGETS:
        url = f"http://127.0.0.1:{relay.port}{path}"
        status, body, etag = await fetch(url)
        if status == 404 and path.endswith(".json"):
            name, url = "shop json", f"http://127.0.0.1:{relay.port}{FALLBACK_JSON}"
            status, body, etag = await fetch(url)
        assert status == 200 and etag, (url, status)
        file_name = name.replace(" ", "-") + ".bin"
        (files / file_name).write_bytes(body)
        ceilings = [f"http://127.0.0.1:{static.port}/{file_name}",
                    f"http://127.0.0.1:{static.port}/memory/{file_name}"]
        ceiling_etags = [(await fetch(ceiling))[2] for ceiling in ceilings]
        for kind in ("200", "304"):
            best = [0.0, 0.0, 0.0]
            for _round in range(args.rounds):  # alternate: the machine's noise hits all alike
                runs = [(url, {"Origin": SITE, "If-None-Match": etag}),
                        *((ceiling, {"If-None-Match": tag})
                          for ceiling, tag in zip(ceilings, ceiling_etags, strict=True))]
                for i, (target, headers) in enumerate(runs):
                    if kind == "200":
                        headers.pop("If-None-Match")
                    run = await hammer(target, headers, args.clients, args.seconds)
                    assert str(run.status) == kind, (target, kind, run.status)
                    best[i] = max(best[i], run.rate)
            rows.append((name, kind, len(body), *best))
    return rows


def report(rows: list[Row], args: argparse.Namespace) -> bool:
    print(f"\n{platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {args.clients} clients, {args.seconds:g} s x {args.rounds} "
          "rounds (best), one load generator for all servers")
    print(f"{'target':<14}{'answer':>7}{'bytes':>7}{'mailrelay/s':>13}{'static/s':>10}"
          f"{'ratio':>7}{'target':>8}{'memory/s':>10}{'ratio':>7}")
    ok = True
    for name, kind, size, ours, static, memory in rows:
        goal = 0.5 if kind == "200" else 0.8
        ratio = ours / static if static else 0.0
        ok &= ratio >= goal
        print(f"{name:<14}{kind:>7}{size:>7}{ours:>13.0f}{static:>10.0f}{ratio:>7.2f}"
              f"{'>= ' + str(goal):>8}{memory:>10.0f}{ours / memory if memory else 0:>7.2f}"
              f"{'' if ratio >= goal else '  MISSED'}")
    return ok


async def main(args: argparse.Namespace) -> int:
    relay_dir = Path(tempfile.mkdtemp(prefix="bench-embeds-relay-"))
    static_dir = Path(tempfile.mkdtemp(prefix="bench-embeds-static-"))
    (static_dir / "files").mkdir()
    try:
        with started(Mailrelay(relay_dir)) as relay, started(StaticServer(static_dir)) as static:
            rows = await measure(args, relay, static)
    finally:
        shutil.rmtree(relay_dir, ignore_errors=True)
        shutil.rmtree(static_dir, ignore_errors=True)
    return 0 if report(rows, args) else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1 s, 1 round")
    parser.add_argument("--static-server", nargs=2, metavar=("PORT", "DIR"))
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 1.0, 1
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.static_server:
        port, folder = arguments.static_server
        asyncio.run(serve_static(int(port), Path(folder)))
    else:
        sys.exit(asyncio.run(main(arguments)))
