"""The URLs mailrelay puts in mail and pages, all under `http.base_url`."""

from __future__ import annotations

from mailrelay.config import Config
from mailrelay.core.tokens import REVIEW, UNSUBSCRIBE, TokenSigner


def review_url(config: Config, token: str) -> str:
    return f"{config.http.base_url}/r/{token}"


def unsubscribe_url(config: Config, signer: TokenSigner, review_token: str) -> str:
    token = signer.convert(review_token, REVIEW, UNSUBSCRIBE) or ""
    return f"{config.http.base_url}/u/{token}"


def public_url(config: Config, shop_id: str, review_id: int | None = None) -> str:
    url = f"{config.http.base_url}/s/{shop_id}"
    return f"{url}#review-{review_id}" if review_id else url
