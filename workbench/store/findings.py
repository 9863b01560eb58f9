"""Named queries for findings: the policy engine writes them per trace, the CLI, UI and export read them.

Findings are derived data: the rules can always recompute them from the steps. A scan gives a trace's
whole new set; findings already stored with the same content stay, new ones are inserted and sealed in
the ledger ('finding' entries), and ones the scan no longer raises move to findings_retired with an
appended 'finding-retired' entry: never a silent delete (workbench/store/entries.py). The scan
watermark moves in that same transaction, so a crash can never leave a trace marked scanned without
its findings.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from workbench.model import Finding, Severity
from workbench.store import entries, lake_writes
from workbench.store.connection import Store

_COLUMNS = (
    "id, trace_id, step_seq, span_id, rule_id, severity, title, explanation, evidence_field, "
    "evidence_start, evidence_end, evidence_excerpt, taint_chain, details"
)

# Severity order inside SQL, so `--min-severity` filters and sorts in the database.
# A finding's rank in SQL, from the one ordered Severity declaration (used wherever SQL sorts by it).
SEVERITY_RANK_SQL = (
    "CASE severity " + " ".join(f"WHEN '{s.value}' THEN {s.rank}" for s in Severity) + " ELSE -1 END"
)
_RANK_SQL = SEVERITY_RANK_SQL


def _to_finding(row: Sequence[Any]) -> Finding:
    return Finding(
        id=int(row[0]),
        trace_id=row[1],
        step_seq=int(row[2]),
        span_id=row[3],
        rule_id=row[4],
        severity=Severity(row[5]),
        title=row[6],
        explanation=row[7],
        evidence_field=row[8],
        evidence_start=row[9],
        evidence_end=row[10],
        evidence_excerpt=row[11],
        taint_chain=tuple(int(s) for s in json.loads(row[12] or "[]")),
        details=json.loads(row[13] or "{}"),
    )


def _table(findings: Sequence[Finding], now: datetime) -> pa.Table:
    return pa.table(
        {
            "trace_id": pa.array([f.trace_id for f in findings], pa.string()),
            "step_seq": pa.array([f.step_seq for f in findings], pa.int64()),
            "span_id": pa.array([f.span_id for f in findings], pa.string()),
            "rule_id": pa.array([f.rule_id for f in findings], pa.string()),
            "severity": pa.array([str(f.severity) for f in findings], pa.string()),
            "title": pa.array([f.title for f in findings], pa.string()),
            "explanation": pa.array([f.explanation for f in findings], pa.string()),
            "evidence_field": pa.array([f.evidence_field for f in findings], pa.string()),
            "evidence_start": pa.array([f.evidence_start for f in findings], pa.int32()),
            "evidence_end": pa.array([f.evidence_end for f in findings], pa.int32()),
            "evidence_excerpt": pa.array([f.evidence_excerpt for f in findings], pa.string()),
            "taint_chain": pa.array([json.dumps(list(f.taint_chain)) for f in findings], pa.string()),
            "details": pa.array([json.dumps(f.details, default=str) for f in findings], pa.string()),
            "created_at": pa.array([now] * len(findings), pa.timestamp("us", tz="UTC")),
        }
    )


def replace_findings(
    store: Store,
    by_trace: Mapping[str, Sequence[Finding]],
    *,
    watermark: int | None = None,
    rules_digest: str | None = None,
) -> int:
    """Replace the findings of every trace in `by_trace` (an empty list clears a trace) in one transaction,
    and move the scan watermark there too when given. Returns the number of findings written."""
    rows = [f for findings in by_trace.values() for f in findings]

    def work(cur: duckdb.DuckDBPyConnection) -> None:
        if by_trace:
            _supersede(cur, store, list(by_trace), rows)
        if watermark is not None:
            lake_writes.set_scan_watermark(cur, store, watermark, rules_digest or "")

    lake_writes.atomic(store, work, "writing findings")
    return len(rows)


def _supersede(
    cur: duckdb.DuckDBPyConnection, store: Store, trace_ids: list[str], rows: Sequence[Finding]
) -> int:
    """Make the stored findings of these traces equal `rows`, appending ledger entries for each change;
    returns how many findings were inserted."""
    known = _known_traces(cur, store)
    looked_up = trace_ids if known is None else [t for t in trace_ids if t in known.traces]
    where = "trace_id IN (SELECT unnest(?::VARCHAR[]))"
    old = entries.bodies(cur, "findings", entries.FINDING_BODY, "id", where, [looked_up]) if looked_up else {}
    table = _table(rows, datetime.now(UTC))
    cur.register("_findings_new", table)
    try:
        fresh = [
            str(b) for (b,) in cur.execute(f"SELECT {entries.FINDING_BODY} FROM _findings_new").fetchall()
        ]
        unmatched: dict[str, list[str]] = {}
        for ref, body in old.items():
            unmatched.setdefault(body, []).append(ref)
        insert = []
        for i, body in enumerate(fresh):
            same = unmatched.get(body)
            if same:
                same.pop()  # already stored with this content: keep it as it is
            else:
                insert.append(i)
        retire = [int(ref) for refs in unmatched.values() for ref in refs]
        new_ids: list[int] = []
        sealed: dict[str, str] = {}  # id -> the body its 'finding' entry seals, from the stored row
        if insert:
            chosen = table.take(pa.array(insert, pa.int64()))
            if store.is_lake:  # no sequences in DuckLake: ids from this node's slice
                ids = lake_writes.next_ids(cur, store, ("findings", "findings_retired"), len(insert))
                chosen = chosen.append_column("id", pa.array(ids, pa.int64()))
            cur.register("_findings_insert", chosen)
            try:
                if store.is_lake:
                    cur.execute("INSERT INTO findings BY NAME SELECT * FROM _findings_insert")
                    got: list[tuple[Any, ...]] = [(i,) for i in ids]
                else:  # the bodies from the rows as stored, without reading the table again by id
                    got = cur.execute(
                        "INSERT INTO findings BY NAME SELECT * FROM _findings_insert"
                        f" RETURNING id, {entries.FINDING_BODY}"
                    ).fetchall()
                    sealed = {str(r[0]): str(r[1]) for r in got}
            finally:
                cur.unregister("_findings_insert")
            new_ids = [int(r[0]) for r in got]
    finally:
        cur.unregister("_findings_new")
    log: list[tuple[str, str, str]] = []
    if retire:
        params = [retire]
        cur.execute(
            "INSERT INTO findings_retired SELECT *, now() FROM findings"
            " WHERE id IN (SELECT unnest(?::BIGINT[]))",
            params,
        )
        cur.execute("DELETE FROM findings WHERE id IN (SELECT unnest(?::BIGINT[]))", params)
        log += [(entries.FINDING_RETIRED, str(i), old[str(i)]) for i in sorted(retire)]
    if new_ids and not sealed:  # a lake: no RETURNING
        sealed = entries.bodies(
            cur, "findings", entries.FINDING_BODY, "id", "id IN (SELECT unnest(?::BIGINT[]))", [new_ids]
        )
    log += [(entries.FINDING, str(i), sealed[str(i)]) for i in sorted(new_ids)]
    entries.append(cur, log, store)
    if known is not None:  # kept a superset: a trace stays in it after its findings are retired
        known.traces.update(f.trace_id for f in (rows[i] for i in insert))
        known.count += len(new_ids) - len(retire)
    return len(new_ids)


@dataclass
class _Traces:
    traces: set[str]  # every trace with a stored finding (and maybe some whose findings were retired)
    count: int  # rows of the findings table this set was checked against


# Per database file, in this process: the traces that have findings. Why: a scan replaces the findings of
# the traces it read, and finding their old ones was a `trace_id IN (...)` over the whole findings table
# (no index), the part of each scan that grew with the store (0.6% of the server's samples at 100k spans,
# 4.0% at 1M). Most scanned traces are new and have none; they are no longer looked up.
_KNOWN: dict[Path, _Traces] = {}
_KNOWN_LOCK = threading.Lock()


def _known_traces(cur: duckdb.DuckDBPyConnection, store: Store) -> _Traces | None:
    """The set for this file, checked against the findings table's row count, which every write here
    keeps in step: any other writer (another process before this one opened the file, SQL by hand)
    changes the count and the set is read again. None in a lake (other nodes write findings too) and for
    a store that is not a file."""
    if store.is_lake or not store.path.is_file():
        return None
    row = cur.execute("SELECT count(*) FROM findings").fetchone()
    count = int(row[0]) if row else 0
    key = store.path.resolve()
    with _KNOWN_LOCK:
        known = _KNOWN.get(key)
        if known is None or known.count != count:
            traces = {str(r[0]) for r in cur.execute("SELECT DISTINCT trace_id FROM findings").fetchall()}
            known = _KNOWN[key] = _Traces(traces, count)
        return known


def scan_watermark(store: Store) -> tuple[int, str]:
    """(highest step seq covered by a scan, digest of the rule configuration used); (0, '') before any."""
    key = store.node_index if store.is_lake else 1  # in a lake, this node's own watermark
    row = (
        store.cursor()
        .execute("SELECT scanned_seq, rules_digest FROM findings_scan WHERE id = ?", [key])
        .fetchone()
    )
    return (int(row[0]), str(row[1])) if row else (store.seq_range[0] - 1, "")


def max_step_seq(store: Store) -> int:
    """The highest span or log record seq: a conflicting span version has no step, and a GenAI event
    changes its span's step, but both must still bring a rescan."""
    lo, hi = store.seq_range  # in a lake node, its own slice: each node catches up over what it wrote
    row = (
        store.cursor()
        .execute(
            "SELECT greatest((SELECT coalesce(max(seq), 0) FROM spans WHERE seq BETWEEN ? AND ?),"
            " (SELECT coalesce(max(seq), 0) FROM logs WHERE seq BETWEEN ? AND ?))",
            [lo, hi, lo, hi],
        )
        .fetchone()
    )
    return int(row[0]) if row else 0


