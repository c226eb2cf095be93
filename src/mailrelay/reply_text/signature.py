"""The signature block under an agent's sign-off and name: title, company, phone, address, legal
footer. The sign-off and the name may stay; what follows them must not reach the customer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final
from unicodedata import east_asian_width

from .shapes import is_contact_line

_MAX_NAME: Final = 50  # characters of a sign-off or name line
_MAX_BLOCK: Final = 12  # lines of a signature block
_LOOKAHEAD: Final = 4
_WRAPPED: Final = 60  # columns of a line a client wrapped (at 72-78)
_TITLE_LINES: Final = 2  # lines of title and department under a name without contact details
_SENTENCE: Final = re.compile(
    r"[.!?。！？]\s*$|[.!?]\s"
)  # lines of the block within which a contact line must come


def signature_block_start(lines: Sequence[str]) -> int | None:
    """Index of the first line of a signature block, or None. The block follows the closing
    after the message: a sign-off and the agent's name ("Kind regards" / "Marcus Webb"), or one
    line of both or of the name alone ("Mvh Sindre", "Bob Berg"). Within its first lines the
    block names a phone number, an address, a web site or a company, and it holds no question.
    Where it is unclear whether the closing's second line is a name or a title, it goes: a
    name lost is better than a title published."""
    content = [index for index, line in enumerate(lines) if line.strip()]
    first = max(1, len(content) - _MAX_BLOCK - 2)  # a block is at most _MAX_BLOCK lines long
    for position in range(first, len(content) - 1):
        closing = lines[content[position]]
        before = lines[content[position - 1]].rstrip()
        colon = _is_colon_closing(lines, content, position)
        if not (colon or _is_sign_off(closing)) or _is_sign_off(before):
            continue  # the closing is the first short line after the message
        if before.endswith((":", "：")):
            continue  # a list's line, not a closing
        if not any(_width(lines[index].strip()) > 40 for index in content[:position]):
            continue  # the message itself comes first
        if closing.rstrip().endswith((".", "。")) and lines[content[position] - 1].strip():
            continue  # "Kiitos." opens a paragraph; "qfe." under a line is its wrapped end
        following = lines[content[position + 1]]
        if _is_greeting(closing, following):
            continue  # "Hello Mr. Tremblay," / "Your order ships…": a second language's answer
        end = position
        signed = colon or (
            (_is_bare_sign_off(closing) or _is_lone_closing(lines, content, position))
            and _is_name(following)
        )
        if signed:
            end = position + 1  # "Kind regards" / "Marcus Webb": the name stays
        end = _after_postscript(lines, content, end)
        block = [lines[index] for index in content[end + 1 :]]
        if _is_block(block, signed=signed):
            return content[end] + 1
    return None


def _is_lone_closing(lines: Sequence[str], content: Sequence[int], position: int) -> bool:
    """A one-word paragraph over a one-word name ("Faleminderit" / "Arta"): a closing in words
    we do not know. Over a longer line the one word is the name itself ("高橋" / a company)."""
    following = lines[content[position + 1]].strip()
    return _is_lone_word(lines, content[position]) and len(following.split()) == 1


def _is_lone_word(lines: Sequence[str], index: int) -> bool:
    """One word of letters as a paragraph of its own: a closing in words we do not know
    ("Pagarbiai", "Üdv") when a name follows it."""
    text = lines[index].strip()
    return (
        index > 0
        and not lines[index - 1].strip()
        and len(text.split()) == 1
        and all(char.isalpha() for char in text)
    )


def _is_greeting(line: str, following: str) -> bool:
    """A line ending in a comma, without a closing word, over a long sentence opens a
    paragraph ("Hello Mr. Tremblay," as an answer repeated in a second language does); a
    closing is followed by a name or a contact line."""
    text, below = line.strip(), following.strip()
    if not text.endswith((",", "，", "،")) or _CLOSING_WORDS.search(text):
        return False
    return _width(below) > _MAX_NAME and _SENTENCE.search(below) is not None


def _after_postscript(lines: Sequence[str], content: Sequence[int], end: int) -> int:
    """Position of the last line of a "P.S." right under the closing (with the lines a client
    wrapped it onto), or `end` when none follows: the postscript is the agent's message, a
    contact block may still come below it."""
    position = end + 1
    if position >= len(content) or not _POSTSCRIPT.match(lines[content[position]].strip()):
        return end
    while (
        position + 1 < len(content)
        and content[position + 1] == content[position] + 1
        and _width(lines[content[position]].strip()) >= _WRAPPED
        and not _SENTENCE.search(lines[content[position]])
    ):
        position += 1  # a line wrapped near the client's width, mid-sentence
    return position


def team_line_start(lines: Sequence[str]) -> int | None:
    """Index of a team or title line right under the agent's name at the end of the text
    ("… went out today." / "Nina" / "Shop A Support"), or None. Both lines are in title case
    and without digits or punctuation, the name follows a sentence and the team line follows
    the name directly; read only right above cut history, where a help desk puts its footer.
    Under a sign-off the team line goes too when a "P.S." follows it, which keeps
    `signature_block_start` from reading the closing as the end of the message."""
    content = [index for index, line in enumerate(lines) if line.strip()]
    postscript = next((position for position, index in enumerate(content)
                       if _POSTSCRIPT.match(lines[index].strip())), None)
    if postscript is not None:
        content = content[:postscript]  # "… / Nina / Shop Support / P.S. …": read above it
    if len(content) < 3:
        return None
    message, name, team = (lines[index].strip() for index in content[-3:])
    if content[-1] != content[-2] + 1 or _CLOSING_WORDS.search(f"{name} {team}"):
        return None
    closing = _is_bare_sign_off(message) or _is_lone_word(lines, content[-3])
    if not closing and (  # "Best," / "Olivia" / "Shop C Support" / "P.S. …"; "Pagarbiai" / …
        not _SENTENCE.search(message)
        or (len(message.split()) < _SENTENCE_WORDS and _width(message) <= _SHORT_LINE)
    ):
        return None
    if name.endswith((",", "،", "，", ":")):
        return None  # a closing in words we do not know ("Hörmətlə," / "Leyla"): keep the name
    if _is_titled(name, 1, 3) and _is_team_line(team):
        return content[-1]
    return None


_SENTENCE_WORDS: Final = 4  # the line above the name is the agent's sentence, not a closing
# Columns of a closing without spaces ("Kiitos.", "ありがとうございます。"); a sentence in a script
# without spaces is wider ("如果抬头需要修改，直接回复这封邮件就可以。" is 42). Closings we know
# are caught by their words whatever their width.
_SHORT_LINE: Final = 24
_TEAM_LINE_END: Final = re.compile(r"[.!?。！？:：;]$")


def signature_only(lines: Sequence[str]) -> bool:
    """The lines are the agent's signature and nothing else: a name of two to four words
    ("Aino Virtanen") with a title, team or contact lines under it, no sentence, no closing
    word. An agent who answered above nothing but quoted history wrote no answer."""
    content = [line.strip() for line in lines if line.strip()]
    if not 2 <= len(content) <= _MAX_BLOCK or not _is_titled(content[0], 2, 4):
        return False
    if _CLOSING_WORDS.search(content[0]) or not _is_name(content[0]):
        return False
    return _is_block(content[1:], signed=True)


def _is_team_line(line: str) -> bool:
    """A team, department or title under a name in any script ("Shop A Support",
    "Asiakaspalvelu", "Отдел возвратов, Shop B", "ショップB カスタマーサポート"): one to five
    words, no digits, not ending a sentence, starting with a capital or an uncased letter."""
    words = line.split()
    if not 1 <= len(words) <= 5 or _DIGIT.search(line) or len(line) > _MAX_NAME:
        return False
    if _TEAM_LINE_END.search(line):
        return False
    return _capitalised(line)


def _is_titled(line: str, fewest: int, most: int) -> bool:
    """A few words, each capitalised (in any cased script) but for short joining words ("of",
    "de") and "&", "|", "-"; no digits."""
    words = line.split()
    if not fewest <= len(words) <= most or _DIGIT.search(line) or len(line) > _MAX_NAME:
        return False
    if not _capitalised(words[0]):
        return False
    return all(
        _capitalised(word) or word in ("&", "|", "-", "·") or (word.isalpha() and len(word) <= 3)
        for word in words
    )


def _capitalised(word: str) -> bool:
    """Starts with a capital, or with a letter of a script without case (高橋, محمد)."""
    first = word[:1]
    return first.isupper() or (first.isalpha() and not first.islower())


# Words of a closing that is no name ("Kind regards", "Mvh", "此致"); used only to keep the
# name line below it, so a closing missing here costs a name, never a leak.
_CLOSING_WORDS: Final = re.compile(
    # whole words only: "bestemd", "Dankzij" and "Bestellung" close nothing
    r"(?<![^\W\d_])(?:best|dank|danke|takk|tack|merci|thanks)(?![^\W\d_])|"
    r"(?<![^\W\d_])(?:regards|wishes|cheers|thank you|sincerely|grü(?:ß|ss)e|gruß|hilsen|mvh|"
    r"venlig|vennlig|hälsning|groet|cordialement|salutations|bien à vous|saludos|atentamente|"
    r"saluti|cumprimentos|atenciosamente|abraços|pozdrawiam|poważaniem|pozdravem|úctou|"
    r"уважением|наилучшими|повагою|üdvözlettel|tisztelettel|saygı|με εκτίμηση|φιλικά|"
    r"terveisin|cu stimă|cu stima|cu respect)|よろしく|お願い|敬具|此致|敬礼|祝好|谢谢|감사합니다|"
    r"(?<![^\W\d_])(?:gracias|grazie|obrigad|dziękuj|děkuj|спасибо|дякую|köszönöm|teşekkür|"
    r"ευχαριστ|kiitos|mulțumesc|bedankt)|ありがとう",
    re.IGNORECASE,
)
_DIGIT: Final = re.compile(r"\d")
# A postscript after the name: "P.S.", "PS:", "P.-S. :", "P.P.S.", "ps." ("PS Shop" is none);
# the Latin abbreviation is written so in most languages with Latin, Cyrillic or Greek script.
# "P.S.", "PS:", "P.P.S."; in Cyrillic "П.П." (bg) and "П.С." (ru, uk).
_POSTSCRIPT: Final = re.compile(
    r"^(?:(?:p\.\s?){1,2}-?\s?s\b|p{1,2}s\s?[:.]|п\.\s?[пс]\.)", re.IGNORECASE
)
_COMBINED: Final = re.compile(r"[,，،]\s*[^\W\d_]")  # "Best regards, Marcus Webb"


def _is_colon_closing(lines: Sequence[str], content: Sequence[int], position: int) -> bool:
    """A closing word we do not know that ends in a colon ("Üdvözlettel:" in other words): one
    word opening a paragraph, a name under it, and then a phone number, an address or a
    company. "Adresse:" with an address or a company under it is a list's heading."""
    index = content[position]
    text = lines[index].strip()
    if len(text.split()) != 1 or not text.endswith((":", "：")) or _DIGIT.search(text):
        return False
    if index == 0 or lines[index - 1].strip() or position + 2 >= len(content):
        return False
    if not _is_name(lines[content[position + 1]]):
        return False  # also a blank line apart: Outlook writes each line as a paragraph
    block = [lines[line] for line in content[position + 2 : position + 2 + _LOOKAHEAD]]
    return any(is_contact_line(line, strong=True) for line in block)


