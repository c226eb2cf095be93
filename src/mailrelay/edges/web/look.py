"""Each shop's look on its pages: the accent colours (render.brand) and the one CSP change a
logo needs (its origin in img-src). Chooses no template and renders nothing.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mailrelay.config import ShopConfig
from mailrelay.render.brand import Brand, brand_of

__all__ = ["brand_for", "policy_with_logo"]

IMG_SRC = "img-src 'self' data:"


def brand_for(shop: ShopConfig | None) -> Brand:
    """The shop's contrast-checked colours; the neutral look for a page of no shop."""
    return brand_of(shop.accent_color if shop is not None else None)


def policy_with_logo(policy: str, shop: ShopConfig | None) -> str | None:
    """`policy` with the origin of the shop's logo added to img-src, or None when the page
    needs no change (no shop, no logo). The origin only: no other image host is allowed."""
    if shop is None or not shop.logo_url or IMG_SRC not in policy:
        return None
    parts = urlsplit(shop.logo_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return policy.replace(IMG_SRC, f"{IMG_SRC} {origin}", 1)
