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

APPEND_SQL = (
    "INSERT INTO trace_commits SELECT trace_id, min(start_time_ns), min(seq), max(seq) FROM {steps}"
    " GROUP BY trace_id ORDER BY min(seq)"
)
"""Rows for steps just inserted; `{steps}` names the table or Arrow replacement scan holding them."""

REBUILD_SQL = (
    "INSERT INTO trace_commits SELECT trace_id, min(start_time_ns), min(seq), max(seq) FROM steps"
    f" GROUP BY trace_id, seq // {ROW_GROUP} ORDER BY min(seq)"
)
"""Rows for every stored step, one per trace and row group of seqs (as migration 0051 fills them)."""


def append(cur: duckdb.DuckDBPyConnection, steps: pa.Table) -> None:
    """Add the rows of these just inserted steps (seq, trace_id, start_time_ns columns), inside the
    caller's transaction."""
    columns = steps.select(["seq", "trace_id", "start_time_ns"])
    _wb_new_steps = arrow_stream(columns)  # noqa: F841 - read by DuckDB's replacement scan
    cur.execute(APPEND_SQL.format(steps="_wb_new_steps"))


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
