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
    moderation,
    outbox,
    privacy,
    reports,
    reviews,
    serve,
    shipments,
    store,
    users,
)


class FullHelpGroup(click.Group):
    """A group whose command list shows each command's first help paragraph in full: click
    cuts it at 45 characters, which left `mailrelay --help` saying half of what each does."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=FullHelpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mailrelay")
def main() -> None:
    """mailrelay: shipping emails in, customer reviews and public responses out."""


for _command in (
    serve.serve, check.check, shipments.parse, shipments.shipments, invitations.invitations,
    outbox.outbox, reviews.reviews, reports.stats, reviews.export, privacy.purge,
    privacy.forget_address, invite.invite, invite.link, users.user, store.store,
):
    main.add_command(_command)
for _command in moderation.commands.commands.values():
    reviews.reviews.add_command(_command)
