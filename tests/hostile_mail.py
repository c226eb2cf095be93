"""Hostile inbound mail for the fault and fuzz suite (issue 10 §6), and the SMTP clients that
deliver it: aiosmtplib for what a real client sends, a raw socket for what no client would.

Every generator is deterministic (a fixed seed), so a failing input reproduces by its name.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import aiosmtplib

#: The seed of the random mutations; change it only together with the expected counts.
SEED = 10

CRLF = b"\r\n"


@dataclass(frozen=True)
class Case:
    """One hostile input: how it travels and which answers are acceptable.

    `raw` is the message as the client hands it over (aiosmtplib normalises line endings and
    dot-stuffs it). With `verbatim`, `raw` is the DATA payload sent byte for byte, terminator
    included. `expect` holds the SMTP codes a correct listener may answer (empty: any 2xx/4xx/5xx).
    """

    name: str
    raw: bytes
    rcpts: tuple[str, ...]
    mail_from: str = "platform@shop.example"
    mail_options: tuple[str, ...] = ()
    verbatim: bool = False
    expect: frozenset[int] = frozenset()


@dataclass
class Answer:
    """What the listener said to one input (the final answer for its message)."""

    case: Case
    code: int
    text: str
    local_port: int
    queued: list[str] = field(default_factory=list)


def crlf(raw: bytes) -> bytes:
    """Bare LFs (as EmailMessage writes them) to CRLF."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", CRLF)


def head(*lines: str | bytes, mid: str, to: str = "Ann Lee <ann@example.com>",
         subject: str = "Your order #4711 has shipped") -> bytes:
    """A header section (without the empty line) with the usual trigger fields first."""
    out = ["From: Shop <shop@platform.example>", f"To: {to}", f"Subject: {subject}",
           f"Message-ID: <{mid}@fuzz.example>", "Date: Fri, 04 Dec 2026 10:00:00 +0000"]
    encoded = [x.encode() for x in out] + [x if isinstance(x, bytes) else x.encode()
                                           for x in lines]
    return CRLF.join(encoded)


def message(*lines: str | bytes, body: bytes, mid: str, **kw: str) -> bytes:
    return head(*lines, mid=mid, **kw) + CRLF + CRLF + body + CRLF


def valid_trigger(n: int, shop: str = "acme") -> bytes:
    """A realistic shipping notice: multipart/alternative with QP text and base64 HTML."""
    text = (f"Hello Ann,\r\n\r\nyour order #{4000 + n} from {shop} is on its way. Tracking: "
            "https://track.example/ZX991\r\n\r\nKind regards,\r\nthe team")
    html = f"<p>Hello Ann,</p><p>Your order <b>#{4000 + n}</b> is on its way.</p>"
    body = (b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + text.encode() + b"\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(html.encode()).replace(b"\n", CRLF)
            + b"--b1--")
    return message("MIME-Version: 1.0", 'Content-Type: multipart/alternative; boundary="b1"',
                   body=body, mid=f"valid-{shop}-{n}", subject=f"Order #{4000 + n} shipped")


def _multipart(boundary: str, *parts: bytes, close: bool = True) -> bytes:
    b = boundary.encode()
    out = b"".join(b"--" + b + CRLF + p + CRLF for p in parts)
    return out + (b"--" + b + b"--" if close else b"")


def _text_part(body: bytes, *headers: str) -> bytes:
    lines = list(headers) or ["Content-Type: text/plain; charset=utf-8"]
    return CRLF.join(x.encode() for x in lines) + CRLF + CRLF + body


def block_trigger(n: int, payload: str, kind: str = "mailrelay") -> bytes:
    """An HTML trigger carrying a structured block (`payload` is its JSON text, maybe broken)."""
    html = (f'<p>Your order is on its way.</p><script type="application/json+{kind}">'
            f"{payload}</script>").encode()
    body = base64.encodebytes(html).replace(b"\n", CRLF).rstrip()  # lines stay short
    return message("MIME-Version: 1.0", "Content-Type: text/html; charset=utf-8",
                   "Content-Transfer-Encoding: base64", body=body, mid=f"block-{kind}-{n}")


def valid_block(n: int) -> str:
    return json.dumps({"recipientEmail": f"c{n}@example.com", "recipientName": "Cleo Ray",
                       "referenceId": f"B-{n}", "locale": "de-DE",
                       "preferredSendTime": "2026-12-10T09:30:00+01:00",
                       "tags": ["boots", "winter"],
                       "products": [{"sku": "S-1", "name": "Boot", "productUrl":
                                     "https://shop.example/p/1",
                                     "imageUrl": "https://shop.example/i/1.jpg"}]})


