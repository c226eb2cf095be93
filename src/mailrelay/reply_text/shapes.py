"""Shapes of someone else's message that hold in any language and any mail client (issue 10 §1).

Vocabulary ("wrote", "From:") only covers the clients and languages somebody has seen; these
rules look at structure instead: an address or a date and a time on a line that ends in a colon,
a run of short "label: value" lines, a "sent from my …" line, a contact block under a rule.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Final

EMAIL: Final = re.compile(r"[\w.+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")
# An address as clients print the sender: <a@b>, ‹a@b›, «a@b», (a@b), [mailto:a@b].
_BRACKETED_ADDRESS: Final = re.compile(
    r"[<‹«(\[]\s*(?:mailto:)?[\w.+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+\s*[>›»)\]]"
)
# 10:15, 10：15, 10h15, 10時15分, 10시 15분, and "10.15" after "kl."/"klo" (a bare "10.15" is as
# often a price as a time: not counted).
_TIME: Final = re.compile(
    r"(?<!\d)(?:[01]?\d|2[0-3])\s?[:：]\s?[0-5]\d(?!\d)|\d{1,2}\s?[時时시]\s?\d{1,2}\s?[分분]|"
    r"(?<![\w.,])(?:[01]?\d|2[0-3])h[0-5]\d(?!\d)|\b(?:kl|klo)\.?\s(?:[01]?\d|2[0-3])\.[0-5]\d(?!\d)",
    re.IGNORECASE,
)
# 5.3.2025, 2025/03/05, 03-05-25, a year, 2025年 / 2025년, 3月5日, "5 марта", "5. maalisk".
_DATE: Final = re.compile(
    r"(?<!\d)(?:\d{1,4}\s?[./-]\s?\d{1,2}\s?[./-]\s?\d{2,4}|(?:19|20)\d{2}|\d{1,4}\s?[年년]|"
    r"\d{1,2}\s?[月월]\s?\d{1,2}|\d{1,2}\.?\s[^\W\d_]{3,})(?!\d)"
)
# Where a line runs on into a new sentence ("… in May. We checked …:"), it is prose.
_SENTENCE_BREAK: Final = re.compile(r"[^\W\d_]{2}[.!?]\s+[^\W\d_]")
_MAX_ATTRIBUTION: Final = 320


def mentions_time(text: str) -> bool:
    return _TIME.search(text) is not None


def mentions_date(text: str) -> bool:
    return _DATE.search(text) is not None


# --------------------------------------------------------------------------- attributions


def is_shaped_attribution(text: str, *, above_history: bool, strict: bool = True) -> bool:
    """An attribution in any language: ends in a colon and names the sender's address (in
    <…>, ‹…› …) or a date with a time ("2025/03/05 10:15、山田太郎のメール:", "W dniu 5.03.2025
    o 10:15, Jan pisze:"). A dated line of more than 8 words counts only `above_history`
    (quoted lines or nothing follow it), as prose can mention a date and end in a colon too.
    Not `strict` (the last guard): without the length and sentence checks."""
    text = text.strip().rstrip("*_ \t")
    if not text.endswith((":", "：")) or len(text) > (_MAX_ATTRIBUTION if strict else 1000):
        return False
    if strict and _SENTENCE_BREAK.search(text):
        return False
    words = len(text.split())
    if _BRACKETED_ADDRESS.search(text):
        return words <= 30 or not strict
    dated = mentions_date(text) and mentions_time(text)
    if EMAIL.search(text):
        return (dated or mentions_date(text)) and (words <= 30 or not strict)
    if not dated:
        return False
    return words <= 8 or (above_history and words <= 20) or not strict


def is_addressed_and_dated(line: str) -> bool:
    """A short line naming an address in brackets, a date and a time: an attribution, colon or
    not ("Jane Doe <jane@x> wrote on 05.03.2026 10:15")."""
    return (
        len(line) <= 320
        and len(line.split()) <= 30
        and _BRACKETED_ADDRESS.search(line) is not None
        and mentions_date(line)
        and mentions_time(line)
    )


def may_start_shaped_attribution(line: str) -> bool:
    """A line that may open an attribution wrapped over lines: it names a date or a time."""
    return len(line) <= 200 and (mentions_time(line) or mentions_date(line))


# --------------------------------------------------------------------------- header blocks

# "Label: value" with a label of one to four words and no digits: 发件人:, Od:, Kimden:, Από:,
# 보낸 사람:, De la:, Enviado el:, Reply-To:.
_LABEL_LINE: Final = re.compile(
    r"^\s*[*_]*\s*(?P<label>[^\W\d_][^\W\d_'’-]*(?:[ '’./-][^\W\d_]+){0,3})\s*[*_]*\s*[:：]"
    r"\s*[*_]*\s*(?P<value>.*)$"
)
_MIN_RUN: Final = 3


def starts_label_run(lines: Sequence[str], index: int) -> bool:
    """A pasted or forwarded message's header block in any language: a run of short "label:
    value" lines with different labels, three when a value holds a sender's address ("Kimden:
    Ayşe <a@b>", "Kime: …", "Konu: …"), four when a value holds only a date and time, as an
    agent's own "Pickup: 5.3. 10:00" / "Carrier: DHL" / "Tracking: 123" list may. A bare
    address is as likely an agent's contact list. One wrapped value or blank line may sit
    between two of them."""
    labels: set[str] = set()
    addressed = dated = False
    misses = 0
    for line in lines[index : index + 14]:
        match = _LABEL_LINE.match(line) if len(line) <= 1000 else None
        if match is None:
            if not labels:
                return False
            misses += 1
            if misses > 1:
                break
            continue
        misses = 0
        labels.add(match.group("label").casefold())
        value = match.group("value")
        addressed = addressed or _BRACKETED_ADDRESS.search(value) is not None
        dated = dated or (mentions_time(value) and mentions_date(value))
    return len(labels) >= (_MIN_RUN if addressed else _MIN_RUN + 1) and (addressed or dated)


# "Message" as banners say it ("Original message", "Ursprüngliche Nachricht", "原始邮件").
_MESSAGE_WORD: Final = re.compile(
    r"(?:message|messaggio|mensaje|mensagem|nachricht|bericht|meddelande|meddelelse|melding|"
    r"wiadomo|zpráv|správ|сообщени|повідомлен|üzenet|ileti|mesaj|μήνυμα|viesti|e-?mail|"
    r"邮件|郵件|メール|メッセージ|메일|메시지)",
    re.IGNORECASE,
)


def is_banner(line: str, *, adjacent: bool) -> bool:
    """The title line of a forwarded or pasted message above its header block ("Original
    Message", "Пересылаемое сообщение", "転送されたメッセージ:"): short, no sentence, and right
    above the block, or a blank line apart when it ends in a colon or names a message (not the
    agent's name, which may stand there too)."""
    text = line.strip().strip("*_ ")
    if not text or len(text) > 60 or len(text.split()) > 6:
        return False
    if re.search(r"[.!?,;！？。]", text.rstrip(":：")):
        return False
    return adjacent or text.endswith((":", "：")) or _MESSAGE_WORD.search(text) is not None


# --------------------------------------------------------------------------- sign-offs

# "Sent from my <anything>" and its kin: a verb of sending, a preposition and "my" before the
# device, whatever the device is called ("Envoyé de mon Fairphone", "Wysłane z mojego Nokia").
_SENT_FROM_MY: Final = re.compile(
    r"^(?:sent|envoy[ée]e?|enviad[oa]|inviato|verzonden|verstuurd|sendt|skickat|skickad|"
    r"wysłane|wysłano|odesláno|odeslané|отправлено|надіслано|відправлено|στάλθηκε|lähetetty|"
    r"trimis|poslano|poslané|küldve|elküldve|gesendet|versendet)\s+"
    r"(?:from|with|on|via|de|depuis|desde|do|da|dal|dallo|met|vanaf|van|fra|från|z|ze|с|з|"
    r"из|від|από|de\s+pe|pe|a\s+partir\s+de|von|mit)\s+"
    r"(?:my|mon|ma|mi|meu|minha|mio|mia|mijn|min|mitt|mojego|mojej|mého|mé|моего|моей|мого|"
    r"моєї|το|την|il\s+mio|o\s+meu|a\s+minha|meinem|meiner)\b",
    re.IGNORECASE,
)
# Sign-offs whose verb comes last or that have no "my": "Az iPhone-omról küldve", "iPhoneから送信",
# "내 Galaxy에서 보냄", "iPhone'umdan gönderildi", "Lähetetty iPhonesta", "发自我的 X".
_SENT_LAST: Final = re.compile(
    r"(?:r[óő]l\s+küldve|m(?:dan|den)\s+gönderildi|から送信|より送信|에서\s?보냄|에서\s?보냈습니다)"
    r"[.。]?$|^(?:发自|發自|(?:来自|來自|从|從)我的)|^lähetetty\s.{0,40}(?:sta|stä)$|"
    r"^trimis\s+de\s+pe\s|^στάλθηκε\s+από\s",
    re.IGNORECASE,
)


def is_sent_from(line: str) -> bool:
    """A mobile or app sign-off with a device name nobody has listed: "Sent from my <anything>"
    and the same shape in other languages, on a short line of its own."""
    text = line.strip().strip("()<>[]*_-— ").strip()
    if not text or len(text) > 70 or len(text.split()) > 9:
        return False
    if re.search(r"[,;!?]|\.\s", text):
        return False  # "Sent from my desk, so …" is a sentence
    return _SENT_FROM_MY.match(text) is not None or _SENT_LAST.search(text) is not None


# --------------------------------------------------------------------------- signatures

# One space at most between digit groups: wider gaps are a table's columns ("TX-18   10   89,00").
_PHONE: Final = re.compile(r"(?:\+|\b)\d(?:[\d()/.-]| (?! )){6,}\d\b")
# What a long number is when it is no phone number: a date ("2026-11-04 10"), or an amount with
# a currency sign or code before or after it ("1 490 000 Kč", "€ 1.250.000", "2 500 000 HUF").
_DATE_NUMBER: Final = re.compile(r"^\d{1,4}\s?[./-]\s?\d{1,2}\s?[./-]\s?\d{1,4}(?:\s\d{1,2})?\.?$")
# Currencies written as letters: ISO codes and the local signs that are words (Kč, zł, kr, Ft, лв).
_CURRENCY_WORD: Final = re.compile(
    r"^\s?(?:(?-i:[A-Z]{3})|kč|zł|kr|ft|lei|tl|руб|р|грн|лв|дин|din|kn|rs|₹)(?![^\W\d_])",
    re.IGNORECASE,
)
_WEB: Final = re.compile(r"https?://|www\.|\b[\w-]+\.(?:com|de|dk|nl|fr|se|no|es|eu)\b", re.I)


# A postal code before or after a place ("31-146 Kraków", "10115 Berlin", "Bristol BS1 6XN",
# "〒100-0001") and a company's legal form ("Sp. z o.o.", "GmbH", "株式会社", "ООО").
_POSTAL: Final = re.compile(
    r"\b\d{2}-\d{3}\s+[A-ZÀ-ÞĄ-Żа-яА-Я]|\b\d{4,5}\s+[A-ZÀ-ÞА-ЯΑ-Ω][^\W\d_]{2,}|"
    r"\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b|〒\s?\d{3}-\d{4}|\b\d{3}\s\d{2}\s+[A-ZÀ-ÞА-ЯΑ-Ω][^\W\d_]{2,}|"
    # a street, its number and the town: "Malioboro 52, Yogyakarta", "Via Roma 12, Milano"
    r"\b[A-ZÀ-ÞА-ЯΑ-Ω][^\W\d_]{3,}\.?\s\d{1,4}[a-zA-Z]?,\s[A-ZÀ-ÞА-ЯΑ-Ω][^\W\d_]{2,}"
)
_LEGAL_FORM: Final = re.compile(
    r"(?<!\w)(?:Ltd\.?|Limited|GmbH|AG|AB|AS|ASA|A/S|ApS|Oyj?|BV|B\.V\.|NV|N\.V\.|S\.?A\.?S?|"
    r"SARL|S\.?r\.?l\.?|SRL|S\.p\.A\.|[Ss]p\.\s?z\s?o\.\s?o\.?|Lda\.?|s\.r\.o\.|a\.s\.|Kft\.?|Zrt\.?|"
    r"Inc\.?|LLC|PLC|plc|Ltda\.?|S\.L\.|A\.Ş\.|ООО|ТОВ|АО|ΕΠΕ|Α\.Ε\.)(?!\w)|株式会社|有限会社|"
    r"有限公司|주식회사|\(주\)"
)


def _names_phone(line: str) -> bool:
    """A long run of digits that is neither a date nor an amount of money."""
    for match in _PHONE.finditer(line):
        number = match.group().strip()
        before = line[: match.start()].rstrip()[-1:]
        after = line[match.end() :]
        if _DATE_NUMBER.match(number) or _is_currency(before) or _is_currency(after.lstrip()[:1]):
            continue
        if _CURRENCY_WORD.match(after):
            continue
        return True
    return False


def _is_currency(char: str) -> bool:
    return bool(char) and unicodedata.category(char) == "Sc"


def is_contact_line(line: str, *, strong: bool = False) -> bool:
    """A line of a signature block: a phone number, an e-mail or postal address, a web site,
    a company's legal form or, unless `strong` evidence is asked for, a web site or "a | b"
    parts (which a wrapped link and a table row have too)."""
    return (
        _names_phone(line)
        or EMAIL.search(line) is not None
        or (not strong and _WEB.search(line) is not None)  # a link in a sentence
        or _POSTAL.search(line) is not None
        or _LEGAL_FORM.search(line) is not None
        or (not strong and " | " in line)
    )


# A numbered step ("1. Pack it", "2) Send it"): a list the agent wrote, never a signature line.
_LIST_ITEM: Final = re.compile(r"^\d{1,2}[.)]\s+\S")


def is_signature_block(lines: Iterable[str]) -> bool:
    """A few short lines with contact details: what follows a signature rule."""
    content: list[str] = []
    for line in lines:
        if line.strip():
            content.append(line.strip())
            if len(content) > 8:
                return False
    if not content:
        return False
    if any(len(line) > 90 or line.endswith(("?", "!")) or _LIST_ITEM.match(line)
           for line in content):
        return False  # questions, exclamations and numbered steps are the answer, not contacts
    table = sum("|" in line for line in content) >= 2  # rows of a table, not "Title | Company"
    return any(is_contact_line(line, strong=table) for line in content)
