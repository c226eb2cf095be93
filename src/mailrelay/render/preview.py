"""A review's preview image for sharing (Open Graph, 1200×630): PNG drawn with Pillow, and SVG.

Pure rendering from a `PreviewView`: reads font files, nothing else. A character that no font
found here can draw becomes a visible "□" in the PNG (never a silent gap); the SVG leaves the
font to the viewer, whose system fonts usually cover every script.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from html import escape
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["HEIGHT", "WIDTH", "PreviewView", "preview_png", "preview_svg"]

WIDTH, HEIGHT = 1200, 630
MISSING = "□"
STAR_COLOUR = "#b45309"
EMPTY_STAR = "#d4d4d8"
INK, MUTED = "#1d1d1b", "#52525b"
#: Fonts tried in order, per text: the first that has every character of it wins. Debian's
#: fonts-dejavu-core is nearly always there (Latin, Greek, Cyrillic, Hebrew, Arabic, …);
#: fonts-noto-core and fonts-noto-cjk add the rest. Without any, Pillow's own (Latin) font.
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/noto",
             "/usr/share/fonts/opentype/noto", "/usr/share/fonts/truetype/liberation")
REGULAR = ("DejaVuSans.ttf", "NotoSans-Regular.ttf", "NotoSansCJK-Regular.ttc",
           "LiberationSans-Regular.ttf")
BOLD = ("DejaVuSans-Bold.ttf", "NotoSans-Bold.ttf", "NotoSansCJK-Bold.ttc",
        "LiberationSans-Bold.ttf")
SVG_FONTS = "'DejaVu Sans', 'Noto Sans', 'Segoe UI', Roboto, Arial, sans-serif"

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Measure = Callable[[str], float]


@dataclass(frozen=True, kw_only=True)
class PreviewView:
    """What the image shows: the review's stars, title and excerpt, who wrote it, the shop."""

    shop_name: str
    stars: int
    title: str
    excerpt: str
    byline: str  # "Ann B. · 3 December 2026"
    score: str  # "4.5 / 5 · 12 reviews"
    accent: str = "#1d4ed8"


@cache
def _font_paths(bold: bool) -> tuple[Path, ...]:
    names = BOLD if bold else REGULAR
    return tuple(Path(folder) / name for name in names for folder in FONT_DIRS
                 if (Path(folder) / name).is_file())


@cache
def _font(path: Path | None, size: int) -> Font:
    if path is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(str(path), size)


@lru_cache(maxsize=65536)  # bounded: reviews may hold any of Unicode's million code points
def _has_glyph(path: Path, char: str) -> bool:
    """Whether the font draws `char` as itself, not as its "missing glyph" box: compared with
    the rendering of a code point no font has (Pillow has no glyph query of its own)."""
    if char.isspace():
        return True
    return _glyph_image(path, char) != _glyph_image(path, "\U0010fffd")


@lru_cache(maxsize=64)
def _glyph_image(path: Path, char: str) -> bytes:
    image = Image.new("L", (48, 48))
    ImageDraw.Draw(image).text((8, 8), char, font=_font(path, 24), fill=255)
    return image.tobytes()


def _pick(text: str, bold: bool, size: int) -> tuple[Font, str]:
    """The first font that covers `text`, else the one covering most, with the characters it
    lacks replaced by a visible box."""
    paths = _font_paths(bold)
    if not paths:
        latin = "".join(ch if ord(ch) < 0x250 or ch.isspace() else MISSING for ch in text)
        return _font(None, size), latin
    chars = set(text)
    best, best_missing = paths[0], chars
    for path in paths:
        missing = {ch for ch in chars if not _has_glyph(path, ch)}
        if not missing:
            return _font(path, size), text
        if len(missing) < len(best_missing):
            best, best_missing = path, missing
    return _font(best, size), "".join(MISSING if ch in best_missing else ch for ch in text)


def _wrap(text: str, limit: float, measure: Measure, max_lines: int) -> list[str]:
    """Lines of `text` no wider than `limit` (by `measure`), at most `max_lines`, the last
    ending in "…" when text was left over. Words longer than a line break between letters."""
    lines: list[str] = []
    current = ""
    for word in _pieces(" ".join(text.split()), measure, limit):
        candidate = f"{current} {word}".strip() if not word.startswith("\0") else current + word[1:]
        if current and measure(candidate) > limit:
            lines.append(current)
            current = word.lstrip("\0")
            if len(lines) == max_lines:
                break
        else:
            current = candidate
    else:
        if current:
            lines.append(current)
        return lines
    last = lines[-1]
    while last and measure(last + "…") > limit:
        last = last[:-1]
    lines[-1] = last.rstrip() + "…"
    return lines


