"""Issue #13: redelivery over the real transports is acknowledged and never stored twice.

An OTLP exporter that lost a response sends the same batch again. Over OTLP/HTTP (protobuf and JSON),
OTLP/gRPC and `workbench ingest`, against a real `workbench serve`, the second copy must be answered
200 / OK like the first, leave the store with one copy, and be counted: in `/health` (with the token)
and per trace in `workbench traces --json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from click.testing import CliRunner
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tests.conftest import ServerProcess
from tests.otlp_payloads import JSON, agent_batch, to_otlp_json
from tests.test_faults import export_response, finish, last_seq, post
from workbench.cli import cli
from workbench.store import writer as writer_module
from workbench.store.connection import Store


def _health(server: ServerProcess) -> dict[str, int]:
    return dict(httpx.get(f"{server.http_url}/health", timeout=10).json())


def test_same_batch_over_http_grpc_and_json_is_stored_once(serve_process: ServerProcess) -> None:
    server = serve_process
    batch = agent_batch("redelivered", 0, 3)
    for _ in range(2):  # protobuf twice
        assert not export_response(post(server, batch.protobuf())).HasField("partial_success")
    assert post(server, to_otlp_json(batch), content_type=JSON).status_code == 200
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(batch.message, timeout=60)
    assert last_seq(server) == 3  # four deliveries, three spans
    health = _health(server)
    assert health["duplicate_spans"] == 9 and health["conflicting_versions"] == 0, health
    finish(server, set(batch.keys))  # exactly one copy of each span, and the ledger verifies


def test_ingest_of_a_file_sent_twice_counts_per_trace(tmp_path: Path) -> None:
    batch = agent_batch("twice", 0, 4)
    path = tmp_path / "batch.pb"
    path.write_bytes(batch.protobuf())
    env = {"WORKBENCH_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(cli, ["ingest", str(path)], env=env)
        assert result.exit_code == 0, result.output
    listed = runner.invoke(cli, ["traces", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    (trace,) = json.loads(listed.output)
    assert trace["span_count"] == 4 and trace["duplicates"] == 4 and trace["versions"] == 0


def test_verify_names_a_redelivery_stored_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A redelivery stored again (what a lake could do before the lookup moved into the commit's
    transaction) is sealed and intact twice. `ledger verify` counts the copies and names their seqs; a
    copy with a step of its own fails the step check under its real cause; one without a step holds."""
    batch = agent_batch("stored-twice", 0, 3)
    path = tmp_path / "batch.pb"
    path.write_bytes(batch.protobuf())
    env = {"WORKBENCH_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(path)], env=env).exit_code == 0

    def verify(code: int) -> dict[str, Any]:
        result = runner.invoke(cli, ["ledger", "verify", "--json"], env=env)
        assert result.exit_code == code, result.output
        return dict(json.loads(result.stdout))

    clean = verify(0)
    assert clean["stored_twice"] == 0 and clean["stored_twice_examples"] == []
    # The fault: the redelivery lookup finds nothing, so the second delivery is stored as new spans.
    monkeypatch.setattr(writer_module, "_known", lambda cur, span_ids: {})
    assert runner.invoke(cli, ["ingest", str(path)], env=env).exit_code == 0
    broken = verify(1)
    assert broken["checked"] == 6 and broken["problems"] == [] and broken["stored_twice"] == 3
    examples = broken["stored_twice_examples"]
    for trace_id, span_id in batch.keys:
        assert sum(f"span {span_id} of trace {trace_id} stored 2 times" in e for e in examples) == 1
    assert sorted(e.rsplit("seqs ", 1)[1] for e in examples) == ["1, 4", "2, 5", "3, 6"]
    assert sorted(p["seq"] for p in broken["step_problems"]) == [4, 5, 6]
    assert all(
        "a redelivery stored again with the same bytes" in p["problem"] for p in broken["step_problems"]
    )
    text = runner.invoke(cli, ["ledger", "verify"], env=env)
    assert text.exit_code == 1 and "notice: 3 record(s) stored more than once" in text.stderr

    # Without steps, the copies mislead no view: the ledger holds, and the notice stays.
    with Store(tmp_path / "data" / "workbench.duckdb") as store:
        store.cursor().execute("DELETE FROM steps WHERE seq > 3")
    held = verify(0)
    assert held["ok"] is True and held["stored_twice"] == 3 and held["step_problems"] == []
    text = runner.invoke(cli, ["ledger", "verify"], env=env)
    assert text.exit_code == 0 and text.stdout.startswith("ledger OK: 6 spans")
    assert "notice: 3 record(s) stored more than once" in text.stderr
