"""Google ADK's native spans (scope `gcp.vertex.agent`): the GenAI schema plus ADK's own legacy attributes.

Seen from google-adk 2.13.0 (LiteLlm against a fake OpenAI server; fixtures `adk_*.json`):
- schema 2 (the default, GenAI-aligned): `invoke_workflow` / `invoke_agent` / `generate_content` /
  `execute_tool` spans read as GenAI. Content capture is off by default (`NO_CONTENT`): the spans carry
  no messages, no tool arguments and no results, which the step says, so an empty replay is not read
  as "the tool had no arguments". With `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=EVENT_ONLY`
  the content arrives as `gen_ai.client.inference.operation.details` log records instead.
- schema 1 (`ADK_TELEMETRY_SCHEMA_VERSION_OPT_IN=1`, legacy): content as JSON strings in
  `gcp.vertex.agent.llm_request` / `llm_response` on `call_llm` spans (Gemini `contents` / `parts`,
  `thought` parts are reasoning, `function_call` parts tool calls) and `gcp.vertex.agent.tool_call_args`
  / `tool_response` on `execute_tool` spans. Each `call_llm` has a `generate_content` child with the same
  token counts: tokens are kept on the child only, so a turn is not counted twice.
- after parallel tool calls ADK adds an `execute_tool (merged)` span summing them: not a call of its own,
  so it is not a tool step (the calls each have their span).
- the legacy schema's root span `invocation` (no attributes) is the run: an agent step.
- `gen_ai.response.finish_reasons` says `stop` on tool-calling turns too: nothing here relies on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.conventions.common import MAPPING, Draft, as_name, as_str, json_text, parse_json
from collectors.conventions.genai import map_genai
from collectors.conventions.messages import (
    REASONING,
    TEXT,
    TOOL_CALL,
    TOOL_RESULT,
    Message,
    Part,
    reasoning_of,
    render,
)
from workbench.model import SpanRecord, StepKind

ADK_SCOPE = "gcp.vertex.agent"
_PREFIX = "gcp.vertex.agent."
MERGED_TOOL_SPAN = "execute_tool (merged)"
NO_CONTENT_NOTE = (
    "[no content on this span: ADK captures none by default (NO_CONTENT); set "
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY, or EVENT_ONLY for log records]"
)


def is_adk(span: SpanRecord, attrs: Mapping[str, Any]) -> bool:
    return as_str(span.scope_name) == ADK_SCOPE or any(k.startswith(_PREFIX) for k in attrs)


def map_adk(span: SpanRecord, attrs: Mapping[str, Any], draft: Draft) -> None:
    name = as_str(span.name) or ""
    if name.startswith(MERGED_TOOL_SPAN):
        draft.convention = "genai"
        draft.kind = StepKind.OTHER
        draft.operation = "execute_tool_merged"
        map_genai(span, attrs, draft)
        draft.kind = StepKind.OTHER  # a summary of the calls above, not a call: rules must not count it
        draft.tool_arguments = None
        return
    draft.convention = "genai" if "gen_ai.operation.name" in attrs else "genai-legacy"
    legacy_args = _present(attrs.get(_PREFIX + "tool_call_args"))
    if legacy_args is not None:
        draft.tool_arguments = json_text(legacy_args)
        draft.fill(tool_result=as_str(_present(attrs.get(_PREFIX + "tool_response"))))
    request = parse_json(_present(attrs.get(_PREFIX + "llm_request")))
    response = parse_json(_present(attrs.get(_PREFIX + "llm_response")))
    if isinstance(request, MAPPING) or isinstance(response, MAPPING):
        draft.kind = StepKind.LLM
        inputs = _request_messages(request) if isinstance(request, MAPPING) else []
        outputs = _response_messages(response) if isinstance(response, MAPPING) else []
        draft.fill(
            input_text=render(inputs),
            output_text=render(outputs, reasoning=False),
            reasoning_text=reasoning_of(outputs),
        )
    map_genai(span, attrs, draft)
    if name == "invocation" and draft.kind is StepKind.OTHER:
        draft.kind = StepKind.AGENT  # the legacy schema's root: the run as the user started it
        draft.operation = "invocation"
    if name == "call_llm":
        draft.tokens_in = draft.tokens_out = draft.tokens_reasoning = draft.tokens_cached = None
    if draft.kind is StepKind.TOOL and draft.tool_arguments is None and draft.tool_result is None:
        draft.fill(input_text=NO_CONTENT_NOTE)
    elif draft.kind is StepKind.LLM and draft.input_text is None and draft.output_text is None:
        draft.fill(input_text=NO_CONTENT_NOTE)


def _present(value: Any) -> Any:
    """ADK writes "{}" for content it did not have (a tool span's llm_request): that is no content."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "{}")):
        return None
    return value


def _gemini_parts(raw: Any) -> list[Part]:
    parts: list[Part] = []
    for p in raw if isinstance(raw, list) else []:
        if not isinstance(p, MAPPING):
            continue
        if isinstance(p.get("text"), str):
            parts.append(Part(REASONING if p.get("thought") else TEXT, p["text"]))
        call = p.get("function_call")
        if isinstance(call, MAPPING):
            parts.append(
                Part(
                    TOOL_CALL,
                    json_text(call.get("args")),
                    name=as_name(call.get("name")),
                    call_id=as_name(call.get("id")),
                )
            )
        result = p.get("function_response")
        if isinstance(result, MAPPING):
            parts.append(
                Part(
                    TOOL_RESULT,
                    as_str(result.get("response")),
                    name=as_name(result.get("name")),
                    call_id=as_name(result.get("id")),
                )
            )
    return parts


def _request_messages(request: Mapping[str, Any]) -> list[Message]:
    out: list[Message] = []
    config = request.get("config")
    system = config.get("system_instruction") if isinstance(config, MAPPING) else None
    if isinstance(system, str) and system:
        out.append(Message("system", [Part(TEXT, system)]))
    for content in request.get("contents") or []:
        if isinstance(content, MAPPING):
            out.append(Message(as_name(content.get("role")) or "user", _gemini_parts(content.get("parts"))))
    return out


def _response_messages(response: Mapping[str, Any]) -> list[Message]:
    content = response.get("content")
    if not isinstance(content, MAPPING):
        return []
    return [Message("assistant", _gemini_parts(content.get("parts")))]
