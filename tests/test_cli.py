"""The `mailrelay` command line: listings, manual invitations, links, cancel, check, parse."""

from __future__ import annotations

import csv
import io
import json
import re
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mailrelay.app import Daemon
from mailrelay.cli import main
from mailrelay.config import Config
from mailrelay.core.clock import FrozenClock

from .cli_runner import run
from .conftest import BASE_CONFIG, require_corpus, second_shop
from .mailtools import send, settle, trigger


@pytest.fixture
def cfg_path(config: Config) -> str:
    assert config.source is not None
    return str(config.source)


def test_every_command_has_help() -> None:
    def walk(group: click.Group, prefix: list[str]) -> None:
        for name, cmd in group.commands.items():
            result = run(*prefix, name, "--help")
            assert result.exit_code == 0, (name, result.output)
            assert cmd.help, f"{' '.join(prefix + [name])} has no help text"
            if isinstance(cmd, click.Group):
                walk(cmd, prefix + [name])

    walk(main, [])


def test_the_command_list_describes_each_command_in_a_full_sentence_not_cut_at_45_characters(
) -> None:
    output = run("--help").output
    listed = output[output.index("Commands:"):]
    assert "..." not in listed
    for name, cmd in main.commands.items():
        summary = cmd.get_short_help_str(limit=10_000)
        assert not summary.endswith(":"), (name, summary)
        assert " ".join(summary.split()) in " ".join(listed.split()), name


def test_invite_schedules_one_invitation_and_refuses_the_same_reference_again(
    cfg_path: str,
) -> None:
    first = run("invite", "--config", cfg_path, "--shop", "acme", "--email", "Ann@Example.com",
                "--name", "Ann", "--ref", "A-100-X")
    assert first.exit_code == 0, first.output
    assert re.fullmatch(r"invitation 1 scheduled for \d{4}-\d\d-\d\d \d\d:\d\d UTC\n",
                        first.output), first.output
    again = run("invite", "--config", cfg_path, "--shop", "acme", "--email", "bob@example.com",
                "--ref", "A-100-X")
    assert again.exit_code == 1
    assert "duplicate" in again.output
    listed = run("invitations", "--config", cfg_path, "--format", "json")
    [row] = json.loads(listed.output)
    assert row["customer_email"] == "ann@example.com"
    assert row["method"] == "manual"
    assert row["status"] == "scheduled"


def test_invite_with_delay_sets_the_due_time(cfg_path: str) -> None:
    result = run("invite", "--config", cfg_path, "--shop", "acme", "--email", "c@example.com",
                 "--delay", "2h")
    assert result.exit_code == 0, result.output
    [row] = json.loads(run("invitations", "--config", cfg_path, "--format", "json").output)
    assert row["due_at"] is not None


def test_invite_with_a_bad_delay_is_a_usage_error(cfg_path: str) -> None:
    result = CliRunner().invoke(main, ["invite", "--config", cfg_path, "--shop", "acme",
                                       "--email", "c@example.com", "--delay", "soon"])
    assert result.exit_code == 2


def test_invite_for_unknown_shop_exits_1_with_a_one_line_reason(cfg_path: str) -> None:
    result = CliRunner().invoke(main, ["invite", "--config", cfg_path, "--shop", "nope",
                                       "--email", "c@example.com"])
    assert result.exit_code == 1
    assert "unknown shop 'nope'" in result.output


