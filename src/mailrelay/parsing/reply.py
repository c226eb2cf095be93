"""Read an agent's reply to a ticket: who sent it (strictly, authorisation rests on it), what it
answers, whether a machine sent it, and its text and HTML bodies. Never raises on broken mail.
"""

from __future__ import annotations

import re
from email.message import Message

from mailrelay.core.models import AgentReply

from .addresses import normalize_address
from .decoding import fix_surrogates
from .defects import Defects
from .headers import ANGLE_ID_RE, first_address, raw_header, read_addresses, read_header_text
from .message import collect_bodies, content_type, parse_message

#: Control characters a reply's text never means (NUL, BEL, ESC, C1...): tab and line breaks stay.
_BODY_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

# RFC 3834 and the common vendor headers that mark automatic mail.
_AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-auto-response-suppress")
_PRECEDENCE_AUTO = frozenset({"bulk", "junk", "list", "auto_reply"})
# Localized out-of-office and auto-reply subjects (en, de, da, nl, fr, sv, no, es).
_OOO_SUBJECT_RE = re.compile(
    r"^\s*(?:"
    r"out of (?:the )?office|automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|"
    r"away from (?:the )?office|on vacation|"
    r"abwesenheit(?:snotiz)?|automatische antwort|nicht im büro|"
    r"fraværende|fravær|autosvar|automatisk svar|ikke på kontoret|"
    r"afwezig(?:heid)?|automatisch antwoord|niet aanwezig|"
    r"absence|absent|réponse automatique|reponse automatique|"
    r"frånvaro|frånvarande|automatiskt svar|"
    r"fuera de la oficina|respuesta automática|respuesta automatica|ausente"
    r")\b",
    re.IGNORECASE,
)
# Who wrote which authentication results: RFC 8601 section 5, RFC 8617.
_TRACE_FIELDS = ("received", "authentication-results", "arc-authentication-results")
_DSN_SENDERS = ("mailer-daemon@", "postmaster@")


def parse_reply(raw: bytes) -> AgentReply:
    """Read an agent's reply; never raises (a broken reply is rejected, never crashes us)."""
    defects = Defects()
    try:
        return _read_reply(raw, defects)
    except Exception as exc:
        defects.add_exception("parser", exc)
        return AgentReply(None, None, None, None, (), (), None, (), None, None, False,
                          defects.as_tuple())


def _read_reply(raw: bytes, defects: Defects) -> AgentReply:
    msg = parse_message(raw, defects)
    from_address = _reply_sender(msg, defects)
    from_name = None
    if from_address is not None:
        first, name = first_address(msg, "From", Defects())
        from_name = name if first == from_address else None
    recipients: list[str] = []
    for name in ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To"):
        for _, spec in read_addresses(msg, name, defects):
            address = normalize_address(spec)
            if address and address not in recipients:
                recipients.append(address)
    threads: list[str] = []
    for name in ("In-Reply-To", "References"):
        value = fix_surrogates(raw_header(msg, name) or "")
        for ident in reversed(ANGLE_ID_RE.findall(value)) if name == "References" else \
                ANGLE_ID_RE.findall(value):
            if ident not in threads:
                threads.append(ident)
    bodies = collect_bodies(msg, defects)
    plain = [part for part in bodies.plain if part.strip()]
    subject = read_header_text(msg, "Subject", defects)
    auth = tuple(v for v in (msg.get_all("Authentication-Results") or []) if v)
    trace = tuple((key.lower(), " ".join(str(value).split())) for key, value in msg.raw_items()
                  if key.lower() in _TRACE_FIELDS)
    ours = any(msg.get(h) for h in ("X-Mailrelay-Shop", "X-Mailrelay-Review"))
    return AgentReply(
        # Raw 8-bit bytes come back surrogate-escaped, which SQLite cannot store (the dedupe
        # key and the thread look-ups are made of these): decode them like other headers.
        message_id=fix_surrogates(raw_header(msg, "Message-ID") or "").strip() or None,
        from_address=from_address,
        from_name=from_name,
        subject=subject,
        recipients=tuple(recipients),
        in_reply_to=tuple(threads),
        automatic=_automatic(msg, from_address, subject, defects),
        authentication_results=tuple(" ".join(str(v).split()) for v in auth),
        # An agent's text is published and mailed: control bytes in it (a NUL from a broken
        # client, mangled mail) would reach the page and the customer (fuzz suite, issue 10 §6).
        text=_BODY_CONTROL_RE.sub("", "\n\n".join(plain)) if plain else None,
        html=_BODY_CONTROL_RE.sub("", "\n".join(bodies.html)) if bodies.html else None,
        ours=ours,
        defects=defects.as_tuple(),
        trace=trace,
    )


