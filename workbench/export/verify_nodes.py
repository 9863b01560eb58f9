"""Which tree a bundle line is proven against: the bundle's single tree, or (a lake bundle) the tree of
the node the line names, at its node-local index.

Why: a lake seals records per node (workbench/export/bundle_nodes.py), so verify must pick the node's
signed head for each line and name the node in what it reports; an embedded store's bundle has no
`node` on its lines and keeps its seq - 1 index into one tree.
"""

from __future__ import annotations

from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from workbench.errors import WorkbenchError
from workbench.export.verify_base import VerifyResult
from workbench.store import lake_checkpoint, ledger


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
    for e in entries:
        line_no, node, index = e.get("line_no"), e.get("node"), e.get("index")
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


def check_lake_roots(led: dict[str, Any], result: VerifyResult) -> None:
    """The lake's latest signed root the bundle carries: its signature (by the key stored with it in the
    lake), each node's head in it equal to what the manifest restates, and each node's tree today an
    extension of that head (RFC 6962 consistency), so a node whose history was rewritten after the lake
    signed it fails here."""
    roots = led.get("lake_roots")
    if not roots:
        result.notes.append("no signed lake root in the bundle (none was committed before the export)")
        return
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(roots["public_key"])))
        signed = lake_checkpoint.parse(str(roots["note"]), key, "the lake's signed root (manifest)")
    except (KeyError, ValueError, WorkbenchError) as exc:
        result.add("manifest.json", f"lake root: {exc}")
        return
    heads = {h.get("node"): h for h in led.get("nodes", [])}
    for node_head in signed.heads:
        head = heads.get(node_head.node_id)
        where = f"node {node_head.node_id}"
        since = head.get("lake_root") if head is not None else None
        if head is None or since is None:
            result.add(
                "manifest.json", f"{where}: in the lake's signed root but its head is not in the bundle"
            )
            continue
        if (
            since.get("tree_size"),
            since.get("merkle_root"),
            since.get("entries_size"),
            since.get("entries_root"),
        ) != (
            node_head.size,
            node_head.root.hex(),
            node_head.entries_size,
            node_head.entries_root.hex(),
        ):
            result.add(
                "manifest.json", f"{where}: its head in the manifest is not the one the lake's root signs"
            )
            continue
        spans_ok = ledger.verify_consistency(
            node_head.size,
            int(head["tree_size"]),
            node_head.root,
            bytes.fromhex(head["merkle_root"]),
            [bytes.fromhex(p) for p in since.get("consistency", [])],
        )
        entries_ok = ledger.verify_consistency(
            node_head.entries_size,
            int(head["entries"]["tree_size"]),
            node_head.entries_root,
            bytes.fromhex(head["entries"]["merkle_root"]),
            [bytes.fromhex(p) for p in since.get("entries_consistency", [])],
        )
        if not (spans_ok and entries_ok):
            result.add(
                "manifest.json",
                f"{where}: its {'span' if not spans_ok else 'entries'} tree does not extend its head in the "
                "lake's signed root (history rewritten or cut)",
            )
    result.checked["lake_root_nodes"] = len(signed.heads)
