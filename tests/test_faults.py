"""Fault tests of the capture path, against a real `workbench serve` subprocess over real sockets.

"Acknowledged means durable": a 200 (or gRPC OK) is answered only after the spans are committed, so
a crash loses nothing acknowledged; bad input gets a clear 4xx naming what and where, and never costs
the server, the database, or an earlier batch. Every test ends by stopping the server, reading the
DuckDB file read-only and comparing the stored span ids with the exact set that was acknowledged.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import grpc
import httpx
import psutil
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from tests.conftest import ServerProcess
from tests.otlp_payloads import (
    JSON,
    PROTOBUF,
    Batch,
    SpanKey,
    agent_batch,
    expected_keys,
    gzip_bomb,
    gzipped,
    span_id,
    tiny_batch,
    to_otlp_json,
    trace_id,
)
from tests.polling import wait_for

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def post(
    server: ServerProcess,
    body: bytes,
    content_type: str = PROTOBUF,
    encoding: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> httpx.Response:
    h = {"content-type": content_type, **(headers or {})}
    if encoding:
        h["content-encoding"] = encoding
    return httpx.post(server.traces_url, content=body, headers=h, timeout=timeout)


def error_message(resp: httpx.Response) -> str:
    """The message of a google.rpc.Status error body, in whichever encoding the server answered."""
    if resp.headers.get("content-type", "").startswith(PROTOBUF):
        return status_pb2.Status.FromString(resp.content).message
    return str(resp.json()["message"])


def export_response(resp: httpx.Response) -> ExportTraceServiceResponse:
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text[:500]}"
    assert resp.headers["content-type"].startswith(PROTOBUF)
    return ExportTraceServiceResponse.FromString(resp.content)


def last_seq(server: ServerProcess) -> int:
    return int(httpx.get(f"{server.http_url}/health", timeout=10).json()["last_seq"])


def send_good(server: ServerProcess, tag: str, request: int, n_spans: int = 5) -> Batch:
    """Send a valid batch and check it is acknowledged and counted: the server is still serving."""
    assert server.alive(), server.log()
    before = last_seq(server)
    batch = agent_batch(tag, request, n_spans)
    resp = export_response(post(server, batch.protobuf()))
    assert not resp.HasField("partial_success"), resp
    assert last_seq(server) == before + n_spans
    return batch


def stored_rows(db_path: Path) -> list[tuple[int, str, str]]:
    """(seq, trace_id, span_id) of every stored span, opened read-only after the server has stopped."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute("SELECT seq, trace_id, span_id FROM spans ORDER BY seq").fetchall()
    finally:
        con.close()


def stop_and_read(server: ServerProcess) -> set[SpanKey]:
    """Graceful stop, then the stored span keys; asserts the stop was clean and seq is gapless."""
    rc = server.stop()
    assert rc == 0, f"workbench serve exited {rc} on SIGTERM:\n{server.log()}"
    assert "stopped" in server.log()
    assert not (server.data_dir / "server.json").exists(), "a stopped server left its server.json"
    rows = stored_rows(server.db_path)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), "ingest sequence has gaps"
    keys = [(t, s) for _, t, s in rows]
    duplicates = [k for k, n in Counter(keys).items() if n > 1]
    assert not duplicates, f"spans stored twice: {duplicates[:5]}"
    return set(keys)


