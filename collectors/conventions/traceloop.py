"""OpenLLMetry / Traceloop: `traceloop.span.kind` on decorated functions, legacy flat gen_ai.* on LLM calls.

Written from the OpenLLMetry semantic conventions, then checked against traceloop-sdk 0.62.4 captured for
real (tests/fixtures/conventions/traceloop_span.json; its openai spans now carry the current GenAI
`gen_ai.input.messages` / `gen_ai.output.messages`, with reasoning parts):
- `@workflow` / `@task` / `@agent` / `@tool` spans are named "<entity>.<kind>" and carry
  `traceloop.span.kind`, `traceloop.entity.name`, `traceloop.entity.input` / `.output` (JSON; the input
  is {"args": [...], "kwargs": {...}}), `traceloop.workflow.name`, `traceloop.association.properties.*`.
- LLM spans ("openai.chat") carry `llm.request.type`, `gen_ai.system`, `gen_ai.prompt.N.*`,
  `gen_ai.completion.N.*`, `gen_ai.usage.prompt_tokens` / `completion_tokens` (newer releases:
  input/output_tokens), `llm.usage.total_tokens`, `gen_ai.usage.cache_read_input_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.conventions.common import (
    MAPPING,
    Draft,
    as_name,
    as_str,
    first_name,
    parse_json,
    unwrap_call_args,
)
from collectors.conventions.genai import map_genai
from workbench.model import SpanRecord, StepKind

# A workflow is the top of an OpenLLMetry app: the agent run as the user sees it.
TRACELOOP_KINDS: dict[str, StepKind] = {
    "workflow": StepKind.AGENT,
    "agent": StepKind.AGENT,
    "tool": StepKind.TOOL,
    "task": StepKind.OTHER,
}
REQUEST_TYPE_KINDS: dict[str, StepKind] = {
    "chat": StepKind.LLM,
    "completion": StepKind.LLM,
    "embedding": StepKind.LLM,
    "rerank": StepKind.MEMORY,
}


def is_traceloop(attrs: Mapping[str, Any]) -> bool:
    return "llm.request.type" in attrs or any(k.startswith("traceloop.") for k in attrs)


def map_traceloop(span: SpanRecord, attrs: Mapping[str, Any], draft: Draft) -> None:
    draft.convention = "traceloop"
    span_kind = (as_name(attrs.get("traceloop.span.kind")) or "").lower()
    request_type = (as_name(attrs.get("llm.request.type")) or "").lower()
    if span_kind in TRACELOOP_KINDS:
        draft.kind = TRACELOOP_KINDS[span_kind]
        draft.operation = span_kind
    elif request_type in REQUEST_TYPE_KINDS:
        draft.kind = REQUEST_TYPE_KINDS[request_type]
        draft.operation = request_type
    entity = first_name(attrs, "traceloop.entity.name")
    if draft.kind is StepKind.AGENT:
        draft.fill(actor=entity or first_name(attrs, "traceloop.workflow.name"))
    entity_input = attrs.get("traceloop.entity.input")
    entity_output = attrs.get("traceloop.entity.output")
    if draft.kind is StepKind.TOOL:
        draft.fill(tool_name=entity or as_name(_strip_suffix(as_str(span.name) or "", ".tool")))
        if entity_input is not None:
            draft.tool_arguments = unwrap_call_args(entity_input)
        if entity_output is not None:
            draft.tool_result = as_str(entity_output)
        draft.fill(input_text=draft.tool_arguments, output_text=draft.tool_result)
    # LLM spans are GenAI (mostly the legacy flat form); decorated spans may carry gen_ai.* too.
    map_genai(span, attrs, draft)
    draft.fill(input_text=_entity_text(entity_input), output_text=_entity_text(entity_output))


def _strip_suffix(text: str, suffix: str) -> str:
    return text[: -len(suffix)] if text.endswith(suffix) else text


def _entity_text(value: Any) -> str | None:
    """A decorated call's input reads better as its sole string argument than as the args/kwargs wrapper."""
    parsed = parse_json(value)
    if isinstance(parsed, MAPPING) and set(parsed) <= {"args", "kwargs"}:
        raw_args, raw_kwargs = parsed.get("args"), parsed.get("kwargs")
        args: list[Any] = raw_args if isinstance(raw_args, list) else []
        kwargs: Mapping[Any, Any] = raw_kwargs if isinstance(raw_kwargs, MAPPING) else {}
        if len(args) == 1 and not kwargs and isinstance(args[0], str):
            return args[0]
        if not args and len(kwargs) == 1 and isinstance(next(iter(kwargs.values())), str):
            return next(iter(kwargs.values()))
    if isinstance(parsed, str):
        return parsed
    return as_str(value)
