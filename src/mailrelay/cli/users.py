"""`user`: the console's accounts — add one to a shop, list, new password link, TOTP, remove."""

from __future__ import annotations

from pathlib import Path

import click

from mailrelay.cli.options import config_option, format_option, user_errors
from mailrelay.cli.resources import load_config, open_store, print_listing
from mailrelay.core.clock import SystemClock
from mailrelay.services import accounts

USER_FIELDS = ("email", "shop", "role", "password_set", "totp", "created_at")


@click.group()
def user() -> None:
    """Console accounts: who may log in at <base_url>/console/, as owner or agent of a shop."""


@user.command("add")
@config_option
@click.argument("email")
@click.option("--shop", "shop_id", required=True, help="The shop the user works for.")
@click.option("--role", type=click.Choice([r.value for r in accounts.Role]), required=True,
              help="owner: everything of the shop, confirms reports; agent: answers reviews.")
@user_errors
def user_add(config_path: Path | None, email: str, shop_id: str, role: str) -> None:
    """Give EMAIL the ROLE in a shop and print a one-time link to set the password.

    The link is good for 24 hours and once. Run it again for a second shop: one account, one
    password, several shops. A user who has a password keeps it until the link is used.
    """
    config = load_config(config_path)
    now = SystemClock().now()
    with open_store(config) as store:
        link = store.write_sync(
            lambda q: accounts.add_user(q, config, email, shop_id, role, now))
    click.echo(f"{email} is {role} of {shop_id}; set the password (once, within 24 hours):")
    click.echo(link)


@user.command("list")
@config_option
@click.option("--shop", "shop_id", help="Only this shop.")
@format_option
@user_errors
def user_list(config_path: Path | None, shop_id: str | None, fmt: str | None) -> None:
    """List console users: shop, role, whether a password and TOTP are set."""
    print_listing(load_config(config_path), lambda q: q.list_users(shop_id), USER_FIELDS, fmt)


@user.command("passwd")
@config_option
@click.argument("email")
@user_errors
def user_passwd(config_path: Path | None, email: str) -> None:
    """Print a new one-time link for EMAIL to set a password (older links stop working)."""
    config = load_config(config_path)
    now = SystemClock().now()
    with open_store(config) as store:
        link = store.write_sync(lambda q: accounts.reset_password(q, config, email, now))
    click.echo(f"new password for {email} (once, within 24 hours):")
    click.echo(link)


@user.command("totp")
@config_option
@click.argument("email")
@click.option("--off", is_flag=True, help="Remove the second factor instead.")
@user_errors
def user_totp(config_path: Path | None, email: str, off: bool) -> None:
    """Require a TOTP code at EMAIL's login; prints the otpauth:// URI for an authenticator app
    (scan it as a QR code, or type its secret). --off removes it."""
    config = load_config(config_path)
    with open_store(config) as store:
        if off:
            store.write_sync(lambda q: accounts.disable_totp(q, email))
            click.echo(f"{email} logs in with the password alone")
            return
        uri = store.write_sync(lambda q: accounts.enable_totp(q, email, "mailrelay"))
    click.echo(f"{email} now needs a code from an authenticator app; add this to it:")
    click.echo(uri)


@user.command("remove")
@config_option
@click.argument("email")
@click.option("--shop", "shop_id", help="Only from this shop (default: every shop).")
@user_errors
def user_remove(config_path: Path | None, email: str, shop_id: str | None) -> None:
    """Take EMAIL's access away (from one shop, or all); their sessions end at once."""
    config = load_config(config_path)
    address = email.strip().lower()
    with open_store(config) as store:
        ended = store.write_sync(lambda q: q.remove_member(address, shop_id))
    if not ended:
        raise click.ClickException(f"{email} has no console access"
                                   + (f" to {shop_id}" if shop_id else ""))
    click.echo(f"{email} removed from {shop_id or 'every shop'}")
