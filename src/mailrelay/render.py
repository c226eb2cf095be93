"""Jinja2 environments per shop (built-ins overridden per file, locale fallback) and every
email we send (invitation, reminder, ticket, response) as exact bytes. Reads templates only:
never sends, never stores.
"""

from __future__ import annotations

import base64
import random
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, Policy, compat32
from email.utils import format_datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar, Final, Literal
from urllib.parse import urlsplit

from jinja2 import (
    BaseLoader,
    ChainableUndefined,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    Template,
    TemplateNotFound,
    select_autoescape,
)

from mailrelay.config import Config, ShopConfig
from mailrelay.core.reply_marker import REPLY_MARKER

__all__ = [
    "REPLY_MARKER",
    "RenderedMail",
    "Templates",
    "auto_response_text",
    "clean_header",
    "invitation_mail",
    "new_message_id",
    "notice_mail",
    "response_mail",
    "thread_index",
    "ticket_mail",
]

FALLBACK_LOCALE: Final = "en"

# Locales come from input (trigger mail, CSV): only this shape may ever become part of a path.
_LOCALE: Final = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_PURPOSE: Final = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_HEADER_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,75}")
_DOMAIN: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_MESSAGE_ID: Final = re.compile(r"<[^<>@\s]{1,200}@[^<>@\s]{1,253}>")
_SPACES: Final = re.compile(r"\s+")

# Headers an extra_headers entry may not set: they define who gets the message, its identity
# and its MIME structure, which RenderedMail and the outbox rely on.
_RESERVED: Final = frozenset(
    {"from", "to", "cc", "bcc", "sender", "date", "subject", "message-id"}
    | {"mime-version", "content-type", "content-transfer-encoding"}
)


# --------------------------------------------------------------------------- header values


def _control_replacement(char: str) -> str | None:
    """What a character becomes in a header: None = keep, "" = drop, " " = a space."""
    if char in "\t\n\r\v\f\x1c\x1d\x1e\x1f\x85\u2028\u2029":
        return " "  # line-breaking or spacing controls: the boundary between words stays
    category = unicodedata.category(char)
    if category in ("Cc", "Cs", "Zl", "Zp"):
        return ""  # NUL and other controls; lone surrogates cannot even be encoded
    if char in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
        return ""  # bidi overrides: used to disguise names and subjects (CVE-2021-42574 style)
    return None


def clean_header(value: str | None, limit: int = 200) -> str:
    """A value from input made safe for a header: no CR, LF, NUL or other control characters,
    whitespace collapsed, at most `limit` characters, and no RFC 2047 encoded-word opener.

    Python before 3.11.10 does not refuse CR/LF in header values (CVE-2024-6923); worse, the
    email package decodes "=?utf-8?q?=0D=0ABcc:...?=" inside a value we set and writes the
    decoded CR LF out raw. So "=?" is split into "= ?": no person's name or subject needs it.
    """
    if not value:
        return ""
    out: list[str] = []
    for char in str(value):
        replacement = _control_replacement(char)
        out.append(char if replacement is None else replacement)
    text = _SPACES.sub(" ", "".join(out)).strip()
    text = text.replace("=?", "= ?")
    return text[: max(limit, 0)].rstrip()


def new_message_id(domain: str) -> str:
    """A fresh, globally unique Message-ID in the relay's domain: "<hex@domain>"."""
    domain = domain.strip().strip(".")
    if _DOMAIN.fullmatch(domain) is None or ".." in domain:
        raise ValueError(f"cannot make a Message-ID in domain {domain!r}")
    return f"<{uuid.uuid4().hex}@{domain}>"


class _PlainHeader(UnstructuredHeader, BaseHeader):
    """An unstructured header written as given: never RFC 2047-decoded, and when it is ASCII,
    folded only at spaces and never turned into encoded words.

    The stock folder of Python 3.11 encodes any word too long for a 78-character line, so a
    long List-Unsubscribe URL or an Outlook Message-ID would come out as "=?utf-8?q?=3Chttps..."
    and no receiver could use it. Non-ASCII values (subjects, shop names) are encoded as usual.
    """

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        super().parse(value, kwds)
        kwds["decoded"] = str(value)  # what we set is what is sent: no encoded-word decoding

    def fold(self, *, policy: Policy) -> str:
        value = str(self)
        if not value.isascii():
            return BaseHeader.fold(self, policy=policy)
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise ValueError(f"control character in the {self.name} header")  # never expected
        width = policy.max_line_length or 998
        lines = [f"{self.name}:"]
        for word in value.split(" "):
            if not word:
                continue
            if len(lines[-1]) + 1 + len(word) > width and lines[-1].strip() != f"{self.name}:":
                lines.append("")
            lines[-1] += " " + word
        linesep = str(policy.linesep)
        return linesep.join(lines) + linesep


