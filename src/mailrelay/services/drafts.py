"""Suggested answers to 1–3★ reviews: in the customer's language, by star band and by the topics
the review mentions, from per-locale templates a shop may override (templates/drafts/<locale>/),
or from the shop's own `[drafts] command`, falling back to the templates."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from jinja2 import Environment, TemplateError, TemplateNotFound

from mailrelay.config import Config, ShopConfig
from mailrelay.core.locales import BUILTIN_LOCALES, FALLBACK_LOCALE, map_locale
from mailrelay.render.content import clean_display_text, clean_products
from mailrelay.render.headers import clean_header
from mailrelay.render.templates import Templates
from mailrelay.services.draft_command import run_command
from mailrelay.store.interface import QueryInterface, StoreBackend

__all__ = ["TOPICS", "DraftFacts", "compose", "compose_or_none", "detect_topics", "draft_facts",
           "draft_locale", "suggest", "suggest_async"]

log = logging.getLogger("mailrelay.drafts")

#: The topics a draft answers, in the order its paragraphs follow each other.
TOPICS: Final = ("late", "damage", "wrong_item", "size", "refund", "quality", "service")
_HIGHEST_DRAFTED: Final = 3


@dataclass(frozen=True, slots=True)
class DraftFacts:
    """What a draft is made of: one 1–3★ review of a configured shop."""

    review_id: int
    shop: ShopConfig
    stars: int
    title: str
    text: str
    review_locale: str | None
    first_name: str | None
    reference: str | None
    products: tuple[str, ...]


def suggest(config: Config, q: QueryInterface, review_id: int) -> str | None:
    """A suggested answer to review `review_id`, or None for a 4–5★ or unknown review (or one
    of a shop no longer configured, or whose own draft templates are broken: logged). With
    `[drafts] command` set this may block up to its `timeout`: call it off the event loop
    (`store.aread` does; `suggest_async` reads first and runs the command in a thread)."""
    facts = draft_facts(config, q, review_id)
    return compose_or_none(config, facts) if facts is not None else None


async def suggest_async(config: Config, store: StoreBackend, review_id: int) -> str | None:
    """`suggest` for a web handler: the read on a snapshot, the drafting in a worker thread,
    so that a slow `[drafts] command` holds neither the event loop nor a reader."""
    facts = await store.aread(lambda q: draft_facts(config, q, review_id))
    if facts is None:
        return None
    return await asyncio.to_thread(compose_or_none, config, facts)


def compose_or_none(config: Config, facts: DraftFacts) -> str | None:
    """`compose`, or None (logged) when the shop's own draft templates or keywords are broken:
    a draft is a help, never a reason for a ticket or a page to fail."""
    try:
        return compose(config, facts)
    except (ValueError, TemplateError) as exc:
        log.error("review=%s no suggested answer: %s", facts.review_id, exc)
        return None


def draft_facts(config: Config, q: QueryInterface, review_id: int) -> DraftFacts | None:
    """The review's facts for a draft, read from the store; None when no draft is due."""
    review = q.get_review(review_id)
    if review is None or not 1 <= review.stars <= _HIGHEST_DRAFTED:
        return None
    shop = config.shop(review.shop)
    if shop is None:
        return None
    shipment = (q.shipment_of_invitation(review.invitation_id)
                if review.invitation_id else None)
    names = [str(item["name"]) for item in clean_products(shipment.products if shipment else ())]
    words = (clean_header(review.reviewer_name, limit=100) or "").split()
    return DraftFacts(
        review_id=review.id, shop=shop, stars=review.stars,
        title=clean_header(review.title, limit=300), text=clean_display_text(review.text),
        review_locale=review.locale,
        first_name=words[0] if words and "@" not in words[0] else None,
        reference=clean_header(review.reference, limit=100) or None,
        products=tuple(names),
    )


def compose(config: Config, facts: DraftFacts) -> str:
    """The draft: the shop's command's when it gives one, else the templates'."""
    template_draft = render_draft(_templates(config), facts)
    command = config.drafts.command
    if not command:
        return template_draft
    own = run_command(command, _payload(facts, template_draft),
                      config.drafts.timeout.total_seconds(), review_id=facts.review_id)
    return own if own is not None else template_draft


