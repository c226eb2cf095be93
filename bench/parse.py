"""Micro-benchmark of parse_trigger: the full modern-policy reading (before) against the default
path (after: the fast path, which falls back to the full reading for anything unusual).

    .venv/bin/python bench/parse.py [--number 300] [--repeat 7] [--corpus DIR]

Times a realistic ~5 KB Shopify-like multipart trigger (text + quoted-printable HTML), a ~5 KB
single-part trigger shaped like bench/ingest.py's, and every .eml of the trigger corpus, and prints
microseconds per message (the best of --repeat runs of --number parses each; gc off, as timeit
does). It also checks that both readings give the same notice for every message, and says which
path the default took ("fast" or "full").
"""

from __future__ import annotations

import argparse
import platform
import quopri
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

from mailrelay import parsing
from mailrelay.parsing import fast_mime, trigger

HERE = Path(__file__).resolve()
CORPUS = HERE.parents[2] / "shared" / "corpus" / "triggers"
SIZE = 5 * 1024
BOUNDARY = "===============3902478912669683900=="
LINE = (
    "Thank you for shopping with ACME Shoes. Your parcel has left our warehouse and is on its way."
)


def shopify_like(order: int = 1057) -> bytes:
    """~5 KB multipart/alternative: a plain-text part and a quoted-printable HTML part."""
    rows = 1
    while len(raw := _shopify(order, rows)) < SIZE:
        rows += 1
    return raw


def _shopify(order: int, rows: int) -> bytes:
    text = f"Hi John,\r\n\r\nGood news! Your order #{order} is on the way.\r\n\r\n"
    text += "".join(f"{LINE} ({n})\r\n" for n in range(rows))
    cells = "".join(
        f'<tr><td style="padding:4px">{LINE}</td><td>Item {n} x 1</td></tr>' for n in range(rows)
    )
    html = (
        "<html><head><style>.btn{color:#ffffff;background:#1a73e8}</style></head><body>"
        f"<h2>Your order is on the way</h2><p>Order <b>#{order}</b></p><table>{cells}</table>"
        '<p><a class="btn" href="https://shop.example/track/723639924209">Track</a></p>'
        "</body></html>"
    )
    html_qp = quopri.encodestring(html.encode()).decode().replace("\n", "\r\n")
    head = (
        "From: ACME Shoes <store+1234@shopify.example>\r\n"
        "To: John Smith <john.smith@example.com>\r\n"
        f"Subject: A shipment from order #{order} is on the way\r\n"
        "Date: Fri, 20 Nov 2026 09:15:00 +0000\r\n"
        f"Message-ID: <{order}723639924209@platform.example>\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative;\r\n boundary="{BOUNDARY}"\r\n\r\n'
    )
    body = (
        f"--{BOUNDARY}\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
        f"{text}\r\n--{BOUNDARY}\r\n"
        'Content-Type: text/html; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n\r\n"
        f"{html_qp}\r\n--{BOUNDARY}--\r\n"
    )
    return (head + body).encode()


def plain_5kb(order: int = 10000) -> bytes:
    """~5 KB single text/plain part, the shape bench/ingest.py sends."""
    body = ""
    while len(body) < SIZE - 600:
        body += f"{LINE} ({body.count(chr(10))})\r\n"
    head = (
        "From: ACME Shoes <platform@shop.example>\r\n"
        f"To: Customer {order} <customer0-{order}@example.com>\r\n"
        f"Subject: Order #{order} has shipped\r\n"
        f"Message-ID: <bench-0-{order}@platform.example>\r\n"
        "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
        f"Hello Customer {order},\r\n\r\nyour order #{order} has shipped.\r\n\r\n"
    )
    return (head + body).encode()


def slow(raw: bytes) -> object:
    return trigger.full_reading(raw, None)


def default(raw: bytes) -> object:
    return parsing.parse_trigger(raw)


def best_us(func: Callable[[bytes], object], raw: bytes, number: int, repeat: int) -> float:
    timer = timeit.Timer(lambda: func(raw))
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def path_taken(raw: bytes) -> str:
    try:
        return "fast" if trigger.fast_reading(raw, None) is not None else "full"
    except fast_mime.Unusual:
        return "full"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=300, help="parses per timing run")
    parser.add_argument("--repeat", type=int, default=7, help="timing runs; the best counts")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="directory of .eml triggers")
    args = parser.parse_args(argv)

    cases = [("shopify-like multipart", shopify_like()), ("plain text (ingest shape)", plain_5kb())]
    cases += [(path.name, path.read_bytes()) for path in sorted(args.corpus.glob("*.eml"))]

    print(
        f"parse_trigger, µs per message (best of {args.repeat} x {args.number}); "
        f"Python {platform.python_version()} on {platform.machine()}"
    )
    header = f"{'message':<34} {'bytes':>6} {'path':>5} {'before':>9} {'after':>9} {'speedup':>8}"
    print(header)
    print("-" * len(header))
    speedups: list[float] = []
    for name, raw in cases:
        if default(raw) != slow(raw):
            print(f"{name}: the default path and the full reading disagree", file=sys.stderr)
            return 1
        before = best_us(slow, raw, max(args.number // 4, 10), args.repeat)
        after = best_us(default, raw, args.number, args.repeat)
        speedups.append(before / after)
        print(
            f"{name:<34} {len(raw):>6} {path_taken(raw):>5} {before:>9.1f} {after:>9.1f} "
            f"{before / after:>7.1f}x"
        )
    print(f"{'geometric mean speedup':<34} {statistics.geometric_mean(speedups):>40.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
