"""Reply extraction: what an agent wrote, once quoted history, attributions, header blocks and
signatures are gone, and whether it is safe to publish (fail closed)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from mailrelay.config import Config
from mailrelay.core.reply_marker import REPLY_MARKER
from mailrelay.render import ReviewView, Templates, TicketView, ticket_mail
from mailrelay.reply_text import Extraction, extract, text_of_html_reply

from .conftest import ConfigFactory, require_corpus
from .rendered import parse

BENCH = Path(__file__).resolve().parents[1] / "bench" / "replies_corpus.py"
KEY = "k7q2mzx4abcd3efg"
REPLY_TO = f"reply+{KEY}@relay.test"
AGENT = "Hi Ann,\n\nwe are sorry about the delay. The refund is on its way.\n\nBob"
QUOTED = "> The parcel came two weeks late.\n>\n> The shoes are fine though.\n"
UNQUOTED = "Dear shop,\n\nthe parcel came two weeks late.\n"
REVIEW = "The parcel came two weeks late.\n\nThe shoes are fine though."


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("replies_corpus", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def assert_published(result: Extraction, text: str = AGENT) -> None:
    assert result.text == text
    assert result.ok, result.reason
    assert result.reason is None


def assert_held(result: Extraction, reason: str) -> None:
    assert not result.ok
    assert result.reason == reason


def wrap(line: str, at: str) -> str:
    """The attribution as a client wraps it: a line break before `at`."""
    head, sep, tail = line.partition(at)
    assert sep, f"{at!r} not in {line!r}"
    return f"{head.rstrip()}\n{sep}{tail}"


# --------------------------------------------------------------------------- the corpus


def test_the_reply_corpus_is_at_least_95_percent_ok_and_leaks_nothing() -> None:
    bench = load_bench()
    require_corpus("replies")
    report = bench.score(bench.CORPUS)
    overall = report["overall"]
    assert overall["cases"] >= 86
    assert overall["leak"] == 0, report["failures"]
    assert overall["ok"] / overall["cases"] >= 0.95, report["failures"]


# --------------------------------------------------------------------------- attributions

ATTRIBUTIONS = {
    "en": f"On Mon, 3 Nov 2026 at 10:00, ACME Reviews <{REPLY_TO}> wrote:",
    "en-gmail-us": f"On Mon, Nov 3, 2026 at 10:00 AM ACME Reviews <{REPLY_TO}> wrote:",
    "en-apple": f"On 3 Nov 2026, at 10:00, ACME Reviews <{REPLY_TO}> wrote:",
    "de": f"Am Mo., 3. Nov. 2026 um 10:00 Uhr schrieb ACME Reviews <{REPLY_TO}>:",
    "de-apple": f"Am 03.11.2026 um 10:00 schrieb ACME Reviews <{REPLY_TO}>:",
    "de-inbox": f"ACME Reviews <{REPLY_TO}> schrieb am Mo., 3. Nov. 2026 um 10:00 Uhr:",
    "da": f"Den man. 3. nov. 2026 kl. 10.00 skrev ACME Reviews <{REPLY_TO}>:",
    "da-apple": f"Den 3. nov. 2026 kl. 10.00 skrev ACME Reviews <{REPLY_TO}>:",
    "nl": f"Op ma 3 nov 2026 om 10:00 schreef ACME Reviews <{REPLY_TO}>:",
    "nl-apple": f"Op 3 nov. 2026 om 10:00 heeft ACME Reviews <{REPLY_TO}> het volgende geschreven:",
    "fr": f"Le lun. 3 nov. 2026 à 10:00, ACME Reviews <{REPLY_TO}> a écrit :",
    "fr-nbsp": f"Le 3 nov. 2026 à 10:00, ACME Reviews <{REPLY_TO}> a écrit\u00a0:",
    "sv": f"Den mån 3 nov. 2026 kl 10:00 skrev ACME Reviews <{REPLY_TO}>:",
    "sv-apple": f"3 nov. 2026 kl. 10:00 skrev ACME Reviews <{REPLY_TO}>:",
    "no": f"man. 3. nov. 2026 kl. 10:00 skrev ACME Reviews <{REPLY_TO}>:",
    "no-apple": f"3. nov. 2026 kl. 10:00 skrev ACME Reviews <{REPLY_TO}>:",
    "es": f"El lun, 3 nov 2026 a las 10:00, ACME Reviews (<{REPLY_TO}>) escribió:",
    "es-apple": f"El 3 nov 2026, a las 10:00, ACME Reviews <{REPLY_TO}> escribió:",
}


@pytest.mark.parametrize("line", ATTRIBUTIONS.values(), ids=ATTRIBUTIONS.keys())
def test_an_attribution_and_the_quote_below_it_are_cut_in_every_language(line: str) -> None:
    result = extract(f"{AGENT}\n\n{line}\n\n{QUOTED}")
    assert_published(result)
    assert result.cut_at == "attribution"


@pytest.mark.parametrize("line", ATTRIBUTIONS.values(), ids=ATTRIBUTIONS.keys())
def test_an_attribution_wrapped_over_two_lines_is_still_one(line: str) -> None:
    result = extract(f"{AGENT}\n\n{wrap(line, '<')}\n\n{QUOTED}")
    assert_published(result)
    assert result.cut_at == "attribution"


@pytest.mark.parametrize("line", ATTRIBUTIONS.values(), ids=ATTRIBUTIONS.keys())
def test_an_attribution_followed_by_unquoted_history_cuts_it_all(line: str) -> None:
    result = extract(f"{AGENT}\n\n{wrap(line, '<')}\n\n{UNQUOTED}")
    assert_published(result)


@pytest.mark.parametrize(
    "wrapped",
    [
        "On Mon, Nov 3, 2026 at 10:00 AM ACME Reviews <\nreply+abc@relay.test> wrote:",
        "On Mon, Nov 3, 2026 at 10:00 AM\nACME Reviews <reply+abc@relay.test>\nwrote:",
        'Le 3 nov. 2026 10:00, "ACME Reviews"\n<reply+abc@relay.test>\na écrit :',
        'Am 03.11.2026 10:00 schrieb "ACME Reviews" <reply+abc@relay.test\n>:',
        "ACME Reviews <reply+abc@relay.test> schrieb am Mo., 3.\nNov. 2026 um 10:00 Uhr:",
        'Op 3 nov. 2026 10:00 schreef "ACME Reviews" <reply+abc@relay.test> het\n'
        "volgende geschreven:",
        "El lun, 3 nov 2026 a las 10:00, ACME Reviews (<\nreply+abc@relay.test>) escribió:",
        "On Mon, 3 Nov 2026 at 10:00 ACME Reviews\n\n<\nmailto:reply+abc@relay.test\n> wrote:",
        "On Mon, 3 Nov 2026\nat 10:00, ACME Reviews <reply+abc@relay.test> wrote:",
        "man. 3. nov. 2026 kl.\n10:00 skrev ACME Reviews <reply+abc@relay.test>:",
        "Den 3. nov. 2026 kl. 10.00 skrev\nACME Reviews <reply+abc@relay.test>:",
        "ACME Reviews\n<reply+abc@relay.test> wrote:",
    ],
)
def test_attributions_wrapped_over_two_or_three_lines_are_recognised(wrapped: str) -> None:
    result = extract(f"{AGENT}\n\n{wrapped}\n\n{UNQUOTED}")
    assert_published(result)
    assert result.cut_at == "attribution"


def test_an_undated_attribution_goes_with_the_quote_it_introduces() -> None:
    result = extract(f"{AGENT}\n\nAnn wrote:\n{QUOTED}")
    assert_published(result)
    assert result.cut_at == "attribution"
    assert_published(extract(f"{AGENT}\n\nAm Montag schrieb Ann Lee:\n\n{UNQUOTED}"))


def test_an_undated_attribution_above_unquoted_text_holds_the_reply() -> None:
    assert_held(extract(f"{AGENT}\n\nAnn wrote:\n{UNQUOTED}"), "attribution left")


ORDINARY = [
    "Hallo Frau Lee,\n\nam Montag, 3. Nov. 2026 haben wir das Paket versendet.\n"
    "Sendungsnummer: 12345\n\nViele Grüße\nBob",
    "Hej Ann,\n\nDen er sendt i dag kl. 10.00.\nFra: lageret i Aarhus\n\nMvh\nBob",
    "Beste Ann,\n\nOp maandag 3 november hebben we het pakket verzonden.\nVan harte,\nBob",
    "Bonjour Ann,\n\nLe colis a été envoyé le 3 nov. 2026 à 10:00.\nÀ bientôt,\nBob",
    "Hej Ann,\n\nDen 3 nov. skickade vi paketet.\nMvh Bob",
    "Hei Ann,\n\nPakken ble sendt man. 3. nov. 2026 kl. 10:00.\nHilsen Bob",
    "Hola Ann:\n\nEl paquete se envió el 3 de noviembre de 2026.\nDe: nuestro almacén\n"
    "Saludos,\nBob",
    "Hi Ann,\n\nOn Monday, 3 Nov, we shipped it.\nAt 10:00 it left the warehouse.\n\nBob",
    "Hi Ann,\n\nwe wrote to the carrier on 3 Nov and they replied:\nthe parcel was lost.\n\nBob",
    "Hi Ann,\n\nI wrote one of my own:\nhttps://acme.example/guide\n\nBob",
    "Hi Ann,\n\nTime: 10:00\nDate: 3 Nov\nSubject: your order\n\nBob",
    "Hi Ann,\n\nSent to you on Monday via DHL.\n\nBob",
    "Hi Ann,\n\nEmail us at help@acme.example: we answer fast.\n\nBob",
    "On this day\nI wrote something\nwhich was very interesting.\n\nBob",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_replies_in_every_language_pass_untouched(text: str) -> None:
    result = extract(text)
    assert_published(result, text)
    assert result.cut_at is None


# --------------------------------------------------------------------------- header blocks

HEADER_BLOCKS = {
    "en": "From: ACME Reviews <{a}>\nSent: Monday, November 3, 2026 10:00 AM\n"
    "To: Support <support@acme.example>\nSubject: Review for order #1057",
    "de": "Von: ACME Reviews <{a}>\nGesendet: Montag, 3. November 2026 10:00\n"
    "An: Support <support@acme.example>\nBetreff: Bewertung zu Bestellung #1057",
    "da": "Fra: ACME Reviews <{a}>\nSendt: 3. november 2026 10:00\n"
    "Til: Support <support@acme.example>\nEmne: Anmeldelse af ordre #1057",
    "nl": "Van: ACME Reviews <{a}>\nVerzonden: maandag 3 november 2026 10:00\n"
    "Aan: Support <support@acme.example>\nOnderwerp: Beoordeling",
    "fr": "De : ACME Reviews <{a}>\nEnvoyé : lundi 3 novembre 2026 10:00\n"
    "À : Support <support@acme.example>\nObjet : Avis sur la commande #1057",
    "sv": "Från: ACME Reviews <{a}>\nSkickat: den 3 november 2026 10:00\n"
    "Till: Support <support@acme.example>\nÄmne: Recension",
    "no": "Fra: ACME Reviews <{a}>\nSendt: mandag 3. november 2026 10:00\n"
    "Til: Support <support@acme.example>\nKopi: Lager <lager@acme.example>\nEmne: Anmeldelse",
    "es": "De: ACME Reviews <{a}>\nEnviado: lunes, 3 de noviembre de 2026 10:00\n"
    "Para: Support <support@acme.example>\nAsunto: Reseña del pedido #1057",
    "es-enviado-el": "De: ACME Reviews <{a}>\nEnviado el: lunes, 3 de noviembre de 2026 10:00\n"
    "Para: Support <support@acme.example>\nCC: Almacén <almacen@acme.example>\nAsunto: Reseña",
    "en-bold": "*From:* ACME Reviews [mailto:{a}]\n*Sent:* Monday, November 3, 2026 10:00 AM\n"
    "*To:* Support\n*Subject:* Review",
}


@pytest.mark.parametrize("block", HEADER_BLOCKS.values(), ids=HEADER_BLOCKS.keys())
def test_an_outlook_header_block_cuts_in_every_language(block: str) -> None:
    result = extract(f"{AGENT}\n\n{block.format(a=REPLY_TO)}\n\n{UNQUOTED}")
    assert_published(result)
    assert result.cut_at == "header_block"


@pytest.mark.parametrize(
    "separator",
    [
        "-----Original Message-----",
        "-----Ursprüngliche Nachricht-----",
        "-------- Original message --------",
        "---------- Forwarded message ---------",
        "-----Oprindelig meddelelse-----",
        "-----Message d'origine-----",
        "-----Mensaje original-----",
        "Begin forwarded message:",
        "Anfang der weitergeleiteten Nachricht:",
        "Début du message réexpédié :",
        "Inicio del mensaje reenviado:",
        "Videresendt meddelelse:",
        "Start på videresendt melding:",
        "Vidarebefordrat mejl:",
        "Begin doorgestuurd bericht:",
        "________________________________",
        "_____________________________________________",
    ],
)
def test_separator_lines_cut_the_history_below_them(separator: str) -> None:
    result = extract(f"{AGENT}\n{separator}\n{UNQUOTED}")
    assert_published(result)
    assert result.cut_at == "separator"


def test_a_lone_from_line_in_the_text_is_no_header_block() -> None:
    text = "Hi Ann,\n\nFrom: our warehouse in Aarhus, the parcel left on Monday.\n\nBob"
    assert_published(extract(text), text)


# --------------------------------------------------------------------------- signatures


def test_the_dash_dash_space_delimiter_cuts_the_signature() -> None:
    result = extract(f"{AGENT}\n\n-- \nBob Smith\nACME Customer Care\n+45 12 34 56 78")
    assert_published(result)
    assert result.cut_at == "signature"


@pytest.mark.parametrize(
    "signature",
    [
        "Sent from my iPhone",
        "Sent from my Android",
        "Sent from my Samsung Galaxy smartphone.",
        "Von meinem iPhone gesendet",
        "Gesendet von meinem iPad",
        "Sendt fra min iPhone",
        "Verzonden vanaf mijn iPhone",
        "Envoyé de mon iPhone",
        "Skickat från min iPhone",
        "Enviado desde mi iPhone",
        "Get Outlook for iOS",
        "Get Outlook for Android<https://aka.ms/AAb9ysg>",
        "Hent Outlook til iOS",
    ],
)
def test_mobile_signatures_in_several_languages_are_cut(signature: str) -> None:
    result = extract(f"{AGENT}\n\n{signature}\n")
    assert_published(result)
    assert result.cut_at == "signature"


def test_a_sentence_that_starts_like_a_mobile_signature_is_kept() -> None:
    text = "Hi Ann,\n\nSent from my desk, which is easier than from my mobile phone."
    assert_published(extract(text), text)


def test_a_dash_dash_inside_a_line_is_no_signature() -> None:
    text = "Hi Ann,\n\nhere is a fix -- not a signature.\n\nBob"
    assert_published(extract(text), text)


# --------------------------------------------------------------------------- what we control


def test_our_marker_cuts_the_quoted_ticket() -> None:
    result = extract(f"{AGENT}\n\n{REPLY_MARKER}\n\nNew review for ACME Shoes\n[mr:{KEY}]\n")
    assert_published(result)
    assert result.cut_at == "marker"


def test_an_answer_below_the_quoted_review_is_kept_not_refused_as_empty() -> None:
    review = "The parcel came two weeks late and the box was crushed on one side."
    reply = f"> {review}\n\n{AGENT}\n"
    assert_published(extract(reply, known_texts=[review]))
    pasted = f"{AGENT}\n\n{review}\n\nThanks again."  # unquoted: still cut where it starts
    result = extract(pasted, known_texts=[review])
    assert_published(result)
    assert result.cut_at == "known_text"


def test_our_marker_cuts_also_when_quoted() -> None:
    ticket = f"> {REPLY_MARKER}\n>\n> New review for ACME Shoes\n> [mr:{KEY}]\n"
    result = extract(f"{AGENT}\n\n{ATTRIBUTIONS['en']}\n\n{ticket}")
    assert_published(result)
    assert result.cut_at == "marker"


def test_our_marker_cuts_also_when_a_client_reflowed_it() -> None:
    ticket = "> ##- Please type your reply\n> above this line -##\n> New review\n"
    assert_published(extract(f"{AGENT}\n\n{ticket}"))
    flowed = "Thanks, refunded. ##- Please type your reply above\nthis line -## New review"
    assert_published(extract(flowed), "Thanks, refunded.")


def test_a_reply_written_below_our_marker_is_held_as_empty() -> None:
    result = extract(f"{REPLY_MARKER}\n\nNew review\n[mr:{KEY}]\n\nSorry, Ann!")
    assert_held(result, "empty")
    assert result.cut_at == "marker"


def test_a_text_we_sent_cuts_the_reply_where_it_appears_reflowed_or_quoted() -> None:
    review = (
        "The parcel came two weeks late and the box was crushed on one side, "
        "but the shoes themselves are fine."
    )
    quoted = (
        "> The parcel came two weeks late and the box was\n"
        "> crushed on one side, but the shoes themselves are fine."
    )
    result = extract(f"{AGENT}\n\n{quoted}", known_texts=[review])
    assert_published(result)
    indented = "  The parcel came two weeks late and the box\n  was crushed on one side, but"
    assert_published(extract(f"{AGENT}\n\n{indented}", known_texts=[review]))


def test_a_known_text_shorter_than_forty_characters_cuts_nothing() -> None:
    text = "Hi Ann,\n\nYou said: too late. We agree.\n\nBob"
    assert_published(extract(text, known_texts=["too late. We agree."]), text)


def reply_to_ticket(make_config: ConfigFactory, locale: str) -> tuple[str, str]:
    """(text, html) of a real ticket in the shop's language, as an agent's client quotes it."""
    config: Config = make_config(shop_extra=f'locale = "{locale}"')
    review = {
        "id": 42, "stars": 2, "title": "Late delivery", "text": REVIEW,
        "reviewer_name": "Ann Lee", "customer_email": "ann@customer.example",
        "reference": "#1057", "method": "automatic", "created_at": "2026-11-20T09:00:00+00:00",
    }  # fmt: skip
    view = TicketView(
        to_email="support@acme.example", reply_to=REPLY_TO, key=KEY, review=ReviewView(**review),
        products=None, context={}, public_url="http://reviews.test/s/acme", answered_by=None,
        auto_response=None, updated=False,
    )  # fmt: skip
    mail = ticket_mail(Templates(config), config, config.shops[0], view,
                       now=datetime(2026, 11, 20, 9, 30, tzinfo=UTC))
    message = parse(mail)
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


@pytest.mark.parametrize("locale", ["en", "de", "da"])
def test_a_gmail_reply_quoting_our_ticket_keeps_only_the_agent_text(
    make_config: ConfigFactory, locale: str
) -> None:
    ticket, _ = reply_to_ticket(make_config, locale)
    quoted = "\n".join(f"> {line}".rstrip() for line in ticket.split("\n"))
    result = extract(f"{AGENT}\n\n{ATTRIBUTIONS['en']}\n\n{quoted}", known_texts=[REVIEW])
    assert_published(result)
    assert result.cut_at == "marker"


def test_a_german_outlook_reply_is_cut_at_the_ticket(make_config: ConfigFactory) -> None:
    ticket, _ = reply_to_ticket(make_config, "de")
    agent = "Hallo Ann,\n\nentschuldigen Sie die Verspätung.\n\nViele Grüße\nBob"
    block = HEADER_BLOCKS["de"].format(a=REPLY_TO)
    result = extract(f"{agent}\n\n{block}\n\n{ticket}")
    assert_published(result, agent)
    assert result.cut_at == "marker"
    without_ticket = extract(f"{agent}\n\n{block}\n\nHallo,\ndas Paket kam zu spät.")
    assert_published(without_ticket, agent)
    assert without_ticket.cut_at == "header_block"


def test_a_danish_apple_mail_reply_is_cut_at_the_quote() -> None:
    agent = "Hej Ann,\n\nvi beklager forsinkelsen.\n\nVenlig hilsen\nBob"
    attribution = f"> Den 3. nov. 2026 kl. 10.00 skrev ACME Reviews <{REPLY_TO}>:"
    text = f"{agent}\n\nSendt fra min iPhone\n\n{attribution}\n>\n{QUOTED}"
    result = extract(text)
    assert_published(result, agent)
    assert result.cut_at == "signature"
    assert_published(extract(f"{agent}\n\n{attribution}\n>\n{QUOTED}"), agent)


# --------------------------------------------------------------------------- fail closed


def test_a_reply_of_only_quoted_text_is_held_as_empty() -> None:
    result = extract(f"{ATTRIBUTIONS['en']}\n\n{QUOTED}")
    assert_held(result, "empty")
    assert result.text == ""


@pytest.mark.parametrize("text", [None, "", "  \n\n ", "-- \nBob"])
def test_nothing_to_publish_is_held_as_empty(text: str | None) -> None:
    assert_held(extract(text), "empty")


def test_a_reply_address_left_in_the_text_holds_the_reply() -> None:
    result = extract("Hi Ann,\n\nwrite to reply+abc@relay.test if you need more.\n\nBob")
    assert_held(result, "reply address left")


def test_our_key_left_in_the_text_holds_the_reply() -> None:
    assert_held(extract(f"Hi Ann,\n\nsorry.\n\n[mr:{KEY}]"), "marker left")


def test_a_quoted_line_that_survives_the_cuts_holds_the_reply() -> None:
    result = extract("Hi Ann,\n\n```\n> The parcel came late.\n```\n\nBob")
    assert_held(result, "quoted line left")


def test_an_attribution_that_survives_the_cuts_holds_the_reply() -> None:
    attribution = "Am Mo., 3. Nov. 2026 um 10:00 Uhr schrieb Ann Lee <ann@customer.example>:"
    text = f"Hi Ann,\n\n```\n{attribution}\n```\n\nBob"
    assert_held(extract(text), "attribution left")


def test_an_unmarked_forward_is_held_rather_than_published() -> None:
    forward = (
        "---------- Forwarded message ---------\nFrom: Ann Lee <ann@customer.example>\n"
        "Date: Mon, 3 Nov 2026 at 10:00\nSubject: My order\nTo: <support@acme.example>\n\n"
        "Please cancel my order.\n"
    )
    assert_held(extract(forward), "empty")


def test_top_posting_with_inline_quotes_below_is_cut() -> None:
    text = (
        f"{AGENT}\n\n> The parcel came two weeks late.\n\nI agree.\n\n> The shoes are fine.\n"
        f"\n{ATTRIBUTIONS['en']}\n> older history\n"
    )
    result = extract(text)
    assert result.ok
    assert "parcel came" not in result.text and "older history" not in result.text
    assert result.text.startswith(AGENT)
    assert result.cut_at == "quote"


def test_inline_answers_between_quoted_lines_are_kept_without_the_quotes() -> None:
    text = (
        f"{ATTRIBUTIONS['en']}\n\n> Why was it late?\n\nThe carrier lost it.\n\n> Refund?\n\nYes."
    )
    assert_published(extract(text), "The carrier lost it.\n\nYes.")


def test_a_quoted_line_rewrapped_without_its_prefix_goes_with_the_quote() -> None:
    quoted = "> The parcel came two weeks late and the box was\ncrushed.\n> Shoes are fine.\n"
    result = extract(f"{AGENT}\n\n{ATTRIBUTIONS['en']}\n{quoted}")
    assert_published(result)


INLINE_ANSWERS = {
    "en": ("> Can I change the colour to navy?", "Yes, done - navy it is."),
    "es": ("> ¿Envían a Canarias?", "Sí 👍"),
    "pl": ("> Czy mogę zapłacić przy odbiorze?", "Tak, oczywiście."),
    "ta": ("> இந்த புடவை காட்டன் தானா?", "ஆம், 100% பருத்தி."),
    "ja": ("> 来週までに届きますか？", "はい、明日発送します。"),
    "ar": ("> هل يمكنني الدفع عند الاستلام؟", "نعم بالتأكيد"),
    "lv": ("> Paku nosūtījāt šodien.", "Jā"),
    "sw": ("> Mnasafirisha hadi Mombasa", "Ndiyo"),
    "hi": ("> क्या यह साड़ी सूती है और क्या इसका रंग धुलने के बाद भी वैसा ही रहेगा।", "हाँ, बिल्कुल।"),
    "am": ("> ትዕዛዜ መቼ ይደርሳል ብዬ ጠይቄያለሁ፣ እባክዎን በተቻለ ፍጥነት ይንገሩኝ እና ቁጥሩን ላኩልኝ።", "ነገ።"),
}


def test_a_lower_case_answer_under_a_short_quoted_line_is_kept() -> None:
    text = f"{ATTRIBUTIONS['en']}\n> Colour navy\nok\n> Size M\nok, done"
    assert_published(extract(text), "ok\n\nok, done")


@pytest.mark.parametrize(("question", "answer"), INLINE_ANSWERS.values(), ids=INLINE_ANSWERS)
def test_a_short_inline_answer_right_between_quoted_questions_is_kept(
    question: str, answer: str
) -> None:
    text = f"{ATTRIBUTIONS['en']}\n{question}\n{answer}\n> {question[2:]} 2\nThanks"
    assert_published(extract(text), f"{answer}\n\nThanks")


REWRAPPED = {
    "en": "> Our parcel came two weeks late and the box that it was packed in was\nBadly",
    "de": "> Das Paket kam zwei Wochen zu spät an und der Karton, in dem es lag, war\nStark",
    "pt": "> A encomenda chegou duas semanas atrasada e a caixa em que vinha estava\nToda",
    "ja": "> 荷物は予定より二週間も遅れて届きましたが、箱が潰れていて中の靴も少し\n汚れて",
}


REWRAPPED["link"] = "> You can follow it here:\nhttps://carrier.example/track?id=RB221334556"
REWRAPPED["lower"] = "> La caja llegó aplastada y con una esquina\nabierta"


RUN_ON = {
    "en": (
        "> Thanks for the quick help. The parcel came today.",
        "Sadly",
        "> the lid is cracked.",
    ),
    "fr": (
        "> Merci pour votre aide. Le colis est arrivé hier.",
        "Hélas",
        "> le couvercle est fendu.",
    ),
    "pl": (
        "> Dziękuję za pomoc. Paczka przyszła dzisiaj.",
        "Niestety",
        "> pokrywka jest pęknięta.",
    ),
    "yo": (
        "> E se fun iranlọwọ yin. Ẹru naa de loni.",
        "Laanu",
        "> ideri rẹ ti fọ.",
    ),
}


@pytest.mark.parametrize(("quoted", "fragment", "rest"), RUN_ON.values(), ids=RUN_ON)
def test_a_fragment_that_a_lower_case_quoted_line_continues_is_quoted_too(
    quoted: str, fragment: str, rest: str
) -> None:
    text = f"{AGENT}\n\n{ATTRIBUTIONS['en']}\n{quoted}\n{fragment}\n{rest}\n"
    assert_published(extract(text))


@pytest.mark.parametrize("quoted", REWRAPPED.values(), ids=REWRAPPED)
def test_a_long_unfinished_quoted_line_continued_without_its_prefix_is_still_quoted(
    quoted: str,
) -> None:
    text = f"{AGENT}\n\n{ATTRIBUTIONS['en']}\n{quoted}\n> crushed and dirty.\n"
    assert_published(extract(text))


def test_directives_at_the_top_are_kept() -> None:
    agent = "#note\n#tag carrier\n#report spam by a competitor\n\nInternal: check DHL."
    result = extract(f"{agent}\n\n{ATTRIBUTIONS['en']}\n\n{QUOTED}")
    assert_published(result, agent)


def test_code_fences_protect_hash_and_dash_lines() -> None:
    text = "Try this:\n\n```\n# comment\n--\n####\n```\n\nBob"
    assert_published(extract(text), text)


# --------------------------------------------------------------------------- HTML


def test_text_plain_is_preferred_and_html_used_only_without_it() -> None:
    html = "<div>From the HTML part.</div>"
    assert extract("From the text part.", html).text == "From the text part."
    assert extract("  \n", html).text == "From the HTML part."
    assert extract(None, html).text == "From the HTML part."


@pytest.mark.parametrize("locale", ["en", "de"])
def test_a_gmail_html_reply_drops_the_gmail_quote(make_config: ConfigFactory, locale: str) -> None:
    _, ticket = reply_to_ticket(make_config, locale)
    html = (
        '<div dir="ltr">Hi Ann,<div><br></div><div>we are sorry about the delay. The refund is '
        'on its way.</div><div><br></div><div>Bob</div></div><br><div class="gmail_quote '
        'gmail_quote_container"><div dir="ltr" class="gmail_attr">On Mon, 3 Nov 2026 at 10:00, '
        f'ACME Reviews &lt;<a href="mailto:{REPLY_TO}">{REPLY_TO}</a>&gt; wrote:<br></div>'
        f'<blockquote class="gmail_quote" style="margin:0 0 0 .8ex">{ticket}</blockquote></div>'
    )
    result = extract(None, html)
    assert_published(result)


def test_an_outlook_web_reply_drops_everything_from_appendonsend() -> None:
    html = (
        "<html><head><style>p{margin:0}</style></head><body>"
        "<div>Hi Ann,</div><div><br></div><div>we are sorry about the delay. The refund is on "
        "its way.</div><div><br></div><div>Bob</div>"
        '<div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1">'
        '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri"><b>From:</b> ACME Reviews '
        f"&lt;{REPLY_TO}&gt;<br><b>Sent:</b> Monday, November 3, 2026 10:00 AM<br>"
        "<b>To:</b> Support<br><b>Subject:</b> Review</font><div>&nbsp;</div></div>"
        "<div>The parcel came two weeks late.</div></body></html>"
    )
    assert_published(extract(None, html))


def test_an_outlook_reply_drops_everything_from_div_rply_fwd_msg() -> None:
    html = (
        "<div>Hi Ann,</div><div><br></div><div>we are sorry about the delay. The refund is on "
        "its way.</div><div><br></div><div>Bob</div>"
        '<div id="divRplyFwdMsg"><b>From:</b> ACME Reviews<br><b>Sent:</b> Monday</div>'
        "<div>The parcel came two weeks late.</div>"
    )
    assert_published(extract(None, html))


def test_an_outlook_desktop_reply_drops_the_border_top_header_and_all_after() -> None:
    html = (
        "<html><head><!--[if gte mso 9]><xml><o:shapedefaults /></xml><![endif]--></head>"
        '<body lang="DE"><div class="WordSection1">'
        '<p class="MsoNormal">Hallo Ann,<o:p></o:p></p>'
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>'
        '<p class="MsoNormal">entschuldigen Sie die Verspätung.<o:p></o:p></p>'
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>'
        '<p class="MsoNormal">Viele Grüße<o:p></o:p></p><p class="MsoNormal">Bob<o:p></o:p></p>'
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p><div>'
        '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">'
        '<p class="MsoNormal"><b>Von:</b> ACME Reviews &lt;reply+abc@relay.test&gt;<br>'
        "<b>Gesendet:</b> Montag, 3. November 2026 10:00<br><b>An:</b> Support<br>"
        "<b>Betreff:</b> Bewertung<o:p></o:p></p></div></div>"
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p><p class="MsoNormal">Das Paket kam zu spät.</p>'
        "</div></body></html>"
    )
    agent = "Hallo Ann,\n\nentschuldigen Sie die Verspätung.\n\nViele Grüße\nBob"
    assert_published(extract(None, html), agent)


def test_an_apple_mail_reply_drops_the_cite_blockquote() -> None:
    html = (
        '<html><body dir="auto">Hi Ann,<div><br></div><div>we are sorry about the delay. The '
        "refund is on its way.</div><div><br></div><div>Bob</div><div><br>"
        f'<blockquote type="cite">On 3 Nov 2026, at 10:00, ACME Reviews &lt;{REPLY_TO}&gt; '
        "wrote:<br><br><div>The parcel came two weeks late.</div></blockquote></div></body></html>"
    )
    assert_published(extract(None, html))


def test_a_danish_apple_mail_html_reply_drops_signature_and_quote() -> None:
    html = (
        '<html><body dir="auto">Hej Ann,<div><br></div><div>vi beklager.</div>'
        '<div><br id="lineBreakAtBeginningOfSignature"><div dir="ltr">Sendt fra min iPhone</div>'
        '<div dir="ltr"><br><blockquote type="cite">Den 3. nov. 2026 kl. 10.00 skrev ACME '
        f"Reviews &lt;{REPLY_TO}&gt;:<br><br></blockquote></div>"
        '<blockquote type="cite"><div dir="ltr">Pakken kom for sent.</div></blockquote></div>'
        "</body></html>"
    )
    assert_published(extract(None, html), "Hej Ann,\n\nvi beklager.")


def test_thunderbird_and_yahoo_quotes_are_dropped() -> None:
    thunderbird = (
        "<p>Hi Ann,</p><p>we are sorry.</p>"
        '<div class="moz-cite-prefix">On 03.11.26 10:00, ACME Reviews wrote:<br></div>'
        '<blockquote type="cite" cite="mid:x@relay.test">The parcel came late.</blockquote>'
    )
    assert_published(extract(None, thunderbird), "Hi Ann,\n\nwe are sorry.")
    yahoo = (
        "<div>Hi Ann, we are sorry.</div>"
        '<div class="yahoo_quoted"><div>On Monday, ACME Reviews wrote:</div>'
        "<div>The parcel came late.</div></div>"
    )
    assert_published(extract(None, yahoo), "Hi Ann, we are sorry.")


def test_a_gmx_reply_drops_its_quote_container() -> None:
    html = (
        "<div>Hallo Ann,</div><div>&nbsp;</div><div>entschuldigen Sie bitte.</div>"
        '<div name="quote" style="margin:10px 5px 5px 10px"><div><b>Gesendet:</b> Montag, '
        "03. November 2026 um 10:00 Uhr<br><b>Von:</b> ACME Reviews<br><b>An:</b> Support</div>"
        '<div name="quoted-content">Das Paket kam zu spät.</div></div>'
    )
    assert_published(extract(None, html), "Hallo Ann,\n\nentschuldigen Sie bitte.")


def test_absurdly_nested_html_still_loses_its_quote() -> None:
    html = "<div>" * 3000 + 'Thanks.<div class="gmail_quote">On Mon, X wrote: secret</div>'
    assert text_of_html_reply(html + "</div>" * 3000) == "Thanks."


def test_an_html_reply_from_an_unknown_client_is_cut_at_our_marker(
    make_config: ConfigFactory,
) -> None:
    _, ticket = reply_to_ticket(make_config, "en")
    html = f"<div>Thanks, refunded.</div><div>Bob</div><br><div>{ticket}</div>"
    result = extract(None, html)
    assert_published(result, "Thanks, refunded.\nBob")
    assert result.cut_at == "marker"


def test_our_hidden_key_and_invisible_elements_never_become_text() -> None:
    html = (
        '<div style="display:none">preheader</div><div>Thanks.</div>'
        f'<div style="display: none" data-mailrelay-key="{KEY}">mr:{KEY}</div>'
        "<!-- a comment --><style>p {{color: red}}</style>"
    )
    assert text_of_html_reply(html) == "Thanks."


def test_an_unmarked_blockquote_reads_as_quoted_text() -> None:
    html = "<div>Thanks.</div><blockquote><div>The parcel came late.</div></blockquote>"
    assert text_of_html_reply(html) == "Thanks.\n\n> The parcel came late."
    assert_published(extract(None, html), "Thanks.")


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("https://acme.example/returns", "https://acme.example/returns"),
        ("notes.txt", "notes.txt"),
        ('<?xml version="1.0"?><note>Thanks.</note>', "Thanks."),
    ],
)
def test_html_that_looks_like_a_url_or_xml_converts_without_warnings(html: str, text: str) -> None:
    assert text_of_html_reply(html) == text  # filterwarnings = error: a bs4 warning would fail here


def test_html_becomes_plain_text_without_markdown() -> None:
    html = (
        "<h2>Sorry</h2><p><b>Bold</b> and <i>italic</i>, <code>code</code> and "
        '<a href="https://acme.example/returns">our returns page</a>.</p>'
        "<ul><li>one</li><li>two</li></ul><ol><li>first</li><li>second</li></ol>"
        "<p>1. not a list<br>-- not a signature here</p>"
    )
    assert text_of_html_reply(html) == (
        "Sorry\n\nBold and italic, code and our returns page (https://acme.example/returns).\n\n"
        "- one\n- two\n\n1. first\n2. second\n\n1. not a list\n-- not a signature here"
    )


# --------------------------------------------------------------------------- issue 10: shapes
# Replies as clients in other languages write them; the rules must hold by shape, not by the
# one phrase seen here (issue 10 §1).

OWN_CORPUS = Path(__file__).resolve().parent / "corpus" / "replies"
TEMPLATES = Path(__file__).resolve().parents[1] / "src" / "mailrelay" / "templates" / "mail"

# Attributions without a verb we list, or with none at all, as those clients write them.
SHAPED_ATTRIBUTIONS = {
    "ja-gmail": "2026年11月3日(月) 10:00 山田 太郎 <taro.yamada@kaimono.example>:",
    "ja-ios": "2026/11/03 10:00、山田太郎 <taro.yamada@kaimono.example>のメール:",
    "ja-no-address": "2026/11/03 10:00、山田太郎のメール:",
    "zh-tw-gmail": "張偉 <zhang.wei@maijia.example> 於 2026年11月3日 週一 上午10:00寫道：",
    "ko-gmail": "2026년 11월 3일 (월) 오전 10:00, 김민준 <minjun.kim@sangjeom.example>님이 작성:",
    "ru-gmail": "пн, 3 нояб. 2026 г. в 10:00, Иван Петров <ivan.petrov@pokupka.example>:",
    "ru-yandex": '03.11.2026, 10:00, "Иван Петров" <ivan.petrov@pokupka.example>:',
    "ru-mailru": "Понедельник, 3 ноября 2026, 10:00 +03:00 от Иван Петров "
    "<ivan.petrov@pokupka.example>:",
    "uk-ukrnet": '3 листопада 2026, 10:00:12, від "Олена Коваль" <olena.koval@kramnytsia.example>:',
    "pl-thunderbird": "W dniu 3.11.2026 o 10:00, Jan Kowalski pisze:",
    "pl-gmail": "pon., 3 lis 2026 o 10:00 Jan Kowalski <jan.kowalski@sklep.example> napisał(a):",
    "cs-gmail": "po 3. 11. 2026 v 10:00 odesílatel Petr Novák <petr.novak@obchod.example> napsal:",
    "hu-gmail": "Kovács Anna <anna.kovacs@bolt.example> ezt írta (időpont: 2026. nov. 3., H, "
    "10:00):",
    "tr-gmail": "Ayşe Yılmaz <ayse.yilmaz@magaza.example>, 3 Kas 2026 Pzt, 10:00 tarihinde şunu "
    "yazdı:",
    "el-gmail": "Στις Δευ 3 Νοε 2026 στις 10:00, ο/η Γιώργος Παπαδόπουλος "
    "<g.papadopoulos@katastima.example> έγραψε:",
    "fi-gmail": "ma 3. marrask. 2026 klo 10.00 Matti Virtanen (matti.virtanen@kauppa.example) "
    "kirjoitti:",
    "ro-gmail": "Pe lun., 3 nov. 2026 la 10:00, Andrei Popescu <andrei.popescu@magazin.example> "
    "a scris:",
    "it-apple": "Il giorno 3 nov 2026, alle ore 10:00, Marco Rossi <marco.rossi@negozio.example> "
    "ha scritto:",
    "pt-gmail": "Em seg., 3 de nov. de 2026 às 10:00, João Silva <joao.silva@loja.example> "
    "escreveu:",
    "en-angle": "Mon 3 Nov 2026 10:00 ‹ann.lee@customer.example›:",
    "sv-time-first": "10:00 3/11/2026 Ann Lee <ann.lee@customer.example>:",
}


@pytest.mark.parametrize("line", SHAPED_ATTRIBUTIONS.values(), ids=SHAPED_ATTRIBUTIONS.keys())
def test_an_attribution_is_known_by_its_shape_in_any_language(line: str) -> None:
    result = extract(f"{AGENT}\n\n{line}\n\n{QUOTED}")
    assert_published(result)
    assert result.cut_at == "attribution"


@pytest.mark.parametrize("line", SHAPED_ATTRIBUTIONS.values(), ids=SHAPED_ATTRIBUTIONS.keys())
def test_a_shaped_attribution_above_unquoted_history_cuts_it_all(line: str) -> None:
    assert_published(extract(f"{AGENT}\n\n{line}\n\n{UNQUOTED}"))


@pytest.mark.parametrize(
    "line",
    [line for line in SHAPED_ATTRIBUTIONS.values() if " <" in line],
    ids=[key for key, line in SHAPED_ATTRIBUTIONS.items() if " <" in line],
)
def test_a_shaped_attribution_wrapped_before_its_address_is_still_one(line: str) -> None:
    assert_published(extract(f"{AGENT}\n\n{wrap(line, '<')}\n\n{QUOTED}"))


@pytest.mark.parametrize(
    "heading",
    [
        "Kovács Anna írta:",
        "Jan Kowalski pisze:",
        "Andrei Popescu a scris:",
        "김민준님이 작성:",
        "Γιώργος έγραψε:",
        "Ayşe Yılmaz yazdı:",
        "山田太郎さんからのメール：",
        "Иван Петров:",
        "Citát Petr Novák:",
        "Ann Lee wrote on\nMonday morning:",
    ],
)
def test_the_heading_line_above_a_quote_block_goes_with_it(heading: str) -> None:
    result = extract(f"{AGENT}\n\n{heading}\n{QUOTED}")
    assert_published(result)


def test_an_inline_answer_keeps_its_text_and_loses_each_quote_heading() -> None:
    text = (
        "Hei Ann,\n\nMatti kirjoitti:\n> Milloin paketti tulee?\n\nTorstaina.\n\n"
        "> Voinko vaihtaa koon?\n\nKyllä, palautus on ilmainen."
    )
    assert_published(extract(text), "Hei Ann,\n\nTorstaina.\n\nKyllä, palautus on ilmainen.")


def test_a_shortcode_answer_above_a_quote_is_no_heading() -> None:
    assert_published(extract(f":+1:\n\n{QUOTED}"), ":+1:")


PASTED_HEADERS = {
    "ja-outlook": "差出人: 山田 太郎 <taro.yamada@kaimono.example>\n送信日時: 2026年11月3日 10:00\n"
    "宛先: support@shop.example\n件名: 注文について",
    "zh-qq": "------------------ 原始邮件 ------------------\n"
    '发件人: "张伟"<zhang.wei@maijia.example>;\n发送时间: 2026年11月3日(星期一) 上午10:00\n'
    '收件人: "support"<support@shop.example>;\n主题: 关于订单',
    "ko-naver": '-----Original Message-----\nFrom: "김민준"<minjun.kim@sangjeom.example>\n'
    "To: <support@shop.example>;\nCc:\nSent: 2026-11-03 (월) 10:00:00 (GMT+09:00)\n"
    "Subject: 주문 문의",
    "ru-mailru": "От кого: Иван Петров <ivan.petrov@pokupka.example>\n"
    "Кому: support@shop.example\nДата: Понедельник, 3 ноября 2026, 10:00 +03:00\nТема: Заказ",
    "tr-outlook": "Kimden: Ayşe Yılmaz <ayse.yilmaz@magaza.example>\n"
    "Gönderildi: 3 Kasım 2026 Pazartesi 10:00\nKime: Destek <support@shop.example>\n"
    "Konu: Sipariş",
    "el-outlook": "Από: Γιώργος <g.papadopoulos@katastima.example>\n"
    "Στάλθηκε: Δευτέρα, 3 Νοεμβρίου 2026 10:00 πμ\nΠρος: support@shop.example\n"
    "Θέμα: Παραγγελία",
    "fi-outlook": "Lähettäjä: Matti Virtanen <matti.virtanen@kauppa.example>\n"
    "Lähetetty: maanantai 3. marraskuuta 2026 10.00\nVastaanottaja: support@shop.example\n"
    "Aihe: Tilaus",
    "hu-outlook": "Feladó: Kovács Anna <anna.kovacs@bolt.example>\n"
    "Elküldve: 2026. november 3., hétfő 10:00\nCímzett: support@shop.example\nTárgy: Rendelés",
    "ro-outlook": "De la: Andrei Popescu <andrei.popescu@magazin.example>\n"
    "Trimis: luni, 3 noiembrie 2026 10:00\nCătre: support@shop.example\nSubiect: Comanda",
    "cs-seznam": "---------- Původní e-mail ----------\n"
    "Od: Petr Novák <petr.novak@obchod.example>\nKomu: support@shop.example\n"
    "Datum: 3. 11. 2026 10:00:00\nPředmět: Objednávka",
    "pt-outlook": "De: João Silva <joao.silva@loja.example>\n"
    "Enviado: segunda-feira, 3 de novembro de 2026 10:00\nPara: support@shop.example\n"
    "Assunto: Encomenda",
    "uk-outlook": "Від: Олена Коваль <olena.koval@kramnytsia.example>\n"
    "Надіслано: понеділок, 3 листопада 2026 р. 10:00\nКому: support@shop.example\n"
    "Тема: Замовлення",
    # Languages whose labels are in no list here: the run of "label: value" lines is enough.
    "id-unlisted": "Dari: Budi Santoso <budi.santoso@toko.example>\n"
    "Tanggal: Senin, 3 November 2026 10.00\nKepada: support@shop.example\nPerihal: Pesanan",
    "vi-unlisted": "Người gửi: Nguyễn Văn An <an.nguyen@cuahang.example>\n"
    "Ngày gửi: Thứ Hai, 3 tháng 11, 2026 10:00\nNgười nhận: support@shop.example\n"
    "Chủ đề: Đơn hàng",
    "en-no-colons": "From\tAnn Lee <ann.lee@customer.example>\nDate\tMon, 3 Nov 2026 10:00\n"
    "To\tsupport@shop.example\nSubject\tMy order",
    "de-no-colons": "Von  Ann Lee <ann.lee@customer.example>\nDatum  03.11.2026 10:00\n"
    "An  support@shop.example\nBetreff  Meine Bestellung",
}


@pytest.mark.parametrize("block", PASTED_HEADERS.values(), ids=PASTED_HEADERS.keys())
def test_a_pasted_message_header_block_cuts_in_any_language(block: str) -> None:
    assert_published(extract(f"{AGENT}\n\n{block}\n\n{UNQUOTED}"))


@pytest.mark.parametrize(
    "banner",
    [
        "Original Message",
        "Пересылаемое сообщение:",
        "転送されたメッセージ:",
        "Przekazana wiadomość",
    ],
)
def test_a_forward_banner_above_a_header_block_goes_with_it(banner: str) -> None:
    block = PASTED_HEADERS["tr-outlook"]
    assert_published(extract(f"{AGENT}\n\n{banner}\n{block}\n\n{UNQUOTED}"))
    assert_published(
        extract(
            f"{AGENT}\n\n{banner}\n\n{block}\n\n{UNQUOTED}".replace(
                banner, banner if banner.endswith(":") else f"{banner}:"
            )
        )
    )


def test_a_list_of_label_lines_without_an_address_or_a_sent_date_is_text() -> None:
    text = "Hi Ann,\n\nCarrier: DHL\nTracking: 00340434\nExpected: Thursday\n\nBob"
    assert_published(extract(text), text)


SIGN_OFFS = [
    "Sent from my Fairphone 5",
    "Envoyé de mon Fairphone",
    "Enviado desde mi Fairphone",
    "Inviato dal mio Fairphone",
    "Enviado do meu Fairphone",
    "Verzonden vanaf mijn Fairphone",
    "Sendt fra min Fairphone",
    "Skickat från min Fairphone",
    "Von meinem Fairphone gesendet",
    "Wysłane z mojego Fairphone",
    "Odesláno z mého Fairphone",
    "Отправлено с моего Fairphone",
    "Надіслано з мого Fairphone",
    "Στάλθηκε από το Fairphone μου",
    "Lähetetty Fairphonesta",
    "Trimis de pe Fairphone-ul meu",
    "A Fairphone-omról küldve",
    "Fairphone'umdan gönderildi",
    "Fairphoneから送信",
    "发自我的 Fairphone",
    "내 Fairphone에서 보냄",
]


@pytest.mark.parametrize("sign_off", SIGN_OFFS)
def test_a_mobile_sign_off_with_an_unknown_device_cuts_the_pasted_history(sign_off: str) -> None:
    result = extract(f"{AGENT}\n\n{sign_off}\n\n{UNQUOTED}")
    assert_published(result)
    assert result.cut_at == "signature"


@pytest.mark.parametrize(
    "text",
    [
        "Hallo Ann,\n\ndie Ware wurde gestern gesendet.\n\nBob",
        "Merhaba Ann,\n\nSiparişiniz dün gönderildi.\n\nBob",
        "Hi Ann,\n\nSent from my desk at the warehouse, so it will be quick.\n\nBob",
    ],
)
def test_a_sentence_about_sending_is_no_sign_off(text: str) -> None:
    assert_published(extract(text), text)


@pytest.mark.parametrize(
    "text",
    [
        "Hi Ann,\n\nYour options\n============\n\n1. Refund\n2. Exchange\n\nBob",
        "Hej Ann,\n\nStorlek   EU   UK\n--------  ---  ---\nM         40   7\n\nMvh Bob",
        "Hallo Ann,\n\nIhre Optionen\n-------------\nUmtausch oder Erstattung.\n\nBob",
    ],
)
def test_a_dash_line_under_a_heading_or_in_a_table_is_no_signature_delimiter(text: str) -> None:
    assert_published(extract(text), text)


UNDERLINED_TABLES = {
    "de": ("Lagerbestand", "Größe | Stück"),
    "cs": ("Skladem", "Velikost | Kusů"),
    "fo": ("Á goymslu", "Stødd | Tal"),
    "sw": ("Bidhaa zilizopo", "Saizi | Idadi"),
}


@pytest.mark.parametrize(("heading", "header"), UNDERLINED_TABLES.values(), ids=UNDERLINED_TABLES)
def test_an_underlined_heading_over_a_pipe_table_between_quotes_is_kept(
    heading: str, header: str
) -> None:
    table = f"{heading}\n{'=' * len(heading)}\n{header}\n------+------\n38    | 4\n40    | 0"
    text = f"{ATTRIBUTIONS['de']}\n> Welche Größen?\n\n{table}\n>\n> Und der Versand?\n3 Tage."
    assert_published(extract(text), f"{table}\n\n3 Tage.")


def test_dashes_above_a_contact_block_cut_it_as_a_signature() -> None:
    text = f"{AGENT}\n-----\nBob Berg | ACME Shop | +46 8 123 45 67\nwww.acme.example"
    assert_published(extract(text))


def test_a_bottom_posted_answer_is_kept() -> None:
    text = f"{SHAPED_ATTRIBUTIONS['ru-yandex']}\n{QUOTED}\nЗдравствуйте, Анна!\n\nВозврат оформлен."
    assert_published(extract(text), "Здравствуйте, Анна!\n\nВозврат оформлен.")


# --------------------------------------------------------------------------- the last guard


def test_the_customers_address_left_in_the_text_holds_the_reply() -> None:
    text = "Hi Ann,\n\nwe asked Ann.Lee@Customer.example about it.\n\nBob"
    assert_held(extract(text, private=["ann.lee@customer.example"]), "customer address left")
    wrapped = "Hi Ann,\n\nwe asked ann.lee@customer.\nexample about it.\n\nBob"
    assert_held(extract(wrapped, private=["ann.lee@customer.example"]), "customer address left")
    assert_published(extract(text, private=["bo@other.example"]), text)


def ticket_field_labels() -> list[str]:
    """Every "Label:" line with a value in our ticket templates, in every locale."""
    labels: set[str] = set()
    for template in TEMPLATES.glob("*/ticket.txt.j2"):
        for line in template.read_text(encoding="utf-8").splitlines():
            label, colon, value = line.partition(":")
            if colon and "{{" in value and label and not label.startswith(("{", " ", "[")):
                labels.add(label.strip())
    return sorted(labels)


@pytest.mark.parametrize("label", ticket_field_labels())
def test_a_field_line_of_our_ticket_in_any_locale_holds_the_reply(label: str) -> None:
    text = f"Hi Ann,\n\nthe refund is on its way.\n\n{label}:      ann.lee@customer.example 10042"
    assert_held(extract(text), "ticket field left")


def test_the_ticket_templates_have_field_lines_to_guard() -> None:
    assert {"Email", "Order", "E-Mail", "Bestellung", "E-mail", "Ordre"} <= set(
        ticket_field_labels()
    )


def test_an_attribution_shape_that_escaped_the_cuts_holds_the_reply() -> None:
    text = "Hi Ann,\n\nthanks.\n\nMr. Smith <smith@customer.example>:\nThe parcel was late.\n"
    assert_held(extract(text), "attribution left")


def test_a_label_run_that_escaped_the_cuts_holds_the_reply() -> None:
    block = PASTED_HEADERS["id-unlisted"]
    assert_held(extract(f"```\n{block}\n```\n\nBob"), "header block left")


# The cases of our corpus we know we get wrong, and why. Neither publishes quoted history; the
# two signature lines are "drop" in our labels, "extra" by the shared corpus's scoring.
KNOWN_MISSES = {
    "de-ios-mail-inline-947": "the agent's own line ending in ':' right above a quote block goes "
                              "with it, as issue 10 §1 says such a heading does",
    "it-other-inline-889": "the same: the agent's 'Sulla spedizione:' above a quote block",
    "es-gmail-android-top-898": "a lone 👍 above the quote is published (labelled held)",
    "en-other-top-920": "a help desk's thread without quote marks (name and time paragraphs) is "
                        "held for the agent rather than cut",
    "de-other-top-1310": "the same: a help desk's thread mail with its marker on top is held",
}


def test_our_own_corpus_meets_the_targets() -> None:
    """tests/corpus/replies: >= 95 % ok, <= 5 % held, and no leak or miss but the known ones
    (issue 10 §1)."""
    if not OWN_CORPUS.is_dir() or not any(OWN_CORPUS.glob("*.eml")):
        pytest.skip("tests/corpus/replies is absent")
    bench = load_bench()
    report = bench.score_own(OWN_CORPUS)
    overall = report["overall"]
    unexpected = [f for f in report["failures"] if f["name"] not in KNOWN_MISSES]
    assert unexpected == []
    assert overall["ok"] / overall["cases"] >= 0.95
    assert overall["held"] / overall["cases"] <= 0.05


SIGNED = {
    "en": (
        "Kind regards",
        "Marcus Webb",
        "Team Leader\nACME Ltd | Bristol BS1 6XN\nT: 0117 496 0188",
    ),
    "de": ("Mit freundlichen Grüßen", "Bob Berg", "Kundenservice\nACME GmbH\nTel. +49 30 1234567"),
    "ja": ("よろしくお願いいたします", "山田 太郎", "カスタマーサポート\nTEL: 03-1234-5678"),
    "ru": ("С уважением,", "Иван Петров", "Служба поддержки\n+7 495 123-45-67\nwww.acme.example"),
    "pl": (
        "Pozdrawiam",
        "Jan Kowalski",
        "Dział obsługi klienta | ACME Sp. z o.o.\n+48 22 123 45 67",
    ),
}


@pytest.mark.parametrize("sign_off,name,block", SIGNED.values(), ids=SIGNED.keys())
def test_the_contact_block_under_a_sign_off_and_name_is_cut(
    sign_off: str, name: str, block: str
) -> None:
    body = "we are sorry the parcel arrived late; a voucher is on its way to you today."
    result = extract(f"Hi Ann,\n\n{body}\n\n{sign_off}\n{name}\n{block}")
    assert_published(result, f"Hi Ann,\n\n{body}\n\n{sign_off}\n{name}")


POSTSCRIPTS = {
    "fr": ("Cordialement,", "Julien", "P.S. : la confirmation part de noreply@boutique.example."),
    "en": ("Kind regards,", "Tom", "PS: check your spam folder, we write from info@shop.example"),
    "pl": ("Pozdrawiam,", "Ola", "P.S. Kod rabatowy ZIMA10 działa do piątku, tel. 22 555 01 99."),
    "eo": ("Kore,", "Ana", "P.S.: la kupono validas ĝis vendredo, skribu al ni@butiko.example."),
    "fo": ("Vinarliga,", "Jógvan", "P.P.S. Ring til okkara á +298 31 55 00, um pakkin ikki kemur."),
}


@pytest.mark.parametrize(("sign_off", "name", "postscript"), POSTSCRIPTS.values(), ids=POSTSCRIPTS)
def test_a_postscript_under_the_name_is_kept_and_the_contact_block_below_it_cut(
    sign_off: str, name: str, postscript: str
) -> None:
    body = "we are sorry the parcel arrived late; a voucher is on its way to you today."
    agent = f"Hi Ann,\n\n{body}\n\n{sign_off}\n{name}\n{postscript}"
    assert_published(extract(agent), agent)
    block = "ACME SARL | 12 rue Neuve, 75001 Paris\nTél. +33 1 23 45 67 89"
    assert_published(extract(f"{agent}\n\n{block}"), agent)
    assert_published(extract(f"{agent}\n{block}"), agent)  # HTML: one line per paragraph


BILINGUAL = {
    "fr-en": (
        "Bonjour M. Tremblay,\nVotre commande part demain, numéro de suivi 7023 4455 8812 9900.",
        "Hello Mr. Tremblay,\nYour order ships tomorrow, tracking number 7023 4455 8812 9900.",
    ),
    "cy-en": (
        "Annwyl Mr Huws,\nBydd eich archeb yn gadael yfory, rhif tracio 7023 4455 8812 9900.",
        "Dear Mr Hughes,\nYour order leaves tomorrow, tracking number 7023 4455 8812 9900.",
    ),
    "fy-nl": (
        "Bêste mefrou De Vries,\nJo bestelling giet moarn fuort, folchnûmer 7023 4455 8812 9900.",
        "Beste mevrouw De Vries,\nUw bestelling gaat morgen weg, volgnummer 7023 4455 8812 9900.",
    ),
    "rm-de": (
        "Stimada dunna Caduff,\nVossa empustaziun parta damaun, numer 7023 4455 8812 9900.",
        "Liebe Frau Caduff,\nIhre Bestellung geht morgen raus, Sendungsnummer 7023 4455 8812 9900.",
    ),
}


@pytest.mark.parametrize(("first", "second"), BILINGUAL.values(), ids=BILINGUAL)
def test_an_answer_repeated_in_a_second_language_is_kept_whole(first: str, second: str) -> None:
    agent = f"{first}\n\n{second}\nSophie"
    assert_published(extract(f"{agent}\n\n{ATTRIBUTIONS['fr']}\n\n{QUOTED}"), agent)


TEAM_LINES = {
    "en": ("Nina", "Shop A Support"),
    "de": ("Jana Berg", "Team Kundenservice"),
    "nl": ("Sanne", "Team Klantenservice"),
    "mi": ("Aroha", "Te Rōpū Āwhina"),  # Māori, in no corpus
    "eo": ("Ana", "Klienta Servo"),
}


@pytest.mark.parametrize(("name", "team"), TEAM_LINES.values(), ids=TEAM_LINES)
def test_a_team_line_under_the_name_right_above_the_history_is_cut(name: str, team: str) -> None:
    agent = f"Hi Paul,\nThe missing cable went out today, tracking 9400 1000 0000 1234.\n{name}"
    history = f"-- Please reply above this line --\n{ATTRIBUTIONS['en']}\n\n{QUOTED}"
    assert_published(extract(f"{agent}\n{team}\n{history}"), agent)
    assert_published(extract(f"{agent}\n{team}"), f"{agent}\n{team}")  # no history: kept


@pytest.mark.parametrize(("sign_off", "name", "team"), [
    ("Best,", "Olivia", "Shop C Customer Happiness"),
    ("Viele Grüße", "Jana Berg", "Team Kundenservice"),
    ("Pozdrawiam,", "Ola", "Obsługa Klienta"),
], ids=["en", "de", "pl"])
def test_a_team_line_between_the_signed_name_and_a_postscript_is_cut_and_the_postscript_kept(
    sign_off: str, name: str, team: str
) -> None:
    answer = "Hi Grace,\nThe chest measures 102 cm and the length 71 cm in size S."
    postscript = "P.S. The sage green one is back in stock on Monday."
    history = f"{ATTRIBUTIONS['en']}\n\n{QUOTED}"
    text = f"{answer}\n\n{sign_off}\n{name}\n{team}\n\n{postscript}\n\n{history}"
    assert_published(extract(text), f"{answer}\n\n{sign_off}\n{name}\n\n{postscript}")


@pytest.mark.parametrize("token", [
    "{#HS:2211948765-90312#}", "[#ZD-00412873]", "ref:_00D1x2Ab._5003y4Cd:ref",
])
def test_a_help_desk_thread_token_is_not_published(token: str) -> None:
    agent = "Hi Paul,\nThe refund of 24.90 EUR was sent to your card today.\nNina"
    text = f"{agent}\n\n{ATTRIBUTIONS['en']}\n\n{QUOTED}\n\n{token}"
    assert_published(extract(text), agent)


def test_an_order_number_in_brackets_is_kept() -> None:
    agent = "Hi Paul,\nthis is about the order below, it left our warehouse today:\n[#100234]\nNina"
    assert_published(extract(agent), agent)


@pytest.mark.parametrize("signature", [
    "Aino Virtanen\nAsiakaspalvelu\nShop A Oy | puh. 09 123 4567",
    "Marcus Webb\nHead of Customer Care\nwww.shop-b.example",
    "Ji-woo Park\n고객지원팀\nTel. 02-555-0199",
])
def test_a_reply_that_is_only_the_agents_signature_above_history_is_held_as_empty(
    signature: str
) -> None:
    result = extract(f"{signature}\n\n{ATTRIBUTIONS['en']}\n\n{QUOTED}")
    assert not result.ok
    assert result.reason == "empty"


def test_a_two_word_answer_above_history_is_no_lone_signature() -> None:
    agent = "Refund sent\nNina"
    assert_published(extract(f"{agent}\n\n{ATTRIBUTIONS['en']}\n\n{QUOTED}"), agent)


def test_a_last_line_in_sentence_case_under_the_name_is_kept() -> None:
    agent = "Hi Paul,\nThe missing cable went out today by USPS First Class.\nNina\nsee you soon"
    assert_published(extract(f"{agent}\n\n{ATTRIBUTIONS['en']}\n\n{QUOTED}"), agent)


def test_a_short_closing_with_a_question_below_it_is_no_signature_block() -> None:
    text = (
        "Hi Ann,\n\nwe are sorry the parcel arrived late; a voucher is on its way.\n\nThanks\nBob\n"
        "Could you call us at +49 30 1234567?"
    )
    assert_published(extract(text), text)


@pytest.mark.parametrize(
    "sentence,attribution",
    [
        ("Den bør være fremme på onsdag.", ATTRIBUTIONS["no"]),
        ("Le colis arrivera jeudi.", ATTRIBUTIONS["fr"]),
        ("El paquete llega el jueves.", ATTRIBUTIONS["es"]),
        ("Am besten bestellen Sie eine Nummer größer!", ATTRIBUTIONS["de"]),
        ("On Friday it will be there.", SHAPED_ATTRIBUTIONS["ru-gmail"]),
    ],
)
def test_a_sentence_that_starts_like_an_attribution_is_not_joined_to_the_next_one(
    sentence: str, attribution: str
) -> None:
    agent = f"Hi Ann,\n\n{sentence}\n\nBob"
    assert_published(extract(f"{agent}\n\n{attribution}\n\n{QUOTED}"), agent)


APP_SIGN_OFFS = [
    "Отправлено из мобильной Почты Mail.ru",
    "Отправлено из Яндекс Почты для мобильных",
    "Надіслано з мобільного телефону",
    "Enviado desde Outlook para Android",
    "Στάλθηκε από κινητό",
    "Wysłano z aplikacji Poczta w systemie Android",
    "Odesláno z aplikace Pošta pro Windows",
    "Lähetetty Windowsin Sähköpostista",
    "Trimis de pe Yahoo Mail pe Android",
    "Skickat från Outlook för iOS",
]


@pytest.mark.parametrize("sign_off", APP_SIGN_OFFS)
def test_an_app_sign_off_in_other_languages_cuts_the_pasted_history(sign_off: str) -> None:
    assert_published(extract(f"{AGENT}\n\n{sign_off}\n\n{UNQUOTED}"))


SENT_WITH_APP = [
    "Sent via Superhuman",
    "Envoyé avec Spark",
    "Gesendet mit Newton",
    "Inviato da Nine",
    "Sendt med Canary",  # nn: Nynorsk, in no corpus
    "Poslano iz Twobird",
    "Отправлено из Суперпочты",
    "Στάλθηκε από Ταχυδρομείο",
]


@pytest.mark.parametrize("sign_off", SENT_WITH_APP)
def test_a_sent_via_app_paragraph_above_the_history_is_a_sign_off(sign_off: str) -> None:
    assert_published(extract(f"{AGENT}\n\n{sign_off}\n\n{ATTRIBUTIONS['en']}\n\n{QUOTED}"))


def test_sent_via_a_carrier_above_the_history_is_an_answer() -> None:
    agent = "Hi Ann,\n\nyour replacement left our warehouse this morning.\n\nSent via DHL"
    assert_published(extract(f"{agent}\n\n{ATTRIBUTIONS['en']}\n\n{QUOTED}"), agent)


DEPARTMENT_LINES = {
    "en": (
        "Kind regards,",
        "Tom Hart",
        "Customer Care | Hart & Sons",
        "This email and anything attached to it is confidential.",
    ),
    "ga": (
        "Le meas,",
        "Siobhán Ní Bhriain",
        "Seirbhís do Chustaiméirí | Éadaí an Iarthair",
        "Tá an teachtaireacht seo faoi rún agus don fhaighteoir amháin.",
    ),
    "fo": (
        "Vinarliga,",
        "Jógvan Poulsen",
        "Kundatænasta | Handil í Havn",
        "Hesin teldupostur er trúnaðarmál og einans ætlaður móttakaranum.",
    ),
    "eo": (
        "Kore,",
        "Ana Verda",
        "Klientservo | Verda Butiko",
        "Ĉi tiu mesaĝo estas konfidenca kaj nur por la ricevanto.",
    ),
}


@pytest.mark.parametrize(
    ("sign_off", "name", "department", "footer"), DEPARTMENT_LINES.values(), ids=DEPARTMENT_LINES
)
def test_a_department_and_company_line_and_footer_under_the_name_are_cut(
    sign_off: str, name: str, department: str, footer: str
) -> None:
    body = "we refunded the full amount to your card yesterday; it shows within five days."
    result = extract(f"Hi Ann,\n{body}\n{sign_off}\n{name}\n{department}\n{footer}")
    assert_published(result, f"Hi Ann,\n{body}\n{sign_off}\n{name}")


PARENTHESIS_ENDS = {
    "az": (
        "Sifarişiniz göndərildi, izləmə nömrəsi RB 221 334 556 AZ (pulsuz, adətən 5 AZN).",
        "Hörmətlə,",
        "Leyla",
    ),
    "en": (
        "Your parcel left today, tracking RB 221 334 556 GB (free, usually 5 GBP).",
        "Best,",
        "Tom",
    ),
    "lb": (
        "Äre Pak ass haut fortgaang, Nummer RB 221 334 556 LU (gratis, soss 5 EUR).",
        "Schéine Gruss,",
        "Mett",
    ),
    "yo": (
        "A ti fi ẹru rẹ ranṣẹ loni, nọmba RB 221 334 556 NG (ọfẹ, deede 5 USD).",
        "O dabọ,",
        "Tunde",
    ),
}


@pytest.mark.parametrize(
    ("sentence", "closing", "name"), PARENTHESIS_ENDS.values(), ids=PARENTHESIS_ENDS
)
def test_a_sentence_ending_in_a_bracket_and_full_stop_is_no_wrapped_attribution(
    sentence: str, closing: str, name: str
) -> None:
    agent = f"Hi,\n{sentence}\n{closing}\n{name}"
    attribution = "2 dekabr 2026, 20:14 Rəşad Əliyev <resad.aliyev@mail.example>:"
    assert_published(extract(f"{agent}\n{attribution}\n\n{QUOTED}"), agent)


def test_a_contact_list_in_the_answer_is_no_header_block() -> None:
    text = (
        "Hi Ann,\n\nyou can reach the carrier here:\nPhone: 0800 123 456\n"
        "Email: help@carrier.example\nWeb: carrier.example/track\n\nThey answer within a day.\n"
        "\nBob"
    )
    assert_published(extract(text), text)


def test_two_ticket_fields_reflowed_by_a_client_hold_the_reply() -> None:
    text = "Hi Ann,\n\nthe refund is on its way.\n\nEmail: ann.lee@customer.example\nOrder: 10042"
    assert_held(extract(text), "ticket field left")


def test_one_field_like_line_of_the_agents_own_is_published() -> None:
    text = "Hi Ann,\n\nthe refund is on its way.\nOrder: 10042\n\nBob"
    assert_published(extract(text), text)


def test_an_answer_below_a_quote_marked_with_initials_is_kept() -> None:
    text = (
        "Здравствуйте, Олег.\n\nВы писали 3 ноября 2026 г., 22:47:05:\n\n"
        "ОМ> Можно ли заказать книгу с автографом?\nОМ> Хочу подарить её отцу.\n\n"
        "Да, автор подписывает книги по пятницам.\n\n-- \nС уважением,\n Ирина"
    )
    assert_published(
        extract(text), "Здравствуйте, Олег.\n\nДа, автор подписывает книги по пятницам."
    )


def test_a_sentence_ending_in_a_number_is_not_joined_to_the_attribution_below() -> None:
    html = (
        "<div>Добрый вечер, Елена!</div><div>Куртка маломерит, советую взять 46 вместо 44.</div>"
        '<div>06.10.2026, 18:12, "Елена" &lt;elena@pokupka.example&gt;:</div>'
        "<blockquote><div>Подскажите размер?</div></blockquote>"
    )
    assert_published(
        extract(None, html), "Добрый вечер, Елена!\nКуртка маломерит, советую взять 46 вместо 44."
    )


@pytest.mark.parametrize(
    "body,sign_off,name,block",
    [
        (
            "いつもご利用いただきありがとうございます。\n配送日を変更いたしました。",
            "何卒よろしくお願い申し上げます。",
            "高橋",
            "北星家具株式会社 お客様窓口\n〒060-0001 札幌市中央区北1条西2丁目",
        ),
        (
            "您好！安装师傅将于周五下午上门安装，请保持电话畅通。",
            "此致",
            "黄伟",
            "华信电器 客户服务部\n电话：400-000-1234",
        ),
        (
            "reklamacja została uznana. Nowe krzesło wyślemy w przyszłym tygodniu.",
            "Z poważaniem",
            "Piotr Kowalczyk",
            "Dział Obsługi Klienta\nMeble Kowalczyk Sp. z o.o.\nul. Długa 15, 31-146 Kraków",
        ),
    ],
    ids=["ja", "zh", "pl"],
)
def test_a_signature_block_with_a_postal_address_or_company_is_cut(
    body: str, sign_off: str, name: str, block: str
) -> None:
    result = extract(f"{body}\n\n{sign_off}\n\n{name}\n\n{block}\n")
    assert_published(result, f"{body}\n\n{sign_off}\n\n{name}")


def test_a_dash_ruled_table_in_an_html_answer_is_kept() -> None:
    html = (
        "<div>Hi James,</div><div><br></div><div style='font-family:monospace'>"
        "<div>Item&nbsp; &nbsp; &nbsp; Qty</div><div>----------&nbsp; ---</div>"
        "<div>Oak table&nbsp; &nbsp; &nbsp;1</div></div><div><br></div>"
        "<div>It was refunded to your card ending 4417 today.</div>"
    )
    result = extract(None, html)
    assert result.ok and "----------" in result.text and "4417 today" in result.text


def test_a_div_with_a_bar_on_its_left_reads_as_a_quote() -> None:
    html = (
        "<div>Здравствуйте!</div><div>Возврат оформлен.</div>"
        "<div>Среда, 4 ноября 2026, 10:15 +03:00 от Анна &lt;anna@pokupka.example&gt;:</div>"
        '<div style="border-left:1px solid #0857A6; margin:10px; padding:0 0 0 10px;">'
        "<div>Когда вернут деньги?</div></div><div>Ещё вопросы — пишите.</div>"
    )
    assert_published(
        extract(None, html), "Здравствуйте!\nВозврат оформлен.\n\nЕщё вопросы — пишите."
    )


@pytest.mark.parametrize(
    "heading",
    [
        "Le 4 nov. 2026 à 10:15, Jean Dupont <jean.dupont@client.example> a écrit",
        "2026/11/04 10:15 山田太郎 <taro@kaimono.example>",
    ],
)
def test_an_attribution_that_lost_its_colon_still_goes_with_its_quote(heading: str) -> None:
    assert_published(extract(f"{AGENT}\n\n{heading}\n{QUOTED}"))


def test_a_message_banner_a_blank_line_above_a_header_table_goes_with_it() -> None:
    html = (
        "<div>Hi Harriet,</div><div><br></div><div>Your candle was posted today.</div>"
        "<div><br></div><div>Zoe</div><div><br></div><div>Original message</div><table>"
        "<tr><td>From</td><td>Harriet Cole &lt;harriet@client.example&gt;</td></tr>"
        "<tr><td>Sent</td><td>4 Nov 2026, 14:02</td></tr>"
        "<tr><td>Subject</td><td>Candle arrived broken</td></tr></table>"
        "<div>The jar was cracked.</div>"
    )
    assert_published(extract(None, html), "Hi Harriet,\n\nYour candle was posted today.\n\nZoe")


BODY = "Hi Ann,\n\nwe are sorry the parcel arrived late; a voucher is on its way to you today."


@pytest.mark.parametrize(
    "closing,block",
    [
        ("Best regards, Marcus Webb", "Customer Service\nACME Ltd\n+44 117 496 0188"),
        ("Mvh Sindre", "Kundeservice | Nordlys AS\nTlf 22 12 34 56"),
        ("Bob Berg", "Customer Care Team\nACME Ltd\nwww.acme.example"),
        (
            "Atentamente,\n\nRaúl Jiménez",
            "Atención al cliente · Electro Jiménez S.L.\nC/ Mayor 45, 28013 Madrid\n"
            "Este mensaje y sus adjuntos son confidenciales y se dirigen a su destinatario.",
        ),
    ],
    ids=["combined", "mvh-name", "name-alone", "legal-footer"],
)
def test_the_signature_block_goes_whatever_the_closing_looks_like(closing: str, block: str) -> None:
    assert_published(extract(f"{BODY}\n\n{closing}\n{block}"), f"{BODY}\n\n{closing}")


@pytest.mark.parametrize(
    "text",
    [
        "Hei Per,\n\nSend drillen til oss så bytter vi den.\n\nAdresse:\n\nDahl Verktøy AS\n"
        "Industriveien 4\n2020 Skedsmokorset\n\nMvh\nHåkon",
        "Hallo Herr Yilmaz,\n\nich habe den Gutschein neu angelegt:\n\nCode: LINDE-25-QX9\n\n"
        "Er gilt bis 31.12.2026 und ist mit Ihrem Kundenkonto verknüpft.\n\nViele Grüße\nSabine",
        "Hi,\n\nYou can delete the keys one at a time.\n\nSee also\n\n"
        "http://docs.example/api#buckets\n\nwhich says there is no bulk delete yet.",
    ],
    ids=["address-in-answer", "code-line", "see-also-link"],
)
def test_contact_details_in_the_answer_are_no_signature_block(text: str) -> None:
    assert_published(extract(text), text)


def test_an_agents_pickup_details_with_a_date_and_time_are_no_header_block() -> None:
    text = (
        "Hallo Herr Yilmaz,\n\nAbholung: 05.11.2026 10:00-12:00\nSpediteur: DHL Freight\n"
        "Sendungsnummer: 123456789\n\nViele Grüße\nSabine"
    )
    assert_published(extract(text), text)


def test_an_attribution_without_its_colon_above_unquoted_history_holds_the_reply() -> None:
    attribution = "Ann Lee <ann.lee@customer.example> wrote on 03.11.2026 10:15"
    text = f"Hi Ann,\n\nthe refund is on its way.\n\n{attribution}\n\n{UNQUOTED}"
    assert_held(extract(text), "attribution left")


@pytest.mark.parametrize(
    "sign_off",
    ["Poslano z mojega iPhona", "Ilitumwa kutoka Samsung Galaxy yangu", "Dikirim dari Android"],
)
def test_a_last_short_line_naming_a_device_is_a_sign_off_in_any_language(sign_off: str) -> None:
    result = extract(f"{AGENT}\n\n{sign_off}\n\n{SHAPED_ATTRIBUTIONS['ru-yandex']}\n{QUOTED}")
    assert_published(result)


def test_an_answer_that_only_names_a_device_is_kept() -> None:
    assert_published(extract(f"Outlook with a reply\n\n{QUOTED}"), "Outlook with a reply")


@pytest.mark.parametrize(
    "line",
    [
        "Em 4 de novembro de 2026 às 10h15, João Silva enviou:",
        "ke 4.11.2026 klo 10.15 Matti lähetti:",
        "Den 4.11.2026 kl. 10.15 sendte Jens:",
    ],
)
def test_times_written_10h15_or_after_kl_make_a_dated_attribution(line: str) -> None:
    result = extract(f"{AGENT}\n\n{line}\n\n{QUOTED}")
    assert_published(result)
    assert result.cut_at == "attribution"


SIGNED_MORE = {
    "hu": (
        "Kedves Anna!\n\nA csomagot ma feladtuk, holnap délután érkezik a futárral.",
        "Üdvözlettel:\nKovács Péter",
        "Ügyfélszolgálat\nPéldabolt Kft.\nTel.: +36 1 234 5678",
    ),
    "tr": (
        "Merhaba Ayşe Hanım,\n\nSiparişiniz bugün kargoya verildi, yarın elinizde olur.",
        "Saygılarımla,\nMehmet Demir",
        "Müşteri Hizmetleri\nÖrnek Mağaza A.Ş.\n0212 123 45 67",
    ),
    "el": (
        "Καλησπέρα σας,\n\nΗ παραγγελία σας στάλθηκε σήμερα με courier και φτάνει αύριο.",
        "Με εκτίμηση,\nΓιώργος Νικολάου",
        "Εξυπηρέτηση Πελατών\nΚατάστημα Α.Ε.\nΤηλ. 210 1234567",
    ),
    "ko": (
        "안녕하세요 고객님,\n\n환불 처리가 완료되었습니다. 영업일 기준 3일 이내에 입금됩니다.",
        "감사합니다.\n박지은 드림",
        "고객지원팀\n(주)예시상점\n02-123-4567",
    ),
    "cs": (
        "Dobrý den,\n\nreklamaci jsme uznali a nové zboží odešleme zítra ráno.",
        "S pozdravem\nPetr Dvořák",
        "Zákaznická podpora\nObchod s.r.o.\n+420 123 456 789",
    ),
    "fi": (
        "Hyvä Matti,\n\npaketti lähti tänään ja on perillä torstaina noutopisteessä.",
        "Ystävällisin terveisin\nLiisa Korhonen",
        "Asiakaspalvelu\nKauppa Oy\n+358 40 123 4567",
    ),
    "ro": (
        "Bună ziua,\n\nComanda dumneavoastră a fost expediată astăzi prin curier rapid.",
        "Cu stimă,\nAndrei Popescu",
        "Serviciul Clienți\nMagazin SRL\n0721 123 456",
    ),
    "uk": (
        "Доброго дня, Олено!\n\nПовернення коштів оформлено, гроші надійдуть за три дні.",
        "З повагою,\nІрина Коваль",
        "Служба підтримки\nТОВ Крамниця\n+380 44 123 4567",
    ),
}


@pytest.mark.parametrize("body,closing,block", SIGNED_MORE.values(), ids=SIGNED_MORE.keys())
def test_the_signature_block_under_a_closing_is_cut_in_more_languages(
    body: str, closing: str, block: str
) -> None:
    assert_published(extract(f"{body}\n\n{closing}\n{block}"), f"{body}\n\n{closing}")


def test_a_title_under_the_sign_off_and_name_goes_without_contact_details() -> None:
    body = "Hallo Herr Yilmaz,\n\nder Gutschein ist neu angelegt und gilt bis Ende des Jahres."
    result = extract(f"{body}\n\nViele Grüße\nSabine Wolff\nKundenservice\n")
    assert_published(result, f"{body}\n\nViele Grüße\nSabine Wolff")


def test_a_postscript_under_the_sign_off_and_name_is_kept() -> None:
    text = (
        "Hallo Herr Yilmaz,\n\nder Gutschein ist neu angelegt und gilt bis Ende des Jahres.\n\n"
        "Viele Grüße\nSabine\n\nPS: Er gilt auch online."
    )
    assert_published(extract(text), text)


def test_a_greeting_above_a_quote_heading_is_kept() -> None:
    text = f"Hi Ann\nAbout the size:\n{QUOTED}\nOne size up is best.\n\nBob"
    assert_published(extract(text), "Hi Ann\n\nOne size up is best.\n\nBob")


def test_an_address_introduced_by_a_colon_at_the_end_of_the_answer_is_kept() -> None:
    text = (
        "Hi Ann,\n\nplease send the item back to this address:\n\nACME Returns\nHauptstr. 5\n"
        "10115 Berlin"
    )
    assert_published(extract(text), text)


@pytest.mark.parametrize(
    "line",
    [
        "5 Kasım 2026 Çarşamba tarihinde Ayşe Yılmaz şunu yazdı:",
        "Στις 4 Νοε 2026, ο Γιώργος έγραψε:",
        "Pe 4 nov. 2026, Andrei a scris:",
        "2026. nov. 4. Kovács Anna írta:",
        "Pada 4 Nov 2026, Budi menulis:",
    ],
)
def test_a_dated_attribution_with_a_verb_in_more_languages_cuts_unquoted_history(
    line: str,
) -> None:
    assert_published(extract(f"{AGENT}\n\n{line}\n\n{UNQUOTED}"))


# --------------------------------------------------------------------------- held-out classes
# Each class below was met on mail nobody here had seen (tests/corpus/replies 301-412) and is
# tested in languages of no corpus too, with sign-off and banner words of no list.

# A sign-off naming a device in a language we have no "sent from" words for, as a paragraph of
# its own right above a pasted message: also with a full stop, in any script.
DEVICE_SIGN_OFFS = {
    "el-stop": "Εστάλη από το Samsung Galaxy smartphone μου.",
    "hu-stop": "Elküldve a Samsung Galaxy okostelefonomról.",
    "ar": "أُرسلت من هاتف Galaxy الخاص بي",
    "he": "נשלח מה-iPhone שלי",
    "th": "ส่งจากiPhoneของฉัน",
    "bg-model": "Изпратено от моя Xiaomi 13T",
    "vi": "Gửi từ iPhone của tôi",
    "lt-invented": "Išsiųsta iš mano Zorbo X7",
    "et-camel": "Saadetud minu NovaFon-ist",
}
BANNER = "-------- Izvorna poruka --------"  # hr: words of no list above a header block
PASTED = (
    "Od: Ivana Horvat <ivana.horvat@kupac.example>\nDatum: 6.11.2026. 21:05\n"
    "Za: info@trgovina.example\nPredmet: Dostava\n\nKada stiže moj paket?\n"
)


@pytest.mark.parametrize("sign_off", DEVICE_SIGN_OFFS.values(), ids=DEVICE_SIGN_OFFS.keys())
def test_a_device_sign_off_paragraph_above_a_pasted_message_goes_in_any_language(
    sign_off: str,
) -> None:
    result = extract(f"{AGENT}\n\n{sign_off}\n\n{BANNER}\n{PASTED}")
    assert_published(result)


@pytest.mark.parametrize("sign_off", DEVICE_SIGN_OFFS.values(), ids=DEVICE_SIGN_OFFS.keys())
def test_a_device_sign_off_above_a_quote_goes_in_any_language(sign_off: str) -> None:
    result = extract(f"{AGENT}\n\n{sign_off}\n\n{SHAPED_ATTRIBUTIONS['ru-yandex']}\n{QUOTED}")
    assert_published(result)


@pytest.mark.parametrize(
    "text",
    [
        "Hallo Herr Berg,\n\ndas Samsung Galaxy S24 ist wieder lieferbar.",
        "Hei,\n\nSamsung Galaxy S24 on taas varastossa.",
        "Ahoj,\n\nmáme ještě iPhone 15 v modré.\n\nDíky",
        "Hallo,\n\nSie können das Samsung Galaxy ab Montag bei uns abholen.",
    ],
    ids=["de-sentence", "fi-brand-first", "cs-model-in-sentence", "de-brand-mid-sentence"],
)
def test_a_sentence_that_names_a_device_is_kept(text: str) -> None:
    assert_published(extract(f"{text}\n\n{QUOTED}"), text)


@pytest.mark.parametrize(
    "sign_off", ["Kklt nioo my iPhone", "Išsiųsta iš mano iPhone", "Dikirim dari iPhone saya"]
)
def test_a_reply_that_is_only_a_device_sign_off_is_held(sign_off: str) -> None:
    assert_held(extract(f"{sign_off}\n\n{QUOTED}"), "empty")


@pytest.mark.parametrize(
    "sign_off",
    ["Rfxkdf de pe HUAWEI P60 Pro", "Skxqat från min Zorbo X7", "Nosūtīts no mana iPhone"],
)
def test_a_device_sign_off_in_unknown_words_with_text_below_it_holds_the_reply(
    sign_off: str,
) -> None:
    text = f"{AGENT}\n\n{sign_off}\n\nBună ziua, am dori un buchet cu bujori albi. Se poate?\nAna"
    assert_held(extract(text), "sign-off inside the text")


@pytest.mark.parametrize(
    "sign_off", ["Verzonden met Edison Mail", "Gesendet mit Wirbel Post", "Poslano z Vrana Pošta"]
)
def test_an_app_sign_off_right_above_cut_history_goes(sign_off: str) -> None:
    result = extract(f"{AGENT}\n\n{sign_off}\n\n{SHAPED_ATTRIBUTIONS['ja-gmail']}\n{QUOTED}")
    assert_published(result)


def test_an_app_shaped_last_line_without_history_below_is_kept() -> None:
    text = "Hi Ann,\n\nthe refund is on its way.\n\nviele Grüße aus Berlin"
    assert_published(extract(text), text)


# The signature under a closing whose words we do not know: a legal footer after a phone or
# company line goes too, and a one-word closing with a full stop is a closing.
UNKNOWN_CLOSINGS = {
    "cs": (
        "S srcvqfyay\nLenka Horáková",
        "Zákaznické oddělení | Dětský svět s.r.o.\n+420 601 223 487 | www.detsky-svet.example\n"
        "Tento e-mail je určen pouze adresátovi. Pokud jste jej obdrželi omylem, smažte jej.",
    ),
    "sk": (
        "S pozdravom\nJana Kováčová",
        "Zákaznícky servis | Obchod s.r.o.\ntel. 02 555 123 45\n"
        "Táto správa je dôverná a je určená iba adresátovi. Ak ste ju dostali omylom, zmažte ju.",
    ),
    "lt": (
        "Ačiū.\n\nRūta Petrauskienė",
        "Klientų aptarnavimas | Parduotuvė UAB\n+370 5 255 5123\n"
        "Šis laiškas skirtas tik adresatui. Jei gavote jį per klaidą, ištrinkite jį.",
    ),
    "ko-stop": (
        "롷붗뤹죧롘.\n정다인",
        "사랑펫 고객센터 | 선임 상담원\n1588-0000 (평일 09:00~18:00)\n"
        "본 메일은 수신인만을 위한 것으로, 무단 전재 및 재배포를 금합니다.",
    ),
}


@pytest.mark.parametrize("closing,block", UNKNOWN_CLOSINGS.values(), ids=UNKNOWN_CLOSINGS.keys())
def test_a_signature_with_a_legal_footer_goes_under_a_closing_in_words_we_do_not_know(
    closing: str, block: str
) -> None:
    result = extract(f"{BODY}\n\n{closing}\n{block}\n\n{BANNER}\n{PASTED}")
    assert result.ok, result.reason
    assert block.split("\n")[0] not in result.text
    assert result.text.startswith(BODY)


def test_a_closing_word_inside_another_word_does_not_keep_a_signature() -> None:
    body = "Beste mevrouw Visser,\nDe kerstboom van 2 meter bezorgen we op zaterdag tussen 9 en 13."
    closing = "Met vriendelijke groet,\nDaan Janssen"
    block = "Tuincentrum Groen | Klantenservice\n030 555 1020\n"
    block += "Dit bericht is uitsluitend bestemd voor de geadresseerde."
    assert_published(extract(f"{body}\n\n{closing}\n{block}"), f"{body}\n\n{closing}")


def test_a_full_stop_under_a_wrapped_line_is_no_closing() -> None:
    text = (
        "Hei Per,\n\nDrillen har 5 års garanti. Send den til oss så bytter vi\nden.\n\n"
        "Adresse:\n\nDahl Verktøy AS\nIndustriveien 4\n2020 Skedsmokorset"
    )
    assert_published(extract(f"{text}\n\n{QUOTED}"), text)


# Amounts and dates are no phone numbers: a table under a rule keeps its rows.
PRICE_TABLES = {
    "cs": ("Položka                 Cena", "Batoh Horal 30 l        1 490 Kč", "Celkem  1 579 Kč"),
    "fr": ("Récapitulatif", "Plateau de 8 fromages : 96 €", "Total : 1 250 000 €"),
    "bg": ("Продукт       Цена", "Мед 450 г      12,50 лв", "Общо     2 500 000 лв"),
    "hr": ("Artikl        Cijena", "Kaput vel. 40  1.250.000 EUR", "Ukupno   € 1.250.000"),
}


@pytest.mark.parametrize("heading,row,total", PRICE_TABLES.values(), ids=PRICE_TABLES.keys())
def test_rows_with_amounts_under_a_table_rule_are_kept_above_a_dated_attribution(
    heading: str, row: str, total: str
) -> None:
    rule = "-" * len(heading)
    text = f"Dobrý den,\n\n{heading}\n{rule}\n{row}\n{rule}\n{total}\n\nS pozdravem\nKateřina"
    attribution = "út 10. 11. 2026 v 14:05 odesílatel Petra <petra@mail.example> napsal:"
    assert_published(extract(f"{text}\n\n{attribution}\n\n{QUOTED}"), text)


# An answer line is no start of an attribution wrapped over blank lines.
FULL_STOPS = {
    "tr": "ajandanın kapağına en fazla 20 karakter yazdırabiliyoruz, ek ücret 75 TL.",
    "es": "El sobre de 50 semillas cuesta 2,95 €.",
    "id": "Ongkos kirim ke Bandung 25 ribu rupiah, tiba dalam 3 hari.",
    "vi": "Phí giao hàng là 30.000 đ, hàng đến trong 2 ngày.",
}


@pytest.mark.parametrize("line", FULL_STOPS.values(), ids=FULL_STOPS.keys())
def test_an_answer_line_ending_a_sentence_is_kept_above_a_signed_dated_attribution(
    line: str,
) -> None:
    text = f"Merhaba,\n{line}\n\nSaludos,\nRocío"
    attribution = "3 nov 2026, 9:12 por lucia.torres@mail.example:"
    assert_published(extract(f"{text}\n\n{attribution}\n\n{QUOTED}"), text)


def test_a_wrapped_attribution_still_crosses_one_blank_line_mid_phrase() -> None:
    text = (
        f"{AGENT}\n\nOn Thu, 31 Mar 2016 at 11:16 Some One\n\n<\nmailto:Some One "
        "<some.one@foo.example>\n> wrote:\n\n> Earlier words.\n"
    )
    assert_published(extract(text))


# A header block without colons whose labels we cannot read, below the closing, holds.
BARE_HEADERS = {
    "hu-stacked": "Feladó\nNagy Péter\nDátum\n2026. 11. 02. 21:14\nTárgy\nVisszaküldés",
    "invented": "Nioo Harriet Cole\nKklt 11 Nov 2025, 14:02\nNsbpxka Candle arrived broken",
    "lv": "No Anna Bērziņa\nDatums 2026.11.02 21:14\nTēma Pasūtījums 4471",
}


@pytest.mark.parametrize("block", BARE_HEADERS.values(), ids=BARE_HEADERS.keys())
def test_a_header_block_without_colons_in_words_we_do_not_know_is_cut_or_held(
    block: str,
) -> None:
    closing = "Üdvözlettel,\nSimon Eszter"
    result = extract(f"{BODY}\n\n{closing}\n\n{block}\n\n{UNQUOTED}")
    if result.ok:  # cut with the signature block under the closing
        assert result.text == f"{BODY}\n\n{closing}"
    else:
        assert result.reason == "header block left"


def test_a_header_block_without_colons_below_a_banner_holds_the_reply() -> None:
    block = BARE_HEADERS["invented"]
    text = f"{AGENT}\n\nMpvjjyrb rmyswga\n\n{block}\nOrder KC-20931\n\n{UNQUOTED}"
    assert_held(extract(text), "header block left")


def test_opening_hours_under_a_heading_are_no_header_block() -> None:
    text = (
        f"{BODY}\n\nÖffnungszeiten:\n\nMo-Fr 9:00-18:00 Uhr\nSa 10:00-14:00 Uhr\nSo geschlossen"
        "\n\nWir freuen uns auf Ihren Besuch in unserem Laden in der Hauptstraße."
    )
    assert_published(extract(text), text)


@pytest.mark.parametrize("dash", ["‐", "–", "—"])
def test_a_banner_drawn_with_any_dash_cuts_a_pasted_message(dash: str) -> None:
    result = extract(f"{AGENT}\n\n{dash * 7} Izvorna poruka {dash * 7}\n\n{UNQUOTED}")
    assert_published(result)


@pytest.mark.parametrize(
    "closing,block",
    [
        ("Pozdrowionka:\nAnna Nowak", "Sklep Ogrodowy Sp. z o.o.\ntel. 22 555 01 23"),
        ("Sveikinimai:\n\nRūta Petrauskienė", "Parduotuvė UAB\n\n+370 5 255 5123"),
        ("Tervitustega:\nMari Tamm", "Aiapood OÜ | mari@aiapood.example"),
    ],
    ids=["pl-plain", "lt-outlook-paragraphs", "et-email"],
)
def test_a_closing_in_words_we_do_not_know_ending_in_a_colon_keeps_the_name_only(
    closing: str, block: str
) -> None:
    result = extract(f"{BODY}\n\n{closing}\n{block}\n\n{QUOTED}")
    assert_published(result, f"{BODY}\n\n{closing}")


@pytest.mark.parametrize(
    "closing",
    ["مع تحياتي،\nسارة", "Trân trọng,\nLan", "Hormat kami,\nDewi"],
    ids=["ar", "vi", "id"],
)
def test_the_name_under_a_closing_with_any_comma_stays_and_the_block_goes(closing: str) -> None:
    block = "خدمة العملاء | متجر الورد\nهاتف 0501234567"
    assert_published(extract(f"{BODY}\n\n{closing}\n{block}"), f"{BODY}\n\n{closing}")


def test_an_app_sign_off_with_its_link_goes_in_words_we_do_not_know() -> None:
    sign_off = "Kklt nioo Outlook Mobile<https://aka.example/app>"
    result = extract(f"{AGENT}\n\n{sign_off}\n\n{SHAPED_ATTRIBUTIONS['ko-gmail']}\n{QUOTED}")
    assert_published(result)


@pytest.mark.parametrize(
    "heading",
    [
        "Pada 8 Nov 2026, Budi Santoso qwerty:",
        "Ngày 08/11/2026, Nguyễn Minh Anh zxcvb:",
        "Dne 8. 11. 2026 Jana Nováková pqrst:",
        "8.11.2026 Иван Петров хвщж:",
    ],
    ids=["id", "vi", "sk", "bg"],
)
def test_a_dated_named_heading_in_words_we_do_not_know_above_unquoted_text_is_cut_or_held(
    heading: str,
) -> None:
    result = extract(f"{AGENT}\n\n{heading}\n\n{UNQUOTED}")
    if result.ok:  # cut as what follows the agent's name
        assert result.text == AGENT
    else:
        assert result.reason == "attribution left"


def test_a_dated_line_of_the_agents_own_ending_in_a_colon_is_kept() -> None:
    text = (
        f"{BODY}\n\nAb dem 8. November 2026 gilt:\n\n- Versand frei ab 30 €\n\nViele Grüße\nSabine"
    )
    assert_published(extract(text), text)


def test_a_header_block_with_colons_and_labels_we_do_not_know_below_the_closing_holds() -> None:
    block = "Zxc: Lotte Visser\nVbn: zondag 8 november 2026 20:58\nLkj: Levering kerstboom"
    assert_held(extract(f"{AGENT}\n\n{block}\n\n{UNQUOTED}"), "header block left")


@pytest.mark.parametrize(
    "sign_off",
    [
        "Samsung Galaxy akıllı telefonumdan qwertyzz.",
        "Kklt mopw Proton Afxu secure email.",
        "Изпратено от моя Zorbofon.",
        "Išsiųsta iš mano Samsung Galaxy telefono.",
    ],
    ids=["tr-brand-first", "en-app-email", "bg-new-brand", "lt-device-word"],
)
def test_a_device_sign_off_with_a_full_stop_above_a_quote_goes(sign_off: str) -> None:
    result = extract(f"{AGENT}\n\n{sign_off}\n\n{SHAPED_ATTRIBUTIONS['ru-yandex']}\n{QUOTED}")
    assert_published(result)


@pytest.mark.parametrize(
    "answer",
    ["kommt am Montag", "das iPhone ist wieder da", "Bitte schicken Sie das Pixel zurück"],
)
def test_a_short_last_answer_line_naming_a_day_or_a_device_is_kept_above_a_quote(
    answer: str,
) -> None:
    text = f"Hallo,\n\n{answer}"
    assert_published(extract(f"{text}\n\n{SHAPED_ATTRIBUTIONS['ru-yandex']}\n{QUOTED}"), text)


@pytest.mark.parametrize(
    "sign_off",
    ["Kklt nioo my Pixel 8 Pro", "Gmumfegy z ihgh Redmi Note 13 Pro", "Zxcv qwe Xiaomi 14T Pro"],
)
def test_a_device_sign_off_ending_in_a_model_name_goes(sign_off: str) -> None:
    result = extract(f"{AGENT}\n\n{sign_off}\n\n{SHAPED_ATTRIBUTIONS['ru-yandex']}\n{QUOTED}")
    assert_published(result)


@pytest.mark.parametrize(
    "answer",
    [
        "سفارش شما را فردا ارسال می\u200cکنیم و کد رهگیری را پیامک می\u200cکنیم.",  # fa: ZWNJ
        "हम कल आपका ऑर्डर भेज देंगे, क्षमा\u200d करें।",  # hi: ZWJ
        # A family emoji is three emoji joined by ZWJ.
        "Thanks for the photos! \U0001f468\u200d\U0001f469\u200d\U0001f467 We are on it.",
    ],
)
def test_joiners_that_spell_a_word_reach_the_customer_unchanged(answer: str) -> None:
    attribution = "On Mon, 2 Nov 2026 at 10:15, Customer <c@example.com> wrote:"
    reply = f"{answer}\n\n{attribution}\n> Where is it?"
    result = extract(reply)
    assert result.ok and result.text == answer


@pytest.mark.parametrize(
    ("heading", "steps", "closing"),
    [
        ("So geht die Rücksendung", ["1. Schuhe in den Originalkarton legen.",
                                     "2. Retourenschein beilegen.",
                                     "3. Paket an Lagerstraße 7, 04109 Leipzig schicken."],
         ["Viele Grüße", "Jana"]),
        ("Zwrot krok po kroku", ["1) Zapakuj buty do pudełka.",
                                 "2) Wyślij na adres ul. Polna 12, 00-635 Warszawa.",
                                 "3) Zadzwoń pod +48 22 555 01 99, jeśli kurier nie przyjedzie."],
         ["Pozdrawiam", "Ola"]),
    ],
)
def test_numbered_steps_with_an_address_under_an_underlined_heading_are_kept(
    heading: str, steps: list[str], closing: list[str]
) -> None:
    answer = "\n".join(["Hello,", "", heading, "-" * len(heading), *steps, "", *closing])
    attribution = "On 2 Dec 2026 at 12:40, Customer <c@example.com> wrote:"
    result = extract(f"{answer}\n\n{attribution}\n> How do I send them back?")
    assert result.ok
    for line in (heading, *steps):
        assert line in result.text
    assert "How do I send" not in result.text


def test_mail_header_fields_left_in_the_body_hold_the_reply() -> None:
    mangled = ("Danke, wir schicken es heute.\nMIME-Version: 1.0\n"
               "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
               "Wo bleibt mein Paket?")
    result = extract(mangled)
    assert not result.ok and result.reason == "mail header lines left"
    # One hyphenated label of the agent's own is no header block.
    own = extract("Hi Ann,\n\nTracking-Nr: 00340434161094042557\n\nBest, Tom")
    assert own.ok and "Tracking-Nr: 00340434161094042557" in own.text


@pytest.mark.parametrize(
    ("name", "stamp", "earlier"),
    [
        ("Tom Bradley", "Nov 28, 2026, 21:40 GMT+0", "I was charged twice for order 88120."),
        ("Karin Holm", "28.11.2026 21:40", "Ich wurde zweimal belastet."),
        ("Nguyễn Văn An", "28/11/2026 lúc 21:40", "Tôi bị trừ tiền hai lần."),
    ],
)
def test_a_thread_without_quote_marks_where_a_name_and_a_time_open_an_earlier_message_is_held(
    name: str, stamp: str, earlier: str
) -> None:
    # Help desks send the whole thread as plain paragraphs: name, time, text; name, time, text.
    reply = (f"Hi,\n\nWe refunded the second charge today.\n\nThanks,\nPriya\n\n"
             f"{name}\n{stamp}\n\n{earlier}")
    result = extract(reply)
    assert not result.ok and result.reason == "header block left"


@pytest.mark.parametrize(
    ("answer", "name", "team"),
    [
        ("Деньги вернём в течение трёх дней после проверки.", "Алексей",
         "Отдел возвратов, Shop B"),
        ("正しい色の商品を本日発送いたしました。誤ってお送りした商品はご返送ください。", "高橋",
         "ショップB カスタマーサポート"),
        ("Paczka wyjdzie od nas jutro rano kurierem.", "Ola", "Dział obsługi klienta"),
    ],
)
def test_a_team_line_under_the_name_goes_in_any_case_or_script(
    answer: str, name: str, team: str
) -> None:
    attribution = "On 2 Dec 2026 at 10:15, Customer <c@example.com> wrote:"
    reply = f"{answer}\n\n{name}\n{team}\n\n{attribution}\n> ?"
    result = extract(reply)
    assert result.ok and result.text == f"{answer}\n\n{name}"


def test_a_team_line_above_a_postscript_goes_and_the_postscript_stays() -> None:
    reply = ("Die Jacke ist morgen bei Ihnen.\n\nJana\nTeam Kundenservice\n\n"
             "P.S. Die Mütze gibt es jetzt auch in Grün.\n\n"
             "Am 02.12.2026 um 10:15 schrieb Kundin <k@example.com>:\n> Wann kommt sie?")
    result = extract(reply)
    assert result.ok and "Team Kundenservice" not in result.text
    assert "P.S. Die Mütze gibt es jetzt auch in Grün." in result.text


@pytest.mark.parametrize("postscript", ["П.П. Номерът на товарителницата е 1051 2233 8870.",
                                        "П.С. Трек-номер пришлём завтра."])
def test_a_cyrillic_postscript_under_the_closing_is_kept(postscript: str) -> None:
    reply = (f"Поръчката ви е изпратена днес.\n\nПоздрави,\nМария\n\n{postscript}\n\n"
             "На 2.12.2026 г. в 10:15 Клиент <k@example.com> написа:\n> Кога?")
    result = extract(reply)
    assert result.ok and postscript in result.text


@pytest.mark.parametrize(
    "sentence",
    [
        "ご注文（注文番号 J-20261202-118）のキャンセルを承りました。",
        "您的订单（编号 CN-88123-7）已经取消，退款将在三个工作日内到账。",
        "주문번호 K-2026-5521 주문이 취소되었으며 환불은 영업일 기준 3일 이내에 처리됩니다.",
    ],
)
def test_an_answer_sentence_quoting_an_order_code_in_a_cjk_script_is_kept(sentence: str) -> None:
    reply = (f"ご連絡ありがとうございます。\n{sentence}\n\n伊藤\n\niPhoneから送信\n\n"
             "2026/12/02 22:03、中村 翔 <sho@example.jp>のメール:\n\n> キャンセルしたいです。")
    result = extract(reply)
    assert result.ok and sentence in result.text and "iPhone" not in result.text


# --------------------------------------------------------------------------- blind set G's classes


@pytest.mark.parametrize("marker", [
    "##- Veuillez écrire votre réponse au-dessus de cette ligne -##",
    "##- Kirjoita vastauksesi tämän rivin yläpuolelle -##",
    "## - 请在此行上方回复 - ##",
])
def test_a_help_desks_reply_above_marker_in_any_language_cuts_like_ours(marker: str) -> None:
    history = f"{marker}\n\nMarek Novák, 2. 12. 2026 9:14\n\nKde je moje zásilka?"
    assert_published(extract(f"{AGENT}\n\n{history}"), AGENT)


def test_an_html_only_reply_that_is_only_the_signature_above_outlooks_header_is_held() -> None:
    html = (
        "<div>Lotte de Vries</div><div>Fietsenwinkel de Spaak – Utrecht</div>"
        "<div>+31 30 000 00 00</div>"
        '<div id="divRplyFwdMsg"><b>Van:</b> Pieter Bakker &lt;pieter@example.nl&gt;<br>'
        "<b>Onderwerp:</b> Bel</div><div>Mijn bel rammelt.</div>"
    )
    result = extract(None, html)
    assert not result.ok
    assert result.reason == "empty"


def test_a_price_table_with_a_dash_rule_and_wide_columns_is_kept() -> None:
    answer = (
        "Hello Mr Grant,\n\nhere are the prices you asked for:\n\n"
        "Model        Units   Price\n--------------------------\n"
        "Sander S-20   12      74,00 €\nSander S-35   4       118,00 €\n\n"
        "Shipping is free from 250 €."
    )
    assert_published(extract(f"{answer}\n\n{ATTRIBUTIONS['en']}\n\n{QUOTED}"), answer)


def test_an_answer_below_a_banner_attribution_and_quote_is_bottom_posting_and_kept() -> None:
    answer = "Hi Jo,\n\nyes, orders placed until 18 December arrive before Christmas.\n\nMarten"
    text = (
        "------- Original Message -------\n"
        f"{ATTRIBUTIONS['en']}\n> Will the hamper arrive before Christmas?\n\n{answer}"
    )
    assert_published(extract(text), answer)


# --------------------------------------------------------------------------- blind set H's classes


COMPANY_LINES = {
    "lt-unknown-closing": ("Pagarbiai\nRūta", "Gintaro dirbtuvė, Palanga"),
    "hu-unknown-closing": ("Üdv\nZsófi", "Pálinkaház, Kecskemét"),
    "id-unknown-closing": ("Terima\nDewi", "Toko Kain Bandung · NPWP 01.234.567.8-901.000"),
    "zh-no-closing": ("陈静", "山茶花园艺 客户服务部"),
    "nl-vof": ("Met vriendelijke groet,\nAnna", "Fietsenmakerij Van Dam v.o.f."),
    "cy-cyf": ("Cofion,\nAnna", "Crochenwaith Môn Cyf."),
    "ms-sdn-bhd": ("Salam mesra,\nAnna", "Kedai Batik Melaka Sdn. Bhd."),
    "hy-comma": ("Ցտեսություն՝\nAnna", "«Արարատ Մեղր» ՍՊԸ"),
    "en-street": ("Best regards,\nAnna", "Harbour Lights Candles · Quay Street 14, Whitby"),
    "pl-sp-z-oo": ("Best regards,\nAnna", "Pracownia Lnu sp. z o.o."),
    "pt-lda": ("Best regards,\nAnna", "Azulejos do Porto, Lda. · Porto"),
}


@pytest.mark.parametrize(("closing", "company"), COMPANY_LINES.values(), ids=COMPANY_LINES)
def test_a_company_or_team_line_under_the_agents_name_above_history_is_cut(
    closing: str, company: str
) -> None:
    """Blind sets G and H: closings in words we have no list for, legal forms we have no list
    for, a street address, a CJK department line."""
    answer = "Hello Sam,\n\nthe replacement was posted this morning and should reach you tomorrow."
    text = f"{answer}\n\n{closing}\n{company}\n\n{ATTRIBUTIONS['en']}\n\n{QUOTED}"
    assert_published(extract(text), f"{answer}\n\n{closing}")


def test_a_sentence_ending_in_a_short_word_under_the_name_is_no_company_line() -> None:
    text = (
        "Hello Sam,\n\nthe replacement was posted this morning and should reach you soon.\n\n"
        "Best regards,\nAnna\nCall us if the box is wet. We can fix it.\n"
    )
    assert_published(extract(text), text.rstrip("\n"))
