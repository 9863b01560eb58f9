"""Agent frameworks captured for real (tests/fixtures/conventions/capture_frameworks.py): each destructive
run in span content mode is flagged high with evidence in the stored text, each benign run is not, and every
tool call shows its arguments."""

from __future__ import annotations

import dataclasses
import json

import pytest

from collectors.conventions.adk import NO_CONTENT_NOTE
from collectors.conventions.crewai import unquoted_name
from collectors.events import join
from collectors.normalize import normalize
from tests.conventions_fixture import fixture_spans, load_fixture, span_record
from tests.fake_openai import FINAL_ANSWER, SYSTEM_PROMPT, USER_PROMPT
from workbench.model import LogRecord, Severity, Step, StepKind, StoredStep
from workbench.policies.engine import build_engine

# Per fixture, the package whose version must be recorded in it.
DESTRUCTIVE_SPAN_MODE = {
    "adk_legacy_span.json": "google-adk",
    "adk_genai_span_only.json": "google-adk",
    "openai_agents_span.json": "openinference-instrumentation-openai-agents",
    "llama_index_span.json": "openinference-instrumentation-llama-index",
    "traceloop_span.json": "traceloop-sdk",
    "crewai_wrapper.json": "openinference-instrumentation-crewai",
    "crewai_listener.json": "openinference-instrumentation-crewai",
}
BENIGN = {
    "adk_legacy_span_benign.json": "google-adk",
    "adk_genai_span_only_benign.json": "google-adk",
    "openai_agents_span_benign.json": "openinference-instrumentation-openai-agents",
    "llama_index_span_benign.json": "openinference-instrumentation-llama-index",
    "traceloop_span_benign.json": "traceloop-sdk",
    "crewai_wrapper_benign.json": "openinference-instrumentation-crewai",
    "crewai_listener_benign.json": "openinference-instrumentation-crewai",
}
TOKENS_OF_THE_TWO_TURNS = 57 + 91  # tests/fake_openai.py


def _steps(name: str) -> list[Step]:
    return [normalize(s) for s in fixture_spans(name)]


def _high(steps: list[Step]) -> list[tuple[str, str | None, Step]]:
    stored = [StoredStep(i + 1, s) for i, s in enumerate(steps)]
    found = build_engine().evaluate("t", stored)
    return [
        (f.rule_id, f.evidence_excerpt, steps[f.step_seq - 1])
        for f in found
        if f.severity.rank >= Severity.HIGH.rank
    ]


@pytest.mark.parametrize("name", sorted(DESTRUCTIVE_SPAN_MODE))
def test_a_destructive_run_is_flagged_high_with_evidence_in_the_tool_arguments(name: str) -> None:
    assert load_fixture(name)["captured_with"][DESTRUCTIVE_SPAN_MODE[name]]
    high = _high(_steps(name))
    destructive = [(ex, step) for rule, ex, step in high if rule == "destructive-action"]
    assert destructive, high
    excerpt, step = destructive[0]
    assert excerpt == "DROP TABLE users" and excerpt in (step.tool_arguments or "")


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_a_benign_run_has_no_high_finding(name: str) -> None:
    assert load_fixture(name)["captured_with"][BENIGN[name]]
    assert _high(_steps(name)) == []


@pytest.mark.parametrize("name", sorted(DESTRUCTIVE_SPAN_MODE) + sorted(BENIGN))
def test_every_tool_call_shows_its_arguments_and_tokens_count_once_per_turn(name: str) -> None:
    steps = _steps(name)
    tools = [s for s in steps if s.kind is StepKind.TOOL]
    assert tools and all(s.tool_arguments and s.tool_name for s in tools)
    assert sum(s.tokens_in or 0 for s in steps) == TOKENS_OF_THE_TWO_TURNS


def test_the_legacy_schema_gives_the_model_call_its_messages_and_reasoning() -> None:
    llm = next(s for s in _steps("adk_legacy_span.json") if s.name == "call_llm")
    assert "Clean up the database" in (llm.input_text or "")
    assert llm.reasoning_text and "destructive" in llm.reasoning_text
    assert "run_sql" in (llm.output_text or "")


def test_the_no_content_default_says_that_capture_was_off() -> None:
    steps = _steps("adk_default_no_content.json")
    tool = next(s for s in steps if s.kind is StepKind.TOOL)
    assert tool.tool_name == "run_sql" and tool.tool_arguments is None
    assert tool.input_text == NO_CONTENT_NOTE


def test_the_merged_span_after_parallel_calls_is_not_a_call_of_its_own() -> None:
    tool = next(s for s in fixture_spans("adk_genai_span_only.json") if s.name.startswith("execute_tool"))
    merged = dataclasses.replace(tool, name="execute_tool (merged)")
    step = normalize(merged)
    assert step.kind is not StepKind.TOOL and step.tool_arguments is None
    assert normalize(tool).kind is StepKind.TOOL
    assert normalize(span_record({"name": "execute_tool (merged)", "scope_name": "gcp.vertex.agent"}))


