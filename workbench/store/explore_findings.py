"""Reading findings for the UI: per trace, filtered lists, and where flagged steps sit in a trace."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.model import Finding, Severity
from workbench.store.connection import Store
from workbench.store.findings import _COLUMNS as _FINDING_COLUMNS
from workbench.store.findings import _to_finding as _stored_finding

# An unknown severity (a user rule's typo) still shows, at the bottom: one bad row must not break a page.
_SEVERITIES = frozenset(s.value for s in Severity)


def _to_finding(r: Sequence[Any]) -> Finding:
    """The findings store's own row reader (one definition of the columns), tolerant of severities."""
    if r[5] not in _SEVERITIES:
        r = (*r[:5], Severity.INFO.value, *r[6:])
    return _stored_finding(r)


def trace_findings(store: Store, trace_id: str) -> list[Finding]:
    """Every finding of one trace, worst first."""
    rows = (
        store.cursor()
        .execute(
            f"SELECT {_FINDING_COLUMNS} FROM findings WHERE trace_id = ? ORDER BY step_seq, id", [trace_id]
        )
        .fetchall()
    )
    found = [_to_finding(r) for r in rows]
    return sorted(found, key=lambda f: -f.severity.rank)


def list_findings(
    store: Store,
    severities: Sequence[str] = (),
    rules: Sequence[str] = (),
    limit: int = 500,
) -> list[Finding]:
    """Findings across traces, newest trace activity first, narrowed by severity and rule."""
    where, params = [], []
    if severities:
        where.append("list_contains(?, severity)")
        params.append(list(severities))
    if rules:
        where.append("list_contains(?, rule_id)")
        params.append(list(rules))
    sql = f"SELECT {_FINDING_COLUMNS} FROM findings"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
    rows = store.cursor().execute(sql, [*params, limit]).fetchall()
    return [_to_finding(r) for r in rows]


def finding_rules(store: Store) -> list[str]:
    rows = store.cursor().execute("SELECT DISTINCT rule_id FROM findings ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def step_positions(store: Store, trace_id: str, seqs: Sequence[int]) -> dict[int, int]:
    """1-based replay positions of these seqs in their trace (for links from findings to steps)."""
    if not len(seqs):
        return {}
    rows = (
        store.cursor()
        .execute(
            """
            SELECT seq, pos FROM (
                SELECT seq, row_number() OVER (ORDER BY start_time_ns, seq) AS pos
                FROM steps WHERE trace_id = ?
            ) WHERE seq IN (SELECT unnest(?))
            """,
            [trace_id, [int(s) for s in seqs]],
        )
        .fetchall()
    )
    return {int(s): int(p) for s, p in rows}
