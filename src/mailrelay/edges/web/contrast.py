"""WCAG contrast for a shop's accent colour: darkened until it reads on white."""

from __future__ import annotations

#: WCAG 2.1 AA: text 4.5:1 (1.4.3); stars and other graphics 3:1 (1.4.11).
TEXT = 4.5
GRAPHICS = 3.0


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_on_white(rgb: tuple[int, int, int]) -> float:
    return 1.05 / (_luminance(rgb) + 0.05)


def readable_on_white(color: str, ratio: float = TEXT) -> str:
    """`color` ("#rrggbb") as it is when it reaches `ratio` on white, else darkened just
    enough (mixed with black in small steps)."""
    rgb = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
    r, g, b = rgb
    for step in range(101):
        keep = 1 - step / 100
        mixed = (round(r * keep), round(g * keep), round(b * keep))
        if contrast_on_white(mixed) >= ratio:
            return "#{:02x}{:02x}{:02x}".format(*mixed)
    return "#000000"
