"""Jinja2 environments per shop (built-ins overridden per file, locale fallback) and the
invitation/reminder email as exact bytes. Reads templates only: never sends, never stores.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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

__all__ = [
    "RenderedMail",
    "Templates",
    "clean_header",
    "invitation_mail",
    "new_message_id",
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
        raise ValueError(f"not a usable recipient address: {value!r}")
    if not local.isascii():
        raise ValueError(f"recipient address needs SMTPUTF8, which is not supported: {value!r}")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"not a usable recipient address: {value!r}") from None
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
    if message_id is None:
        message_id = new_message_id(config.smtp.hostname)
    elif _MESSAGE_ID.fullmatch(message_id) is None:
        raise ValueError(f"invalid Message-ID {message_id!r}")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)  # the Clock gives UTC; a naive time would print -0000

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

    msg = EmailMessage(policy=POLICY)
    msg["From"] = sender
    msg["To"] = Address(display_name=name or "", addr_spec=to_address)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    msg["Reply-To"] = sender
    msg["List-Unsubscribe"] = f"<{unsubscribe}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders must not answer
    msg["MIME-Version"] = "1.0"
    # The body first: the email package moves every Content-* header set before it into the
    # first part, and Content-Language belongs to the whole message.
    _attach_body(msg, text, html)
    msg["Content-Language"] = used
    msg["X-Mailrelay-Shop"] = shop.id
    for key, value in (extra_headers or {}).items():
        if _HEADER_NAME.fullmatch(key) is None or key.lower() in _RESERVED:
            raise ValueError(f"extra header {key!r} is not allowed")
        del msg[key]
        msg[key] = clean_header(value, limit=900)

    raw = msg.as_bytes(policy=POLICY)
    _verify(raw, [key.lower() for key in msg.keys()])
    return RenderedMail(message_id=message_id, to=to_address, subject=subject, raw=raw)


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