def _pieces(text: str, size: Measure, limit: float) -> Iterator[str]:
    """Words; one too long for a line (or a script without spaces) in pieces that fit, each
    after the first marked with a leading NUL ("join without a space")."""
    for word in text.split(" "):
        if size(word) <= limit:
            yield word
            continue
        piece = ""
        first = True
        for char in word:
            if piece and size(piece + char) > limit:
                yield piece if first else "\0" + piece
                piece, first = "", False
            piece += char
        if piece:
            yield piece if first else "\0" + piece


def _star(cx: float, cy: float, outer: float) -> list[tuple[float, float]]:
    inner = outer * 0.5
    return [(cx + (outer if i % 2 == 0 else inner) * math.sin(i * math.pi / 5),
             cy - (outer if i % 2 == 0 else inner) * math.cos(i * math.pi / 5))
            for i in range(10)]


def preview_png(view: PreviewView) -> bytes:
    """The preview as a 1200×630 PNG."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "#ffffff")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 23, HEIGHT), fill=view.accent)
    left, right = 80, WIDTH - 80
    for n in range(5):
        draw.polygon(_star(left + 34 + n * 78, 96, 34),
                     fill=STAR_COLOUR if n < view.stars else EMPTY_STAR)
    y = 170
    if view.title:
        font, text = _pick(view.title, True, 52)
        for line in _wrap(text, right - left, font.getlength, 2):
            draw.text((left, y), line, font=font, fill=INK)
            y += 66
        y += 12
    font, text = _pick(view.excerpt, False, 34)
    lines = max(1, (470 - y) // 48)
    for line in _wrap(text, right - left, font.getlength, lines):
        draw.text((left, y), line, font=font, fill=INK)
        y += 48
    font, text = _pick(view.byline, False, 28)
    draw.text((left, 488), _wrap(text, right - left, font.getlength, 1)[0] if text else "",
              font=font, fill=MUTED)
    draw.line((left, 538, right, 538), fill=EMPTY_STAR, width=2)
    font, text = _pick(view.shop_name, True, 34)
    draw.text((left, 556), _wrap(text, 640, font.getlength, 1)[0], font=font, fill=INK)
    font, text = _pick(view.score, False, 30)
    draw.text((right, 560), text, font=font, fill=MUTED, anchor="ra")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def preview_svg(view: PreviewView) -> str:
    """The same preview as SVG (text wrapped by character count: SVG cannot measure)."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
             f' viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(view.title)}">',
             '<rect width="100%" height="100%" fill="#ffffff"/>',
             f'<rect width="24" height="{HEIGHT}" fill="{escape(view.accent)}"/>']
    for n in range(5):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in _star(114 + n * 78, 96, 34))
        parts.append(f'<polygon points="{points}"'
                     f' fill="{STAR_COLOUR if n < view.stars else EMPTY_STAR}"/>')
    y = 218
    texts: list[tuple[int, str, str, int, str]] = []
    if view.title:
        for line in _wrap(view.title, 34, len, 2):
            texts.append((y, line, "bold", 52, INK))
            y += 66
        y += 12
    for line in _wrap(view.excerpt, 56, len, max(1, (470 - y + 36) // 48)):
        texts.append((y, line, "normal", 34, INK))
        y += 48
    texts.append((518, _wrap(view.byline, 70, len, 1)[0] if view.byline else "", "normal", 28,
                  MUTED))
    texts.append((592, _wrap(view.shop_name, 30, len, 1)[0], "bold", 34, INK))
    for top, line, weight, size, colour in texts:
        parts.append(f'<text x="80" y="{top}" font-family="{SVG_FONTS}" font-size="{size}"'
                     f' font-weight="{weight}" fill="{colour}">{escape(line)}</text>')
    parts.append(f'<line x1="80" y1="538" x2="{WIDTH - 80}" y2="538" stroke="{EMPTY_STAR}"'
                 ' stroke-width="2"/>')
    parts.append(f'<text x="{WIDTH - 80}" y="592" text-anchor="end" font-family="{SVG_FONTS}"'
                 f' font-size="30" fill="{MUTED}">{escape(view.score)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
