"""The normalizer against spans real libraries emitted (tests/fixtures/conventions) and against garbage.

Captured fixtures come from capture.py in that folder; hand-written ones say so in their "source".
Ids and timestamps change when fixtures are regenerated, so these tests look spans up by name and
order and assert on content only.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from collectors import normalize as normalize_module
from collectors.conventions import sdk
from collectors.normalize import normalize
from tests.conventions_fixture import fixture_files, fixture_spans, load_fixture, span_record
from workbench.model import SpanEvent, SpanRecord, Step, StepKind

EXPECTED_CONVENTIONS = {
    "openai_v2_span_only.json": {"genai"},
    "openai_v2_span_and_event.json": {"genai"},
    "openai_v2_true.json": {"genai"},
    "openinference_openai.json": {"openinference"},
    "openinference_openai_genai_dual.json": {"openinference"},
    "openinference_shapes_handwritten.json": {"openinference"},
    "pydantic_ai_function.json": {"pydantic-ai"},
    "pydantic_ai_function_v2_format.json": {"pydantic-ai"},
    "pydantic_ai_openai.json": {"pydantic-ai"},
    "traceloop_handwritten.json": {"traceloop"},
    "genai_legacy_handwritten.json": {"genai-legacy"},
    # Google ADK 2.13 (tests/fixtures/conventions/capture_frameworks.py; tested in test_frameworks.py)
    "adk_default_no_content.json": {"genai"},
    "adk_genai_event_only.json": {"genai"},
    "adk_genai_span_only.json": {"genai"},
    "adk_genai_span_only_benign.json": {"genai"},
    "adk_legacy_span.json": {"genai", "genai-legacy"},
    "adk_legacy_span_benign.json": {"genai", "genai-legacy"},
    # OpenAI Agents SDK 0.24 + openinference-instrumentation-openai-agents 2.6 (capture_frameworks.py)
    "openai_agents_span.json": {"openinference"},
    "openai_agents_span_benign.json": {"openinference"},
    # LlamaIndex 0.14 + openinference-instrumentation-llama-index 4.6 (capture_frameworks.py)
    "llama_index_span.json": {"openinference"},
    "llama_index_span_benign.json": {"openinference"},
    # OpenLLMetry: traceloop-sdk 0.62 + opentelemetry-instrumentation-openai 0.62 (capture_frameworks.py)
    "traceloop_span.json": {"traceloop"},
    "traceloop_span_benign.json": {"traceloop"},
    "traceloop_event.json": {"traceloop"},
    "traceloop_event_benign.json": {"traceloop"},
    # CrewAI 1.15 + openinference-instrumentation-crewai 1.1, wrapper and event-listener modes
    "crewai_wrapper.json": {"openinference"},
    "crewai_wrapper_benign.json": {"openinference"},
    "crewai_listener.json": {"openinference"},
    "crewai_listener_benign.json": {"openinference"},
}


def steps(name: str) -> list[Step]:
    return [normalize(s) for s in fixture_spans(name)]


def by_kind(items: list[Step], kind: StepKind) -> list[Step]:
    return [s for s in items if s.kind is kind]


def args(step: Step) -> Any:
    assert step.tool_arguments is not None, step
    return json.loads(step.tool_arguments)


# ---------------------------------------------------------------------------------------------------
# Every fixture
# ---------------------------------------------------------------------------------------------------


def test_every_fixture_is_known() -> None:
    assert set(fixture_files()) == set(EXPECTED_CONVENTIONS)


@pytest.mark.parametrize("name", sorted(EXPECTED_CONVENTIONS))
def test_fixture_maps_one_step_per_span(name: str) -> None:
    doc = load_fixture(name)
    assert doc["source"].startswith(("captured:", "hand-written"))
    spans = fixture_spans(name)
    result = [normalize(s) for s in spans]
    assert len(result) == len(spans) > 0
    for span, step in zip(spans, result, strict=True):
        assert (step.trace_id, step.span_id, step.parent_span_id) == (
            span.trace_id,
            span.span_id,
            span.parent_span_id,
        )
        assert step.name == span.name and step.service_name == doc["service_name"]
        assert step.convention in EXPECTED_CONVENTIONS[name]
        assert step.kind is not StepKind.OTHER or step.convention in ("openinference", "traceloop")


# ---------------------------------------------------------------------------------------------------
# GenAI: opentelemetry-instrumentation-openai-v2 2.4b0 + opentelemetry-util-genai 1.1b0
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["openai_v2_span_only.json", "openai_v2_span_and_event.json"])
def test_openai_v2_with_content(name: str) -> None:
    result = steps(name)
    agent, memory, chat1, tool, chat2, bad_tool, bad_chat = result
    assert [s.kind for s in result] == [
        StepKind.AGENT,
        StepKind.MEMORY,
        StepKind.LLM,
        StepKind.TOOL,
        StepKind.LLM,
        StepKind.TOOL,
        StepKind.LLM,
    ]
    assert agent.actor == "weather-agent" and agent.operation == "invoke_agent"
    assert (agent.tokens_in, agent.tokens_out, agent.session_id) == (122, 29, "conv-42")
    assert "It is sunny" in (agent.output_text or "")

    assert memory.input_text == "Paris" and "capital of France" in (memory.output_text or "")

    # The request model, not the dated response model.
    assert chat1.model == "gpt-4o-mini" and chat1.provider == "openai"
    assert (chat1.tokens_in, chat1.tokens_out) == (42, 17)
    assert "system: You are a weather assistant" in (chat1.input_text or "")
    assert "user: What is the weather in Paris?" in (chat1.input_text or "")
    assert "get_weather" in (chat1.output_text or "") and '"city": "Paris"' in (chat1.output_text or "")
    assert chat1.tool_name is None  # a requested call is output, not a tool step
    assert "It is sunny and 21 C in Paris." in (chat2.output_text or "")
    assert "tool result" in (chat2.input_text or "")

    assert (tool.tool_name, tool.tool_call_id) == ("get_weather", "call_weather_1")
    assert args(tool) == {"city": "Paris"}
    assert json.loads(tool.tool_result or "")["temperature_c"] == 21
    assert not tool.is_error

    assert bad_tool.is_error and bad_tool.error == "ValueError: unknown city: Atlantis"
    assert bad_chat.is_error and bad_chat.model == "broken-model"
    # error.type arrives as "<class 'openai.BadRequestError'>" from 2.4b0; the step names the class.
    assert (bad_chat.error or "").startswith("openai.BadRequestError: Error code: 400")


def test_openai_v2_capture_mode_true_carries_no_content() -> None:
    """util-genai 1.1b0 rejects "true" (wants span_only / span_and_event): kinds and tokens, no content."""
    agent, memory, chat1, tool, _chat2, bad_tool, _bad_chat = steps("openai_v2_true.json")
    assert chat1.kind is StepKind.LLM and chat1.input_text is None and chat1.output_text is None
    assert (chat1.tokens_in, chat1.tokens_out) == (42, 17)
    assert tool.tool_name == "get_weather" and tool.tool_arguments is None and tool.tool_result is None
    assert bad_tool.is_error and "ValueError" in (bad_tool.error or "")


# ---------------------------------------------------------------------------------------------------
# OpenInference: openinference-instrumentation-openai 0.1.66
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["openinference_openai.json", "openinference_openai_genai_dual.json"])
def test_openinference_openai(name: str) -> None:
    agent, chat1, tool, chat2, bad_tool, bad_chat = steps(name)
    assert agent.kind is StepKind.AGENT and agent.actor == "weather-agent"
    assert (agent.session_id, agent.user_id) == ("sess-oi-1", "user-oi-7")
    assert agent.input_text == "What is the weather in Paris?"

    assert chat1.kind is StepKind.LLM
    # llm.model_name (and dual-emitted gen_ai.request.model) hold the response model; the request wins.
    assert chat1.model == "gpt-4o-mini" and chat1.provider == "openai"
    assert (chat1.tokens_in, chat1.tokens_out, chat1.tokens_reasoning, chat1.tokens_cached) == (42, 17, 8, 10)
    assert "[tool call] get_weather" in (chat1.output_text or "")
    # reasoning_content only survives in the raw response JSON of output.value.
    assert chat1.reasoning_text == "The user asks about Paris. I should call get_weather with city=Paris."
    assert chat2.reasoning_text == "I have the data." and chat2.tokens_reasoning == 4
    assert "It is sunny" in (chat2.output_text or "")

    assert tool.kind is StepKind.TOOL and tool.tool_name == "get_weather"
    assert tool.tool_call_id == "call_weather_1"
    # Under dual emission gen_ai.tool.call.arguments is the JSON schema; input.value is the call.
    assert args(tool) == {"city": "Paris"}
    assert json.loads(tool.tool_result or "")["conditions"] == "sunny"

    assert bad_tool.is_error and bad_tool.error == "ValueError: unknown city: Atlantis"
    assert bad_chat.is_error and "does not exist" in (bad_chat.error or "")
    assert bad_chat.model == "broken-model"


def test_openinference_other_libraries() -> None:
    items = {(s.trace_id[:1], s.span_id[-2:]): s for s in steps("openinference_shapes_handwritten.json")}
    lc_root, lc_inner = items[("1", "01")], items[("1", "02")]
    assert lc_root.kind is StepKind.AGENT and lc_root.actor == "LangGraph"
    assert lc_inner.kind is StepKind.OTHER  # inner chains are plumbing
    assert lc_root.user_id == "user-lc-5" and lc_root.session_id == "thread-lc-1"
    assert lc_inner.user_id == "user-lc-5"

    lc_tool, lc_bad = items[("1", "03")], items[("1", "04")]
    assert lc_tool.tool_arguments == '"Paris"'  # bare string, JSON-encoded
    assert (lc_tool.tool_result, lc_tool.tool_call_id) == ("sunny, 21 C", "call_lc_1")
    assert not lc_tool.is_error
    assert lc_bad.is_error and lc_bad.tool_call_id == "call_lc_2"

    sa_agent, sa_step, sa_llm, sa_tool = (items[("2", k)] for k in ("10", "11", "12", "13"))
    assert sa_agent.kind is StepKind.AGENT and sa_agent.actor == "CodeAgent.run"
    assert sa_step.kind is StepKind.OTHER and sa_step.is_error
    assert sa_step.error == "AgentParsingError: no code block"  # duplicated exception events once
    assert sa_llm.reasoning_text == "Need the weather tool." and sa_llm.tokens_reasoning == 6
    assert sa_llm.output_text == "assistant: Calling get_weather."
    assert sa_llm.cost_usd == pytest.approx(0.00042)
    assert args(sa_tool) == {"city": "Paris"}  # {"args": [], "kwargs": {...}} unwrapped

    retriever, guardrail = items[("3", "20")], items[("3", "21")]
    assert retriever.kind is StepKind.MEMORY and retriever.input_text == "Paris climate"
    assert "temperate oceanic" in (retriever.output_text or "") and "Summers are warm." in (
        retriever.output_text or ""
    )
    assert guardrail.kind is StepKind.GUARDRAIL


# ---------------------------------------------------------------------------------------------------
# pydantic-ai 2.68 (capabilities=[Instrumentation(...)])
# ---------------------------------------------------------------------------------------------------


def test_pydantic_ai_openai() -> None:
    agent, chat1, tool, chat2, bad_agent, bad_chat = steps("pydantic_ai_openai.json")
    assert agent.kind is StepKind.AGENT and agent.actor == "weather_agent" and agent.model == "gpt-4o-mini"
    # gen_ai.aggregated_usage.* on the agent span: the run's totals.
    assert (agent.tokens_in, agent.tokens_out, agent.tokens_reasoning, agent.tokens_cached) == (
        122,
        29,
        12,
        42,
    )
    assert agent.output_text == "It is sunny and 21 C in Paris."
    assert "user: What is the weather in Paris?" in (agent.input_text or "")
    assert agent.reasoning_text is None  # the scratchpad belongs to the LLM steps

    assert chat1.kind is StepKind.LLM and chat1.model == "gpt-4o-mini" and chat1.actor == "weather_agent"
    assert (chat1.tokens_in, chat1.tokens_out, chat1.tokens_reasoning, chat1.tokens_cached) == (42, 17, 8, 10)
    assert chat1.cost_usd == pytest.approx(1.575e-05)
    assert chat1.reasoning_text == "The user asks about Paris. I should call get_weather with city=Paris."
    assert "[reasoning]" not in (chat1.output_text or "") and "get_weather" in (chat1.output_text or "")
    assert chat2.reasoning_text == "I have the data."

    assert tool.kind is StepKind.TOOL and (tool.tool_name, tool.tool_call_id) == (
        "get_weather",
        "call_weather_1",
    )
    assert args(tool) == {"city": "Paris"} and "sunny" in (tool.tool_result or "")

    assert bad_agent.is_error and "ModelNotFoundError" in (bad_agent.error or "")
    assert bad_chat.is_error and bad_chat.model == "broken-model"


@pytest.mark.parametrize("name", ["pydantic_ai_function.json", "pydantic_ai_function_v2_format.json"])
def test_pydantic_ai_function_model(name: str) -> None:
    result = steps(name)
    agent_ok, agent_bad = by_kind(result, StepKind.AGENT)
    tools = by_kind(result, StepKind.TOOL)
    assert [t.tool_name for t in tools] == ["get_weather"] * 4
    retry, ok, retry2, raised = tools

    assert agent_ok.actor == "weather_agent" and agent_ok.output_text == "It is sunny and 21 C in Paris."
    assert not agent_ok.is_error and agent_ok.tokens_in == 194

    # ModelRetry: the call failed and the model was asked to try again.
    assert retry.is_error and args(retry) == {"city": "paris"}
    assert retry.tool_result == "City must be capitalised, try again."
    assert "ToolRetryError" in (retry.error or "") and "retry requested (model_retry" in (retry.error or "")
    assert retry2.is_error

    assert not ok.is_error and args(ok) == {"city": "Paris"} and ok.tool_call_id == "call_fn_2"
    assert json.loads(ok.tool_result or "")["temperature_c"] == 21

    assert raised.is_error and raised.error == "ValueError: unknown city: Atlantis"
    assert agent_bad.is_error and agent_bad.error == "ValueError: unknown city: Atlantis"
    assert agent_bad.output_text is None  # a failed run said nothing final

    chats = by_kind(result, StepKind.LLM)
    assert chats and all(c.actor == "weather_agent" and c.provider == "function" for c in chats)
    assert chats[0].reasoning_text == "The user asks about Paris. I should call get_weather with city=Paris."


# ---------------------------------------------------------------------------------------------------
# Hand-written: OpenLLMetry / Traceloop, legacy flat GenAI
# ---------------------------------------------------------------------------------------------------


def test_traceloop() -> None:
    workflow, agent, chat1, tool, chat2, task, bad_tool = steps("traceloop_handwritten.json")
    assert workflow.kind is StepKind.AGENT and workflow.actor == "weather_workflow"
    assert workflow.input_text == "What is the weather in Paris?"
    assert (workflow.user_id, workflow.session_id) == ("user-tl-3", "sess-tl-9")
    assert agent.kind is StepKind.AGENT and agent.actor == "weather_agent"

    assert chat1.kind is StepKind.LLM and chat1.model == "gpt-4o-mini" and chat1.operation == "chat"
    assert (chat1.tokens_in, chat1.tokens_out, chat1.tokens_cached) == (42, 17, 10)
    assert "[tool call] get_weather (id call_tl_1)" in (chat1.output_text or "")
    assert (chat2.tokens_in, chat2.tokens_out) == (80, 12)
    assert chat2.output_text == "assistant: It is sunny and 21 C in Paris."

    assert tool.kind is StepKind.TOOL and tool.tool_name == "get_weather" and args(tool) == {"city": "Paris"}
    assert json.loads(tool.tool_result or "")["temperature_c"] == 21
    assert task.kind is StepKind.OTHER and task.operation == "task"
    assert bad_tool.is_error and bad_tool.error == "ValueError: unknown city: Atlantis"


def test_genai_legacy() -> None:
    flat, events, failed = steps("genai_legacy_handwritten.json")
    assert flat.convention == "genai-legacy" and flat.kind is StepKind.LLM
    assert flat.model == "deepseek-reasoner" and flat.provider == "deepseek"
    assert flat.reasoning_text == "Paris is a city; call get_weather."
    assert (flat.tokens_in, flat.tokens_out, flat.tokens_reasoning) == (30, 25, 9)
    assert "[tool call] get_weather (id call_lg_1)" in (flat.output_text or "")
    assert "Paris is a city" not in (flat.output_text or "")

    assert events.convention == "genai-legacy" and events.kind is StepKind.LLM
    assert (events.input_text or "").splitlines()[0] == "system: You are a weather assistant."
    assert "tool: [tool result (id call_lg_2)]" in (events.input_text or "")
    assert "[tool call] get_weather (id call_lg_2)" in (events.input_text or "")
    assert events.output_text == "assistant: It is sunny and 21 C in Paris."

    assert failed.is_error and failed.error == "RateLimitError: Error code: 429 - rate limited"


# ---------------------------------------------------------------------------------------------------
# Our SDK's names
# ---------------------------------------------------------------------------------------------------


def make_span(attributes: dict[str, Any], **fields: Any) -> SpanRecord:
    raw: dict[str, Any] = {"name": fields.pop("name", "span"), "attributes": attributes, **fields}
    return span_record(raw)


@pytest.mark.parametrize(
    ("operation", "kind"),
    [
        ("reasoning", StepKind.REASONING),
        ("plan", StepKind.PLAN),
        ("memory", StepKind.MEMORY),
        ("guardrail", StepKind.GUARDRAIL),
        ("human_approval", StepKind.HUMAN),
        ("human", StepKind.HUMAN),
    ],
)
def test_sdk_operation_names(operation: str, kind: StepKind) -> None:
    assert sdk.SDK_OPERATION_KINDS[operation] is kind
    step = normalize(make_span({"gen_ai.operation.name": operation, "gen_ai.agent.name": "planner"}))
    assert (step.kind, step.convention, step.actor, step.operation) == (kind, "sdk", "planner", operation)


def test_sdk_retrieval_is_memory_under_either_convention() -> None:
    genai_step = normalize(make_span({"gen_ai.operation.name": "retrieval"}))
    assert (genai_step.kind, genai_step.convention) == (StepKind.MEMORY, "genai")
    ours = normalize(make_span({"gen_ai.operation.name": "retrieval"}, scope_name=sdk.SDK_SCOPE_NAME))
    assert (ours.kind, ours.convention) == (StepKind.MEMORY, "sdk")


def test_sdk_reasoning_and_explicit_kind() -> None:
    step = normalize(
        make_span(
            {
                "gen_ai.operation.name": "reasoning",
                sdk.REASONING_CONTENT_ATTRIBUTE: "Check the forecast before answering.",
                "gen_ai.request.model": "smol",
            }
        )
    )
    assert step.kind is StepKind.REASONING and step.reasoning_text == "Check the forecast before answering."
    # workbench.step.kind overrides every other signal, OpenInference's included.
    override = normalize(
        make_span(
            {
                sdk.STEP_KIND_ATTRIBUTE: "plan",
                "openinference.span.kind": "LLM",
                "gen_ai.operation.name": "chat",
            }
        )
    )
    assert (override.kind, override.convention) == (StepKind.PLAN, "sdk")
    bogus = normalize(make_span({sdk.STEP_KIND_ATTRIBUTE: "dance", "gen_ai.operation.name": "chat"}))
    assert bogus.kind is StepKind.LLM


def test_sdk_decision_and_texts() -> None:
    step = normalize(
        make_span(
            {
                "gen_ai.operation.name": "guardrail",
                sdk.INPUT_TEXT_ATTRIBUTE: "rm -rf /",
                sdk.DECISION_ATTRIBUTE: "block",
                sdk.DECISION_REASON_ATTRIBUTE: "destructive command",
            }
        )
    )
    assert step.kind is StepKind.GUARDRAIL and step.input_text == "rm -rf /"
    assert step.output_text == "decision: block (destructive command)" and not step.is_error


def test_gen_ai_reasoning_parts_and_legacy_reasoning_attribute() -> None:
    output = [
        {
            "role": "assistant",
            "parts": [{"type": "reasoning", "content": "think"}, {"type": "text", "content": "hi"}],
        }
    ]
    step = normalize(
        make_span({"gen_ai.operation.name": "chat", "gen_ai.output.messages": json.dumps(output)})
    )
    assert (step.reasoning_text, step.output_text) == ("think", "assistant: hi")
    usage = normalize(
        make_span(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.usage.reasoning.output_tokens": 7,
                "gen_ai.usage.cache_read.input_tokens": 3,
            }
        )
    )
    assert (usage.tokens_reasoning, usage.tokens_cached) == (7, 3)


# ---------------------------------------------------------------------------------------------------
# Unknown and garbage input: always a step, never an exception
# ---------------------------------------------------------------------------------------------------


def test_unknown_span_is_other() -> None:
    step = normalize(make_span({"http.request.method": "GET", "url.full": "http://x"}, name="GET /"))
    assert (step.kind, step.convention, step.is_error) == (StepKind.OTHER, "unknown", False)
    failed = normalize(
        make_span(
            {"db.system": "duckdb"},
            status_code=2,
            status_message="",
            events=[
                {
                    "name": "exception",
                    "attributes": {"exception.type": "IOError", "exception.message": "disk"},
                }
            ],
        )
    )
    assert (failed.kind, failed.convention, failed.is_error, failed.error) == (
        StepKind.OTHER,
        "unknown",
        True,
        "IOError: disk",
    )
    silent = normalize(make_span({}, status_code=2))
    assert silent.is_error and silent.error


def _deep_list(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


GARBAGE: list[Any] = [
    0,
    -1,
    2**70,
    3.5,
    math.nan,
    math.inf,
    True,
    "",
    "   ",
    "[{",
    '{"role": 5, "parts": 7}',
    "[1, 2, 3]",
    '[{"role": "user", "parts": [{"type": "tool_call", "arguments": {"a": [1, {"b": null}]}}]}]',
    '{"args": "x", "kwargs": 5}',
    '{"type": "tool", "data": {"tool_call_id": 5}}',
    "x" * 200_000,
    b"\xff\xfe bytes",
    [1, "two", 3.0, None],
    {"nested": {"dict": [1, 2]}},
    _deep_list(5000),
    "[" * 100_000 + "]" * 100_000,
    [{"role": "user"}] * 1000,
]


def _known_keys() -> list[str]:
    keys: set[str] = set()
    for name in fixture_files():
        for raw in load_fixture(name)["spans"]:
            keys.update(raw["attributes"])
    keys.update(
        [
            sdk.STEP_KIND_ATTRIBUTE,
            sdk.REASONING_CONTENT_ATTRIBUTE,
            sdk.DECISION_ATTRIBUTE,
            "gen_ai.completion.0.reasoning_content",
            "gen_ai.prompt.0",
            "llm.input_messages.0",
            "metadata",
            "error.type",
        ]
    )
    return sorted(keys)


@pytest.mark.parametrize("value", GARBAGE, ids=lambda v: type(v).__name__)
def test_garbage_in_every_known_attribute_never_raises(value: Any) -> None:
    keys = _known_keys()
    for family_marker in ({}, {"openinference.span.kind": "TOOL"}, {"traceloop.span.kind": "tool"}):
        step = normalize(make_span({**{k: value for k in keys}, **family_marker}))
        assert isinstance(step, Step) and isinstance(step.kind, StepKind)


def test_random_garbage_never_raises() -> None:
    rng = random.Random(20261125)
    keys = _known_keys()
    for _ in range(300):
        attrs = {k: rng.choice(GARBAGE[:-3]) for k in rng.sample(keys, k=min(len(keys), rng.randint(1, 40)))}
        events = [
            {
                "name": rng.choice(["exception", "gen_ai.choice", "gen_ai.user.message"]),
                "attributes": {k: rng.choice(GARBAGE[:-3]) for k in ("exception.type", "message", "content")},
            }
        ]
        step = normalize(make_span(attrs, events=events, status_code=rng.choice([0, 1, 2, 99])))
        assert isinstance(step, Step)


def test_broken_span_fields_never_raise() -> None:
    span = SpanRecord(
        trace_id=None,  # type: ignore[arg-type]
        span_id=123,  # type: ignore[arg-type]
        parent_span_id=None,  # type: ignore[arg-type]
        name=None,  # type: ignore[arg-type]
        kind="x",  # type: ignore[arg-type]
        start_time_ns="soon",  # type: ignore[arg-type]
        end_time_ns=None,  # type: ignore[arg-type]
        status_code="ERROR",  # type: ignore[arg-type]
        status_message=None,  # type: ignore[arg-type]
        trace_state="",
        flags=0,
        resource=None,  # type: ignore[arg-type]
        resource_schema_url="",
        scope_name=None,  # type: ignore[arg-type]
        scope_version="",
        scope_attributes={},
        scope_schema_url="",
        attributes=None,  # type: ignore[arg-type]
        events=(SpanEvent(name="exception", time_ns=0, attributes=None),),  # type: ignore[arg-type]
        links=(),
        dropped_attributes_count=0,
        dropped_events_count=0,
        dropped_links_count=0,
        canonical=b"",
    )
    step = normalize(span)
    assert isinstance(step, Step) and step.kind is StepKind.OTHER and step.span_id == "123"


def test_a_mapper_bug_still_yields_a_step(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("mapping bug")

    monkeypatch.setattr(normalize_module, "detect", broken)
    step = normalize(make_span({"gen_ai.operation.name": "chat"}, status_code=2, status_message="boom"))
    assert (step.kind, step.convention, step.is_error, step.error) == (
        StepKind.OTHER,
        "unknown",
        True,
        "boom",
    )


def test_normalize_leaves_the_span_untouched() -> None:
    """The raw span is the audit record: a shared kvlist under flattened keys must not be mutated."""
    shared: dict[str, Any] = {"nested": {"dict": [1, 2]}}
    attrs = {"gen_ai.prompt.0": shared, "gen_ai.prompt.0.role": shared, "gen_ai.prompt.0.content": shared}
    span = make_span(attrs)
    before = json.dumps(span.attributes, sort_keys=True)
    normalize(span)
    assert json.dumps(span.attributes, sort_keys=True) == before
    assert shared == {"nested": {"dict": [1, 2]}}


def test_every_draft_field_is_a_step_field_with_the_same_default() -> None:
    """Draft.to_step copies fields by name: a field on one side only would be lost or fail."""
    import dataclasses

    from collectors.conventions.common import Draft
    from workbench.model import Step

    step_fields = {f.name: f for f in dataclasses.fields(Step)}
    for f in dataclasses.fields(Draft):
        assert f.name in step_fields, f"Draft.{f.name} has no Step field"
        if step_fields[f.name].default is not dataclasses.MISSING:
            assert f.default == step_fields[f.name].default, f.name
    identity = {
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "start_time_ns",
        "end_time_ns",
        "service_name",
    }
    joined = {"event_fields"}  # set by the GenAI event join (collectors.events), never by a mapper
    assert set(step_fields) == identity | joined | {f.name for f in dataclasses.fields(Draft)}


def test_unflatten_is_the_same_past_its_key_cache_bound() -> None:
    """unflatten remembers each key's segments, bounded because keys come from the sender: a span
    whose keys are all new (and a sender cycling through more keys than the bound) reads the same."""
    from collectors.conventions import common

    def tree_of(attrs: dict[str, Any]) -> Any:
        return common.unflatten(attrs, "llm.input_messages.")

    many = {f"llm.input_messages.{i}.message.content": f"text {i}" for i in range(common._SEGMENTS_MAX + 50)}
    many["llm.input_messages.3.message.role"] = "user"
    many["llm.input_messages..7..message.role"] = "tool"  # empty segments are skipped, as before
    first = tree_of(many)
    assert len(common._SEGMENTS) <= common._SEGMENTS_MAX
    assert first == tree_of(dict(reversed(list(many.items())))) == tree_of(many)
    assert common.indexed(first)[3]["message"] == {"content": "text 3", "role": "user"}
    assert first[7]["message"]["role"] == "tool"
    assert [n["message"]["content"] for n in common.indexed(first)][:3] == ["text 0", "text 1", "text 2"]
