"""The SQLite SQL our store modules write, turned into PostgreSQL's by rule (`translate`).

Placeholders become PostgreSQL's own `$n` (run through psycopg's raw cursor, so the argument
tuple is passed unchanged, numbered `?n` included). Statements too SQLite-shaped for a rule get a
per-backend variant in their module instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

#: Subqueries in FROM need a name in PostgreSQL before 16; these are the names we give.
_ALIAS = "_sub"
_KEYWORDS_AFTER_FROM_ITEM = frozenset({
    "where", "group", "order", "limit", "offset", "union", "join", "left", "inner", "cross",
    "on", "having", "window", "except", "intersect", "returning", "for",
})


class UntranslatableSql(ValueError):
    """A statement no rule covers: its module needs a PostgreSQL variant."""


def _placeholders(sql: str) -> str:
    """`?` and `?n` outside string literals → `$n` (SQLite's numbering: a bare `?` is one
    more than the largest number so far); `x'…'` blob literals → bytea literals."""
    out: list[str] = []
    highest = 0
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "'":
            end = i + 1
            while end < n:
                if sql[end] == "'":
                    if end + 1 < n and sql[end + 1] == "'":
                        end += 2
                        continue
                    break
                end += 1
            literal = sql[i:end + 1]
            prev = out[-1] if out else ""
            if prev in ("x", "X") and (len(out) < 2 or not (out[-2].isalnum() or out[-2] == "_")):
                out[-1] = f"'\\x{literal[1:-1]}'::bytea"
            else:
                out.append(literal)
            i = end + 1
            continue
        if ch == "?":
            j = i + 1
            while j < n and sql[j].isdigit():
                j += 1
            number = int(sql[i + 1:j]) if j > i + 1 else highest + 1
            highest = max(highest, number)
            out.append(f"${number}")
            i = j
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _call_end(sql: str, open_paren: int) -> int:
    """The index of the `)` closing the `(` at `open_paren` (literals skipped)."""
    depth = 0
    i = open_paren
    while i < len(sql):
        ch = sql[i]
        if ch == "'":
            i = sql.index("'", i + 1)
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise UntranslatableSql(f"unbalanced parentheses: {sql}")


def _split_args(inner: str) -> list[str]:
    """The top-level comma-separated arguments of a call."""
    args, depth, start, i = [], 0, 0, 0
    while i < len(inner):
        ch = inner[i]
        if ch == "'":
            i = inner.index("'", i + 1)
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(inner[start:i].strip())
            start = i + 1
        i += 1
    args.append(inner[start:].strip())
    return args


def _group_concat(args: list[str]) -> str:
    return f"string_agg({args[0]}, {args[1] if len(args) > 1 else chr(39) + ',' + chr(39)})"


def _json_extract(args: list[str]) -> str:
    path = args[1].strip("'")
    if not path.startswith("$.") or len(args) != 2:
        raise UntranslatableSql(f"json_extract path {args[1]}")
    return f"(({args[0]})::jsonb ->> '{path[2:]}')"


def _json_replace(args: list[str]) -> str:
    """SQLite's json_replace (existing keys only) as nested jsonb_set(…, false); the values are
    text parameters or NULL (JSON null), all our statements pass."""
    document = f"({args[0]})::jsonb"
    for path, value in zip(args[1::2], args[2::2], strict=True):
        if not (path.startswith("'$.") and path.endswith("'")):
            raise UntranslatableSql(f"json_replace path {path}")
        new = "'null'::jsonb" if value.upper() == "NULL" else f"to_jsonb(({value})::text)"
        document = f"jsonb_set({document}, '{{{path[3:-1]}}}', {new}, false)"
    return f"({document})::text"


def _scalar_or_aggregate(scalar: str, aggregate: str) -> Callable[[list[str]], str]:
    def rewrite(args: list[str]) -> str:
        name = scalar if len(args) > 1 else aggregate
        return f"{name}({', '.join(args)})"
    return rewrite


#: SQLite functions and their PostgreSQL spelling, from the arguments (already translated).
_FUNCTIONS: dict[str, Callable[[list[str]], str]] = {
    "group_concat": _group_concat,
    "total": lambda args: f"COALESCE(SUM({args[0]}), 0)",
    "julianday": lambda args: f"(EXTRACT(EPOCH FROM ({args[0]})::timestamptz) / 86400.0)",
    "instr": lambda args: f"strpos({args[0]}, {args[1]})",
    "typeof": lambda args: f"pg_typeof({args[0]})::text",
    "json_extract": _json_extract,
    "json_replace": _json_replace,
    "max": _scalar_or_aggregate("GREATEST", "MAX"),
    "min": _scalar_or_aggregate("LEAST", "MIN"),
}
_FUNCTION_CALL = re.compile(r"\b(" + "|".join(_FUNCTIONS) + r")\s*\(", re.IGNORECASE)


def _functions(sql: str) -> str:
    """Rewrite every call of a `_FUNCTIONS` function, innermost arguments first."""
    match = _FUNCTION_CALL.search(sql)
    if match is None:
        return sql
    open_paren = match.end() - 1
    close = _call_end(sql, open_paren)
    args = [_functions(arg) for arg in _split_args(sql[open_paren + 1:close])]
    if args == [""]:
        args = []
    rewritten = _FUNCTIONS[match.group(1).lower()](args)
    return sql[:match.start()] + rewritten + _functions(sql[close + 1:])


def _from_aliases(sql: str) -> str:
    """Name every unnamed subquery in FROM (or JOIN): PostgreSQL 15 requires it."""
    out, count, pos = sql, 0, 0
    pattern = re.compile(r"\b(FROM|JOIN)\s*\(\s*(SELECT|VALUES)\b", re.IGNORECASE)
    while True:
        match = pattern.search(out, pos)
        if match is None:
            return out
        open_paren = out.index("(", match.start())
        close = _call_end(out, open_paren)
        after = re.match(r"\s*(\w+)", out[close + 1:])
        if after is None or after.group(1).lower() in _KEYWORDS_AFTER_FROM_ITEM:
            count += 1
            out = f"{out[:close + 1]} AS {_ALIAS}{count}{out[close + 1:]}"
        pos = open_paren + 1


_JSON_EACH = re.compile(r"SELECT value FROM json_each\(([^()]*)\)", re.IGNORECASE)
#: A JSON field among a JSON list's values: both compared as text (->> gives text).
_JSON_IN_EACH = re.compile(
    r"(json_extract\([^()]*\)) IN \(SELECT value FROM json_each\(([^()]*)\)\)", re.IGNORECASE)
_JSON_EQUALS = re.compile(r"(json_extract\([^()]*\))\s*=\s*(\$\d+)", re.IGNORECASE)
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT OR IGNORE INTO\b", re.IGNORECASE)
_RETURNING = re.compile(r"\sRETURNING\s", re.IGNORECASE)
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\s+INDEXED BY \w+", re.IGNORECASE), ""),
    # `+column` keeps SQLite off an index; PostgreSQL has no unary plus on text.
    (re.compile(r"\b(WHERE|AND|OR|ON)(\s+)\+(?=[A-Za-z_])", re.IGNORECASE), r"\1\2"),
    (re.compile(r"\bCROSS JOIN(\s+\w+(?:\s+\w+)?\s+ON)\b", re.IGNORECASE), r"JOIN\1"),
    # SQLite's LIKE ignores ASCII case.
    (re.compile(r"\bLIKE\b", re.IGNORECASE), "ILIKE"),
    (re.compile(r"\bIS NOT (?!NULL\b|TRUE\b|FALSE\b|DISTINCT\b)", re.IGNORECASE),
     "IS DISTINCT FROM "),
    (re.compile(r"\bIS (?!NOT\b|NULL\b|TRUE\b|FALSE\b|DISTINCT\b)", re.IGNORECASE),
     "IS NOT DISTINCT FROM "),
    # A comparison's truth compared with 0 or 1 (SQLite's booleans are integers).
    (re.compile(r"(\([\w.]+ [<>]=? \d+\)) = 0\b"), r"\1 = false"),
    (re.compile(r"(\([\w.]+ [<>]=? \d+\)) = 1\b"), r"\1 = true"),
    # PostgreSQL's row address stands in for SQLite's (only within one statement's reach).
    (re.compile(r"\browid\b", re.IGNORECASE), "ctid"),
)
_REFUSED = re.compile(r"\b(INSERT OR REPLACE|REPLACE INTO|PRAGMA|sqlite_master|json_each"
                      r"|strftime|datetime\(|date\(|GLOB)\b", re.IGNORECASE)


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """PostgreSQL for one SQLite statement of ours; raises `UntranslatableSql` for SQLite-only
    constructs no rule covers (such a statement needs a variant in its module)."""
    pg = _placeholders(sql)
    pg = _JSON_IN_EACH.sub(
        r"\1 IN (SELECT value FROM jsonb_array_elements_text((\2)::jsonb) AS _ids(value))", pg)
    pg = _JSON_EACH.sub(
        r"SELECT value::bigint FROM jsonb_array_elements_text((\1)::jsonb) AS _ids(value)", pg)
    refused = _REFUSED.search(pg)
    if refused is not None:
        raise UntranslatableSql(f"{refused.group(1)} has no PostgreSQL rule: {sql}")
    if _INSERT_OR_IGNORE.match(pg):
        pg = _INSERT_OR_IGNORE.sub("INSERT INTO", pg, count=1)
        returning = _RETURNING.search(pg)
        if returning is None:
            pg += " ON CONFLICT DO NOTHING"
        else:
            pg = f"{pg[:returning.start()]} ON CONFLICT DO NOTHING{pg[returning.start():]}"
    for pattern, replacement in _RULES:
        pg = pattern.sub(replacement, pg)
    # json_extract's number compares with a number; ->> gives text, so the argument is cast.
    pg = _JSON_EQUALS.sub(r"\1 = CAST(\2 AS TEXT)", pg)
    return _from_aliases(_functions(pg))
