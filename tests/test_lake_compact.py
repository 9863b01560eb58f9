"""Compaction of a lake (workbench/store/lake_compact.py) over a real PostgreSQL catalog and a real data
directory: many small commits leave many Parquet files; one compaction leaves few, loses no span, and every
node's ledger still verifies. Only one node compacts at a time (the catalog lease)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from collectors.pipeline import IngestPipeline
from tests.otlp_payloads import tiny_batch
from tests.test_lake import _records, _settings
from workbench.store import lake
from workbench.store.lake_compact import COMPACT_LEASE, compact_once
from workbench.store.lake_lease import LeaseTable
from workbench.store.lake_verify import verify_lake


def _parquet_files(data: Path) -> int:
    return len(list(data.rglob("*.parquet")))


def _files_per_table(data: Path) -> Counter[str]:
    """Parquet files per table directory (DuckLake writes <data>/main/<table>/*.parquet)."""
    return Counter(p.parent.name for p in data.rglob("*.parquet"))


def test_one_compaction_leaves_few_files_and_every_span(tmp_path: Path, postgres_dsn: str) -> None:
    settings = _settings(tmp_path, postgres_dsn, "n1")
    data = Path(settings.data_path or "")
    store = lake.open_lake(settings)
    leases = LeaseTable(postgres_dsn, "n1")
    other = LeaseTable(postgres_dsn, "n2")
    try:
        pipe = IngestPipeline(store)
        sent: set[tuple[str, str]] = set()
        for request in range(1, 13):
            batch = tiny_batch("small", request, 3)
            assert pipe.ingest(_records(batch.message), "t").accepted == 3
            sent.update(batch.keys)
            # each commit on its own Parquet files, as a lake with large commits and no compaction has
            store.cursor().execute("CALL ducklake_flush_inlined_data('lake')")
        pipe.close()
        before = _parquet_files(data)
        assert before > 2 * len(_files_per_table(data))  # several small files per table

        held = other.acquire(COMPACT_LEASE, 60)  # node 2 is compacting: node 1 leaves it alone
        assert held is not None
        assert compact_once(store, leases, keep_s=0) is None
        assert _parquet_files(data) == before
        other.release(held)

        report = compact_once(store, leases, keep_s=0)
        assert report is not None and report.merged_files > 0
        per_table = _files_per_table(data)
        assert set(per_table.values()) == {1}, per_table  # each table's rows in one file now

        stored = set(store.cursor().execute("SELECT trace_id, span_id FROM spans").fetchall())
        assert stored == sent
        verified, per_node = verify_lake(store)
        assert verified.ok, verified.all_problems
        assert [(name, r.checked) for name, r in per_node] == [("n1", len(sent))]
    finally:
        leases.close()
        other.close()
        store.close()
