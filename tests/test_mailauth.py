"""Which Authentication-Results count (RFC 8601 section 5) and what is aligned (RFC 7489)."""

from __future__ import annotations

import pytest

from mailrelay.core.mailauth import aligned, authenticated, org_domain, our_results
from mailrelay.parsing import parse_reply

OURS = "mx.relay.test"
BORDER = ("received", "from mail.sender.example (mail.sender.example [198.51.100.7]) by "
          "mx.relay.test (Postfix) with ESMTPS id 4Xa1b2; Mon, 23 Nov 2026 10:00:00 +0000")


# The sender's own outgoing server: not ours, whatever it claims.
SENDER = ("received", "from [192.0.2.10] (helo=laptop) by smtp.sender.example with esmtpa id 1")


def ar(text: str) -> tuple[str, str]:
    return ("authentication-results", text)


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("acme.example", "acme.example"),
        ("Mail.ACME.example.", "acme.example"),
        ("example", None),
        ("co.uk", None),
        ("x.bolt.co.uk", "bolt.co.uk"),
        ("github.io", None),
        ("shop.github.io", "shop.github.io"),
        ("", None),
    ],
)
def test_the_organizational_domain_comes_from_the_public_suffix_list(
    domain: str, org: str | None
) -> None:
    assert org_domain(domain) == org


def test_relaxed_alignment_is_the_same_organizational_domain() -> None:
    assert aligned("mail.acme.example", "acme.example")
    assert aligned("acme.example", "eu.acme.example")
    assert not aligned("example", "acme.example")  # a parent that is a public suffix
    assert not aligned("co.uk", "bolt.co.uk")
    assert not aligned("x.evil.example", "shop.example")
    assert not aligned("github.io", "shop.github.io")
    assert not aligned("other.github.io", "shop.github.io")  # two owners under one suffix


def test_each_method_must_pass_aligned_with_the_from_address() -> None:
    agent = "support@acme.example"

    def ok(results: str, sender: str = agent) -> bool:
        return authenticated([ar(f"{OURS}; {results}"), BORDER], OURS, sender)

    assert ok("spf=pass smtp.mailfrom=bounce@mail.acme.example")
    assert ok("dmarc=pass (p=reject) header.from=acme.example")
    assert ok("dkim=pass header.i=@eu.acme.example")
    assert ok('dkim=pass header.d="acme.example" header.s=sel')
    assert ok("dkim=fail header.d=acme.example; dkim=pass header.d=acme.example")
    assert not ok("dmarc=pass header.from=evil.example")
    assert not ok("dmarc=pass header.from=mail.acme.example")  # DMARC names the exact domain
    assert not ok("dmarc=pass")
    assert not ok("dkim=pass header.d=other.example; spf=softfail smtp.mailfrom=acme.example")
    assert not ok("dkim=fail header.d=acme.example")
    assert not ok("dkim=pass header.d=example")
    assert not ok("dkim=pass header.d=acme.example", sender="")
    assert not ok("none")
    assert not authenticated([], OURS, agent)


def test_only_the_topmost_result_of_ours_before_a_foreign_received_counts() -> None:
    good = ar(f"{OURS}; dkim=pass header.d=acme.example")
    bad = ar(f"{OURS}; dkim=fail header.d=acme.example")
    assert our_results([good, BORDER], OURS) == [" dkim=pass header.d=acme.example"]
    assert our_results([bad, BORDER, good], OURS) == [" dkim=fail header.d=acme.example"]
    # Postfix milters (OpenDKIM, OpenDMARC) insert their results below Postfix's Received.
    assert our_results([BORDER, bad, good], OURS) == [" dkim=fail header.d=acme.example"]
    assert our_results([BORDER, good, bad], OURS) == [" dkim=pass header.d=acme.example"]
    assert our_results([SENDER, good], OURS) == []
    assert our_results([ar("MX.Relay.Test 1; spf=pass smtp.mailfrom=acme.example")], OURS)
    assert our_results([ar("evil.example; dkim=pass header.d=acme.example")], OURS) == []
    assert our_results([ar("(mx.relay.test) evil.example; dkim=pass")], OURS) == []
    assert our_results([ar("mx.relay.test.evil.example; dkim=pass")], OURS) == []
    assert our_results([good], "") == []


