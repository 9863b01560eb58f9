"""The handles `collectors.sdk` yields: what an agent can say about a step while it runs.

A handle knows its span, the clock and whether to record stack traces, all given when the recorder opens
it; it never reaches back into the recorder (a plan opens its sub-tasks through the function it was
handed), so this module depends on nothing of the SDK's but the attribute names.

Each method sets span attributes and nothing else; every one of them swallows its own failures (a value
that cannot be serialized becomes its repr, a failure to set is logged), because recording must never
be the reason an agent stops. Content that arrives piece by piece (an LLM call's reasoning, answer and
tool requests) is written once, when the step closes, as the GenAI message JSON.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from collectors.conventions.sdk import (
    DECISION_ATTRIBUTE,
    DECISION_REASON_ATTRIBUTE,
    OUTPUT_TEXT_ATTRIBUTE,
    SIDE_EFFECT_ATTRIBUTE,
)

log = logging.getLogger("collectors.sdk")

Clock = Callable[[], int]  # nanoseconds since the epoch, as OTLP counts them

# Attributes the SDK adds beyond the GenAI vocabulary; the normalizer keeps them in the raw span.
RETRY_ATTEMPT_ATTRIBUTE = "workbench.retry.attempt"  # 1 for the first try, 2 for the first retry...
LINK_TYPE_ATTRIBUTE = "workbench.link.type"  # on a span link: "retry_of"
PLAN_SUBTASKS_ATTRIBUTE = "workbench.plan.subtasks"  # JSON list of the sub-task titles
SUBTASK_INDEX_ATTRIBUTE = "workbench.plan.subtask.index"  # 1-based position of a sub-task in its plan
GUARDRAIL_NAME_ATTRIBUTE = "workbench.guardrail.name"
APPROVER_ATTRIBUTE = "workbench.approver"

# Multi-path reasoning: a branch's label, its score, and whether the search chose it.
BRANCH_ID_ATTRIBUTE = "workbench.branch.id"
BRANCH_SCORE_ATTRIBUTE = "workbench.branch.score"
BRANCH_CHOSEN_ATTRIBUTE = "workbench.branch.chosen"
# Explicit cost in USD, read by the normalizer (collectors.conventions.facts.COST_KEYS).
COST_ATTRIBUTE = "workbench.cost_usd"


def dumps(value: Any) -> str:
    """JSON text of a value for an attribute; strings stay as they are (they may already be JSON)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except Exception:  # noqa: BLE001 (any value an agent passes, including ones whose repr raises)
        try:
            return repr(value)
        except Exception:  # noqa: BLE001 (a broken __repr__ must not stop the agent)
            return f"<unprintable {type(value).__name__}>"


def _text_parts(text: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "content": text if isinstance(text, str) else dumps(text)}]


def messages_json(messages: Any) -> str:
    """GenAI `gen_ai.input.messages` JSON from a string (one user message), (role, text) pairs or dicts."""
    if isinstance(messages, str):
        return dumps([{"role": "user", "parts": _text_parts(messages)}])
    out: list[Any] = []
    for item in messages if isinstance(messages, Sequence) else [messages]:
        if isinstance(item, tuple) and len(item) == 2:
            out.append({"role": str(item[0]), "parts": _text_parts(item[1])})
        elif isinstance(item, Mapping) and "parts" not in item and "content" in item:
            out.append({"role": item.get("role", "user"), "parts": _text_parts(item["content"])})
        else:
            out.append(item)
    return dumps(out)


