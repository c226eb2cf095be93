"""The relay.toml the benchmarks run mailrelay with: shop `acme`, listeners on loopback."""

from __future__ import annotations

TEMPLATE = """\
[store]
path = "{store}"

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
    agent: str = "support@acme.example",
) -> str:
    """The config text; `smtp_extra` and `outbound` are TOML lines of those sections."""
    return TEMPLATE.format(
        store=store, smtp_listen=smtp_listen,
        smtp_extra=smtp_extra + "\n" if smtp_extra else "", outbound=outbound,
        secret_file=secret_file, agent=agent, invite_delay=invite_delay,
    )