@pytest.mark.parametrize(
    "received",
    [
        "from mx.relay.test by mx.relay.test with LMTP id q1; Mon, 23 Nov 2026 10:00:01 +0000",
        "by mx.relay.test (Postfix, from userid 0) id 4Xa1; Mon, 23 Nov 2026 10:00:01 +0000",
        "from localhost (localhost [127.0.0.1]) by mx.relay.test (Postfix) with ESMTP id 9",
        "from mx.relay.test ([IPv6:::1]) by mx.relay.test (amavis) with ESMTP id 7",
    ],
    ids=["lmtp", "no-from", "loopback", "loopback-v6"],
)
def test_hops_inside_our_boundary_do_not_end_the_search(received: str) -> None:
    fields = [("received", received), ar(f"{OURS}; dkim=pass header.d=acme.example"), BORDER]
    assert authenticated(fields, OURS, "support@acme.example")


@pytest.mark.parametrize(
    "received",
    [
        "from mx.relay.test (unknown [203.0.113.9]) by smtp.evil.example with ESMTP id 1",
        "from [127.0.0.1] (unknown [203.0.113.9]) by smtp.evil.example with ESMTP id 2",
        "from evil.example ([203.0.113.9] helo=[127.0.0.1]) by smtp.evil.example with esmtp",
        "from evil.example by smtp.evil.example with ESMTP id 4 for <\"x with LMTP\"@relay.test>",
        "from evil.example ([203.0.113.9]) by mx.relay.test.evil.example with ESMTP id 5",
        "from evil.example ([203.0.113.9]) by smtp.evil.example (by mx.relay.test) id 6",
    ],
    ids=["helo-claims-us", "helo-is-loopback", "exim-helo-loopback", "lmtp-in-recipient",
         "look-alike-by", "by-in-a-comment"],
)
def test_a_hop_before_ours_ends_the_search_whatever_the_client_claims(received: str) -> None:
    fields = [("received", received), ar(f"{OURS}; dkim=pass header.d=acme.example")]
    assert not authenticated(fields, OURS, "support@acme.example")


def test_the_trace_keeps_the_order_the_fields_arrived_in() -> None:
    raw = (
        "Return-Path: <support@acme.example>\r\n"
        "Received: from mx.relay.test by mx.relay.test with LMTP id q1;\r\n"
        "\tMon, 23 Nov 2026 10:00:01 +0000\r\n"
        "Authentication-Results: mx.relay.test;\r\n dkim=pass header.d=acme.example\r\n"
        f"Received: {BORDER[1]}\r\n"
        "Authentication-Results: mx.relay.test; dkim=pass header.d=evil.example\r\n"
        "From: Support <support@acme.example>\r\nTo: reply+x@relay.test\r\n"
        "Subject: Re: review\r\n\r\nThanks.\r\n"
    ).encode()
    trace = parse_reply(raw).trace
    assert [name for name, _ in trace] == ["received", "authentication-results", "received",
                                           "authentication-results"]
    assert trace[1][1] == "mx.relay.test; dkim=pass header.d=acme.example"
    assert authenticated(trace, OURS, "support@acme.example")


def _sender(from_field: str, extra: str = "") -> tuple[str | None, str | None]:
    raw = (f"{extra}From: {from_field}\r\nTo: reply+x@relay.test\r\nSubject: Re: review\r\n"
           "Message-ID: <r1@acme.example>\r\n\r\nThanks.\r\n").encode()
    reply = parse_reply(raw)
    return reply.from_address, reply.from_name