def _attribute(value: Any) -> Any:
    """OTel takes scalars and homogeneous lists of scalars; anything else is recorded as JSON text."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return dumps(value)


def _error_type(error: BaseException) -> str:
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class StepHandle:
    """One recorded step. `span` is the OpenTelemetry span, for anything the helpers do not cover."""

    def __init__(self, span: trace.Span, clock: Clock, *, record_stacktraces: bool = True) -> None:
        self.span = span
        self._clock = clock
        # Stack traces name local file paths; a scripted run reproducible byte for byte turns them off.
        self._record_stacktraces = record_stacktraces
        self.failed = False

    def _now(self) -> int:
        return self._clock()

    def set(self, key: str, value: Any) -> None:
        """Any extra attribute; None is skipped, structures become JSON."""
        if value is None:
            return
        try:
            self.span.set_attribute(key, _attribute(value))
        except Exception:  # noqa: BLE001
            log.warning("could not record attribute %s", key, exc_info=True)

    def output(self, text: str) -> None:
        """What the step produced, in words (a plan's conclusion, a check's finding)."""
        self.set(OUTPUT_TEXT_ATTRIBUTE, text)

    def event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        try:
            attrs = {k: _attribute(v) for k, v in (attributes or {}).items() if v is not None}
            self.span.add_event(name, attrs, timestamp=self._now())
        except Exception:  # noqa: BLE001
            log.warning("could not record event %s", name, exc_info=True)

    def fail(self, error: BaseException | str, *, error_type: str | None = None) -> None:
        """Mark the step failed: status ERROR, `error.type`, and an `exception` event. The retry that
        follows is a new step with `retry_of=` this handle."""
        self.failed = True
        try:
            if isinstance(error, BaseException):
                kind = error_type or _error_type(error)
                message = str(error)
                attrs: dict[str, Any] = {"exception.type": kind, "exception.message": message}
                if self._record_stacktraces and error.__traceback__ is not None:
                    attrs["exception.stacktrace"] = "".join(traceback.format_exception(error))
                self.span.add_event("exception", attrs, timestamp=self._now())
            else:
                kind, message = error_type or "error", error
            self.span.set_attribute("error.type", kind)
            self.span.set_status(Status(StatusCode.ERROR, message))
        except Exception:  # noqa: BLE001
            log.warning("could not record a failure", exc_info=True)

    def _flush(self) -> None:
        """Write content gathered while the step ran (subclasses)."""

    def close(self) -> None:
        try:
            self._flush()
        except Exception:  # noqa: BLE001
            log.warning("could not record the content of %s", type(self).__name__, exc_info=True)
        try:
            self.span.end(end_time=self._now())
        except Exception:  # noqa: BLE001
            log.warning("could not end a span", exc_info=True)


class AgentRun(StepHandle):
    def finish(self, answer: str) -> None:
        """The run's final answer, as the GenAI output message of the agent span."""
        self.set("gen_ai.output.messages", dumps([{"role": "assistant", "parts": _text_parts(answer)}]))


class LLMCall(StepHandle):
    """A model call. Reasoning, answer text and tool requests are gathered in the order they come and
    written as one assistant message, reasoning parts kept apart from the text as GenAI specifies."""

    def __init__(self, span: trace.Span, clock: Clock, *, record_stacktraces: bool = True) -> None:
        super().__init__(span, clock, record_stacktraces=record_stacktraces)
        self._parts: list[dict[str, Any]] = []
        self._finish_reason: str | None = None

    def reasoning(self, text: str) -> None:
        """The model's scratchpad (reasoning / thinking content) for this call."""
        self._parts.append({"type": "reasoning", "content": text})

    def respond(self, text: str) -> None:
        """What the model answered, as text."""
        self._parts.append({"type": "text", "content": text})

    def request_tool(self, name: str, arguments: Any, call_id: str | None = None) -> str:
        """A tool call the model asked for; returns its id, to pass on to `tool_call(call_id=...)`."""
        if call_id is None:
            span_id = self.span.get_span_context().span_id
            call_id = f"call_{span_id:016x}_{len(self._parts)}"
        parsed = arguments
        if isinstance(arguments, str):
            try:
                parsed = json.loads(arguments)
            except ValueError:
                parsed = arguments
        self._parts.append({"type": "tool_call", "id": call_id, "name": name, "arguments": parsed})
        return call_id

    def usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        cached_tokens: int | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """Token counts as the provider reported them; `output_tokens` includes `reasoning_tokens`, as
        the GenAI conventions define it."""
        self.set("gen_ai.usage.input_tokens", input_tokens)
        self.set("gen_ai.usage.output_tokens", output_tokens)
        self.set("gen_ai.usage.reasoning.output_tokens", reasoning_tokens)
        self.set("gen_ai.usage.cache_read.input_tokens", cached_tokens)
        self.set(COST_ATTRIBUTE, cost_usd)

    def response(
        self, *, model: str | None = None, response_id: str | None = None, finish_reason: str | None = None
    ) -> None:
        self.set("gen_ai.response.model", model)
        self.set("gen_ai.response.id", response_id)
        self._finish_reason = finish_reason

    def _flush(self) -> None:
        if not self._parts and self._finish_reason is None:
            return
        reason = self._finish_reason or (
            "tool_call" if any(p["type"] == "tool_call" for p in self._parts) else "stop"
        )
        if self._parts:
            message = {"role": "assistant", "parts": self._parts, "finish_reason": reason}
            self.set("gen_ai.output.messages", dumps([message]))
        self.set("gen_ai.response.finish_reasons", [reason])


