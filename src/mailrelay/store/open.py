"""`open_store`: the store the configuration names, SQLite at `[store] path` (the default) or
PostgreSQL at `[store] url`."""

from __future__ import annotations

from mailrelay.config.model import StoreConfig
from mailrelay.store.database import Store
from mailrelay.store.interface import StoreBackend


def open_store(config: StoreConfig) -> StoreBackend:
    """Open (and migrate) the configured store; raises StoreError when it cannot. The one
    place outside the tests that names a backend's class: the rest of mailrelay holds a
    `StoreBackend`."""
    if config.url is None:
        return Store(config.path)
    from mailrelay.store.pg.database import PgStore  # psycopg only loads for PostgreSQL

    return PgStore(config.url, password=config.password, relay_id=config.relay_id)
