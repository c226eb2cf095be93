"""The review form's product section: each product of the order as the template shows it,
its error messages and where they link, the image policy its pictures need, and the ratings
as the thank-you page repeats them.

Presentation only: which products are asked about and what is valid is services' business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mailrelay.config import Config
from mailrelay.edges.web.i18n import Translator
from mailrelay.services.products import MAX_PRODUCT_TEXT, OfferedProduct, page_url
from mailrelay.store import ProductReviewRow


def shows_images(offered: Sequence[OfferedProduct]) -> bool:
    return any(_image(product) for product in offered)


def with_https_images(policy: str) -> str:
    """A page's Content-Security-Policy that also loads pictures over https (the shop's
    product images); the rest stays. Our pages send no Referer, so a token in the form's
    URL never reaches the image host."""
    return policy.replace("img-src 'self' data:", "img-src 'self' data: https:", 1)


def _image(product: OfferedProduct) -> str | None:
    # Only https: an http picture on an https page is mixed content, and the policy above
    # allows https only.
    image = product.image
    return image if image and image.lower().startswith("https://") else None


def form_products(t: Translator, offered: Sequence[OfferedProduct],
                  values: Mapping[str, str]) -> list[dict[str, Any]]:
    """What review_form.html.j2 shows for each product: label, picture, fields and values."""
    return [{
        "n": product.n, "label": product.label, "image": _image(product),
        "stars_field": product.stars_field, "text_field": product.text_field,
        "stars": values.get(product.stars_field, ""), "text": values.get(product.text_field, ""),
        "max": MAX_PRODUCT_TEXT,
    } for product in offered]


def product_errors(t: Translator, offered: Sequence[OfferedProduct],
                   errors: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(message per product field, the id each message's summary link goes to): the first
    radio stands for a product's stars, as for the review's own."""
    messages: dict[str, str] = {}
    anchors: dict[str, str] = {}
    for product in offered:
        for field, kind, anchor in ((product.stars_field, "stars", f"{product.stars_field}-1"),
                                    (product.text_field, "text", product.text_field)):
            code = errors.get(field)
            if code:
                messages[field] = t(f"product.error.{kind}.{code}", product=product.label,
                                    max=MAX_PRODUCT_TEXT)
                anchors[field] = anchor
    return messages, anchors


def rated_products(config: Config, shop_id: str,
                   rows: Sequence[ProductReviewRow]) -> list[dict[str, Any]]:
    """The customer's product ratings as the thank-you page shows them, each linking to its
    product's page (a path: the page is ours)."""
    return [{"label": row.name or row.sku or str(row.n), "stars": row.stars, "text": row.text,
             "url": page_url(config, shop_id, row.sku).removeprefix(config.http.base_url)
             if row.sku else None} for row in rows]
