"""OpenTelemetry GenAI semantic conventions: the current form and the older flat form.

Current: `gen_ai.operation.name` says what the span is; content is JSON in `gen_ai.input.messages` /
`gen_ai.output.messages` / `gen_ai.system_instructions`; tools in `gen_ai.tool.*`. Seen from
opentelemetry-instrumentation-openai-v2 2.4b0 + opentelemetry-util-genai 1.1b0 and pydantic-ai.

Legacy ("genai-legacy"): `gen_ai.prompt.N.*` / `gen_ai.completion.N.*` flat keys (OpenLLMetry and
early instrumentations) and message events (`gen_ai.user.message`, `gen_ai.choice`, ...). Content for
current-form spans may instead arrive as OTLP *logs* (event-only content mode); a span never sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.conventions.common import (
    MAPPING,
    Draft,
    as_str,
    first,
    first_int,
    first_name,
    indexed,
    json_text,
    leaf,
    parse_json,
    unflatten,
)
from collectors.conventions.messages import (
    REASONING,
    TEXT,
    Message,
    Part,
    message_from_obj,
    messages_from_value,
    parts_from_value,
    reasoning_of,
    render,
    text_of,
)
from workbench.model import SpanRecord, StepKind

# gen_ai.operation.name values of the semantic conventions and what step each one is.
GENAI_OPERATION_KINDS: dict[str, StepKind] = {
    "chat": StepKind.LLM,
    "text_completion": StepKind.LLM,
    "generate_content": StepKind.LLM,
    "completion": StepKind.LLM,
    # An embeddings call is a model call that costs tokens; grouping it with LLM keeps token totals whole.
    "embeddings": StepKind.LLM,
    "execute_tool": StepKind.TOOL,
    "invoke_agent": StepKind.AGENT,
    "create_agent": StepKind.AGENT,
    "invoke_workflow": StepKind.AGENT,
    "retrieval": StepKind.MEMORY,
}

CURRENT_CONTENT_KEYS = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
)
MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
    "gen_ai.choice": "assistant",
}

TOKENS_IN = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens")
TOKENS_OUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.usage.completion_tokens")
TOKENS_REASONING = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "gen_ai.usage.output_tokens.reasoning",
    "gen_ai.usage.details.reasoning_tokens",  # pydantic-ai
    "gen_ai.usage.completion_tokens_details.reasoning_tokens",
    "llm.usage.reasoning_tokens",
)
TOKENS_CACHED = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",  # OpenLLMetry
    "gen_ai.usage.details.cache_read_tokens",  # pydantic-ai
    "gen_ai.usage.prompt_tokens_details.cached_tokens",
    "llm.usage.cache_read_input_tokens",
)


def has_legacy_content(span: SpanRecord, attrs: Mapping[str, Any]) -> bool:
    if any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.")) for k in attrs):
        return True
    return any(getattr(e, "name", None) in MESSAGE_EVENTS for e in _events(span))


def has_current_content(attrs: Mapping[str, Any]) -> bool:
    return any(k in attrs for k in CURRENT_CONTENT_KEYS)


def is_genai(span: SpanRecord, attrs: Mapping[str, Any]) -> bool:
    return any(k.startswith("gen_ai.") for k in attrs) or has_legacy_content(span, attrs)


def convention_of(span: SpanRecord, attrs: Mapping[str, Any]) -> str:
    """Current unless the only content is in the flat keys or message events of the older form."""
    if has_current_content(attrs):
        return "genai"
    if has_legacy_content(span, attrs):
        return "genai-legacy"
    if "gen_ai.operation.name" in attrs:
        return "genai"
    return "genai-legacy"


def kind_of(attrs: Mapping[str, Any], operation: str | None) -> StepKind:
    if operation and operation.lower() in GENAI_OPERATION_KINDS:
        return GENAI_OPERATION_KINDS[operation.lower()]
    if first(attrs, "gen_ai.tool.name", "gen_ai.tool.call.id"):
        return StepKind.TOOL
    if first(
        attrs,
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.prompt.0.content",
        "gen_ai.completion.0.content",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
    ):
        return StepKind.LLM
    if first(attrs, "gen_ai.agent.name", "gen_ai.agent.id"):
        return StepKind.AGENT
    return StepKind.OTHER


def map_genai(span: SpanRecord, attrs: Mapping[str, Any], draft: Draft) -> None:
    """Fill every fact the GenAI conventions (both forms) can carry; other families build on this."""
    operation = first_name(attrs, "gen_ai.operation.name", "llm.request.type")
    draft.fill(operation=operation)
    if draft.kind is StepKind.OTHER:
        draft.kind = kind_of(attrs, operation)
    draft.fill(
        actor=first_name(attrs, "gen_ai.agent.name"),
        model=first_name(attrs, "gen_ai.request.model", "gen_ai.response.model"),
        provider=first_name(attrs, "gen_ai.provider.name", "gen_ai.system"),
        tokens_in=first_int(attrs, *TOKENS_IN),
        tokens_out=first_int(attrs, *TOKENS_OUT),
        tokens_reasoning=first_int(attrs, *TOKENS_REASONING),
        tokens_cached=first_int(attrs, *TOKENS_CACHED),
    )
    _map_tool(attrs, draft)
    _map_content(span, attrs, draft)
    if draft.kind is StepKind.MEMORY:
        _map_retrieval(attrs, draft)


def _map_tool(attrs: Mapping[str, Any], draft: Draft) -> None:
    draft.fill(
        tool_name=first_name(attrs, "gen_ai.tool.name"), tool_call_id=first_name(attrs, "gen_ai.tool.call.id")
    )
    if draft.tool_arguments is None and "gen_ai.tool.call.arguments" in attrs:
        draft.tool_arguments = json_text(attrs["gen_ai.tool.call.arguments"])
    if draft.tool_result is None and "gen_ai.tool.call.result" in attrs:
        draft.tool_result = as_str(attrs["gen_ai.tool.call.result"])
    if draft.kind is StepKind.TOOL:
        draft.fill(input_text=draft.tool_arguments, output_text=draft.tool_result)


def _map_content(span: SpanRecord, attrs: Mapping[str, Any], draft: Draft) -> None:
    system = (
        parts_from_value(attrs.get("gen_ai.system_instructions"))
        if "gen_ai.system_instructions" in attrs
        else []
    )
    inputs = messages_from_value(attrs.get("gen_ai.input.messages"))
    outputs = messages_from_value(attrs.get("gen_ai.output.messages"))
    if inputs is None:
        inputs = _flat_messages(attrs, "gen_ai.prompt.")
    if outputs is None:
        outputs = _flat_messages(attrs, "gen_ai.completion.")
    event_inputs, event_outputs = _event_messages(span)
    inputs = inputs or event_inputs
    outputs = outputs or event_outputs
    if system:
        inputs = [Message("system", system), *(inputs or [])]
    draft.fill(
        input_text=render(inputs),
        output_text=render(outputs, reasoning=False),
        reasoning_text=reasoning_of(outputs),
    )
    if draft.kind is StepKind.AGENT and draft.output_text is None:
        draft.fill(output_text=text_of(outputs))
    draft.fill(reasoning_text=as_str(first(attrs, "gen_ai.reasoning.content")))


def _flat_messages(attrs: Mapping[str, Any], prefix: str) -> list[Message] | None:
    """gen_ai.prompt.N.{role,content,...} and gen_ai.completion.N.{..., tool_calls.M.*, reasoning_content}."""
    tree = unflatten(attrs, prefix)
    out: list[Message] = []
    default_role = "assistant" if prefix.endswith("completion.") else "user"
    for node in indexed(tree):
        if not isinstance(node, MAPPING):
            text = as_str(node)  # "gen_ai.prompt.0" = "hi": a bare message
            if text:
                out.append(Message(default_role, [Part(TEXT, text)]))
            continue
        role = as_str(leaf(node, "role")) or default_role
        parts: list[Part] = []
        reasoning = leaf(node, "reasoning_content") or leaf(node, "reasoning")
        if reasoning is not None:
            parts.append(Part(REASONING, as_str(reasoning)))
        content = leaf(node, "content")
        if content is not None:
            parsed = parse_json(content)
            structured = (
                message_from_obj({"role": role, "content": parsed}) if isinstance(parsed, list) else None
            )
            if structured is not None:
                parts.extend(structured.parts)
            elif role == "tool" or leaf(node, "tool_call_id"):
                parts.append(Part("tool_result", as_str(content), call_id=as_str(leaf(node, "tool_call_id"))))
            else:
                parts.append(Part(TEXT, as_str(content)))
        for call in indexed(node.get("tool_calls")):
            parts.append(
                Part(
                    "tool_call",
                    json_text(leaf(call, "arguments")),
                    name=as_str(leaf(call, "name")),
                    call_id=as_str(leaf(call, "id")),
                )
            )
        if parts:
            out.append(Message(role, parts))
    return out or None


def _events(span: SpanRecord) -> list[Any]:
    events = span.events
    return list(events) if isinstance(events, list | tuple) else []


def event_message(name: str, eattrs: Mapping[str, Any]) -> tuple[bool, Message | None]:
    """(is_output, message) for one GenAI message event; the body-ish fields vary by emitter."""
    role = as_str(eattrs.get("role")) or MESSAGE_EVENTS.get(name, "unknown")
    if name == "gen_ai.choice":
        raw = eattrs.get("message")
        parsed = parse_json(raw)
        if isinstance(parsed, MAPPING):
            # OpenLLMetry's event mode puts the tool calls beside the message, not inside it.
            beside = {"tool_calls": eattrs["tool_calls"]} if "tool_calls" in eattrs else {}
            message = message_from_obj({"role": "assistant", **beside, **parsed})
        elif raw is not None:
            message = Message("assistant", [Part(TEXT, as_str(raw))])
        else:
            message = message_from_obj(
                {"role": "assistant", **{k: v for k, v in eattrs.items() if k in ("content", "tool_calls")}}
            )
        return True, message
    body: dict[str, Any] = {"role": role}
    for key in ("content", "tool_calls", "tool_call_id", "name", "parts"):
        if key in eattrs:
            value = eattrs[key]
            parsed = parse_json(value)
            # Content that is a JSON list is a list of parts; any other content stays the text it is.
            body[key] = parsed if isinstance(parsed, list) else value
    if role == "tool" and "id" in eattrs and "tool_call_id" not in body:
        body["tool_call_id"] = eattrs["id"]
    return False, message_from_obj(body)


def _event_messages(span: SpanRecord) -> tuple[list[Message] | None, list[Message] | None]:
    inputs: list[Message] = []
    outputs: list[Message] = []
    for event in _events(span):
        name = getattr(event, "name", None)
        if name not in MESSAGE_EVENTS:
            continue
        eattrs = getattr(event, "attributes", None)
        is_output, message = event_message(name, eattrs if isinstance(eattrs, MAPPING) else {})
        if message is not None:
            (outputs if is_output else inputs).append(message)
    return inputs or None, outputs or None


def _map_retrieval(attrs: Mapping[str, Any], draft: Draft) -> None:
    draft.fill(input_text=as_str(first(attrs, "gen_ai.retrieval.query.text")))
    docs = parse_json(attrs.get("gen_ai.retrieval.documents"))
    if isinstance(docs, list):
        draft.fill(output_text=render_documents(docs))
    elif "gen_ai.retrieval.documents" in attrs:
        draft.fill(output_text=as_str(attrs["gen_ai.retrieval.documents"]))


def render_documents(docs: list[Any]) -> str | None:
    lines = []
    for doc in docs:
        if not isinstance(doc, MAPPING):
            lines.append(as_str(doc) or "")
            continue
        label = " ".join(
            p
            for p in (
                f"[{as_str(doc.get('id'))}]" if doc.get("id") is not None else None,
                f"(score {as_str(doc.get('score'))})" if doc.get("score") is not None else None,
            )
            if p
        )
        text = as_str(doc.get("content", doc.get("text", doc.get("page_content"))))
        lines.append(" ".join(p for p in (label, text) if p) or as_str(doc) or "")
    kept = [line for line in lines if line]
    return "\n".join(kept) if kept else None
