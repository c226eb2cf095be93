"""What `mailrelay check` learns of a PostgreSQL store without changing it: the server's
version, the schema version found (or none yet) and a trivial query's round trip."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict

from mailrelay.config import StoreConfig
from mailrelay.core.errors import StoreError
from mailrelay.store.pg.coordination import connect_args
from mailrelay.store.pg.schema import newest_version


@dataclass(frozen=True)
class DatabaseFacts:
    server_version: str
    #: None: no mailrelay schema yet (the first relay to start creates it).
    schema_version: int | None
    latency_ms: float

    def problem(self) -> str | None:
        """Why a relay of this version cannot start on the database, or None."""
        if self.schema_version is not None and self.schema_version > newest_version():
            return (f"schema version {self.schema_version} is newer than this mailrelay's "
                    f"{newest_version()}: upgrade mailrelay")
        return None

    def describe(self) -> str:
        if self.schema_version is None:
            schema = "empty: the schema will be created at first start"
        elif self.schema_version == newest_version():
            schema = f"schema version {self.schema_version} (this mailrelay's)"
        elif self.schema_version < newest_version():
            schema = (f"schema version {self.schema_version}: the relay migrates it to "
                      f"{newest_version()} at start")
        else:
            schema = f"schema version {self.schema_version}"
        return (f"PostgreSQL {self.server_version}, {schema}, "
                f"query {self.latency_ms:.1f} ms")


def shown_database(url: str) -> str:
    """user@host:port/dbname of a store URL (never a password: [store] url carries none)."""
    info = conninfo_to_dict(url)
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"{user}{info.get('host', 'localhost')}{port}/{info.get('dbname', '')}"


def probe(config: StoreConfig) -> DatabaseFacts:
    """Connect as a relay would, read what is there, change nothing; StoreError when the
    server cannot be reached or refuses the login."""
    if config.url is None:
        raise ValueError("probe needs [store] url")
    try:
        with psycopg.connect(config.url, **connect_args(config, "check")) as conn:
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            latency = (time.perf_counter() - started) * 1000
            server = conn.info.parameter_status("server_version") or "?"
            (exists,) = conn.execute("SELECT to_regclass('schema_migrations')"
                                     " IS NOT NULL").fetchone() or (False,)
            version = None
            if exists:
                row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
                version = int(row[0]) if row and row[0] is not None else None
    except psycopg.Error as exc:
        raise StoreError(str(exc).strip()) from exc
    return DatabaseFacts(server.split()[0], version, latency)


def stored_secret_key(config: StoreConfig) -> str | None:
    """The relays' shared secret key stored in the database (the first relay's key file), or
    None before any relay has started there; read only. StoreError when it cannot be read."""
    try:
        with psycopg.connect(config.url or "", **connect_args(config, "check")) as conn:
            (exists,) = conn.execute("SELECT to_regclass('shared_values')"
                                     " IS NOT NULL").fetchone() or (False,)
            if not exists:
                return None
            row = conn.execute("SELECT value FROM shared_values WHERE name = 'secret_key'"
                               ).fetchone()
    except psycopg.Error as exc:
        raise StoreError(str(exc).strip()) from exc
    return None if row is None else str(row[0])
