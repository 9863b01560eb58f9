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


# Batch proofs and consistency proofs. Why separate from inclusion_proof above: that one recomputes
# subtree roots from the leaves for every proof (O(n) each), fine for one span but quadratic for an
# export that proves every span of a 100,000-span range. These build the tree once.


def merkle_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the RFC 6962 tree over `leaves` (leaf data), leaf hashes first, root last.

    Built bottom-up, promoting an unpaired last node unchanged to the level above: that yields exactly
    the RFC 6962 tree (left subtree = the largest power of two below n), so each stored node is the
    hash of a perfect, aligned subtree or the right edge of the tree.
    """
    level = [leaf_hash(leaf) for leaf in leaves]
    levels = [level]
    while len(level) > 1:
        pairs = len(level) // 2
        nxt = [node_hash(level[2 * i], level[2 * i + 1]) for i in range(pairs)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def levels_root(levels: Sequence[Sequence[bytes]]) -> bytes:
    """The root of a tree built by merkle_levels (the empty tree's root for no leaves)."""
    if not levels or not levels[0]:
        return hashlib.sha256(b"").digest()
    return levels[-1][0]


def inclusion_path(levels: Sequence[Sequence[bytes]], index: int) -> list[bytes]:
    """RFC 6962 audit path for leaf `index` (0-based) from prebuilt levels: O(log n)."""
    size = len(levels[0]) if levels else 0
    if not 0 <= index < size:
        raise IndexError(f"leaf {index} is outside a tree of {size}")
    out = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            out.append(level[sibling])
        index >>= 1
    return out


def _subtree_hash(levels: Sequence[Sequence[bytes]], lo: int, hi: int) -> bytes:
    """MTH of leaves[lo:hi] from prebuilt levels, for the subtrees RFC 6962 proofs ask about."""
    n = hi - lo
    if n & (n - 1) == 0 and lo % n == 0:  # a perfect, aligned subtree is stored as it is
        return levels[n.bit_length() - 1][lo // n]
    k = _largest_power_of_two_below(n)
    return node_hash(_subtree_hash(levels, lo, lo + k), _subtree_hash(levels, lo + k, hi))


def consistency_proof(first: int, levels: Sequence[Sequence[bytes]]) -> list[bytes]:
    """RFC 6962 section 2.1.2 PROOF(first, D[n]): the tree of size `first` is a prefix of this one."""
    n = len(levels[0]) if levels else 0
    if not 0 < first <= n:
        raise ValueError(f"no consistency proof from size {first} to a tree of {n}")

    def sub(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        size = hi - lo
        if m == size:
            return [] if complete else [_subtree_hash(levels, lo, hi)]
        k = _largest_power_of_two_below(size)
        if m <= k:
            return sub(m, lo, lo + k, complete) + [_subtree_hash(levels, lo + k, hi)]
        return sub(m - k, lo + k, hi, False) + [_subtree_hash(levels, lo, lo + k)]

    return sub(first, 0, n, True)


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check that the tree of size `first` with `first_root` is a prefix of the one of size `second`.

    Algorithm of RFC 9162 section 2.1.4.2; a tree of size 0 is a prefix of every tree (empty proof).
    """
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree is itself a node of the second
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = fh = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            fh = node_hash(c, fh)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            fh = node_hash(fh, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and fh == second_root