def traces_in_range(store: Store, first_seq: int, last_seq: int) -> list[str]:
    """Traces with a span or a log record in [first_seq, last_seq]: the ones a commit of that range
    touched (a log record may have filled a step of its trace with content from GenAI events)."""
    rows = (
        store.cursor()
        .execute(
            "SELECT trace_id FROM spans WHERE seq BETWEEN ? AND ?"
            " UNION SELECT trace_id FROM logs WHERE seq BETWEEN ? AND ? AND trace_id <> ''"
            " ORDER BY trace_id",
            [first_seq, last_seq, first_seq, last_seq],
        )
        .fetchall()
    )
    return [r[0] for r in rows]


def trace_findings(store: Store, trace_id: str) -> list[Finding]:
    """A trace's findings in step order, most severe first within a step."""
    rows = (
        store.cursor()
        .execute(
            f"SELECT {_COLUMNS} FROM findings WHERE trace_id = ? ORDER BY step_seq, {_RANK_SQL} DESC, id",
            [trace_id],
        )
        .fetchall()
    )
    return [_to_finding(r) for r in rows]


def step_findings(store: Store, trace_id: str, step_seq: int) -> list[Finding]:
    """The findings raised on one step, most severe first."""
    rows = (
        store.cursor()
        .execute(
            f"SELECT {_COLUMNS} FROM findings WHERE trace_id = ? AND step_seq = ? "
            f"ORDER BY {_RANK_SQL} DESC, id",
            [trace_id, step_seq],
        )
        .fetchall()
    )
    return [_to_finding(r) for r in rows]


