"""Reading findings for the UI: per trace, filtered lists, and where flagged steps sit in a trace."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from workbench.model import Finding, Severity
from workbench.store.connection import Store

# -------------------------------------------------------------------------------------------- findings


_FINDING_COLUMNS = (
    "id, trace_id, step_seq, span_id, rule_id, severity, title, explanation, evidence_field, "
    "evidence_start, evidence_end, evidence_excerpt, taint_chain, details"
)


def _to_finding(r: Sequence[Any]) -> Finding:
    try:
        severity = Severity(r[5])
    except ValueError:
        severity = Severity.INFO  # an unknown severity still shows, at the bottom
    return Finding(
        id=int(r[0]),
        trace_id=r[1],
        step_seq=int(r[2]),
        span_id=r[3],
        rule_id=r[4],
        severity=severity,
        title=r[6],
        explanation=r[7],
        evidence_field=r[8],
        evidence_start=r[9],
        evidence_end=r[10],
        evidence_excerpt=r[11],
        taint_chain=tuple(int(x) for x in (json.loads(r[12]) if r[12] else [])),
        details=json.loads(r[13]) if r[13] else {},
    )


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
