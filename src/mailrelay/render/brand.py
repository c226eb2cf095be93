"""A shop's colours as pages and mail use them: its `accent_color` moved in small lightness
steps until every pair meets WCAG 2.x AA contrast (text 4.5:1, graphics 3:1). Pure; renders nothing.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

__all__ = ["NEUTRAL_ACCENT", "Brand", "brand_of", "contrast", "relative_luminance"]

NEUTRAL_ACCENT: Final = "#1d4ed8"
WHITE: Final = "#ffffff"
#: The dark text on a pale accent: near-black, as body text is.
INK: Final = "#111827"
#: The backgrounds accent text sits on, pages and mail: white cards, the page and quote greys.
BACKGROUNDS: Final = ("#ffffff", "#f6f6f4", "#f4f4f5", "#f3f4f6")
TEXT: Final = 4.5  # WCAG 1.4.3, normal-size text
GRAPHIC: Final = 3.0  # WCAG 1.4.11, non-text contrast (stars, focus rings, borders)
STEP: Final = 0.01  # one lightness step (HLS, 0..1)


def _channels(color: str) -> tuple[float, float, float]:
    value = color.lstrip("#")
    if len(value) != 6:
        raise ValueError(f"{color!r} is not #rrggbb")
    return (int(value[0:2], 16) / 255, int(value[2:4], 16) / 255, int(value[4:6], 16) / 255)


def _hex(red: float, green: float, blue: float) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, c)) * 255):02x}" for c in (red, green, blue))


def relative_luminance(color: str) -> float:
    """WCAG 2.x relative luminance of an sRGB "#rrggbb"."""

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(c) for c in _channels(color))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: str, second: str) -> float:
    """WCAG 2.x contrast ratio, 1.0 to 21.0, whichever colour is lighter."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)),
                             reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _passes(color: str, against: Sequence[str], ratio: float) -> bool:
    return all(contrast(color, other) >= ratio for other in against)


def _shift(color: str, delta: float) -> str:
    """`color` with its HLS lightness moved by `delta` (hue and saturation kept)."""
    hue, lightness, saturation = colorsys.rgb_to_hls(*_channels(color))
    return _hex(*colorsys.hls_to_rgb(hue, max(0.0, min(1.0, lightness + delta)), saturation))


def _step_until(color: str, against: Sequence[str], ratio: float, direction: float) -> str:
    """`color` moved in STEPs (direction -1 darker, +1 lighter) until it has `ratio` against
    all of `against`; the end of the scale (black or white) when no step gets there."""
    candidate = color
    for _ in range(int(1 / STEP) + 1):
        if _passes(candidate, against, ratio):
            return candidate
        candidate = _shift(candidate, direction * STEP)
    return "#000000" if direction < 0 else "#ffffff"


@dataclass(frozen=True)
class Brand:
    """The colours actually used for one shop; every pair is checked in tests/test_brand.py."""

    accent: str  # as configured
    link: str  # link and accent text on any of BACKGROUNDS: >= 4.5:1
    link_hover: str  # a darker link, still >= 4.5:1
    button: str  # button background
    button_text: str  # white or INK, >= 4.5:1 on `button`
    button_hover: str  # button background on hover/focus, `button_text` still >= 4.5:1 on it
    button_border: str  # the button's edge: >= 3:1 against BACKGROUNDS (a pale button shows)
    focus: str  # focus ring on BACKGROUNDS: >= 3:1
    star: str  # filled star glyphs on BACKGROUNDS: >= 3:1 (a graphic) and >= 4.5:1 (as text)

    def css_properties(self) -> str:
        """The CSS custom properties (`--accent-link: #…;` …) base.html.j2 puts on :root."""
        names = ("link", "link_hover", "button", "button_text", "button_hover",
                 "button_border", "focus", "star")
        return " ".join(f"--accent-{name.replace('_', '-')}: {getattr(self, name)};"
                        for name in names)


def _button(accent: str) -> tuple[str, str]:
    """(background, text): the accent with white or INK text, whichever contrasts more;
    when neither reaches 4.5:1 the background steps away from the text colour."""
    text = WHITE if contrast(accent, WHITE) >= contrast(accent, INK) else INK
    direction = -1.0 if text == WHITE else 1.0
    return _step_until(accent, (text,), TEXT, direction), text


@lru_cache(maxsize=256)  # pages ask on every request; the answer never changes
def brand_of(accent_color: str | None) -> Brand:
    """The colours for a shop whose accent is `accent_color` ("#rrggbb"; None = neutral)."""
    accent = (accent_color or NEUTRAL_ACCENT).lower()
    link = _step_until(accent, BACKGROUNDS, TEXT, -1.0)
    button, button_text = _button(accent)
    hover_direction = -1.0 if button_text == WHITE else 1.0
    hover = _shift(button, hover_direction * 0.08)
    if contrast(hover, button_text) < contrast(button, button_text):
        hover = button  # at the end of the scale: the colour cannot move further
    border = (button if _passes(button, BACKGROUNDS, GRAPHIC)
              else _step_until(button, BACKGROUNDS, GRAPHIC, -1.0))
    return Brand(
        accent=accent,
        link=link,
        link_hover=_step_until(_shift(link, -0.1), BACKGROUNDS, TEXT, -1.0),
        button=button,
        button_text=button_text,
        button_hover=hover,
        button_border=border,
        focus=_step_until(accent, BACKGROUNDS, GRAPHIC, -1.0),
        # Stars sit in lines of text at body size, where axe (rightly) asks 4.5:1 of glyphs.
        star=_step_until(accent, BACKGROUNDS, TEXT, -1.0),
    )
