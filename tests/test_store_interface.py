"""The SQLite store implements the interface a second backend (PostgreSQL) must implement too,
and the interface names every statement the SQLite store offers, so neither drifts; outside the
store, mailrelay holds the interface, never a backend's class."""

from __future__ import annotations

import ast
import inspect
from datetime import UTC, datetime
from pathlib import Path

import pytest

import mailrelay
from mailrelay.core.errors import DuplicateKey
from mailrelay.store import NewReply, Queries, interface

from .store_backends import StoreOpener, new_store

__all__ = ["new_store"]  # the fixture, for pytest

#: What the SQLite classes have that the interface leaves out on purpose (SQLite's own).
SQLITE_ONLY = {"conn"}
#: The backends' own classes, which `mailrelay.store` re-exports for the tests and benches.
BACKEND_CLASSES = {"Store", "Queries", "PgStore", "GroupCommitWriter"}


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


def test_each_store_implements_the_backend_interface(new_store: StoreOpener) -> None:
    with new_store() as store:
        for name in members(interface.StoreBackend):
            assert hasattr(store, name), name
            if callable(getattr(interface.StoreBackend, name, None)):
                wanted = inspect.signature(getattr(interface.StoreBackend, name))
                got = inspect.signature(getattr(type(store), name))
                assert list(got.parameters) == list(wanted.parameters), name
        assert store.finalize_erasure()


def test_a_second_row_with_the_same_natural_key_raises_the_backend_neutral_duplicate_key(
    new_store: StoreOpener,
) -> None:
    """Services catch DuplicateKey, never sqlite3's IntegrityError (import-linter forbids
    sqlite3 outside the store), so a PostgreSQL backend raises the same error."""
    reply = NewReply(received_at=datetime(2026, 12, 4, tzinfo=UTC), source="imap",
                     dedupe_key="<r1@acme.example>", message_id="<r1@acme.example>",
                     from_address="support@acme.example", review_id=None,
                     outcome="rejected", reason="no key")
    with new_store() as store:
        store.write_sync(lambda q: q.record_reply(reply))
        with pytest.raises(DuplicateKey):
            store.write_sync(lambda q: q.record_reply(reply))
        assert store.read(lambda q: q.reply_outcome("<r1@acme.example>")) is not None


def backend_classes_named(path: Path) -> list[str]:
    """`module: name` for each backend class that `path` imports from the store."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mailrelay.store"):
            found += [f"{node.module}: {alias.name}" for alias in node.names
                      if alias.name in BACKEND_CLASSES]
    return found


def test_outside_the_store_mailrelay_names_no_backends_class() -> None:
    """Services, edges, the CLI and the app hold a `StoreBackend` (and their statements take a
    `QueryInterface`), so a third backend need not subclass SQLite's classes; import-linter
    keeps their modules out, this test the names `mailrelay.store` re-exports."""
    package = Path(mailrelay.__file__).parent
    named = {str(path.relative_to(package)): names
             for path in package.rglob("*.py")
             if path.relative_to(package).parts[0] != "store"
             and (names := backend_classes_named(path))}
    assert named == {}
