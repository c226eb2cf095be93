"""store/pg/dialect.py: the rules that turn our SQLite SQL into PostgreSQL's, and every SQL
constant of the store modules translated and prepared by a real PostgreSQL server."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import psycopg
import pytest

from mailrelay import store as store_package
from mailrelay.store.pg.database import PgStore
from mailrelay.store.pg.dialect import UntranslatableSql, translate
from mailrelay.store.reviews import REVIEW_JOIN

SQL_STARTS = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


@pytest.mark.parametrize(("sqlite", "postgresql"), [
    ("SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = $1 AND c = $2"),
    # Numbered placeholders keep their numbers; a bare one follows the highest so far.
    ("SELECT ?2, ?1, ?", "SELECT $2, $1, $3"),
    ("SELECT 'a ? b', ?", "SELECT 'a ? b', $1"),
    ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"),
    ("UPDATE t SET raw = x'' WHERE id = ?", "UPDATE t SET raw = '\\x'::bytea WHERE id = $1"),
    ("INSERT OR IGNORE INTO t (a) VALUES (?)",
     "INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING"),
    ("INSERT OR IGNORE INTO t (a) VALUES (?) RETURNING a",
     "INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING RETURNING a"),
    ("SELECT MIN(a) FROM t INDEXED BY idx_t WHERE +b = ?", "SELECT MIN(a) FROM t WHERE b = $1"),
    ("SELECT a FROM r CROSS JOIN i ON i.id = r.i", "SELECT a FROM r JOIN i ON i.id = r.i"),
    ("SELECT a FROM t WHERE b LIKE ? ESCAPE '\\' AND c NOT LIKE 'x%'",
     "SELECT a FROM t WHERE b ILIKE $1 ESCAPE '\\' AND c NOT ILIKE 'x%'"),
    ("SELECT a IS NOT b, a IS b, a IS NOT NULL, a IS NULL",
     "SELECT a IS DISTINCT FROM b, a IS NOT DISTINCT FROM b, a IS NOT NULL, a IS NULL"),
    ("SELECT group_concat(t.tag), group_concat(tag, ';') FROM t",
     "SELECT string_agg(t.tag, ','), string_agg(tag, ';') FROM t"),
    ("SELECT total(a), max(a), max(a, b), min(a, coalesce(b, 1))",
     "SELECT COALESCE(SUM(a), 0), MAX(a), GREATEST(a, b), LEAST(a, coalesce(b, 1))"),
    ("SELECT (julianday(a) - julianday(b)) * 24",
     "SELECT ((EXTRACT(EPOCH FROM (a)::timestamptz) / 86400.0)"
     " - (EXTRACT(EPOCH FROM (b)::timestamptz) / 86400.0)) * 24"),
    ("SELECT rowid FROM t WHERE typeof(a) = 'text' AND instr(lower(a), ?) > 0",
     "SELECT ctid FROM t WHERE pg_typeof(a)::text = 'text' AND strpos(lower(a), $1) > 0"),
    ("SELECT a FROM audit WHERE json_extract(detail, '$.review_id') = ?",
     "SELECT a FROM audit WHERE ((detail)::jsonb ->> 'review_id') = CAST($1 AS TEXT)"),
    ("UPDATE audit SET detail = json_replace(detail, '$.reason', ?, '$.note', NULL)"
     " WHERE json_extract(detail, '$.review_id') IN (SELECT value FROM json_each(?))",
     "UPDATE audit SET detail = (jsonb_set(jsonb_set((detail)::jsonb, '{reason}',"
     " to_jsonb(($1)::text), false), '{note}', 'null'::jsonb, false))::text"
     " WHERE ((detail)::jsonb ->> 'review_id') IN (SELECT value FROM"
     " jsonb_array_elements_text(($2)::jsonb) AS _ids(value))"),
    ("SELECT a FROM r WHERE (r.stars > 3) = 0 OR (stars <= 2) = 1",
     "SELECT a FROM r WHERE (r.stars > 3) = false OR (stars <= 2) = true"),
    ("DELETE FROM t WHERE id IN (SELECT value FROM json_each(?))",
     "DELETE FROM t WHERE id IN (SELECT value::bigint FROM"
     " jsonb_array_elements_text(($1)::jsonb) AS _ids(value))"),
    ("SELECT MIN(t) FROM (SELECT a AS t FROM x UNION ALL SELECT b FROM y)",
     "SELECT MIN(t) FROM (SELECT a AS t FROM x UNION ALL SELECT b FROM y) AS _sub1"),
    ("SELECT k FROM (SELECT k FROM x) ORDER BY k",
     "SELECT k FROM (SELECT k FROM x) AS _sub1 ORDER BY k"),
    ("SELECT k FROM (SELECT k FROM x) named", "SELECT k FROM (SELECT k FROM x) named"),
    # An UPSERT adding to a count and keeping the later of two times (trigger senders).
    ("INSERT INTO t (k, at, n) VALUES (?1, ?2, ?3) ON CONFLICT (k) DO UPDATE"
     " SET at = max(t.at, excluded.at), n = t.n + excluded.n RETURNING n",
     "INSERT INTO t (k, at, n) VALUES ($1, $2, $3) ON CONFLICT (k) DO UPDATE"
     " SET at = GREATEST(t.at, excluded.at), n = t.n + excluded.n RETURNING n"),
])
def test_a_rule_turns_sqlite_into_postgresql(sqlite: str, postgresql: str) -> None:
    assert translate(sqlite) == postgresql


@pytest.mark.parametrize("sqlite", [
    "INSERT OR REPLACE INTO t (a) VALUES (?)", "PRAGMA table_info(t)",
    "SELECT name FROM sqlite_master", "SELECT strftime('%s', a) FROM t",
])
def test_sqlite_only_sql_without_a_rule_is_refused_not_passed_on(sqlite: str) -> None:
    with pytest.raises(UntranslatableSql):
        translate(sqlite)


def store_statements() -> Iterator[tuple[str, str]]:
    """Every SQL constant of the store's modules: module constants, class constants and
    per-backend variants (the PostgreSQL one), their `{…}` slots filled as the code does."""
    fills = {"values": "(?, ?, ?), (?, ?, ?)", "shop": "?1", "email": "?2", "hashed": "?3"}
    for info in pkgutil.iter_modules(store_package.__path__):
        module = importlib.import_module(f"{store_package.__name__}.{info.name}")
        values = list(vars(module).items())
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                values += [(f"{value.__name__}.{k}", v) for k, v in vars(value).items()]
        for name, value in values:
            if isinstance(value, dict) and "postgresql" in value:
                value = value["postgresql"]
            if isinstance(value, str) and value.lstrip().upper().startswith(SQL_STARTS):
                if value.upper().startswith("SELECT") and " FROM " not in value.upper():
                    # a select list (REVIEW_SELECT)
                    value += " FROM " + REVIEW_JOIN
                if value.upper().rstrip().endswith(("WHERE", "FROM")):
                    value += " 1 = 1" if value.upper().rstrip().endswith("WHERE") else " t"
                yield f"{info.name}.{name}", value.format(**fills)


STATEMENTS = dict(store_statements())


def test_the_collection_finds_the_store_s_statements() -> None:
    assert len(STATEMENTS) > 20
    assert "invitations._DECISION_FACTS" in STATEMENTS
    assert "invitations._NEXT_ID" in STATEMENTS


def test_every_sql_constant_of_the_store_prepares_on_postgresql(pg_database: str) -> None:
    PgStore(pg_database).close()  # the schema
    failures = []
    with psycopg.connect(pg_database, autocommit=True) as conn:
        for n, (name, sql) in enumerate(sorted(STATEMENTS.items())):
            try:
                conn.execute(f"PREPARE s{n} AS {translate(sql)}".encode())
            except (psycopg.Error, UntranslatableSql) as exc:
                failures.append(f"{name}: {str(exc).strip()}\n  {translate(sql)}")
    assert not failures, "\n".join(failures)
