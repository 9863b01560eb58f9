"""OpenInference (Arize / Phoenix): `openinference.span.kind` plus flattened `llm.*`, `tool.*`, `input.*`.

Observed with openinference-instrumentation-openai 0.1.66 (openinference-instrumentation 0.1.72), and
openinference-instrumentation-openai-agents 2.6.0 (openai-agents 0.24.0):
- every span INTERNAL; LLM span names are free-form ("ChatCompletion");
- `llm.model_name` is the *response* model; the requested one survives in `llm.invocation_parameters`
  (and in `input.value`, the raw request JSON), so those are read first;
- chat-completions reasoning (`reasoning_content` from OpenAI-compatible servers) is only in the raw
  response JSON in `output.value`; Responses-API reasoning arrives as `message_content.type=reasoning`.
- the Agents SDK's "generation" spans hold the *output messages* as a JSON list in `output.value`
  (reasoning_content inside), report no reasoning tokens, and its function spans carry no call id;
  its root "Agent workflow" is AGENT with a CHAIN twin below it, and each "turn" is a CHAIN.
- openinference-instrumentation-llama-index 4.6 (llama-index-core 0.14): two LLM spans per turn, the
  real call ("OpenAI.achat") and "OpenAI._prepare_chat_with_tools" (request assembly, mapped to other);
  the tool span's `input.value` is {"kwargs": {...}}, its `output.value` a ToolOutput JSON; the call id
  is only in a Python repr (`ToolCall(..., tool_id='call_1')`) on the parent "call_tool" chain, and the
  model's thinking block is dropped from the output messages (it survives only in chain reprs).
- with OPENINFERENCE_ENABLE_GENAI_SEMCONV=true the span also carries gen_ai.*, but
  `gen_ai.tool.call.arguments` holds the tool's JSON *schema* and `gen_ai.request.model` the response
  model, so GenAI attributes are only a last resort here.
- CrewAI (openinference-instrumentation-crewai): see crewai.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.conventions.common import (
    MAPPING,
    Draft,
    as_name,
    as_str,
    first_int,
    first_name,
    indexed,
    is_root,
    json_text,
    leaf,
    parse_json,
    unflatten,
    unwrap_call_args,
    value_at,
)
from collectors.conventions.crewai import tool_calls_output, unquoted_name
from collectors.conventions.genai import TOKENS_CACHED, TOKENS_IN, TOKENS_OUT, render_documents
from collectors.conventions.messages import (
    REASONING,
    REASONING_TYPES,
    TEXT,
    TOOL_CALL,
    TOOL_RESULT,
    Message,
    Part,
    reasoning_of,
    render,
)
from workbench.model import SpanRecord, StepKind

SPAN_KIND_ATTRIBUTE = "openinference.span.kind"

# CHAIN is decided by position (see kind_of). EVALUATOR joins GUARDRAIL: both judge content and
# their verdicts are what an auditor looks for. DECISION is a model call with typed answers.
OPENINFERENCE_KINDS: dict[str, StepKind] = {
    "LLM": StepKind.LLM,
    "EMBEDDING": StepKind.LLM,
    "DECISION": StepKind.LLM,
    "TOOL": StepKind.TOOL,
    "AGENT": StepKind.AGENT,
    "RETRIEVER": StepKind.MEMORY,
    "RERANKER": StepKind.MEMORY,
    "GUARDRAIL": StepKind.GUARDRAIL,
    "EVALUATOR": StepKind.GUARDRAIL,
    "HUMAN": StepKind.HUMAN,
    "PROMPT": StepKind.OTHER,
    "UNKNOWN": StepKind.OTHER,
}


# LlamaIndex wraps `FunctionCallingLLM._prepare_chat_with_tools` as an LLM span beside the real call.
PREPARE_SUFFIX = "._prepare_chat_with_tools"


def is_openinference(attrs: Mapping[str, Any]) -> bool:
    return SPAN_KIND_ATTRIBUTE in attrs


def kind_of(span: SpanRecord, attrs: Mapping[str, Any]) -> StepKind:
    """CHAIN is agent only at the root of a trace.

    LangChain/LangGraph and smolagents emit CHAIN for everything from the whole run down to a prompt
    formatting step. The root chain is the agent's invocation as the user sees it; inner chains are
    plumbing, and calling them agents would multiply the agents in every replay.
    """
    raw = (as_name(attrs.get(SPAN_KIND_ATTRIBUTE)) or "").upper()
    if raw == "CHAIN":
        return StepKind.AGENT if is_root(span) else StepKind.OTHER
    return OPENINFERENCE_KINDS.get(raw, StepKind.OTHER)


def map_openinference(span: SpanRecord, attrs: Mapping[str, Any], draft: Draft) -> None:
    draft.convention = "openinference"
    draft.kind = kind_of(span, attrs)
    draft.operation = (as_name(attrs.get(SPAN_KIND_ATTRIBUTE)) or "").lower() or None
    draft.fill(
        actor=first_name(attrs, "agent.name", "gen_ai.agent.name"),
        provider=first_name(attrs, "llm.provider", "llm.system", "decision.provider", "gen_ai.provider.name"),
        model=_request_model(attrs),
        tokens_in=first_int(attrs, "llm.token_count.prompt", "decision.token_count.input", *TOKENS_IN),
        tokens_out=first_int(attrs, "llm.token_count.completion", "decision.token_count.output", *TOKENS_OUT),
        tokens_reasoning=first_int(attrs, "llm.token_count.completion_details.reasoning"),
        tokens_cached=first_int(attrs, "llm.token_count.prompt_details.cache_read", *TOKENS_CACHED),
    )
    if draft.kind is StepKind.LLM and (as_str(span.name) or "").endswith(PREPARE_SUFFIX):
        # LlamaIndex's second LLM span per turn only assembles the request: no model call, no tokens.
        draft.kind = StepKind.OTHER
        draft.operation = "prepare_chat"
    if draft.kind is StepKind.AGENT and draft.actor is None:
        draft.actor = as_name(span.name)
    input_value = attrs.get("input.value")
    output_value = attrs.get("output.value")

    if draft.kind is StepKind.TOOL:
        _tool(attrs, input_value, output_value, draft)
    elif draft.kind is StepKind.LLM:
        inputs = _messages(attrs, "llm.input_messages.")
        outputs = _messages(attrs, "llm.output_messages.") or tool_calls_output(output_value)
        draft.fill(
            input_text=render(inputs),
            output_text=render(outputs, reasoning=False),
            reasoning_text=reasoning_of(outputs) or _raw_reasoning(output_value),
        )
    elif draft.kind is StepKind.MEMORY:
        docs = _documents(attrs, "retrieval.documents.") or _documents(attrs, "reranker.output_documents.")
        draft.fill(input_text=as_str(attrs.get("reranker.query")), output_text=docs)

    draft.fill(input_text=as_str(input_value), output_text=as_str(output_value))


def _request_model(attrs: Mapping[str, Any]) -> str | None:
    named = first_name(attrs, "llm.request.model_name", "decision.request.model_name")
    if named:
        return named
    params = parse_json(attrs.get("llm.invocation_parameters"))
    if isinstance(params, MAPPING) and as_name(params.get("model")):
        return as_name(params.get("model"))
    if as_str(attrs.get("input.mime_type")) == "application/json":
        request = parse_json(attrs.get("input.value"))
        if isinstance(request, MAPPING) and as_name(request.get("model")) and "messages" in request:
            return as_name(request.get("model"))
    return first_name(
        attrs,
        "llm.model_name",
        "decision.model_name",
        "embedding.model_name",
        "reranker.model_name",
        "llm.response.model_name",
        "gen_ai.request.model",
    )


def _tool(attrs: Mapping[str, Any], input_value: Any, output_value: Any, draft: Draft) -> None:
    draft.fill(
        tool_name=first_name(attrs, "tool.name", "gen_ai.tool.name"),
        tool_call_id=first_name(attrs, "tool.id", "tool_call.id", "gen_ai.tool.call.id"),
    )
    # input.value, not gen_ai.tool.call.arguments: under dual emission the latter is the tool schema.
    if input_value is not None:
        draft.tool_arguments = unwrap_call_args(input_value)
    elif attrs.get("gen_ai.tool.call.arguments") != attrs.get("tool.parameters"):
        draft.tool_arguments = json_text(attrs.get("gen_ai.tool.call.arguments"))
    if output_value is not None:
        result, call_id, failed = _unwrap_tool_message(output_value)
        draft.tool_result = result
        draft.fill(tool_call_id=call_id)
        if failed:
            draft.is_error = True
            draft.fill(error=f"tool returned an error: {result}" if result else "tool returned an error")
    else:
        draft.fill(tool_result=as_str(attrs.get("gen_ai.tool.call.result")))
    draft.fill(input_text=draft.tool_arguments, output_text=draft.tool_result)


def _unwrap_tool_message(value: Any) -> tuple[str | None, str | None, bool]:
    """LangChain's output.value is a serialized ToolMessage: content, tool_call_id, status inside.

    LlamaIndex's is a ToolOutput: the tool's own return value in `raw_output`, `is_error` beside it.
    """
    parsed = parse_json(value)
    if isinstance(parsed, MAPPING) and {"raw_output", "is_error", "tool_name"} <= set(parsed):
        raw = parsed["raw_output"]  # a tool returning text keeps its text, not a JSON-quoted copy
        text = raw if isinstance(raw, str) else json_text(raw) if raw is not None else as_str(value)
        return text, None, parsed.get("is_error") is True
    if isinstance(parsed, MAPPING):
        body = parsed
        for key in ("data", "kwargs"):
            if isinstance(parsed.get(key), MAPPING) and "tool_call_id" in parsed[key]:
                body = parsed[key]
                break
        if "tool_call_id" in body and "content" in body:
            status = as_str(body.get("status"))
            return as_str(body.get("content")), as_name(body.get("tool_call_id")), status == "error"
    return as_str(value), None, False


def _messages(attrs: Mapping[str, Any], prefix: str) -> list[Message] | None:
    tree = unflatten(attrs, prefix)
    out: list[Message] = []
    for node in indexed(tree):
        msg = node.get("message") if isinstance(node, MAPPING) else None
        if msg is None or not isinstance(msg, MAPPING):
            continue
        role = as_str(value_at(msg, "role")) or "unknown"
        parts: list[Part] = []
        call_id = as_name(value_at(msg, "tool_call_id"))
        content = value_at(msg, "content")
        if content is not None:
            kind = TOOL_RESULT if role == "tool" or call_id else TEXT
            parts.append(
                Part(
                    kind,
                    as_str(content),
                    name=as_name(value_at(msg, "name")) if kind == TOOL_RESULT else None,
                    call_id=call_id,
                )
            )
        for item in indexed(msg.get("contents")):
            ctype = (as_str(leaf(item, "message_content", "type")) or "text").lower()
            text = as_str(leaf(item, "message_content", "text"))
            if ctype in REASONING_TYPES:
                parts.append(Part(REASONING, text or "[encrypted reasoning]"))
            elif text is not None:
                parts.append(Part(TEXT, text))
            elif ctype != "text":
                parts.append(Part("other", f"[{ctype}]"))
        for call in indexed(msg.get("tool_calls")):
            parts.append(
                Part(
                    TOOL_CALL,
                    json_text(leaf(call, "tool_call", "function", "arguments")),
                    name=unquoted_name(as_name(leaf(call, "tool_call", "function", "name"))),
                    call_id=as_name(leaf(call, "tool_call", "id")),
                )
            )
        fn_name = as_name(value_at(msg, "function_call_name"))
        if fn_name:
            parts.append(
                Part(TOOL_CALL, json_text(value_at(msg, "function_call_arguments_json")), name=fn_name)
            )
        if parts:
            out.append(Message(role, parts))
    return out or None


def _raw_reasoning(output_value: Any) -> str | None:
    """Reasoning the instrumentation did not lift out but left in the raw response JSON."""
    parsed = parse_json(output_value)
    texts: list[str] = []
    if isinstance(parsed, list):  # the Agents SDK: the output messages themselves, not a response
        for msg in parsed:
            texts.extend(_message_reasoning(msg))
    if not isinstance(parsed, MAPPING):
        return "\n".join(texts) if texts else None
    choices = parsed.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            texts.extend(_message_reasoning(choice.get("message") if isinstance(choice, MAPPING) else None))
    content = parsed.get("content")
    if isinstance(content, list):  # Anthropic messages: thinking blocks
        for block in content:
            if (
                isinstance(block, MAPPING)
                and block.get("type") == "thinking"
                and isinstance(block.get("thinking"), str)
            ):
                texts.append(block["thinking"])
    return "\n".join(texts) if texts else None


def _message_reasoning(msg: Any) -> list[str]:
    """`reasoning_content` (DeepSeek, vLLM) or `reasoning` of one chat-completions message."""
    if not isinstance(msg, MAPPING):
        return []
    texts = (msg.get(key) for key in ("reasoning_content", "reasoning"))
    return [text for text in texts if isinstance(text, str) and text]


def _documents(attrs: Mapping[str, Any], prefix: str) -> str | None:
    docs = []
    for node in indexed(unflatten(attrs, prefix)):
        doc = node.get("document") if isinstance(node, MAPPING) else None
        if isinstance(doc, MAPPING):
            docs.append({k: leaf(doc, k) for k in ("id", "score", "content") if leaf(doc, k) is not None})
    return render_documents(docs) if docs else None