@pytest.mark.parametrize(
    ("field", "address"),
    [
        ("support@acme.example (Support) <attacker@evil.example>", "attacker@evil.example"),
        ("support@acme.example <attacker@evil.example>", "attacker@evil.example"),
        ('"support@acme.example" <attacker@evil.example>', "attacker@evil.example"),
        ('"Kim <support@acme.example>" <attacker@evil.example>', "attacker@evil.example"),
        ("Support <support@acme.example>, Eve <attacker@evil.example>", None),
        ("attacker@evil.example, support@acme.example", None),
        ("Support <support@acme.example", None),
        ('"Support <support@acme.example>', None),
        ("=?utf-8?q?support=40acme=2Eexample?= <attacker@evil.example>",
         "attacker@evil.example"),
        ("undisclosed-recipients:;", None),
        ("support@acme.example (Kim Berg)", "support@acme.example"),
        ("=?utf-8?q?J=C3=B8rgen_Lund?= <Support@ACME.example>", "support@acme.example"),
        ('"Lund, Jørgen" <support@acme.example>', "support@acme.example"),
    ],
)
def test_the_from_address_is_the_mailbox_a_mail_client_shows_never_the_display_name(
    field: str, address: str | None
) -> None:
    assert _sender(field)[0] == address


def test_two_from_fields_name_nobody() -> None:
    assert _sender("Support <support@acme.example>",
                   extra="From: Eve <attacker@evil.example>\r\n") == (None, None)


def test_an_encoded_display_name_is_still_read_for_greetings() -> None:
    assert _sender("=?utf-8?q?J=C3=B8rgen_Lund?= <support@acme.example>") == (
        "support@acme.example", "Jørgen Lund")


@pytest.mark.parametrize(
    ("return_path", "automatic"),
    [("<>", True), ("< >", True), ("<support@acme.example>", False)],
)
def test_an_empty_return_path_is_automatic_mail(return_path: str, automatic: bool) -> None:
    raw = (f"Return-Path: {return_path}\r\nFrom: support@acme.example\r\n"
           "To: reply+x@relay.test\r\nSubject: Re: review\r\n\r\nThanks.\r\n").encode()
    assert (parse_reply(raw).automatic == "null Return-Path") is automatic


def _gmail_layout(arc_results: str, below: str) -> bytes:
    """Header fields in the order a Gmail mailbox shows them: its own hop, its ARC set, the
    border Received, then its Authentication-Results and what the sender wrote."""
    return (
        "Delivered-To: replies@acme.example\r\n"
        "Received: by 2002:a05:7300:5c1e:b0:1a2:3b4c with SMTP id ab12;\r\n"
        "        Mon, 23 Nov 2026 02:00:01 -0800 (PST)\r\n"
        "ARC-Seal: i=1; a=rsa-sha256; t=1795000000; cv=none; d=google.com; s=arc; b=AbC\r\n"
        f"ARC-Authentication-Results: i=1; mx.google.com;\r\n       {arc_results}\r\n"
        "Return-Path: <support@acme.example>\r\n"
        "Received: from mail.acme.example (mail.acme.example. [203.0.113.5])\r\n"
        "        by mx.google.com with ESMTPS id cd34 for <replies@acme.example>;\r\n"
        "        Mon, 23 Nov 2026 02:00:00 -0800 (PST)\r\n"
        "Received-SPF: pass (google.com: domain of support@acme.example designates "
        "203.0.113.5 as permitted sender) client-ip=203.0.113.5;\r\n"
        f"Authentication-Results: mx.google.com;\r\n       {arc_results}\r\n"
        f"{below}"
        "From: Support <support@acme.example>\r\nTo: reply+x@relay.test\r\n"
        "Subject: Re: review\r\nMessage-ID: <g1@acme.example>\r\n\r\nThanks.\r\n"
    ).encode()


def test_a_gmail_mailbox_is_vouched_for_by_gmail_and_never_by_the_sender() -> None:
    good = "dkim=pass header.i=@acme.example header.s=s1; dmarc=pass header.from=acme.example"
    reply = parse_reply(_gmail_layout(good, ""))
    assert authenticated(reply.trace, "mx.google.com", "support@acme.example")
    # An attacker mailing Gmail directly: Gmail's own verdict fails; what they wrote does not
    # count, nor does an ARC set an earlier hop added.
    forged = ("Authentication-Results: mx.google.com; dkim=pass header.d=acme.example\r\n"
              "ARC-Authentication-Results: i=1; mx.google.com; dmarc=pass "
              "header.from=acme.example\r\n")
    failed = "dkim=none; spf=fail smtp.mailfrom=acme.example; dmarc=fail header.from=acme.example"
    attack = parse_reply(_gmail_layout(failed, forged))
    assert not authenticated(attack.trace, "mx.google.com", "support@acme.example")
