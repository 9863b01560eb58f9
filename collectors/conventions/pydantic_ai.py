"""pydantic-ai (and Logfire) spans: GenAI conventions plus pydantic-ai's own attributes.

Observed with pydantic-ai-slim 2.68 (`capabilities=[Instrumentation(...)]`):
- "invoke_agent <name>" (format 5; "agent run" in format 2): `gen_ai.agent.name` / `agent_name`,
  `model_name`, `final_result`, the transcript in `pydantic_ai.all_messages`, usage totals in
  `gen_ai.aggregated_usage.*` (not `gen_ai.usage.*`, so backends summing children don't double count).
- "chat <model>": `gen_ai.input.messages` / `gen_ai.output.messages` with `thinking` parts,
  reasoning tokens in `gen_ai.usage.details.reasoning_tokens`, `operation.cost` in USD.
- "execute_tool <name>" ("running tool" in format 2): `gen_ai.tool.call.arguments` / `.result`
  (`tool_arguments` / `tool_response` in format 2); a ModelRetry sets status ERROR with an empty
  message, an exception event, and `pydantic_ai.tool.retry.{cause,attempt,max_retries}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.conventions.common import (
    Draft,
    as_int,
    as_name,
    as_str,
    first_int,
    first_name,
    json_text,
)
from collectors.conventions.genai import map_genai
from collectors.conventions.messages import Message, messages_from_value, parts_from_value, render, text_of
from workbench.model import SpanRecord, StepKind

SCOPE_NAME = "pydantic-ai"
_MARKER_KEYS = (
    "logfire.msg",
    "final_result",
    "agent_name",
    "tool_arguments",
    "tool_response",
    "pydantic_ai.all_messages",
    "all_messages_events",
    "gen_ai.aggregated_usage.input_tokens",
)

AGG_IN = ("gen_ai.aggregated_usage.input_tokens",)
AGG_OUT = ("gen_ai.aggregated_usage.output_tokens",)
AGG_REASONING = (
    "gen_ai.aggregated_usage.details.reasoning_tokens",
    "gen_ai.aggregated_usage.reasoning.output_tokens",
)
AGG_CACHED = (
    "gen_ai.aggregated_usage.cache_read.input_tokens",
    "gen_ai.aggregated_usage.details.cache_read_tokens",
)


def is_pydantic_ai(span: SpanRecord, attrs: Mapping[str, Any]) -> bool:
    if as_str(span.scope_name) == SCOPE_NAME:
        return True
    return any(k in attrs for k in _MARKER_KEYS) or any(k.startswith("pydantic_ai.") for k in attrs)


def _kind_from_name(name: str, attrs: Mapping[str, Any]) -> StepKind:
    """Span names carry the kind when an older format left out gen_ai.operation.name."""
    msg = as_str(attrs.get("logfire.msg")) or ""
    if name in ("agent run",) or name.startswith("invoke_agent") or msg.endswith(" run"):
        return StepKind.AGENT
    if name.startswith(("running tool", "execute_tool", "running output function")) or msg.startswith(
        "running tool"
    ):
        return StepKind.TOOL
    if name.startswith("chat ") or name == "chat":
        return StepKind.LLM
    return StepKind.OTHER


def map_pydantic_ai(span: SpanRecord, attrs: Mapping[str, Any], draft: Draft) -> None:
    draft.convention = "pydantic-ai"
    map_genai(span, attrs, draft)
    if draft.kind is StepKind.OTHER:
        draft.kind = _kind_from_name(as_str(span.name) or "", attrs)
    draft.fill(actor=first_name(attrs, "agent_name"), model=first_name(attrs, "model_name"))

    if draft.kind is StepKind.TOOL:
        _tool(span, attrs, draft)
    elif draft.kind is StepKind.AGENT:
        _agent(attrs, draft)


def _tool(span: SpanRecord, attrs: Mapping[str, Any], draft: Draft) -> None:
    if draft.tool_arguments is None and "tool_arguments" in attrs:
        draft.tool_arguments = json_text(attrs["tool_arguments"])
    if draft.tool_result is None and "tool_response" in attrs:
        draft.tool_result = as_str(attrs["tool_response"])
    if draft.tool_name is None:
        msg = as_str(attrs.get("logfire.msg")) or ""
        name = as_str(span.name) or ""
        for prefix, text in (("running tool: ", msg), ("execute_tool ", name)):
            if text.startswith(prefix):
                draft.tool_name = as_name(text[len(prefix) :])
                break
    draft.fill(input_text=draft.tool_arguments, output_text=draft.tool_result)
    cause = as_name(attrs.get("pydantic_ai.tool.retry.cause"))
    if cause is not None:
        # The tool asked the model to try again: the call failed even if the run recovers.
        attempt = as_int(attrs.get("pydantic_ai.tool.retry.attempt"))
        limit = as_int(attrs.get("pydantic_ai.tool.retry.max_retries"))
        detail = (
            f"retry requested ({cause}"
            + (f", attempt {attempt}" if attempt is not None else "")
            + (f" of {limit})" if limit is not None else ")")
        )
        draft.is_error = True
        reason = draft.tool_result or ""
        base = draft.error or reason
        draft.error = f"{base}\n{detail}" if base else detail
    stage = as_name(attrs.get("pydantic_ai.tool.failure_stage"))
    if stage is not None:
        draft.is_error = True
        draft.error = f"{draft.error}\nfailed at {stage}" if draft.error else f"failed at {stage}"


def _agent(attrs: Mapping[str, Any], draft: Draft) -> None:
    draft.fill(
        tokens_in=first_int(attrs, *AGG_IN),
        tokens_out=first_int(attrs, *AGG_OUT),
        tokens_reasoning=first_int(attrs, *AGG_REASONING),
        tokens_cached=first_int(attrs, *AGG_CACHED),
    )
    transcript = messages_from_value(
        attrs.get("pydantic_ai.all_messages") or attrs.get("all_messages_events")
    )
    if transcript:
        # The agent's input is what it was asked: the turns before its first answer.
        prompt: list[Message] = []
        for message in transcript:
            if message.role == "assistant":
                break
            prompt.append(message)
        system = (
            parts_from_value(attrs["gen_ai.system_instructions"])
            if "gen_ai.system_instructions" in attrs
            else []
        )
        if system:
            prompt.insert(0, Message("system", system))
        # Replaces the system-only input map_genai derived from gen_ai.system_instructions.
        draft.input_text = render(prompt) or draft.input_text
    if "final_result" in attrs:
        draft.fill(output_text=as_str(attrs["final_result"]))
    elif transcript:
        # Without final_result (a failed run) only what the agent last *said* counts as its output.
        last = [m for m in transcript if m.role == "assistant"][-1:]
        draft.fill(output_text=text_of(last))
