"""The HTTP side of webhooks: one POST, and what the receiver's answer means for a retry.

2xx is delivered. No answer in time, a refused connection, 408, 425, 429 and 5xx are
temporary (tried again with backoff). A redirect and any other 4xx are permanent: the same
bytes would meet the same answer (`mailrelay outbox retry` sends one again by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from mailrelay.core.errors import PermanentFailure, TemporaryFailure

#: 4xx answers that mean "later", not "never" (RFC 9110 15.5.9, RFC 8470 5.2, RFC 6585 4).
RETRYABLE_4XX = frozenset({408, 425, 429})
#: How much of the receiver's answer is kept for `mailrelay outbox` (last_error).
ANSWER_EXCERPT = 200


class WebhookClient:
    """POSTs webhook bodies over one connection pool; made in the running loop, closed at stop."""

    def __init__(self, user_agent: str) -> None:
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str],
                   time_limit: float) -> str:
        """Send `body` to `url`; returns the receiver's status line, or raises
        TemporaryFailure / PermanentFailure with a sentence for the operator."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": self.user_agent}, trust_env=False)
        host = urlsplit(url).netloc
        try:
            async with self._session.post(
                url, data=body, headers={"Content-Type": "application/json", **headers},
                timeout=aiohttp.ClientTimeout(total=time_limit), allow_redirects=False,
            ) as response:
                excerpt = (await response.content.read(ANSWER_EXCERPT)).decode(
                    "utf-8", "replace").strip()
                status, reason = response.status, response.reason or ""
                location = response.headers.get("Location", "")
        except TimeoutError as exc:
            raise TemporaryFailure(f"{host} did not answer within {time_limit:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TemporaryFailure(f"cannot reach {host}: {exc or type(exc).__name__}") from exc
        answer = f"HTTP {status} {reason}".strip() + (f": {excerpt}" if excerpt else "")
        if 200 <= status < 300:
            return f"HTTP {status} {reason}".strip()
        if status >= 500 or status in RETRYABLE_4XX:
            raise TemporaryFailure(answer)
        if 300 <= status < 400:
            raise PermanentFailure(f"HTTP {status}: the receiver redirects to {location or '?'}"
                                   "; set the webhook's url to the address it redirects to")
        raise PermanentFailure(answer)

    @staticmethod
    async def reachable(url: str, time_limit: float) -> None:
        """Open (and close) a TCP connection to the receiver, without POSTing anything (for
        `mailrelay check`: a test event would land in the shop's CRM); raises OSError."""
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(time_limit):
                _, writer = await asyncio.open_connection(parts.hostname, port)
        except TimeoutError as exc:
            raise OSError(f"no connection to {parts.netloc} within {time_limit:g} s") from exc
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