def block_cases(rcpt: str) -> Iterator[Case]:
    """Structured blocks with hostile values: far dates, huge numbers, deep JSON, wrong types."""
    values: dict[str, object] = {
        "send-time-year-9999": {"preferredSendTime": "9999-12-31T23:59:59-23:59"},
        "send-time-year-1": {"preferredSendTime": "0001-01-01T00:00:00+23:59"},
        "send-time-far-future-utc": {"preferredSendTime": "9999-12-31T23:59:59"},
        "send-time-garbage": {"preferredSendTime": "tomorrow-ish"},
        "send-time-number": {"preferredSendTime": 1e308},
        "reference-5000-digits": {"referenceId": "9" * 5000},
        "reference-huge-float": {"referenceId": 1e308},
        "reference-negative-zero": {"referenceId": -0.0},
        "reference-bool": {"referenceId": True},
        "email-list": {"recipientEmail": ["a@example.com"]},
        "email-with-newline": {"recipientEmail": "a@example.com\r\nBcc: x@example.com"},
        "name-with-controls": {"recipientName": "Cleo\u0000\u202eyaR\u2028"},
        "locale-long": {"locale": "de-" + "x" * 5000},
        "tags-10000": {"tags": [f"t{i}" for i in range(10_000)]},
        "products-5000": {"products": [{"sku": i, "name": f"p{i}"} for i in range(5000)]},
        "product-javascript-url": {"products": [{"name": "x", "productUrl": "javascript:1"}]},
    }
    for n, (name, change) in enumerate(values.items()):
        # Its own customer and order each, so the decision gets past dedupe to scheduling.
        data = {**json.loads(valid_block(100 + n)), **change}  # type: ignore[dict-item]
        yield Case(f"block/{name}", block_trigger(len(name), json.dumps(data))
                   .replace(b"block-mailrelay-", f"block-{name}-".encode()), (rcpt,))
    raw_payloads = {
        "json-nested-100000": "[" * 100_000 + "]" * 100_000,
        "json-object-nested-5000": '{"a":' * 5000 + "1" + "}" * 5000,
        "json-5000-digit-int": '{"referenceId": ' + "7" * 5000 + "}",
        "json-nan-infinity": '{"referenceId": NaN, "preferredSendTime": Infinity}',
        "json-html-escaped": valid_block(1).replace('"', "&quot;"),
        "json-unterminated": valid_block(2)[:-10],
        "json-duplicate-keys": '{"recipientEmail": "a@example.com", "recipientEmail": 5}',
        "json-lone-surrogate": '{"recipientName": "\\ud800", "referenceId": "\\udfff"}',
        "script-unclosed": valid_block(3) + "</scr",
    }
    for name, payload in raw_payloads.items():
        yield Case(f"block/{name}", block_trigger(len(name), payload)
                   .replace(b"block-mailrelay-", f"block-{name}-".encode()), (rcpt,))
    yield Case("block/two-blocks-trustpilot-and-mailrelay", block_trigger(
        99, valid_block(5) + '</script><script type="application/json+trustpilot">'
        + valid_block(6)), (rcpt,))


