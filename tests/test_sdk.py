"""The agent SDK on a real TracerProvider with an in-memory exporter, read back through our normalizer."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collectors import decode, sdk
from collectors.conventions.sdk import SDK_SCOPE_NAME, SIDE_EFFECT_ATTRIBUTE
from collectors.normalize import normalize
from collectors.sdk import BRANCH_CHOSEN_ATTRIBUTE, BRANCH_SCORE_ATTRIBUTE
from workbench.model import SpanRecord, Step, StepKind


class Recorded:
    """A Recorder on a real provider, and what it recorded as decoded spans and normalized steps."""

    def __init__(self) -> None:
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.rec = sdk.Recorder(self.provider)

    def records(self) -> list[SpanRecord]:
        spans = sorted(self.memory.get_finished_spans(), key=lambda s: s.start_time or 0)
        return decode.to_records(encode_spans(spans), 1 << 20).records

    def steps(self) -> list[Step]:
        return [normalize(r) for r in self.records()]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps() if s.name == name)


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


def test_agent_run_and_llm_call(recorded: Recorded) -> None:
    rec = recorded.rec
    with rec.agent_run("ops-agent", task="free disk space", conversation_id="INC-1") as run:
        with rec.llm_call(
            "o4-mini", provider="openai", messages="free disk space", system="be careful"
        ) as call:
            call.reasoning("order_events is the largest table")
            call.respond("I will inspect it.")
            call_id = call.request_tool("run_sql", {"query": "SELECT 1"})
            call.usage(input_tokens=900, output_tokens=450, reasoning_tokens=400, cost_usd=0.0123)
        run.finish("done")
    agent, llm = recorded.steps()
    assert (agent.kind, agent.convention, agent.actor, agent.session_id) == (
        StepKind.AGENT,
        "sdk",
        "ops-agent",
        "INC-1",
    )
    assert agent.input_text == "user: free disk space" and agent.output_text == "assistant: done"
    assert llm.kind is StepKind.LLM and llm.parent_span_id == agent.span_id
    assert (llm.model, llm.provider, llm.actor) == ("o4-mini", "openai", "ops-agent")
    assert llm.reasoning_text == "order_events is the largest table"
    assert "reasoning" not in (llm.output_text or "") and "I will inspect it." in (llm.output_text or "")
    assert call_id in (llm.output_text or "") and "run_sql" in (llm.output_text or "")
    assert llm.input_text == "system: be careful\nuser: free disk space"
    assert (llm.tokens_in, llm.tokens_out, llm.tokens_reasoning, llm.cost_usd) == (900, 450, 400, 0.0123)
    [raw] = [r for r in recorded.records() if r.name.startswith("chat")]
    assert raw.scope_name == SDK_SCOPE_NAME and raw.kind == 3  # SPAN_KIND_CLIENT, as GenAI asks
    assert raw.attributes["gen_ai.response.finish_reasons"] == ["tool_call"]


def test_tool_call_error_and_retry(recorded: Recorded) -> None:
    rec = recorded.rec
    with (
        pytest.raises(PermissionError),
        rec.tool_call("run_sql", {"query": "DROP TABLE t"}, side_effect="drops t"),
    ):
        raise PermissionError("role readonly cannot write")
    first_span = recorded.memory.get_finished_spans()[0]
    with rec.tool_call(
        "run_sql",
        {"query": "DROP TABLE t", "role": "admin"},
        call_id="c2",
        side_effect="dropped t",
        attempt=2,
    ) as retry:
        retry.result({"ok": True})
    failed, ok = recorded.steps()
    assert failed.is_error and failed.error == "PermissionError: role readonly cannot write"
    assert failed.output_text is None, "a call that failed did not have its side effect"
    assert json.loads(failed.tool_arguments or "") == {"query": "DROP TABLE t"}
    assert not ok.is_error and ok.tool_name == "run_sql" and ok.tool_call_id == "c2"
    assert json.loads(ok.tool_result or "") == {"ok": True}
    assert ok.output_text == '{"ok": true}\nside effect: dropped t'
    assert first_span.attributes is not None and SIDE_EFFECT_ATTRIBUTE not in first_span.attributes
    assert first_span.events[0].name == "exception"


def test_retry_links_to_the_failed_attempt(recorded: Recorded) -> None:
    rec = recorded.rec
    with rec.llm_call("m") as first:
        first.fail("rate limited", error_type="RateLimitError")
    with rec.llm_call("m", attempt=2, retry_of=first) as second:
        second.respond("ok")
    failed, retried = recorded.records()
    assert failed.status_code == 2 and normalize(failed).error == "RateLimitError: rate limited"
    assert retried.attributes[sdk.RETRY_ATTEMPT_ATTRIBUTE] == 2
    [link] = retried.links
    assert (link.span_id, link.attributes) == (failed.span_id, {sdk.LINK_TYPE_ATTRIBUTE: "retry_of"})


def test_memory_plan_reasoning_guardrail_human(recorded: Recorded) -> None:
    rec = recorded.rec
    with rec.plan("ship the report", ["recall", "write"]) as plan:
        with plan.subtask():
            with rec.memory_read("how is the report built", store="notes", top_k=2) as memory:
                memory.documents([{"id": "n1", "score": 0.9, "content": "sum revenue per region"}])
        with plan.subtask():
            with rec.reasoning("the total goes last") as thought:
                thought.output("table first")
    with rec.guardrail("destructive-sql", checked="DROP TABLE t") as guard:
        guard.decide("block", "production")
    with rec.human_approval("send it?", approver="maria") as approval:
        approval.decide("approved", "looks right")
    steps = {s.name: s for s in recorded.steps()}
    plan_step = steps["plan"]
    assert plan_step.kind is StepKind.PLAN
    assert (plan_step.input_text, plan_step.output_text) == ("ship the report", "1. recall\n2. write")
    first, second = steps["subtask 1: recall"], steps["subtask 2: write"]
    assert first.kind is second.kind is StepKind.PLAN
    assert first.parent_span_id == second.parent_span_id == plan_step.span_id
    recalled = steps["retrieval notes"]
    assert recalled.kind is StepKind.MEMORY and recalled.parent_span_id == first.span_id
    assert (recalled.input_text, recalled.output_text) == (
        "how is the report built",
        "[n1] (score 0.9) sum revenue per region",
    )
    scratch = steps["reasoning"]
    assert scratch.kind is StepKind.REASONING and scratch.parent_span_id == second.span_id
    assert (scratch.reasoning_text, scratch.output_text) == ("the total goes last", "table first")
    check = steps["guardrail destructive-sql"]
    assert (check.kind, check.input_text, check.output_text) == (
        StepKind.GUARDRAIL,
        "DROP TABLE t",
        "decision: block (production)",
    )
    human = steps["human_approval"]
    assert (human.kind, human.output_text) == (StepKind.HUMAN, "decision: approved (looks right)")


def test_branches_draw_a_tree(recorded: Recorded) -> None:
    rec = recorded.rec
    with rec.branch("A", "big bang") as a:
        a.score(0.3)
        with rec.branch("A.1", "on a weekend") as a1:
            a1.score(0.4)
            a1.choose("best child")
    a_step, a1_step = recorded.steps()
    assert a_step.kind is a1_step.kind is StepKind.REASONING
    assert a1_step.parent_span_id == a_step.span_id
    assert (a_step.reasoning_text, a_step.output_text) == ("big bang", "score 0.30")
    assert a1_step.output_text == "score 0.40, chosen: best child"
    a_raw, a1_raw = recorded.records()
    assert (
        a_raw.attributes[BRANCH_CHOSEN_ATTRIBUTE] is False
        and a1_raw.attributes[BRANCH_CHOSEN_ATTRIBUTE] is True
    )
    assert a1_raw.attributes[BRANCH_SCORE_ATTRIBUTE] == 0.4


def test_decorators(recorded: Recorded) -> None:
    rec = recorded.rec

    @rec.tool(side_effect="writes a file")
    def write_file(path: str, content: str) -> int:
        """Write text to a file."""
        return len(content)

    @rec.agent("writer")
    def writer(task: str) -> str:
        write_file("a.txt", content="hello")
        return f"wrote a.txt for {task!r}"

    assert writer("greet") == "wrote a.txt for 'greet'"
    agent, tool = recorded.steps()
    assert (agent.kind, agent.actor, agent.input_text) == (StepKind.AGENT, "writer", "user: greet")
    assert (tool.kind, tool.tool_name, tool.actor) == (StepKind.TOOL, "write_file", "writer")
    assert json.loads(tool.tool_arguments or "") == {"path": "a.txt", "content": "hello"}
    assert tool.output_text == "5\nside effect: writes a file"
    [raw] = [r for r in recorded.records() if r.name == "execute_tool write_file"]
    assert raw.attributes["gen_ai.tool.description"] == "Write text to a file."


def test_nested_agents_name_their_own_steps(recorded: Recorded) -> None:
    rec = recorded.rec
    with rec.agent_run("lead"):
        with rec.agent_run("helper"), rec.tool_call("search", {"q": "x"}):
            pass
        with rec.tool_call("summarize", {}):
            pass
    actors = {s.name: s.actor for s in recorded.steps()}
    assert actors["execute_tool search"] == "helper" and actors["execute_tool summarize"] == "lead"


class _Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _Refusing(SpanExporter):
    """Remembers the names of the spans it was asked to export, then fails; subclasses say how."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.asked += [s.name for s in spans]
        return self.refuse()

    def refuse(self) -> SpanExportResult:
        raise NotImplementedError


