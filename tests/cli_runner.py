"""The `mailrelay` command line run in-process through click's CliRunner, as the tests call it."""

from __future__ import annotations

from click.testing import CliRunner, Result

from mailrelay.cli import main
from mailrelay.config import Config


def run(*args: str) -> Result:
    """One command; an exception inside it fails the test with its own traceback."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def invoked(*args: str) -> tuple[int, str]:
    """One command's exit code and output (an exception is caught as exit code 1)."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def cli(config: Config, *args: str) -> tuple[int, str]:
    """One command against `config`'s relay.toml: its exit code and output."""
    return invoked(*args, "--config", str(config.source))