def _is_bare_sign_off(line: str) -> bool:
    """A closing without the name: it ends in a comma or "!" or is made of closing words."""
    text = line.strip()
    if _COMBINED.search(text):
        return False
    return (
        text.endswith(_CLOSING_MARKS) or _CLOSING_WORDS.search(text) is not None
    )


# What ends a closing without the name, in the scripts' own commas: "Cofion," "Հարգանքով՝".
_CLOSING_MARKS: Final = (",", "!", "，", "！", "。", "،", "՝", "、")


def _width(text: str) -> int:
    """Columns the text takes: wide (CJK) characters count twice, as a line of Japanese says as
    much as one twice its length in Latin letters."""
    return sum(2 if east_asian_width(char) in "WF" else 1 for char in text)


def _is_sign_off(line: str) -> bool:
    """ "Kind regards", "С уважением,", "何卒よろしくお願い申し上げます。": a few words on a line
    of their own, without digits; not a sentence ("would do it."), a question or a heading. A
    line ending in ".", "!", "。" or ":" is a closing only with a closing word ("Thanks!",
    "감사합니다.", "Üdvözlettel:")."""
    text = line.strip()
    if not (0 < _width(text) <= _MAX_NAME and len(text.split()) <= 5) or _DIGIT.search(text):
        return False
    if text.endswith(("?", "？", ";")) or is_contact_line(text):
        return False
    if text.endswith((".", "!", "！", "。", ":", "：")):
        if len(text.split()) == 1 and _width(text) <= 12 and not text.endswith((":", "：")):
            return True  # one word and a stop is no sentence: "Kiitos.", "감사합니다."
        return _CLOSING_WORDS.search(text) is not None  # "Thanks!", "Üdvözlettel:"
    return True


