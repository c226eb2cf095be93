"""What a shop's Google product reviews feed holds: its public product reviews (never reported or
forgotten ones), each with the URLs Google is to link to, rendered by `render.feeds`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from urllib.parse import quote

from mailrelay.config import Config, ShopConfig
from mailrelay.render.feeds import FeedProduct, FeedPublisher, FeedReview, product_reviews_feed
from mailrelay.store import ProductReviewListing, QueryInterface, from_iso


def product_page_url(config: Config, shop_id: str, sku: str) -> str:
    """Our page of one product's reviews (`/s/<shop>/p/<sku>`)."""
    return f"{config.http.base_url}/s/{quote(shop_id, safe='')}/p/{quote(sku, safe='')}"


def feed_review(config: Config, listing: ProductReviewListing) -> FeedReview | None:
    """One product review as the feed shows it; None when it cannot be shown there (no text,
    or a product named by neither SKU nor a web address)."""
    product = listing.product
    own_page = product_page_url(config, product.shop, product.sku) if product.sku else None
    # Google matches a review to the shop's own offer by <product_url> (and its identifiers);
    # our product page stands in when the trigger gave no web address for it.
    shop_page = product.url if product.url and product.url.startswith(
        ("https://", "http://")) else None
    written_at = from_iso(product.created_at)  # stored as UTC ISO-8601, with its offset
    if not product.text or written_at is None or (own_page or shop_page) is None:
        return None
    return FeedReview(
        review_id=str(product.id), reviewer_name=listing.reviewer_name,
        written_at=written_at if written_at.tzinfo else written_at.replace(tzinfo=UTC),
        content=product.text, rating=product.stars, method=listing.method,
        # The product page lists this review among the product's others: a "group" URL.
        url=own_page or f"{config.http.base_url}/s/{quote(product.shop, safe='')}",
        url_type="group",
        product=FeedProduct(
            url=shop_page or own_page or "", name=product.name, gtin=product.gtin,
            mpn=product.mpn, sku=product.sku, brand=product.brand),
    )


def google_product_reviews(q: QueryInterface, config: Config, shop: ShopConfig) -> bytes:
    """The shop's whole feed (Google reads it as complete: a review left out is withdrawn)."""
    listings = q.list_product_reviews(shop=shop.id, public=True)
    return render_feed(config, shop, listings)


def render_feed(config: Config, shop: ShopConfig,
                listings: Iterable[ProductReviewListing]) -> bytes:
    reviews = (feed_review(config, listing) for listing in listings)
    return product_reviews_feed(FeedPublisher(shop.name),
                                (review for review in reviews if review is not None))
