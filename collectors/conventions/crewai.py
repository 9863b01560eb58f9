"""What CrewAI's OpenInference instrumentation records that the rest of OpenInference does not.

Observed with crewai 1.15.30 and openinference-instrumentation-crewai 1.1.21, in both of its modes:
- wrappers (the default): `Crew.kickoff` (CHAIN, the root), `Task._execute_core` (AGENT) and
  `BaseTool.run` (TOOL, `input.value` the JSON arguments) spans; the model calls come from
  openinference-instrumentation-openai under them, as anywhere else;
- the event listener (`instrument(use_event_listener=True)`), fed by CrewAI's own event bus, which makes
  the LLM spans itself ("<model>.llm_call"). When the model answered with tool calls, that span has no
  output messages: its `output.value` is the bare JSON list of chat-completions tool calls. And the
  tool-call names it copies into the next call's input messages are Python reprs (`'run_sql'`), as are
  the parameter schemas inside `llm.tools` (not read: a schema is no evidence of what was called).
Neither mode captures a tool span's call id, nor reasoning in listener mode.
"""

from __future__ import annotations

import ast
from typing import Any

from collectors.conventions.common import MAPPING, as_name, json_text, parse_json
from collectors.conventions.messages import TOOL_CALL, Message, Part

# A tool name longer than this is not unquoted (a repr of a name is short; literal_eval stays cheap).
_MAX_NAME = 512


def unquoted_name(name: str | None) -> str | None:
    """A name recorded as the Python repr of a string (`'run_sql'`) as the name itself; others as they are."""
    if name is None or len(name) < 2 or len(name) > _MAX_NAME or name[0] != name[-1] or name[0] not in "'\"":
        return name
    try:
        value = ast.literal_eval(name)
    except (ValueError, SyntaxError):
        return name
    return value if isinstance(value, str) and value else name


def tool_calls_output(output_value: Any) -> list[Message] | None:
    """The listener's `output.value` when it is a list of chat-completions tool calls, as one assistant
    message of tool-call parts; None for anything else (the raw value is then shown as it is)."""
    parsed = parse_json(output_value)
    if not isinstance(parsed, list) or not parsed:
        return None
    parts: list[Part] = []
    for call in parsed:
        fn = call.get("function") if isinstance(call, MAPPING) else None
        if not isinstance(fn, MAPPING) or as_name(fn.get("name")) is None:
            return None
        parts.append(
            Part(
                TOOL_CALL,
                json_text(fn.get("arguments")),
                name=unquoted_name(as_name(fn.get("name"))),
                call_id=as_name(call.get("id")),
            )
        )
    return [Message("assistant", parts)]