class ToolCall(StepHandle):
    def __init__(
        self,
        span: trace.Span,
        clock: Clock,
        *,
        record_stacktraces: bool = True,
        expected_side_effect: str | None = None,
    ) -> None:
        super().__init__(span, clock, record_stacktraces=record_stacktraces)
        self.expected_side_effect = expected_side_effect

    def result(self, value: Any) -> None:
        """What the tool returned to the agent."""
        self.set("gen_ai.tool.call.result", dumps(value))

    def side_effect(self, description: str) -> None:
        """What the tool changed outside the agent (rows deleted, a file written, a request sent)."""
        self.set(SIDE_EFFECT_ATTRIBUTE, description)

    def _flush(self) -> None:
        # The side effect declared when the call opened is what a successful call does; a call that
        # failed did not do it (a tool that changed something before failing says so itself).
        if self.expected_side_effect and not self.failed:
            self.side_effect(self.expected_side_effect)


class MemoryRead(StepHandle):
    def documents(self, documents: Sequence[Mapping[str, Any]]) -> None:
        """What the lookup returned: dicts with `id`, `content` and, for a vector query, `score`."""
        self.set("gen_ai.retrieval.documents", dumps(list(documents)))


class Plan(StepHandle):
    """A plan; its sub-tasks open as child steps so the work of each nests under it."""

    def __init__(
        self,
        span: trace.Span,
        clock: Clock,
        *,
        open_subtask: Callable[[int, str], AbstractContextManager[StepHandle]],
        subtasks: Sequence[str] = (),
        record_stacktraces: bool = True,
    ) -> None:
        super().__init__(span, clock, record_stacktraces=record_stacktraces)
        self._open_subtask = open_subtask
        self.subtasks: list[str] = list(subtasks)
        self._next = 1

    def subtask(self, title: str | None = None) -> AbstractContextManager[StepHandle]:
        """The next sub-task (or one named here, e.g. added while the plan ran)."""
        index = self._next
        self._next += 1
        if title is None:
            title = self.subtasks[index - 1] if index <= len(self.subtasks) else f"sub-task {index}"
        return self._open_subtask(index, title)


class Branch(StepHandle):
    """One candidate of a multi-path search."""

    def __init__(self, span: trace.Span, clock: Clock, *, record_stacktraces: bool = True) -> None:
        super().__init__(span, clock, record_stacktraces=record_stacktraces)
        self._score: float | None = None
        self._chosen: str | None = None

    def score(self, value: float) -> None:
        self._score = value
        self.set(BRANCH_SCORE_ATTRIBUTE, value)

    def choose(self, reason: str | None = None) -> None:
        """This branch is the one the search took."""
        self._chosen = reason or ""
        self.set(BRANCH_CHOSEN_ATTRIBUTE, True)

    def _flush(self) -> None:
        if self._score is None and self._chosen is None:
            return
        words = [f"score {self._score:.2f}" if self._score is not None else None]
        if self._chosen is not None:
            words.append("chosen" + (f": {self._chosen}" if self._chosen else ""))
        else:
            self.set(BRANCH_CHOSEN_ATTRIBUTE, False)
        self.output(", ".join(w for w in words if w))


class Decision(StepHandle):
    """A guardrail's verdict or a person's approval."""

    def decide(self, decision: str, reason: str | None = None) -> None:
        self.set(DECISION_ATTRIBUTE, decision)
        self.set(DECISION_REASON_ATTRIBUTE, reason)
