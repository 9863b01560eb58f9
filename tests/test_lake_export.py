"""An audit bundle from a lake: one trace whose spans two nodes sealed in their own chains, exported by a
third process and checked offline by `workbench verify` against each node's signed tree head.

Real parts only: a real PostgreSQL catalog (tests/postgres.py), real DuckLake, the real CLI. The tampered
line is found from the bundle's own proofs.jsonl (the line node n2 sealed), not written down here.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors.pipeline import IngestPipeline
from tests.otlp_payloads import agent_batch
from tests.test_lake import _part, _records, _settings, _tamper
from workbench.cli import cli
from workbench.store import lake, lake_checkpoint


def _split_trace_bundle(tmp_path: Path, dsn: str, export: bool = True) -> tuple[Path, dict[str, str]]:
    """Spans 0-2 of one trace ingested on node n1, spans 3-5 on n2, with a lake root signed when n1 had
    only two of its spans (so the bundle proves n1's tree grew from it); exported as a directory."""
    batch = agent_batch("lake-export", 1, 6)
    key = Ed25519PrivateKey.generate()
    for node, part, sign in (
        ("n1", range(0, 2), False),
        ("n2", range(3, 6), True),
        ("n1", range(2, 3), False),
    ):
        store = lake.open_lake(_settings(tmp_path, dsn, node))
        try:
            pipe = IngestPipeline(store)
            message = ExportTraceServiceRequest.FromString(_part(batch, part))
            pipe.ingest(_records(message), "test")
            pipe.close()
            if sign:
                lake_checkpoint.commit_root(store, key, node)
        finally:
            store.close()
    env = {
        "WORKBENCH_LAKE": dsn,
        "WORKBENCH_DATA_PATH": str(tmp_path / "lake-data"),
        "WORKBENCH_DATA_DIR": str(tmp_path / "reader"),
    }
    out = tmp_path / "bundle"
    if export:
        exported = CliRunner().invoke(cli, ["export", "--no-redact", "--out", str(out)], env=env)
        assert exported.exit_code == 0, exported.output
    return out, env


def test_a_trace_split_across_nodes_exports_and_verifies_offline(tmp_path: Path, postgres_dsn: str) -> None:
    out, _ = _split_trace_bundle(tmp_path, postgres_dsn)
    manifest = json.loads((out / "manifest.json").read_text())
    heads = {h["node"]: h for h in manifest["ledger"]["nodes"]}
    assert sorted(heads) == ["n1", "n2"]
    assert all(h["tree_size"] == 3 for h in heads.values())
    proofs = [orjson.loads(line) for line in (out / "proofs.jsonl").read_bytes().splitlines()]
    assert [(p["node"], p["index"]) for p in proofs] == [("n1", 0), ("n1", 1), ("n1", 2)] + [
        ("n2", 0),
        ("n2", 1),
        ("n2", 2),
    ]
    assert proofs[-1]["chain"] == heads["n2"]["chain_head"]
    assert heads["n1"]["lake_root"]["tree_size"] == 2 and heads["n1"]["lake_root"]["consistency"]
    assert manifest["ledger"]["lake_roots"]["signer_node"] == "n2"

    checked = CliRunner().invoke(cli, ["verify", "--trust-bundle-key", "--json", str(out)])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert report["problems"] == []
    assert report["checked"]["lake_root_nodes"] == 2  # both nodes' trees extend their signed heads


def test_a_tampered_span_in_a_lake_bundle_names_node_file_and_line(tmp_path: Path, postgres_dsn: str) -> None:
    out, _ = _split_trace_bundle(tmp_path, postgres_dsn)
    proofs = [orjson.loads(line) for line in (out / "proofs.jsonl").read_bytes().splitlines()]
    line_no = next(p["line"] for p in proofs if p["node"] == "n2")
    lines = (out / "spans.jsonl").read_bytes().splitlines()
    doc = orjson.loads(lines[line_no - 1])
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] = "nothing to see here"
    lines[line_no - 1] = orjson.dumps(doc)
    (out / "spans.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    checked = CliRunner().invoke(cli, ["verify", "--trust-bundle-key", str(out)])
    assert checked.exit_code == 1, checked.output
    assert f"spans.jsonl line {line_no}" in checked.output, checked.output
    assert f"spans.jsonl line {line_no} (span {proofs[line_no - 1]['span_id']}): node n2, " in checked.output


def test_a_node_cut_after_the_lake_signed_its_head_is_not_exported(tmp_path: Path, postgres_dsn: str) -> None:
    out, env = _split_trace_bundle(tmp_path, postgres_dsn, export=False)
    # Cut node n2's last span, its ledger row and its own checkpoints, as an attacker with catalog access
    # would: the chain of what is left still verifies, only the lake's signed root knows n2 had one more.
    last = "(SELECT max(seq) FROM ledger WHERE node_id = 'n2')"
    _tamper(
        postgres_dsn,
        f"DELETE FROM steps WHERE seq = {last}; DELETE FROM spans WHERE seq = {last};"
        f" DELETE FROM ledger WHERE seq = {last}; DELETE FROM ledger_checkpoints WHERE node_id = 'n2'",
    )
    exported = CliRunner().invoke(cli, ["export", "--no-redact", "--out", str(out)], env=env)
    assert exported.exit_code != 0
    assert "node n2: its ledger is shorter than its head in the lake's signed root" in exported.output, (
        exported.output
    )
    assert not out.exists()
