"""RFC 6962 proofs against the transparency-dev published vectors (tests/fixtures/rfc6962_vectors.json,
source named inside), plus exhaustive agreement with the ledger's original inclusion_proof."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from workbench.store import ledger

VECTORS = json.loads((Path(__file__).parent / "fixtures" / "rfc6962_vectors.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]


def test_vectors_name_their_source() -> None:
    assert "transparency-dev/merkle" in VECTORS["source"]


@pytest.mark.parametrize("size", range(1, 9))
def test_levels_root_matches_published_roots(size: int) -> None:
    levels = ledger.merkle_levels(LEAVES[:size])
    assert ledger.levels_root(levels) == ROOTS[size - 1]
    assert ledger.levels_root(ledger.merkle_levels([])) == bytes.fromhex(VECTORS["empty_root"])


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['leaf']}of{c['size']}")
def test_inclusion_paths_match_published(case: dict) -> None:
    levels = ledger.merkle_levels(LEAVES[: case["size"]])
    path = ledger.inclusion_path(levels, case["leaf"] - 1)
    assert [p.hex() for p in path] == case["proof"]
    assert ledger.verify_inclusion(
        case["leaf"] - 1, case["size"], LEAVES[case["leaf"] - 1], path, ROOTS[case["size"] - 1]
    )


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['size1']}to{c['size2']}")
def test_consistency_proofs_match_published(case: dict) -> None:
    m, n = case["size1"], case["size2"]
    proof = ledger.consistency_proof(m, ledger.merkle_levels(LEAVES[:n]))
    assert [p.hex() for p in proof] == case["proof"]
    published = [bytes.fromhex(p) for p in case["proof"]]
    assert ledger.verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], published)


@pytest.mark.parametrize(
    "case", [c for c in VECTORS["consistency"] if c["proof"]], ids=lambda c: f"{c['size1']}to{c['size2']}"
)
def test_corrupted_consistency_proofs_fail(case: dict) -> None:
    """The corruptions transparency-dev's own verifier test applies must all be refused."""
    m, n = case["size1"], case["size2"]
    r1, r2 = ROOTS[m - 1], ROOTS[n - 1]
    proof = [bytes.fromhex(p) for p in case["proof"]]
    some = hashlib.sha256(b"some").digest()
    bad = [
        (m - 1, n, r1, r2, proof),
        (m + 1, n, r1, r2, proof),
        (m ^ 2, n, r1, r2, proof),
        (m, n * 2, r1, r2, proof),
        (m, n // 2, r1, r2, proof),
        (m, n, some, r2, proof),
        (m, n, r1, some, proof),
        (m, n, r2, r1, proof),
        (m, n, r1, r2, []),
        (m, n, r1, r2, [*proof, b""]),
        (m, n, r1, r2, [*proof, r1]),
        (m, n, r1, r2, [r1, *proof]),
        (m, n, r1, r2, [proof[0], *proof]),
        (m, n, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        bad.append((m, n, r1, r2, flipped))
    for args in bad:
        assert not ledger.verify_consistency(*args), args


def test_every_prefix_and_leaf_of_small_trees() -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(33)]
    for n in range(1, 34):
        levels = ledger.merkle_levels(leaves[:n])
        root = ledger.levels_root(levels)
        assert root == ledger.merkle_root(leaves[:n])
        for i in range(n):
            assert ledger.inclusion_path(levels, i) == ledger.inclusion_proof(i, leaves[:n])
        for m in range(1, n + 1):
            proof = ledger.consistency_proof(m, levels)
            assert ledger.verify_consistency(m, n, ledger.merkle_root(leaves[:m]), root, proof)
            if m < n:
                assert not ledger.verify_consistency(m, n, ledger.merkle_root(leaves[1 : m + 1]), root, proof)
