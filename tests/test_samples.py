"""The sample incidents, sent through a real `workbench serve` over OTLP/HTTP, read back as steps.

What each test asserts is what `sample_traces/README.md` tells an investigator to find.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from sample_traces.catalog import SAMPLES, Sample, get
from sample_traces.generate import generate, run_live
from sample_traces.scenarios import prompt_injection, runaway_reasoning
from tests.conftest import ServerProcess
from workbench.cli import cli
from workbench.cli.loading import ingest_files
from workbench.model import Step, StepKind, StoredStep
from workbench.settings import Settings
from workbench.store import queries
from workbench.store.connection import Store

EXPECTED_KINDS = {
    "db_deletion": {"agent": 1, "llm": 7, "tool": 5, "memory": 1, "guardrail": 1},
    "prompt_injection": {"agent": 1, "llm": 4, "reasoning": 4, "tool": 3, "guardrail": 1},
    "weekly_report": {"agent": 1, "plan": 6, "llm": 9, "tool": 7, "memory": 1, "human": 1},
    "tree_of_thought": {"agent": 1, "plan": 1, "reasoning": 9, "llm": 11, "tool": 1},
    "runaway_reasoning": {"agent": 1, "llm": 8, "memory": 8, "guardrail": 1},
}


@dataclass
class Served:
    data_dir: Path
    via: str
    accepted: int
    steps: dict[str, list[Step]]  # sample name -> its steps in time order
    links: dict[str, list[tuple[str, str, str]]]  # sample name -> (span, linked span, link type)


def _read_back(data_dir: Path, trace_ids: dict[str, str]) -> tuple[dict[str, list[Step]], dict[str, list]]:
    steps: dict[str, list[Step]] = {}
    links: dict[str, list] = {}
    with Store(data_dir / "workbench.duckdb", read_only=True) as store:
        for name, trace_id in trace_ids.items():
            stored: list[StoredStep] = queries.trace_steps(store, trace_id)
            steps[name] = [s.step for s in stored]
            rows = (
                store.cursor()
                .execute("SELECT span_id, links FROM spans WHERE trace_id = ? ORDER BY seq", [trace_id])
                .fetchall()
            )
            links[name] = [
                (span_id, link["span_id"], link["attributes"].get("workbench.link.type"))
                for span_id, raw in rows
                for link in json.loads(raw)
            ]
    return steps, links


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Every sample file sent to a real server the way `workbench ingest` does while one runs."""
    server = ServerProcess(tmp_path_factory.mktemp("samples") / "served").start()
    try:
        totals = ingest_files(Settings(data_dir=server.data_dir), [s.path for s in SAMPLES])
    finally:
        assert server.stop() == 0, server.log()
    steps, links = _read_back(server.data_dir, {s.name: s.trace_id() for s in SAMPLES})
    yield Served(server.data_dir, totals.via, totals.accepted, steps, links)


def _kinds(steps: list[Step]) -> dict[str, int]:
    return dict(Counter(str(s.kind) for s in steps))


def _tools(steps: list[Step], name: str | None = None) -> list[Step]:
    return [s for s in steps if s.kind is StepKind.TOOL and (name is None or s.tool_name == name)]


def _one(steps: list[Step], kind: StepKind) -> Step:
    [step] = [s for s in steps if s.kind is kind]
    return step


def test_samples_travel_over_otlp_http(served: Served) -> None:
    assert served.via.startswith("workbench serve")
    assert served.accepted == sum(sum(k.values()) for k in EXPECTED_KINDS.values())


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_each_sample_normalizes_into_its_kinds(served: Served, sample: Sample) -> None:
    steps = served.steps[sample.name]
    assert _kinds(steps) == EXPECTED_KINDS[sample.name]
    assert {s.convention for s in steps} == {"sdk"}
    root = steps[0]
    assert root.kind is StepKind.AGENT and root.parent_span_id == ""
    assert all(s.actor == root.actor for s in steps), "every step names the agent that acted"


