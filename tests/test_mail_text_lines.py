"""Text parts keep their lines in every locale: an inline `{% endif %}` at the end of a line
must not swallow the newline (trim_blocks), or the next line joins it ("…damagedThe parcel")."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from mailrelay.config import Config
from mailrelay.render import Templates

MAIL = Path(str(files("mailrelay") / "templates" / "mail"))
LOCALES = sorted(p.name for p in MAIL.iterdir() if (p / "report_pending.txt.j2").is_file())
URL = "http://reviews.test/console/acme/r/7"


@pytest.mark.parametrize("locale", LOCALES)
def test_the_owners_report_mail_keeps_title_and_text_on_their_own_lines(
    config: Config, locale: str,
) -> None:
    shop = config.shops[0]
    _subject, text, _html, used = Templates(config).render_text(
        shop, "report_pending", locale, shop_name=shop.name, review_id=7, stars=1,
        stars_bar="★☆☆☆☆", title="Broken", text="Arrived damaged.", reporter="a@acme.example",
        reason="spam", review_url=URL, moderation_url=URL)
    assert used == locale
    assert "\nArrived damaged.\n" in text, text


@pytest.mark.parametrize("locale", LOCALES)
def test_the_digest_gives_each_review_link_its_own_line(config: Config, locale: str) -> None:
    shop = config.shops[0]
    item = {"stars_bar": "★★☆☆☆", "stars": 2, "title": "Late", "age_days": 3, "url": URL}
    _subject, text, _html, used = Templates(config).render_text(
        shop, "digest", locale, shop_name=shop.name, reviews=[item, {**item, "title": None}],
        review_url="http://reviews.test/console/acme/", count=2)
    assert used == locale
    assert text.count(f"\n  {URL}\n") == 2, text
