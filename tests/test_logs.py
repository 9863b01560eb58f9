"""OTLP logs in: both receivers of a real `workbench serve`, files, the ledger, and the join to a step.

Payloads are real protobuf messages (opentelemetry-proto) or their OTLP/JSON mapping; the real OTel
SDK's own exports are in tests/test_events_real.py.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import grpc
import httpx
import pytest
import zstandard
from click.testing import CliRunner
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors.integrity import step_deriver, stored_columns_check, stored_log_columns_check
from collectors.normalize import NORMALIZER_VERSION
from tests.conftest import ServerProcess
from workbench.cli import cli
from workbench.cli.loading import ingest_files
from workbench.settings import Settings
from workbench.store.connection import Store
from workbench.store.verify import verify_ledger

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
INPUT = [{"role": "user", "parts": [{"type": "text", "content": "clean up the users table"}]}]
OUTPUT = [
    {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "call_1", "name": "run_sql", "arguments": {"q": "DROP TABLE users;"}}
        ],
    }
]


def _attr(key: str, value: str) -> dict[str, object]:
    return {"key": key, "value": {"stringValue": value}}


def logs_doc(*records: dict[str, object]) -> dict[str, object]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": [_attr("service.name", "agent")]},
                "scopeLogs": [{"scope": {"name": "opentelemetry.util.genai"}, "logRecords": list(records)}],
            }
        ]
    }


def details_record(time_ns: int = 5) -> dict[str, object]:
    return {
        "traceId": TRACE,
        "spanId": SPAN,
        "timeUnixNano": str(time_ns),
        "eventName": "gen_ai.client.inference.operation.details",
        "attributes": [
            _attr("gen_ai.input.messages", json.dumps(INPUT)),
            _attr("gen_ai.output.messages", json.dumps(OUTPUT)),
        ],
    }


def traces_doc() -> dict[str, object]:
    span = {
        "traceId": TRACE,
        "spanId": SPAN,
        "name": "chat gpt-x",
        "kind": 3,
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "9",
        "attributes": [_attr("gen_ai.operation.name", "chat")],
    }
    return {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}]}]}


def logs_protobuf(doc: dict[str, object]) -> bytes:
    from collectors.decode_logs import parse_json

    req, errors = parse_json(doc)
    assert not errors
    return req.SerializeToString()


def verify(store: Store) -> list[str]:
    report = verify_ledger(
        store,
        stored_columns_check(),
        derive=step_deriver(store),
        normalizer_version=NORMALIZER_VERSION,
        log_check=stored_log_columns_check(),
    )
    return report.all_problems


def test_logs_over_http_and_grpc_acknowledged_sealed_and_isolated(serve_process: ServerProcess) -> None:
    url = f"{serve_process.http_url}/v1/logs"
    client = httpx.Client(timeout=60)  # a loaded machine: the first request waits for the decode workers
    body = logs_protobuf(logs_doc(details_record(1)))
    proto = {"Content-Type": "application/x-protobuf"}
    ok = client.post(url, content=body, headers=proto)
    assert ok.status_code == 200, ok.text
    assert not ExportLogsServiceResponse.FromString(ok.content).HasField("partial_success")
    gz = client.post(
        url,
        content=gzip.compress(logs_protobuf(logs_doc(details_record(2)))),
        headers={**proto, "Content-Encoding": "gzip"},
    )
    deflated = client.post(
        url,
        content=zlib.compress(json.dumps(logs_doc(details_record(3))).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "deflate"},
    )
    assert (gz.status_code, deflated.status_code) == (200, 200), (gz.text, deflated.text)
    # one bad record costs only itself, and says where it was
    partial = client.post(url, json=logs_doc(details_record(4), {"traceId": "not-hex", "spanId": SPAN}))
    assert partial.status_code == 200
    assert int(partial.json()["partialSuccess"]["rejectedLogRecords"]) == 1  # int64: a string in JSON
    assert "logRecords[1].traceId" in partial.json()["partialSuccess"]["errorMessage"]
    short_id = ExportLogsServiceRequest.FromString(logs_protobuf(logs_doc(details_record(6))))
    short_id.resource_logs[0].scope_logs[0].log_records[0].span_id = b"\x01\x02\x03"
    refused = client.post(url, content=short_id.SerializeToString(), headers=proto)
    assert refused.status_code == 400 and b"span_id must be empty or 8" in refused.content
    assert client.post(url, content=b"\xff\x00garbage", headers=proto).status_code == 400
    # the same request again is a redelivery: acknowledged, not stored twice
    assert client.post(url, content=body, headers=proto).status_code == 200

    with grpc.insecure_channel(serve_process.grpc_target) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            request_serializer=ExportLogsServiceRequest.SerializeToString,
            response_deserializer=ExportLogsServiceResponse.FromString,
        )
        mixed = ExportLogsServiceRequest.FromString(
            logs_protobuf(logs_doc(details_record(7), details_record(8)))
        )
        mixed.resource_logs[0].scope_logs[0].log_records[1].trace_id = b"\x00" * 3
        response = export(mixed, timeout=30)
    assert response.partial_success.rejected_log_records == 1
    traces = client.post(f"{serve_process.http_url}/v1/traces", json=traces_doc())
    assert traces.status_code == 200, traces.text
    client.close()
    assert serve_process.stop() == 0, serve_process.log()

    with Store(serve_process.db_path, read_only=True) as store:
        cur = store.cursor()
        times = [r[0] for r in cur.execute("SELECT time_ns FROM logs ORDER BY seq").fetchall()]
        step = cur.execute("SELECT output_text, event_fields FROM steps").fetchone()
        assert verify(store) == []
    assert times == [1, 2, 3, 4, 7]  # redelivery stored once, refused records not at all
    assert step is not None and "DROP TABLE users;" in step[0]
    assert json.loads(step[1]) == ["input_text", "output_text"]


@pytest.mark.parametrize("order", ["logs-first", "spans-first"])
def test_files_of_traces_and_logs_compressed_join_and_verify(tmp_path: Path, order: str) -> None:
    lines = [json.dumps(logs_doc(details_record())), json.dumps(traces_doc())]
    if order == "spans-first":
        lines.reverse()
    text = ("\n".join(lines) + "\n").encode()
    (tmp_path / "both.jsonl.deflate").write_bytes(zlib.compress(text))
    (tmp_path / "again.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(text))
    settings = Settings(data_dir=tmp_path / "data")
    totals = ingest_files(settings, [tmp_path / "both.jsonl.deflate", tmp_path / "again.jsonl.zst"])
    assert (totals.accepted, totals.rejected) == (4, 0), totals.errors
    assert totals.findings is not None and totals.findings_error is None  # the rules ran over the trace
    renormalized = CliRunner().invoke(cli, ["--data-dir", str(settings.data_dir), "renormalize"])
    assert renormalized.exit_code == 0, renormalized.output  # and the step stays joined (checked below)
    with Store(settings.db_path) as store:
        cur = store.cursor()
        assert cur.execute("SELECT count(*) FROM logs").fetchone() == (1,)
        (fields,) = cur.execute("SELECT event_fields FROM steps").fetchone() or (None,)
        assert json.loads(fields) == ["input_text", "output_text"]
        assert verify(store) == []
        # an edited log record is named; so is a joined step edited by hand
        cur.execute("UPDATE logs SET attributes = '{}'")
        cur.execute("UPDATE steps SET output_text = 'nothing happened'")
        problems = verify(store)
    assert any("log record modified (column(s) attributes" in p for p in problems), problems
    assert any("field output_text differs" in p for p in problems), problems


def test_a_file_line_that_is_neither_signal_is_refused_by_line(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps(logs_doc(details_record())) + "\n[1, 2]\n")
    totals = ingest_files(Settings(data_dir=tmp_path / "data"), [path])
    assert totals.accepted == 1
    assert any("odd.jsonl:2" in e and "resourceLogs" in e for e in totals.errors), totals.errors


def test_canonical_bytes_of_a_log_record_are_the_message_serialized_alone() -> None:
    from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

    from collectors import decode_logs

    req = ExportLogsServiceRequest.FromString(logs_protobuf(logs_doc(details_record(), details_record(9))))
    result = decode_logs.to_records(req, 10_000)
    rl = req.resource_logs[0]
    for i, record in enumerate(result.records):
        alone = ResourceLogs()
        alone.resource.CopyFrom(rl.resource)
        scope = alone.scope_logs.add()
        scope.scope.CopyFrom(rl.scope_logs[0].scope)
        scope.log_records.append(rl.scope_logs[0].log_records[i])
        assert record.canonical == alone.SerializeToString(deterministic=True)
    assert json_format.MessageToDict(ExportTraceServiceRequest()) == {}