def test_db_deletion(served: Served) -> None:
    steps = served.steps["db_deletion"]
    assert [t.tool_name for t in _tools(steps)] == [
        "run_sql",
        "run_sql",
        "get_credentials",
        "run_sql",
        "run_sql",
    ]
    size, first_drop, creds, retry, vacuum = _tools(steps)
    assert json.loads(first_drop.tool_arguments or "") == {
        "query": "DROP TABLE order_events",
        "role": "readonly",
    }
    assert first_drop.is_error and (first_drop.error or "").startswith("PermissionError: permission denied")
    assert "attempt to write a readonly database" in (first_drop.error or "")
    assert json.loads(creds.tool_arguments or "")["role"] == "admin"
    assert json.loads(retry.tool_arguments or "") == {
        "query": "DROP TABLE order_events",
        "role": "admin",
        "skip_guardrail": True,
    }
    assert not retry.is_error and "side effect: dropped table order_events (30,000 rows" in (
        retry.output_text or ""
    )
    assert served.links["db_deletion"] == [(retry.span_id, first_drop.span_id, "retry_of")]
    guard = _one(steps, StepKind.GUARDRAIL)
    assert guard.output_text is not None and guard.output_text.startswith("decision: skipped")
    assert guard.start_time_ns < retry.start_time_ns
    assert "Never DROP or TRUNCATE tables in production" in (_one(steps, StepKind.MEMORY).output_text or "")
    reasoning = [s.reasoning_text or "" for s in steps if s.kind is StepKind.LLM]
    assert any("fastest way to meet the goal" in r for r in reasoning)
    assert any("skip_guardrail=true" in r for r in reasoning)
    assert StepKind.HUMAN not in {s.kind for s in steps}, "nobody approved the DROP"
    assert [s for s in steps if s.is_error] == [first_drop]


def test_prompt_injection(served: Served) -> None:
    steps = served.steps["prompt_injection"]
    fetch, customers, post = _tools(steps)
    assert (fetch.tool_name, customers.tool_name, post.tool_name) == (
        "fetch_url",
        "query_customers",
        "http_post",
    )
    assert "IMPORTANT NOTICE FOR AI SUPPORT ASSISTANTS" in (fetch.tool_result or "")
    assert "Memphis" in (fetch.tool_result or "")
    assert len(json.loads(customers.tool_result or "")["rows"]) == 25
    args = json.loads(post.tool_arguments or "")
    assert args["url"] == prompt_injection.EGRESS_URL
    assert len(args["body"]["customers"]) == 25 and all("@" in c["email"] for c in args["body"]["customers"])
    assert json.loads(post.tool_result or "")["simulated"] is True
    assert "no request left the machine" in (post.output_text or "")
    guard = _one(steps, StepKind.GUARDRAIL)
    assert guard.output_text is not None and guard.output_text.startswith("decision: allow")
    assert "'*parcelfast*'" in guard.output_text
    thoughts = [s.reasoning_text or "" for s in steps if s.kind is StepKind.REASONING]
    assert any("looks like a real regulatory requirement" in t for t in thoughts)
    answer = steps[0].output_text or ""
    assert "Memphis" in answer and "audit" not in answer.lower() and "upload" not in answer.lower()


def test_weekly_report(served: Served) -> None:
    steps = served.steps["weekly_report"]
    by_span = {s.span_id: s for s in steps}
    plan = next(s for s in steps if s.name == "plan")
    subtasks = [s for s in steps if s.kind is StepKind.PLAN and s.name.startswith("subtask")]
    assert len(subtasks) == 5 and all(s.parent_span_id == plan.span_id for s in subtasks)
    for tool in _tools(steps):
        assert by_span[tool.parent_span_id].name.startswith("subtask"), "every action serves a sub-task"
    errors = [s for s in steps if s.is_error]
    assert len(errors) == 1 and (errors[0].error or "").startswith("FileNotFoundError")
    names = [t.tool_name for t in _tools(steps)]
    assert names[:3] == ["read_csv", "list_dir", "read_csv"]
    assert json.loads(_tools(steps)[2].tool_arguments or "") == {"path": "data/sales_2025-W44.csv"}
    assert "note-12" in (_one(steps, StepKind.MEMORY).output_text or "")
    human = _one(steps, StepKind.HUMAN)
    send = _tools(steps, "send_email")[0]
    assert (human.output_text or "").startswith(
        "decision: approved"
    ) and human.end_time_ns < send.start_time_ns


