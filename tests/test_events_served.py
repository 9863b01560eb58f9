"""Captured event-mode fixtures through a real `workbench serve`: Google ADK's EVENT_ONLY mode (one
`gen_ai.client.inference.operation.details` record per model call, content in attributes) with its logs
sent BEFORE its spans, and OpenLLMetry's event mode (one record per message, content in the body) with its
spans first. Real sockets, OTLP/JSON over HTTP, the two signals as separate requests; the steps are read
back through the running server (`workbench replay --json` and the read API), not from the file.
"""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import ServerProcess
from tests.fixture_otlp import logs_request, trace_id, traces_request
from workbench.cli import cli

pytestmark = pytest.mark.slow

JSON = {"content-type": "application/json"}
# fixture -> whether its logs are sent before its spans
FIXTURES = {"adk_genai_event_only.json": True, "traceloop_event.json": False}


def _send(client: httpx.Client, server: ServerProcess, name: str, logs_first: bool) -> None:
    halves = [("/v1/logs", logs_request(name)), ("/v1/traces", traces_request(name))]
    for path, body in halves if logs_first else reversed(halves):
        resp = client.post(f"{server.http_url}{path}", content=body, headers=JSON)
        assert resp.status_code == 200, (path, resp.text)
        assert "rejected" not in resp.text, resp.text  # partial_success: every record accepted


def _replay(trace: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(cli, ["replay", trace, "--json"])
    assert result.exit_code == 0, result.output
    steps: list[dict[str, object]] = json.loads(result.output)["steps"]
    return steps


def _fields(step: dict[str, object]) -> list[str]:
    return json.loads(str(step["event_fields"])) if step.get("event_fields") else []


def test_event_mode_fixtures_join_and_are_flagged_through_a_real_server(
    serve_process: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    with httpx.Client(timeout=60) as client:
        for name, logs_first in FIXTURES.items():
            _send(client, serve_process, name, logs_first)

    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(serve_process.data_dir))  # the CLI goes through the server
    adk = _replay(trace_id("adk_genai_event_only.json"))
    (tool,) = [s for s in adk if s["kind"] == "tool"]
    # ADK's spans carry no content: the arguments came from the model call's details record (logs first).
    assert tool["tool_name"] == "run_sql" and "DROP TABLE users" in str(tool["tool_arguments"])
    assert "tool_arguments" in _fields(tool)
    adk_llm = [s for s in adk if s["kind"] == "llm"]
    assert adk_llm and all("input_text" in _fields(s) for s in adk_llm)

    loop = _replay(trace_id("traceloop_event.json"))
    first, second = [s for s in loop if s["kind"] == "llm"]
    assert _fields(first) == ["input_text", "output_text"] == _fields(second)
    assert "Clean up the database" in str(first["input_text"])
    assert '[tool call] run_sql (id call_sql_1) {"query": "DROP TABLE users"}' in str(first["output_text"])
    assert "table users dropped" in str(second["input_text"])

    # The read API has no findings; `findings` needs the file, so the server stops first (as in
    # test_events_real.py); a graceful stop finishes the scan of what was committed.
    assert serve_process.stop() == 0, serve_process.log()
    for name in FIXTURES:
        result = CliRunner().invoke(cli, ["findings", "--trace", trace_id(name), "--json"])
        assert result.exit_code == 0, result.output
        found = json.loads(result.output)
        rows = found if isinstance(found, list) else found.get("findings", [])
        high = [
            f for f in rows if f["severity"] in ("high", "critical") and f["rule_id"] == "destructive-action"
        ]
        assert high and "DROP TABLE users" in str(high[0].get("evidence_excerpt")), (name, rows)
