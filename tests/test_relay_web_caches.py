"""What a relay keeps in memory for the web never hides another relay's writes: a shop's
widgets and JSON cached on one relay show a review posted on the other at the next request,
and both relays give the same ETag for the same state (a proxy may ask either)."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from mailrelay.app import Daemon
from mailrelay.core.clock import FrozenClock

from .conftest import ConfigFactory, second_shop
from .test_relay_roles import relay, relays
from .web_forms import invite, submit

pytestmark = pytest.mark.postgresql


async def reviews_json(http: aiohttp.ClientSession, daemon: Daemon, shop: str,
                       etag: str = "") -> tuple[int, str, list[str]]:
    """GET /s/<shop>/reviews.json: status, ETag and the reviews' texts (none on a 304)."""
    headers = {"If-None-Match": etag} if etag else {}
    async with http.get(f"http://127.0.0.1:{daemon.http_port}/s/{shop}/reviews.json",
                        headers=headers) as resp:
        body = await resp.read()
        texts = [r["text"] for r in json.loads(body)["reviews"]] if resp.status == 200 else []
        return resp.status, resp.headers.get("ETag", ""), texts


async def test_a_page_cached_on_one_relay_shows_a_review_posted_on_the_other(
    make_config: ConfigFactory, clock: FrozenClock, tmp_path: Path,
) -> None:
    config = make_config(more=second_shop())
    async with relays(relay(config, tmp_path, "relay-a"), relay(config, tmp_path, "relay-b"),
                      clock=clock) as (a, b):
        async with aiohttp.ClientSession() as http:
            status, before, texts = await reviews_json(http, b, "acme")
            assert (status, texts) == (200, [])
            status, bolt, _texts = await reviews_json(http, b, "bolt")
            assert status == 200
            assert (await reviews_json(http, b, "acme", before))[0] == 304  # cached on b
            invitation = await invite(a)
            status, page = await submit(http, a, invitation.token, text="Posted on relay a.")
            assert status == 200, page

            status, after, texts = await reviews_json(http, b, "acme", before)
            assert (status, texts) == (200, ["Posted on relay a."])
            assert after != before
            assert (await reviews_json(http, a, "acme"))[1] == after  # one ETag for the group
            assert (await reviews_json(http, a, "acme", after))[0] == 304
            assert (await reviews_json(http, b, "bolt", bolt))[0] == 304  # the other shop's
