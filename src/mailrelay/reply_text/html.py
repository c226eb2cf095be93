"""HTML replies as plain text, without the quoted history their mail client marked."""

from __future__ import annotations

import re
from typing import Final

from bs4 import BeautifulSoup, Tag
from bs4.element import CData, Comment, Declaration, Doctype, ProcessingInstruction

from .lines import normalize

__all__ = ["html_to_text"]


def html_to_text(html: str) -> str:
    """Plain text of an HTML reply once the quoted history its mail client marked is gone."""
    return html_reply_text(html)[0]


def html_reply_text(html: str) -> tuple[str, bool]:
    """Plain text of an HTML reply once the quoted history its mail client marked is gone, and
    whether any was.

    Containers of quotes (Gmail, Apple Mail, Outlook, Thunderbird, Yahoo) and our own hidden
    key are removed first; a <blockquote> nobody marked survives as "> " lines, which the text
    rules then treat as quoted (fail closed).
    """
    try:
        # Inside a <div>, no markup looks like a URL, a file name or an XML document to bs4,
        # whose warnings about those would otherwise depend on the warning filters in force.
        soup = BeautifulSoup(f"<div>{html}</div>", "html.parser")
        _remove_invisible(soup)
        removed = _remove_quote_containers(soup)
    except Exception:  # history we cannot tell apart is not published: no text (fail closed)
        return "", True
    try:
        out = _TextBuilder()
        _render(soup, out)
        return normalize(out.text()), removed
    except RecursionError:  # absurdly deep nesting: the cleaned text without layout
        return normalize(soup.get_text("\n")).strip(), removed


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
_STYLE_SPACE: Final = re.compile(r"\s+")
_HIDDEN_STYLE: Final = re.compile(r"display:none|mso-hide:all|visibility:hidden")
_LEFT_BAR: Final = re.compile(
    r"border-left:(?:[\d.]+(?:px|pt|em)?)?(?:solid|#)|border-left-style:solid"
)
_OUTLOOK_BORDER: Final = re.compile(r"border-top:solid")


def _remove_invisible(soup: BeautifulSoup) -> None:
    """Comments, scripts, styles and hidden elements: nothing a reader sees, so nothing to
    publish (an MSO conditional comment or a hidden preheader must not become text)."""
    for node in soup.find_all(string=True):
        if isinstance(node, (Comment, Declaration, Doctype, CData, ProcessingInstruction)):
            node.extract()
    for tag in soup.find_all(["head", "title", "style", "script", "template", "noscript"]):
        tag.decompose()
    for tag in soup.find_all(style=True):
        if isinstance(tag, Tag) and _HIDDEN_STYLE.search(_style_of(tag)):
            tag.decompose()
    for tag in soup.find_all(hidden=True):
        if isinstance(tag, Tag):
            tag.decompose()


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
    style = _style_of(tag)
    return "border:none" in style and _OUTLOOK_BORDER.search(style) is not None


def _style_of(tag: Tag) -> str:
    value = tag.get("style")
    text = " ".join(value) if isinstance(value, list) else str(value or "")
    return _STYLE_SPACE.sub("", text).lower()


def _remove_with_everything_after(tag: Tag) -> None:
    """The element and all that follows it in document order (its following siblings and
    those of each ancestor): Outlook puts the whole quoted message after its header."""
    node: Tag | None = tag
    while node is not None and node.parent is not None:
        for sibling in list(node.next_siblings):
            sibling.extract()
        node = node.parent
    tag.decompose()


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


def _render(node: Tag, out: _TextBuilder) -> None:
    """Append the text of `node`'s children to `out`."""
    for child in node.children:
        if isinstance(child, Tag):
            _render_element(child, out)
        elif isinstance(child, str):
            out.add(str(child))


def _render_element(tag: Tag, out: _TextBuilder) -> None:
    name = (tag.name or "").lower()
    if name == "br":
        out.break_line()
    elif name == "hr":
        out.blank_line()
        out.add("_" * 32)  # a separator line, as in a plain-text reply: history may follow
        out.blank_line()
    elif name == "blockquote" or (name == "div" and _is_ruled_left(tag)):
        _render_quote(tag, out)
    elif name == "pre":
        out.blank_line()
        out.add_raw(tag.get_text())
        out.blank_line()
    elif name in ("td", "th"):
        if out.current:
            out.add("  ")
        _render(tag, out)
    elif name == "a":
        _render(tag, out)
        out.add(_link_target(tag))
    elif name in _BLOCKS:
        _render_block(tag, name, out)
    else:
        _render(tag, out)


def _render_block(tag: Tag, name: str, out: _TextBuilder) -> None:
    # Outlook writes a <p class=MsoNormal> per line (empty ones between paragraphs).
    paragraph = name in _PARAGRAPHS and "MsoNormal" not in (tag.get("class") or ())
    _end_block(out, paragraph)
    if name == "li":
        out.add(_list_mark(tag))
    _render(tag, out)
    _end_block(out, paragraph)


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


def _render_quote(tag: Tag, out: _TextBuilder) -> None:
    """A blockquote nobody marked as history still reads as quoted: "> " before each line."""
    inner = _TextBuilder()
    _render(tag, inner)
    out.blank_line()
    for line in inner.text().split("\n"):
        out.add_raw(f"> {line}".rstrip())
        out.break_line()
    out.blank_line()


def _is_ruled_left(tag: Tag) -> bool:
    """A <div> with a solid bar on its left: how webmails (Mail.ru, Yandex, Zoho…) that use no
    <blockquote> mark a quote."""
    style = _style_of(tag)
    return _LEFT_BAR.search(style) is not None


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
