"""Reading a posted review form strictly: one value per field, valid UTF-8, no files.

Says why a body is not our form; validating what the fields say is the reviews service's job.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

FORM_FIELDS = ("stars", "title", "text", "name")
#: A product's rating and text (n: its position in the trigger's list, SPEC issue 13).
PRODUCT_FIELD = re.compile(r"product-([1-9][0-9]?)-(stars|text)")

_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


async def _strict_urlencoded(request: web.Request) -> None:
    """UnicodeDecodeError when a percent-escape decodes to invalid UTF-8: aiohttp would store
    U+FFFD in its place (`text=%FF%FE` saved as "\ufffd\ufffd"); a browser never sends that."""
    charset = request.charset or "utf-8"
    body = (await request.read()).decode(charset)  # raw 8-bit bytes fail here already
    for name, value in parse_qsl(body, keep_blank_values=True, encoding="latin-1"):
        name.encode("latin-1").decode(charset)
        value.encode("latin-1").decode(charset)


async def read_form(request: web.Request) -> tuple[str | None, dict[str, str], object]:
    """(why the body is not our form or None, the form's fields, the CSRF value). Not our form:
    broken multipart, bad encoding, an unknown charset, too large, a field given twice or as a
    file. Each is the client's mistake, answered 400 with the form, never a 500 (issue 10)."""
    values = dict.fromkeys(FORM_FIELDS, "")
    if request.content_type not in _FORM_TYPES:
        # aiohttp reads any other body as an empty form: say so instead of "CSRF missing".
        return f"not a form (Content-Type {request.content_type[:40]!r})", values, None
    try:
        if request.content_type == "application/x-www-form-urlencoded":
            await _strict_urlencoded(request)
        data = await request.post()
    except (ValueError, LookupError, AssertionError, web.HTTPException,
            aiohttp.ClientError) as exc:
        return f"unreadable body ({type(exc).__name__})", values, None
    problem = None
    product_fields = list(dict.fromkeys(name for name in data if PRODUCT_FIELD.fullmatch(name)))
    values.update(dict.fromkeys(product_fields, ""))
    for field in (*FORM_FIELDS, *product_fields, "csrf"):
        given = data.getall(field, [])
        if len(given) > 1:
            problem = f"{field} given {len(given)} times"
        elif given and not isinstance(given[0], str):
            problem = f"{field} sent as a file or binary part"
        if field in values and given and isinstance(given[0], str):
            values[field] = given[0]
    return problem, values, data.get("csrf")


async def read_fields(request: web.Request, names: tuple[str, ...]) -> dict[str, str]:
    """The named fields of a posted form (the console's), one string each: "" when missing,
    given twice, sent as a file, or when the body is no readable form (its CSRF field is then
    "" too, so the form is refused, never a 500)."""
    fields = dict.fromkeys(names, "")
    if request.content_type not in _FORM_TYPES:
        return fields
    try:
        if request.content_type == "application/x-www-form-urlencoded":
            await _strict_urlencoded(request)
        data = await request.post()
    except (ValueError, LookupError, AssertionError, web.HTTPException, aiohttp.ClientError):
        return fields
    for name in names:
        given = data.getall(name, [])
        if len(given) == 1 and isinstance(given[0], str):
            fields[name] = given[0]
    return fields
