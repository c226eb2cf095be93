"""HTML as the plain text a mail reader sees: mailrelay's one HTML-to-text converter (bs4), for
a trigger's reference search here and, with reply_text's quote removal, for HTML-only replies.

Pure; html_to_text never raises. Imported on first use (bs4 costs more to import than the rest
of parsing, and the parser child should not pay for it at start).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import unescape
from typing import Final

from bs4 import BeautifulSoup, Tag
from bs4.element import CData, Comment, Declaration, Doctype, PageElement, ProcessingInstruction

__all__ = [
    "UNRENDERED",
    "html_to_text",
    "parse_html",
    "remove_hidden",
    "remove_unrendered",
    "render_text",
    "style_of",
]

#: Elements whose content is never text: the head (with its title), scripts and styles.
UNRENDERED: Final = ("head", "style", "script")
_UNRENDERED_STRINGS: Final = (Comment, Declaration, Doctype, CData, ProcessingInstruction)
_TAG_RE: Final = re.compile(r"<[^>]*>")
_SCRIPT_STYLE_RE: Final = re.compile(
    r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL
)


def html_to_text(html: str) -> str:
    """HTML as plain text for the reference search: no wrapping, link text without its URL, no
    images, and nothing of scripts and styles (neither CSS colours nor the JSON of a structured
    block can pass for an order reference). Hidden text stays: a preheader may name the order.
    """
    try:
        soup = parse_html(html)
        remove_unrendered(soup)
    except Exception:  # bs4 is lenient, but a pure function must not let it raise
        return unescape(_TAG_RE.sub(" ", _SCRIPT_STYLE_RE.sub(" ", html))).strip()
    try:
        return render_text(soup, link_targets=False).strip()
    except RecursionError:  # absurdly deep nesting: the text without layout
        return soup.get_text("\n").strip()


def parse_html(html: str) -> BeautifulSoup:
    """The document tree of an HTML fragment or document (Python's own parser, no lxml)."""
    # Inside a <div>, no markup looks like a URL, a file name or an XML document to bs4,
    # whose warnings about those would otherwise depend on the warning filters in force.
    return BeautifulSoup(f"<div>{html}</div>", "html.parser")


def remove_unrendered(soup: BeautifulSoup, elements: Sequence[str] = UNRENDERED) -> None:
    """Comments, declarations and the `elements` (with their content): markup no mail client
    shows as text (an MSO conditional comment must not become text)."""
    names = frozenset(elements)
    strings: list[PageElement] = []
    tags: list[Tag] = []
    for node in soup.descendants:  # one walk: find_all would take one per kind
        if isinstance(node, _UNRENDERED_STRINGS):
            strings.append(node)
        elif isinstance(node, Tag) and node.name in names:
            tags.append(node)
    for node in strings:  # first: decompose() leaves the strings inside a tag unusable
        node.extract()
    for tag in tags:
        tag.decompose()


def remove_hidden(soup: BeautifulSoup) -> None:
    """Elements styled or marked hidden (a hidden preheader, our hidden key)."""
    for tag in soup.find_all(style=True):
        if isinstance(tag, Tag) and _HIDDEN_STYLE.search(style_of(tag)):
            tag.decompose()
    for tag in soup.find_all(hidden=True):
        if isinstance(tag, Tag):
            tag.decompose()


def style_of(tag: Tag) -> str:
    """The element's inline style, lowercased and without any whitespace, for matching."""
    value = tag.get("style")
    text = " ".join(value) if isinstance(value, list) else str(value or "")
    return _STYLE_SPACE.sub("", text).lower()


def render_text(soup: Tag, *, link_targets: bool) -> str:
    """The tree's text laid out as a mail reader shows it: a line per block and per <br>, a
    blank line around paragraphs, "- " and "1. " before list items, "> " before quoted lines;
    with `link_targets`, a link's URL in parentheses after text that does not show it.

    Recursive: RecursionError on absurdly deep nesting (the caller picks its fallback).
    """
    out = _TextBuilder()
    _Renderer(link_targets).render(soup, out)
    return out.text()


_STYLE_SPACE: Final = re.compile(r"\s+")
_HIDDEN_STYLE: Final = re.compile(r"display:none|mso-hide:all|visibility:hidden")
_LEFT_BAR: Final = re.compile(
    r"border-left:(?:[\d.]+(?:px|pt|em)?)?(?:solid|#)|border-left-style:solid"
)

# Elements that start a new line, and those that also stand apart by a blank line.
_BLOCKS: Final = frozenset(
    "address article aside blockquote center dd div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody thead tfoot tr "
    "ul".split()
)
_PARAGRAPHS: Final = frozenset("blockquote dl figure h1 h2 h3 h4 h5 h6 ol p pre table ul".split())
_NBSP: Final = "\u00a0"
_COLLAPSIBLE: Final = re.compile(r"[ \t\n\r\f\v]+")
_BLANK_RUNS: Final = re.compile(r"\n{3,}")


class _TextBuilder:
    """Lines of text as a browser would lay them out: whitespace collapsed, a line per block
    and per <br>, a blank line around paragraphs, "> " before blockquoted lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.current: list[str] = []

    def add(self, text: str) -> None:
        text = _COLLAPSIBLE.sub(" ", text)
        if not self.current or self.current[-1].endswith(" "):
            text = text.lstrip(" ")
        if text:
            self.current.append(text)

    def add_raw(self, text: str) -> None:
        """Preformatted text: its line breaks are lines."""
        first, *rest = text.split("\n")
        self.current.append(first)
        for line in rest:
            self.break_line()
            self.current.append(line)

    def break_line(self) -> None:
        """<br>: ends the line, even an empty one."""
        self.lines.append("".join(self.current).rstrip(" "))
        self.current = []

    def end_line(self) -> None:
        """A block boundary: ends the line unless nothing is on it."""
        if "".join(self.current).strip(" "):
            self.break_line()
        self.current = []

    def blank_line(self) -> None:
        self.end_line()
        if self.lines and self.lines[-1].strip(_NBSP + " "):
            self.lines.append("")

    def text(self) -> str:
        self.end_line()
        lines = [line.replace(_NBSP, " ").rstrip() for line in self.lines]
        return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")


class _Renderer:
    """Walks a tree into a _TextBuilder; `link_targets` decides whether links show their URL."""

    def __init__(self, link_targets: bool) -> None:
        self.link_targets = link_targets

    def render(self, node: Tag, out: _TextBuilder) -> None:
        """Append the text of `node`'s children to `out`."""
        for child in node.children:
            if isinstance(child, Tag):
                self._render_element(child, out)
            elif isinstance(child, str):
                out.add(str(child))

    def _render_element(self, tag: Tag, out: _TextBuilder) -> None:
        name = (tag.name or "").lower()
        if name == "br":
            out.break_line()
        elif name == "hr":
            out.blank_line()
            out.add("_" * 32)  # a separator line, as in a plain-text reply: history may follow
            out.blank_line()
        elif name == "blockquote" or (name == "div" and _is_ruled_left(tag)):
            self._render_quote(tag, out)
        elif name == "pre":
            out.blank_line()
            out.add_raw(tag.get_text())
            out.blank_line()
        elif name in ("td", "th"):
            if out.current:
                out.add("  ")
            self.render(tag, out)
        elif name == "a":
            self.render(tag, out)
            if self.link_targets:
                out.add(_link_target(tag))
        elif name in _BLOCKS:
            self._render_block(tag, name, out)
        else:
            self.render(tag, out)

    def _render_block(self, tag: Tag, name: str, out: _TextBuilder) -> None:
        # Outlook writes a <p class=MsoNormal> per line (empty ones between paragraphs).
        paragraph = name in _PARAGRAPHS and "MsoNormal" not in (tag.get("class") or ())
        _end_block(out, paragraph)
        if name == "li":
            out.add(_list_mark(tag))
        self.render(tag, out)
        _end_block(out, paragraph)

    def _render_quote(self, tag: Tag, out: _TextBuilder) -> None:
        """A blockquote nobody marked as history still reads as quoted: "> " before each line."""
        inner = _TextBuilder()
        self.render(tag, inner)
        out.blank_line()
        for line in inner.text().split("\n"):
            out.add_raw(f"> {line}".rstrip())
            out.break_line()
        out.blank_line()


def _end_block(out: _TextBuilder, paragraph: bool) -> None:
    if paragraph:
        out.blank_line()
    else:
        out.end_line()


def _list_mark(item: Tag) -> str:
    """The mark of a list item: "- " in a bulleted list, "3. " for a numbered one's third."""
    parent = item.parent
    if parent is None or (parent.name or "").lower() != "ol":
        return "- "
    position = 1 + sum(1 for sibling in item.find_previous_siblings("li"))
    return f"{position}. "


def _is_ruled_left(tag: Tag) -> bool:
    """A <div> with a solid bar on its left: how webmails (Mail.ru, Yandex, Zoho…) that use no
    <blockquote> mark a quote."""
    return _LEFT_BAR.search(style_of(tag)) is not None


def _link_target(tag: Tag) -> str:
    """The URL in parentheses after a link whose text does not show where it leads, else ""."""
    href = str(tag.get("href") or "").strip()
    label = tag.get_text(" ", strip=True)
    if not href.lower().startswith(("http://", "https://")) or not label:
        return ""
    bare = href.split("://", 1)[1].rstrip("/")
    if bare in label or label in href:
        return ""
    return f" ({href})"
