"""A bundle's proofs from a lake: each record proven against the tree of the node that sealed it.

Why: a lake keeps one hash chain and one Merkle tree per node (`workbench.store.export_nodes`), so an
exported span, log record or ledger entry carries `node` and its node-local `index`, and its audit path
leads to that node's tree head, which `manifest.ledger.nodes[]` signs with the node's chain head and
entries tree. The latest signed global root of the lake (`lake_roots`) rides along as its note, so an
auditor can also hold the nodes' heads against what the lake itself signed. An embedded store's bundle
keeps its single-ledger layout (bundle.py); verify picks the tree per line (verify_nodes.py).
"""

from __future__ import annotations

from typing import Any

from workbench.export.bundle_options import LedgerBroken
from workbench.store import lake_checkpoint, ledger
from workbench.store.connection import Store
from workbench.store.export_nodes import NodeLedger, node_ledgers


class LakeTrees:
    """Every node's span and entry trees, built once per export, and the proof fields of a seq."""

    def __init__(self, store: Store) -> None:
        self.nodes: list[NodeLedger] = node_ledgers(store)
        self._levels = [ledger.merkle_levels(n.digests) if n.digests else [] for n in self.nodes]
        self._entry_levels = [
            ledger.merkle_levels(n.entry_digests) if n.entry_digests else [] for n in self.nodes
        ]
        self._span_at = {seq: (k, i) for k, n in enumerate(self.nodes) for i, seq in enumerate(n.seqs)}
        self._entry_at = {seq: (k, i) for k, n in enumerate(self.nodes) for i, seq in enumerate(n.entry_seqs)}
        self.roots = lake_checkpoint.latest(store)

    def span(self, seq: int) -> dict[str, Any]:
        """node, node-local index, digest, chain link and audit path of the span (or log record) at seq."""
        k, i = self._span_at[seq]
        node = self.nodes[k]
        return {
            "node": node.node_id,
            "index": i,
            "digest": node.digests[i].hex(),
            "chain_prev": (node.chains[i - 1] if i else ledger.GENESIS).hex(),
            "chain": node.chains[i].hex(),
            "proof": [p.hex() for p in ledger.inclusion_path(self._levels[k], i)],
        }

    def digest(self, seq: int) -> bytes:
        """The ledger digest of the span or log record at seq."""
        k, i = self._span_at[seq]
        return self.nodes[k].digests[i]

    def entry(self, seq: int) -> dict[str, Any]:
        """node, node-local index, digest and audit path of the ledger entry at seq."""
        k, i = self._entry_at[seq]
        node = self.nodes[k]
        return {
            "node": node.node_id,
            "index": i,
            "digest": node.entry_digests[i].hex(),
            "proof": [p.hex() for p in ledger.inclusion_path(self._entry_levels[k], i)],
        }

    def manifest_nodes(self) -> list[dict[str, Any]]:
        """manifest.ledger.nodes[]: each node's span tree head, chain head and entries tree."""
        out = []
        for k, node in enumerate(self.nodes):
            levels, entry_levels = self._levels[k], self._entry_levels[k]
            signed = self.roots.root.head(node.node_id) if self.roots is not None else None
            out.append(
                {
                    "node": node.node_id,
                    "node_index": node.node_index,
                    "tree_size": len(node.digests),
                    "merkle_root": (ledger.levels_root(levels) if levels else ledger.merkle_root([])).hex(),
                    "chain_head": (node.chains[-1] if node.chains else ledger.GENESIS).hex(),
                    "entries": {
                        "tree_size": len(node.entry_digests),
                        "merkle_root": (
                            ledger.levels_root(entry_levels) if entry_levels else ledger.merkle_root([])
                        ).hex(),
                    },
                    "lake_root": _since_root(node.node_id, signed, levels, entry_levels),
                }
            )
        return out


def _since_root(
    node_id: str,
    signed: lake_checkpoint.NodeHead | None,
    levels: list[list[bytes]],
    entry_levels: list[list[bytes]],
) -> dict[str, Any] | None:
    """The node's head in the lake's latest signed root, and RFC 6962 consistency proofs from it to the
    node's trees today (None when no root names the node). Refuses a node whose tree today is smaller
    than what the lake signed: its tail was cut."""
    if signed is None:
        return None
    n, m = (len(levels[0]) if levels else 0), (len(entry_levels[0]) if entry_levels else 0)
    if signed.size > n or signed.entries_size > m:
        raise LedgerBroken(
            f"node {node_id}: its ledger is shorter than its head in the lake's signed root "
            f"({n} < {signed.size} spans or {m} < {signed.entries_size} entries). Run `workbench ledger "
            "verify`; nothing was exported"
        )
    spans = ledger.consistency_proof(signed.size, levels) if 0 < signed.size < n else []
    others = (
        ledger.consistency_proof(signed.entries_size, entry_levels) if 0 < signed.entries_size < m else []
    )
    empty = ledger.merkle_root([])
    if not (
        ledger.verify_consistency(
            signed.size, n, signed.root, ledger.levels_root(levels) if levels else empty, spans
        )
        and ledger.verify_consistency(
            signed.entries_size,
            m,
            signed.entries_root,
            ledger.levels_root(entry_levels) if entry_levels else empty,
            others,
        )
    ):
        raise LedgerBroken(
            f"node {node_id}: its ledger today does not extend its head in the lake's signed root "
            "(history rewritten). Run `workbench ledger verify`; nothing was exported"
        )
    return {
        "tree_size": signed.size,
        "merkle_root": signed.root.hex(),
        "consistency": [p.hex() for p in spans],
        "entries_size": signed.entries_size,
        "entries_root": signed.entries_root.hex(),
        "entries_consistency": [p.hex() for p in others],
    }


def lake_ledger(trees: LakeTrees) -> dict[str, Any]:
    """manifest.ledger of a lake bundle: no single covered tree or checkpoint, a head per node instead."""
    return {
        "hash": "sha256",
        "tree": "RFC 6962 (leaf H(0x00||digest), node H(0x01||l||r)) per node; digest = SHA-256(canonical "
        "span); each line's `node` names the tree and `index` its leaf",
        "nodes": trees.manifest_nodes(),
        "lake_roots": {
            "note": trees.roots.note,
            "signer_node": trees.roots.signer_node,
            "public_key": trees.roots.public_key.hex(),
        }
        if trees.roots is not None
        else None,
        "entries": {
            "tree": "RFC 6962 over each node's entry digests (nodes[].entries); digest = SHA-256(kind 0x00 "
            "ref 0x00 body) (workbench/store/entries.py)",
        },
    }
