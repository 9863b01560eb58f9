"""The few writes that differ in a lake, kept out of `writer.py` so the embedded path reads as before.

DuckLake has no primary keys, so `ON CONFLICT` upserts become a lookup and an update or insert (safe
because a node's group commits are serialized against other nodes' by `lake.touch`), and ledger rows
carry the id of the node whose chain they belong to. It has no sequences either, and `UPDATE ...
RETURNING` is not ours to rely on: ids of findings, annotations and probe runs come from the node's
slice (`next_ids`, the same `node_index << 40 | local` as its seqs, so they are unique across the lake
without coordination), and a write that may lose a catalog race runs whole under `atomic`, which retries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import duckdb

from workbench.store.connection import Store
from workbench.store.lake import retrying, rollback, touch

__all__ = [
    "atomic",
    "checkpoint_at_head",
    "count_redeliveries",
    "insert_checkpoint",
    "next_ids",
    "retrying",
    "rollback",
    "set_scan_watermark",
    "touch",
]

T = TypeVar("T")


def atomic(store: Store, work: Callable[[duckdb.DuckDBPyConnection], T], what: str) -> T:
    """`work(cur)` in one transaction under the store's write lock. In a lake a commit may lose a race
    with another node (DuckLake counts an update or delete as conflicting with their inserts), so the
    whole transaction is redone against the newer snapshot; `work` must therefore do its own lookups."""
    with store.write_lock:
        cur = store.cursor()

        def attempt() -> T:
            cur.execute("BEGIN TRANSACTION")
            try:
                out = work(cur)
                cur.execute("COMMIT")
            except BaseException:
                rollback(cur)
                raise
            return out

        return retrying(attempt, what) if store.is_lake else attempt()


def next_ids(cur: duckdb.DuckDBPyConnection, store: Store, tables: Sequence[str], n: int) -> list[int]:
    """`n` fresh ids from this node's slice, after the highest any of `tables` holds there (a finding
    keeps its id when retired, so findings and findings_retired share one counter). Recovered from the
    rows on every call: the caller holds the write lock and a transaction, and no other node writes
    ids in this slice, so nothing can take them in between."""
    lo, hi = store.seq_range
    union = " UNION ALL ".join(f"SELECT max(id) AS m FROM {t} WHERE id BETWEEN ? AND ?" for t in tables)
    row = cur.execute(
        f"SELECT coalesce(max(m), ?) FROM ({union})", [lo - 1, *[lo, hi] * len(tables)]
    ).fetchone()
    top = int(row[0]) if row else lo - 1
    if top + n > hi:
        raise RuntimeError(f"node {store.node_id} has used every id of its slice in {tables[0]}")
    return list(range(top + 1, top + 1 + n))


def set_scan_watermark(cur: duckdb.DuckDBPyConnection, store: Store, seq: int, digest: str) -> None:
    """The findings scan watermark; in a lake one row per node (id = node index), because each node
    catches up over its own slice of seqs."""
    if not store.is_lake:
        cur.execute(
            "INSERT OR REPLACE INTO findings_scan VALUES (1, ?, ?, ?)", [seq, digest, datetime.now(UTC)]
        )
        return
    now = datetime.now(UTC)
    if cur.execute("SELECT 1 FROM findings_scan WHERE id = ?", [store.node_index]).fetchone():
        cur.execute(
            "UPDATE findings_scan SET scanned_seq = ?, rules_digest = ?, updated_at = ? WHERE id = ?",
            [seq, digest, now, store.node_index],
        )
    else:
        cur.execute("INSERT INTO findings_scan VALUES (?, ?, ?, ?)", [store.node_index, seq, digest, now])


def insert_checkpoint(
    cur: duckdb.DuckDBPyConnection, store: Store, size: int, root: bytes, head: bytes, now: datetime
) -> None:
    """A Merkle checkpoint of this store's chain at seq `size` (in a lake, tagged with the node)."""
    if store.is_lake:
        cur.execute(
            "INSERT INTO ledger_checkpoints (tree_size, merkle_root, chain_head, created_at, node_id)"
            " VALUES (?, ?, ?, ?, ?)",
            [size, root, head, now, store.node_id],
        )
    else:
        cur.execute("INSERT INTO ledger_checkpoints VALUES (?, ?, ?, ?)", [size, root, head, now])


def checkpoint_at_head(
    cur: duckdb.DuckDBPyConnection, store: Store, size: int, root: bytes, head: bytes
) -> None:
    """A checkpoint at the node's head unless one is there already, in its own transaction."""

    def attempt() -> None:
        cur.execute("BEGIN TRANSACTION")
        try:
            there = cur.execute(
                "SELECT count(*) FROM ledger_checkpoints WHERE tree_size = ?", [size]
            ).fetchone()
            if not there or not there[0]:
                insert_checkpoint(cur, store, size, root, head, datetime.now(UTC))
                touch(cur, store, size)
            cur.execute("COMMIT")
        except BaseException:
            rollback(cur)
            raise

    retrying(attempt, "checkpoint")


def count_redeliveries(cur: duckdb.DuckDBPyConnection, redelivered: Counter[str]) -> None:
    """Add to delivery_stats' per-trace count of redelivered spans (one row per trace, as in a file)."""
    traces = sorted(redelivered)
    have = {
        str(t)
        for (t,) in cur.execute(
            "SELECT trace_id FROM delivery_stats WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))", [traces]
        ).fetchall()
    }
    for trace in traces:
        if trace in have:
            cur.execute(
                "UPDATE delivery_stats SET duplicate_spans = duplicate_spans + ? WHERE trace_id = ?",
                [redelivered[trace], trace],
            )
        else:
            cur.execute("INSERT INTO delivery_stats VALUES (?, ?)", [trace, redelivered[trace]])
