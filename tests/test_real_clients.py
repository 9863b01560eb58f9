"""Real instrumentation libraries over real sockets into a real `workbench serve`, out of `workbench replay`.

Each library runs in its own process (tests/drive_client.py; instrumentors patch `openai` globally)
against the fake OpenAI-compatible server in tests/fake_openai.py, which answers a tool call
(`run_sql` with `DROP TABLE users`, with `reasoning_content` and reasoning-token usage) and then a
final answer. The spans travel through the libraries' own OTLP exporters; after a graceful stop, the
CLI reads the database and the steps must say what the agent did. Nothing here names an attribute of
the libraries: the libraries write them, the normalizer must find them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, ServerProcess
from tests.fake_openai import (
    FINAL_ANSWER,
    MODEL,
    REASONING_FINAL,
    REASONING_TOOL,
    TOOL_ARGUMENTS,
    TOOL_CALL_ID,
    TOOL_NAME,
    TOOL_RESULT,
    USAGE_FINAL_TURN,
    USAGE_TOOL_TURN,
    USER_PROMPT,
    fake_openai,
)
from workbench.store.connection import Store

pytestmark = pytest.mark.slow


@dataclass
class Run:
    """One agent run as the workbench recorded it."""

    trace_id: str
    exported: int
    steps: list[dict[str, Any]]
    sources: set[str]
    raw_attributes: str  # every stored span's attributes of the trace, as JSON text
    data_dir: Path

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return sorted((s for s in self.steps if s["kind"] == kind), key=lambda s: s["start_time_ns"])

    def one(self, kind: str) -> dict[str, Any]:
        (step,) = self.of_kind(kind)
        return step


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WORKBENCH_", "OPENAI_"))}
    # Loopback only: a proxy configured on the machine must not capture the exporter's or SDK's calls.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = str(ROOT)
    return env


def workbench(data_dir: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "--data-dir", str(data_dir), *args],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"workbench {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def run_library(server: ServerProcess, library: str, protocol: str, compression: str | None = None) -> Run:
    endpoint = server.traces_url if protocol == "http" else server.grpc_target
    with fake_openai() as fake:
        cmd = [sys.executable, "-m", "tests.drive_client", library, "--endpoint", endpoint]
        cmd += ["--protocol", protocol, "--fake-openai", fake.base_url]
        if compression:
            cmd += ["--compression", compression]
        proc = subprocess.run(cmd, cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=120)
        requests = list(fake.requests)
    assert proc.returncode == 0, f"{library} driver failed:\n{proc.stdout}\n{proc.stderr}\n{server.log()}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["answer"] == FINAL_ANSWER
    # The library really went through the SDK to the fake: a tool-call turn, then the final turn.
    assert len(requests) == 2, requests
    assert [t["function"]["name"] for t in requests[0]["tools"]] == [TOOL_NAME]
    assert any(m.get("role") == "tool" for m in requests[1]["messages"])

    assert server.stop() == 0, server.log()
    traces = json.loads(workbench(server.data_dir, "traces", "--json"))
    assert [t["trace_id"] for t in traces] == [report["trace_id"]], traces
    assert traces[0]["span_count"] == report["exported"]

    replayed = json.loads(workbench(server.data_dir, "replay", report["trace_id"], "--json"))
    assert replayed["trace_id"] == report["trace_id"]
    with Store(server.db_path, read_only=True) as store:
        rows = (
            store.cursor()
            .execute("SELECT source, attributes FROM spans WHERE trace_id = ?", [report["trace_id"]])
            .fetchall()
        )
    return Run(
        trace_id=report["trace_id"],
        exported=report["exported"],
        steps=replayed["steps"],
        sources={r[0] for r in rows},
        raw_attributes="\n".join(str(r[1]) for r in rows),
        data_dir=server.data_dir,
    )


def assert_agent_loop_shape(run: Run) -> None:
    """One agent, two model calls, one tool call between them, all under the agent."""
    kinds = sorted(s["kind"] for s in run.steps)
    assert kinds == ["agent", "llm", "llm", "tool"], [
        (s["kind"], s["name"], s["convention"]) for s in run.steps
    ]
    agent = run.one("agent")
    assert agent["parent_span_id"] == ""
    assert all(s["parent_span_id"] == agent["span_id"] for s in run.steps if s is not agent)
    first, second = run.of_kind("llm")
    tool = run.one("tool")
    assert first["start_time_ns"] <= tool["start_time_ns"] <= second["start_time_ns"]


def assert_tool_step(tool: dict[str, Any]) -> None:
    assert tool["tool_name"] == TOOL_NAME
    assert "DROP TABLE users" in (tool["tool_arguments"] or ""), tool
    assert json.loads(tool["tool_arguments"]) == TOOL_ARGUMENTS
    assert "table users dropped" in (tool["tool_result"] or ""), tool
    assert json.loads(tool["tool_result"]) == TOOL_RESULT
    assert not tool["is_error"]


def assert_llm_steps(run: Run, *, reasoning: bool, cached: bool) -> None:
    """Model, token counts and (where the library carries it) the scratchpad, from each response."""
    first, second = run.of_kind("llm")
    for step, usage in ((first, USAGE_TOOL_TURN), (second, USAGE_FINAL_TURN)):
        # The request model, not the dated snapshot the server answered with.
        assert step["model"] == MODEL
        assert step["provider"] == "openai"
        assert (step["tokens_in"], step["tokens_out"]) == (usage.prompt, usage.completion)
        if reasoning:
            assert step["tokens_reasoning"] == usage.reasoning
        if cached:
            # A library may leave out a count of zero.
            assert step["tokens_cached"] == usage.cached or (
                usage.cached == 0 and step["tokens_cached"] is None
            )
        assert not step["is_error"]
    assert TOOL_NAME in first["output_text"] and "DROP TABLE users" in first["output_text"]
    assert USER_PROMPT in first["input_text"]
    assert FINAL_ANSWER in second["output_text"]
    if reasoning:
        assert first["reasoning_text"] == REASONING_TOOL
        assert second["reasoning_text"] == REASONING_FINAL
        # The scratchpad is kept apart from what the agent said.
        assert REASONING_TOOL not in first["output_text"]
        assert REASONING_FINAL not in second["output_text"]


def test_openinference_openai_over_http_gzip(serve_process: ServerProcess) -> None:
    run = run_library(serve_process, "openinference", "http", compression="gzip")
    assert run.sources == {"otlp-http"}
    assert_agent_loop_shape(run)
    assert {s["convention"] for s in run.steps} == {"openinference"}
    agent = run.one("agent")
    assert agent["actor"] == "db-agent"
    assert agent["session_id"] == "sess-real-oi"
    assert FINAL_ANSWER in agent["output_text"]
    assert_tool_step(run.one("tool"))
    # OpenInference leaves `reasoning_content` only in the raw response JSON; it still must come out.
    assert_llm_steps(run, reasoning=True, cached=True)

    text = workbench(run.data_dir, "replay", run.trace_id[:12])
    assert f"trace {run.trace_id}: 4 steps" in text
    assert "TOOL: run_sql" in text
    assert 'tool       run_sql({"query": "DROP TABLE users"})' in text
    assert 'result     {"ok": true, "message": "table users dropped"}' in text
    assert f"reasoning  {REASONING_TOOL}" in text
    assert f"reasoning  {REASONING_FINAL}" in text
    assert "tokens     in 57, out 23, reasoning 11" in text
    assert "tokens     in 91, out 9, reasoning 4, cached 48" in text
    assert "AGENT db-agent" in text


def test_openai_v2_over_grpc(serve_process: ServerProcess) -> None:
    run = run_library(serve_process, "openai-v2", "grpc")
    assert run.sources == {"otlp-grpc"}
    assert_agent_loop_shape(run)
    assert {s["convention"] for s in run.steps} == {"genai"}
    agent = run.one("agent")
    assert agent["actor"] == "db-agent"
    assert agent["operation"] == "invoke_agent"
    assert FINAL_ANSWER in agent["output_text"]
    tool = run.one("tool")
    assert_tool_step(tool)
    assert tool["tool_call_id"] == TOOL_CALL_ID
    assert_llm_steps(run, reasoning=False, cached=False)
    # openai-v2 2.4b0 records neither `reasoning_content` nor reasoning/cached token counts: the raw
    # spans lack them, so the steps must not invent them. If a release starts carrying them, this
    # fails on purpose: map the new attributes, then move this library to reasoning=True above.
    assert REASONING_TOOL not in run.raw_attributes
    for step in run.of_kind("llm"):
        assert step["reasoning_text"] is None
        assert step["tokens_reasoning"] is None


def test_pydantic_ai_openai_model_over_http(serve_process: ServerProcess) -> None:
    run = run_library(serve_process, "pydantic-ai", "http")
    assert run.sources == {"otlp-http"}
    assert_agent_loop_shape(run)
    assert {s["convention"] for s in run.steps} == {"pydantic-ai"}
    agent = run.one("agent")
    assert agent["actor"] == "db_agent"
    assert agent["model"] == MODEL
    assert agent["output_text"] == FINAL_ANSWER
    assert USER_PROMPT in agent["input_text"]
    # The agent span sums its model calls (gen_ai.aggregated_usage.*).
    totals = (USAGE_TOOL_TURN, USAGE_FINAL_TURN)
    assert agent["tokens_in"] == sum(u.prompt for u in totals)
    assert agent["tokens_out"] == sum(u.completion for u in totals)
    assert agent["tokens_reasoning"] == sum(u.reasoning for u in totals)
    tool = run.one("tool")
    assert_tool_step(tool)
    assert tool["tool_call_id"] == TOOL_CALL_ID
    assert tool["actor"] == "db_agent"
    # pydantic-ai turns `reasoning_content` into thinking parts of gen_ai.output.messages.
    assert_llm_steps(run, reasoning=True, cached=True)
