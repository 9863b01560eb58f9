"""The tamper-evident ledger: a SHA-256 hash chain over spans in ingest order, plus RFC 6962 Merkle trees.

Pure functions, no I/O. The chain makes any edit, deletion, insertion or reordering visible from the
first bad position onwards; the Merkle roots in checkpoints let an auditor check one span's inclusion
(and one checkpoint's consistency with a later one) without the whole log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

GENESIS = bytes(32)  # chain_0: the value chained before the first span
_LEAF = b"\x00"
_NODE = b"\x01"


def digest(canonical: bytes) -> bytes:
    """SHA-256 of one span's canonical bytes."""
    return hashlib.sha256(canonical).digest()


def chain_next(previous: bytes, span_digest: bytes) -> bytes:
    """chain_i = H(chain_{i-1} || digest_i)."""
    return hashlib.sha256(previous + span_digest).digest()


def leaf_hash(span_digest: bytes) -> bytes:
    """RFC 6962 leaf hash: H(0x00 || d)."""
    return hashlib.sha256(_LEAF + span_digest).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node: H(0x01 || left || right)."""
    return hashlib.sha256(_NODE + left + right).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash of the given leaf data (the span digests, not yet leaf-hashed)."""
    frontier = MerkleFrontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


class MerkleFrontier:
    """The roots of the perfect subtrees of a growing RFC 6962 tree: O(log n) state, O(1) amortized append.

    Why: checkpoints need the root of every span ever ingested; recomputing it from all leaves would
    make each checkpoint cost O(n).
    """

    __slots__ = ("_nodes", "size")

    def __init__(self) -> None:
        self._nodes: list[tuple[int, bytes]] = []  # (height, hash), heights strictly decreasing
        self.size = 0

    def append(self, span_digest: bytes) -> None:
        node = (0, leaf_hash(span_digest))
        while self._nodes and self._nodes[-1][0] == node[0]:
            height, left = self._nodes.pop()
            node = (height + 1, node_hash(left, node[1]))
        self._nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        if not self._nodes:
            return hashlib.sha256(b"").digest()
        acc = self._nodes[-1][1]
        for _, left in reversed(self._nodes[:-1]):
            acc = node_hash(left, acc)
        return acc

    def copy(self) -> MerkleFrontier:
        other = MerkleFrontier()
        other._nodes = list(self._nodes)
        other.size = self.size
        return other


def _largest_power_of_two_below(n: int) -> int:
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def _subtree_root(leaves: Sequence[bytes]) -> bytes:
    return merkle_root(leaves)


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 audit path for leaf `index` (0-based) in the tree over `leaves` (span digests)."""
    n = len(leaves)
    if not 0 <= index < n:
        raise IndexError(f"leaf {index} is outside a tree of {n}")
    if n == 1:
        return []
    k = _largest_power_of_two_below(n)
    if index < k:
        return inclusion_proof(index, leaves[:k]) + [_subtree_root(leaves[k:])]
    return inclusion_proof(index - k, leaves[k:]) + [_subtree_root(leaves[:k])]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """Check an audit path; `leaf` is the span digest. Algorithm of RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def replay_chain(digests: Iterable[bytes], start: bytes = GENESIS) -> list[bytes]:
    """The chain values after each digest, starting from `start`."""
    out = []
    acc = start
    for d in digests:
        acc = chain_next(acc, d)
        out.append(acc)
    return out
