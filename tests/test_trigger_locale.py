"""The trigger locale (SPEC "Trigger locale"): block, Content-Language, HTML lang, the detected
language of the text, mapped to the shipped locales; the shop's locale when none says."""

from __future__ import annotations

import base64
import json
import quopri
import subprocess
import sys

import pytest

from mailrelay.parsing import locale as locale_module
from mailrelay.parsing import parse_trigger
from mailrelay.parsing import trigger as trigger_module
from mailrelay.parsing.locale import detect_language, html_lang, map_locale, shipped_locales

GERMAN = ("Hallo Klaus, vielen Dank für Ihre Bestellung. Ihr Paket wurde heute an DHL übergeben "
          "und wird in zwei bis drei Werktagen zugestellt. Bestellnummer #1057.")
DANISH = ("Hej Mette, tak for din ordre. Din pakke er afsendt i dag med GLS og bliver leveret "
          "inden for to til tre hverdage. Ordrenummer #1057.")
ENGLISH = ("Hi John, thank you for your order. Your parcel was handed to the carrier today and "
           "should arrive within two to three working days. Order #1057.")
#: A language mailrelay has no templates for (French was one until issue 13 made it built in).
PORTUGUESE = ("Olá Maria, obrigado pela sua encomenda. O seu pacote foi entregue hoje à "
              "transportadora e chegará dentro de dois a três dias úteis. Encomenda #1057.")
TEXTS = {"de": GERMAN, "da": DANISH, "en": ENGLISH}
#: Shipping notices in the languages issue 13 made built in, in our own words.
MORE_TEXTS = {
    "nb": ("Hei Ola, takk for bestillingen din. Pakken din ble sendt i dag med Posten og blir "
           "levert innen to til tre virkedager. Ordrenummer #1057."),
    "nl": ("Hallo Sanne, bedankt voor je bestelling. Je pakket is vandaag aan de vervoerder "
           "overgedragen en wordt binnen twee tot drie werkdagen bezorgd. Bestelnummer #1057."),
    "sv": ("Hej Anna, tack för din beställning. Ditt paket skickades i dag och levereras inom "
           "två till tre arbetsdagar. Ordernummer #1057."),
    "fi": ("Hei Matti, kiitos tilauksestasi. Pakettisi lähti tänään matkaan, ja se toimitetaan "
           "kahden tai kolmen arkipäivän kuluessa. Tilausnumero #1057."),
}


def trigger(body: str, *extra: str, ctype: str = "text/plain", cte: str = "8bit") -> bytes:
    """A trigger as it travels: the body in the given transfer encoding."""
    data = body.encode("utf-8")
    if cte == "quoted-printable":
        data = quopri.encodestring(data)
    elif cte == "base64":
        data = base64.encodebytes(data)
    head = [
        "From: Shop <shop@acme.example>",
        "To: =?utf-8?q?J=C3=B8rgen_M=C3=BCller?= <kunde@example.net>",
        "Subject: =?utf-8?b?" + base64.b64encode(b"Bestellung versandt").decode() + "?=",
        "Message-ID: <t1@acme.example>",
        "MIME-Version: 1.0",
        f'Content-Type: {ctype}; charset="utf-8"',
        f"Content-Transfer-Encoding: {cte}",
        *extra,
    ]
    return "\r\n".join(head).encode() + b"\r\n\r\n" + data


def html(text: str, lang: str | None = None) -> str:
    attr = f' lang="{lang}"' if lang else ""
    return f"<!DOCTYPE html><html{attr}><head><title>x</title></head><body><p>{text}</p></body>"


def block_html(text: str, locale: str) -> str:
    payload = json.dumps({"recipientEmail": "kunde@example.net", "locale": locale})
    return html(text) + f'<script type="application/json+mailrelay">{payload}</script>'


def locale_of(raw: bytes) -> tuple[str | None, str | None]:
    notice = parse_trigger(raw)
    assert notice.customer_email == "kunde@example.net"
    return notice.locale, notice.locale_source


@pytest.mark.parametrize("cte", ["8bit", "quoted-printable", "base64"])
@pytest.mark.parametrize("language", ["en", "de", "da"])
def test_the_text_s_language_is_detected_in_each_encoding(cte: str, language: str) -> None:
    assert locale_of(trigger(TEXTS[language], cte=cte)) == (language, "detected")


@pytest.mark.parametrize("cte", ["8bit", "quoted-printable", "base64"])
@pytest.mark.parametrize("language", ["en", "de", "da"])
def test_an_html_only_trigger_s_text_is_detected(cte: str, language: str) -> None:
    raw = trigger(html(TEXTS[language]), ctype="text/html", cte=cte)
    assert locale_of(raw) == (language, "detected")