def _is_name(line: str) -> bool:
    """ "Marcus Webb", "高橋": a few words without any closing punctuation."""
    text = line.strip()
    return (
        0 < _width(text) <= _MAX_NAME
        and len(text.split()) <= 4
        and not text.endswith(
            (".", "!", "?", ":", ";", ",", "。", "！", "？", "：", "，", "、", "،")
        )
        and not is_contact_line(text)
    )


def _is_block(block: Sequence[str], *, signed: bool) -> bool:
    """Contact lines within the first few; no question and no second closing ("Mvh" / "Håkon
    Dahl" below an address in the answer); short lines or contact lines, and a long legal
    footer after the contact lines. Under a sign-off and name, a
    title or department of one or two lines needs no contact details ("Kundenservice")."""
    if not block or len(block) > _MAX_BLOCK:
        return False
    contact = False
    for line in block:
        text = line.strip()
        if text.endswith(("?", "？")) or _CLOSING_WORDS.search(text) or _POSTSCRIPT.match(text):
            return False  # a question, a second closing or a "P.S." is the agent's message
        if is_contact_line(text):
            # under a sign-off and name, "Department | Company" is as good as a phone number
            contact = contact or signed or is_contact_line(text, strong=True)
        elif _width(text) > _MAX_NAME and not contact:
            return False  # a long line comes only after contact lines: a legal footer
    if any(is_contact_line(line) for line in block[:_LOOKAHEAD]):
        return True
    return signed and len(block) <= _TITLE_LINES and not any(_is_sentence(line) for line in block)


def _is_sentence(line: str) -> bool:
    """Ends or holds a sentence, the full stops of abbreviations aside: a company's legal form
    ("Cyf.", "Sdn. Bhd.", "v.o.f.", "S.R.L.") or a street's ("Jl.") ends no sentence."""
    return _SENTENCE.search(_ABBREVIATION.sub("A", line)) is not None


# A capitalised word of up to three letters or a single letter with its full stop ("Cyf.",
# "Jl.", "қ."), or letters joined by full stops ("S.n.c."); "it." and "wet." end sentences.
_ABBREVIATION: Final = re.compile(
    r"(?<!\S)(?:[^\W\d_a-zа-я]\w{0,2}\.|[^\W\d_]\.|(?:[^\W\d_]{1,3}\.){2,})(?!\S)"
)
