"""[store]: SQLite at `path` or PostgreSQL at `url` (issue 15), the database password kept out of
relay.toml and out of the URL, and the relay's id; each problem named with its key and line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from mailrelay import app, config
from mailrelay.config import Config
from mailrelay.core.errors import ConfigError, ConfigProblem

from .cli_runner import cli

SHOP = """
[[shop]]
id = "acme"
bcc_address = "reviews+acme@relay.example.com"
from = "ACME Shoes <reviews@acme.example>"
"""
URL = "postgresql://mailrelay@db.example.com/mailrelay"


def load_store(tmp_path: Path, store: str) -> Config:
    path = tmp_path / "relay.toml"
    path.write_text("[store]\n" + textwrap.dedent(store) + SHOP, encoding="utf-8")
    return config.load(path)


def problems_of(tmp_path: Path, store: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_store(tmp_path, store)
    return caught.value.problems


def only_problem(tmp_path: Path, store: str) -> ConfigProblem:
    problems = problems_of(tmp_path, store)
    assert len(problems) == 1, problems
    return problems[0]


def test_a_postgresql_url_selects_the_shared_store(tmp_path: Path) -> None:
    store = load_store(tmp_path, f'url = "{URL}"\n').store

    assert (store.backend, store.url, store.password) == ("postgresql", URL, None)
    assert store.relay_id == socket.gethostname()


def test_without_url_the_store_is_sqlite_at_the_default_path(tmp_path: Path) -> None:
    store = load_store(tmp_path, "").store

    assert (store.backend, store.url) == ("sqlite", None)
    assert store.path == tmp_path / "var" / "mailrelay.db"


@pytest.mark.parametrize("url", [
    "postgres://relay@db.example.com:5433/reviews?sslmode=verify-full",
    "postgresql://relay@db1.example.com:5432,db2.example.com:5432/reviews"
    "?target_session_attrs=read-write",
    "postgresql://relay@[2001:db8::7]:5432/reviews",
    "postgresql:///reviews?host=/run/postgresql",
])
def test_libpq_uris_with_options_several_hosts_or_a_socket_are_accepted(
        tmp_path: Path, url: str) -> None:
    assert load_store(tmp_path, f'url = "{url}"\n').store.url == url


def test_path_and_url_together_are_one_problem_naming_both(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, f'path = "var/relay.db"\nurl = "{URL}"\n')

    assert (problem.key, problem.line) == ("store.url", 3)
    assert "path" in problem.message and "url" in problem.message


@pytest.mark.parametrize("url", ["mysql://relay@db.example.com/reviews",
                                 "db.example.com/reviews", "postgresql:/db.example.com"])
def test_a_url_of_another_scheme_is_refused(tmp_path: Path, url: str) -> None:
    problem = only_problem(tmp_path, f'url = "{url}"\n')

    assert problem.key == "store.url"
    assert "must start with postgresql:// or postgres://" in problem.message


def test_an_empty_url_is_refused(tmp_path: Path) -> None:
    assert "must not be empty" in only_problem(tmp_path, 'url = ""\n').message


@pytest.mark.parametrize("url", [
    "postgresql://relay:hunter2-horse@db.example.com/reviews",
    "postgresql://:hunter2-horse@db.example.com/reviews",
    "postgresql://relay@db.example.com/reviews?sslmode=require&password=hunter2-horse",
])
def test_a_password_in_the_url_is_refused_without_repeating_it(
        tmp_path: Path, url: str) -> None:
    problem = only_problem(tmp_path, f'url = "{url}"\n')

    assert (problem.key, problem.line) == ("store.url", 2)
    for way in ("password_file", "password_env", "~/.pgpass", "PGPASSWORD"):
        assert way in problem.message
    assert "hunter2" not in str(problem)


def test_an_inline_password_is_refused_in_favour_of_a_file_or_the_environment(
        tmp_path: Path) -> None:
    problem = only_problem(tmp_path, f'url = "{URL}"\npassword = "hunter2-horse"\n')

    assert (problem.key, problem.line) == ("store.password", 3)
    assert "password_file" in problem.message and "password_env" in problem.message


def test_the_password_comes_from_a_file_or_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "db-password").write_text("from-the-file\n")
    monkeypatch.setenv("RELAY_DB_PASSWORD", "from-the-environment")

    from_file = load_store(tmp_path, f'url = "{URL}"\npassword_file = "db-password"\n').store
    from_env = load_store(tmp_path, f'url = "{URL}"\npassword_env = "RELAY_DB_PASSWORD"\n').store

    assert (from_file.password, from_env.password) == ("from-the-file", "from-the-environment")
    assert "from-the-file" not in repr(from_file)


def test_password_file_and_password_env_together_are_a_problem(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "db-password").write_text("from-the-file\n")
    monkeypatch.setenv("RELAY_DB_PASSWORD", "from-the-environment")
    problem = only_problem(tmp_path, f'url = "{URL}"\npassword_file = "db-password"\n'
                           'password_env = "RELAY_DB_PASSWORD"\n')

    assert (problem.key, problem.line) == ("store.password_env", 4)
    assert "give only one" in problem.message


def test_a_missing_password_file_or_variable_is_a_problem(tmp_path: Path) -> None:
    missing_file = only_problem(tmp_path, f'url = "{URL}"\npassword_file = "nowhere"\n')
    missing_env = only_problem(tmp_path, f'url = "{URL}"\npassword_env = "NO_SUCH_DB_VAR"\n')

    assert missing_file.key == "store.password_file" and "cannot read" in missing_file.message
    assert missing_env.key == "store.password_env" and "is not set" in missing_env.message


def test_a_password_without_url_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "db-password").write_text("from-the-file\n")
    problem = only_problem(tmp_path, 'password_file = "db-password"\n')

    assert problem.key == "store.password_file" and "only used with url" in problem.message


def test_a_bad_port_in_the_url_is_named(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, 'url = "postgresql://relay@db.example.com:54x2/reviews"\n')

    assert "invalid port '54x2'" in problem.message


def test_the_relay_id_is_set_or_checked(tmp_path: Path) -> None:
    store = load_store(tmp_path, f'url = "{URL}"\nrelay_id = "relay-2.eu"\n').store
    problem = only_problem(tmp_path, f'url = "{URL}"\nrelay_id = "relay two"\n')

    assert store.relay_id == "relay-2.eu"
    assert (problem.key, problem.line) == ("store.relay_id", 3)
    assert "'relay two' must be 1-64 letters" in problem.message


def test_the_lease_is_five_minutes_unless_set_and_at_least_ten_seconds(tmp_path: Path) -> None:
    assert load_store(tmp_path, f'url = "{URL}"\n').store.lease == timedelta(minutes=5)
    assert load_store(tmp_path, f'url = "{URL}"\nlease = "90s"\n').store.lease == timedelta(
        seconds=90)
    assert load_store(tmp_path, 'lease = "10s"\n').store.lease == timedelta(seconds=10)
    short = only_problem(tmp_path, f'url = "{URL}"\nlease = "9s"\n')
    bare = only_problem(tmp_path, f'url = "{URL}"\nlease = 30\n')

    assert (short.key, short.line) == ("store.lease", 3)
    assert short.message == 'must be at least "10s", not "9s"'
    assert bare.key == "store.lease" and '"30s"' in bare.message


@pytest.mark.parametrize(("typo", "meant"), [("urll", "url"), ("relay_idd", "relay_id"),
                                             ("password_fiel", "password_file")])
def test_a_misspelt_store_key_gets_a_suggestion(tmp_path: Path, typo: str, meant: str) -> None:
    problem = only_problem(tmp_path, f'url = "{URL}"\n{typo} = "x"\n')

    assert problem.message == f"unknown key; did you mean {meant}?"


@contextlib.contextmanager
def password_role(tmp_path: Path, pg_database: str) -> Iterator[str]:
    """A role that logs in with the password "correct horse battery" (in db-password beside
    the config) and owns `pg_database`'s public schema: its URL; dropped afterwards."""
    role = f"relay_{tmp_path.name[-8:].replace('-', '_')}".lower()
    with psycopg.connect(pg_database, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal("correct horse battery")))
        admin.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
    (tmp_path / "db-password").write_text("correct horse battery\n")
    try:
        yield pg_database.replace("mailrelay@", f"{role}@", 1)
    finally:
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER SCHEMA public OWNER TO pg_database_owner"))
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_password_from_the_file_logs_in_to_a_real_server(
        tmp_path: Path, pg_database: str) -> None:
    (tmp_path / "wrong-password").write_text("incorrect horse\n")
    with password_role(tmp_path, pg_database) as url:
        role = url.split("//", 1)[1].split("@", 1)[0]
        store = load_store(tmp_path, f'url = "{url}"\npassword_file = "db-password"\n').store
        wrong = load_store(tmp_path, f'url = "{url}"\npassword_file = "wrong-password"\n').store
        assert store.url is not None and wrong.url is not None
        with psycopg.connect(store.url, password=store.password) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (role,)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(wrong.url, password=wrong.password).close()


