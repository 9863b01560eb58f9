"""The read API (`GET /api/v1/...`) of a real `workbench serve`, and the CLI reading through it while the
server holds the database."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from benchmarks.payloads import export_request
from tests.conftest import ServerProcess
from workbench.cli import cli
from workbench.settings import Settings
from workbench.store import queries
from workbench.store.connection import Store

pytestmark = pytest.mark.slow

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _request(seed: int, spans: int, trace_hex: str) -> ExportTraceServiceRequest:
    """Benchmark spans (OpenInference + GenAI attributes) under a trace id chosen by the test."""
    req = export_request(seed, spans)
    for span in req.resource_spans[0].scope_spans[0].spans:
        span.trace_id = bytes.fromhex(trace_hex)
    return req


# Two ids share the prefix "abcd" (ambiguous); the third is alone under "1234".
TRACE_A = "abcd" + "0" * 27 + "1"
TRACE_B = "abcd" + "0" * 27 + "2"
TRACE_C = "1234" + "f" * 28


def _load(server: ServerProcess, client: httpx.Client, headers: dict[str, str] | None = None) -> None:
    for seed, (trace, n) in enumerate([(TRACE_A, 250), (TRACE_B, 3), (TRACE_C, 40)]):
        body = _request(seed, n, trace).SerializeToString()
        resp = client.post(server.traces_url, content=body, headers={**PROTOBUF, **(headers or {})})
        assert resp.status_code == 200, resp.text


def test_pages_of_traces_and_steps_match_the_database(serve_process: ServerProcess) -> None:
    with httpx.Client(timeout=60) as client:
        _load(serve_process, client)
        api = f"{serve_process.http_url}/api/v1"

        listed = client.get(f"{api}/traces").json()
        assert listed["total"] == 3 and listed["offset"] == 0
        assert {t["trace_id"] for t in listed["traces"]} == {TRACE_A, TRACE_B, TRACE_C}
        by_id = {t["trace_id"]: t for t in listed["traces"]}
        assert by_id[TRACE_A]["span_count"] == 250 and by_id[TRACE_C]["service_name"] == "bench-agent"
        # the unfiltered page has the search page's row shape: findings and the worst severity too
        assert all({"findings", "max_severity", "matches"} <= t.keys() for t in listed["traces"])
        second = client.get(f"{api}/traces", params={"limit": 1, "offset": 1}).json()
        assert second["total"] == 3 and [t["trace_id"] for t in second["traces"]] == [
            listed["traces"][1]["trace_id"]
        ]

        whole = client.get(f"{api}/traces/{TRACE_A}/steps").json()
        assert whole["trace_id"] == TRACE_A and whole["total"] == 250 and len(whole["steps"]) == 250
        paged: list[dict[str, object]] = []
        while len(paged) < 250:
            page = client.get(f"{api}/traces/{TRACE_A}/steps", params={"limit": 64, "offset": len(paged)})
            assert page.status_code == 200 and page.json()["total"] == 250
            assert page.json()["steps"], f"an empty page at offset {len(paged)}"  # else this never ends
            paged += page.json()["steps"]
        assert paged == whole["steps"]

        # A unique prefix resolves (any case); the answer names the full id.
        by_prefix = client.get(f"{api}/traces/1234FF/steps").json()
        assert by_prefix["trace_id"] == TRACE_C and by_prefix["total"] == 40

    serve_process.stop()
    with Store(serve_process.db_path, read_only=True) as store:
        stored = queries.trace_steps(store, TRACE_A)
    assert [s["seq"] for s in whole["steps"]] == [s.seq for s in stored]
    first = {k: v for k, v in whole["steps"][0].items() if k != "seq"}
    assert first == json.loads(json.dumps(dataclasses.asdict(stored[0].step)))
    assert first["kind"] == "llm" and first["model"] == "gpt-4o-mini"


def test_text_search_through_the_api_is_the_traces_pages_search(serve_process: ServerProcess) -> None:
    with httpx.Client(timeout=60) as client:
        _load(serve_process, client)
        api = f"{serve_process.http_url}/api/v1"
        found = client.get(f"{api}/traces", params={"q": "chatCOMPLETION", "limit": 10}).json()
        assert found["total"] is None
        assert {t["trace_id"]: t["matches"] for t in found["traces"]} == {
            TRACE_A: 250,
            TRACE_B: 3,
            TRACE_C: 40,
        }
        for hostile in ['"', "*", "NEAR(", "'; DROP TABLE steps; --", "Ünïcödé"]:
            resp = client.get(f"{api}/traces", params={"q": hostile})
            assert resp.status_code == 200 and resp.json()["traces"] == [], hostile


def test_bad_requests_get_a_clear_error_and_the_server_stays_up(serve_process: ServerProcess) -> None:
    with httpx.Client(timeout=60) as client:
        _load(serve_process, client)
        api = f"{serve_process.http_url}/api/v1"
        cases = [
            (f"{api}/traces?limit=abc", 400, "'limit'"),
            (f"{api}/traces?limit=0", 400, "'limit'"),
            (f"{api}/traces?offset=-5", 400, "'offset'"),
            (f"{api}/traces/{TRACE_A}/steps?limit=100001", 400, "100000"),
            (f"{api}/traces/abcd/steps", 400, "matches several traces"),
            (f"{api}/traces/not-hex/steps", 400, "not hexadecimal"),
            (f"{api}/traces/{'e' * 32}/steps", 404, "no trace"),
        ]
        for url, status, words in cases:
            resp = client.get(url)
            assert resp.status_code == status, (url, resp.text)
            assert words in resp.json()["error"], (url, resp.text)
        assert client.get(f"{api}/traces").json()["total"] == 3
    assert serve_process.alive()


def test_bearer_token_is_required_when_configured(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "auth", env={"WORKBENCH_AUTH_TOKEN": "s3cret"}).start()
    try:
        with httpx.Client(timeout=60) as client:
            _load(server, client, {"Authorization": "Bearer s3cret"})
            url = f"{server.http_url}/api/v1/traces"
            assert client.get(url).status_code == 401
            assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
            ok = client.get(url, headers={"Authorization": "Bearer s3cret"})
            assert ok.status_code == 200 and ok.json()["total"] == 3
    finally:
        server.stop()


def test_cli_traces_and_replay_read_through_a_running_server(
    serve_process: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    with httpx.Client(timeout=60) as client:
        _load(serve_process, client)
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(serve_process.data_dir))
    runner = CliRunner()

    live_traces = runner.invoke(cli, ["traces", "--json"])
    assert live_traces.exit_code == 0, live_traces.output
    live_replay = runner.invoke(cli, ["replay", "1234", "--json"])
    assert live_replay.exit_code == 0, live_replay.output
    text_replay = runner.invoke(cli, ["replay", "1234"])
    assert text_replay.exit_code == 0 and TRACE_C in text_replay.output
    ambiguous = runner.invoke(cli, ["replay", "abcd"])
    assert ambiguous.exit_code == 1 and "matches several traces" in ambiguous.output
    # Another database file than the server's is read directly, not through the server.
    other = runner.invoke(cli, ["--db", str(serve_process.data_dir / "other.duckdb"), "traces"])
    assert other.exit_code == 1 and "no workbench database at" in other.output

    # The same commands after the server stops read the file directly: the answers must not differ.
    serve_process.stop()
    assert Settings.from_env().data_dir == serve_process.data_dir
    assert runner.invoke(cli, ["traces", "--json"]).output == live_traces.output
    assert runner.invoke(cli, ["replay", "1234", "--json"]).output == live_replay.output
    assert len(json.loads(live_replay.output)["steps"]) == 40


def test_cli_names_the_token_when_the_server_requires_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ServerProcess(tmp_path / "auth", env={"WORKBENCH_AUTH_TOKEN": "s3cret"}).start()
    try:
        monkeypatch.setenv("WORKBENCH_DATA_DIR", str(server.data_dir))
        refused = CliRunner().invoke(cli, ["traces"])
        assert refused.exit_code == 1 and "WORKBENCH_AUTH_TOKEN" in refused.output
        monkeypatch.setenv("WORKBENCH_AUTH_TOKEN", "s3cret")
        allowed = CliRunner().invoke(cli, ["traces"])
        assert allowed.exit_code == 0 and "no traces yet" in allowed.output
    finally:
        server.stop()


def test_ingest_into_another_database_than_the_servers_says_so_and_never_sends_it(
    serve_process: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--db OTHER ingest` while a server holds the data directory's own database: the spans go to OTHER
    (the file the user named), nothing reaches the server, and the command says why."""
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(serve_process.data_dir))
    sample = tmp_path / "one.pb"
    sample.write_bytes(_request(7, 5, TRACE_C).SerializeToString())
    other = tmp_path / "other.duckdb"
    runner = CliRunner()

    result = runner.invoke(cli, ["--db", str(other), "ingest", str(sample)])
    assert result.exit_code == 0, result.output
    assert f"holds {serve_process.db_path.resolve()}, not {other.resolve()}" in result.output
    assert f"ingested 5 spans from 1 file(s) into {other}" in result.output
    with httpx.Client(timeout=60) as client:
        assert client.get(f"{serve_process.http_url}/api/v1/traces").json()["total"] == 0
    named = json.loads(runner.invoke(cli, ["--db", str(other), "traces", "--json"]).output)
    assert [(t["trace_id"], t["span_count"]) for t in named] == [(TRACE_C, 5)]

    # Without --db the same file goes to the server that holds the database.
    served = runner.invoke(cli, ["ingest", str(sample)])
    assert served.exit_code == 0 and f"via workbench serve (PID {serve_process.proc.pid})" in served.output
    assert "holds" not in served.output
