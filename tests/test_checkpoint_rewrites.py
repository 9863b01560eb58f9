"""A checkpoint writes what is new and leaves the row groups already in the file alone.

Why: DuckDB's vacuum merges the small row groups at the end of a table at each checkpoint by
decompressing and compressing them again; with a 256 MB WAL every third checkpoint rewrote about a row
group (122,880 spans) and the checkpoint CPU per span grew with the store (issue #20). The writer turns
the merging off (`MAX_VACUUM_TASKS`); these tests read DuckDB's own storage map to see that the rows
of an earlier checkpoint keep their blocks, and that nothing is lost or changed by it.
"""

from __future__ import annotations

from pathlib import Path

from collectors import decode
from collectors.pipeline import IngestPipeline
from tests.otlp_payloads import tiny_batch
from workbench.store.connection import Store

_BLOCKS = (
    "SELECT row_group_id, list(DISTINCT block_id ORDER BY block_id) FROM pragma_storage_info('{table}')"
    " WHERE block_id >= 0 GROUP BY 1 ORDER BY 1"
)


def _blocks(store: Store, table: str) -> list[tuple[int, list[int]]]:
    return [(int(g), list(b)) for g, b in store.cursor().execute(_BLOCKS.format(table=table)).fetchall()]


def _ingest(pipeline: IngestPipeline, tag: str, n: int) -> None:
    result = decode.to_records(tiny_batch(tag, 0, n).message, 1 << 20)
    assert not result.errors
    assert pipeline.ingest(result.records, "test").accepted == n


def test_a_checkpoint_leaves_earlier_row_groups_where_they_are(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    pipeline = IngestPipeline(store)
    try:
        _ingest(pipeline, "first", 40)
        store.cursor().execute("CHECKPOINT")
        before = {t: _blocks(store, t) for t in ("spans", "steps", "ledger")}
        assert all(len(b) == 1 for b in before.values()), before
        _ingest(pipeline, "second", 40)
        store.cursor().execute("CHECKPOINT")
        for table, first in before.items():
            after = _blocks(store, table)
            # vacuum on, the two row groups of 40 rows are merged into one, on new blocks
            assert len(after) == 2, (table, after)
            assert after[0] == first[0], (table, first, after)
        rows = store.cursor().execute("SELECT count(*), count(DISTINCT seq), max(seq) FROM spans").fetchone()
        assert rows == (80, 80, 80)
    finally:
        pipeline.close()
        store.close()


def test_turning_merging_back_on_merges_what_was_left(tmp_path: Path) -> None:
    """The control: the same appends with DuckDB's default do merge, so the test above can fail."""
    store = Store(tmp_path / "db.duckdb")
    pipeline = IngestPipeline(store)
    try:
        store.cursor().execute("RESET max_vacuum_tasks")
        _ingest(pipeline, "first", 40)
        store.cursor().execute("CHECKPOINT")
        _ingest(pipeline, "second", 40)
        store.cursor().execute("CHECKPOINT")
        assert len(_blocks(store, "spans")) == 1
    finally:
        pipeline.close()
        store.close()
