"""The findings scanner in lake mode scans a trace only under its lease in the catalog (real PostgreSQL).

Node B holds the scan lease of one trace: node A's scanner scans everything else, leaves that trace
alone while B holds it, and scans it once B lets go.
"""

from __future__ import annotations

from pathlib import Path

from collectors import decode
from collectors.files import read_requests
from collectors.pipeline import IngestPipeline
from sample_traces.catalog import get
from tests.polling import wait_for
from workbench.policies.engine import build_engine
from workbench.policies.scanner import FindingsScanner
from workbench.store import findings as store_findings
from workbench.store.connection import Store
from workbench.store.lake_lease import LeaseTable, scan_lease_name


def _ingest(store: Store, *names: str) -> None:
    pipeline = IngestPipeline(store)
    try:
        for name in names:
            for _, req, _ in read_requests(get(name).path):
                pipeline.ingest(decode.to_records(req, 1 << 20).records, "test")
    finally:
        pipeline.close()


def test_a_trace_leased_by_another_node_waits_for_it(tmp_path: Path, postgres_dsn: str) -> None:
    busy, free = get("db_deletion").trace_id(), get("prompt_injection").trace_id()
    other = LeaseTable(postgres_dsn, "node-b")
    with Store(tmp_path / "w.duckdb") as store:
        _ingest(store, "db_deletion", "prompt_injection")
        held = other.acquire(scan_lease_name(busy))
        assert held is not None
        scanner = FindingsScanner(
            store, build_engine(), None, debounce_s=0.05, leases=LeaseTable(postgres_dsn, "node-a")
        )
        scanner.start()
        try:
            wait_for(lambda: store_findings.trace_findings(store, free), 30, what="the free trace's findings")
            # node A released the lease of the trace it scanned (just after storing its findings, so
            # waited for), and never took node B's
            wait_for(lambda: other.holder_of(scan_lease_name(free)) is None, 30, what="its lease released")
            assert other.holder_of(scan_lease_name(busy)) == "node-b"
            # while node B holds its lease, the busy trace has no findings, whenever we look
            assert store_findings.trace_findings(store, busy) == []
            other.release(held)
            wait_for(
                lambda: store_findings.trace_findings(store, busy), 30, what="findings of the released trace"
            )
            wait_for(lambda: scanner.idle.is_set(), 30, what="the scanner to go idle")
            # node A let go of the lease once it had scanned the trace
            assert other.holder_of(scan_lease_name(busy)) is None
        finally:
            scanner.stop()
            other.close()
