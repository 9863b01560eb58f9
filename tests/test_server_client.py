"""The one client commands use to reach a running server (workbench/server/client.py), against a real
HTTP server on a loopback socket that answers as a busy, guarded or vanished `workbench serve` would."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.sdk_spans import agent_run_request
from workbench.cli import cli
from workbench.server.client import retry_after
from workbench.settings import Settings


class FakeServer(ThreadingHTTPServer):
    """Answers each request with the next scripted (status, headers, body); records what it got."""

    def __init__(self, script: list[tuple[int, dict[str, str], bytes]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.seen: list[tuple[str, str, str | None]] = []


class _Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        status, headers, body = self.server.script.pop(0) if self.server.script else (500, {}, b"")
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake(_isolated_data_dir: Path) -> Iterator[FakeServer]:
    """A fake server registered in server.json as the holder of the test's database."""
    server = FakeServer([])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    info = {
        "pid": os.getpid(),
        "host": "127.0.0.1",
        "http_port": server.server_address[1],
        "grpc_port": 0,
        "db": str(settings.db_path.resolve()),
    }
    (settings.data_dir / "server.json").write_text(json.dumps(info))
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


OK = (200, {"Content-Type": "application/x-protobuf"}, ExportTraceServiceResponse().SerializeToString())
BUSY = (503, {"Retry-After": "0", "Content-Type": "text/plain"}, b"queue full")


def _sample(tmp_path: Path) -> Path:
    path = tmp_path / "run.pb"
    path.write_bytes(agent_run_request(3).SerializeToString())
    return path


def test_ingest_waits_out_a_full_queue_and_sends_again(fake: FakeServer, tmp_path: Path) -> None:
    fake.script = [BUSY, BUSY, OK]
    result = CliRunner().invoke(cli, ["ingest", str(_sample(tmp_path))])
    assert result.exit_code == 0, result.output
    assert f"ingested 7 spans from 1 file(s) via workbench serve (PID {os.getpid()})" in result.output
    assert [(method, path) for method, path, _ in fake.seen] == [("POST", "/v1/traces")] * 3


def test_a_missing_token_is_named_the_same_way_by_every_command(fake: FakeServer, tmp_path: Path) -> None:
    refused = (401, {"WWW-Authenticate": "Bearer", "Content-Type": "application/json"}, b'{"error": "no"}')
    for args in (["ingest", str(_sample(tmp_path))], ["traces"], ["replay", "abcd"]):
        fake.script = [refused]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, (args, result.output)
        assert "requires a bearer token: set WORKBENCH_AUTH_TOKEN" in result.output, (args, result.output)
        assert "Traceback" not in result.output
    fake.script = [refused]
    wrong = CliRunner().invoke(cli, ["traces"], env={"WORKBENCH_AUTH_TOKEN": "guess"})
    assert wrong.exit_code == 1 and "rejected the bearer token in WORKBENCH_AUTH_TOKEN" in wrong.output
    assert fake.seen[-1][2] == "Bearer guess"


def test_a_server_that_does_not_answer_is_one_line(fake: FakeServer, tmp_path: Path) -> None:
    fake.shutdown()
    fake.server_close()  # server.json still names it, as after a hang or a firewall
    for args in (["ingest", str(_sample(tmp_path))], ["traces"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert "holds" in result.output and "cannot be reached" in result.output, result.output
        assert "Traceback" not in result.output


def test_an_error_answer_quotes_the_servers_message(fake: FakeServer) -> None:
    fake.script = [(400, {"Content-Type": "application/json"}, b'{"error": "abcd matches several traces"}')]
    result = CliRunner().invoke(cli, ["replay", "abcd"])
    assert result.exit_code == 1 and "answered 400: abcd matches several traces" in result.output


def test_retry_after_reads_seconds_and_dates_within_bounds() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(None) == retry_after("soon") == 1.0
    assert retry_after("-5") == 0.0 and retry_after("86400") == 30.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: go now
