"""The few writes that differ in a lake, kept out of `writer.py` so the embedded path reads as before.

DuckLake has no primary keys, so `ON CONFLICT` upserts become a lookup and an update or insert (safe
because a node's group commits are serialized against other nodes' by `lake.touch`), and ledger rows
carry the id of the node whose chain they belong to.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import duckdb

from workbench.store.connection import Store
from workbench.store.lake import retrying, rollback, touch

__all__ = ["checkpoint_at_head", "count_redeliveries", "insert_checkpoint", "retrying", "rollback", "touch"]


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
