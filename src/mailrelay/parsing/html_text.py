"""HTML as plain text for the reference search. Pure; never raises."""

from __future__ import annotations

import re
from html import unescape

import html2text

_SCRIPT_STYLE_RE = re.compile(
    r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL
)
_TAG_RE = re.compile(r"<[^>]*>")


def html_to_text(html: str) -> str:
    """Render HTML as plain text for reference search: no wrapping, no images, link text kept.

    Script and style content is removed before html2text sees it, so neither CSS colours nor the
    JSON of a structured block can pass for an order reference.
    """
    cleaned = _SCRIPT_STYLE_RE.sub(" ", html)
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_links = True  # keeps the anchor text, drops the URL
    converter.ignore_emphasis = True
    converter.unicode_snob = True
    try:
        text = converter.handle(cleaned)
    except Exception:  # html2text is lenient, but a pure function must not let it raise
        text = unescape(_TAG_RE.sub(" ", cleaned))
    return text.strip()
