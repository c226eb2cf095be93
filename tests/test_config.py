"""relay.toml → Config: defaults, parsing, secrets, and problems that name key and line."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from datetime import time, timedelta
from ipaddress import ip_network
from pathlib import Path

import pytest

from mailrelay import config
from mailrelay.config import (
    NOT_READ,
    Config,
    DraftsConfig,
    HttpConfig,
    ImapConfig,
    OutboundConfig,
    SecurityConfig,
    ShopConfig,
    SmtpConfig,
    StoreConfig,
    WebhookConfig,
    parse_duration,
    parse_size,
)
from mailrelay.core.errors import ConfigError, ConfigProblem

from .conftest import ConfigFactory

EXAMPLE = Path(__file__).resolve().parents[1] / "relay.toml.example"

SHOP = """\
[[shop]]
id = "acme"
bcc_address = "reviews+acme@relay.example.com"
from = "ACME Shoes <reviews@acme.example>"
"""


def write(tmp_path: Path, text: str, name: str = "relay.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Config:
    return config.load(write(tmp_path, text))


def problems_of(tmp_path: Path, text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    return caught.value.problems


def keys_and_lines(problems: list[ConfigProblem]) -> set[tuple[str, int | None]]:
    return {(p.key, p.line) for p in problems}


# --------------------------------------------------------------------------- the example file


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILRELAY_SMTP_PASSWORD", "smtp-secret")
    monkeypatch.setenv("MAILRELAY_IMAP_PASSWORD", "imap-secret")
    monkeypatch.setenv("MAILRELAY_ACME_WEBHOOK_SECRET", "acme-webhook-secret-0123456789")


@pytest.mark.usefixtures("example_env")
def test_the_example_file_loads_without_problems() -> None:
    loaded = config.load(EXAMPLE)

    assert loaded.source == EXAMPLE
    assert loaded.outbound.password == "smtp-secret"
    assert loaded.imap is not None and loaded.imap.password == "imap-secret"
    acme = loaded.shop("acme")
    assert acme is not None
    assert acme.reply_domain == "relay.example.com"
    assert acme.send_hours == (time(8), time(20))
    assert loaded.store.path == EXAMPLE.parent / "var" / "mailrelay.db"


# TOML keys for dataclass fields whose name differs from the key.
FIELD_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    ("smtp", "host"): ("listen",),
    ("smtp", "port"): ("listen",),
    ("http", "host"): ("listen",),
    ("http", "port"): ("listen",),
    ("outbound", "password"): ("password", "password_file", "password_env"),
    ("imap", "password"): ("password", "password_file", "password_env"),
    ("store", "password"): ("password_file", "password_env"),  # never inline
    ("shop", "from_address"): ("from",),
    ("shop", "webhooks"): (),  # its own table, [[shop.webhook]]
    ("shop.webhook", "secret"): ("secret_env", "secret_file"),
}
SECTIONS: dict[str, type] = {
    "store": StoreConfig,
    "smtp": SmtpConfig,
    "http": HttpConfig,
    "outbound": OutboundConfig,
    "imap": ImapConfig,
    "security": SecurityConfig,
    "shop": ShopConfig,
    "shop.webhook": WebhookConfig,
    "drafts": DraftsConfig,
}


def documented_keys(text: str) -> dict[str, set[str]]:
    """Keys per table in the example, counting commented-out ones (`# key = ...`)."""
    found: dict[str, set[str]] = {}
    table = ""
    for line in text.splitlines():
        if header := re.match(r"\s*\[\[?([a-z_.]+)\]\]?", line):
            table = header[1]
        elif key := re.match(r"\s*(?:#\s*)?([a-z_0-9]+)\s*=", line):
            found.setdefault(table, set()).add(key[1])
    return found


def test_the_example_documents_every_config_field() -> None:
    documented = documented_keys(EXAMPLE.read_text(encoding="utf-8"))

    missing = [
        f"{section}.{key}"
        for section, cls in SECTIONS.items()
        for field in dataclasses.fields(cls)
        for key in FIELD_KEYS.get((section, field.name), (field.name,))
        if key not in documented.get(section, set())
    ]
    assert missing == []


def test_the_example_has_a_comment_for_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(text, 1):
        if re.match(r"\s*[a-z_]+\s*=", line):
            commented = "#" in line or (number > 1 and text[number - 2].lstrip().startswith("#"))
            assert commented, f"line {number} has no comment: {line}"


# --------------------------------------------------------------------------- defaults


def test_the_embedded_defaults_need_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    loaded = config.defaults()

    assert loaded == config.load(None)
    assert loaded.source is None
    assert [shop.id for shop in loaded.shops] == ["demo"]
    demo = loaded.shop("demo")
    assert demo is not None
    assert demo.invite_delay == timedelta(minutes=2)
    assert demo.send_hours is None
    assert demo.from_address == "Demo Shop <reviews@demo.localhost>"
    assert demo.agent_senders == ("*@demo.localhost",)
    assert (loaded.smtp.host, loaded.smtp.port) == ("127.0.0.1", 2525)
    assert loaded.http.base_url == "http://127.0.0.1:8025"
    assert loaded.outbound.transport == "maildir"
    assert loaded.outbound.maildir == tmp_path / "var" / "outbox"
    assert loaded.store.path == tmp_path / "var" / "mailrelay.db"
    assert loaded.security.secret_file == tmp_path / "var" / "secret.key"
    assert loaded.imap is None


def test_a_minimal_file_gets_the_documented_defaults(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "[smtp]\nhostname = 'relay.example.com'\n" + SHOP)

    shop = loaded.shops[0]
    assert shop.name == "acme"
    assert shop.reply_address == "reply@relay.example.com"
    assert shop.cancel_address is None
    assert shop.agents == () and shop.agent_senders == () and shop.trigger_senders == ()
    assert shop.invite_delay == timedelta(days=7)
    assert shop.reminder_after is None
    assert shop.dedupe_window == timedelta(days=90)
    assert shop.send_hours == (time(8), time(20))
    assert str(shop.timezone) == "UTC"
    assert shop.locale == "en"
    assert shop.templates_dir is None
    assert shop.auto_reply_min_stars == 0
    assert shop.order_reference_pattern is None
    assert shop.retention == timedelta(days=180)
    assert loaded.smtp.max_message_size == 25 * 1024 * 1024
    assert loaded.smtp.max_sessions == 100
    assert loaded.smtp.timeout == timedelta(minutes=5)
    assert loaded.smtp.max_sessions_per_client == 50
    assert loaded.smtp.session_timeout == timedelta(minutes=10)
    assert loaded.smtp.junk_command_limit == 20
    assert loaded.outbound.transport == "maildir"
    assert loaded.outbound.rate_per_minute == 600
    assert loaded.store.path == tmp_path / "var" / "mailrelay.db"
    assert loaded.shop("nope") is None


def test_agent_senders_default_to_the_agents(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, SHOP + 'agents = ["a@acme.example", "b@acme.example"]\n')

    assert loaded.shops[0].agent_senders == ("a@acme.example", "b@acme.example")


def test_an_outbound_table_with_a_host_means_smtp_on_587_with_starttls(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, '[outbound]\nhost = "smtp.example.com"\n' + SHOP)

    out = loaded.outbound
    assert (out.transport, out.host, out.port, out.starttls, out.tls) == (
        "smtp",
        "smtp.example.com",
        587,
        True,
        False,
    )
    assert out.timeout == timedelta(seconds=60)


def test_implicit_tls_changes_the_outbound_defaults(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, '[outbound]\nhost = "smtp.example.com"\ntls = true\n' + SHOP)

    assert (loaded.outbound.port, loaded.outbound.starttls) == (465, False)


def test_outbound_connections_default_to_four_and_are_bounded(tmp_path: Path) -> None:
    outbound = '[outbound]\nhost = "smtp.example.com"\n'
    assert load_text(tmp_path, outbound + SHOP).outbound.connections == 4
    assert load_text(tmp_path, outbound + "connections = 1\n" + SHOP).outbound.connections == 1
    for wrong in ("0", "33"):
        problems = problems_of(tmp_path, outbound + f"connections = {wrong}\n" + SHOP)
        assert [(p.key, p.message) for p in problems] == [
            ("outbound.connections", f"must be between 1 and 32, not {wrong}")]


def test_listen_addresses_take_ipv6_and_base_url_follows_them(tmp_path: Path) -> None:
    loaded = load_text(
        tmp_path, '[smtp]\nlisten = "[::1]:25"\n[http]\nlisten = "[::1]:8080"\n' + SHOP
    )

    assert (loaded.smtp.host, loaded.smtp.port) == ("::1", 25)
    assert loaded.http.base_url == "http://[::1]:8080"


def test_base_url_loses_its_trailing_slash(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, '[http]\nbase_url = "https://reviews.example.com/"\n' + SHOP)

    assert loaded.http.base_url == "https://reviews.example.com"


def test_allowed_clients_are_networks(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, '[smtp]\nallowed_clients = ["10.1.2.3/8", "::1"]\n' + SHOP)

    assert loaded.smtp.allowed_clients == (ip_network("10.0.0.0/8"), ip_network("::1/128"))


def test_trusted_proxies_are_networks_and_default_to_none(tmp_path: Path) -> None:
    assert load_text(tmp_path, SHOP).http.trusted_proxies == ()
    loaded = load_text(tmp_path, '[http]\ntrusted_proxies = ["127.0.0.1", "10.9.0.0/16", "::1"]\n'
                       + SHOP)
    assert loaded.http.trusted_proxies == (
        ip_network("127.0.0.1/32"), ip_network("10.9.0.0/16"), ip_network("::1/128"))
    problems = problems_of(tmp_path, '[http]\ntrusted_proxies = ["10.0.0.0/8", "proxy.lan"]\n'
                           + SHOP)
    assert keys_and_lines(problems) == {("http.trusted_proxies", 2)}
    assert "'proxy.lan' is not an IP address or CIDR network" in problems[0].message
    problems = problems_of(tmp_path, '[http]\ntrusted_proxies = "127.0.0.1"\n' + SHOP)
    assert keys_and_lines(problems) == {("http.trusted_proxies", 2)}


def test_relative_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "templates").mkdir()
    monkeypatch.chdir(tmp_path)
    text = '[store]\npath = "db/relay.db"\n[security]\nsecret_file = "/srv/key"\n' + SHOP
    text += 'templates_dir = "templates"\n'

    loaded = config.load(write(etc, text))

    assert loaded.store.path == etc / "db" / "relay.db"
    assert loaded.security.secret_file == Path("/srv/key")
    assert loaded.shops[0].templates_dir == etc / "templates"
    assert loaded.outbound.maildir == etc / "var" / "outbox"


def test_send_hours_may_be_empty_or_end_at_midnight(tmp_path: Path) -> None:
    anytime = load_text(tmp_path, SHOP + 'send_hours = ""\n')
    late = load_text(tmp_path, SHOP + 'send_hours = "9:30-24:00"\n')

    assert anytime.shops[0].send_hours is None
    assert late.shops[0].send_hours == (time(9, 30), time.max)


def test_an_order_reference_pattern_is_compiled(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, SHOP + r'order_reference_pattern = "Order (\\d+)"' + "\n")

    pattern = loaded.shops[0].order_reference_pattern
    assert pattern is not None
    match = pattern.search("Your Order 1234 has shipped")
    assert match is not None and match[1] == "1234"


# --------------------------------------------------------------------------- durations and sizes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("36h", timedelta(hours=36)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("0s", timedelta(0)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "7x", "d", "-1d", "12h1d", "1.5h", "7 days", "1d1d"])
def test_bad_durations_raise_a_clear_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25MB", 25 * 1024 * 1024),
        ("512KB", 512 * 1024),
        ("1GB", 1024**3),
        ("100B", 100),
        ("100", 100),
        ("10 mb", 10 * 1024 * 1024),
        (4096, 4096),
    ],
)
def test_sizes_parse(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "25TB", "1.5MB", "-1", -1, "twenty"])
def test_bad_sizes_raise_a_clear_value_error(text: str | int) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_a_duration_given_as_a_number_is_a_problem_with_a_hint(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, SHOP + "invite_delay = 7\n")

    assert keys_and_lines(problems) == {("shop.acme.invite_delay", 5)}
    assert "bare number" in problems[0].message


# --------------------------------------------------------------------------- secrets


def test_an_inline_password_is_used(tmp_path: Path) -> None:
    text = '[outbound]\nhost = "mx.example"\nusername = "u"\npassword = "pw"\n' + SHOP

    assert load_text(tmp_path, text).outbound.password == "pw"


def test_a_password_file_is_read_relative_to_the_config_without_its_newline(
    tmp_path: Path,
) -> None:
    (tmp_path / "smtp.pw").write_text("s3cret\n", encoding="utf-8")
    text = '[outbound]\nhost = "mx.example"\nusername = "u"\npassword_file = "smtp.pw"\n' + SHOP

    assert load_text(tmp_path, text).outbound.password == "s3cret"


def test_a_password_env_reads_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_RELAY_PW", "from-env")
    text = '[outbound]\nhost = "mx.example"\nusername = "u"\npassword_env = "TEST_RELAY_PW"\n'

    assert load_text(tmp_path, text + SHOP).outbound.password == "from-env"


def test_an_imap_oauth2_command_replaces_the_password(tmp_path: Path) -> None:
    text = '[imap]\nhost = "imap.example"\nusername = "u"\noauth2_token_command = "token"\n'

    imap = load_text(tmp_path, text + SHOP).imap
    assert imap is not None
    assert (imap.password, imap.oauth2_token_command, imap.port, imap.tls) == (
        None,
        "token",
        993,
        True,
    )
    assert (imap.idle_timeout, imap.poll_interval) == (timedelta(minutes=5), timedelta(seconds=60))


def test_secret_problems_name_the_key_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_RELAY_UNSET", raising=False)
    text = """\
        [outbound]
        host = "mx.example"
        username = "u"
        password_file = "missing.pw"

        [imap]
        host = "imap.example"
        username = "u"
        password_env = "TEST_RELAY_UNSET"
        """
    problems = problems_of(tmp_path, text + SHOP)

    assert keys_and_lines(problems) == {("outbound.password_file", 4), ("imap.password_env", 9)}
    assert "missing.pw" in str(problems[0])
    assert "TEST_RELAY_UNSET" in str(problems[1])


def test_two_forms_of_one_secret_are_a_problem(tmp_path: Path) -> None:
    text = '[outbound]\nhost = "mx.example"\nusername = "u"\npassword = "a"\npassword_env = "B"\n'

    problems = problems_of(tmp_path, text + SHOP)

    assert keys_and_lines(problems) == {("outbound.password_env", 5)}
    assert "only one" in problems[0].message


def test_imap_needs_host_username_and_one_credential(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "[imap]\nfolder = 'INBOX'\n" + SHOP)

    assert {p.key for p in problems} == {"imap.host", "imap.username", "imap.password"}
    assert {p.line for p in problems} == {1}  # no key line: the table header


def test_imap_refuses_a_password_and_an_oauth2_command_together(tmp_path: Path) -> None:
    text = (
        '[imap]\nhost = "i.example"\nusername = "u"\npassword = "p"\noauth2_token_command = "t"\n'
    )

    problems = problems_of(tmp_path, text + SHOP)

    assert keys_and_lines(problems) == {("imap.oauth2_token_command", 5)}


# --------------------------------------------------------------------------- problems


BROKEN = """\
[smtp]
listen = "127.0.0.1"
max_message_size = "huge"
allowed_clients = ["10.0.0.0/8", "not-a-net"]
tls_cert = "cert.pem"

