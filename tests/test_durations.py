"""Absurd durations and dates (issue 10 §6): a clear error from `check`, config loading and every
CLI option that reads one, never an OverflowError on the first shipment or purge."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from mailrelay.app import Daemon
from mailrelay.config import load, parse_duration
from mailrelay.core.clock import FrozenClock
from mailrelay.core.errors import ConfigError

from .cli_runner import run
from .conftest import BASE_CONFIG
from .mailtools import send, settle, trigger

BOLT = """
[[shop]]
id = "bolt"
name = "Bolt Bikes"
bcc_address = "reviews+bolt@relay.test"
from = "Bolt Bikes <hello@bolt.example>"
reply_address = "reply@relay.test"
send_hours = ""
timezone = "Pacific/Kiritimati"
{bolt_extra}
"""


def write_config(tmp_path: Path, smtp_extra: str = "", shop_extra: str = "",
                 bolt_extra: str = "") -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(BASE_CONFIG.format(smtp_extra=smtp_extra, shop_extra=shop_extra)
                    + BOLT.format(bolt_extra=bolt_extra))
    return path


def line_of(path: Path, start: str, occurrence: int = 1) -> int:
    numbers = [n for n, line in enumerate(path.read_text().splitlines(), 1)
               if line.startswith(start)]
    return numbers[occurrence - 1]


ABSURD_SHOP = 'retention = "99999999999999999999d"\ndedupe_window = "4000d"\n'
ABSURD_BOLT = 'invite_delay = "99999999d"\nreminder_after = "400d"\n'


def test_check_refuses_absurd_durations_naming_each_key_and_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, smtp_extra='timeout = "2d"', shop_extra=ABSURD_SHOP,
                        bolt_extra=ABSURD_BOLT)
    result = run("check", "--config", str(path))
    assert result.exit_code == 1
    expected = {
        ("smtp.timeout", "timeout ="): 'must be at most "1h", not \'2d\'',
        ("shop.acme.retention", "retention ="): 'must be at most "3650d", not \'9999999999',
        ("shop.acme.dedupe_window", "dedupe_window ="): 'must be at most "3650d", not \'4000d\'',
        ("shop.bolt.invite_delay", "invite_delay ="): 'must be at most "365d", not \'99999999d\'',
        ("shop.bolt.reminder_after", "reminder_after ="): 'must be at most "365d"',
    }
    for (key, start), message in expected.items():
        occurrence = 2 if key == "shop.bolt.invite_delay" else 1  # acme has one first
        number = line_of(path, start, occurrence)
        [line] = [out for out in result.output.splitlines()
                  if f"{path}:{number}: {key}: " in out]
        assert message in line, line
    assert "Traceback" not in result.output


def test_loading_such_a_config_raises_config_error_with_every_problem(tmp_path: Path) -> None:
    path = write_config(tmp_path, shop_extra=f'retention = "{"9" * 5000}d"\n',
                        bolt_extra=ABSURD_BOLT)
    with pytest.raises(ConfigError) as caught:
        load(path)
    found = {(p.key, p.line) for p in caught.value.problems}
    assert found == {("shop.acme.retention", line_of(path, "retention =")),
                     ("shop.bolt.invite_delay", line_of(path, "invite_delay =", 2)),
                     ("shop.bolt.reminder_after", line_of(path, "reminder_after ="))}
    retention = next(p for p in caught.value.problems if p.key == "shop.acme.retention")
    assert retention.message.startswith('must be at most "3650d", not \'99999999')
    assert retention.message.endswith("…'")


def test_durations_up_to_each_keys_maximum_load(tmp_path: Path) -> None:
    path = write_config(tmp_path, smtp_extra='timeout = "1h"',
                        shop_extra='retention = "520w"\ndedupe_window = "3650d"\n',
                        bolt_extra='invite_delay = "365d"\nreminder_after = "52w"\n')
    config = load(path)
    acme, bolt = config.shops
    assert (acme.retention, acme.dedupe_window) == (timedelta(weeks=520), timedelta(days=3650))
    assert (bolt.invite_delay, bolt.reminder_after) == (timedelta(days=365), timedelta(weeks=52))
    assert config.smtp.timeout == timedelta(hours=1)


@pytest.mark.parametrize("text", ["99999999d", "36501d", "5215w", "876601h", "9" * 5000 + "s",
                                  "1000000000000000000000000w"])
def test_durations_beyond_100_years_are_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="too long: at most"):
        parse_duration(text)
    assert parse_duration("36500d") == timedelta(days=36500)
    assert parse_duration("0000000000000000001d") == timedelta(days=1)


async def test_a_shipment_with_the_longest_invite_delay_is_scheduled(tmp_path: Path) -> None:
    path = write_config(tmp_path, bolt_extra='invite_delay = "365d"\n')
    async with Daemon(load(path), FrozenClock()) as daemon:
        for shop in ("acme", "bolt"):
            await send(daemon, trigger(subject=f"Order #{len(shop)}77 shipped"),
                       f"reviews+{shop}@relay.test")
        await settle(daemon)
        rows = daemon.store.read(lambda q: q.list_shipments())
        assert sorted((r.shop, r.status) for r in rows) == [
            ("acme", "scheduled"), ("bolt", "scheduled")]


# --- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("purge", "--older-than", "99999999d"),
    ("reviews", "--since", "99999999d"),
    ("reviews", "--until", "9" * 5000 + "d"),
    ("stats", "--since", "99999999d"),
    ("export", "--since", "99999999d", "--until", "1d", "--output", "-"),
    ("invite", "--shop", "bolt", "--email", "kim@example.org", "--delay", "99999999d"),
], ids=["purge", "reviews-since", "reviews-until", "stats", "export", "invite"])
def test_cli_options_with_absurd_durations_are_usage_errors(tmp_path: Path,
                                                            args: tuple[str, ...]) -> None:
    path = write_config(tmp_path)
    result = run(*args, "--config", str(path))
    assert result.exit_code == 2, result.output
    assert "too long: at most \"36500d\" (100 years)" in result.output
    assert "Traceback" not in result.output


def test_invite_refuses_a_delay_longer_than_invite_delay_may_be(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    result = run("invite", "--config", str(path), "--shop", "bolt", "--email", "kim@example.org",
                 "--delay", "400d")
    assert result.exit_code == 2
    assert "--delay" in result.output and 'at most "365d", not \'400d\'' in result.output
    ok = run("invite", "--config", str(path), "--shop", "bolt", "--email", "kim@example.org",
             "--delay", "365d")
    assert ok.exit_code == 0, ok.output


def test_dates_at_the_calendars_edges_mean_everything_in_every_shops_time_zone(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path)
    for shop, email in (("acme", "ann@example.com"), ("bolt", "kim@example.org")):
        invited = run("invite", "--config", str(path), "--shop", shop, "--email", email)
        assert invited.exit_code == 0, invited.output
    # Kiritimati is UTC+14: its 0001-01-01 starts before UTC's calendar does.
    for shop in ("acme", "bolt"):
        listed = run("reviews", "--config", str(path), "--shop", shop, "--since", "0001-01-01",
                     "--until", "9999-12-31", "--format", "json")
        assert listed.exit_code == 0, listed.output
        assert json.loads(listed.output) == []
        counted = run("stats", "--config", str(path), "--shop", shop, "--since", "0001-01-01",
                      "--until", "9999-12-31")
        assert counted.exit_code == 0, counted.output
    purged = run("purge", "--config", str(path), "--older-than", "36500d")
    assert purged.exit_code == 0, purged.output
    assert "erased personal data of 0 record(s)" in purged.output