class _UniquePlainHeader(_PlainHeader):
    max_count: ClassVar[Literal[1] | None] = 1


def _make_policy() -> Policy:
    registry = HeaderRegistry(base_class=BaseHeader, default_class=_PlainHeader)
    registry.map_to_type("subject", _UniquePlainHeader)
    registry.map_to_type("message-id", _UniquePlainHeader)
    return SMTP.clone(header_factory=registry)


# SMTP = the default policy with CRLF line endings. Address, Date and MIME headers keep their
# standard classes; every other header is a _PlainHeader.
POLICY: Final = _make_policy()


# --------------------------------------------------------------------------- templates


def normalize_locale(value: str | None) -> str | None:
    """A locale in canonical case ("de_de" → "de-DE", "zh-hant-tw" → "zh-Hant-TW"), or None."""
    if not value:
        return None
    text = value.strip().replace("_", "-")
    if len(text) > 35 or _LOCALE.fullmatch(text) is None:
        return None
    language, *subtags = text.split("-")
    parts = [language.lower()]
    for subtag in subtags:
        if len(subtag) == 2 and subtag.isalpha():
            parts.append(subtag.upper())  # region
        elif len(subtag) == 4 and subtag.isalpha():
            parts.append(subtag.title())  # script
        else:
            parts.append(subtag.lower())
    return "-".join(parts)


def _builtin_loader() -> BaseLoader:
    """The package's own templates/ folder; a zipped install falls back to PackageLoader."""
    root = files("mailrelay") / "templates"
    if isinstance(root, Path):
        return FileSystemLoader(root)
    return PackageLoader("mailrelay", "templates")