def _reply_sender(msg: Message, defects: Defects) -> str | None:
    """The one mailbox of the one From field, read as a mail client shows it, or None.

    Authorisation rests on this address, so there is no guessing: in
    `agent@shop.example (x) <attacker@evil.example>` the address is the angle-addr, whatever
    the display name says; a From with two mailboxes (RFC 5322 allows it with Sender) or two
    From fields names nobody (RFC 7489 6.6.1).
    """
    values = [str(v) for k, v in msg.raw_items() if k.lower() == "from"]
    if len(values) != 1:
        if values:
            defects.add(f"From: {len(values)} fields")
        return None
    # Encoded-words are display text: read the raw field, never the decoded one.
    try:
        angles, commas, rest = _address_parts(values[0])
    except ValueError as exc:
        defects.add(f"From: {exc}")
        return None
    if commas or len(angles) > 1:
        defects.add("From: more than one mailbox")
        return None
    spec = angles[0] if angles else rest
    address = normalize_address(spec.strip())
    if address is None:
        defects.add("From: no valid address")
    return address


def _address_parts(value: str) -> tuple[list[str], int, str]:
    """(angle-addr contents, top-level commas, the text outside comments and quotes) of an
    address header: quoted strings and (nested) comments are skipped as RFC 5322 says.
    ValueError when a quote, comment or angle bracket is left open."""
    angles: list[str] = []
    commas = 0
    plain: list[str] = []
    depth = 0
    quoted = escaped = False
    angle: list[str] | None = None
    for char in value:
        if escaped:
            escaped = False
            if angle is not None:
                angle.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
        elif angle is not None:
            if char == ">":
                angles.append("".join(angle))
                angle = None
            else:
                angle.append(char)
        elif char == '"':
            quoted = True
        elif char == "(":
            depth = 1
        elif char == "<":
            angle = []
        elif char == ",":
            commas += 1
        else:
            plain.append(char)
    if angle is not None or quoted or depth:
        raise ValueError("an unclosed quote, comment or angle bracket")
    text = "".join(plain).strip()
    return angles, commas if text or angles else 0, text


def _automatic(msg: Message, sender: str | None, subject: str | None,
               defects: Defects) -> str | None:
    """Why this mail was sent by a machine (RFC 3834 section 5), or None for a person."""
    auto = (raw_header(msg, "Auto-Submitted") or "").strip().lower()
    if auto and not auto.startswith("no"):
        return f"Auto-Submitted: {auto}"
    for name in _AUTO_HEADERS:
        if raw_header(msg, name) is not None:
            return f"{name} header"
    precedence = (raw_header(msg, "Precedence") or "").strip().lower()
    if precedence in _PRECEDENCE_AUTO:
        return f"Precedence: {precedence}"
    return_path = raw_header(msg, "Return-Path")  # the topmost: the delivering server's
    if return_path is not None and return_path.strip().replace(" ", "") in ("<>", ""):
        # RFC 5321 4.5.5: a null reverse-path is a bounce or other automatic message.
        return "null Return-Path"
    ctype, _ = content_type(msg, defects)
    report = (msg.get_param("report-type") or "") if ctype == "multipart/report" else ""
    if ctype == "multipart/report" or str(report).lower() == "delivery-status":
        return "delivery status notification"
    if sender and sender.startswith(_DSN_SENDERS):
        return f"sent by {sender.partition('@')[0]}"  # the role, never an address
    if subject and _OOO_SUBJECT_RE.search(subject):
        return "out-of-office subject"
    return None