[http]
base_url = "reviews.example.com"

[outbound]
transport = "pigeon"
rate_per_minute = 0

[[shop]]
id = "acme"
bcc_address = "reviews+acme@relay.example.com"
from = "ACME <reviews@acme.example>"
invite_delay = "7 days"
timezone = "Mars/Olympus"
agents = [
    "support@acme.example",
    "not an address",
]
auto_reply_min_stars = 6
order_reference_pattern = "(unclosed"
send_hours = "20:00-08:00"

[[shop]]
id = "Bad Id"
from = "x@y.example"
"""


def test_a_broken_file_reports_every_problem_with_key_and_line(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, BROKEN)

    assert keys_and_lines(problems) == {
        ("smtp.listen", 2),
        ("smtp.max_message_size", 3),
        ("smtp.allowed_clients", 4),
        ("smtp.tls_cert", 5),  # does not exist
        ("smtp.tls_key", 1),  # missing: points at the [smtp] header
        ("http.base_url", 8),
        ("outbound.transport", 11),
        ("outbound.rate_per_minute", 12),
        ("shop.acme.invite_delay", 18),
        ("shop.acme.timezone", 19),
        ("shop.acme.agents", 20),
        ("shop.acme.auto_reply_min_stars", 24),
        ("shop.acme.order_reference_pattern", 25),
        ("shop.acme.send_hours", 26),
        ("shop[2].id", 29),
        ("shop[2].bcc_address", 28),
    }
    assert all(p.path == str(tmp_path / "relay.toml") for p in problems)
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)


def test_the_error_message_lists_each_problem_with_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, BROKEN)

    message = str(caught.value)
    assert f"{tmp_path / 'relay.toml'}:18: shop.acme.invite_delay: " in message
    assert len(message.splitlines()) == len(caught.value.problems)


def test_unknown_keys_and_tables_are_problems_at_every_level(tmp_path: Path) -> None:
    text = """\
        colour = "blue"
        [smtp]
        lisen = "127.0.0.1:2525"
        [webhooks]
        url = "x"
        [[shop]]
        id = "acme"
        bcc_address = "reviews+acme@relay.example.com"
        from = "reviews@acme.example"
        invite_dealy = "7d"
        [shop.extra]
        x = 1
        """
    problems = problems_of(tmp_path, text)

    assert keys_and_lines(problems) == {
        ("colour", 1),
        ("smtp.lisen", 3),
        ("webhooks", 4),
        ("shop.acme.invite_dealy", 10),
        ("shop.acme.extra", 11),
    }
    assert all("unknown" in p.message for p in problems)


def test_an_unknown_key_gets_the_closest_known_key_of_its_table_as_a_suggestion(
    tmp_path: Path,
) -> None:
    text = """\
        colour = "blue"
        [smpt]
        [smtp]
        lisen = "127.0.0.1:2525"
        [outbound]
        transport = "maildir"
        maildri = "var/outbox"
        [[shop]]
        id = "acme"
        bcc_address = "reviews+acme@relay.example.com"
        from = "reviews@acme.example"
        invite_dealy = "7d"
        """
    messages = {p.key: p.message for p in problems_of(tmp_path, text)}
    assert messages == {
        "colour": "unknown key",
        "smpt": "unknown table; did you mean [smtp]?",
        "smtp.lisen": "unknown key; did you mean listen?",
        "outbound.maildri": "unknown key; did you mean maildir?",
        "shop.acme.invite_dealy": "unknown key; did you mean invite_delay?",
    }


def test_a_toml_syntax_error_reports_its_line(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, '[smtp]\nhostname = "relay.example.com"\nlisten = \n')

    assert len(problems) == 1
    assert (problems[0].key, problems[0].line) == ("smtp.listen", 3)
    assert "syntax" in problems[0].message


def test_a_wrong_type_names_what_was_expected(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "[smtp]\nmax_sessions = '100'\nrequire_auth = 1\n" + SHOP)

    assert keys_and_lines(problems) == {("smtp.max_sessions", 2), ("smtp.require_auth", 3)}
    assert "integer" in problems[0].message and "true or false" in problems[1].message


def test_smtp_session_limits_are_read_and_checked(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "[smtp]\nmax_sessions_per_client = 3\nsession_timeout = '90s'\n"
                                 "junk_command_limit = 5\n" + SHOP)
    assert loaded.smtp.max_sessions_per_client == 3
    assert loaded.smtp.session_timeout == timedelta(seconds=90)
    assert loaded.smtp.junk_command_limit == 5

    problems = problems_of(tmp_path, "[smtp]\nmax_sessions_per_client = 0\n"
                                     "session_timeout = '0s'\njunk_command_limit = 'many'\n" + SHOP)
    assert keys_and_lines(problems) == {("smtp.max_sessions_per_client", 2),
                                        ("smtp.session_timeout", 3),
                                        ("smtp.junk_command_limit", 4)}


def test_a_file_without_shops_is_a_problem(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, '[store]\npath = "x.db"\n')

    assert [p.key for p in problems] == ["shop"]


def test_a_single_bracket_shop_table_is_a_problem(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, SHOP.replace("[[shop]]", "[shop]"))

    assert keys_and_lines(problems) == {("shop", 1)}


def test_addresses_used_twice_are_problems(tmp_path: Path) -> None:
    text = """\
        [[shop]]
        id = "acme"
        bcc_address = "reviews@relay.example.com"
        cancel_address = "cancel@relay.example.com"
        from = "reviews@acme.example"
        agents = ["support@acme.example", "Support@acme.example"]

        [[shop]]
        id = "acme"
        bcc_address = "Reviews@relay.example.com"
        from = "reviews@beta.example"
        agents = ["cancel@relay.example.com"]
        """
    problems = problems_of(tmp_path, text)

    assert keys_and_lines(problems) == {
        ("shop.acme.agents", 6),  # listed twice
        ("shop.acme.id", 9),  # id used twice
        ("shop.acme.bcc_address", 10),  # already the first shop's bcc
        ("shop.acme.agents", 12),  # an agent on a routing address would loop
    }


def test_shared_reply_addresses_and_agents_are_allowed(tmp_path: Path) -> None:
    text = SHOP + 'agents = ["team@example.com"]\n' + SHOP.replace("acme", "beta")
    text += 'agents = ["team@example.com"]\n'

    loaded = load_text(tmp_path, text)

    assert {shop.reply_address for shop in loaded.shops} == {"reply@relay.localhost"}


def test_lines_are_found_past_multiline_strings_and_arrays(tmp_path: Path) -> None:
    text = (
        SHOP
        + 'name = """ACME\nretention = "x"\n"""\n'
        + 'trigger_senders = [\n  "a@b.example", # retention = "y"\n]\n'
        + 'retention = "forever"\n'
    )

    problems = problems_of(tmp_path, text)

    assert {(p.key, p.line) for p in problems} >= {("shop.acme.retention", 11)}


def test_inline_and_dotted_tables_still_get_line_numbers(tmp_path: Path) -> None:
    text = 'store = 5\nhttp = { listen = "nope" }\noutbound.rate_per_minute = -1\n' + SHOP

    problems = problems_of(tmp_path, text)

    assert keys_and_lines(problems) == {
        ("store", 1),
        ("http.listen", 2),
        ("outbound.rate_per_minute", 3),
    }


# --------------------------------------------------------------------------- locate


def test_locate_prefers_the_explicit_path_then_the_variable_then_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = write(tmp_path, SHOP, "explicit.toml")
    from_env = write(tmp_path, SHOP, "env.toml")
    local = write(tmp_path, SHOP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAILRELAY_CONFIG", str(from_env))

    assert config.locate(explicit) == explicit
    assert config.locate(str(explicit)) == explicit
    assert config.locate(None) == from_env
    monkeypatch.delenv("MAILRELAY_CONFIG")
    assert config.locate(None) == local
    local.unlink()
    assert config.locate(None) is None


def test_locate_refuses_a_named_file_that_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILRELAY_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="nope.toml") as caught:
        config.locate(tmp_path / "nope.toml")
    assert caught.value.problems[0].key == "--config"

    monkeypatch.setenv("MAILRELAY_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match="gone.toml") as caught:
        config.locate(None)
    assert caught.value.problems[0].key == "MAILRELAY_CONFIG"


def test_a_config_read_without_secrets_still_checks_their_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_RELAY_UNSET", raising=False)
    path = tmp_path / "relay.toml"
    path.write_text(
        '[outbound]\nhost = "mx.example"\nusername = "u"\npassword_env = "TEST_RELAY_UNSET"\n'
        + SHOP)
    loaded = config.load(path, read_secrets=False)
    assert loaded.outbound.password == NOT_READ
    path.write_text('[outbound]\nhost = "mx.example"\nusername = "u"\npassword_env = ""\n' + SHOP)
    with pytest.raises(ConfigError) as error:
        config.load(path, read_secrets=False)
    assert keys_and_lines(error.value.problems) == {("outbound.password_env", 4)}


# --------------------------------------------------------------------------- reply trust


def test_trusted_clients_are_networks_and_match_stored_peers(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, '[smtp]\ntrusted_clients = ["10.0.0.25", "fd00::/8"]\n' + SHOP)
    smtp = loaded.smtp
    assert smtp.trusted_clients == (ip_network("10.0.0.25/32"), ip_network("fd00::/8"))
    assert smtp.trusts("10.0.0.25:40122") and smtp.trusts("fd00::1:40122")
    assert not smtp.trusts("10.0.0.26:40122") and not smtp.trusts("") and not smtp.trusts("x")
    problems = problems_of(tmp_path, '[smtp]\ntrusted_clients = ["postfix"]\n' + SHOP)
    assert keys_and_lines(problems) == {("smtp.trusted_clients", 2)}


def test_authserv_id_lives_under_security_and_applies_to_every_reply(tmp_path: Path) -> None:
    text = ('[smtp]\ntrusted_clients = ["127.0.0.1"]\n[security]\n'
            'authserv_id = "mx.example.com"\n' + SHOP)
    loaded = load_text(tmp_path, text)
    assert loaded.security.authserv_id == "mx.example.com"
    assert loaded.warnings == ()
    problems = problems_of(tmp_path, '[security]\nauthserv_id = "mx example"\n' + SHOP)
    assert keys_and_lines(problems) == {("security.authserv_id", 2)}


def test_the_imap_authserv_id_is_a_deprecated_alias_with_a_warning(tmp_path: Path) -> None:
    imap = '[imap]\nhost = "imap.example"\nusername = "u"\npassword = "p"\n'
    loaded = load_text(tmp_path, imap + 'authserv_id = "mx.example.com"\n' + SHOP)
    assert loaded.security.authserv_id == "mx.example.com"
    assert any(w.startswith("imap.authserv_id (line 5) is deprecated") for w in loaded.warnings)
    # Without trusted_clients no SMTP reply could pass: said at load, not found out later.
    assert any("trusted_clients is empty" in w for w in loaded.warnings)
    clash = imap + 'authserv_id = "a.example"\n[security]\nauthserv_id = "b.example"\n' + SHOP
    assert keys_and_lines(problems_of(tmp_path, clash)) == {("imap.authserv_id", 5)}


def test_one_smtp_client_gets_half_the_sessions_by_default_and_a_larger_share_is_warned_of(
    tmp_path: Path,
) -> None:
    """101 slow connections from one address held all of max_sessions = 5 while the per-client
    cap stayed at its fixed default of 50 (issue 10 §6, found from outside)."""
    assert load_text(tmp_path, SHOP).smtp.max_sessions_per_client == 50
    small = load_text(tmp_path, "[smtp]\nmax_sessions = 5\n" + SHOP)
    assert small.smtp.max_sessions_per_client == 2
    assert small.warnings == ()
    single = load_text(tmp_path, "[smtp]\nmax_sessions = 1\n" + SHOP)
    assert single.smtp.max_sessions_per_client == 1
    chosen = load_text(tmp_path, "[smtp]\nmax_sessions = 5\nmax_sessions_per_client = 5\n" + SHOP)
    assert chosen.smtp.max_sessions_per_client == 5  # an explicit value is respected...
    assert any(w.startswith("smtp.max_sessions_per_client = 5 is not below max_sessions = 5")
               for w in chosen.warnings)  # ...and `check` says what it allows


def test_shop_look_and_embed_keys_are_checked_and_read(make_config: ConfigFactory) -> None:
    config = make_config(shop_extra="""
        site_url = "https://acme.example/shop"
        logo_url = "https://cdn.acme.example/logo.png"
        accent_color = "#FF8800"
        embed_origins = ["https://acme.example", "http://localhost:3000/"]
    """)
    shop = config.shops[0]
    assert (shop.site_url, shop.logo_url, shop.accent_color) == (
        "https://acme.example/shop", "https://cdn.acme.example/logo.png", "#ff8800")
    assert shop.embed_origins == ("https://acme.example", "http://localhost:3000")
    with pytest.raises(ConfigError) as caught:
        make_config(shop_extra="""
            site_url = "javascript:alert(1)"
            accent_color = "orange"
            embed_origins = ["https://acme.example/widgets"]
        """)
    text = str(caught.value)
    assert "shop.acme.site_url: 'javascript:alert(1)' is not an http:// or https:// URL" in text
    assert "shop.acme.accent_color: 'orange' is not a colour" in text
    assert "shop.acme.embed_origins: 'https://acme.example/widgets' is not an origin" in text
