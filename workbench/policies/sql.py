"""What a SQL text does, read with a parser (sqlglot): its statements, which of them destroy data, and
whether a WHERE clause restricts anything.

A regular expression cannot tell `DELETE FROM users WHERE TRUE OR id = 1` (every row) from
`DELETE FROM users WHERE id = 1 OR id = 2` (two rows); a parser plus sqlglot's boolean simplifier can.
Statements are split on the tokenizer's semicolons, so a `;` inside a literal or a comment never splits,
and every statement keeps its character range in the original text (evidence quotes exactly that range).

A statement sqlglot cannot parse in any of the dialects tried is judged by its leading keyword only:
`DROP` and `TRUNCATE` still count, a `DELETE` we cannot read is reported as destructive with a reason
that says the parse failed (an unreadable DELETE is worth a look, not worth hiding).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.simplify import simplify
from sqlglot.tokens import TokenType

# sqlglot logs unsupported syntax at WARNING level; a hostile trace must not flood the server's log.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

# The dialect of each database command-line client (`psql -c ...`), for the client SQL in shell commands.
CLIENT_DIALECTS: dict[str, str] = {
    "psql": "postgres",
    "pg_dump": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite3": "sqlite",
    "sqlite": "sqlite",
    "duckdb": "duckdb",
    "sqlcmd": "tsql",
    "clickhouse-client": "clickhouse",
    "clickhouse": "clickhouse",
    "snowsql": "snowflake",
    "cockroach": "postgres",
    "bq": "bigquery",
}

_STARTS = frozenset(
    "SELECT WITH INSERT UPDATE DELETE DROP TRUNCATE ALTER CREATE REPLACE MERGE GRANT REVOKE VACUUM".split()
)
_READ_ONLY = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "EXPLAIN", "VALUES"})


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a SQL text: its range in that text, its leading keyword and its parse (or None)."""

    start: int
    end: int
    keyword: str
    tree: exp.Expression | None


def _tokens(sql: str, dialect: str | None) -> list[sqlglot.tokens.Token] | None:
    try:
        return sqlglot.tokenize(sql, read=dialect)
    except SqlglotError:
        return None


def _parse(text: str, dialect: str | None) -> exp.Expression | None:
    for d in (dialect, None, "postgres", "mysql", "sqlite") if dialect else (None, "postgres", "mysql"):
        try:
            tree = sqlglot.parse_one(text, read=d)
        except (SqlglotError, ValueError, RecursionError):
            continue
        if isinstance(tree, exp.Expression) and not isinstance(tree, exp.Command):
            return tree
    return None


def statements(sql: str, dialect: str | None = None) -> list[Statement]:
    """The statements of `sql` with their ranges; empty when the text does not tokenize as SQL."""
    tokens = _tokens(sql, dialect)
    if not tokens:
        return []
    groups: list[list[sqlglot.tokens.Token]] = [[]]
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            groups.append([])
        else:
            groups[-1].append(tok)
    out = []
    for group in groups:
        if not group:
            continue
        start, end = group[0].start, group[-1].end + 1
        # a closing quote or bracket is not part of the token's range for strings and quoted names
        while end < len(sql) and sql[end] in "'\"`]" and sql[end - 1 : end] != sql[end]:
            end += 1
        text = sql[start:end]
        keyword = group[0].text.upper()
        out.append(Statement(start, end, keyword, _parse(text, dialect) if keyword in _STARTS else None))
    return out


# An unparsed statement is destructive only when it reads unambiguously so; prose ("Delete the old
# drafts") starts with the same words but never parses, and is not SQL.
_UNPARSED_DROP = re.compile(
    r"\s*(DROP\s+(TABLE|DATABASE|SCHEMA|VIEW|INDEX|USER|COLLECTION)|TRUNCATE\s+TABLE)\b", re.IGNORECASE
)
_LEADS = re.compile(
    r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(?:" + "|".join(sorted(_STARTS)) + r")\b", re.IGNORECASE | re.DOTALL
)


def looks_like_sql(text: str) -> bool:
    """Whether the text is SQL: a statement that parses, or an unmistakable DROP / TRUNCATE TABLE."""
    if not _LEADS.match(text):
        return False  # most tool arguments are prose or names: not worth tokenizing
    return any(st.tree is not None or _UNPARSED_DROP.match(text, st.start) for st in statements(text))


def _always_true(cond: exp.Expression) -> bool:
    """Whether a WHERE condition holds for every row: sqlglot's simplifier folds `TRUE OR x`, `1=1`,
    `NOT FALSE`, `'a'='a'`, `2>1`; we add a non-zero number literal (MySQL, SQLite) and `col = col`."""
    try:
        folded = simplify(cond.copy())
    except (SqlglotError, RecursionError, ValueError, TypeError):
        folded = cond
    while isinstance(folded, exp.Paren):
        folded = folded.this
    if isinstance(folded, exp.Boolean):
        return bool(folded.this)
    if isinstance(folded, exp.Literal) and not folded.is_string:
        try:
            return float(folded.this) != 0
        except ValueError:
            return False
    if isinstance(folded, exp.EQ) and isinstance(folded.this, exp.Column):
        return folded.this == folded.expression
    if isinstance(folded, exp.Or):
        return _always_true(folded.this) or _always_true(folded.expression)
    return False


def _unrestricted(node: exp.Expression) -> str | None:
    """'without WHERE' or 'with a WHERE that holds for every row', or None when the WHERE restricts."""
    where = node.args.get("where")
    if where is None:
        return "without WHERE"
    if _always_true(where.this):
        return f"with a WHERE that holds for every row ({where.this.sql()[:60]})"
    return None


def _why_tree(tree: exp.Expression) -> str | None:
    if isinstance(tree, exp.Drop):
        return f"DROP {str(tree.args.get('kind') or '').upper()} removes the object and all its data".replace(
            "  ", " "
        )
    if isinstance(tree, exp.TruncateTable):
        return "TRUNCATE removes every row"
    if isinstance(tree, exp.Alter) and any(isinstance(a, exp.Drop) for a in tree.args.get("actions") or []):
        return "ALTER ... DROP removes a column or constraint with its data"
    for node in tree.walk():
        if isinstance(node, exp.Delete) and (how := _unrestricted(node)):
            inner = " in a data-modifying CTE" if node is not tree else ""
            return f"DELETE {how} removes every row{inner}"
        if isinstance(node, exp.Update) and (how := _unrestricted(node)):
            inner = " in a data-modifying CTE" if node is not tree else ""
            return f"UPDATE {how} overwrites every row{inner}"
    return None


def destructive_sql(sql: str, dialect: str | None = None) -> list[tuple[int, int, str]]:
    """(start, end, why) of each destructive statement: DROP, TRUNCATE, ALTER ... DROP, and DELETE or
    UPDATE (also inside a CTE) without a WHERE, or with one that holds for every row."""
    out = []
    for st in statements(sql, dialect):
        if st.tree is not None:
            why = _why_tree(st.tree)
        elif _UNPARSED_DROP.match(sql, st.start):
            why = f"{st.keyword} removes data (statement not parsed)"
        else:
            why = None
        if why:
            out.append((st.start, st.end, why))
    return out


def sql_writes(sql: str, dialect: str | None = None) -> bool:
    """Whether any statement changes data or schema (anything but a query)."""
    for st in statements(sql, dialect):
        if st.keyword not in _STARTS:
            continue
        if st.tree is not None:
            if any(isinstance(n, exp.DML | exp.DDL) for n in st.tree.walk()):
                return True
            if st.keyword in _READ_ONLY:
                continue
            return True
        if st.keyword not in _READ_ONLY:
            return True
    return False