def test_csv_invite_reports_each_skipped_row_and_why(cfg_path: str, tmp_path: Path) -> None:
    run("invite", "--config", cfg_path, "--shop", "acme", "--email", "capped@example.com")
    sheet = tmp_path / "customers.csv"
    sheet.write_text(
        "Email,Name,Ref\n"
        "ann@example.com,Ann,R-1001\n"
        "not-an-address,Bad,R-1002\n"
        "bob@example.com,Bob,R-1001\n"
        "capped@example.com,Cap,R-1003\n"
        "\n"
        "dan@example.com,,\n"
    )
    result = CliRunner().invoke(main, ["invite", "--config", cfg_path, "--shop", "acme", "--csv",
                                       str(sheet), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "2 invited, 3 skipped" in result.output
    report = list(csv.DictReader(io.StringIO(result.output.split("\n", 1)[1])))
    assert [(r["line"], r["status"]) for r in report] == [
        ("3", "rejected"), ("4", "duplicate"), ("5", "capped")
    ]


def test_link_prints_a_review_url_and_the_same_reference_gives_the_same_link(
    cfg_path: str,
) -> None:
    first = run("link", "--config", cfg_path, "--shop", "acme", "--email", "e@example.com",
                "--ref", "L-2000")
    second = run("link", "--config", cfg_path, "--shop", "acme", "--email", "e@example.com",
                 "--ref", "L-2000")
    assert first.exit_code == 0, first.output
    assert first.output.startswith("http://reviews.test/r/")
    assert first.output == second.output
    [row] = json.loads(run("invitations", "--config", cfg_path, "--format", "json").output)
    assert row["method"] == "link"


def test_invitations_cancel_by_reference_and_by_id(cfg_path: str) -> None:
    run("invite", "--config", cfg_path, "--shop", "acme", "--email", "a@example.com",
        "--ref", "C-1")
    run("invite", "--config", cfg_path, "--shop", "acme", "--email", "b@example.com")
    by_ref = run("invitations", "cancel", "C-1", "--config", cfg_path)
    assert by_ref.exit_code == 0 and "cancelled 1" in by_ref.output
    rows = json.loads(run("invitations", "--config", cfg_path, "--format", "json").output)
    by_id = run("invitations", "cancel", str(rows[1]["id"]), "--config", cfg_path)
    assert by_id.exit_code == 0, by_id.output
    statuses = json.loads(run("invitations", "--config", cfg_path, "--status", "cancelled",
                              "--format", "json").output)
    assert len(statuses) == 2
    nothing = CliRunner().invoke(main, ["invitations", "cancel", "C-1", "--config", cfg_path])
    assert nothing.exit_code == 1


def invitation_ids(cfg_path: str, status: str) -> list[int]:
    listed = run("invitations", "--config", cfg_path, "--status", status, "--format", "json")
    return sorted(row["id"] for row in json.loads(listed.output))


def test_a_bare_number_that_is_an_id_and_another_invitations_reference_is_refused(
    cfg_path: str,
) -> None:
    """Issue 12: `invitations cancel 2` tried 2 as an id first and silently cancelled the
    wrong customer's invitation when another order has the reference 2."""
    for email, ref in (("a@example.com", "X-1"), ("b@example.com", "1"), ("c@example.com", "7")):
        run("invite", "--config", cfg_path, "--shop", "acme", "--email", email, "--ref", ref)
    refused = CliRunner().invoke(main, ["invitations", "cancel", "1", "--config", cfg_path])
    assert refused.exit_code == 1, refused.output
    assert "invitation 1 (order X-1, a@example.com" in refused.output, refused.output
    assert "order reference 1 (invitation 2, b@example.com" in refused.output, refused.output
    assert "--id 1" in refused.output and "--ref 1" in refused.output
    assert invitation_ids(cfg_path, "cancelled") == []
    by_ref = run("invitations", "cancel", "--ref", "1", "--config", cfg_path)
    assert by_ref.exit_code == 0 and "cancelled 1 invitation(s): 2" in by_ref.output
    by_id = run("invitations", "cancel", "--id", "1", "--config", cfg_path)
    assert by_id.exit_code == 0 and "cancelled 1 invitation(s): 1" in by_id.output
    bare = run("invitations", "cancel", "7", "--config", cfg_path)  # no invitation 7: unambiguous
    assert bare.exit_code == 0 and "cancelled 1 invitation(s): 3" in bare.output
    assert invitation_ids(cfg_path, "cancelled") == [1, 2, 3]


def test_invitations_cancel_by_email_cancels_that_customers_scheduled_invitations(
    cfg_path: str,
) -> None:
    run("invite", "--config", cfg_path, "--shop", "acme", "--email", "ann@example.com",
        "--ref", "E-1")
    run("invite", "--config", cfg_path, "--shop", "acme", "--email", "bob@example.com")
    done = run("invitations", "cancel", "--email", "Ann@Example.com", "--shop", "acme",
               "--config", cfg_path)
    assert done.exit_code == 0, done.output
    assert "cancelled 1 invitation(s): 1" in done.output
    assert invitation_ids(cfg_path, "scheduled") == [2]
    again = CliRunner().invoke(main, ["invitations", "cancel", "--email", "ann@example.com",
                                      "--config", cfg_path])
    assert again.exit_code == 1
    assert "nothing to cancel for customer ann@example.com" in again.output, again.output


def test_invitations_cancel_takes_exactly_one_way_of_naming_them(cfg_path: str) -> None:
    for args in ([], ["1", "--ref", "1"], ["--id", "1", "--email", "a@example.com"]):
        result = CliRunner().invoke(main, ["invitations", "cancel", *args, "--config", cfg_path])
        assert result.exit_code == 2, (args, result.output)
        assert "--ref" in result.output, result.output


def test_a_reference_in_two_shops_needs_shop(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(BASE_CONFIG.format(smtp_extra="", shop_extra="") + second_shop())
    for shop in ("acme", "bolt"):
        run("invite", "--config", str(path), "--shop", shop, "--email", "a@example.com",
            "--ref", "R-9")
    refused = CliRunner().invoke(main, ["invitations", "cancel", "--ref", "R-9",
                                        "--config", str(path)])
    assert refused.exit_code == 1
    assert "acme" in refused.output and "bolt" in refused.output
    assert "--shop" in refused.output
    done = run("invitations", "cancel", "--ref", "R-9", "--shop", "bolt", "--config", str(path))
    assert "cancelled 1 invitation(s): 2" in done.output


def test_listing_tables_show_due_at_and_reason_in_full_in_the_shops_time_at_any_width(
    tmp_path: Path,
) -> None:
    """Issue 12: the table cut `due_at` and `reason` with "…", printed microseconds and UTC."""
    path = tmp_path / "relay.toml"
    path.write_text(BASE_CONFIG.format(smtp_extra="", shop_extra="").replace(
        'timezone = "UTC"', 'timezone = "Europe/Copenhagen"'))
    cfg = str(path)
    run("invite", "--config", cfg, "--shop", "acme", "--email", "ann.long-name@example.com",
        "--ref", "ORDER-2026-000123", "--delay", "2h")
    run("invitations", "cancel", "--ref", "ORDER-2026-000123", "--config", cfg)
    for columns in ("60", "100", "200"):
        table = CliRunner().invoke(main, ["invitations", "--config", cfg, "--format", "table"],
                                   env={"COLUMNS": columns}).output
        assert "…" not in table, table
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d CES?T", table), table
        assert "+01:00" not in table and "+02:00" not in table, table
        words = table.split()
        for word in ("cancelled", "by", "operator", "ORDER-2026-000123",
                     "ann.long-name@example.com"):
            assert word in words, (columns, table)
        if columns != "60":  # narrower than the times alone: complete beats narrow
            assert max(len(line) for line in table.splitlines()) <= int(columns), table
    [row] = json.loads(run("invitations", "--config", cfg, "--format", "json").output)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00", row["due_at"]), row


async def test_shipments_lists_contract_fields_in_json_and_csv(
    config: Config, clock: FrozenClock, cfg_path: str
) -> None:
    async with Daemon(config, clock) as daemon:
        await send(daemon, trigger())
        await settle(daemon)
    data = json.loads(run("shipments", "--config", cfg_path, "--format", "json").output)
    assert list(data[0]) == [
        "id", "shop", "received_at", "message_id", "sender", "customer_email", "customer_name",
        "reference", "locale", "status", "reason",
    ]
    assert data[0]["status"] == "scheduled"
    assert data[0]["received_at"].endswith("+00:00")
    table = run("shipments", "--config", cfg_path, "--format", "csv").output.splitlines()
    assert table[0].startswith("id,shop,received_at")
    empty = json.loads(run("shipments", "--config", cfg_path, "--status", "rejected",
                           "--format", "json").output)
    assert empty == []


def test_parse_shows_what_a_trigger_yields_without_storing(cfg_path: str, config: Config) -> None:
    eml = require_corpus("triggers", "trustpilot_snippet.eml")
    result = run("parse", str(eml), "--shop", "acme", "--config", cfg_path, "--format", "json")
    data = json.loads(result.output)
    assert data["customer_email"] == "klaus.mueller@example.de"
    assert data["reference"] == "A-2291-XK"
    assert data["locale"] == "de-DE"
    assert data["products"][0]["sku"] == "TR-42"
    assert data["reference_rule"]
    assert not config.store.path.exists() or json.loads(
        run("shipments", "--config", cfg_path, "--format", "json").output) == []


def test_the_readme_example_trigger_parses_as_the_walk_through_says() -> None:
    """README step 8 parses examples/shipped-order.eml on the demo shop (no ../shared needed)."""
    eml = Path(__file__).resolve().parents[1] / "examples" / "shipped-order.eml"
    result = run("parse", str(eml), "--shop", "demo", "--format", "json")
    data = json.loads(result.output)
    assert (data["customer_email"], data["customer_name"], data["reference"], data["locale"]) == (
        "juergen.kraemer@example.de", "Jürgen Krämer", "2044", "de")


TEXTS_BY_LOCALE = {
    "de": "Vielen Dank für Ihre Bestellung. Ihr Paket wurde heute versandt und kommt bald an.",
    "da": "Tak for din ordre. Din pakke er afsendt i dag og bliver leveret inden for få dage.",
    # Portuguese has no mail templates: the shop's locale (en) it is.
    "en": "Obrigado pela sua encomenda. O seu pacote foi enviado hoje e chegará em breve.",
}


async def test_parse_and_shipments_show_the_same_trigger_locale(
    config: Config, clock: FrozenClock, cfg_path: str, tmp_path: Path
) -> None:
    """Issue 12: German and Danish shipping emails produced English invitations."""
    raws = {locale: trigger(to=f"{locale}@example.com", subject=f"Order #{n}", body=text)
            for n, (locale, text) in enumerate(TEXTS_BY_LOCALE.items(), start=1001)}
    parsed = {}
    for locale, raw in raws.items():
        eml = tmp_path / f"{locale}.eml"
        eml.write_bytes(raw)
        parsed[locale] = json.loads(run("parse", str(eml), "--shop", "acme", "--config",
                                        cfg_path, "--format", "json").output)["locale"]
    assert parsed == {"de": "de", "da": "da", "en": "en"}
    async with Daemon(config, clock) as daemon:
        for raw in raws.values():
            await send(daemon, raw)
        await settle(daemon)
        invited = {row.customer_email: row.locale for row in daemon.store.read(
            lambda q: [q.get_invitation(n) for n in (1, 2, 3)]) if row is not None}
    shipments = json.loads(run("shipments", "--config", cfg_path, "--format", "json").output)
    expected = {f"{locale}@example.com": locale for locale in parsed}
    assert {row["customer_email"]: row["locale"] for row in shipments} == expected
    assert invited == expected


def test_check_reports_every_config_problem_with_line_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "relay.toml"
    bad.write_text(
        '[smtp]\nlisten = "nowhere"\ncolour = "blue"\n\n'
        '[[shop]]\nid = "acme"\nbcc_address = "reviews@relay.test"\nfrom = "a@b.example"\n'
        'invite_delay = 7\n'
    )
    result = CliRunner().invoke(main, ["check", "--config", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2: smtp.listen" in result.output
    assert f"{bad}:3: smtp.colour" in result.output
    assert f"{bad}:9: shop.acme.invite_delay" in result.output


def test_check_passes_on_a_good_config(cfg_path: str) -> None:
    result = CliRunner().invoke(main, ["check", "--config", cfg_path])
    assert result.exit_code == 0, result.output
    assert "failed" not in result.output


def test_listings_run_without_the_daemons_mail_passwords_but_check_and_send_now_need_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILRELAY_TEST_UNSET", raising=False)
    path = tmp_path / "relay.toml"
    path.write_text(BASE_CONFIG.format(smtp_extra="", shop_extra="") + textwrap.dedent("""
        [imap]
        host = "imap.example"
        username = "agent"
        password_env = "MAILRELAY_TEST_UNSET"
        """))
    listed = run("shipments", "--config", str(path), "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == []
    checked = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert checked.exit_code == 1
    assert "imap.password_env" in checked.output and "MAILRELAY_TEST_UNSET" in checked.output
    sent = CliRunner().invoke(main, ["invitations", "send-now", "1", "--config", str(path)])
    assert sent.exit_code == 1
    assert "MAILRELAY_TEST_UNSET" in sent.output
