"""Per-node ledgers of a lake, as an export needs them: each node's span digests and chain values, and
its entry digests, in that node's own order.

Why per node: in a lake every node seals its records in its own hash chain and Merkle tree over its own
slice of seqs (`workbench.store.lake`), so a bundle proves each exported record against the tree of the
node that sealed it, at its node-local index, never against one lake-wide tree that nobody signed.
"""

from __future__ import annotations

from typing import NamedTuple

from workbench.store import lake
from workbench.store.connection import Store


class NodeLedger(NamedTuple):
    """One node's two ledgers: span seqs with their digests and chain values, entry seqs with digests
    (index i of each list is the node-local index i, the leaf i of that node's tree)."""

    node_id: str
    node_index: int
    seqs: list[int]
    digests: list[bytes]
    chains: list[bytes]
    entry_seqs: list[int]
    entry_digests: list[bytes]


def node_ledgers(store: Store) -> list[NodeLedger]:
    """Every node that ever wrote to the lake, with its span ledger slice and its entries, in seq order."""
    cur = store.cursor()
    out: list[NodeLedger] = []
    for node in lake.nodes(store):
        lo, hi = lake.seq_range(node.node_index)
        rows = cur.execute(
            "SELECT seq, digest, chain FROM ledger WHERE seq BETWEEN ? AND ? ORDER BY seq", [lo, hi]
        ).fetchall()
        entry_rows = cur.execute(
            "SELECT seq, digest FROM ledger_entries WHERE node_id = ? ORDER BY seq", [node.node_id]
        ).fetchall()
        out.append(
            NodeLedger(
                node.node_id,
                node.node_index,
                [int(r[0]) for r in rows],
                [bytes(r[1]) for r in rows],
                [bytes(r[2]) for r in rows],
                [int(r[0]) for r in entry_rows],
                [bytes(r[1]) for r in entry_rows],
            )
        )
    return out