def mime_cases(rcpt: str) -> Iterator[Case]:
    """Malformed MIME: boundaries, Content-Type parameters, charsets, transfer encodings."""
    order = b"Your order #5120 has shipped."
    mp = 'Content-Type: multipart/mixed; boundary="zz"'
    variants: dict[str, tuple[list[str | bytes], bytes]] = {
        "multipart-without-boundary": (["Content-Type: multipart/mixed"],
                                       _multipart("zz", _text_part(order))),
        "boundary-never-appears": ([mp], _text_part(order)),
        "boundary-unterminated": ([mp], _multipart("zz", _text_part(order), close=False)),
        "boundary-empty": (['Content-Type: multipart/mixed; boundary=""'],
                           _multipart("", _text_part(order))),
        "boundary-200-chars": ([f'Content-Type: multipart/mixed; boundary="{"q" * 200}"'],
                               _multipart("q" * 200, _text_part(order))),
        "boundary-is-prefix-of-another": (['Content-Type: multipart/mixed; boundary="a"'],
                                          _multipart("a", _multipart("ab", _text_part(order)))),
        "content-type-garbage-params": (
            ["Content-Type: text/plain; charset=; ; =x; format; boundary=\"; q=\"\"\""], order),
        "content-type-no-subtype": (["Content-Type: text"], order),
        "content-type-only-semicolons": (["Content-Type: ;;;;"], order),
        "rfc2231-bad-charset": (["Content-Type: text/plain; charset*=bogus''%FF%FE%00"], order),
        "rfc2231-continuations-out-of-order": (
            ["Content-Type: text/plain; name*1=b; name*0=a; name*5*=utf-8''%E2"], order),
        "charset-claims-utf-16": (["Content-Type: text/plain; charset=utf-16"], order),
        "charset-unknown": (["Content-Type: text/plain; charset=x-no-such-charset"], order),
        "charset-utf8-invalid-bytes": (["Content-Type: text/plain; charset=utf-8"],
                                       b"Order #5120 \xc3\x28 \xa0\xa1 \xf0\x28\x8c\x28"),
        "charset-latin1-claims-ascii": (["Content-Type: text/plain; charset=us-ascii"],
                                        "Bestellung #5120 für Jörg".encode("latin-1")),
        "cte-unknown": (["Content-Type: text/plain", "Content-Transfer-Encoding: x-uuencode"],
                        order),
        "cte-garbage": (["Content-Transfer-Encoding: base65; charset=what"], order),
        "base64-invalid-chars": (["Content-Transfer-Encoding: base64"],
                                 b"WW91ciBvcmRlciAj!!!NTEyMCBoYXM*gc2hpcHBlZC4="),
        "base64-bad-padding": (["Content-Transfer-Encoding: base64"],
                               b"WW91ciBvcmRlciAjNTEyMCBoYXMgc2hpcHBlZC4==="),
        "base64-truncated": (["Content-Transfer-Encoding: base64"], b"WW91ciBvcmRlciAjNTE"),
        "base64-of-invalid-utf8": (["Content-Transfer-Encoding: base64"],
                                   base64.b64encode(b"Order #5120 \xff\xfe\xc0\x80")),
        "qp-bad-escapes": (["Content-Transfer-Encoding: quoted-printable"],
                           b"Order =ZZ#5120 =\r\n=4 shipped=\r\n=E2=82"),
        "qp-soft-break-at-end": (["Content-Transfer-Encoding: quoted-printable"],
                                 b"Order #5120 shipped="),
        "html-only-broken": (["Content-Type: text/html; charset=utf-8"],
                             b"<html><body><p>Order <b>#5120<script>alert(1)</scr<!-- <p"),
        "rfc822-garbage": (["Content-Type: message/rfc822"], b"\x00\x01 not a message at all"),
        "multipart-digest-empty": (['Content-Type: multipart/digest; boundary="d"'],
                                   b"--d\r\n\r\n--d--"),
        "mime-version-99": (["MIME-Version: 99.1 (from the future)",
                             "Content-Type: text/plain"], order),
    }
    for name, (headers, body) in variants.items():
        yield Case(f"mime/{name}", message("MIME-Version: 1.0", *headers, body=body,
                                           mid=f"mime-{name}"), (rcpt,))


def encoding_cases(rcpt: str) -> Iterator[Case]:
    """Invalid UTF-8 and encoded-words with bad charsets, alone and mixed."""
    bad = {
        "to-invalid-utf8-name": {"to": "J\udcc3(rg \udcff\udcfe <joerg@example.com>"},
        "subject-encoded-word-bad-charset": {"subject": "=?x-bogus?Q?Order_=234712?="},
        "subject-encoded-word-bad-base64": {"subject": "=?utf-8?B?!!!not*base64?= #4712"},
        "subject-encoded-word-invalid-utf8": {"subject": "=?utf-8?Q?=FF=FE=C0=80?= #4712"},
        "subject-encoded-word-unterminated": {"subject": "=?utf-8?Q?Order_#4712"},
        "to-encoded-word-mixed-with-8bit": {
            "to": "=?utf-8?B?w4Zyw7g=?= J\udcf6rg =?iso-8859-1?Q?M=FCller?= <m@example.com>"},
        "to-encoded-word-in-address": {"to": "Ann <=?utf-8?Q?ann?=@example.com>"},
        "to-encoded-word-utf7": {"to": "=?utf-7?Q?+AGEAbgBu-?= <ann@example.com>"},
        "to-encoded-word-huge-count": {"to": " ".join(["=?utf-8?Q?a?="] * 3000)
                                       + " <ann@example.com>"},
        "to-empty-angle": {"to": "<>"},
        "to-nested-angles": {"to": "<<<ann@example.com>>>"},
        "to-group-syntax": {"to": "Customers: ann@example.com, bob@example.com;"},
        "to-unbalanced-quotes-and-comments": {"to": '"Ann (Lee <ann@example.com'},
    }
    for name, fields in bad.items():
        to = fields.get("to", "Ann Lee <ann@example.com>").encode("utf-8", "surrogateescape")
        subject = fields.get("subject", "Order #4712").encode("utf-8", "surrogateescape")
        raw = head(mid=f"enc-{name}", to="X", subject="X")
        raw = raw.replace(b"To: X", b"To: " + to).replace(b"Subject: X", b"Subject: " + subject)
        yield Case(f"encoding/{name}", raw + CRLF + CRLF + b"Order #4712 shipped." + CRLF,
                   (rcpt,))


