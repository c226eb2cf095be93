"""The issue-15 benches' own checks: the delivery sink counts each invitation's Message-ID once
and reports a second arrival as a duplicate, and a process tree's CPU includes children that have
exited (a PostgreSQL server's backends come and go during a burst)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import aiosmtplib
import pytest

from .mailtools import free_port

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:  # the bench modules import each other by plain name
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[ModuleType, object, int]]:
    delivery = load("delivery")
    port = free_port()
    with delivery.child([sys.executable, str(BENCH / "delivery.py"), "--sink", str(port)],
                        tmp_path / "sink.log") as process:
        process.wait_for("sink ready", within=30)
        yield delivery, process, port


def invitation(message_id: str, n: int) -> bytes:
    return (f"From: ACME Shoes <reviews@acme.example>\r\nTo: customer{n}@example.com\r\n"
            f"Subject: How were your shoes?\r\nMessage-ID: {message_id}\r\n\r\n"
            "Tell us how the shoes fit.\r\n").encode()


async def test_the_sink_counts_a_message_id_sent_twice_as_one_duplicate(
    sink: tuple[ModuleType, object, int],
) -> None:
    delivery, process, port = sink
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10)
    await smtp.connect()
    try:
        for n, message_id in enumerate(["<a@relay.test>", "<b@relay.test>", "<a@relay.test>"]):
            await smtp.sendmail("bounce@relay.test", [f"customer{n}@example.com"],
                                invitation(message_id, n))
    finally:
        await smtp.quit()
    counts = delivery.sink_counts(process)
    assert (counts["messages"], counts["unique"], counts["duplicates"]) == (3, 2, 1)
    assert 0 < counts["first"] <= counts["last"]


def test_a_process_trees_cpu_includes_children_that_have_exited() -> None:
    cluster = load("cluster")
    before = cluster.tree_cpu(os.getpid())
    subprocess.run([sys.executable, "-c",
                    "import time\nend = time.process_time() + 0.3\n"
                    "while time.process_time() < end: pass"], check=True)
    assert cluster.tree_cpu(os.getpid()) - before >= 0.25