def draft_locale(facts: DraftFacts) -> str:
    """The built-in locale the customer reads: the review's, else the shop's, else English."""
    return (map_locale(facts.review_locale, BUILTIN_LOCALES)
            or map_locale(facts.shop.locale, BUILTIN_LOCALES) or FALLBACK_LOCALE)


def render_draft(templates: Templates, facts: DraftFacts) -> str:
    """Greeting, the star band's opening, one paragraph per topic (a general one when none
    is found), closing; paragraphs a shop's override leaves empty are left out."""
    env = templates.environment(facts.shop)
    locale = draft_locale(facts)
    topics = detect_topics(_keywords(env, locale), f"{facts.title}\n{facts.text}")
    values: dict[str, Any] = {"stars": facts.stars, "first_name": facts.first_name,
              "reference": facts.reference, "products": list(facts.products),
              "shop_name": facts.shop.name, "topics": list(topics), "locale": locale}
    texts = []
    for part in ["greeting", "opening", *(topics or ("general",)), "closing"]:
        text = env.get_template(f"drafts/{locale}/{part}.j2").render(values).strip()
        if values["products"] and part in TOPICS and facts.products[0] in text:
            values["products"] = []  # named once, in the first paragraph that names them
        texts.append(text)
    return "\n\n".join(text for text in texts if text) + "\n"


def detect_topics(keywords: Mapping[str, Sequence[str]], text: str) -> tuple[str, ...]:
    """The topics whose keywords occur in `text`, in TOPICS order. A keyword matches at the
    start of a word (a stem: "damag" finds "damaged"), case-insensitively; one starting with
    "*" matches inside words too (German compounds: "*verspät" finds "Lieferverspätung")."""
    folded = text.lower().replace("’", "'")
    return tuple(topic for topic in TOPICS
                 if (pattern := _pattern(tuple(keywords.get(topic, ())))) is not None
                 and pattern.search(folded))


@lru_cache(maxsize=256)
def _pattern(stems: tuple[str, ...]) -> re.Pattern[str] | None:
    alternatives = [re.escape(stem[1:].lower()) if stem.startswith("*")
                    else r"(?<!\w)" + re.escape(stem.lower())
                    for stem in stems if stem.strip("* ")]
    return re.compile("|".join(alternatives)) if alternatives else None


def _keywords(env: Environment, locale: str) -> dict[str, list[str]]:
    """drafts/<locale>/topics.json, the shop's own when it has one: {topic: [stems]}."""
    name = f"drafts/{locale}/topics.json"
    loader = env.loader
    if loader is None:
        return {}
    try:
        source, _, _ = loader.get_source(env, name)
    except TemplateNotFound:
        return {}
    data = json.loads(source)
    if not isinstance(data, dict):
        raise ValueError(f"{name} must be an object of topic: [keywords]")
    return {str(topic): [str(stem) for stem in stems] for topic, stems in data.items()
            if isinstance(stems, list)}


def _payload(facts: DraftFacts, template_draft: str) -> dict[str, Any]:
    """What the command reads on stdin (README: "The command protocol")."""
    return {
        "review_id": facts.review_id, "stars": facts.stars, "title": facts.title,
        "text": facts.text, "locale": draft_locale(facts),
        "review_locale": facts.review_locale, "first_name": facts.first_name,
        "reference": facts.reference, "products": list(facts.products),
        "shop": {"id": facts.shop.id, "name": facts.shop.name},
        "draft": template_draft,
    }


_CACHE: dict[int, tuple[Config, Templates]] = {}


def _templates(config: Config) -> Templates:
    """One Templates per configuration (its environments compile each template once)."""
    known = _CACHE.get(id(config))
    if known is None or known[0] is not config:
        if len(_CACHE) > 8:
            _CACHE.clear()
        known = _CACHE[id(config)] = (config, Templates(config))
    return known[1]
