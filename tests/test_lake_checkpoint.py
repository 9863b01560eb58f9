"""The lake's global root (real PostgreSQL catalog, real DuckLake): one signed note over every node's head."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collectors import decode
from collectors.files import read_requests
from collectors.pipeline import IngestPipeline
from sample_traces.catalog import get
from workbench.errors import WorkbenchError
from workbench.settings import Settings
from workbench.store import lake_checkpoint
from workbench.store.connection import Store
from workbench.store.lake import open_lake


def _ingest(store: Store, name: str) -> int:
    pipeline = IngestPipeline(store)
    n = 0
    try:
        for _, req, _ in read_requests(get(name).path):
            records = decode.to_records(req, 1 << 20).records
            pipeline.ingest(records, "test")
            n += len(records)
    finally:
        pipeline.close()
    return n


@pytest.fixture
def two_nodes(postgres_dsn: str, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    def node(name: str) -> Store:
        settings = Settings(
            data_dir=tmp_path / name, lake=postgres_dsn, data_path=str(tmp_path / "lake"), node_id=name
        )
        return open_lake(settings)

    a = node("node-a")
    b = node("node-b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_global_root_commits_every_nodes_head_and_verify_names_the_bad_node(
    two_nodes: tuple[Store, Store],
) -> None:
    a, b = two_nodes
    spans_a, spans_b = _ingest(a, "db_deletion"), _ingest(b, "prompt_injection")
    key = Ed25519PrivateKey.generate()
    note = lake_checkpoint.commit_root(a, key, "node-a")
    assert note.startswith(lake_checkpoint.ORIGIN + "\nnodes 2\n")

    stored = lake_checkpoint.latest(b)  # any node reads it
    assert stored is not None and stored.signer_node == "node-a" and stored.note == note
    sizes = {h.node_id: h.size for h in stored.root.heads}
    assert sizes == {"node-a": spans_a, "node-b": spans_b}
    assert lake_checkpoint.check(b)[1] == []

    # more spans after the root: the trees still extend their heads
    _ingest(b, "db_deletion")
    assert lake_checkpoint.check(a)[1] == []

    # node b's tail cut: the root names node b, and only node b
    b.cursor().execute(
        "DELETE FROM ledger WHERE node_id = 'node-b' AND seq >= (SELECT min(seq) FROM ledger"
        " WHERE node_id = 'node-b') + ?",
        [spans_b - 1],
    )
    _, problems = lake_checkpoint.check(a)
    assert problems and all(p.startswith("node node-b: span ledger seq") for p in problems)
    assert "missing (tail truncated)" in problems[0]


def test_an_edited_root_does_not_verify(two_nodes: tuple[Store, Store]) -> None:
    a, _ = two_nodes
    _ingest(a, "db_deletion")
    key = Ed25519PrivateKey.generate()
    note = lake_checkpoint.commit_root(a, key, "node-a")
    forged = note.replace('node "node-a" ', 'node "node-a" 1', 1)
    with pytest.raises(WorkbenchError, match="signature does not hold"):
        lake_checkpoint.parse(forged, key.public_key(), "forged")
    with pytest.raises(WorkbenchError, match="no signature"):
        lake_checkpoint.parse(note, Ed25519PrivateKey.generate().public_key(), "other key")


def test_hostile_node_ids_cannot_forge_a_line() -> None:
    evil = 'x" 0 AAAA entries 0 AAAA\nnode "y'
    root = lake_checkpoint.GlobalRoot(
        (lake_checkpoint.NodeHead(evil, 3, b"\x01" * 32, 0, b"\x02" * 32),),
        lake_checkpoint.datetime(2026, 1, 1, tzinfo=lake_checkpoint.UTC),
    )
    key = Ed25519PrivateKey.generate()
    parsed = lake_checkpoint.parse(lake_checkpoint.sign(root, key), key.public_key(), "note")
    assert parsed == root and parsed.heads[0].node_id == evil


def test_ledger_checkpoint_command_commits_a_root_in_lake_mode(
    two_nodes: tuple[Store, Store], postgres_dsn: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from workbench.cli import cli

    a, _ = two_nodes
    spans = _ingest(a, "db_deletion")
    env = {"WORKBENCH_LAKE": postgres_dsn, "WORKBENCH_DATA_PATH": str(tmp_path / "lake")}
    result = CliRunner().invoke(cli, ["ledger", "checkpoint"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(lake_checkpoint.ORIGIN + "\nnodes 2\n")
    stored = lake_checkpoint.latest(a)
    assert stored is not None and stored.note == result.output
    assert {h.node_id: h.size for h in stored.root.heads} == {"node-a": spans, "node-b": 0}


def test_a_node_rewritten_at_the_same_length_after_signing_is_named(two_nodes: tuple[Store, Store]) -> None:
    """The harder case than a cut tail: one leaf of node b replaced after the root was signed, so every
    count still agrees and only the tree's root at the signed size differs."""
    a, b = two_nodes
    _ingest(a, "db_deletion")
    spans_b = _ingest(b, "prompt_injection")
    lake_checkpoint.commit_root(a, Ed25519PrivateKey.generate(), "node-a")
    assert lake_checkpoint.check(b)[1] == []
    b.cursor().execute(
        "UPDATE ledger SET digest = unhex(sha256('forged span')) WHERE node_id = 'node-b'"
        " AND seq = (SELECT min(seq) FROM ledger WHERE node_id = 'node-b') + ?",
        [spans_b // 2],
    )
    sizes = b.cursor().execute("SELECT count(*) FROM ledger WHERE node_id = 'node-b'").fetchone()
    assert sizes is not None and sizes[0] == spans_b  # same length: only the content changed
    _, problems = lake_checkpoint.check(a)
    assert problems, "a rewritten leaf must not verify against the signed root"
    assert all(p.startswith("node node-b: span ledger seq") for p in problems), problems