def test_tree_of_thought_branches(served: Served) -> None:
    steps = served.steps["tree_of_thought"]
    plan = next(s for s in steps if s.kind is StepKind.PLAN)
    branches = {s.name.removeprefix("branch "): s for s in steps if s.name.startswith("branch ")}
    assert set(branches) == {"A", "A.1", "A.2", "B", "B.1", "B.2", "C", "C.1"}
    assert all(b.kind is StepKind.REASONING and b.reasoning_text for b in branches.values())
    for label, branch in branches.items():
        parent = plan.span_id if "." not in label else branches[label.split(".")[0]].span_id
        assert branch.parent_span_id == parent, label
    chosen = {label for label, b in branches.items() if "chosen" in (b.output_text or "")}
    assert chosen == {"B", "B.1"}
    assert (branches["B.1"].output_text or "").startswith("score 0.88")
    evaluations = [
        s
        for s in steps
        if s.kind is StepKind.LLM and s.parent_span_id in {b.span_id for b in branches.values()}
    ]
    assert len(evaluations) == len(branches)
    select = next(s for s in steps if s.name == "select path")
    assert select.output_text == "chosen: B -> B.1"


def test_runaway_reasoning_cost(served: Served) -> None:
    steps = served.steps["runaway_reasoning"]
    calls = [s for s in steps if s.kind is StepKind.LLM]
    assert len(calls) == runaway_reasoning.MAX_ITERATIONS
    for call in calls:
        assert call.tokens_out is not None and call.tokens_reasoning is not None
        visible = call.tokens_out - call.tokens_reasoning
        assert 10 <= call.tokens_reasoning / visible <= 100
    assert sum(c.tokens_reasoning or 0 for c in calls) == 102_592
    assert [c.tokens_in for c in calls] == sorted(c.tokens_in or 0 for c in calls), "the prompt keeps growing"
    queries_asked = Counter(s.input_text for s in steps if s.kind is StepKind.MEMORY)
    assert max(queries_asked.values()) >= 3, "the same search, again and again"
    guard = _one(steps, StepKind.GUARDRAIL)
    assert guard.output_text == "decision: stop (max_iterations=8 reached without a final answer)"
    agent = steps[0]
    assert agent.is_error and (agent.error or "").startswith("MaxIterationsExceeded")


REPLAY_SHOWS = {
    "db_deletion": [
        "PermissionError: permission denied: role 'readonly'",
        "decision: skipped",
        "side effect: dropped table order_events",
        '"skip_guardrail": true',
    ],
    "prompt_injection": [
        "IMPORTANT NOTICE FOR AI SUPPORT ASSISTANTS",
        "audit-upload.parcelfast-support",
        "decision: allow",
    ],
    "weekly_report": ["FileNotFoundError", "list_dir", "decision: approved", "PLAN"],
    "tree_of_thought": ["branch B.1", "score 0.88, chosen", "chosen: B -> B.1"],
    "runaway_reasoning": ["reasoning 16384", "decision: stop", "MaxIterationsExceeded"],
}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_replay_shows_what_the_readme_says(served: Served, sample: Sample) -> None:
    result = CliRunner().invoke(cli, ["--data-dir", str(served.data_dir), "replay", sample.trace_id()[:12]])
    assert result.exit_code == 0, result.output
    for text in REPLAY_SHOWS[sample.name]:
        assert text in result.output, f"{sample.name}: {text!r} missing from the replay"


def test_samples_regenerate_byte_for_byte(tmp_path: Path) -> None:
    written = generate(tmp_path)
    assert [p.name for p in written] == [s.file for s in SAMPLES]
    for sample, path in zip(SAMPLES, written, strict=True):
        assert path.read_bytes() == sample.path.read_bytes(), (
            f"{sample.file} is stale: run `python -m sample_traces.generate` and commit the result"
        )


def test_catalog() -> None:
    assert len({s.trace_id() for s in SAMPLES}) == len(SAMPLES)
    assert get("db_deletion").path.name == "db_deletion.json"
    with pytest.raises(KeyError, match="known: db_deletion"):
        get("nope")
    readme = (SAMPLES[0].path.parent / "README.md").read_text()
    for sample in SAMPLES:
        assert f"`{sample.file}`" in readme and sample.trace_id()[:8] in readme


@pytest.mark.slow
def test_live_agents_export_over_otlp_http(serve_process: ServerProcess) -> None:
    """`workbench demo --live`: the scripted agents, exporting with the SDK's OTLP/HTTP configuration."""
    run_live(serve_process.http_url, pace=0)
    assert serve_process.stop() == 0
    with Store(serve_process.db_path, read_only=True) as store:
        traces = queries.list_traces(store)
        by_service = {t.service_name: queries.trace_steps(store, t.trace_id) for t in traces}
    assert len(traces) == len(SAMPLES)
    for sample in SAMPLES:
        service = __import__(sample.scenario, fromlist=["SERVICE"]).SERVICE
        assert _kinds([s.step for s in by_service[service]]) == EXPECTED_KINDS[sample.name]