def identity_cases(rcpt: str) -> Iterator[Case]:
    """Message-IDs that are huge, doubled, empty, binary or missing (the dedupe key's input)."""
    body = b"Order #7500 shipped."
    plain = message(body=body, mid="X")
    variants = {
        "folded-over-3000-lines": b"Message-ID: <" + CRLF.join([b" p"] * 3000) + b"@x>",
        "two-message-ids": b"Message-ID: <one@fuzz.example>\r\nMessage-ID: <two@fuzz.example>",
        "empty": b"Message-ID:",
        "nul-and-8bit": b"Message-ID: <a\x00b\xff\xfe@fuzz.example>",
        "no-angle-brackets-and-spaces": b"Message-ID: this is not an id",
    }
    for name, line in variants.items():
        yield Case(f"message-id/{name}", plain.replace(b"Message-ID: <X@fuzz.example>", line)
                   .replace(body, f"Order #7500 shipped ({name}).".encode()), (rcpt,),
                   expect=frozenset({250}))
    none = plain.replace(b"Message-ID: <X@fuzz.example>\r\n", b"")
    yield Case("message-id/missing", none, (rcpt,), expect=frozenset({250}))
    yield Case("message-id/missing-same-bytes-again", none, (rcpt,), expect=frozenset({250}))


def nesting_cases(rcpt: str) -> Iterator[Case]:
    """Deep structures: 200 nested multiparts, nested message/rfc822, many parts."""
    inner = _text_part(b"Order #6001 shipped.")
    for depth in range(200, 0, -1):
        inner = (f'Content-Type: multipart/mixed; boundary="n{depth}"'.encode() + CRLF + CRLF
                 + _multipart(f"n{depth}", inner))
    yield Case("nesting/multipart-200-levels",
               message("MIME-Version: 1.0", body=inner, mid="nest-200")
               .replace(b"MIME-Version: 1.0\r\n\r\n", b"MIME-Version: 1.0\r\n"), (rcpt,))
    msg = message("Content-Type: text/plain", body=b"Order #6002 shipped.", mid="rfc822-0")
    for depth in range(60):
        msg = message("MIME-Version: 1.0", "Content-Type: message/rfc822", body=msg,
                      mid=f"rfc822-{depth + 1}")
    yield Case("nesting/message-rfc822-60-levels", msg, (rcpt,))
    mixed = _text_part(b"Order #6003 shipped.")
    for depth in range(40):
        wrapped = message("Content-Type: text/plain", body=b"x", mid=f"mix-{depth}")
        mixed = (f'Content-Type: multipart/mixed; boundary="m{depth}"'.encode() + CRLF + CRLF
                 + _multipart(f"m{depth}", mixed, b"Content-Type: message/rfc822\r\n\r\n"
                              + wrapped))
    yield Case("nesting/multipart-and-rfc822-alternating",
               message("MIME-Version: 1.0", body=mixed, mid="nest-mixed")
               .replace(b"MIME-Version: 1.0\r\n\r\n", b"MIME-Version: 1.0\r\n"), (rcpt,))
    many = _multipart("p", *(_text_part(f"part {i} of order #6004".encode())
                             for i in range(3000)))
    yield Case("nesting/3000-parts", message(
        "MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="p"', body=many,
        mid="parts-3000"), (rcpt,))