class Templates:
    """Per-shop Jinja2 environments: shop templates_dir overrides built-ins per file; locale
    fallback.

    A shop's `templates_dir` mirrors the built-in tree
    (`<templates_dir>/mail/de/invitation.txt.j2`); any file found there wins over the built-in
    file of the same name, all others still come from the package. Environments are cached
    per templates_dir (None = built-ins only).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._builtin = _builtin_loader()
        self._environments: dict[Path | None, Environment] = {}

    def environment(self, shop: ShopConfig | None = None) -> Environment:
        """The Jinja2 environment of this shop (mail and web templates alike)."""
        key = shop.templates_dir if shop is not None else None
        env = self._environments.get(key)
        if env is None:
            loaders: list[BaseLoader] = [self._builtin]
            if key is not None:
                loaders.insert(0, FileSystemLoader(key))
            env = Environment(
                loader=ChoiceLoader(loaders),
                # ".html.j2" ends in "html.j2": escaped; ".txt.j2" and ".subject.j2" are not.
                autoescape=select_autoescape(
                    enabled_extensions=("html.j2", "html"), default_for_string=False
                ),
                undefined=ChainableUndefined,  # a missing optional variable renders empty
                keep_trailing_newline=True,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            self._environments[key] = env
        return env

    def locale_chain(self, shop: ShopConfig, locale: str | None) -> list[str]:
        """Locales to try, best first: "de-DE" → ["de-DE", "de", <shop locale, its base>, "en"].

        A locale that is not of the form `ll[-Subtag]*` is ignored (it comes from input).
        """
        chain: list[str] = []
        for candidate in (locale, shop.locale, FALLBACK_LOCALE):
            normal = normalize_locale(candidate)
            if normal is None:
                continue
            parts = normal.split("-")
            for end in range(len(parts), 0, -1):
                step = "-".join(parts[:end])
                if step not in chain:
                    chain.append(step)
        return chain

    def render_text(
        self, shop: ShopConfig, purpose: str, locale: str | None, **context: Any
    ) -> tuple[str, str, str, str]:
        """(subject, text_body, html_body, used_locale) of mail/<locale>/<purpose>.*.j2.

        The first locale of the chain that has `<purpose>.txt.j2` wins for all three files. Its
        `.subject.j2` is required; without an `.html.j2` the html_body is "" (text-only mail).
        `shop_name` defaults to the shop's name; `locale` (the one used) and `purpose` are set.
        Raises jinja2.TemplateNotFound when no locale has the text template.
        """
        if _PURPOSE.fullmatch(purpose) is None:
            raise ValueError(f"invalid template purpose {purpose!r}")
        env = self.environment(shop)
        chain = self.locale_chain(shop, locale)
        for used in chain:
            text_template = _find(env, f"mail/{used}/{purpose}.txt.j2")
            if text_template is not None:
                break
        else:
            raise TemplateNotFound(f"mail/{{{','.join(chain)}}}/{purpose}.txt.j2")
        values = {"shop_name": shop.name, **context, "locale": used, "purpose": purpose}
        subject = env.get_template(f"mail/{used}/{purpose}.subject.j2").render(values)
        text = text_template.render(values).strip("\n") + "\n"
        html_template = _find(env, f"mail/{used}/{purpose}.html.j2")
        html = html_template.render(values) if html_template is not None else ""
        return clean_header(subject), text, html, used


def _find(env: Environment, name: str) -> Template | None:
    try:
        return env.get_template(name)
    except TemplateNotFound as error:
        if error.name != name:
            raise  # the template exists but something it needs does not: a real error
        return None


# --------------------------------------------------------------------------- the message


@dataclass(frozen=True)
class RenderedMail:
    """One outgoing message, complete: sent byte-identically however often it is retried."""

    message_id: str  # "<...@relay-domain>", with angle brackets
    to: str  # bare recipient address (envelope)
    subject: str
    raw: bytes  # the complete RFC 5322 message, CRLF line endings


def _checked_url(value: str, what: str) -> str:
    url = clean_header(value, limit=2000)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in url for c in ' <>"'):
        raise ValueError(f"{what} is not an http(s) URL: {value!r}")
    return url


def _checked_address(value: str) -> str:
    """The recipient as sent: an internationalized domain in its ASCII (IDNA) form.

    A non-ASCII local part would need SMTPUTF8 end to end and is refused (ValueError).
    """
    address = value.strip()
    local, at, domain = address.rpartition("@")
    if (
        not at
        or not local
        or not domain
        or clean_header(address, limit=254) != address
        or any(char in address for char in ' <>,;()[]\\"')
    ):
        raise ValueError("not a usable recipient address")
    if not local.isascii():
        raise ValueError("recipient address needs SMTPUTF8, which is not supported")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError("not a usable recipient address") from None
    return f"{local}@{domain}"


def _customer_name(value: str | None) -> str | None:
    """The display name to greet; an address used as a name (x@y) is no name."""
    name = clean_header(value, limit=100)
    if not name or "@" in name:
        return None
    return name


def _clean_products(products: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Products that have a name, their text values cleaned (they come from the trigger mail)."""
    out: list[dict[str, Any]] = []
    for product in products or ():
        if not isinstance(product, Mapping):
            continue
        cleaned = {
            str(key): clean_header(value, limit=300) if isinstance(value, str) else value
            for key, value in product.items()
        }
        if cleaned.get("name"):
            out.append(cleaned)
    return out


