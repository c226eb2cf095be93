"""A shop's accent colour, whatever it is, becomes colours that meet WCAG 2.x AA contrast."""

from __future__ import annotations

import pytest

from mailrelay.render.brand import BACKGROUNDS, INK, WHITE, Brand, brand_of, contrast

HOSTILE = ["#ffffff", "#ffff00", "#000000", "#777777", "#ff0000", "#fef08a", "#1d4ed8",
           "#0a0a0a", "#00ff00", "#00ffff", "#808080"]


def test_contrast_follows_the_wcag_formula_at_its_known_points() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#ffffff", "#ffffff") == pytest.approx(1.0)
    # Published reference values (WebAIM's checker, WCAG 2.x formula).
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast("#ff0000", "#ffffff") == pytest.approx(4.0, abs=0.01)
    assert contrast("#6b7280", "#f3f4f6") == pytest.approx(4.39, abs=0.01)
    assert contrast("#1d4ed8", "#ffffff") == contrast("#ffffff", "#1d4ed8")


@pytest.mark.parametrize("accent", HOSTILE)
def test_every_colour_pair_passes_aa_whatever_the_shop_chose(accent: str) -> None:
    brand = brand_of(accent)
    for background in BACKGROUNDS:
        assert contrast(brand.link, background) >= 4.5, (brand, background)
        assert contrast(brand.link_hover, background) >= 4.5, (brand, background)
        assert contrast(brand.focus, background) >= 3.0, (brand, background)
        assert contrast(brand.star, background) >= 3.0, (brand, background)
        assert contrast(brand.button_border, background) >= 3.0, (brand, background)
    assert brand.button_text in (WHITE, INK)
    assert contrast(brand.button_text, brand.button) >= 4.5, brand
    assert contrast(brand.button_text, brand.button_hover) >= 4.5, brand


def test_a_colour_that_already_passes_is_used_as_chosen() -> None:
    brand = brand_of("#1d4ed8")
    assert (brand.link, brand.button, brand.button_text, brand.focus) == (
        "#1d4ed8", "#1d4ed8", WHITE, "#1d4ed8")


def test_pale_yellow_gets_dark_text_on_its_button_and_a_darker_yellow_for_links() -> None:
    brand = brand_of("#ffff00")
    assert brand.button == "#ffff00" and brand.button_text == INK
    assert brand.link != "#ffff00"
    red, green, blue = (int(brand.link[i:i + 2], 16) for i in (1, 3, 5))
    assert red == green and blue == 0  # still a yellow hue, only darker


def test_mid_grey_that_passes_with_neither_text_colour_is_moved_until_one_passes() -> None:
    assert contrast("#777777", WHITE) < 4.5
    brand = brand_of("#777777")
    assert contrast(brand.button_text, brand.button) >= 4.5


def test_pure_red_is_darkened_in_small_steps_not_replaced() -> None:
    brand = brand_of("#ff0000")
    assert brand.link.startswith("#") and brand.link != "#000000"
    red = int(brand.link[1:3], 16)
    assert red > 150 and contrast(brand.link, WHITE) < 5.0  # the first step that passes


def test_css_properties_name_every_colour_for_the_pages() -> None:
    css = brand_of("#ff0000").css_properties()
    for name in ("--accent-link:", "--accent-link-hover:", "--accent-button:",
                 "--accent-button-text:", "--accent-button-hover:", "--accent-button-border:",
                 "--accent-focus:", "--accent-star:"):
        assert name in css
    assert isinstance(brand_of(None), Brand)
