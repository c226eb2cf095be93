"""The deployment files in contrib/: the systemd unit, sysusers/tmpfiles, the Postfix example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mailrelay.app import EXIT_STARTUP
from mailrelay.config import defaults

from .conftest import require_program

CONTRIB = Path(__file__).resolve().parents[1] / "contrib"
UNIT = CONTRIB / "mailrelay.service"
POSTFIX = CONTRIB / "postfix"
EXAMPLE = Path(__file__).resolve().parents[1] / "relay.toml.example"
INSTALLED_EXEC = "/opt/mailrelay/.venv/bin/mailrelay"
PORT_25_LINES = (
    "#CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
    "#AmbientCapabilities=CAP_NET_BIND_SERVICE",
)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's INI dialect: sections of keys, each key possibly repeated (comments dropped)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def verify(unit_text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on a copy of the unit whose ExecStart is this environment's
    mailrelay (verify insists that the binary exists); every other line is the shipped one."""
    analyze = require_program("systemd-analyze", "systemd")
    executable = Path(sys.executable).absolute().with_name("mailrelay")
    if not executable.is_file():
        pytest.fail(f"{executable} is missing: install the project (pip install -e .)")
    assert f"ExecStart={INSTALLED_EXEC} " in unit_text
    copy = folder / "mailrelay.service"
    copy.write_text(unit_text.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={executable} "))
    return subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def assert_verified(result: subprocess.CompletedProcess[str]) -> None:
    # verify only warns (exit status 0) about unknown keys and unparsable values: those
    # warnings name the unit, so any line about it is a failure.
    about_unit = [line for line in result.stderr.splitlines() if "mailrelay" in line]
    assert result.returncode == 0, result.stderr
    assert about_unit == [], "\n".join(about_unit)


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert_verified(verify(UNIT.read_text(), tmp_path))


def test_systemd_unit_with_the_port_25_capability_passes_verify(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for line in PORT_25_LINES:
        assert line in text
        text = text.replace(line, line.lstrip("#"))
    assert_verified(verify(text, tmp_path))


def test_unit_hardening_directives_are_present() -> None:
    unit = parse_unit(UNIT.read_text())
    service = {key: values[-1] for key, values in unit["Service"].items()}
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "60",
        "ExecStart": f"{INSTALLED_EXEC} serve --config /etc/mailrelay/relay.toml",
        "User": "mailrelay",
        "Group": "mailrelay",
        "StateDirectory": "mailrelay",
        "ConfigurationDirectory": "mailrelay",
        "WorkingDirectory": "/var/lib/mailrelay",
        "UMask": "0077",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "3",
        "TimeoutStopSec": "30",
        "CapabilityBoundingSet": "",
        "NoNewPrivileges": "true",
        "ProtectSystem": "strict",
        "ProtectHome": "true",
        "PrivateTmp": "true",
        "PrivateDevices": "true",
        "ProtectKernelTunables": "true",
        "ProtectKernelModules": "true",
        "ProtectControlGroups": "true",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces": "true",
        "RestrictRealtime": "true",
        "RestrictSUIDSGID": "true",
        "LockPersonality": "true",
        "MemoryDenyWriteExecute": "true",
        "SystemCallArchitectures": "native",
        "SystemCallFilter": "@system-service",
    }
    assert {key: service.get(key) for key in expected} == expected
    # Port 25 is opt-in: no capability unless the commented lines are enabled.
    assert "AmbientCapabilities" not in service
    assert unit["Service"]["CapabilityBoundingSet"] == [""]
    # StateDirectory= keeps /var/lib/mailrelay writable under ProtectSystem=strict.
    assert "ReadWritePaths" not in service
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_exit_status_3_is_the_daemons_startup_failure() -> None:
    service = parse_unit(UNIT.read_text())["Service"]
    assert service["RestartPreventExitStatus"] == [str(EXIT_STARTUP)]


def test_sysusers_and_tmpfiles_create_the_user_and_its_state_directory(tmp_path: Path) -> None:
    sysusers = require_program("systemd-sysusers", "systemd")
    tmpfiles = require_program("systemd-tmpfiles", "systemd")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles needs root to chown into an alternative root")
    (tmp_path / "etc").mkdir()
    subprocess.run([sysusers, f"--root={tmp_path}", str(CONTRIB / "mailrelay.sysusers.conf")],
                   check=True, capture_output=True, timeout=60)
    passwd = (tmp_path / "etc" / "passwd").read_text().splitlines()
    user = next(line.split(":") for line in passwd if line.startswith("mailrelay:"))
    assert user[5:] == ["/var/lib/mailrelay", "/usr/sbin/nologin"]
    subprocess.run([tmpfiles, f"--root={tmp_path}", "--create",
                    str(CONTRIB / "mailrelay.tmpfiles.conf")],
                   check=True, capture_output=True, timeout=60)
    state = (tmp_path / "var" / "lib" / "mailrelay").stat()
    assert (state.st_uid, state.st_gid) == (int(user[2]), int(user[3]))
    assert state.st_mode & 0o777 == 0o750


def map_entries(path: Path) -> list[list[str]]:
    """Postfix table lines without comments, split on whitespace."""
    return [line.split() for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_postfix_transport_points_at_the_default_listener() -> None:
    listener = defaults().smtp
    example = tomllib.loads(EXAMPLE.read_text())
    assert example["smtp"]["listen"] == f"{listener.host}:{listener.port}"
    domains = {example["shop"][0][key].rpartition("@")[2]
               for key in ("bcc_address", "cancel_address", "reply_address")}
    assert map_entries(POSTFIX / "transport") == [
        [domain, f"smtp:[{listener.host}]:{listener.port}"] for domain in sorted(domains)
    ]
    snippet = dict(line.split(" = ", 1) for line in
                   (entry for entry in POSTFIX.joinpath("main.cf.snippet").read_text().splitlines()
                    if " = " in entry and not entry.startswith("#")))
    assert snippet["relay_domains"] == " ".join(sorted(domains))
    assert snippet["transport_maps"] == "hash:/etc/postfix/transport"


def test_postfix_recipient_table_lists_what_mailrelay_accepts_and_nothing_else() -> None:
    # Postfix regexp: tables match case-insensitively; these patterns are also Python regexes.
    patterns = [re.compile(entry[0].strip("/"), re.IGNORECASE)
                for entry in map_entries(POSTFIX / "relay_recipients")]
    shop = tomllib.loads(EXAMPLE.read_text())["shop"][0]
    domain = shop["reply_address"].rpartition("@")[2]
    accepted = [shop["bcc_address"], shop["cancel_address"].upper(),
                f"reply+{'a2' * 21}@{domain}", f"bounce+42.{'ab2' * 5}z@{domain}"]
    refused = [f"nobody@{domain}", f"reviews+other@{domain}", f"{shop['bcc_address']}.evil",
               f"reply+@{domain}", f"reply+abc@{domain}@evil.example",
               f"bounce+42@{domain}"]  # unsigned (issue 10)
    for address in accepted:
        assert any(p.search(address) for p in patterns), address
    for address in refused:
        assert not any(p.search(address) for p in patterns), address


def test_readme_deployment_matches_the_unit() -> None:
    readme = (CONTRIB.parent / "README.md").read_text()
    deployment = readme.split("## Deployment", 1)[1].split("\n## Development", 1)[0]
    service = parse_unit(UNIT.read_text())["Service"]
    assert "/etc/mailrelay/relay.toml" in service["ExecStart"][0]
    assert "/etc/mailrelay/relay.toml" in deployment
    assert service["WorkingDirectory"] == ["/var/lib/mailrelay"]
    assert 'path = "/var/lib/mailrelay/mailrelay.db"' in deployment
    # The drop-in the README shows for port 25 is the unit's commented pair, uncommented.
    for line in PORT_25_LINES:
        assert f"\n{line.lstrip('#')}\n" in deployment
    # The environment file the README describes is the one the unit reads.
    assert service["EnvironmentFile"] == ["-/etc/mailrelay/environment"]
    assert "/etc/mailrelay/environment" in deployment