def invitation_mail(
    templates: Templates,
    config: Config,
    shop: ShopConfig,
    *,
    purpose: str,
    to_email: str,
    to_name: str | None,
    locale: str | None,
    reference: str | None,
    review_url: str,
    unsubscribe_url: str,
    products: list[dict[str, Any]] | None,
    now: datetime,
    message_id: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> RenderedMail:
    """The invitation (or reminder) to one customer, multipart/alternative, ready to send.

    Raises ValueError for an unusable recipient address, URL, Message-ID or extra header name.
    """
    to_address = _checked_address(to_email)
    name = _customer_name(to_name)
    review = _checked_url(review_url, "review_url")
    unsubscribe = _checked_url(unsubscribe_url, "unsubscribe_url")
    message_id = _checked_message_id(config, message_id)
    now = _aware(now)

    shop_name = clean_header(shop.name) or shop.id
    subject, text, html, used = templates.render_text(
        shop,
        purpose,
        locale,
        shop_name=shop_name,
        customer_name=name,
        first_name=name.split(" ", 1)[0] if name else None,
        reference=clean_header(reference, limit=100) or None,
        review_url=review,
        unsubscribe_url=unsubscribe,
        products=_clean_products(products),
    )
    subject = subject or shop_name
    sender = clean_header(shop.from_address, limit=500)
    head: list[tuple[str, Any]] = [
        ("From", sender),
        ("To", Address(display_name=name or "", addr_spec=to_address)),
        ("Subject", subject),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        ("Reply-To", sender),
        ("List-Unsubscribe", f"<{unsubscribe}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),  # RFC 8058
        ("Auto-Submitted", "auto-generated"),  # RFC 3834: auto-responders must not answer
    ]
    msg = _compose(head, text, html, [("Content-Language", used), ("X-Mailrelay-Shop", shop.id)])
    for key, value in (extra_headers or {}).items():
        if _HEADER_NAME.fullmatch(key) is None or key.lower() in _RESERVED:
            raise ValueError(f"extra header {key!r} is not allowed")
        del msg[key]
        msg[key] = clean_header(value, limit=900)
    return RenderedMail(message_id=message_id, to=to_address, subject=subject, raw=_seal(msg))


def _checked_message_id(config: Config, message_id: str | None) -> str:
    """The given Message-ID when it has the form "<left@right>", else a new one (None)."""
    if message_id is None:
        return new_message_id(config.smtp.hostname)
    if _MESSAGE_ID.fullmatch(message_id) is None:
        raise ValueError(f"invalid Message-ID {message_id!r}")
    return message_id


def _aware(now: datetime) -> datetime:
    """The Clock gives UTC; a naive time is taken as UTC (else Date would print -0000)."""
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def _compose(
    head: Iterable[tuple[str, Any]],
    text: str,
    html: str,
    tail: Iterable[tuple[str, str]],
) -> EmailMessage:
    """A message of `head` headers, MIME-Version, the body, then the `tail` headers.

    The body comes before the tail: the email package moves every Content-* header set before
    it into the first part, and Content-Language belongs to the whole message.
    """
    msg = EmailMessage(policy=POLICY)
    for name, value in head:
        msg[name] = value
    msg["MIME-Version"] = "1.0"
    _attach_body(msg, text, html)
    for name, value in tail:
        msg[name] = value
    return msg


def _seal(msg: EmailMessage) -> bytes:
    """The message as sent (CRLF), refused unless its header block is exactly what was set."""
    raw = msg.as_bytes(policy=POLICY)
    _verify(raw, [key.lower() for key in msg.keys()])
    return raw


def _attach_body(msg: EmailMessage, text: str, html: str) -> None:
    """text/plain, or multipart/alternative of text/plain and text/html; utf-8, quoted-printable
    (7-bit clean, so no hop needs 8BITMIME, and still readable in the raw source)."""
    if not html:
        msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
        return
    msg.make_alternative()
    for content, subtype in ((text, "plain"), (html, "html")):
        part = EmailMessage(policy=POLICY)
        part.set_content(content, subtype=subtype, charset="utf-8", cte="quoted-printable")
        del part["MIME-Version"]  # set_content adds it; it belongs to the top level only
        msg.attach(part)


def _verify(raw: bytes, expected: list[str]) -> None:
    """Refuse to hand out a message whose header block is not exactly the headers we set.

    Defence in depth for CVE-2024-6923: whatever slipped through would show up as an extra
    header line here, or as a bare CR or LF.
    """
    if b"\0" in raw or b"\r" in raw.replace(b"\r\n", b"") or b"\n" in raw.replace(b"\r\n", b""):
        raise ValueError("rendered message has a NUL or a bare CR/LF")
    parsed = BytesHeaderParser(policy=compat32).parsebytes(raw)
    found = [key.lower() for key in parsed.keys()]
    if found != expected or parsed.defects:
        raise ValueError(f"rendered headers {found} differ from those set {expected}")


# --------------------------------------------------------------------------- tickets and responses

_KEY: Final = re.compile(r"[a-z0-9]{1,128}")  # reply keys are lowercase base32
_LINE_BREAK: Final = re.compile(r"\r\n|[\r\n\v\f\x85\u2028\u2029]")
_BLANK_LINES: Final = re.compile(r"\n{3,}")
_VARIANT_SEPARATOR: Final = re.compile(r"^---[ \t]*$", re.MULTILINE)
_FILETIME_EPOCH: Final = datetime(1601, 1, 1, tzinfo=UTC)
_MAX_REFERENCES: Final = 20
_CONTEXT_ITEMS: Final = 3
_TEXT_LIMIT: Final = 20_000


def ticket_mail(
    templates: Templates,
    config: Config,
    shop: ShopConfig,
    *,
    to_email: str,
    reply_to: str,
    key: str,
    review: Mapping[str, Any],
    shipment: Mapping[str, Any] | None,
    products: list[dict[str, Any]] | None,
    context: Mapping[str, list[dict[str, Any]]],
    links: Mapping[str, str],
    answered_by: str | None,
    auto_response: str | None,
    updated: bool,
    now: datetime,
    message_id: str | None = None,
    in_reply_to: str | None = None,
) -> RenderedMail:
    """A review as a ticket to one agent, in the shop's language; answered by replying to it.

    The text part starts with REPLY_MARKER and ends with "[mr:<key>]"; the HTML part carries
    the key hidden in a data-mailrelay-key element. `links["public"]` is required, "review"
    defaults to it. Raises ValueError for an unusable address, key, link, star count, review id
    or Message-ID.
    """
    agent = _checked_address(to_email)
    reply_address = _checked_address(reply_to)
    if _KEY.fullmatch(key) is None:
        raise ValueError(f"invalid reply key {key!r}")
    review_id = _review_id(review)
    message_id = _checked_message_id(config, message_id)
    now = _aware(now)
    values = _ticket_values(
        shop, key, review, shipment, products, context, links,
        answered_by == "auto", auto_response, updated,
    )  # fmt: skip
    subject, text, html, used = templates.render_text(shop, "ticket", shop.locale, **values)
    parent, references = _thread(in_reply_to, [])
    head: list[tuple[str, Any]] = [
        ("From", clean_header(shop.from_address, limit=500)),
        ("To", Address(addr_spec=agent)),
        ("Subject", subject or values["shop_name"]),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        ("Reply-To", reply_address),
        *_threading_headers(parent, references, message_id, now),
        ("Auto-Submitted", "auto-generated"),  # RFC 3834
    ]
    tail = [
        ("Content-Language", used),
        ("X-Mailrelay-Shop", shop.id),
        ("X-Mailrelay-Review", review_id),
        ("X-Mailrelay-Key", key),
    ]
    msg = _compose(head, _frame_ticket_text(text, key), html, tail)
    return RenderedMail(
        message_id=message_id, to=agent, subject=str(msg["Subject"]), raw=_seal(msg)
    )


def response_mail(
    templates: Templates,
    config: Config,
    shop: ShopConfig,
    *,
    to_email: str,
    to_name: str | None,
    locale: str | None,
    body: str,
    review: Mapping[str, Any],
    public_url: str,
    in_reply_to: str | None,
    references: list[str],
    now: datetime,
    message_id: str | None = None,
) -> RenderedMail:
    """The shop's published response, emailed to the customer under their invitation's thread.

    In-Reply-To/References that are not of the form "<left@right>" (ASCII) are left out, not
    refused: threading is a courtesy, never a reason not to send. Raises ValueError for an
    unusable address, URL, review or Message-ID.
    """
    to_address = _checked_address(to_email)
    name = _customer_name(to_name)
    public = _checked_url(public_url, "public_url")
    review_id = _review_id(review)
    message_id = _checked_message_id(config, message_id)
    now = _aware(now)
    shop_name = clean_header(shop.name) or shop.id
    text = _clean_text(body)
    stars = _stars(review.get("stars"))
    subject, text_body, html, used = templates.render_text(
        shop,
        "response",
        locale,
        shop_name=shop_name,
        customer_name=name,
        first_name=name.split(" ", 1)[0] if name else None,
        body=text,
        paragraphs=_paragraphs(text),
        stars=stars,
        stars_bar=_stars_bar(stars),
        title=_headline(review.get("title"), review.get("text")),
        public_url=public,
        review_url=public,  # the shared layout's button
    )
    sender = clean_header(shop.from_address, limit=500)
    parent, thread = _thread(in_reply_to, references)
    head: list[tuple[str, Any]] = [
        ("From", sender),
        ("To", Address(display_name=name or "", addr_spec=to_address)),
        ("Subject", subject or shop_name),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        ("Reply-To", sender),
        *_threading_headers(parent, thread, message_id, now),
        ("Auto-Submitted", "auto-replied"),  # RFC 3834: sent because someone wrote to us
    ]
    tail = [("Content-Language", used), ("X-Mailrelay-Shop", shop.id)]
    msg = _compose(head, text_body, html, [*tail, ("X-Mailrelay-Review", review_id)])
    return RenderedMail(
        message_id=message_id, to=to_address, subject=str(msg["Subject"]), raw=_seal(msg)
    )


def auto_response_text(
    templates: Templates,
    shop: ShopConfig,
    locale: str | None,
    *,
    first_name: str | None,
    stars: int,
    rng: random.Random | None = None,
) -> str:
    """One variant, chosen at random, of mail/<locale>/auto_response.txt.j2: the automatic
    public response to a positive review.

    The template holds several variants separated by lines of only "---". Locale chain as for
    invitations (the customer's locale, the shop's, "en"). Raises TemplateNotFound when no
    locale has the template, ValueError when it renders no variant.
    """
    env = templates.environment(shop)
    chain = templates.locale_chain(shop, locale)
    for used in chain:
        template = _find(env, f"mail/{used}/auto_response.txt.j2")
        if template is not None:
            break
    else:
        raise TemplateNotFound(f"mail/{{{','.join(chain)}}}/auto_response.txt.j2")
    name = _customer_name(first_name)
    rendered = template.render(
        shop_name=clean_header(shop.name) or shop.id,
        first_name=name,
        stars=_stars(stars),
        locale=used,
        purpose="auto_response",
    )
    variants = [v.strip() for v in _VARIANT_SEPARATOR.split(rendered) if v.strip()]
    if not variants:
        raise ValueError(f"mail/{used}/auto_response.txt.j2 renders no variant")
    return (rng or random.Random()).choice(variants)  # noqa: S311 - wording, not security


# --------------------------------------------------------------------------- ticket content


def _ticket_values(
    shop: ShopConfig,
    key: str,
    review: Mapping[str, Any],
    shipment: Mapping[str, Any] | None,
    products: list[dict[str, Any]] | None,
    context: Mapping[str, list[dict[str, Any]]],
    links: Mapping[str, str],
    answered_automatically: bool,
    auto_response: str | None,
    updated: bool,
) -> dict[str, Any]:
    """The context of the ticket templates (see templates/mail/README.md)."""
    stars = _stars(review.get("stars"))
    text = _defang(_clean_text(review.get("text")))
    answer = _defang(_clean_text(auto_response)) if answered_automatically else ""
    public = _checked_url(links.get("public") or "", "links['public']")
    review_link = _optional_url(links.get("review"), "links['review']") or public
    zone = shop.timezone
    return {
        "shop_name": clean_header(shop.name) or shop.id,
        "key": key,
        "marker": REPLY_MARKER,
        "updated": bool(updated),
        "stars": stars,
        "stars_bar": _stars_bar(stars),
        "title": _defang(clean_header(review.get("title"), limit=300)) or None,
        "headline": _defang(_headline(review.get("title"), review.get("text"))) or None,
        "text": text,
        "paragraphs": _paragraphs(text),
        "reviewer_name": _defang(_customer_name(review.get("reviewer_name")) or "") or None,
        "customer_email": clean_header(review.get("customer_email"), limit=254) or None,
        "reference": clean_header(review.get("reference"), limit=100) or None,
        "method": clean_header(review.get("method"), limit=40) or None,
        "review_locale": normalize_locale(review.get("locale")),
        "created_at": _format_time(review.get("created_at"), zone),
        "received_at": _format_time((shipment or {}).get("received_at"), zone, date_only=True),
        "products": _clean_products(products),
        "public_url": public,
        "review_url": review_link,
        "customer_context": _clean_context(context, zone),
        "answered_by": "auto" if answered_automatically else None,
        "auto_response": answer or None,
        "auto_paragraphs": _paragraphs(answer),
    }


def _frame_ticket_text(text: str, key: str) -> str:
    """The text part with REPLY_MARKER as its first line and [mr:<key>] as its last, even
    when a shop's own ticket.txt.j2 forgot them: the reply parser depends on both."""
    if text.split("\n", 1)[0].strip() != REPLY_MARKER:
        text = f"{REPLY_MARKER}\n\n{text}"
    reference = f"[mr:{key}]"
    if text.rstrip("\n").rsplit("\n", 1)[-1].strip() != reference:
        text = f"{text.rstrip(chr(10))}\n\n{reference}\n"
    return text


def _review_id(review: Mapping[str, Any]) -> str:
    value = clean_header(str(review.get("id") or ""), limit=64)
    if not value:
        raise ValueError("the review has no id")
    return value


def _stars(value: Any) -> int:
    """A star count of 1 to 5, else ValueError."""
    stars = _valid_stars(value)
    if stars is None:
        raise ValueError(f"stars must be an int from 1 to 5, not {value!r}")
    return stars


def _valid_stars(value: Any) -> int | None:
    """The star count when it is an int from 1 to 5 (True is no star count), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        return None
    return value


def _stars_bar(stars: int) -> str:
    return "★" * stars + "☆" * (5 - stars)


def _defang(text: str) -> str:
    """Customer text inside a ticket can neither fake our reply marker nor a [mr:key]."""
    return text.replace("##-", "## -").replace("[mr:", "[mr :")


def _clean_text(value: Any, limit: int = _TEXT_LIMIT) -> str:
    """Multi-line text from input: line breaks become "\\n", other controls and bidi overrides
    go (as in clean_header), trailing spaces and runs of blank lines are trimmed."""
    if not value:
        return ""
    lines: list[str] = []
    for line in _LINE_BREAK.split(str(value)):
        chars = (c if (r := _control_replacement(c)) is None else r for c in line)
        lines.append("".join(chars).rstrip())
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")
    return text[:limit].rstrip()


def _paragraphs(text: str) -> list[list[str]]:
    """Paragraphs (split at blank lines) as lists of lines: <p> and <br> in HTML templates,
    which autoescape each line."""
    return [block.split("\n") for block in text.split("\n\n") if block.strip()]


def _headline(title: Any, text: Any, limit: int = 40) -> str:
    """The title (cut at 80 characters), or else the first ~`limit` characters of the text."""
    if clean_title := clean_header(title, limit=1000):
        return _shorten(clean_title, 80)
    return _shorten(clean_header(text, limit=1000), limit)


def _shorten(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    cut = value[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,.;:-") + "…"


def _optional_url(value: str | None, what: str) -> str | None:
    return _checked_url(value, what) if value else None


def _format_time(value: Any, zone: tzinfo, *, date_only: bool = False) -> str | None:
    """An ISO time (or a datetime) in the shop's time zone: "2026-11-20 10:30 CET", or only
    the date. A plain date stays as it is; text that is not ISO is shown cleaned."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return value.isoformat()
    else:
        text = clean_header(str(value), limit=64)
        try:
            if len(text) == 10:
                return date.fromisoformat(text).isoformat()
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text or None
    local = _aware(moment).astimezone(zone)
    return local.strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M %Z").strip()


def _clean_context(
    context: Mapping[str, list[dict[str, Any]]], zone: tzinfo
) -> dict[str, list[dict[str, Any]]]:
    """The customer's other reviews, invitations and replies: at most three of each, cleaned.

    A star count out of range is shown without stars rather than refusing the whole ticket.
    """
    reviews, invitations, replies = [], [], []
    for item in _items(context, "reviews"):
        stars = _valid_stars(item.get("stars"))
        reviews.append({
            "id": clean_header(str(item.get("id") or ""), limit=64),
            "stars": stars,
            "stars_bar": _stars_bar(stars) if stars else "",
            "title": _defang(clean_header(item.get("title"), limit=120)),
            "date": _format_time(item.get("created_at"), zone, date_only=True),
        })  # fmt: skip
    for item in _items(context, "invitations"):
        invitations.append({
            "id": clean_header(str(item.get("id") or ""), limit=64),
            "reference": clean_header(item.get("reference"), limit=100) or None,
            "status": clean_header(item.get("status"), limit=40),
            "date": _format_time(item.get("sent_at"), zone, date_only=True),
        })  # fmt: skip
    for item in _items(context, "replies"):
        replies.append({
            "review_id": clean_header(str(item.get("review_id") or ""), limit=64),
            "snippet": _defang(_shorten(clean_header(item.get("body"), limit=1000), 100)),
            "date": _format_time(item.get("created_at"), zone, date_only=True),
        })  # fmt: skip
    status = [{"kind": clean_header(item.get("kind"), limit=20),
               "mail": clean_header(item.get("mail"), limit=60)}
              for item in _items(context, "status")]  # "address bounced": names no shop
    return {"reviews": reviews, "invitations": invitations, "replies": replies,
            "status": status}


def _items(context: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    values = context.get(kind) or ()
    return [item for item in values if isinstance(item, Mapping)][:_CONTEXT_ITEMS]


# --------------------------------------------------------------------------- threading


def _thread(in_reply_to: str | None, references: Iterable[str]) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) of a reply: usable Message-IDs only, no duplicates, in the
    caller's order (oldest first: the first is the thread's root, see thread_index), the parent
    appended when missing (RFC 5322 3.6.4), and when too long the first plus the latest."""
    parent = _usable_message_id(in_reply_to)
    thread: list[str] = []
    for value in [*references, in_reply_to]:
        usable = _usable_message_id(value)
        if usable is not None and usable not in thread:
            thread.append(usable)
    if len(thread) > _MAX_REFERENCES:
        thread = thread[:1] + thread[-(_MAX_REFERENCES - 1) :]
    return parent, thread


def _usable_message_id(value: str | None) -> str | None:
    text = clean_header(value, limit=998)
    return text if text.isascii() and _MESSAGE_ID.fullmatch(text) else None


def _threading_headers(
    parent: str | None, references: list[str], message_id: str, now: datetime
) -> list[tuple[str, str]]:
    headers = [("In-Reply-To", parent)] if parent else []
    if references:
        headers.append(("References", " ".join(references)))
    root = references[0] if references else message_id
    headers.append(("Thread-Index", thread_index(root, now)))
    return headers


def thread_index(root_message_id: str, now: datetime) -> str:
    """An Outlook Thread-Index header block (MS-OXOMSG 2.2.1.3), base64 of 22 bytes.

    Byte 0 is the reserved 0x01; bytes 1-5 are the top 40 bits (below the top byte) of `now`
    as a FILETIME (100 ns since 1601, big-endian); bytes 6-21 are a GUID that Outlook turns into
    the conversation id. The GUID is uuid5(NAMESPACE_URL, "mid:<id>") of the thread's first
    Message-ID (RFC 2392 "mid:" URL, without angle brackets), Data1-3 big-endian as the spec
    asks: every message we send in one thread lands in the same Outlook conversation.
    """
    filetime = (_aware(now) - _FILETIME_EPOCH) // timedelta(microseconds=1) * 10
    header = bytes([1]) + ((filetime >> 24) & 0xFF_FFFF_FFFF).to_bytes(5, "big")
    guid = uuid.uuid5(uuid.NAMESPACE_URL, "mid:" + root_message_id.strip().strip("<>"))
    return base64.b64encode(header + guid.bytes).decode("ascii")


# --------------------------------------------------------------------------- rejection notices


def notice_mail(
    templates: Templates,
    config: Config,
    shop: ShopConfig,
    *,
    to_email: str,
    reason: str,
    explanation: str,
    original_subject: str | None,
    original_text: str | None,
    in_reply_to: str | None,
    now: datetime,
    message_id: str | None = None,
    code: str = "",
    detail: str = "",
) -> RenderedMail:
    """Tell an agent why their reply was not published, with what they wrote, so they can
    resend it. `code` (the refusal's metric label) and `detail` let a template say the reason
    in the shop's language; `reason` and `explanation` are the English fallback. Sent from
    the shop's reply address with Auto-Submitted: auto-replied, so the agent's own
    auto-responder stays quiet (RFC 3834)."""
    to_address = _checked_address(to_email)
    message_id = _checked_message_id(config, message_id)
    now = _aware(now)
    shop_name = clean_header(shop.name) or shop.id
    subject, text_body, _html, used = templates.render_text(
        shop,
        "reply_rejected",
        None,
        shop_name=shop_name,
        reason=reason,
        explanation=explanation,
        code=code,
        detail=detail,
        original_subject=clean_header(original_subject, limit=200),
        original_text=_clean_text(original_text or "", limit=5000),
    )
    sender = clean_header(f"{shop_name} <{shop.reply_address}>", limit=500)
    parent, thread = _thread(in_reply_to, [in_reply_to] if in_reply_to else [])
    head: list[tuple[str, Any]] = [
        ("From", sender),
        ("To", Address(addr_spec=to_address)),
        ("Subject", subject or f"Your reply was not published: {reason}"),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        *_threading_headers(parent, thread, message_id, now),
        ("Auto-Submitted", "auto-replied"),
    ]
    msg = _compose(head, text_body, "", [("Content-Language", used),
                                         ("X-Mailrelay-Shop", shop.id)])
    return RenderedMail(
        message_id=message_id, to=to_address, subject=str(msg["Subject"]), raw=_seal(msg)
    )
