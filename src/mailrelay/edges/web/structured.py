"""schema.org JSON-LD pieces the public page and the product page share: the aggregate rating
(rounded as the page shows it: structured data must match what visitors see) and each review."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def aggregate_rating(average: float | None, count: int) -> dict[str, Any]:
    return {"@type": "AggregateRating", "ratingValue": round(average or 0.0, 1),
            "reviewCount": count, "bestRating": 5, "worstRating": 1}


def review(item: Mapping[str, Any]) -> dict[str, Any]:
    """One review as dated for the page (`with_local_dates`); its title when it has one."""
    data: dict[str, Any] = {
        "@type": "Review",
        "author": {"@type": "Person", "name": item["reviewer_name"] or "Anonymous"},
        "datePublished": item["datetime"][:10],
        "reviewRating": {"@type": "Rating", "ratingValue": item["stars"],
                         "bestRating": 5, "worstRating": 1},
    }
    if item.get("title") is not None:
        data["name"] = item["title"]
    data["reviewBody"] = item["text"]
    return data