def ledger_verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["WORKBENCH_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", "ledger", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def finish(server: ServerProcess, expected: set[SpanKey]) -> None:
    """Stop the server; the database holds exactly `expected` and its ledger verifies."""
    stored = stop_and_read(server)
    assert len(stored - expected) == 0, f"spans stored that were never acknowledged: {len(stored - expected)}"
    assert len(expected - stored) == 0, f"acknowledged spans missing: {sorted(expected - stored)[:5]}"
    result = ledger_verify(server.data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ledger OK: {len(expected)} spans" in result.stdout


@pytest.fixture
def server(serve_process: ServerProcess) -> ServerProcess:
    """A server with default limits (conftest stops it after the test; `finish` stops it earlier)."""
    return serve_process


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with extra WORKBENCH_* settings, on tmp_path/served unless told; all stopped after."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str] | None = None) -> ServerProcess:
        srv = ServerProcess(tmp_path / "served", env=env or {})
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.stop()


# --------------------------------------------------------------------------------------------------
# 1. SIGKILL under sustained load
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_under_load_loses_no_acknowledged_span(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    data_dir = server.data_dir
    n_spans, n_clients = 20, 4
    outcomes: dict[int, int | str] = {}  # request number -> HTTP status, or the transport error's name
    lock = threading.Lock()
    done = threading.Event()
    numbers = itertools.count()

    def client() -> None:
        with httpx.Client(timeout=30) as c:
            while not done.is_set():
                i = next(numbers)
                body = agent_batch("kill", i, n_spans).protobuf()
                try:
                    r = c.post(server.traces_url, content=body, headers={"content-type": PROTOBUF})
                    outcome: int | str = r.status_code
                except httpx.TransportError as exc:
                    outcome = type(exc).__name__
                with lock:
                    outcomes[i] = outcome

    def acked() -> list[int]:
        with lock:
            return [i for i, o in outcomes.items() if o == 200]

    warm = send_good(server, "kill-warm", 0)  # past the slow first commit: the load is steady state
    threads = [threading.Thread(target=client, daemon=True) for _ in range(n_clients)]
    try:
        for t in threads:
            t.start()
        # Well into sustained load: dozens of commits done, and every client has a request in flight.
        wait_for(lambda: len(acked()) >= 60, 60, 0.02, "60 acknowledged requests")
        server.kill()
    finally:
        done.set()
        for t in threads:
            t.join(30)
        server.kill()
    assert server.proc is not None and server.proc.returncode == -9
    acknowledged = acked()
    unacknowledged = [i for i, o in outcomes.items() if o != 200]
    assert all(isinstance(outcomes[i], str) for i in unacknowledged), outcomes  # no 4xx/5xx under load
    assert len(acknowledged) >= 60
    # Requests that were on the wire when the server died (not refused connections after it).
    cut = [i for i in unacknowledged if outcomes[i] != "ConnectError"]
    assert cut, "the kill did not land in the middle of a request; the test proved nothing"

    # The next server recovers the database (DuckDB replays its WAL) and carries on the ledger.
    restarted = start_server()  # same data directory
    recovered = last_seq(restarted)
    assert recovered >= 5 + len(acknowledged) * n_spans, f"acknowledged spans lost: {recovered} recovered"
    after = send_good(restarted, "after-kill", 0)
    stored = stop_and_read(restarted)

    missing = {i: len(expected_keys("kill", i, n_spans) - stored) for i in acknowledged}
    assert not any(missing.values()), f"acknowledged requests with spans missing: {missing}"
    assert warm.keys <= stored and after.keys <= stored
    # A request is one transaction: spans of a request that was cut off are all there or none is.
    for i in unacknowledged:
        present = len(expected_keys("kill", i, n_spans) & stored)
        assert present in (0, n_spans), f"request {i} half-stored: {present}/{n_spans} spans"
    sent = set().union(*(expected_keys("kill", i, n_spans) for i in outcomes)) | warm.keys | after.keys
    assert stored <= sent
    committed_unacked = [i for i in cut if expected_keys("kill", i, n_spans) <= stored]
    print(
        f"kill -9: {len(acknowledged)} requests acknowledged, {len(cut)} cut off "
        f"({len(committed_unacked)} of them committed before the answer), {len(stored)} spans stored"
    )

    result = ledger_verify(data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ledger OK: {len(stored)} spans" in result.stdout


# --------------------------------------------------------------------------------------------------
# 2-6. Undecodable input: 4xx with a message, nothing stored, nothing lost, the server carries on
# --------------------------------------------------------------------------------------------------


def test_malformed_protobuf_is_400_and_loses_nothing(server: ServerProcess) -> None:
    earlier = send_good(server, "malformed", 0)
    # A length-delimited field (resource_spans) that claims 5 bytes but carries 3.
    resp = post(server, b"\x0a\x05abc")
    assert resp.status_code == 400
    message = error_message(resp)
    assert "malformed OTLP protobuf (5 bytes)" in message, message
    assert server.alive()
    assert last_seq(server) == 5, "the bad request changed what is stored"
    later = send_good(server, "malformed", 1)
    finish(server, earlier.keys | later.keys)


def test_truncated_gzip_is_400(server: ServerProcess) -> None:
    earlier = send_good(server, "trunc-gz", 0)
    whole = gzipped(agent_batch("trunc-gz", 1, 10).protobuf())
    cut = whole[: len(whole) // 2]
    resp = post(server, cut, encoding="gzip")
    assert resp.status_code == 400
    message = error_message(resp)
    assert f"compressed body is truncated after {len(cut)} bytes" in message, message
    # Garbage that is not gzip at all is the same class of error.
    resp = post(server, b"definitely not gzip", encoding="gzip")
    assert resp.status_code == 400
    assert "not valid gzip data" in error_message(resp)
    assert server.alive()
    later = send_good(server, "trunc-gz", 2)
    finish(server, earlier.keys | later.keys)


def test_every_compressed_form_is_read_whole(server: ServerProcess) -> None:
    """gzip (also several concatenated members, which is valid gzip), zlib deflate and raw deflate."""
    a, b, c, d = (agent_batch("encodings", i, n) for i, n in enumerate((3, 4, 2, 2)))
    members = gzipped(a.protobuf()) + gzipped(b.protobuf())  # protobuf concatenation merges the requests
    export_response(post(server, members, encoding="gzip"))
    assert last_seq(server) == 7, "a gzip member after the first was dropped"
    export_response(post(server, zlib.compress(c.protobuf()), encoding="deflate"))
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    export_response(post(server, raw.compress(d.protobuf()) + raw.flush(), encoding="deflate"))
    # Bytes after the end of a deflate stream are refused rather than silently ignored.
    resp = post(server, zlib.compress(d.protobuf()) + b"junk", encoding="deflate")
    assert resp.status_code == 400
    assert "4 bytes of trailing data" in error_message(resp), error_message(resp)
    assert server.alive()
    finish(server, a.keys | b.keys | c.keys | d.keys)


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def _peak_rss(pid: int) -> int:
    """The process's high-water RSS (VmHWM): catches a spike that was freed before we could look."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _rss(pid)


def test_gzip_bomb_is_413_with_bounded_memory(server: ServerProcess) -> None:
    earlier = send_good(server, "bomb", 0)
    assert server.proc is not None
    pid = server.proc.pid
    bomb = gzip_bomb(1 << 30)  # 1 GiB of zeros
    assert len(bomb) < 2 * 2**20
    rss_before = _rss(pid)
    figures = []
    for _ in range(3):  # again and again: a bomb must leave nothing behind that the next one adds to
        resp = post(server, bomb, encoding="gzip")
        assert resp.status_code == 413
        message = error_message(resp)
        assert "WORKBENCH_MAX_DECOMPRESSED_BYTES" in message and str(128 * 2**20) in message, message
        figures.append((_rss(pid), _peak_rss(pid)))
    mib = [f"{rss / 2**20:.0f}/{peak / 2**20:.0f}" for rss, peak in figures]
    print(
        f"gzip bomb ({len(bomb)} bytes -> 1 GiB): server RSS before {rss_before / 2**20:.0f} MiB, "
        f"after each bomb (RSS/peak MiB) {mib}"
    )
    # The decompressor stops at WORKBENCH_MAX_DECOMPRESSED_BYTES (128 MiB by default), holding at most
    # that much output in 1 MiB steps, plus the 1 MiB body. 200 MiB over the starting RSS leaves room
    # for that and allocator noise; it fails for a server that inflates the bomb (over 1 GiB) and for one
    # that holds the capped output twice (zlib joining one 128 MiB buffer: about 260 MiB measured).
    bound = 200 * 2**20
    for rss, peak in figures:
        assert peak - rss_before < bound, (rss_before, figures)
        assert rss - rss_before < bound, (rss_before, figures)
    assert figures[-1][1] - figures[0][1] < 32 * 2**20, f"each bomb kept memory alive: {figures}"
    assert server.alive()
    later = send_good(server, "bomb", 1)
    finish(server, earlier.keys | later.keys)


def test_unsupported_content_type_and_encoding_are_415(server: ServerProcess) -> None:
    earlier = send_good(server, "ctype", 0)
    body = agent_batch("ctype", 1, 3).protobuf()
    resp = post(server, body, content_type="text/plain")
    assert resp.status_code == 415
    message = error_message(resp)
    assert "'text/plain'" in message and PROTOBUF in message and JSON in message, message
    resp = post(server, body, encoding="br")
    assert resp.status_code == 415
    assert "unsupported Content-Encoding 'br'" in error_message(resp)
    assert server.alive()
    later = send_good(server, "ctype", 2)
    finish(server, earlier.keys | later.keys)


def test_invalid_utf8_is_400(server: ServerProcess) -> None:
    earlier = send_good(server, "utf8", 0)
    # JSON: one byte that cannot start a UTF-8 sequence, at a known offset inside a string value.
    body = to_otlp_json(agent_batch("utf8", 1, 3))
    offset = body.index(b"Answer 1.2")
    resp = post(server, body[:offset] + b"\xff" + body[offset + 1 :], content_type=JSON)
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith(JSON)
    message = error_message(resp)
    assert f"not valid UTF-8 at byte {offset}" in message, message
    # The same document, valid, is accepted: the offset check above was about the one bad byte.
    assert post(server, body, content_type=JSON).status_code == 200
    json_batch = expected_keys("utf8", 1, 3)

    # Protobuf: proto3 `string` fields must be UTF-8. The upb parser refuses the whole message when one
    # is not, so the request is read again span by span: only the span holding the bad byte is refused.
    good = agent_batch("utf8", 2, 3).protobuf()
    bad = good.replace(b"chat gpt-4o-mini", b"chat \xffpt-4o-mini", 1)
    assert bad != good and len(bad) == len(good)
    partial = export_response(post(server, bad)).partial_success
    assert partial.rejected_spans == 1
    assert "spans[1]: malformed OTLP protobuf span" in partial.error_message, partial.error_message
    assert "UTF-8" in partial.error_message, partial.error_message
    kept = expected_keys("utf8", 2, 3) - {(trace_id("utf8", 2).hex(), span_id("utf8", 2, 1).hex())}
    assert server.alive()
    later = send_good(server, "utf8", 3)
    finish(server, earlier.keys | json_batch | kept | later.keys)


# --------------------------------------------------------------------------------------------------
# 7-9. Limits and partial success
# --------------------------------------------------------------------------------------------------


def test_huge_attribute_is_truncated_in_columns_and_kept_in_canonical(server: ServerProcess) -> None:
    size, limit = 10 * 2**20, 2**20  # 10 MiB value; WORKBENCH_MAX_ATTRIBUTE_LENGTH defaults to 1 MiB
    big = "".join(f"{i:08d}" for i in range(size // 8))
    batch = agent_batch("huge", 0, 2)
    span = batch.message.resource_spans[0].scope_spans[0].spans[1]
    span.attributes.append(KeyValue(key="gen_ai.tool.call.result", value=AnyValue(string_value=big)))
    resp = export_response(post(server, batch.protobuf()))
    assert not resp.HasField("partial_success")
    later = send_good(server, "huge", 1)
    target = (span.trace_id.hex(), span.span_id.hex())
    finish(server, batch.keys | later.keys)

    con = duckdb.connect(str(server.db_path), read_only=True)
    try:
        attrs, truncations, canonical = con.execute(
            "SELECT attributes, truncations, canonical FROM spans WHERE trace_id = ? AND span_id = ?",
            list(target),
        ).fetchone()
        (tool_result,) = con.execute(
            "SELECT tool_result FROM steps WHERE trace_id = ? AND span_id = ?", list(target)
        ).fetchone()
        others = con.execute(
            "SELECT count(*) FROM spans WHERE truncations <> '[]' AND span_id <> ?", [target[1]]
        ).fetchone()
    finally:
        con.close()
    # The step's column holds the cut value; the spans table's attributes column leaves long strings out
    # altogether (`batch.slim_attributes`: the text is in the step and in the canonical bytes).
    assert tool_result == big[:limit] + f"…[truncated: {size} chars, kept {limit}]"
    assert "gen_ai.tool.call.result" not in json.loads(attrs)
    assert json.loads(truncations) == [["attributes.gen_ai.tool.call.result", size, limit]]
    assert others == (0,)
    # The raw canonical bytes (what the ledger hashes) keep every character.
    raw = ResourceSpans.FromString(bytes(canonical))
    kept = {kv.key: kv.value.string_value for kv in raw.scope_spans[0].spans[0].attributes}
    assert kept["gen_ai.tool.call.result"] == big


def test_too_many_spans_is_413_naming_the_setting(server: ServerProcess) -> None:
    earlier = send_good(server, "many", 0)
    body = tiny_batch("many", 1, 100_000).protobuf()
    resp = post(server, body)
    assert resp.status_code == 413
    message = error_message(resp)
    assert "100000 spans" in message and "20000" in message, message
    assert "WORKBENCH_MAX_SPANS_PER_REQUEST" in message, message
    assert server.alive()
    assert last_seq(server) == 5
    later = send_good(server, "many", 2)
    finish(server, earlier.keys | later.keys)


def test_partial_success_names_the_rejected_spans(server: ServerProcess) -> None:
    # Protobuf: spans 1 and 4 of 6 have bad ids; the other four are stored.
    batch = agent_batch("partial", 0, 6)
    spans = batch.message.resource_spans[0].scope_spans[0].spans
    spans[1].trace_id = b"\x01\x02\x03\x04\x05"
    spans[4].span_id = b"\x09\x09\x09"
    valid = {(spans[i].trace_id.hex(), spans[i].span_id.hex()) for i in (0, 2, 3, 5)}
    resp = export_response(post(server, batch.protobuf()))
    assert resp.partial_success.rejected_spans == 2
    msg = resp.partial_success.error_message
    assert "resource_spans[0].scope_spans[0].spans[1]" in msg and "got 5 bytes" in msg, msg
    assert "resource_spans[0].scope_spans[0].spans[4]" in msg and "span_id" in msg, msg
    assert last_seq(server) == 4

    # OTLP/JSON: the same, answered in JSON (int64 as a string, per the protobuf JSON mapping).
    jbatch = agent_batch("partial", 1, 3)
    jbatch.message.resource_spans[0].scope_spans[0].spans[2].trace_id = b"\x07" * 5
    resp_json = post(server, to_otlp_json(jbatch), content_type=JSON)
    assert resp_json.status_code == 200
    partial = resp_json.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1
    assert "resource_spans[0].scope_spans[0].spans[2]" in partial["errorMessage"]
    jvalid = {
        (s.trace_id.hex(), s.span_id.hex()) for s in jbatch.message.resource_spans[0].scope_spans[0].spans[:2]
    }

    # A span whose id is not hex costs only itself (OTLP/JSON is read span by span).
    hbatch = agent_batch("partial", 5, 3)
    hdoc = json.loads(to_otlp_json(hbatch))
    hdoc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = "not-hex"
    resp_hex = post(server, json.dumps(hdoc).encode(), content_type=JSON)
    assert resp_hex.status_code == 200, resp_hex.text
    hpartial = resp_hex.json()["partialSuccess"]
    assert int(hpartial["rejectedSpans"]) == 1
    assert (
        "resourceSpans[0].scopeSpans[0].spans[1].traceId: 'not-hex' is not a hex id"
        in hpartial["errorMessage"]
    )
    hspans = hbatch.message.resource_spans[0].scope_spans[0].spans
    hvalid = {(hspans[i].trace_id.hex(), hspans[i].span_id.hex()) for i in (0, 2)}

    # When no span is usable the request is a 400 that still says which and why.
    bad = agent_batch("partial", 2, 2)
    for s in bad.message.resource_spans[0].scope_spans[0].spans:
        s.trace_id = b""
    resp = post(server, bad.protobuf())
    assert resp.status_code == 400
    assert "2 span(s) rejected" in error_message(resp) and "got 0 bytes" in error_message(resp)
    assert server.alive()
    later = send_good(server, "partial", 3)
    finish(server, valid | jvalid | hvalid | later.keys)


# --------------------------------------------------------------------------------------------------
# 10. Back-pressure: a full queue answers 503 with Retry-After, and nothing acknowledged is lost
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_full_queue_answers_503_with_retry_after(start_server: Callable[..., ServerProcess]) -> None:
    # Room for one 60-span request: a second arriving while the first is queued or committing is refused.
    env = {"WORKBENCH_QUEUE_MAX_SPANS": "100", "WORKBENCH_COMMIT_MAX_SPANS": "20"}
    server = start_server(env)
    n_spans = 60
    bodies = [agent_batch("queue", i, n_spans).protobuf() for i in range(48)]
    outcomes: dict[int, tuple[int, str | None, str]] = {}
    lock = threading.Lock()
    numbers = iter(range(len(bodies)))

    def client() -> None:
        with httpx.Client(timeout=60) as c:
            while True:
                with lock:
                    i = next(numbers, None)
                if i is None:
                    return
                r = c.post(server.traces_url, content=bodies[i], headers={"content-type": PROTOBUF})
                message = error_message(r) if r.status_code != 200 else ""
                with lock:
                    outcomes[i] = (r.status_code, r.headers.get("retry-after"), message)

    warm = send_good(server, "queue-warm", 0)  # the first commit is slow (lazy imports): not the point
    threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert server.alive()
    statuses = Counter(status for status, _, _ in outcomes.values())
    assert len(outcomes) == len(bodies) and set(statuses) <= {200, 503}, statuses
    print(f"queue full: {dict(statuses)}")
    assert statuses[200] > 0 and statuses[503] > 0, statuses
    for status, retry_after, message in outcomes.values():
        if status == 503:
            assert retry_after is not None and int(retry_after) >= 1
            assert "WORKBENCH_QUEUE_MAX_SPANS" in message, message
    later = send_good(server, "queue-after", 0)
    ok = {i for i, (status, _, _) in outcomes.items() if status == 200}
    # A 503 means nothing of that request was kept (the client will resend it), a 200 means all was.
    finish(server, set().union(*(expected_keys("queue", i, n_spans) for i in ok)) | warm.keys | later.keys)


# --------------------------------------------------------------------------------------------------
# 11. Bearer auth
# --------------------------------------------------------------------------------------------------


def test_bearer_token_required_when_configured(start_server: Callable[..., ServerProcess]) -> None:
    token = "s3cret-token"
    server = start_server({"WORKBENCH_AUTH_TOKEN": token})
    body = agent_batch("auth", 0, 3).protobuf()
    resp = post(server, body)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in error_message(resp)
    assert post(server, body, headers={"authorization": "Bearer wrong"}).status_code == 401
    assert post(server, body, headers={"authorization": token}).status_code == 401
    ok = post(server, body, headers={"authorization": f"Bearer {token}"})
    assert ok.status_code == 200

    gbody = agent_batch("auth", 1, 3)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(gbody.message, timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Also before any decoding: garbage without a token is refused as unauthenticated.
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(EXPORT_METHOD)(b"\x0a\x05abc", timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.Export(gbody.message, metadata=[("authorization", f"Bearer {token}")], timeout=30)
    assert server.alive()
    finish(server, expected_keys("auth", 0, 3) | gbody.keys)


# --------------------------------------------------------------------------------------------------
# 12. OTLP/gRPC
# --------------------------------------------------------------------------------------------------


def test_grpc_valid_malformed_and_oversized(start_server: Callable[..., ServerProcess]) -> None:
    limit = 4 * 2**20  # a small WORKBENCH_MAX_REQUEST_BYTES so that an oversized message is cheap to send
    server = start_server({"WORKBENCH_MAX_REQUEST_BYTES": str(limit)})
    expected: set[SpanKey] = set()
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        raw = channel.unary_unary(EXPORT_METHOD, response_deserializer=ExportTraceServiceResponse.FromString)

        def good(request: int) -> None:
            batch = agent_batch("grpc", request, 5)
            resp = stub.Export(batch.message, timeout=30)
            assert not resp.HasField("partial_success")
            expected.update(batch.keys)

        good(0)
        assert last_seq(server) == 5

        # More spans than WORKBENCH_MAX_SPANS_PER_REQUEST: INVALID_ARGUMENT (not retried by exporters).
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(tiny_batch("grpc-many", 0, 20_001).message, timeout=60)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "20001 spans" in err.value.details() and "WORKBENCH_MAX_SPANS_PER_REQUEST" in (
            err.value.details()
        )
        assert server.alive()
        good(1)

        # Undecodable bytes: INVALID_ARGUMENT with the decoder's message.
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\x0a\x05abc", timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed OTLP protobuf" in err.value.details()
        # A string that is not UTF-8 costs only its span (the request is read again span by span).
        utf8 = agent_batch("grpc", 99, 2)
        partial = raw(utf8.protobuf().replace(b"chat gpt", b"chat \xffpt", 1), timeout=30).partial_success
        assert partial.rejected_spans == 1 and "UTF-8" in partial.error_message
        assert "spans[1]" in partial.error_message
        expected.add((trace_id("grpc", 99).hex(), span_id("grpc", 99, 0).hex()))
        assert server.alive()
        good(2)

        # A message over the size limit is refused by grpc itself before it is read into a request.
        big = agent_batch("grpc-big", 0, 1)
        big.message.resource_spans[0].scope_spans[0].spans[0].attributes.append(
            KeyValue(key="big", value=AnyValue(string_value="x" * (limit + 1024)))
        )
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(big.message, timeout=60)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert server.alive()

        # Partial success over gRPC too.
        mixed = agent_batch("grpc-mixed", 0, 3)
        mixed.message.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x01" * 5
        resp = stub.Export(mixed.message, timeout=30)
        assert resp.partial_success.rejected_spans == 1
        assert "spans[0]" in resp.partial_success.error_message
        expected.update(
            (s.trace_id.hex(), s.span_id.hex())
            for s in mixed.message.resource_spans[0].scope_spans[0].spans[1:]
        )
        good(3)
    assert last_seq(server) == 23
    finish(server, expected)


def test_grpc_real_otlp_exporter(server: ServerProcess) -> None:
    """The stock OTLP gRPC exporter from the OpenTelemetry SDK gets SUCCESS, and its spans are stored."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

    results: list[SpanExportResult] = []

    class Recording(OTLPSpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            result = super().export(spans)
            results.append(result)
            return result

    exporter = Recording(endpoint=server.grpc_target, insecure=True, timeout=30)
    provider = TracerProvider(resource=Resource.create({"service.name": "fault-grpc-exporter"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("fault-tests")
    ids: set[SpanKey] = set()

    def remember(span: object) -> None:
        c = span.get_span_context()  # type: ignore[attr-defined]
        ids.add((format(c.trace_id, "032x"), format(c.span_id, "016x")))

    with tracer.start_as_current_span("invoke_agent grpc-agent") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        remember(root)
        for n in range(3):
            with tracer.start_as_current_span(f"execute_tool step{n}") as span:
                span.set_attribute("gen_ai.operation.name", "execute_tool")
                span.set_attribute("gen_ai.tool.name", f"step{n}")
                remember(span)
    provider.shutdown()
    assert results == [SpanExportResult.SUCCESS] * 4
    assert len(ids) == 4
    finish(server, ids)


def test_sigterm_drains_and_exits_cleanly(server: ServerProcess) -> None:
    """A graceful stop commits, checkpoints, closes the database (no WAL left) and removes server.json."""
    batch = send_good(server, "term", 0, 12)
    finish(server, batch.keys)
    assert not (server.data_dir / "workbench.duckdb.wal").exists()
    con = duckdb.connect(str(server.db_path), read_only=True)
    try:
        assert con.execute("SELECT max(tree_size) FROM ledger_checkpoints").fetchone() == (12,)
    finally:
        con.close()