def test_every_command_reads_the_database_password_not_only_those_that_send_mail(
        tmp_path: Path, pg_database: str) -> None:
    """`mailrelay shipments`, `outbox`, `invite`, … read no mail server password, but each opens
    the store: the database password from password_file is read for them too."""
    with password_role(tmp_path, pg_database) as url:
        relay = load_store(tmp_path, f'url = "{url}"\npassword_file = "db-password"\n')
        assert config.load(relay.source, read_secrets=False).store.password == (
            "correct horse battery")
        status, output = cli(relay, "shipments", "--format", "json")
        assert (status, output.strip()) == (0, "[]"), output
        status, output = cli(relay, "invite", "--shop", "acme", "--email", "ann@example.com",
                             "--ref", "1001", "--format", "json")
        assert status == 0, output


def failed_store_line(config: Config) -> tuple[str, str]:
    """`check` on a store it cannot log in to: exit 1 and the store's line says failed; that
    line and the whole output."""
    status, output = cli(config, "check")
    [line] = [line for line in output.splitlines() if " store postgresql" in line]
    assert status == 1
    assert line.startswith("failed  store postgresql "), line
    return line, output


def test_a_wrong_or_absent_password_fails_check_and_start_without_showing_it(
        tmp_path: Path, pg_database: str, caplog: pytest.LogCaptureFixture) -> None:
    """What an operator sees when the role's password is wrong (a typo in the file) or given
    nowhere: check names the store as failed with libpq's reason and never the password."""
    (tmp_path / "wrong-password").write_text("incorrect horse 5512\n")
    with password_role(tmp_path, pg_database) as url:
        wrong = load_store(tmp_path, f'url = "{url}"\npassword_file = "wrong-password"\n')
        line, output = failed_store_line(wrong)
        assert "password authentication failed" in line, line
        assert "incorrect horse 5512" not in output
        # serve: exit 1 with libpq's reason, restarted by systemd (libpq gives no SQLSTATE
        # at connect to tell a refused login from a server still starting).
        with caplog.at_level(logging.ERROR, "mailrelay.app"):
            assert asyncio.run(app.run(wrong)) == app.EXIT_UNREACHABLE
        assert "password authentication failed" in caplog.text
        assert "incorrect horse 5512" not in caplog.text
        absent = load_store(tmp_path, f'url = "{url}"\n')
        line, output = failed_store_line(absent)
        assert "password" in line, line
