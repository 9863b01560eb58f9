"""Issue #14's reproductions: hostile bodies cost only their bad span, never a 5xx or the connection.

Each case first in-process (decode, normalize, columns), then over a real `workbench serve`: OTLP/HTTP
with a kept-alive connection, gRPC, and `workbench ingest` of a file.
"""

from __future__ import annotations

import socket
from pathlib import Path

import duckdb
import grpc
import httpx
import pytest
from click.testing import CliRunner
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collectors.workers import Prepared, Refused, prepare_body
from tests import hostile_payloads as hostile
from tests.conftest import ServerProcess
from tests.otlp_payloads import JSON, PROTOBUF, SpanKey, agent_batch, tiny_batch
from tests.test_faults import EXPORT_METHOD, finish, last_seq
from workbench.cli import cli
from workbench.settings import Settings

CASES = {
    "start_time >= 2^63": (lambda: hostile.huge_start_time("t"), PROTOBUF, "start_time_unix_nano"),
    "lone surrogate key": (lambda: hostile.surrogate_key("s"), JSON, "lone surrogate"),
    "arrayValue 3000 deep (JSON)": (lambda: hostile.deep_array_json("dj"), JSON, "nested more than"),
    "arrayValue 3000 deep (protobuf)": (lambda: hostile.deep_array_protobuf("dp"), PROTOBUF, "spans[1]"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_hostile_span_is_refused_alone_in_process(case: str) -> None:
    build, content_type, reason = CASES[case]
    body, good = build()
    prepared = prepare_body(body, content_type, None, Settings.from_env())
    assert isinstance(prepared, Prepared), prepared
    assert len(prepared.errors) == 1 and reason in prepared.errors[0], prepared.errors
    assert "spans[1]" in prepared.errors[0], prepared.errors
    assert prepared.batch is not None
    spans = prepared.batch.spans
    stored = set(zip(spans["trace_id"].to_pylist(), spans["span_id"].to_pylist(), strict=True))
    assert stored == good


def test_a_body_of_100000_brackets_is_a_clear_400_in_process() -> None:
    refused = prepare_body(hostile.brackets(), JSON, None, Settings.from_env())
    assert isinstance(refused, Refused) and refused.status == 400
    assert "nested more than" in refused.message and "malformed JSON" in refused.message


def _exchange(sock: socket.socket, body: bytes, content_type: str) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a kept-alive socket; the status and the body of the answer."""
    sock.sendall(
        f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    assert headers.get("connection", "").lower() != "close", headers
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-answer"
        rest += chunk
    return int(lines[0].split()[1]), rest[:length]


def test_hostile_bodies_over_http_keep_the_good_spans_and_the_connection(
    serve_process: ServerProcess,
) -> None:
    server = serve_process
    expected: set[SpanKey] = set()
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=60) as sock:
        for case, (build, content_type, reason) in CASES.items():
            body, good = build()
            status, answer = _exchange(sock, body, content_type)
            assert status == 200, (case, status, answer[:300])
            if content_type == PROTOBUF:
                partial = ExportTraceServiceResponse.FromString(answer).partial_success
                rejected, message = partial.rejected_spans, partial.error_message
            else:
                doc = httpx.Response(200, content=answer).json()["partialSuccess"]
                rejected, message = int(doc["rejectedSpans"]), doc["errorMessage"]
            assert rejected == 1 and reason in message, (case, message)
            expected |= good
            # The same connection still takes a good request.
            ok = agent_batch(f"after-{case}", 0, 2)
            status, _ = _exchange(sock, ok.protobuf(), PROTOBUF)
            assert status == 200
            expected |= ok.keys
        # No span at all, nested past recursion: a 400 whose body is a google.rpc.Status in JSON.
        status, answer = _exchange(sock, hostile.brackets(), JSON)
        assert status == 400
        assert "nested more than" in httpx.Response(400, content=answer).json()["message"]
        status, answer = _exchange(sock, hostile.brackets(), PROTOBUF)
        assert status == 400
        assert "malformed OTLP protobuf" in status_pb2.Status.FromString(answer).message
        status, _ = _exchange(sock, agent_batch("last", 0, 1).protobuf(), PROTOBUF)
        assert status == 200
        expected |= agent_batch("last", 0, 1).keys
    assert last_seq(server) == len(expected)
    finish(server, expected)


def test_grpc_answers_partial_success_not_unknown(serve_process: ServerProcess) -> None:
    server = serve_process
    expected: set[SpanKey] = set()
    with grpc.insecure_channel(server.grpc_target) as channel:
        raw = channel.unary_unary(EXPORT_METHOD, response_deserializer=ExportTraceServiceResponse.FromString)
        for build, reason in (
            (lambda: hostile.huge_start_time("g-time"), "start_time_unix_nano"),
            (lambda: hostile.deep_array_protobuf("g-deep"), "malformed OTLP protobuf span"),
        ):
            body, good = build()
            resp = raw(body, timeout=60)
            assert resp.partial_success.rejected_spans == 1
            assert reason in resp.partial_success.error_message
            expected |= good
        with pytest.raises(grpc.RpcError) as err:
            raw(hostile.brackets(), timeout=60)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert last_seq(server) == len(expected)
    finish(server, expected)


def test_ingest_stores_the_good_spans_beside_one_past_2_63(tmp_path: Path) -> None:
    batch = tiny_batch("ingest", 0, 101)
    spans = batch.message.resource_spans[0].scope_spans[0].spans
    spans[50].start_time_unix_nano = 2**64 - 1
    good = {(s.trace_id.hex(), s.span_id.hex()) for i, s in enumerate(spans) if i != 50}
    path = tmp_path / "mixed.pb"
    path.write_bytes(batch.protobuf())
    result = CliRunner().invoke(cli, ["ingest", str(path)])
    assert result.exit_code == 0, result.output
    assert "ingested 100 spans" in result.output, result.output
    assert "start_time_unix_nano 18446744073709551615 is out of range" in result.output, result.output
    con = duckdb.connect(str(Settings.from_env().db_path), read_only=True)
    try:
        stored = set(con.execute("SELECT trace_id, span_id FROM spans").fetchall())
    finally:
        con.close()
    assert stored == good
