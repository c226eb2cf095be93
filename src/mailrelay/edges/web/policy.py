"""The site's Content-Security-Policy and the one change pages made to be framed make to it."""

from __future__ import annotations

from mailrelay.config import ShopConfig

#: Every HTML page: no script at all, no framing (tokens are in our URLs and must not leak).
SITE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def frame_ancestors(shop: ShopConfig, policy: str = SITE_POLICY) -> str:
    """`policy` with framing allowed to the shop's `embed_origins` ('none' without any)."""
    allowed = " ".join(shop.embed_origins) or "'none'"
    return policy.replace("frame-ancestors 'none'", f"frame-ancestors {allowed}")
