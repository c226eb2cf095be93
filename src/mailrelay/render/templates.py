"""Template lookup, written once: the packaged templates with a shop's `templates_dir`
overriding them per file, for mail (with a locale chain) and for web pages. Renders no message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from jinja2 import (
    BaseLoader,
    ChainableUndefined,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    select_autoescape,
)

from mailrelay.config import Config, ShopConfig
from mailrelay.core.locales import ALIASES as LOCALE_ALIASES
from mailrelay.core.locales import FALLBACK_LOCALE
from mailrelay.render.headers import clean_header
from mailrelay.render.localized import MAIL_FILTERS, MAIL_GLOBALS

__all__ = ["FALLBACK_LOCALE", "Templates", "normalize_locale", "web_environment"]

# Locales come from input (trigger mail, CSV): only this shape may ever become part of a path.
_LOCALE: Final = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_PURPOSE: Final = re.compile(r"[a-z][a-z0-9_-]{0,39}")


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


def _loader(folder: str, templates_dir: Path | None) -> BaseLoader:
    """`folder` of the package's templates ("" = all of them), under `templates_dir/folder`
    when a shop has one: a file found there wins, all others come from the package. A zipped
    install reads the package through PackageLoader."""
    root = files("mailrelay") / "templates"
    builtin: BaseLoader
    if isinstance(root, Path):
        builtin = FileSystemLoader(root / folder if folder else root)
    else:
        builtin = PackageLoader("mailrelay", f"templates/{folder}" if folder else "templates")
    if templates_dir is None:
        return builtin
    override = templates_dir / folder if folder else templates_dir
    return ChoiceLoader([FileSystemLoader(override), builtin])


def web_environment(templates_dir: Path | None = None) -> Environment:
    """The environment of the web pages (templates/web): autoescaped, and a missing variable
    is an error, not an empty string."""
    return Environment(
        loader=_loader("web", templates_dir),
        autoescape=select_autoescape(["html.j2", "html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _mail_environment(templates_dir: Path | None) -> Environment:
    env = Environment(
        loader=_loader("", templates_dir),
        # ".html.j2" ends in "html.j2": escaped; ".txt.j2" and ".subject.j2" are not.
        autoescape=select_autoescape(
            enabled_extensions=("html.j2", "html"), default_for_string=False
        ),
        undefined=ChainableUndefined,  # a missing optional variable renders empty
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(MAIL_FILTERS)  # long_date, decimal: in the mail's own locale
    env.globals.update(MAIL_GLOBALS)  # plural_form(n)
    return env


class Templates:
    """Per-shop Jinja2 environments of the mail templates, with a locale fallback chain.

    A shop's `templates_dir` mirrors the built-in tree
    (`<templates_dir>/mail/de/invitation.txt.j2`); any file found there wins over the built-in
    file of the same name, all others still come from the package. Environments are cached
    per templates_dir (None = built-ins only).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._environments: dict[Path | None, Environment] = {}

    def environment(self, shop: ShopConfig | None = None) -> Environment:
        """The Jinja2 environment of this shop's mail templates."""
        key = shop.templates_dir if shop is not None else None
        env = self._environments.get(key)
        if env is None:
            env = self._environments[key] = _mail_environment(key)
        return env

    def locale_chain(self, shop: ShopConfig, locale: str | None) -> list[str]:
        """Locales to try, best first: "de-DE" → ["de-DE", "de", <shop locale, its base>, "en"];
        a language another locale stands for follows itself ("no-NO" → "no-NO", "no", "nb").

        A locale that is not of the form `ll[-Subtag]*` is ignored (it comes from input).
        """
        chain: list[str] = []
        for candidate in (locale, shop.locale, FALLBACK_LOCALE):
            normal = normalize_locale(candidate)
            if normal is None:
                continue
            parts = normal.split("-")
            steps = ["-".join(parts[:end]) for end in range(len(parts), 0, -1)]
            for step in [*steps, *([LOCALE_ALIASES[parts[0]]] if parts[0] in LOCALE_ALIASES
                                   else [])]:
                if step not in chain:
                    chain.append(step)
        return chain

    def first_template(
        self, shop: ShopConfig, locale: str | None, name: Callable[[str], str]
    ) -> tuple[Template, str]:
        """(template, locale used) of the first locale in the chain that has `name(locale)`.

        Raises jinja2.TemplateNotFound when none has it.
        """
        env = self.environment(shop)
        chain = self.locale_chain(shop, locale)
        for used in chain:
            template = _find(env, name(used))
            if template is not None:
                return template, used
        raise TemplateNotFound(name("{" + ",".join(chain) + "}"))

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
        text_template, used = self.first_template(
            shop, locale, lambda step: f"mail/{step}/{purpose}.txt.j2"
        )
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
