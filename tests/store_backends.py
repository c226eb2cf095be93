"""Both store backends for the store-level tests: `new_store` opens a fresh store of the test's
backend (SQLite in tmp_path, or PostgreSQL in a fresh database of the session's server), each
call the same store anew (a restart)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mailrelay.store import Store

BACKENDS = ("sqlite", "postgresql")

StoreOpener = Callable[[], Store]


@pytest.fixture(params=BACKENDS)
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreOpener:
    """Opens the test's store (both backends: the test runs once for each)."""
    if request.param == "sqlite":
        return lambda: Store(tmp_path / "s.db")
    url: str = request.getfixturevalue("pg_database")
    from mailrelay.store.pg.database import PgStore

    return lambda: PgStore(url)
