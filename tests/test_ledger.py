"""The ledger's hashing against the published RFC 6962 vectors (certificate-transparency suite)."""

from __future__ import annotations

import random

import pytest

from workbench.store import ledger

# The reference leaves and tree heads used by every RFC 6962 implementation's tests.
LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (0-based leaf index, tree size, audit path) from the same reference suite.
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
]


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_merkle_root_matches_rfc6962_reference(size: int) -> None:
    assert ledger.merkle_root(LEAVES[:size]).hex() == ROOTS[size]


def test_frontier_gives_the_same_root_at_every_size() -> None:
    frontier = ledger.MerkleFrontier()
    for size in range(1, len(LEAVES) + 1):
        frontier.append(LEAVES[size - 1])
        assert frontier.root().hex() == ROOTS[size]
        assert frontier.size == size


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proof_matches_reference(index: int, size: int, path: list[str]) -> None:
    proof = ledger.inclusion_proof(index, LEAVES[:size])
    assert [p.hex() for p in proof] == path
    assert ledger.verify_inclusion(index, size, LEAVES[index], proof, bytes.fromhex(ROOTS[size]))


def test_every_inclusion_proof_verifies_and_tampering_fails() -> None:
    rng = random.Random(7)
    leaves = [rng.randbytes(32) for _ in range(37)]
    for size in range(1, len(leaves) + 1):
        root = ledger.merkle_root(leaves[:size])
        for index in range(size):
            proof = ledger.inclusion_proof(index, leaves[:size])
            assert ledger.verify_inclusion(index, size, leaves[index], proof, root)
            assert not ledger.verify_inclusion(index, size, b"x" + leaves[index], proof, root)
            if proof:
                bad = [bytes(32)] + proof[1:]
                assert not ledger.verify_inclusion(index, size, leaves[index], bad, root)


def test_chain_depends_on_order() -> None:
    d = [ledger.digest(bytes([i])) for i in range(3)]
    forward = ledger.replay_chain(d)
    swapped = ledger.replay_chain([d[1], d[0], d[2]])
    assert forward[-1] != swapped[-1]
    assert forward[0] == ledger.chain_next(ledger.GENESIS, d[0])
