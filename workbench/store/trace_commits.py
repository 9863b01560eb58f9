"""The `trace_commits` table (migration 0051): where each trace's steps lie, kept by whoever writes steps.

Why a module: three writers must agree on what a row means. The span writer appends one row per trace
of each group commit inside that commit's transaction (so a listing never sees steps without their
row, nor a row without its steps), `workbench renormalize` rebuilds the table after rewriting steps,
and a lake created before the table gets it filled once. A row is (trace id, min start time, min seq,
max seq) of that trace's steps in one commit; a trace's start is the min over its rows and its steps
all lie inside the union of its [first_seq, last_seq] ranges.

Derived, never evidence: the ledger, `ledger verify` and exports never read it (they read spans and
steps); it can be rebuilt from the steps at any time.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from workbench.store.batch import arrow_stream
from workbench.store.connection import Store

ROW_GROUP = 122_880  # DuckDB's rows per row group: the grain of a rebuilt row's seq range

REBUILD_SQL = (
    "INSERT INTO trace_commits SELECT trace_id, min(start_time_ns), min(seq), max(seq) FROM steps"
    f" GROUP BY trace_id, seq // {ROW_GROUP} ORDER BY min(seq)"
)
"""Rows for every stored step, one per trace and row group of seqs (as migration 0051 fills them)."""


def rows_of(steps: pa.Table) -> pa.Table:
    """This commit's rows for steps (seq, trace_id, start_time_ns columns): per trace, its min start
    and its seq range, in the order of their first seq (so the table's zone maps on seq stay tight).

    In Python, not a DuckDB GROUP BY over the Arrow stream: a commit holds a few hundred steps of a
    handful of traces, and DuckDB's aggregate and sort cost more to set up (about 0.6 against 0.4 ms a
    commit, `benchmarks/write_path.py`) than a loop over a few hundred values.
    """
    rows: dict[str, list[int]] = {}
    for seq, trace_id, start in zip(
        steps.column("seq").to_pylist(),
        steps.column("trace_id").to_pylist(),
        steps.column("start_time_ns").to_pylist(),
        strict=True,
    ):
        row = rows.get(trace_id)
        if row is None:
            rows[trace_id] = [start, seq, seq]
            continue
        row[0] = min(row[0], start)
        row[1] = min(row[1], seq)
        row[2] = max(row[2], seq)
    order = sorted(rows, key=lambda t: rows[t][1])
    return pa.table(
        {
            "trace_id": pa.array(order, pa.string()),
            "start_time_ns": pa.array([rows[t][0] for t in order], pa.int64()),
            "first_seq": pa.array([rows[t][1] for t in order], pa.int64()),
            "last_seq": pa.array([rows[t][2] for t in order], pa.int64()),
        }
    )


def append(cur: duckdb.DuckDBPyConnection, steps: pa.Table) -> None:
    """Add the rows of these just inserted steps (seq, trace_id, start_time_ns columns), inside the
    caller's transaction."""
    _wb_new_rows = arrow_stream(rows_of(steps))  # noqa: F841 - read by DuckDB's replacement scan
    cur.execute("INSERT INTO trace_commits BY NAME SELECT * FROM _wb_new_rows")


def refill(cur: duckdb.DuckDBPyConnection) -> None:
    """Replace every row from the stored steps, inside the caller's transaction."""
    cur.execute("DELETE FROM trace_commits")
    cur.execute(REBUILD_SQL)


def rebuild(store: Store) -> None:
    """Refill the table from the steps in one transaction (after `renormalize` rewrote them)."""
    with store.write_lock:
        cur = store.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                refill(cur)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        finally:
            cur.close()
