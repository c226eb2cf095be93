"""Each shop's look on its pages: the accent colours (render.brand) and the one CSP change a
logo needs (its origin in img-src). Chooses no template and renders nothing.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from mailrelay.config import ShopConfig
from mailrelay.render.brand import Brand, brand_of

__all__ = ["brand_for", "policy_with_logo"]

IMG_SRC: Final = "img-src 'self' data:"
#: What a CSP host source may be: a `;` or `,` would start another directive or policy.
_HOST: Final = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")


def brand_for(shop: ShopConfig | None) -> Brand:
    """The shop's contrast-checked colours; the neutral look for a page of no shop."""
    return brand_of(shop.accent_color if shop is not None else None)


def policy_with_logo(policy: str, shop: ShopConfig | None) -> str | None:
    """`policy` with the origin of the shop's logo added to img-src, or None when the page
    needs no change (no shop, no logo). The origin only: no other image host is allowed."""
    if shop is None or not shop.logo_url or IMG_SRC not in policy:
        return None
    parts = urlsplit(shop.logo_url)
    host = parts.netloc.rpartition("@")[2]  # never the user:password part
    if parts.scheme not in ("http", "https") or _HOST.fullmatch(host) is None:
        return None  # not an origin we can name safely: the logo stays blocked
    return policy.replace(IMG_SRC, f"{IMG_SRC} {parts.scheme}://{host}", 1)
