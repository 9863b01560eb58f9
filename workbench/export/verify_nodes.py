"""Which tree a bundle line is proven against: the bundle's single tree, or (a lake bundle) the tree of
the node the line names, at its node-local index.

Why: a lake seals records per node (workbench/export/bundle_nodes.py), so verify must pick the node's
signed head for each line and name the node in what it reports; an embedded store's bundle has no
`node` on its lines and keeps its seq - 1 index into one tree.
"""

from __future__ import annotations

from typing import Any, Literal

from workbench.export.verify_base import VerifyResult
from workbench.store import ledger


def is_lake_bundle(manifest: dict[str, Any]) -> bool:
    """True when the manifest signs one tree head per node (an export from a lake)."""
    return bool(manifest.get("ledger", {}).get("nodes"))


def tree_of(
    manifest: dict[str, Any],
    rec: dict[str, Any],
    tree: Literal["spans", "entries"],
    default: tuple[int, bytes],
) -> tuple[int, int, bytes, str]:
    """(leaf index, tree size, root, "node X, " or "") for a proof line; `default` is the (size, root)
    of the single tree an embedded bundle's lines lead to. A line naming a node the manifest does not
    sign gets an empty tree, so its proof fails and the message names the node."""
    node = rec.get("node")
    if node is None:
        return int(rec["seq"]) - 1, default[0], default[1], ""
    for head in manifest.get("ledger", {}).get("nodes", []):
        if head.get("node") == node:
            facts = head if tree == "spans" else head.get("entries", {})
            return (
                int(rec["index"]),
                int(facts["tree_size"]),
                bytes.fromhex(facts["merkle_root"]),
                f"node {node}, ",
            )
    return int(rec["index"]), 0, b"", f"node {node} (not signed in the manifest), "


def check_node_chains(entries: list[dict[str, Any]], led: dict[str, Any], result: VerifyResult) -> None:
    """Each node's chain where the bundle holds neighbouring links: a line at node-local index i + 1
    continues the line at i, index 0 starts from the genesis value, and the node's last leaf carries its
    signed chain head. (A selection need not be contiguous per node; gaps are simply not chained.)"""
    heads = {h.get("node"): h for h in led.get("nodes", [])}
    last: dict[str, tuple[int, dict[str, Any]]] = {}
    for line_no, e in enumerate(entries, 1):
        node, index = e.get("node"), e.get("index")
        if node is None or index is None:
            result.add("proofs.jsonl", "a line of a lake bundle names no node or index", line_no)
            continue
        where = f"node {node}, seq {e['seq']}"
        head = heads.get(node)
        if head is None:
            result.add("proofs.jsonl", f"{where}: the manifest signs no tree head for this node", line_no)
            continue
        if index == 0 and e["chain_prev"] != ledger.GENESIS.hex():
            result.add("proofs.jsonl", f"{where}: the node's first link does not start from genesis", line_no)
        before = last.get(node)
        if before is not None and before[0] == index - 1 and e["chain_prev"] != before[1]["chain"]:
            result.add(
                "proofs.jsonl", f"{where}: chain does not continue from the node's line before", line_no
            )
        if before is not None and before[0] >= index:
            result.add("proofs.jsonl", f"{where}: node-local indexes are not increasing", line_no)
        if index == int(head.get("tree_size", 0)) - 1 and e["chain"] != head.get("chain_head"):
            result.add("proofs.jsonl", f"{where}: the node's last link is not its signed chain head", line_no)
        last[node] = (index, e)
    result.checked["nodes"] = len(heads)
