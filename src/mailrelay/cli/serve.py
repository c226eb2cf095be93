"""`mailrelay serve`: run the daemon with the operator's log level."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from mailrelay import app
from mailrelay.cli.options import config_option
from mailrelay.config import load, locate
from mailrelay.core.errors import ConfigError


@click.command()
@config_option
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Least severe log level to print.")
def serve(config_path: Path | None, log_level: str) -> None:
    """Run the daemon: SMTP listener, intake, invitations and delivery, web, IMAP watcher.

    Stops cleanly on SIGTERM or SIGINT (a second SIGINT exits at once). Exit status 3 when the
    configuration is invalid or a listener cannot start; 1 when the PostgreSQL store cannot be
    connected to (systemd starts the relay again).
    """
    configure_logging(log_level)
    try:
        config = load(locate(config_path))
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"config error: {problem}", err=True)
        sys.exit(app.EXIT_STARTUP)
    sys.exit(asyncio.run(app.run(config)))


def configure_logging(level: str) -> None:
    import os

    # journald stamps each line itself (JOURNAL_STREAM is set under systemd).
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)
    # Library chatter (aiosmtpd per command, APScheduler per job run) drowns the events.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("aioimaplib").setLevel(logging.WARNING)