def counts_by_trace(store: Store, trace_ids: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
    """{trace_id: {severity: count}} for the trace list; traces without findings are absent."""
    sql = "SELECT trace_id, severity, count(*) FROM findings"
    params: list[object] = []
    if trace_ids is not None:
        sql += " WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(trace_ids))
    sql += " GROUP BY trace_id, severity"
    out: dict[str, dict[str, int]] = {}
    for trace_id, severity, n in store.cursor().execute(sql, params).fetchall():
        out.setdefault(trace_id, {})[severity] = int(n)
    return out


def list_findings(
    store: Store,
    *,
    trace_id: str | None = None,
    min_severity: Severity | None = None,
    rule_id: str | None = None,
    limit: int | None = 1000,
    offset: int = 0,
) -> list[Finding]:
    """Findings across traces, most severe first, then by trace and step: the Findings page and CLI."""
    where: list[str] = []
    params: list[object] = []
    if trace_id is not None:
        where.append("trace_id = ?")
        params.append(trace_id)
    if min_severity is not None:
        where.append(f"{_RANK_SQL} >= ?")
        params.append(min_severity.rank)
    if rule_id is not None:
        where.append("rule_id = ?")
        params.append(rule_id)
    sql = f"SELECT {_COLUMNS} FROM findings"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {_RANK_SQL} DESC, trace_id, step_seq, id"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params += [limit, offset]
    return [_to_finding(r) for r in store.cursor().execute(sql, params).fetchall()]