class _Exploding(_Refusing):
    def refuse(self) -> SpanExportResult:
        raise ConnectionError("collector is down")


class _Failing(_Refusing):
    def refuse(self) -> SpanExportResult:
        return SpanExportResult.FAILURE


@pytest.mark.parametrize("exporter_type", [_Exploding, _Failing], ids=["raises", "fails"])
@pytest.mark.parametrize("batch", [False, True], ids=["simple", "batch"])
def test_export_failure_never_reaches_the_agent(exporter_type: type[_Refusing], batch: bool) -> None:
    exporter = exporter_type()
    provider = sdk.configure(exporter=exporter, service_name="t", batch=batch, set_global=False)
    rec = sdk.Recorder(provider)
    with rec.agent_run("a", task="t") as run:
        with rec.tool_call("odd", {"value": _Unprintable()}) as tool:
            tool.result(_Unprintable())
            tool.set("x", object())
        run.finish("finished despite the exporter")
    # The flush itself completes: every span was handed to the exporter once, its failure swallowed.
    assert provider.force_flush(5_000) is True
    assert sorted(exporter.asked) == ["execute_tool odd", "invoke_agent a"]
    provider.shutdown()


def test_the_agents_own_exception_passes_through(recorded: Recorded) -> None:
    with pytest.raises(ZeroDivisionError), recorded.rec.agent_run("a"):
        _ = 1 / 0
    [agent] = recorded.steps()
    assert agent.is_error and agent.error is not None and agent.error.startswith("ZeroDivisionError")