@pytest.mark.parametrize("language", sorted(MORE_TEXTS))
def test_the_newer_built_in_languages_are_detected_and_danish_stays_danish(language: str) -> None:
    assert locale_of(trigger(MORE_TEXTS[language])) == (language, "detected")
    assert locale_of(trigger(DANISH)) == ("da", "detected")


def test_a_norwegian_content_language_gets_bokmal() -> None:
    raw = trigger(ENGLISH, "Content-Language: no-NO")
    assert locale_of(raw) == ("nb", "content-language")


@pytest.mark.parametrize("cte", ["8bit", "base64"])
def test_a_language_without_templates_leaves_the_shop_s_locale(cte: str) -> None:
    assert detect_language(PORTUGUESE) == "pt"
    assert locale_of(trigger(PORTUGUESE, cte=cte)) == (None, None)
    assert locale_of(trigger(html(PORTUGUESE, "pt"), ctype="text/html", cte=cte)) == (None, None)
    assert locale_of(trigger(PORTUGUESE, "Content-Language: pt-PT", cte=cte)) == (None, None)


def test_a_text_too_short_to_tell_leaves_the_shop_s_locale() -> None:
    assert locale_of(trigger("Shipped. #1057")) == (None, None)


def test_html_lang_maps_to_a_shipped_locale_and_beats_the_text() -> None:
    raw = trigger(html(ENGLISH, "de-AT"), ctype="text/html", cte="quoted-printable")
    assert locale_of(raw) == ("de", "html-lang")


def test_content_language_beats_html_lang_and_the_text() -> None:
    raw = trigger(html(GERMAN, "de"), "Content-Language: da-DK", ctype="text/html", cte="base64")
    assert locale_of(raw) == ("da", "content-language")


def test_an_unshipped_content_language_falls_through_to_the_next_source() -> None:
    raw = trigger(html(ENGLISH, "da"), "Content-Language: pt, ro", ctype="text/html")
    assert locale_of(raw) == ("da", "html-lang")
    assert locale_of(trigger(GERMAN, "Content-Language: pt-BR")) == ("de", "detected")


def test_the_block_s_locale_beats_every_other_source_as_written() -> None:
    raw = trigger(block_html(DANISH, "de-CH"), "Content-Language: da", ctype="text/html",
                  cte="quoted-printable")
    assert locale_of(raw) == ("de-CH", "block")


def test_the_full_reading_finds_the_same_locale_as_the_fast_one() -> None:
    raws = [trigger(GERMAN, "Content-Language: da"),
            trigger(html(ENGLISH, "de"), ctype="text/html", cte="base64"),
            trigger(DANISH, cte="quoted-printable")]
    for raw in raws:
        fast, full = trigger_module.fast_reading(raw, None), trigger_module.full_reading(raw, None)
        assert fast is not None
        assert (fast.locale, fast.locale_source) == (full.locale, full.locale_source)
    assert [trigger_module.full_reading(raw, None).locale_source for raw in raws] == [
        "content-language", "html-lang", "detected"]


def test_mapping_and_html_lang() -> None:
    shipped = shipped_locales()
    assert shipped == {"en", "de", "da", "nl", "sv", "nb", "fi", "fr", "es", "it", "pl"}
    assert map_locale("de-AT", shipped) == "de"
    assert map_locale("DA_dk", shipped) == "da"
    assert map_locale("pt;q=1, da;q=0.5", shipped) == "da"
    assert map_locale("no-NO", shipped) == "nb"
    assert map_locale("nn", shipped) == "nb"
    assert map_locale("pt", shipped) is None
    assert map_locale(None, shipped) is None
    assert html_lang(["<HTML xml:lang='x' LANG='da-DK'>"]) == "da-DK"
    assert html_lang(["<p lang='de'>no html element</p>"]) is None


def test_the_detector_is_not_built_at_import() -> None:
    code = ("import sys, mailrelay.parsing, mailrelay.services.parser_process; "
            "print('lingua' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_detector_failure_costs_the_locale_not_the_customer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> None:
        raise RuntimeError("no model")

    monkeypatch.setattr(locale_module, "_detector", broken)
    for raw in (trigger(GERMAN), trigger(GERMAN, "Subject: =?utf-8?b?broken")):
        notice = parse_trigger(raw)
        assert notice.customer_email == "kunde@example.net"
        assert (notice.locale, notice.locale_source) == (None, None)
