"""The [[shop.webhook]] tables of one shop: where its review events are POSTed, which events,
and the secret that signs them."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from mailrelay.config.model import WEBHOOK_EVENTS, WebhookConfig
from mailrelay.config.tables import NOT_READ, Table, did_you_mean, kind_of

#: A receiver that needs longer than this is better answered by a queue on its side.
MAX_TIMEOUT = timedelta(minutes=2)
#: A secret shorter than this is guessable; the signature would prove nothing.
MIN_SECRET_LENGTH = 16


def read_webhooks(shop: Table) -> tuple[WebhookConfig, ...]:
    """Every [[shop.webhook]] under `shop`, each checked key by key (unknown keys included)."""
    if not shop.has("webhook"):
        return ()
    value = shop.raw("webhook")
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        shop.problem("webhook", "each webhook must be a [[shop.webhook]] table under its "
                     f"[[shop]] (note the [[ ]]), not {kind_of(value)}")
        return ()
    hooks: list[WebhookConfig] = []
    seen: set[str] = set()
    for index, data in enumerate(value):
        table = Table(data, shop.where + ("webhook", index), f"{shop.name}.webhook[{index + 1}]",
                      shop.problems, shop.base)
        hook = _read_webhook(table)
        table.finish()
        if hook is None:
            continue
        if hook.url in seen:
            table.problem("url", f"{hook.url} is listed twice for this shop; give it one "
                          "[[shop.webhook]] with all the events it wants")
            continue
        seen.add(hook.url)
        hooks.append(hook)
    return tuple(hooks)


def _read_webhook(table: Table) -> WebhookConfig | None:
    url = _url(table)
    events = _events(table)
    secret = table.secret("secret")
    if secret is None and not any(table.has(k) for k in ("secret", "secret_file", "secret_env")):
        table.problem("secret_file", "is required: receivers check each POST's signature "
                      "with this secret (e.g. `openssl rand -hex 32 > webhook.key`)")
    elif secret is not None and secret != NOT_READ and len(secret) < MIN_SECRET_LENGTH:
        form = next(k for k in ("secret", "secret_file", "secret_env") if table.has(k))
        table.problem(form, f"the secret has {len(secret)} characters; use at least "
                      f"{MIN_SECRET_LENGTH} (e.g. `openssl rand -hex 32`)")
        secret = None
    timeout = table.duration("timeout", "10s", positive=True, maximum=MAX_TIMEOUT)
    if url is None or secret is None or not events:
        return None
    return WebhookConfig(url=url, events=events, secret=secret, timeout=timeout)


def _url(table: Table) -> str | None:
    url = table.required_string("url")
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        table.problem("url", f"{url!r} is not an http:// or https:// URL")
        return None
    if parts.username or parts.password:
        table.problem("url", "must not carry a user name or password; the receiver checks "
                      "the Mailrelay-Signature header instead")
        return None
    return url


def _events(table: Table) -> tuple[str, ...]:
    """The events asked for; leaving `events` out means all of them."""
    events = table.strings("events", WEBHOOK_EVENTS)
    if not events:
        table.problem("events", "must name at least one event: " + ", ".join(WEBHOOK_EVENTS))
        return ()
    for event in events:
        if event not in WEBHOOK_EVENTS:
            table.problem("events", f"unknown event {event!r}{did_you_mean(event, WEBHOOK_EVENTS)}"
                          " (known: " + ", ".join(WEBHOOK_EVENTS) + ")")
            return ()
    return tuple(dict.fromkeys(events))
