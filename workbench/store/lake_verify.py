"""`ledger verify` over a lake: every node's chain and Merkle checkpoints on their own, one report that
names the node of each bad entry ("node n2, seq 17: span modified ...").

Why per node: each node seals its own records in its own hash chain over its own slice of seqs
(`workbench.store.lake`), so a node's ledger is verified exactly as an embedded file's is, from the
genesis hash, by `workbench.store.verify.verify_ledger` restricted to that slice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from workbench.store import lake, verify_derived
from workbench.store.connection import Store
from workbench.store.verify import RowCheck, VerifyReport, stored_twice, verify_ledger
from workbench.store.verify_derived import StepDeriver

# Where verify's messages print a seq: "seq N", "checkpoint at N", "seq N..M".
_SEQ = re.compile(r"(?:(?<=seq )|(?<=at )|(?<=\.\.))\d+|\d+(?=\.\.)")


def verify_lake(
    store: Store,
    row_check: RowCheck | None = None,
    *,
    derive: StepDeriver | None = None,
    normalizer_version: str = "",
    log_check: RowCheck | None = None,
    derive_seqs: Sequence[int] | None = None,
    max_problems: int = 20,
) -> tuple[VerifyReport, list[tuple[str, VerifyReport]]]:
    """(everything together, per node) for every node that ever wrote to the lake."""
    total = VerifyReport()
    total.entries, total.entries_head, total.entry_problems = verify_derived.verify_entries(
        store, max_problems
    )
    per_node: list[tuple[str, VerifyReport]] = []
    nodes = lake.nodes(store)
    # Across nodes: a copy stored by another node lies in that node's slice of seqs.
    names = {node.node_index: node.node_id for node in nodes}

    def name_seq(seq: int) -> str:
        index, local = lake.split_seq(seq)
        return f"{local} (node {names.get(index, index)})"

    total.stored_twice, total.stored_twice_examples = stored_twice(store, max_problems, name_seq)
    for node in nodes:
        report = verify_ledger(
            store,
            row_check,
            max_problems=max_problems,
            derive=derive,
            normalizer_version=normalizer_version,
            derive_seqs=derive_seqs,
            log_check=log_check,
            seq_range=lake.seq_range(node.node_index),
        )
        prefix = f"node {node.node_id}, "
        report.problems = [(s, prefix + _local(p)) for s, p in report.problems]
        report.step_problems = [(s, prefix + _local(p)) for s, p in report.step_problems]
        per_node.append((node.node_id, report))
        total.checked += report.checked
        total.checkpoints += report.checkpoints
        total.problems += report.problems
        total.step_problems += report.step_problems
        total.chain_head = report.chain_head  # of the last node; per node in the second value
    return total, per_node


def _local(message: str) -> str:
    """ "seq 1099511627793: ..." -> "seq 17: ...": the node-local seq (the node is named in front)."""

    def one(m: re.Match[str]) -> str:
        seq = int(m.group(0))
        return str(lake.split_seq(seq)[1]) if seq >> lake.SEQ_BITS else m.group(0)

    return _SEQ.sub(one, message)
