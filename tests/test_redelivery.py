"""Issue #13: redelivery over the real transports is acknowledged and never stored twice.

An OTLP exporter that lost a response sends the same batch again. Over OTLP/HTTP (protobuf and JSON),
OTLP/gRPC and `workbench ingest`, against a real `workbench serve`, the second copy must be answered
200 / OK like the first, leave the store with one copy, and be counted: in `/health` (with the token)
and per trace in `workbench traces --json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import httpx
from click.testing import CliRunner
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tests.conftest import ServerProcess
from tests.otlp_payloads import JSON, agent_batch, to_otlp_json
from tests.test_faults import export_response, finish, last_seq, post
from workbench.cli import cli


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
