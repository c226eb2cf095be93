"""The public reason an agent's report names (issue 14): the owner's "public reason" select starts
on it. A rule, not a guess: the reason's case-folded words are matched against each category's
key, its label in the page's language and the terms below (all eleven locales' words)."""

from __future__ import annotations

import re
from collections.abc import Mapping

#: Terms per category; "*" ends a word stem ("beleidig*" matches "beleidigend"). A term of
#: several words matches those words in a row. "other" has none: it is what nothing names.
TERMS: Mapping[str, tuple[str, ...]] = {
    "spam": (
        "spam*", "advert*", "ad", "ads", "promo*", "marketing", "link spam",
        "werbung", "werbe*", "reklame*", "reclame", "reklam", "reklama", "reklamy", "reklamę",
        "skräppost", "søppelpost", "roskaposti", "mainos*", "publicité", "publicitaire",
        "publicidad", "pubblicità", "pubblicitario",
    ),
    "offensive": (
        "offensive", "offending", "insult*", "abusive", "abuse", "rude", "swear*",
        "profanity", "obscene", "vulgar*", "hate", "hateful", "racist",
        "beleidig*", "anstößig", "obszön", "beschimpf*", "hetze",
        "stødende", "krænkende", "fornærm*", "grov", "grove",
        "kwetsend*", "scheldwoord*", "grof", "grove taal",
        "kränkande", "stötande", "förolämp*", "oförskämd*",
        "støtende", "krenkende",
        "loukkaava*", "loukkaus", "solvaus*", "kiroil*", "halventava*",
        "injurie*", "insultant*", "offensant*", "grossier*", "haineu*",
        "ofensiv*", "insultante*", "grosero*", "grosera*",
        "offensiv*", "volgar*", "ingiurios*",
        "obraźliw*", "obelg*", "wulgar*", "wyzwisk*",
    ),
    "personal_data": (
        "personal data", "personal information", "personal details", "private data",
        "phone number", "home address", "gdpr", "privacy", "doxx*",
        "personenbezogen*", "persönliche daten", "datenschutz", "telefonnummer", "dsgvo",
        "personoplysninger", "personlige oplysninger", "persondata",
        "persoonsgegevens", "persoonlijke gegevens", "telefoonnummer", "avg",
        "personuppgifter", "personliga uppgifter", "telefonnummret",
        "personopplysninger", "personlige opplysninger", "personvern",
        "henkilötie*", "puhelinnumer*", "tietosuoja",
        "données personnelles", "rgpd", "numéro de téléphone", "vie privée",
        "datos personales", "número de teléfono", "privacidad",
        "dati personali", "numero di telefono", "riservatezza",
        "dane osobowe", "danych osobowych", "rodo", "numer telefonu", "prywatnoś*",
    ),
    "not_a_customer": (
        "fake*", "not a customer", "not from a customer", "no customer", "never ordered",
        "never bought", "no order", "competitor*",
        "kein kunde", "kein kunden", "nicht von einem kunden", "keine bestellung",
        "gefälscht*", "konkurrent*", "nie bestellt",
        "ikke en kunde", "ikke fra en kunde", "ingen ordre", "ingen bestilling", "falsk*",
        "geen klant", "niet van een klant", "geen bestelling", "nep", "nepreview",
        "concurrent*",
        "inte en kund", "inte från en kund", "ingen beställning", "ingen kund",
        "ei asiakas", "ei asiakkaalta", "ei tilausta", "väärennet*", "feikki*", "kilpailija*",
        "pas un client", "pas client", "aucune commande", "faux", "fausse",
        "no es cliente", "no es un cliente", "no procede de un cliente", "sin pedido",
        "ningún pedido", "falsa", "falso", "competidor*",
        "non è un cliente", "non cliente", "non proviene da un cliente", "nessun ordine",
        "concorrent*",
        "nie klient", "nie jest klientem", "nie od klienta", "brak zamówienia",
        "fałszyw*", "konkurenc*",
    ),
    "off_topic": (
        "off topic", "offtopic", "unrelated", "irrelevant", "not about",
        "themenfremd", "nicht zum thema", "ohne bezug",
        "uden for emnet", "ikke relevant", "uvedkommende",
        "niet ter zake", "ongerelateerd", "niet relevant",
        "utanför ämnet", "inte relevant", "ovidkommande",
        "utenfor temaet",
        "asiaton", "aiheeton", "ei liity",
        "hors sujet", "hors-sujet", "sans rapport",
        "fuera de tema", "no tiene que ver", "irrelevante",
        "fuori tema", "non pertinente", "non c entra",
        "nie na temat", "nie dotyczy", "nie związan*",
    ),
}

_WORD = re.compile(r"\w+\*?")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _names(words: list[str], term: str) -> bool:
    """Whether the term's words occur in a row in `words` ("*" closing a stem)."""
    wanted = _words(term)
    if not wanted:
        return False
    for start in range(len(words) - len(wanted) + 1):
        if all(word.startswith(stem[:-1]) if stem.endswith("*") else word == stem
               for word, stem in zip(words[start:], wanted, strict=False)):
            return True
    return False


def suggested_category(reason: str, labels: Mapping[str, str] | None = None) -> str:
    """The one category `reason` names, by its key, its `labels` entry (the page's words) or
    TERMS; "other" when none does or when two do."""
    words = [word.rstrip("*") for word in _words(reason.replace("_", " "))]
    named = [category for category, terms in TERMS.items()
             if any(_names(words, term) for term in
                    (category.replace("_", " "), (labels or {}).get(category, ""), *terms))]
    return named[0] if len(named) == 1 else "other"
