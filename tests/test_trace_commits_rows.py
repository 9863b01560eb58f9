"""`trace_commits.rows_of` (the writer's rows for one commit, built in Python) equals the DuckDB GROUP BY
it replaced, on any set of steps: the oracle is that statement, run by a real DuckDB on the same rows."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.store import trace_commits
from workbench.store.batch import arrow_stream
from workbench.store.connection import Store

# The statement the writer ran before rows_of (per trace: min start, min seq, max seq, by first seq).
ORACLE = (
    "SELECT trace_id, min(start_time_ns), min(seq), max(seq) FROM _wb_steps"
    " GROUP BY trace_id ORDER BY min(seq)"
)

steps_st = st.lists(
    st.tuples(
        st.sampled_from(["a" * 32, "b" * 32, "0af7651916cd43dd8448eb211c80319c", "é\x00", ""]),
        st.integers(-(2**63), 2**63 - 1),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(steps=steps_st, first=st.integers(1, 2**40), shuffle=st.randoms())
def test_rows_of_equals_the_group_by(
    steps: list[tuple[str, int]], first: int, shuffle: random.Random
) -> None:
    seqs = list(range(first, first + len(steps)))
    shuffle.shuffle(seqs)  # rows need not come in seq order
    table = pa.table(
        {
            "seq": pa.array(seqs, pa.int64()),
            "trace_id": pa.array([t for t, _ in steps], pa.string()),
            "start_time_ns": pa.array([s for _, s in steps], pa.int64()),
        }
    )
    con = duckdb.connect()
    _wb_steps = arrow_stream(table)  # noqa: F841 - read by DuckDB's replacement scan
    expected = con.execute(ORACLE).fetchall()
    got = trace_commits.rows_of(table)
    assert got.column_names == ["trace_id", "start_time_ns", "first_seq", "last_seq"]
    assert list(zip(*(got.column(c).to_pylist() for c in got.column_names), strict=True)) == expected


def test_the_writer_appends_one_row_per_trace_of_a_commit(tmp_path: Path) -> None:
    """Through a real store's table: the rows land with the table's column types, by name."""
    store = Store(tmp_path / "t.duckdb")
    store.migrate()
    cur = store.cursor()
    table = pa.table(
        {
            "seq": pa.array([5, 3, 4], pa.int64()),
            "trace_id": ["t1", "t2", "t1"],
            "start_time_ns": pa.array([10, 20, 7], pa.int64()),
        }
    )
    trace_commits.append(cur, table)
    assert cur.execute("SELECT * FROM trace_commits").fetchall() == [("t2", 20, 3, 3), ("t1", 7, 4, 5)]
    store.close()
