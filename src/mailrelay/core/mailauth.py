"""Is a reply's From address vouched for by our own mail server? (RFC 8601, RFC 7489)

Pure: header fields in, a yes/no out. Which result counts (RFC 8601 section 5: a header's
fields are read from the top, in the order they were added on the way in):

* exactly one field: the topmost `Authentication-Results` (or `ARC-Authentication-Results`,
  RFC 8617) whose authserv-id is ours (`[security] authserv_id`, compared without case). The
  border MTA writes its results above everything the sender wrote, so a forged field with our
  authserv-id is always below the genuine one, and ignored;
* and only if it lies above the first *foreign* `Received:` field. A `Received:` field is ours
  (the search goes on past it) when its `by` host is the authserv-id (the border MTA's own
  field, above or below which it writes its results: Postfix milters such as OpenDKIM and
  OpenDMARC insert below it, Gmail too), when it has no `from` clause (`Received: by …`), when
  every IP literal in its `from` clause is a loopback address (a content filter or
  reinjection on localhost), or when it records final delivery (`with LMTP` / `with LOCAL`).
  Any other `Received:` field was written before the message reached us.

So the border MTA must write results for every message it accepts (OpenDKIM:
`AlwaysAddARHeader yes`); otherwise a forged field with our authserv-id would be the topmost
one. Where several milters write results, the one that runs
last is on top: put the DMARC milter last.

The result passes when it is aligned with the From address (RFC 7489 section 3.1, relaxed):
`dmarc=pass` whose `header.from` is the From domain; `dkim=pass` whose `header.d` (else the
domain of `header.i`) has the From domain's organizational domain; `spf=pass` whose
`smtp.mailfrom` domain has it. The organizational domain comes from the Public Suffix List
shipped in the `publicsuffixlist` package (no network at run time).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

__all__ = ["aligned", "authenticated", "org_domain", "our_results"]

_PSL = PublicSuffixList()
_INTERNAL_PROTOCOLS = frozenset({"lmtp", "lmtps", "lmtpa", "lmtpsa", "utf8lmtp", "utf8lmtps",
                                 "utf8lmtpa", "utf8lmtpsa", "local"})
_FROM_CLAUSE = re.compile(r"^\s*from\s+(.*?)(?:\s+by\s|\s+via\s|\s+with\s|\s+id\s|\s+for\s|;|$)",
                          re.IGNORECASE | re.DOTALL)
_WITH = re.compile(r"\swith\s+([A-Za-z0-9-]+)", re.IGNORECASE)
_BY = re.compile(r"\bby\s+([^\s;()]+)", re.IGNORECASE)
_IP_LITERAL = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
_RESULT_FIELDS = frozenset({"authentication-results", "arc-authentication-results"})
_ARC_INSTANCE = re.compile(r"i\s*=\s*\d{1,2}", re.IGNORECASE)


def _domain(value: str) -> str:
    """The domain of an address or a bare domain, lowercased, without a trailing dot."""
    return value.rpartition("@")[2].strip().strip("<>").lower().rstrip(".")


@lru_cache(maxsize=1024)
def org_domain(domain: str) -> str | None:
    """The organizational domain (RFC 7489 3.2): one label below the public suffix, or None
    for a public suffix itself (`co.uk`, `github.io`) and anything not a domain."""
    domain = _domain(domain)
    if not domain or "." not in domain.strip("."):
        return None
    found: str | None = _PSL.privatesuffix(domain)
    return found


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: both domains have the same organizational domain."""
    org = org_domain(domain)
    return org is not None and org == org_domain(from_domain)


def _strip_comments(text: str) -> str:
    """Remove RFC 5322 comments (nested parentheses) outside quoted strings."""
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if quoted:
            out.append(char)
            quoted = char != '"'
        elif char == '"' and depth == 0:
            quoted = True
            out.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            out.append(" ")
        elif depth == 0:
            out.append(char)
    return "".join(out)


def _our_received(value: str, authserv_id: str) -> bool:
    """A `Received:` field written inside our boundary (see the module docstring)."""
    found = _FROM_CLAUSE.match(value)
    if found is None:
        return True  # "Received: by host with …": no hop from another host
    rest = value[found.end(1):]  # the receiving MTA's own words, after the `from` clause
    by = _BY.search(rest)
    if by is not None and by.group(1).lower().rstrip(".") == authserv_id:
        return True
    protocol = _WITH.search(rest)
    if protocol is not None and protocol.group(1).lower() in _INTERNAL_PROTOCOLS:
        return True
    literals = _IP_LITERAL.findall(found.group(1))
    if not literals:
        return False
    for literal in literals:
        try:
            if not ipaddress.ip_address(literal).is_loopback:
                return False
        except ValueError:
            return False
    return True


def our_results(fields: Iterable[tuple[str, str]], authserv_id: str) -> list[str]:
    """The body (after the authserv-id) of the one result field that counts, or nothing.

    `fields` are (name, value) pairs of the Received, Authentication-Results and
    ARC-Authentication-Results fields in the order they appear, topmost first.
    """
    wanted = authserv_id.strip().lower().rstrip(".")
    if not wanted:
        return []
    for name, value in fields:
        name = name.strip().lower()
        if name == "received":
            if not _our_received(value, wanted):
                return []
            continue
        if name not in _RESULT_FIELDS:
            continue
        text = " ".join(_strip_comments(value).split())
        head, _, rest = text.partition(";")
        if name == "arc-authentication-results":  # RFC 8617 4.1.1: "i=1; authserv-id; …"
            if not _ARC_INSTANCE.fullmatch(head.strip()):
                continue
            head, _, rest = rest.partition(";")
        words = head.split()
        if words and words[0].lower().rstrip(".") == wanted:
            return [rest]  # the topmost one only: anything lower may be the sender's
    return []


def _split(text: str, separator: str) -> list[str]:
    """Split on `separator` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _results(body: str) -> Iterable[tuple[str, str, dict[str, str]]]:
    """(method, result, properties) of each resinfo of one Authentication-Results body."""
    for resinfo in _split(body, ";"):
        tokens = resinfo.split()
        if not tokens or "=" not in tokens[0]:
            continue
        method, _, result = tokens[0].partition("=")
        props: dict[str, str] = {}
        for token in tokens[1:]:
            key, sep, value = token.partition("=")
            if sep:
                props.setdefault(key.lower(), value.strip('"'))
        yield method.split("/")[0].lower(), result.lower(), props


def authenticated(fields: Iterable[tuple[str, str]], authserv_id: str,
                  from_address: str) -> bool:
    """True when one of our results passes and is aligned with the From address."""
    from_domain = _domain(from_address)
    if not from_domain or "@" not in from_address:
        return False
    for body in our_results(fields, authserv_id):
        for method, result, props in _results(body):
            if result != "pass":
                continue
            if method == "dmarc":
                # RFC 7489 11.2: header.from names the domain DMARC evaluated; it must be ours.
                if _domain(props.get("header.from", "")) == from_domain:
                    return True
            elif method == "dkim":
                signer = props.get("header.d") or _domain(props.get("header.i", ""))
                if signer and aligned(signer, from_domain):
                    return True
            elif method == "spf":
                mailfrom = props.get("smtp.mailfrom", "")
                if mailfrom and aligned(_domain(mailfrom), from_domain):
                    return True
    return False