# --- OpenAI Agents SDK 0.24 through openinference-instrumentation-openai-agents 2.6 ----------------------


def test_the_agents_sdk_generation_spans_give_messages_and_the_reasoning_from_the_output_list() -> None:
    steps = _steps("openai_agents_span.json")
    llm = [s for s in steps if s.kind is StepKind.LLM]
    assert [s.model for s in llm] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert "Clean up the database" in (llm[0].input_text or "")
    assert "[tool call] run_sql" in (llm[0].output_text or "")
    # reasoning_content lives only inside output.value, a JSON list of the output messages.
    assert llm[0].reasoning_text and "destructive" in llm[0].reasoning_text
    assert llm[1].reasoning_text and "dropped" in llm[1].reasoning_text
    agents = [s.actor for s in steps if s.kind is StepKind.AGENT]
    assert agents == ["Agent workflow", "db_agent"]  # the CHAIN twin and the turns are plumbing


# --- LlamaIndex 0.14 through openinference-instrumentation-llama-index 4.6 -------------------------------


def test_llama_index_makes_one_model_call_per_turn_and_unwraps_kwargs_and_tool_output() -> None:
    steps = _steps("llama_index_span.json")
    llm = [s for s in steps if s.kind is StepKind.LLM]
    assert [s.name for s in llm] == ["OpenAI.achat", "OpenAI.achat"]
    assert [(s.tokens_in, s.tokens_reasoning) for s in llm] == [(57, 11), (91, 4)]
    prepare = [s for s in steps if s.name == "OpenAI._prepare_chat_with_tools"]
    assert len(prepare) == 2 and all(s.kind is StepKind.OTHER and s.tokens_in is None for s in prepare)
    (tool,) = [s for s in steps if s.kind is StepKind.TOOL]
    assert tool.tool_arguments == '{"query": "DROP TABLE users"}'  # {"kwargs": {...}} unwrapped
    assert tool.tool_result == '{"ok": true, "message": "table users dropped"}'  # ToolOutput.raw_output
    assert not tool.is_error


# --- OpenLLMetry: traceloop-sdk 0.62 (@workflow / @tool) with its openai instrumentation ----------------


def test_traceloop_unwraps_the_args_kwargs_wrapper_and_reads_current_genai_messages() -> None:
    agent, llm, tool, _ = _steps("traceloop_span.json")
    assert agent.kind is StepKind.AGENT and agent.actor == "db_agent"
    assert agent.input_text == USER_PROMPT  # the sole positional argument, not the wrapper
    assert tool.tool_arguments == '{"query": "DROP TABLE users"}'  # {"args": [], "kwargs": {...}}
    assert llm.kind is StepKind.LLM and llm.model == "gpt-4o-mini" and llm.tokens_reasoning == 11
    assert llm.reasoning_text and "destructive" in llm.reasoning_text


def _fixture_logs(name: str) -> list[LogRecord]:
    """The fixture's captured log records as the decoder builds them (the fields the join reads)."""
    return [
        LogRecord(
            trace_id=raw["trace_id"],
            span_id=raw["span_id"],
            time_ns=0,
            observed_time_ns=0,
            severity_number=0,
            severity_text="",
            event_name=raw["event_name"],
            body=raw.get("body"),
            attributes=raw["attributes"],
            flags=0,
            dropped_attributes_count=0,
            resource={},
            resource_schema_url="",
            scope_name="",
            scope_version="",
            scope_attributes={},
            scope_schema_url="",
            canonical=b"",
        )
        for raw in load_fixture(name)["logs"]
    ]


def test_adk_in_event_only_mode_is_flagged_once_its_events_join_the_spans() -> None:
    """ADK's GenAI event-only mode: the spans carry no content, the tool call's arguments exist only in the
    `gen_ai.client.inference.operation.details` records; joined (collectors.events), the DROP is flagged."""
    name = "adk_genai_event_only.json"
    assert load_fixture(name)["captured_with"]["google-adk"]
    spans, records = fixture_spans(name), _fixture_logs(name)
    alone = [normalize(s) for s in spans]
    assert not any("DROP TABLE users" in (s.tool_arguments or "") for s in alone)  # content only in events
    joined = [join(s, records, normalize) for s in spans]
    destructive = [(ex, step) for rule, ex, step in _high(joined) if rule == "destructive-action"]
    assert destructive, _high(joined)
    excerpt, step = destructive[0]
    assert excerpt == "DROP TABLE users" and "tool_arguments" in (step.event_fields or "")
    # The span's "no content captured" note is a placeholder, not content: the events replace it.
    assert step.input_text == '{"query": "DROP TABLE users"}'
    llm = [s for s in joined if s.kind is StepKind.LLM]
    assert all(s.input_text and USER_PROMPT in s.input_text for s in llm)
    assert all(json.loads(s.event_fields or "[]") == ["input_text", "output_text"] for s in llm)


