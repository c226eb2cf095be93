"""HTML replies as plain text, without the quoted history their mail client marked.

The conversion itself is parsing.html_text's; this module only knows where clients put quotes.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from bs4 import BeautifulSoup, Tag

from mailrelay.parsing.html_text import (
    UNRENDERED,
    parse_html,
    remove_hidden,
    remove_unrendered,
    render_text,
    style_of,
)

from .lines import normalize

__all__ = ["HtmlReply", "html_reply", "text_of_html_reply"]


class HtmlReply(NamedTuple):
    text: str  # what the agent's client showed above (or around) the history
    history_removed: bool  # the client marked quoted history, and it is gone


def text_of_html_reply(html: str) -> str:
    """Plain text of an HTML reply once the quoted history its mail client marked is gone."""
    return html_reply(html).text


def html_reply(html: str) -> HtmlReply:
    """An HTML reply as plain text once the quoted history its mail client marked is gone, and
    whether there was any (a cut the text rules must know of).

    Containers of quotes (Gmail, Apple Mail, Outlook, Thunderbird, Yahoo) and our own hidden
    key are removed first; a <blockquote> nobody marked survives as "> " lines, which the text
    rules then treat as quoted (fail closed).
    """
    try:
        soup = parse_html(html)
        remove_unrendered(soup, _NOT_TEXT)
        remove_hidden(soup)
        removed = _remove_quote_containers(soup)
    except Exception:  # history we cannot tell apart is not published: no text (fail closed)
        return HtmlReply("", history_removed=True)
    try:
        return HtmlReply(normalize(render_text(soup, link_targets=True)), removed)
    except RecursionError:  # absurdly deep nesting: the cleaned text without layout
        return HtmlReply(normalize(soup.get_text("\n")).strip(), removed)


# Nothing a reader sees, so nothing to publish: also a stray <title>, templates and noscript
# fallbacks (the trigger's reference search keeps those, as it always did).
_NOT_TEXT: Final = (*UNRENDERED, "title", "template", "noscript")
# Elements that hold quoted history, per client; _AND_AFTER also everything after them.
_QUOTE_CONTAINERS: Final = (
    "div.gmail_quote",
    "blockquote.gmail_quote",
    "div.gmail_quote_container",
    'blockquote[type="cite"]',
    "div.moz-cite-prefix",
    "div.yahoo_quoted",
    'div[id^="yahoo_quoted"]',
    'div[name="quote"]',  # GMX, WEB.DE
    "div.protonmail_quote",
    "blockquote.protonmail_quote",
    "[data-mailrelay-key]",
)
_AND_AFTER: Final = (
    "div#appendonsend",
    "div#divRplyFwdMsg",
    "div#mail-editor-reference-message-container",
    "div.OutlookMessageHeader",
)
_OUTLOOK_BORDER: Final = re.compile(r"border-top:solid")


def _remove_quote_containers(soup: BeautifulSoup) -> bool:
    """Removes the history the client marked; True when there was any."""
    removed = False
    for selector in _AND_AFTER:
        found = soup.select_one(selector)
        if found is not None:
            _remove_with_everything_after(found)
            removed = True
    for tag in soup.find_all("div", style=True):
        if isinstance(tag, Tag) and tag.parent is not None and _is_outlook_header_box(tag):
            _remove_with_everything_after(tag)
            removed = True
            break
    for selector in _QUOTE_CONTAINERS:
        for tag in soup.select(selector):
            tag.decompose()
            removed = True
    return removed


def _is_outlook_header_box(tag: Tag) -> bool:
    """Outlook desktop's <div style="border:none;border-top:solid #E1E1E1 1.0pt;…"> header."""
    style = style_of(tag)
    return "border:none" in style and _OUTLOOK_BORDER.search(style) is not None


def _remove_with_everything_after(tag: Tag) -> None:
    """The element and all that follows it in document order (its following siblings and
    those of each ancestor): Outlook puts the whole quoted message after its header."""
    node: Tag | None = tag
    while node is not None and node.parent is not None:
        for sibling in list(node.next_siblings):
            sibling.extract()
        node = node.parent
    tag.decompose()
