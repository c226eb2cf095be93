"""The relay.toml the benchmarks run mailrelay with: shop `acme`, listeners on loopback."""

from __future__ import annotations

TEMPLATE = """\
[store]
{store_lines}

[smtp]
listen = "{smtp_listen}"
hostname = "relay.test"
{smtp_extra}
[http]
listen = "127.0.0.1:0"
base_url = "http://reviews.test"

[outbound]
{outbound}

[security]
secret_file = "{secret_file}"

[[shop]]
id = "acme"
name = "ACME Shoes"
bcc_address = "reviews+acme@relay.test"
cancel_address = "cancel+acme@relay.test"
from = "ACME Shoes <reviews@acme.example>"
reply_address = "reply@relay.test"
agents = ["{agent}"]
invite_delay = "{invite_delay}"
send_hours = ""
timezone = "UTC"
"""

MAILDIR = 'transport = "maildir"\nmaildir = "var/outbox"'


def relay_toml(
    *, store: str = "var/bench.db", smtp_listen: str = "127.0.0.1:0", smtp_extra: str = "",
    outbound: str = MAILDIR, secret_file: str = "var/secret.key",  # noqa: S107 - a path
    invite_delay: str = "7d",
    agent: str = "support@acme.example", url: str | None = None, relay_id: str | None = None,
) -> str:
    """The config text; `smtp_extra` and `outbound` are TOML lines of those sections. With
    `url` the store is that PostgreSQL database (instead of SQLite at `store`), this relay
    named `relay_id`."""
    store_lines = f'path = "{store}"' if url is None else f'url = "{url}"'
    if relay_id is not None:
        store_lines += f'\nrelay_id = "{relay_id}"'
    return TEMPLATE.format(
        store_lines=store_lines, smtp_listen=smtp_listen,
        smtp_extra=smtp_extra + "\n" if smtp_extra else "", outbound=outbound,
        secret_file=secret_file, agent=agent, invite_delay=invite_delay,
    )
