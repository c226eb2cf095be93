"""Reply benchmark: from an agent's reply landing in the IMAP mailbox to the customer's email.

A real Dovecot (pymap when Dovecot is not installed) and a real aiosmtpd sink; the whole mailrelay
`Daemon` runs in-process on the system clock, watching INBOX with IDLE and sending through the sink.
Reviews with tickets are made as in tests/test_replies.py; then each agent reply is APPENDed to
INBOX and timed until the customer email (Auto-Submitted: auto-replied, to that customer) reaches
the sink. One at a time (latency; target: median < 1 s, where help desks poll every few minutes),
then a burst of all of them at once (throughput). Last, the reply-extraction corpus score of
bench/replies_corpus.py (target: >= 95 % ok and no leak).

    .venv/bin/python bench/replies.py [--replies 50] [--server dovecot|pymap] [--no-burst] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import imaplib
import logging
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
# The test helpers (real IMAP servers, the SMTP sink, review and reply builders) and the corpus
# scorer next to this file.
for _path in (str(HERE.parent), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from aiosmtpd.smtp import Envelope  # noqa: E402
from tests.imap_servers import DovecotServer, ImapServer, PymapServer, running  # noqa: E402
from tests.mailtools import parsed  # noqa: E402
from tests.sink import Sink  # noqa: E402
from tests.tickets import Ticketed, agent_reply  # noqa: E402

from benchconfig import relay_toml  # noqa: E402
from mailrelay.app import Daemon  # noqa: E402
from mailrelay.config import load  # noqa: E402
from mailrelay.core.clock import SystemClock  # noqa: E402
from mailrelay.services import invitations, reviews  # noqa: E402
from replies_corpus import CORPUS, SOURCES, score  # noqa: E402

DOVECOT = Path("/usr/sbin/dovecot")
TARGET_MEDIAN_S = 1.0
TARGET_OK_PCT = 95.0
#: Longest wait for one customer email (or ticket) before it counts as lost.
ARRIVAL_TIMEOUT_S = 30.0
#: Pause between one-at-a-time replies once the last one was filed: the watcher is back in IDLE.
GAP_S = 0.05
AGENT = "support@acme.example"

# --- the sink, with arrival times -----------------------------------------------------------------


class TimedSink(Sink):
    """tests/sink.py's Sink that also notes when each ticket and customer email arrived
    (perf_counter, taken when the final dot has been read, before the 250)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[tuple[str, str], float] = {}
        self.customer_mails = 0
        self._waiters: dict[tuple[str, str], asyncio.Future[float]] = {}
        self._headers = BytesHeaderParser()

    def _record(self, envelope: Envelope) -> str:
        at = time.perf_counter()
        reply = super()._record(envelope)
        headers = self._headers.parsebytes(envelope.original_content or b"")
        keys = []
        if headers["X-Mailrelay-Key"] and headers["X-Mailrelay-Review"]:
            keys.append(("ticket", str(headers["X-Mailrelay-Review"])))
        if str(headers["Auto-Submitted"] or "").lower() == "auto-replied":
            rcpts = [r.lower() for r in envelope.rcpt_tos]
            keys += [("customer", r) for r in rcpts if r != AGENT]
            self.customer_mails += sum(1 for r in rcpts if r != AGENT)
        for key in keys:
            self.arrivals.setdefault(key, at)
            waiter = self._waiters.pop(key, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(self.arrivals[key])
        return reply

    async def arrival(self, kind: str, name: str, timeout: float = ARRIVAL_TIMEOUT_S  # noqa: ASYNC109
                      ) -> float | None:
        """When the first mail of `kind` ("ticket": review id, "customer": address) arrived;
        None when none arrived within `timeout` seconds."""
        key = (kind, name.lower())
        if key in self.arrivals:
            return self.arrivals[key]
        waiter = self._waiters.setdefault(key, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            return None

    def raw_ticket(self, review_id: int) -> bytes:
        for _, _, raw in self.messages:
            headers = self._headers.parsebytes(raw)
            if headers["X-Mailrelay-Key"] and headers["X-Mailrelay-Review"] == str(review_id):
                return raw
        raise LookupError(f"no ticket for review {review_id} at the sink")


# --- appending to the mailbox, as the agent's mail server would -----------------------------------


class Appender:
    """One logged-in imaplib session (the standard library, no code shared with the watcher);
    blocking calls, run in a thread."""

    def __init__(self, server: ImapServer) -> None:
        self.server = server
        self.client: imaplib.IMAP4 | None = None

    def open(self) -> None:
        client = imaplib.IMAP4(self.server.host, self.server.helper_port, timeout=10)
        client.login(self.server.username, self.server.password)
        self.client = client

    def append(self, raws: Sequence[bytes]) -> list[float]:
        """APPEND each message to INBOX back to back; returns the perf_counter just before
        each APPEND command was sent."""
        assert self.client is not None
        started = []
        for raw in raws:
            started.append(time.perf_counter())
            typ, data = self.client.append("INBOX", None, None, raw)  # type: ignore[arg-type]
            if typ != "OK":
                raise RuntimeError(f"APPEND failed: {data!r}")
        return started

    def inbox_count(self) -> int:
        assert self.client is not None
        _, data = self.client.status("INBOX", "(MESSAGES)")
        match = re.search(rb"MESSAGES (\d+)", data[0] or b"")  # type: ignore[arg-type]
        return int(match.group(1)) if match else -1

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.logout()
            except (imaplib.IMAP4.error, OSError):
                with contextlib.suppress(OSError):
                    client.shutdown()


# --- the run --------------------------------------------------------------------------------------


@dataclass
class Run:
    """One series of replies: for those whose customer email arrived, seconds from APPEND to
    the sink (`latencies`), split at the moment the watcher handed the reply to the Replier."""

    name: str
    sent: int
    latencies: list[float]
    pickups: list[float]  # APPEND -> Replier.process called (server notifies, watcher FETCHes)
    relays: list[float]  # Replier.process called -> at the sink (mailrelay's own share)
    seconds: float  # first APPEND to last arrival
    burst: bool = False

    @property
    def arrived(self) -> int:
        return len(self.latencies)


async def make_tickets(daemon: Daemon, sink: TimedSink, count: int) -> list[tuple[Ticketed, str]]:
    """`count` reviews with their tickets at the sink, as `ticketed()` in tests/test_replies.py
    makes one (an invitation, a 2-star review, the ticket to the shop's agent), but in batches
    and waiting for the dispatcher, which runs on the real clock here."""
    shop = daemon.config.shops[0]
    customers = [f"customer{n}@example.com" for n in range(count)]
    now = daemon.clock.now()

    def invite_all(q: Any) -> list[int]:
        ids = []
        for n, customer in enumerate(customers):
            decision = invitations.invite_manually(
                q, shop, daemon.web.signer, now, email=customer, name=f"Customer {n}",
                reference=f"R{n}", delay=timedelta(0))
            assert decision.invitation_id is not None, decision
            ids.append(decision.invitation_id)
        return ids

    invitation_ids = await daemon.store.write(invite_all)
    await daemon.tick()  # renders and sends the invitations
    form, _ = reviews.validate({"stars": "2", "title": "Late delivery",
                                "text": "The parcel took two weeks to arrive.",
                                "name": "Customer"})
    assert form is not None

    def submit_all(q: Any) -> list[int]:
        ids = []
        for invitation_id in invitation_ids:
            invitation = q.get_invitation(invitation_id)
            _, review_id = reviews.submit_review(q, invitation, form, daemon.clock.now())
            assert review_id is not None
            ids.append(review_id)
        return ids

    review_ids = await daemon.store.write(submit_all)
    await daemon.tick()  # renders and sends the tickets
    for review_id in review_ids:
        if await sink.arrival("ticket", str(review_id)) is None:
            raise RuntimeError(f"the ticket of review {review_id} never reached the sink")
    mids = daemon.store.read(lambda q: [q.invitation_message_id(i) for i in invitation_ids])
    made = []
    for review_id, mid, customer in zip(review_ids, mids, customers, strict=True):
        ticket = parsed(sink.raw_ticket(review_id))
        made.append((Ticketed(review_id, ticket, str(mid)), customer))
    return made


class PickupTimes:
    """Wraps the daemon's `Replier.process` (the watcher's callback calls it) to note when each
    reply, by Message-ID, was handed over: the split between the IMAP side and mailrelay's."""

    def __init__(self, daemon: Daemon) -> None:
        self.at: dict[str, float] = {}
        self._process = daemon.replier.process
        self._headers = BytesHeaderParser()
        daemon.replier.process = self  # type: ignore[method-assign]

    async def __call__(self, raw: bytes, *, source: str) -> Any:
        mid = str(self._headers.parsebytes(raw)["Message-ID"] or "")
        self.at.setdefault(mid, time.perf_counter())
        return await self._process(raw, source=source)


def message_id(raw: bytes) -> str:
    return str(BytesHeaderParser().parsebytes(raw)["Message-ID"] or "")


def split(run_name: str, sent_at: list[float], raws: list[bytes], arrivals: list[float | None],
          pickups: PickupTimes, seconds: float) -> Run:
    run = Run(run_name, len(raws), [], [], [], seconds)
    for sent, raw, at in zip(sent_at, raws, arrivals, strict=True):
        if at is None:
            continue
        run.latencies.append(at - sent)
        picked = pickups.at.get(message_id(raw))
        if picked is not None:
            run.pickups.append(picked - sent)
            run.relays.append(at - picked)
    return run


def reply_for(t: Ticketed, n: int) -> bytes:
    body = (f"Sorry about the delay, Customer {n}!\n\n"
            "We have refunded the shipping, and the next order ships for free.")
    return agent_reply(t, body, sender=AGENT)


async def wait_until(check: Any, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {limit:g} s waiting for {what}")
        await asyncio.sleep(0.01)


async def one_at_a_time(sink: TimedSink, appender: Appender, pickups: PickupTimes,
                        batch: list[tuple[Ticketed, str]]) -> Run:
    raws = [reply_for(t, n) for n, (t, _) in enumerate(batch)]
    sent_at: list[float] = []
    arrivals: list[float | None] = []
    for n, ((_, customer), raw) in enumerate(zip(batch, raws, strict=True)):
        sent_at += await asyncio.to_thread(appender.append, [raw])
        arrivals.append(await sink.arrival("customer", customer))

        async def filed() -> bool:
            return await asyncio.to_thread(appender.inbox_count) == 0

        # the watcher moves the reply out of INBOX after the commit, then goes back to IDLE
        await wait_until(filed, ARRIVAL_TIMEOUT_S, "the reply filed out of INBOX")
        await asyncio.sleep(GAP_S)
        if (n + 1) % 10 == 0:
            last = arrivals[-1]
            took = f"{(last - sent_at[-1]) * 1000:.0f} ms" if last is not None else "lost"
            print(f"  {n + 1}/{len(batch)} one at a time, last {took}", flush=True)
    last_arrival = max((at for at in arrivals if at is not None), default=sent_at[0])
    return split("one at a time", sent_at, raws, arrivals, pickups, last_arrival - sent_at[0])


async def at_once(sink: TimedSink, appender: Appender, pickups: PickupTimes,
                  batch: list[tuple[Ticketed, str]]) -> Run:
    """Every reply APPENDed back to back on one connection; each timed from its own APPEND."""
    raws = [reply_for(t, n) for n, (t, _) in enumerate(batch)]
    sent_at = await asyncio.to_thread(appender.append, raws)
    arrivals = list(await asyncio.gather(*(sink.arrival("customer", customer)
                                           for _, customer in batch)))
    last = max((at for at in arrivals if at is not None), default=sent_at[0])
    run = split("burst, all at once", sent_at, raws, arrivals, pickups, last - sent_at[0])
    run.burst = True
    return run


async def measure(server: ImapServer, workdir: Path, replies: int,
                  with_burst: bool) -> tuple[list[Run], int, int]:
    """Returns the runs, the customer emails the sink got, and the replies sent."""
    async with AsyncExitStack() as stack:
        sink = TimedSink()
        await sink.start()
        stack.push_async_callback(sink.stop)
        path = workdir / "relay.toml"
        path.write_text(relay_toml(
            store=f"{workdir}/relay.db", secret_file=f"{workdir}/secret.key", agent=AGENT,
            outbound=f'transport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\n'
                     'starttls = false\ntls = false\nrate_per_minute = 1000000')
                        + server.toml())
        daemon = Daemon(load(path), SystemClock())
        await daemon.start()
        stack.push_async_callback(daemon.stop)
        pickups = PickupTimes(daemon)
        appender = Appender(server)
        await asyncio.to_thread(appender.open)
        stack.push_async_callback(asyncio.to_thread, appender.close)

        watcher = daemon.imap
        assert watcher is not None, "the daemon does not watch [imap]"

        async def connected() -> bool:
            return watcher.connected

        await wait_until(connected, 30, "the IMAP watcher to connect")
        began = time.perf_counter()
        count = replies * (2 if with_burst else 1)
        tickets = await make_tickets(daemon, sink, count)
        print(f"  {count} reviews with tickets at the sink in {time.perf_counter() - began:.1f} s",
              flush=True)

        async def quiet() -> bool:
            return await daemon.store.aread(lambda q: q.outbox_depth()) == 0

        await wait_until(quiet, 30, "the outbox to drain")
        await asyncio.sleep(0.5)  # the watcher settles in IDLE
        runs = [await one_at_a_time(sink, appender, pickups, tickets[:replies])]
        if with_burst:
            await asyncio.sleep(0.5)
            runs.append(await at_once(sink, appender, pickups, tickets[replies:]))
            print(f"  burst of {replies}: {runs[-1].arrived} customer emails in "
                  f"{runs[-1].seconds:.2f} s", flush=True)
        await asyncio.sleep(0.5)  # room for a duplicate to show up, if there were one
        return runs, sink.customer_mails, count


# --- report ---------------------------------------------------------------------------------------


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], left: int = 1) -> str:
    """Columns aligned: the first `left` ones to the left (as in bench/delivery.py)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) if i < left else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def percentile(values: list[float], p: int) -> float:
    """Linear interpolation between closest ranks (statistics.quantiles, inclusive)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def ms(value: float) -> str:
    return f"{value * 1000:,.0f}"


def report_latency(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        if run.latencies:
            stats = (ms(statistics.median(run.latencies)), ms(percentile(run.latencies, 90)),
                     ms(percentile(run.latencies, 99)), ms(max(run.latencies)))
        else:
            stats = ("-",) * 4
        parts = tuple(ms(statistics.median(values)) if values else "-"
                      for values in (run.pickups, run.relays))
        # one at a time, the total is mostly waiting: a rate only means something for a burst
        rate = (f"{run.arrived / run.seconds:.1f}" if run.burst and run.seconds > 0 else "-")
        rows.append((run.name, f"{run.arrived}/{run.sent}", *stats, *parts,
                     f"{run.seconds:.2f}", rate))
    return table(("APPEND -> customer email", "n", "median ms", "p90 ms", "p99 ms", "max ms",
                  "pickup ms", "relay ms", "total s", "replies/s"), rows)


def latency_verdicts(runs: list[Run], customer_mails: int, sent: int, kind: str) -> list[str]:
    first = runs[0]
    median = statistics.median(first.latencies) if first.latencies else float("inf")
    ok = first.arrived == first.sent and median < TARGET_MEDIAN_S
    lines = [f"target median < {TARGET_MEDIAN_S:.0f} s (one at a time, {kind}): "
             f"{ms(median) if first.latencies else '-'} ms "
             f"{'PASS' if ok else 'FAIL'}"]
    lost = sum(run.sent - run.arrived for run in runs)
    if lost:
        lines.append(f"FAIL: {lost} customer email(s) did not arrive within "
                     f"{ARRIVAL_TIMEOUT_S:.0f} s")
    if customer_mails != sent:
        lines.append(f"FAIL: the sink got {customer_mails} customer emails for {sent} replies")
    else:
        lines.append(f"customer emails at the sink: {customer_mails} for {sent} replies "
                     "(exactly one each)")
    return lines


def report_corpus(corpus_dir: Path) -> tuple[str, list[str]]:
    if not corpus_dir.is_dir():
        return "", [f"reply corpus not found at {corpus_dir}: FAIL (give --corpus DIR)"]
    result = score(corpus_dir)
    rows = [(source, str(result[source]["cases"]), str(result[source]["ok"]),
             str(result[source]["held"]), str(result[source]["loss"]),
             str(result[source]["extra"]), str(result[source]["leak"]),
             f"{result[source]['ok_pct']:.1f}")
            for source in (*SOURCES, "overall")]
    text = table(("reply corpus", "cases", "ok", "held", "loss", "extra", "leak", "ok %"), rows)
    overall = result["overall"]
    ok = overall["ok_pct"] >= TARGET_OK_PCT and overall["leak"] == 0
    verdict = (f"target >= {TARGET_OK_PCT:.0f} % ok and 0 leaks: {overall['ok_pct']:.1f} % ok, "
               f"{overall['leak']} leak(s) {'PASS' if ok else 'FAIL'}")
    return text, [verdict]


def server_version(kind: str) -> str:
    if kind == "dovecot":
        out = subprocess.run([str(DOVECOT), "--version"], capture_output=True, text=True,
                             check=False).stdout.split()
        return f"Dovecot {out[0] if out else '?'}"
    try:
        from importlib.metadata import version
        return f"pymap {version('pymap')}"
    except Exception:  # noqa: BLE001 - only a label
        return "pymap"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=50,
                        help="replies one at a time, and in the burst (default 50)")
    parser.add_argument("--server", choices=("dovecot", "pymap"), default="dovecot",
                        help="the IMAP server (default dovecot; pymap when it is missing)")
    parser.add_argument("--no-burst", dest="burst", action="store_false",
                        help="skip the burst of all replies at once")
    parser.add_argument("--corpus", type=Path, default=CORPUS, metavar="DIR",
                        help=f"the reply corpus for the extraction score (default {CORPUS})")
    parser.add_argument("--quick", action="store_true", help="10 replies")
    args = parser.parse_args(argv)
    if args.quick:
        args.replies = min(args.replies, 10)
    if args.replies < 1:
        parser.error("--replies must be at least 1")
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM stops the bench like Ctrl-C does: through the clean-up below, so no Dovecot is left.
    signal.signal(signal.SIGTERM, _interrupt)
    kind = args.server
    if kind == "dovecot" and not DOVECOT.exists():
        print(f"NOTE: {DOVECOT} is missing (apt-get install dovecot-imapd installs it): using "
              "pymap instead. pymap looks at its maildir about once a second while in IDLE, so "
              "these latencies are pymap's, not what Dovecot (inotify) gives.", flush=True)
        kind = "pymap"
    workdir = Path(tempfile.mkdtemp(prefix="bench-replies-"))
    log_path = workdir / "daemon.log"
    # As `serve` at its default level, into a file: the table stays readable.
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    print(f"replies bench: {server_version(kind)} with IDLE, {args.replies} replies one at a "
          f"time{' then all at once' if args.burst else ''}, {os.cpu_count()} CPU(s), "
          f"Python {platform.python_version()}", flush=True)
    server: ImapServer = (DovecotServer(workdir) if kind == "dovecot"
                          else PymapServer(workdir))
    problems: list[str] = []
    try:
        with running(server):
            runs, customer_mails, sent = asyncio.run(
                measure(server, workdir, args.replies, args.burst))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        if log_path.exists():
            problems = [line for line in log_path.read_text(errors="replace").splitlines()
                        if " WARNING " in line or " ERROR " in line or "Traceback" in line]
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(report_latency(runs))
    lines = latency_verdicts(runs, customer_mails, sent, kind)
    lines += [f"daemon logged: {p}" for p in problems[:5]]
    for line in lines:
        print(line)
    print()
    corpus_table, corpus_lines = report_corpus(args.corpus)
    if corpus_table:
        print(corpus_table)
    for line in corpus_lines:
        print(line)
    lines += corpus_lines
    return 1 if any("FAIL" in line for line in lines) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