def nul_cases(rcpt: str) -> Iterator[Case]:
    yield Case("nul/in-body", message(body=b"Order #7001\x00 shipped\x00\x00.", mid="nul-body"),
               (rcpt,))
    yield Case("nul/in-subject", message(body=b"Order #7002.", mid="nul-subj",
                                         subject="Order\x00 #7002"), (rcpt,))
    yield Case("nul/in-address", message(body=b"Order #7003.", mid="nul-addr",
                                         to="Ann <ann\x00@example.com>"), (rcpt,))
    yield Case("nul/in-header-name", head(mid="nul-name") + b"\r\nX-\x00Evil: 1\r\n\r\nhi\r\n",
               (rcpt,))
    yield Case("nul/in-boundary", message(
        "MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="a\x00b"',
        body=_multipart("a\x00b", _text_part(b"Order #7004.")), mid="nul-boundary"), (rcpt,))
    yield Case("nul/only-nuls", b"\x00" * 5000, (rcpt,))


def huge_cases(rcpt: str, limit: int) -> Iterator[Case]:
    """Huge headers within and beyond the listener's size limit (`limit` bytes)."""
    folded = CRLF.join([b"X-Big: " + b"a" * 900] + [b" " + b"b" * 900] * 1000)  # ~900 KB
    yield Case("huge/900kb-folded-header", message(folded, body=b"Order #8001.", mid="big-fold"),
               (rcpt,), expect=frozenset({250}))
    yield Case("huge/900kb-header-on-one-line",
               message(b"X-Big: " + b"a" * 900_000, body=b"Order #8002.", mid="big-line")
               + b".\r\n",
               (rcpt,), verbatim=True, expect=frozenset({500}))
    many = [f"X-H{i}: value {i}".encode() for i in range(10_000)]
    yield Case("huge/10000-headers", message(*many, body=b"Order #8003.", mid="many-headers"),
               (rcpt,), expect=frozenset({250}))
    over = [f"X-H{i}: value {i} {'v' * 40}".encode() for i in range(limit // 50 + 1000)]
    yield Case("huge/headers-beyond-limit", message(*over, body=b"Order #8006.", mid="hdr-over"),
               (rcpt,), expect=frozenset({552}))
    lines = [b"X-Long: start"] + [b" c"] * 100_000
    yield Case("huge/100000-continuation-lines", message(CRLF.join(lines), body=b"Order #8004.",
                                                         mid="cont-lines"),
               (rcpt,), expect=frozenset({250}))
    beyond = [b"X-Long: start"] + [b" " + b"d" * 40] * (limit // 40 + 10)
    yield Case("huge/continuation-lines-beyond-limit",
               message(CRLF.join(beyond), body=b"Order #8005.", mid="cont-beyond"),
               (rcpt,), expect=frozenset({552}))
    over = CRLF.join([b"X-Big: x"] + [b" " + b"e" * 900] * (limit // 900 + 10))
    yield Case("huge/folded-header-beyond-limit", message(over, body=b"x", mid="big-over"),
               (rcpt,), expect=frozenset({552}))
    yield Case("huge/no-header-end", CRLF.join([b"X-H: v"] * 20_000), (rcpt,))


def eight_bit_cases(rcpt: str) -> Iterator[Case]:
    """SMTPUTF8 and 8-bit mail, with and without the parameters that announce them."""
    utf8 = message("MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                   "Content-Transfer-Encoding: 8bit",
                   body="Ihre Bestellung #9001 ist unterwegs. 注文 #9001 を発送しました。".encode(),
                   mid="utf8-hdr", to="José Müller <josé@exämple.com>",
                   subject="Заказ #9001 отправлен")
    yield Case("8bit/utf8-headers-with-smtputf8", utf8, (rcpt,),
               mail_options=("SMTPUTF8", "BODY=8BITMIME"), expect=frozenset({250}))
    yield Case("8bit/utf8-headers-without-smtputf8", utf8.replace(b"utf8-hdr", b"utf8-bare"),
               (rcpt,), expect=frozenset({250}))
    yield Case("8bit/8bitmime-body", utf8.replace(b"utf8-hdr", b"utf8-8bm"), (rcpt,),
               mail_options=("BODY=8BITMIME",), expect=frozenset({250}))
    latin = message("Content-Type: text/plain; charset=iso-8859-1",
                    body="Ihre Bestellung für Jörg".encode("latin-1"), mid="latin-raw",
                    to="J\udcf6rg <joerg@example.com>".encode("utf-8", "surrogateescape")
                    .decode("utf-8", "replace"))
    yield Case("8bit/latin1-body-without-8bitmime", latin, (rcpt,), expect=frozenset({250}))
    yield Case("8bit/utf8-envelope-sender-with-smtputf8", utf8.replace(b"utf8-hdr", b"env-u"),
               (rcpt,), mail_from="versand@bücher.example", mail_options=("SMTPUTF8",),
               expect=frozenset({250}))
    yield Case("8bit/binarymime-not-offered", utf8.replace(b"utf8-hdr", b"binmime"), (rcpt,),
               mail_options=("BODY=BINARYMIME",))
    yield Case("8bit/unknown-mail-parameter", utf8.replace(b"utf8-hdr", b"unk-param"), (rcpt,),
               mail_options=("X-WHATEVER=1",))


def envelope_cases(rcpt: str) -> Iterator[Case]:
    """Odd envelopes, sent byte for byte: what no client library would put on the wire."""
    body = message(body=b"Order #9300 shipped.", mid="env-{}") + b".\r\n"

    def case(label: str, **kw: object) -> Case:
        fields: dict[str, object] = {"rcpts": (rcpt,), "verbatim": True, **kw}
        return Case(f"envelope/{label}", body.replace(b"{}", label.encode()), **fields)  # type: ignore[arg-type]

    yield case("null-sender", mail_from="", expect=frozenset({250}))
    yield case("utf8-sender-without-smtputf8", mail_from="versand@bücher.example")
    yield case("nul-in-sender", mail_from="plat\x00form@shop.example")
    yield case("invalid-utf8-sender", mail_from="plat\udcff\udcfeform@shop.example")
    yield case("invalid-utf8-sender-with-smtputf8", mail_from="pl\udcc3@shop.example",
               mail_options=("SMTPUTF8",))
    yield case("invalid-utf8-recipient", rcpts=(rcpt.replace("@", "\udcff@"),))
    yield case("2000-octet-sender", mail_from="a" * 1990 + "@shop.example")
    yield case("sender-with-spaces-and-quotes", mail_from='"a b"@shop.example')
    yield case("forged-reply-key", rcpts=("reply+AAAAAAAAAAAAAAAA@relay.test",),
               expect=frozenset({550}))
    yield case("nul-in-recipient", rcpts=(rcpt.replace("@", "\x00@"),))
    yield case("same-recipient-50-times", rcpts=(rcpt,) * 50, expect=frozenset({250}))
    yield case("recipient-in-upper-case", rcpts=(rcpt.upper(),), expect=frozenset({250}))


def end_of_data_cases(rcpt: str) -> Iterator[Case]:
    """Bare LF / bare CR near the final dot, and dot-stuffing edges (sent byte for byte).

    A lone `.` next to a bare LF or CR does not end the data (SMTP smuggling): each payload
    ends with a proper `<CRLF>.<CRLF>`, and the smuggled second message must not appear.
    """
    smuggled = (b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<" + rcpt.encode() + b">\r\n"
                b"DATA\r\nFrom: evil@attacker.example\r\nTo: victim@example.com\r\n"
                b"Subject: smuggled order #6666\r\n\r\nsmuggled\r\n")
    base = head(mid="eod-{}") + CRLF + CRLF + b"Order #9100 shipped."
    for label, fake_end in {"lf-dot-lf": b"\n.\n", "crlf-dot-lf": b"\r\n.\n",
                            "lf-dot-crlf": b"\n.\r\n", "cr-dot-cr": b"\r.\r",
                            "crlf-dot-cr": b"\r\n.\r", "cr-dot-crlf": b"\r.\r\n"}.items():
        payload = base.replace(b"{}", label.encode()) + fake_end + smuggled + b"\r\n.\r\n"
        yield Case(f"end-of-data/{label}-then-smuggled-mail", payload, (rcpt,), verbatim=True,
                   expect=frozenset({250}))
    stuffing = {
        "doubled-dots": b"..\r\n...\r\n.. leading\r\n",
        "unstuffed-leading-dot": b".not stuffed by the client\r\n",
        "dot-space": b". \r\n",
        "dot-at-line-end": b"ends with a dot.",
    }
    for label, body in stuffing.items():
        payload = head(mid=f"dots-{label}") + CRLF + CRLF + body + b"\r\n.\r\n"
        yield Case(f"dot-stuffing/{label}", payload, (rcpt,), verbatim=True,
                   expect=frozenset({250}))
    yield Case("dot-stuffing/empty-message", b".\r\n", (rcpt,), verbatim=True,
               expect=frozenset({250}))
    yield Case("dot-stuffing/only-header-no-newline", head(mid="no-nl") + b"\r\n.\r\n", (rcpt,),
               verbatim=True, expect=frozenset({250}))
    yield Case("bare-lf/whole-message", crlf(valid_trigger(77)).replace(CRLF, b"\n")
               .replace(b"valid-acme-77", b"bare-lf-77") + b"\r\n.\r\n", (rcpt,), verbatim=True,
               expect=frozenset({250}))
    yield Case("bare-cr/whole-message", valid_trigger(78).replace(CRLF, b"\r")
               .replace(b"valid-acme-78", b"bare-cr-78") + b"\r\n.\r\n", (rcpt,), verbatim=True,
               expect=frozenset({250}))


Mutation = Callable[[random.Random, bytes, bytes], bytes]


def _flip(rng: random.Random, raw: bytes, _: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 24)):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def _truncate(rng: random.Random, raw: bytes, _: bytes) -> bytes:
    return raw[: rng.randrange(1, len(raw))]


def _splice(rng: random.Random, raw: bytes, other: bytes) -> bytes:
    return raw[: rng.randrange(len(raw))] + other[rng.randrange(len(other)):]


def _bytes_in(rng: random.Random, raw: bytes, _: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        data[i:i] = rng.choice([b"\x00", b"\r", b"\n", b"=", b"--b1", b"\xff", b"=?", b"?=",
                                b";", b'"', b"\\", b"<", b">", b"\x1b", b"\t", b"\xe2\x80"])
    return bytes(data)


def _lines(rng: random.Random, raw: bytes, _: bytes) -> bytes:
    lines = raw.split(CRLF)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(lines))
        op = rng.randrange(3)
        if op == 0:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 1 and len(lines) > 1:
            del lines[i]
        else:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
    return CRLF.join(lines)


MUTATIONS: dict[str, Mutation] = {"flip": _flip, "truncate": _truncate, "splice": _splice,
                                  "insert": _bytes_in, "lines": _lines}


def mutate(seeds: list[bytes], count: int, seed: int = SEED) -> Iterator[tuple[str, bytes]]:
    """`count` seeded mutations of `seeds`: (name that reproduces it, mutated bytes)."""
    rng = random.Random(seed)
    names = sorted(MUTATIONS)
    for n in range(count):
        kind = names[n % len(names)]
        source = rng.randrange(len(seeds))
        other = seeds[rng.randrange(len(seeds))]
        # A Message-ID of its own, or most mutants would be a retry of their seed (deduped).
        raw = seeds[source].replace(b"Message-ID: <", f"Message-ID: <m{n}.".encode(), 1)
        yield f"{kind}-{n}-of-{source}", MUTATIONS[kind](rng, raw, other)


# --- delivery -----------------------------------------------------------------------------------


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close our end; the relay may have closed first (a reset is no error here)."""
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One SMTP reply (all its lines); (0, "") when the server closed without one."""
    text = []
    while True:
        line = await reader.readline()
        if not line:
            return 0, "\n".join(text)
        text.append(line.decode("utf-8", "replace").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]) if line[:3].isdigit() else 0, "\n".join(text)


async def deliver_raw(port: int, case: Case) -> Answer:
    """One SMTP transaction over a plain socket; `case.raw` goes out after DATA exactly."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    local = writer.get_extra_info("sockname")[1]
    try:
        code, text = await read_reply(reader)
        params = " ".join(case.mail_options)
        raw = ("utf-8", "surrogateescape")  # a surrogate-escaped address sends its raw bytes
        for command in (b"EHLO fuzz.example", f"MAIL FROM:<{case.mail_from}> {params}".strip()
                        .encode(*raw), *(f"RCPT TO:<{r}>".encode(*raw) for r in case.rcpts),
                        b"DATA"):
            writer.write(command + CRLF)
            code, text = await read_reply(reader)
            if code >= 400 or code == 0:
                return Answer(case, code, text, local)
        writer.write(case.raw)
        await writer.drain()
        code, text = await read_reply(reader)
        writer.write(b"QUIT\r\n")
        await read_reply(reader)
        return Answer(case, code, text, local, _queued(code, text))
    finally:
        await _close(writer)


async def deliver_client(port: int, case: Case) -> Answer:
    """One transaction with aiosmtplib (a real client: it dot-stuffs and normalises EOLs)."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60,
                             local_hostname="fuzz.example")
    await client.connect()
    local = client.transport.get_extra_info("sockname")[1] if client.transport else 0
    try:
        await client.ehlo()
        try:
            encoding = "utf-8" if "SMTPUTF8" in case.mail_options else "ascii"
            await client.mail(case.mail_from, options=list(case.mail_options), encoding=encoding)
            for rcpt in case.rcpts:
                await client.rcpt(rcpt, encoding=encoding)
            response = await client.data(case.raw)
        except aiosmtplib.SMTPResponseException as exc:
            return Answer(case, exc.code, exc.message, local)
        return Answer(case, response.code, response.message, local,
                      _queued(response.code, response.message))
    finally:
        try:
            await client.quit()
        except aiosmtplib.SMTPException:
            client.close()


def _queued(code: int, text: str) -> list[str]:
    """The row ids of a 250 `OK: queued as 12,known`."""
    if code != 250 or "queued as" not in text:
        return []
    return text.rsplit("queued as", 1)[1].strip().split(",")


async def deliver(port: int, case: Case, within: float = 90.0) -> Answer:
    """Deliver `case` the way it says; a hang is a failure, not a wait."""
    send = deliver_raw if case.verbatim else deliver_client
    try:
        return await asyncio.wait_for(send(port, case), within)
    except TimeoutError as exc:
        raise AssertionError(f"{case.name}: no SMTP answer within {within}s (a hang)") from exc
    except (ConnectionError, aiosmtplib.SMTPServerDisconnected) as exc:
        raise AssertionError(f"{case.name}: connection dropped without an answer: {exc!r}") \
            from exc


def dsn(bounce_address: str, recipient: str, message_id: str, *, status: str = "5.1.1",
        action: str = "failed", n: int = 0) -> bytes:
    """A delivery status notification (RFC 3464) as an MTA sends it back to the VERP address."""
    parts = (
        b"Content-Type: text/plain\r\n\r\nYour message could not be delivered.",
        b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
        + f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
          f"Diagnostic-Code: smtp; 550 {status} mailbox unknown\r\n".encode(),
        f"Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: {message_id}\r\n"
        f"To: {recipient}\r\n".encode(),
    )
    return message("MIME-Version: 1.0",
                   'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"',
                   body=_multipart("dsn", *parts), mid=f"dsn-{n}", to=bounce_address,
                   subject="Undelivered Mail Returned to Sender").replace(
        b"From: Shop <shop@platform.example>", b"From: MAILER-DAEMON@mx.example")


COMMANDS = (b"EHLO fuzz.example", b"HELO fuzz.example", b"MAIL FROM:<p@shop.example>",
            b"RCPT TO:<reviews+acme@relay.test>", b"DATA", b"RSET", b"NOOP", b"VRFY root",
            b"EXPN staff", b"HELP", b"STARTTLS", b"AUTH PLAIN AHVzZXIAcGFzcw==", b"BDAT 10 LAST",
            b"QUIT x", b"MAIL FROM:<>", b"RCPT TO:<>", b"MAIL FROM:<a@b> SIZE=99999999999999",
            b"MAIL FROM:<a@b> BODY=8BITMIME SMTPUTF8", b"RCPT TO:<reply+@relay.test>",
            b"RCPT TO:<bounce+@relay.test>", b"RCPT TO:<bounce+99999999999999999999@relay.test>",
            b"XCLIENT ADDR=1.2.3.4", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2", b"ehlo", b"mail from:",
            b"RCPT TO:<" + b"a" * 300 + b"@relay.test>", b"EHLO " + "ü".encode() * 50)


def session_lines(rng: random.Random) -> list[bytes]:
    """One session's command lines: known commands out of order, and garbage."""
    lines = []
    for _ in range(rng.randint(3, 15)):
        roll = rng.random()
        if roll < 0.6:
            line = rng.choice(COMMANDS)
        elif roll < 0.8:
            line = bytes(rng.randrange(32, 127) for _ in range(rng.randint(0, 80)))
        elif roll < 0.95:
            line = bytes(rng.choice(b"\x00\x01\x7f\x80\xff\xc3\r\t ") for _ in range(
                rng.randint(1, 40)))
            line = line.replace(b"\r", b"")
        else:
            line = b"X" * rng.choice((999, 1200, 70_000))
        lines.append(line)
    return lines


async def run_session(port: int, lines: list[bytes], within: float = 30.0) -> list[int]:
    """Send each line and read its reply; the codes, with 0 where the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    codes: list[int] = []
    try:
        code, _ = await asyncio.wait_for(read_reply(reader), within)
        if code != 220:
            return [code]
        for line in lines:
            writer.write(line + CRLF)
            code, text = await asyncio.wait_for(read_reply(reader), within)
            codes.append(code)
            # Closed, said goodbye (221, 421, aiosmtpd's "502 Too many unrecognized
            # commands, goodbye"), or DATA began: this session is over.
            if code in (0, 221, 421, 354) or "goodbye" in text.lower():
                break
    finally:
        await _close(writer)
    return codes