# --- OpenLLMetry in event mode: traceloop-sdk 0.62 with use_attributes=False ----------------------------


def test_traceloop_event_mode_joins_one_record_per_message_to_the_model_calls() -> None:
    """The chat spans carry no content; each message is a record (gen_ai.<role>.message, gen_ai.choice) with
    the content in its body, and OpenLLMetry's choice carries the tool calls beside the message."""
    name = "traceloop_event.json"
    assert load_fixture(name)["captured_with"]["opentelemetry-instrumentation-openai"]
    spans, records = fixture_spans(name), _fixture_logs(name)
    assert {r.event_name for r in records} >= {
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.choice",
    }
    alone = [normalize(s) for s in spans if s.name == "openai.chat"]
    assert all(s.input_text is None and s.output_text is None for s in alone)  # content only in events
    first, second = [join(s, records, normalize) for s in spans if s.name == "openai.chat"]
    assert first.input_text == f"system: {SYSTEM_PROMPT}\nuser: {USER_PROMPT}"
    assert first.output_text and '[tool call] run_sql (id call_sql_1) {"query": "DROP TABLE users"}' in (
        first.output_text
    )
    assert "[tool result]" in (second.input_text or "") and "table users dropped" in (second.input_text or "")
    assert second.output_text == f"assistant: {FINAL_ANSWER}"
    assert all(json.loads(s.event_fields or "[]") == ["input_text", "output_text"] for s in (first, second))


def test_traceloop_event_mode_destructive_run_is_flagged_and_the_benign_one_is_not() -> None:
    joined = {
        name: [join(s, _fixture_logs(name), normalize) for s in fixture_spans(name)]
        for name in ("traceloop_event.json", "traceloop_event_benign.json")
    }
    destructive = [
        (ex, st) for rule, ex, st in _high(joined["traceloop_event.json"]) if rule == "destructive-action"
    ]
    assert destructive and destructive[0][0] == "DROP TABLE users"
    assert _high(joined["traceloop_event_benign.json"]) == []
    benign_call = next(s for s in joined["traceloop_event_benign.json"] if s.name == "openai.chat")
    assert "get_weather" in (benign_call.output_text or "") and "Paris" in (benign_call.output_text or "")


# --- CrewAI 1.15 through openinference-instrumentation-crewai 1.1: wrappers and the event listener ------


@pytest.mark.parametrize("mode", ["wrapper", "listener"])
def test_crewai_shows_the_tool_call_its_arguments_and_result_in_both_modes(mode: str) -> None:
    steps = _steps(f"crewai_{mode}.json")
    assert [s.kind for s in steps] == [
        StepKind.AGENT,
        StepKind.AGENT,
        StepKind.LLM,
        StepKind.TOOL,
        StepKind.LLM,
    ]
    first, second = (s for s in steps if s.kind is StepKind.LLM)
    (tool,) = (s for s in steps if s.kind is StepKind.TOOL)
    assert tool.tool_name == "run_sql" and tool.tool_arguments == '{"query": "DROP TABLE users"}'
    assert tool.tool_result == '{"ok": true, "message": "table users dropped"}'
    # The listener's first call has no output messages, only a JSON list of tool calls in output.value.
    assert first.output_text == 'assistant: [tool call] run_sql (id call_sql_1) {"query": "DROP TABLE users"}'
    # ...and it records the call's name in the next request as a Python repr ('run_sql').
    assert '[tool call] run_sql (id call_sql_1) {"query": "DROP TABLE users"}' in (second.input_text or "")
    assert '(id call_sql_1)] {"ok": true, "message": "table users dropped"}' in (second.input_text or "")
    assert second.output_text == f"assistant: {FINAL_ANSWER}"
    assert [s.model for s in (first, second)] == ["gpt-4o-mini", "gpt-4o-mini"]


def test_crewai_wrapper_mode_reads_reasoning_from_the_openai_instrumentation_below_it() -> None:
    first, second = (s for s in _steps("crewai_wrapper.json") if s.kind is StepKind.LLM)
    assert first.reasoning_text and "destructive" in first.reasoning_text
    assert (first.tokens_reasoning, second.tokens_reasoning) == (11, 4)


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("'run_sql'", "run_sql"),
        ('"run_sql"', "run_sql"),
        ("run_sql", "run_sql"),
        ("'x' + 'y'", "'x' + 'y'"),
        ("''", "''"),
        ("'", "'"),
        ("'__import__(\"os\")'", '__import__("os")'),
        (None, None),
    ],
)
def test_a_repr_quoted_tool_name_is_read_as_a_literal_never_evaluated(
    raw: str | None, name: str | None
) -> None:
    assert unquoted_name(raw) == name
