"""Chat messages from every convention, reduced to one shape and rendered for a terminal replay.

Conventions disagree on shape (GenAI `parts`, OpenAI-style `content` + `tool_calls`, OpenInference's
flattened `message.*` keys, pydantic-ai's `thinking` parts) but an auditor reading a replay wants one
layout: a `role: text` line per part, tool calls and results spelled out, reasoning kept apart so a
rule over the output never mistakes the scratchpad for what the agent said.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from collectors.conventions.common import (
    MAPPING,
    MISSING,
    as_name,
    as_str,
    dumps,
    join_nonempty,
    parse_json,
)

TEXT = "text"
REASONING = "reasoning"
TOOL_CALL = "tool_call"
TOOL_RESULT = "tool_result"
OTHER = "other"

# Part `type` values that carry scratchpad text: GenAI `reasoning`, pydantic-ai `thinking`,
# Anthropic-style `thinking` / `redacted_thinking` blocks.
REASONING_TYPES = frozenset({"reasoning", "thinking", "redacted_thinking", "reasoning_content"})
TEXT_TYPES = frozenset({"text", "output_text", "input_text", "refusal"})
TOOL_CALL_TYPES = frozenset({"tool_call", "function_call", "tool_use"})
TOOL_RESULT_TYPES = frozenset({"tool_call_response", "tool_result", "function_call_output", "tool-return"})


@dataclass(slots=True)
class Part:
    kind: str
    text: str | None = None
    name: str | None = None
    call_id: str | None = None


@dataclass(slots=True)
class Message:
    role: str
    parts: list[Part] = field(default_factory=list)


# Readable text of a content value that may be a string, a JSON-ish structure or a number.
_text_of = as_str


def part_from_obj(obj: Any) -> Part:
    """One message part, whatever vocabulary it uses; unknown part types are kept, labelled."""
    if not isinstance(obj, MAPPING):
        return Part(TEXT, _text_of(obj))
    ptype = as_str(obj.get("type")) or ""
    if ptype in REASONING_TYPES or (not ptype and "thinking" in obj):
        text = obj.get("content", obj.get("thinking", obj.get("text", obj.get("reasoning"))))
        if text is None and ptype == "redacted_thinking":
            text = "[redacted thinking]"
        return Part(REASONING, _text_of(text))
    if ptype in TOOL_CALL_TYPES or (not ptype and "arguments" in obj and "name" in obj):
        args = obj.get("arguments", obj.get("input", obj.get("args")))
        return Part(
            TOOL_CALL,
            _args_text(args),
            name=as_name(obj.get("name")),
            call_id=as_name(obj.get("id", obj.get("call_id"))),
        )
    if ptype in TOOL_RESULT_TYPES:
        result = obj.get("response", obj.get("result", obj.get("content", obj.get("output"))))
        return Part(
            TOOL_RESULT,
            _text_of(result),
            name=as_name(obj.get("name")),
            call_id=as_name(
                obj.get("id", obj.get("tool_call_id", obj.get("call_id", obj.get("tool_use_id"))))
            ),
        )
    if ptype in TEXT_TYPES or (not ptype and ("content" in obj or "text" in obj)):
        return Part(TEXT, _text_of(obj.get("content", obj.get("text"))))
    # Media and unknown parts: name the type and keep the rest as JSON so nothing silently vanishes.
    rest = {k: v for k, v in obj.items() if k not in ("type", "content")}
    summary = as_str(obj.get("content")) if isinstance(obj.get("content"), str) else None
    if ptype in ("blob", "image", "audio", "file", "uri", "image_url"):
        summary = f"[{ptype} {as_str(obj.get('mime_type') or obj.get('modality')) or ''}]".replace(" ]", "]")
        if obj.get("uri") or obj.get("url"):
            summary += f" {as_str(obj.get('uri') or obj.get('url'))}"
        return Part(OTHER, summary)
    return Part(OTHER, f"[{ptype or 'part'}] {summary or dumps(rest)}")


def _args_text(args: Any) -> str | None:
    if args is None:
        return None
    if isinstance(args, str):
        return args
    return dumps(args)


def message_from_obj(obj: Any) -> Message | None:
    """One message in GenAI (`parts`) or OpenAI (`content` + `tool_calls`) shape; None if neither."""
    if isinstance(obj, str):
        return Message("user", [Part(TEXT, obj)])
    if not isinstance(obj, MAPPING):
        return None
    role = as_name(obj.get("role")) or as_name(obj.get("type")) or "unknown"
    parts: list[Part] = []
    raw_parts = obj.get("parts")
    if isinstance(raw_parts, list):
        parts.extend(part_from_obj(p) for p in raw_parts)
    for key in ("reasoning_content", "reasoning", "thinking"):
        if isinstance(obj.get(key), str) and obj[key]:
            parts.append(Part(REASONING, obj[key]))
    content = obj.get("content", MISSING)
    if content is not MISSING and content is not None:
        if isinstance(content, list):
            parts.extend(part_from_obj(p) for p in content)
        else:
            text = _text_of(content)
            if role == "tool" or obj.get("tool_call_id"):
                parts.append(
                    Part(
                        TOOL_RESULT,
                        text,
                        name=as_name(obj.get("name")),
                        call_id=as_name(obj.get("tool_call_id")),
                    )
                )
            else:
                parts.append(Part(TEXT, text))
    calls = obj.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            if not isinstance(call, MAPPING):
                continue
            function = call.get("function")
            fn: Mapping[Any, Any] = function if isinstance(function, MAPPING) else call
            parts.append(
                Part(
                    TOOL_CALL,
                    _args_text(fn.get("arguments", fn.get("args"))),
                    name=as_name(fn.get("name")),
                    call_id=as_name(call.get("id")),
                )
            )
    if not parts and "role" not in obj:
        return None
    return Message(role, parts)


def messages_from_value(value: Any) -> list[Message] | None:
    """Messages from an attribute that should hold a JSON list of them; None when it does not parse.

    A string that is not JSON is still a message (some libraries put the bare prompt there), so the
    text reaches the replay instead of disappearing.
    """
    if value is None:
        return None
    parsed = parse_json(value)
    if parsed is MISSING:
        text = as_str(value)
        return [Message("user", [Part(TEXT, text)])] if text else None
    if isinstance(parsed, MAPPING):
        for key in ("messages", "all_messages"):
            if isinstance(parsed.get(key), list):
                parsed = parsed[key]
                break
        else:
            parsed = [parsed]
    if not isinstance(parsed, list):
        text = as_str(parsed)
        return [Message("user", [Part(TEXT, text)])] if text else None
    out = [m for m in (message_from_obj(item) for item in parsed) if m is not None]
    return out or None


def parts_from_value(value: Any) -> list[Part]:
    """System instructions: a JSON list of parts, or plain text."""
    parsed = parse_json(value)
    if parsed is MISSING:
        text = as_str(value)
        return [Part(TEXT, text)] if text else []
    if isinstance(parsed, list):
        return [part_from_obj(p) for p in parsed]
    return [part_from_obj(parsed)]


def render_part(role: str, part: Part) -> str | None:
    if part.kind == TEXT:
        return f"{role}: {part.text}" if part.text else None
    if part.kind == REASONING:
        return f"{role}: [reasoning] {part.text}" if part.text else None
    if part.kind == TOOL_CALL:
        ident = f" (id {part.call_id})" if part.call_id else ""
        return f"{role}: [tool call] {part.name or '?'}{ident} {part.text or ''}".rstrip()
    if part.kind == TOOL_RESULT:
        label = " ".join(p for p in (part.name, f"(id {part.call_id})" if part.call_id else None) if p)
        return f"{role}: [tool result{' ' + label if label else ''}] {part.text or ''}".rstrip()
    return f"{role}: {part.text}" if part.text else None


def render(messages: Iterable[Message] | None, *, reasoning: bool = True) -> str | None:
    """`role: text` lines; with reasoning=False the scratchpad is left to reasoning_text."""
    if not messages:
        return None
    lines = []
    for message in messages:
        for part in message.parts:
            if part.kind == REASONING and not reasoning:
                continue
            line = render_part(message.role, part)
            if line:
                lines.append(line)
    return "\n".join(lines) if lines else None


def reasoning_of(messages: Iterable[Message] | None) -> str | None:
    if not messages:
        return None
    return join_nonempty(p.text for m in messages for p in m.parts if p.kind == REASONING)


def tool_calls_of(messages: Iterable[Message] | None) -> list[Part]:
    if not messages:
        return []
    return [p for m in messages for p in m.parts if p.kind == TOOL_CALL]


def text_of(messages: Iterable[Message] | None) -> str | None:
    """Only the spoken text (no roles): an agent's final answer."""
    if not messages:
        return None
    return join_nonempty(p.text for m in messages for p in m.parts if p.kind == TEXT)
