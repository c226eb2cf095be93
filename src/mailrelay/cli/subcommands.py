"""How a group's subcommands find their config (their own --config, else the group's) and how
one that acts on a single row by its id is declared. Nothing command-specific.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mailrelay.cli.options import config_option, user_errors
from mailrelay.cli.resources import load_config
from mailrelay.config import Config


def subcommand_config(ctx: click.Context, path: Path | None, *,
                      read_secrets: bool = False) -> Config:
    """The config of a subcommand: its own --config, else the one given to its group."""
    return load_config(path or ctx.obj.get("config_path"), read_secrets=read_secrets)


def row_command(group: click.Group, name: str, argument: str, *,
                read_secrets: bool = False) -> Callable[[Callable[..., None]], click.Command]:
    """A subcommand of `group` acting on the row whose id is `argument`, with --config and
    one-line errors; the function gets the loaded config, the id and its own options."""

    def decorate(fn: Callable[..., None]) -> click.Command:
        def command(ctx: click.Context, /, config_path: Path | None, **values: Any) -> None:
            fn(subcommand_config(ctx, config_path, read_secrets=read_secrets), **values)

        functools.update_wrapper(command, fn)
        return group.command(name)(
            config_option(click.argument(argument, type=int)(
                click.pass_context(user_errors(command)))))

    return decorate
