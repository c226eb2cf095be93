"""Product reviews on the review form: which products of the order it asks about (from the
trigger's list), and the form's values for ratings already stored.

Validation lives with the rest of the form's in services.reviews; a product review is public
exactly when its service review is (the store's product queries decide nothing else).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from mailrelay.config import Config
from mailrelay.services.links import public_url
from mailrelay.store import InvitationRow, NewProductReview, ProductReviewRow, QueryInterface

#: A trigger's list can be long (a wholesale order); the form asks about the first ones only.
MAX_PRODUCTS = 20
MAX_PRODUCT_TEXT = 2000
#: Where each product's fields went in the stored trigger (`core.models.Product`'s names).
_STORED = {"url": "product_url", "image": "image_url"}


@dataclass(frozen=True)
class OfferedProduct:
    """One product of the order the form asks about; `n` is its 1-based position in the
    trigger's list (the field names say it: `product-<n>-stars`, `product-<n>-text`)."""

    n: int
    sku: str | None
    name: str | None
    url: str | None = None
    image: str | None = None
    gtin: str | None = None
    mpn: str | None = None
    brand: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.sku or str(self.n)

    @property
    def stars_field(self) -> str:
        return f"product-{self.n}-stars"

    @property
    def text_field(self) -> str:
        return f"product-{self.n}-text"

    def rating(self, stars: int, text: str | None) -> NewProductReview:
        """The customer's rating of this product, with the product as the trigger named it."""
        return NewProductReview(n=self.n, stars=stars, text=text, sku=self.sku, name=self.name,
                                url=self.url, image=self.image, gtin=self.gtin, mpn=self.mpn,
                                brand=self.brand)


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def offered_products(products: Sequence[Mapping[str, Any]]) -> list[OfferedProduct]:
    """The products of a stored trigger that the form can name (a name or a SKU), with their
    position in the trigger's list; at most `MAX_PRODUCTS`."""
    offered: list[OfferedProduct] = []
    for n, product in enumerate(products, start=1):
        if not isinstance(product, Mapping):
            continue
        values = {key: _text(product.get(_STORED.get(key, key)))
                  for key in ("sku", "name", "url", "image", "gtin", "mpn", "brand")}
        if values["name"] or values["sku"]:
            offered.append(OfferedProduct(n=n, **values))
    return offered[:MAX_PRODUCTS]


def products_of_invitation(q: QueryInterface, invitation: InvitationRow) -> list[OfferedProduct]:
    """What the review form of `invitation` asks about: its shipment's products (none for a
    manual invitation or a generated link, which have no trigger)."""
    if not invitation.shipment_id:
        return []
    shipment = q.shipment_of_invitation(invitation.id)
    return offered_products(shipment.products) if shipment else []


def form_values(rows: Sequence[ProductReviewRow]) -> dict[str, str]:
    """Stored product reviews as the form's fields, to edit them."""
    values: dict[str, str] = {}
    for row in rows:
        values[f"product-{row.n}-stars"] = str(row.stars)
        values[f"product-{row.n}-text"] = row.text or ""
    return values


def unchanged(rows: Sequence[ProductReviewRow], ratings: Sequence[NewProductReview]) -> bool:
    """Whether `ratings` say what is stored already (a reload: no new ticket)."""
    return ({(r.n, r.stars, r.text or "") for r in rows}
            == {(r.n, r.stars, r.text or "") for r in ratings})


def page_url(config: Config, shop_id: str, sku: str) -> str:
    """A product's public page (`/s/<shop>/p/<sku>`); the SKU is percent-encoded whole."""
    return f"{public_url(config, shop_id)}/p/{quote(sku, safe='')}"
