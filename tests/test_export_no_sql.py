"""No SQL under workbench/export/: the export reads through named queries in workbench/store/.

Why a test: the store is the one place that knows the schema, so a column rename is one edit, and the
export's span selection stays the trace search's (`store.explore_traces.selection_clauses`). The test
reads every string literal with `ast` (an f-string's literal parts joined, so a SELECT split around a
placeholder is still seen) and fails on a statement keyword followed by its FROM, INTO or SET, or on
an upper-case SQL clause on its own (a fragment meant to be pasted into a query). Docstrings are prose,
never executed, and may quote SQL to explain a design (an attacker's rewrite "into `SELECT 1`").
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

EXPORT = Path(__file__).resolve().parent.parent / "workbench" / "export"

# SELECT ... FROM, INSERT ... INTO, UPDATE ... SET, DELETE ... FROM, in any case, across lines
_STATEMENT = re.compile(
    r"\b(?:select\b.*\bfrom|insert\b.*\binto|update\b.*\bset|delete\b.*\bfrom)\b", re.IGNORECASE | re.DOTALL
)
# an upper-case clause keyword alone: " WHERE ", "SELECT seq", "ORDER BY", "FROM spans"
_FRAGMENT = re.compile(r"\b(?:SELECT|INSERT|UPDATE|DELETE|WHERE|FROM|JOIN|ORDER BY|GROUP BY|HAVING)\b")


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of every string literal; an f-string as its literal parts with `{}` between."""
    inside_fstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    inside_fstrings.add(id(value))
                    parts.append(value.value)
                else:
                    parts.append("{}")
            yield node.lineno, "".join(parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside_fstrings:
            yield node.lineno, node.value


def _docstrings(tree: ast.AST) -> set[int]:
    """The lines of docstrings, which are prose about the design, not queries."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(body[0].value.lineno)
    return out


def sql_literals(source: str) -> list[tuple[int, str]]:
    """The string literals in `source` that look like SQL, with their line numbers."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for line, text in _strings(tree):
        if line not in docs and (_FRAGMENT.search(text) or _STATEMENT.search(text)):
            found.append((line, text))
    return found


def test_the_check_sees_sql_in_every_shape() -> None:
    planted = '''
sub = f"SELECT seq FROM spans{where}"
rows = cur.execute("select * from findings where id = ?", [1])
clause = " WHERE " + " AND ".join(clauses)
write = "insert into ledger values (?)"
prose = "Selecting what goes into a bundle, from the spans a person chose"

def f():
    """Pick the spans to select from the store; a rewrite into `SELECT 1` is caught."""
'''
    lines = sorted(line for line, _ in sql_literals(planted))
    assert lines == [2, 3, 4, 5]


def test_no_sql_under_workbench_export() -> None:
    files = sorted(EXPORT.rglob("*.py"))
    assert len(files) > 5  # the package is where this test thinks it is
    offending = [
        f"{path.relative_to(EXPORT.parent.parent)}:{line}: {text[:80]!r}"
        for path in files
        for line, text in sql_literals(path.read_text(encoding="utf-8"))
    ]
    assert not offending, (
        "SQL under workbench/export/ (use a named query in workbench/store/):\n" + "\n".join(offending)
    )
