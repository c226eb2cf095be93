"""The `mailrelay` command: every operator action, documented in --help.

Exit status: 0 success, 1 user error (one-line reason), 2 usage error, 3 serve could not start.
This module only assembles the group; each command family lives in its own module.
"""

from __future__ import annotations

import click

from mailrelay.cli import (
    check,
    invitations,
    invite,
    outbox,
    privacy,
    reports,
    reviews,
    serve,
    shipments,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mailrelay")
def main() -> None:
    """mailrelay: shipping emails in, customer reviews and public responses out."""


for _command in (
    serve.serve, check.check, shipments.parse, shipments.shipments, invitations.invitations,
    outbox.outbox, reviews.reviews, reports.stats, reviews.export, privacy.purge,
    privacy.forget_address, invite.invite, invite.link,
):
    main.add_command(_command)
