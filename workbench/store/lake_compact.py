"""Compaction of a lake: small commits become few Parquet files, and files no snapshot needs are deleted.

Why: a node's group commits below `lake.INLINE_ROW_LIMIT` rows are inlined into the PostgreSQL catalog,
and larger ones each write Parquet files of their own, so a busy lake grows catalog rows and thousands
of small files that make every read slower. DuckLake gives the pieces (names as of 1.5.5):
`ducklake_flush_inlined_data` writes inlined rows to Parquet, `ducklake_rewrite_data_files` rewrites
files that are mostly deleted rows, `ducklake_merge_adjacent_files` merges small files of a table,
`ducklake_expire_snapshots` forgets snapshots older than a horizon (we read only the current one; no
time travel), and `ducklake_cleanup_old_files` deletes the files only expired snapshots referenced.
None of it changes a row, so every chain and Merkle tree verifies as before.

Only one node compacts at a time, under the catalog lease `compact:lake`: two nodes merging the same
files would conflict and redo the work. `LakeCompactionService` runs it inside `serve --lake` every
`lake_compact_every` seconds.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from workbench.store.connection import Store
from workbench.store.lake import retrying
from workbench.store.lake_lease import LeaseTable

log = logging.getLogger(__name__)

COMPACT_LEASE = "compact:lake"
# Far longer than a compaction; a node that dies compacting blocks the others only this long.
COMPACT_LEASE_S = 1800.0
# A file with at least this fraction of its rows deleted is rewritten without them (merging skips files
# with deletes): lake_nodes, updated by every group commit, is all such files.
REWRITE_THRESHOLD = 0.5


@dataclass(frozen=True)
class CompactReport:
    flushed_rows: int  # inlined rows written to Parquet
    rewritten_files: int  # files rewritten without their deleted rows
    merged_files: int  # small files merged into larger ones
    expired_snapshots: int
    deleted_files: int


def compact(store: Store, keep_s: float = 3600.0) -> CompactReport:
    """Flush inlined rows, merge small files, expire snapshots older than `keep_s` seconds (a reader
    still on an older snapshot keeps its files until then) and delete the files nothing references."""
    if not store.is_lake:
        raise ValueError("compaction is for a lake store")
    if not keep_s >= 0:
        raise ValueError(f"keep_s must be zero or more, not {keep_s!r}")
    horizon = f"now() - INTERVAL '{float(keep_s)} seconds'"
    cur = store.cursor()
    with store.write_lock:  # not interleaved with this node's own group commits
        flushed = retrying(
            lambda: cur.execute("CALL ducklake_flush_inlined_data('lake')").fetchall(),
            "flushing inlined rows",
        )
        rewritten = retrying(  # files mostly deleted (lake_nodes is updated by every commit)
            lambda: cur.execute(
                f"CALL ducklake_rewrite_data_files('lake', delete_threshold => {REWRITE_THRESHOLD})"
            ).fetchall(),
            "rewriting files with deletes",
        )
        merged = retrying(
            lambda: cur.execute("CALL ducklake_merge_adjacent_files('lake')").fetchall(), "merging files"
        )
        expired = retrying(
            lambda: cur.execute(
                f"CALL ducklake_expire_snapshots('lake', older_than => {horizon})"
            ).fetchall(),
            "expiring snapshots",
        )
        deleted = retrying(
            lambda: cur.execute(
                f"CALL ducklake_cleanup_old_files('lake', older_than => {horizon})"
            ).fetchall(),
            "deleting old files",
        )
    return CompactReport(
        flushed_rows=sum(int(r[-1] or 0) for r in flushed),
        rewritten_files=len(rewritten),
        merged_files=sum(int(r[2] or 0) for r in merged),
        expired_snapshots=len(expired),
        deleted_files=len(deleted),
    )


def compact_once(store: Store, leases: LeaseTable, keep_s: float = 3600.0) -> CompactReport | None:
    """`compact` under the lake's compaction lease; None when another node is compacting now."""
    lease = leases.acquire(COMPACT_LEASE, COMPACT_LEASE_S)
    if lease is None:
        return None
    try:
        return compact(store, keep_s)
    finally:
        leases.release(lease)


class LakeCompactionService:
    """A `workbench.server.Service` of `serve --lake`: compacts the lake every `every_s` seconds, when
    no other node is at it."""

    name = "lake-compaction"

    def __init__(self, store: Store, catalog: str, every_s: float, keep_s: float = 3600.0) -> None:
        self.store = store
        self.catalog = catalog
        self.every_s = every_s
        self.keep_s = keep_s
        self.runs = 0  # compactions this node did
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lake-compaction", daemon=True)
        self._leases: LeaseTable | None = None

    def start(self) -> None:
        self._leases = LeaseTable(self.catalog, self.store.node_id or "node")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        if self._leases is not None and not self._thread.is_alive():
            self._leases.close()

    def _run(self) -> None:
        assert self._leases is not None
        while not self._stop.wait(self.every_s):
            try:
                report = compact_once(self.store, self._leases, self.keep_s)
            except Exception:  # the next interval tries again; ingest is not affected
                log.exception("lake compaction failed")
                continue
            if report is not None:
                self.runs += 1
                log.info("lake compaction: %s", report)
