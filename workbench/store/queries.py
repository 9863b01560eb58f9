"""Named queries: the only SQL that pages, the CLI and exports use, each returning frozen records."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb

from workbench.errors import WorkbenchError
from workbench.model import Step, StepKind, StoredStep, TraceSummary
from workbench.store.batch import STEP_COLUMNS, steps_table
from workbench.store.connection import Store
from workbench.store.explore_traces import TraceFilter, search_traces


def counts(store: Store) -> dict[str, int]:
    cur = store.cursor()
    out = {}
    for table in ("spans", "steps", "ledger", "ledger_checkpoints"):
        row = cur.execute(f"SELECT count(*) FROM {table}").fetchone()
        out[table] = int(row[0]) if row else 0
    row = cur.execute("SELECT count(DISTINCT trace_id) FROM spans").fetchone()
    out["traces"] = int(row[0]) if row else 0
    return out


_SUMMARY_FIELDS = tuple(f.name for f in dataclasses.fields(TraceSummary))


def list_traces(store: Store, limit: int = 100, offset: int = 0) -> list[TraceSummary]:
    """Traces, newest first: the trace search with no filter, as plain summaries (the CLI's and the API's
    shape). Token and cost totals skip agent spans, which repeat their children's sums."""
    rows = search_traces(store, TraceFilter(), limit=limit, offset=offset)
    return [TraceSummary(**{name: getattr(row, name) for name in _SUMMARY_FIELDS}) for row in rows]


def resolve_trace_id(store: Store, prefix: str) -> str:
    """A full trace id from a unique prefix, so a person can type the first few characters."""
    p = prefix.strip().lower()
    rows = (
        store.cursor()
        .execute("SELECT DISTINCT trace_id FROM steps WHERE starts_with(trace_id, ?) LIMIT 2", [p])
        .fetchall()
    )
    if not rows:
        raise WorkbenchError(f"no trace with id {prefix!r}")
    if len(rows) > 1:
        raise WorkbenchError(f"{prefix!r} matches several traces; give more characters")
    return str(rows[0][0])


_STEP_SELECT = "SELECT seq, " + ", ".join(STEP_COLUMNS) + " FROM steps"


def _to_stored(row: Sequence[Any]) -> StoredStep:
    values = dict(zip(STEP_COLUMNS, row[1:], strict=True))
    values["kind"] = StepKind(values["kind"])
    return StoredStep(seq=int(row[0]), step=Step(**values))


def trace_steps(store: Store, trace_id: str, limit: int | None = None, offset: int = 0) -> list[StoredStep]:
    """The steps of one trace in time order (ties broken by ingest order)."""
    sql = _STEP_SELECT + " WHERE trace_id = ? ORDER BY start_time_ns, seq"
    params: list[object] = [trace_id]
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params += [limit, offset]
    return [_to_stored(r) for r in store.cursor().execute(sql, params).fetchall()]


def step_by_span(store: Store, trace_id: str, span_id: str) -> StoredStep | None:
    row = store.cursor().execute(_STEP_SELECT + " WHERE trace_id = ? AND span_id = ?", [trace_id, span_id])
    found = row.fetchone()
    return _to_stored(found) if found else None


def iter_canonical(store: Store, chunk: int = 5_000) -> Iterator[list[tuple[int, bytes]]]:
    """(seq, canonical bytes) of every stored span in ingest order, a chunk at a time (bounded memory)."""
    cur = store.cursor()
    row = cur.execute("SELECT coalesce(min(seq), 1), coalesce(max(seq), 0) FROM spans").fetchone()
    lo, hi = (int(row[0]), int(row[1])) if row else (1, 0)
    start = lo
    while start <= hi:
        rows = cur.execute(
            "SELECT seq, canonical FROM spans WHERE seq BETWEEN ? AND ? ORDER BY seq",
            [start, start + chunk - 1],
        ).fetchall()
        if rows:
            yield [(int(s), bytes(c)) for s, c in rows]
        start += chunk


def replace_steps(store: Store, seqs: Sequence[int], steps: Sequence[Step]) -> None:
    """Overwrite the steps of these spans in one transaction (renormalize after a mapping fix)."""
    table = steps_table(seqs, steps)
    with store.write_lock:
        cur = store.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            cur.register("_steps_new", table)
            cur.execute("DELETE FROM steps WHERE seq IN (SELECT seq FROM _steps_new)")
            cur.execute("INSERT INTO steps BY NAME SELECT * FROM _steps_new")
            cur.execute("COMMIT")
        except duckdb.Error:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.unregister("_steps_new")
