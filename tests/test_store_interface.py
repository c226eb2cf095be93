"""The SQLite store implements the interface a second backend (PostgreSQL) must implement too,
and the interface names every statement the SQLite store offers, so neither drifts."""

from __future__ import annotations

import inspect
from pathlib import Path

from mailrelay.store import Queries, Store, interface

#: What the SQLite classes have that the interface leaves out on purpose (SQLite's own).
SQLITE_ONLY = {"conn"}


def members(protocol: type) -> set[str]:
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls.__module__ == interface.__name__:
            declared = [*vars(cls), *vars(cls).get("__annotations__", {})]
            names |= {name for name in declared if not name.startswith("_")}
    return names


def public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_queries_has_every_statement_of_the_interface_with_its_parameters() -> None:
    for name in members(interface.QueryInterface):
        wanted = inspect.signature(getattr(interface.QueryInterface, name))
        got = inspect.signature(getattr(Queries, name))
        assert list(got.parameters) == list(wanted.parameters), name


def test_the_interface_names_every_public_statement_of_queries() -> None:
    assert public(Queries) - SQLITE_ONLY == members(interface.QueryInterface)


def test_the_sqlite_store_implements_the_backend_interface(tmp_path: Path) -> None:
    with Store(tmp_path / "relay.db") as store:
        for name in members(interface.StoreBackend):
            assert hasattr(store, name), name
            if callable(getattr(interface.StoreBackend, name, None)):
                wanted = inspect.signature(getattr(interface.StoreBackend, name))
                got = inspect.signature(getattr(Store, name))
                assert list(got.parameters) == list(wanted.parameters), name
        assert store.finalize_erasure()