def test_configure_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        sdk.configure()
    with pytest.raises(ValueError, match="exactly one"):
        sdk.configure(endpoint="http://127.0.0.1:1", exporter=InMemorySpanExporter())


_GLOBAL_SNIPPET = """
import json
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from collectors import sdk

memory = InMemorySpanExporter()
provider = sdk.configure(exporter=memory, service_name="ops-agent", batch=False)
with sdk.agent_run("ops-agent", task="free disk space") as run:
    with sdk.guardrail("destructive-sql", checked="DROP TABLE order_events") as check:
        check.decide("block", "destructive statement in production")
    run.finish("blocked")
provider.shutdown()
print(json.dumps([(s.name, s.resource.attributes["service.name"]) for s in memory.get_finished_spans()]))
"""


def test_module_level_helpers_use_the_configured_global_provider() -> None:
    """Run where the global provider is still unset (it can be set once per process)."""
    out = subprocess.run([sys.executable, "-c", _GLOBAL_SNIPPET], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [
        ["guardrail destructive-sql", "ops-agent"],
        ["invoke_agent ops-agent", "ops-agent"],
    ]


def test_handles_never_import_the_recorder() -> None:
    """The dependency runs one way (recorder -> decorators -> handles), with no import hidden under
    TYPE_CHECKING: a handle gets what it needs as arguments."""
    import ast
    from pathlib import Path

    package = Path(sdk.__file__).parent
    for module, forbidden in (
        ("handles.py", ("collectors.sdk.recorder", "collectors.sdk.decorators", "collectors.sdk.provider")),
        ("decorators.py", ("collectors.sdk.recorder", "collectors.sdk.provider")),
    ):
        tree = ast.parse((package / module).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "collectors.sdk" not in imported and not imported & set(forbidden), (module, imported)
    assert max(len((p).read_text().splitlines()) for p in package.glob("*.py")) <= 500
