"""The recorder: opens one span per agent step, as the GenAI conventions name them, and yields its handle.

It depends on the handles (collectors.sdk.handles) and the decorators, never the other way: each handle
is built here with what it needs (span, clock, and for a plan the function that opens a sub-task).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager as CM
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from collectors.conventions.sdk import (
    INPUT_TEXT_ATTRIBUTE,
    OPERATION_GUARDRAIL,
    OPERATION_HUMAN_APPROVAL,
    OPERATION_PLAN,
    OPERATION_REASONING,
    OPERATION_RETRIEVAL,
    OUTPUT_TEXT_ATTRIBUTE,
    REASONING_CONTENT_ATTRIBUTE,
    SDK_SCOPE_NAME,
    STEP_KIND_ATTRIBUTE,
)
from collectors.sdk.decorators import agent_decorator, tool_decorator
from collectors.sdk.handles import (
    APPROVER_ATTRIBUTE,
    BRANCH_ID_ATTRIBUTE,
    GUARDRAIL_NAME_ATTRIBUTE,
    LINK_TYPE_ATTRIBUTE,
    PLAN_SUBTASKS_ATTRIBUTE,
    RETRY_ATTEMPT_ATTRIBUTE,
    SUBTASK_INDEX_ATTRIBUTE,
    AgentRun,
    Branch,
    Clock,
    Decision,
    LLMCall,
    MemoryRead,
    Plan,
    StepHandle,
    ToolCall,
    dumps,
    messages_json,
)
from workbench.model import StepKind

# The version of what the SDK emits (attribute names and shapes), written as the instrumentation scope
# version. Not the package version: a release that changes nothing here must not change the spans.
SDK_FORMAT_VERSION = "1"

P = ParamSpec("P")
R = TypeVar("R")
H = TypeVar("H", bound=StepHandle)

# The agent whose steps are being recorded: each step names it as its actor (gen_ai.agent.name), so a
# replay of a multi-agent trace says who did what without walking up the tree.
_actor: ContextVar[str | None] = ContextVar("workbench_sdk_actor", default=None)


class Recorder:
    """Creates the spans. Module-level helpers use one on the global TracerProvider; make your own to
    record into a specific provider or on a scripted clock (replays of recorded runs, tests, samples)."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        clock: Clock | None = None,
        record_stacktraces: bool = True,
    ) -> None:
        self._provider = tracer_provider
        self.clock: Clock = clock or time.time_ns
        # Stack traces name local file paths; a scripted run that must be reproducible byte for byte
        # turns them off.
        self.record_stacktraces = record_stacktraces

    def _handle(self, handle_type: type[H]) -> Callable[[trace.Span], H]:
        """How a plain handle of this type is made for a new span: the clock, and nothing else of ours."""
        return lambda span: handle_type(span, self.clock, record_stacktraces=self.record_stacktraces)

    @property
    def tracer(self) -> trace.Tracer:
        # Looked up on each use so module-level helpers follow a provider configured later.
        return trace.get_tracer(SDK_SCOPE_NAME, SDK_FORMAT_VERSION, tracer_provider=self._provider)

    @contextmanager
    def _step(
        self,
        make: Callable[[trace.Span], H],
        name: str,
        operation: str,
        kind: StepKind,
        attributes: Mapping[str, Any],
        *,
        span_kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attempt: int | None = None,
        retry_of: StepHandle | None = None,
        actor: str | None = None,
    ) -> Iterator[H]:
        attrs: dict[str, Any] = {"gen_ai.operation.name": operation, STEP_KIND_ATTRIBUTE: kind.value}
        who = actor or _actor.get()
        if who:
            attrs["gen_ai.agent.name"] = who
        attrs.update({k: v for k, v in attributes.items() if v is not None})
        if attempt is not None:
            attrs[RETRY_ATTEMPT_ATTRIBUTE] = attempt
        links = []
        if retry_of is not None:
            links.append(trace.Link(retry_of.span.get_span_context(), {LINK_TYPE_ATTRIBUTE: "retry_of"}))
        span = self.tracer.start_span(
            name,
            kind=span_kind,
            attributes=attrs,
            links=links,
            start_time=self.clock(),
            record_exception=False,
            set_status_on_exception=False,
        )
        handle = make(span)
        token = otel_context.attach(trace.set_span_in_context(span))
        actor_token = _actor.set(actor) if actor else None
        try:
            yield handle
        except Exception as exc:
            if not handle.failed:
                handle.fail(exc)
            raise
        finally:
            if actor_token is not None:
                _actor.reset(actor_token)
            otel_context.detach(token)
            handle.close()

    def agent_run(
        self,
        name: str,
        *,
        task: str | None = None,
        agent_id: str | None = None,
        description: str | None = None,
        conversation_id: str | None = None,
        model: str | None = None,
        provider: str | None = None,
    ) -> CM[AgentRun]:
        """One run of an agent (GenAI `invoke_agent`): the root its steps hang under."""
        return self._step(
            self._handle(AgentRun),
            f"invoke_agent {name}",
            "invoke_agent",
            StepKind.AGENT,
            {
                "gen_ai.agent.id": agent_id,
                "gen_ai.agent.description": description,
                "gen_ai.conversation.id": conversation_id,
                "gen_ai.request.model": model,
                "gen_ai.provider.name": provider,
                "gen_ai.input.messages": messages_json(task) if task is not None else None,
            },
            actor=name,
        )

    def llm_call(
        self,
        model: str,
        *,
        provider: str | None = None,
        messages: Any = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        operation: str = "chat",
        attempt: int | None = None,
        retry_of: StepHandle | None = None,
    ) -> CM[LLMCall]:
        """A model call (GenAI `chat`); the handle records its reasoning, answer, tool requests, usage.

        `messages` is a user message as a string, (role, text) pairs, or GenAI message dicts."""
        return self._step(
            self._handle(LLMCall),
            f"{operation} {model}",
            operation,
            StepKind.LLM,
            {
                "gen_ai.request.model": model,
                "gen_ai.provider.name": provider,
                "gen_ai.request.temperature": temperature,
                "gen_ai.request.max_tokens": max_tokens,
                "gen_ai.system_instructions": (
                    dumps([{"type": "text", "content": system}]) if system is not None else None
                ),
                "gen_ai.input.messages": messages_json(messages) if messages is not None else None,
            },
            span_kind=trace.SpanKind.CLIENT,
            attempt=attempt,
            retry_of=retry_of,
        )

    def tool_call(
        self,
        name: str,
        arguments: Any = None,
        *,
        call_id: str | None = None,
        description: str | None = None,
        side_effect: str | None = None,
        attempt: int | None = None,
        retry_of: StepHandle | None = None,
    ) -> CM[ToolCall]:
        """A tool execution (GenAI `execute_tool`) with its arguments; the handle records the result and
        what the tool changed in the world (`side_effect`, recorded if the call succeeds), which a result
        alone rarely says."""
        return self._step(
            lambda span: ToolCall(
                span, self.clock, record_stacktraces=self.record_stacktraces, expected_side_effect=side_effect
            ),
            f"execute_tool {name}",
            "execute_tool",
            StepKind.TOOL,
            {
                "gen_ai.tool.name": name,
                "gen_ai.tool.type": "function",
                "gen_ai.tool.call.id": call_id,
                "gen_ai.tool.description": description,
                "gen_ai.tool.call.arguments": dumps(arguments) if arguments is not None else None,
            },
            attempt=attempt,
            retry_of=retry_of,
        )

    def memory_read(
        self, query: str, *, store: str | None = None, top_k: int | None = None
    ) -> CM[MemoryRead]:
        """A memory lookup (GenAI `retrieval`): the query, and the documents it returned via the handle."""
        return self._step(
            self._handle(MemoryRead),
            f"retrieval {store}" if store else "retrieval",
            OPERATION_RETRIEVAL,
            StepKind.MEMORY,
            {
                "gen_ai.retrieval.query.text": query,
                "gen_ai.data_source.id": store,
                "gen_ai.request.top_k": top_k,
            },
        )

    @contextmanager
    def plan(self, goal: str, subtasks: Sequence[str] = ()) -> Iterator[Plan]:
        """A plan: the goal and its sub-tasks; `handle.subtask()` opens the step one sub-task's work
        nests under, so the tree shows which action served which part of the plan."""
        numbered = "\n".join(f"{i}. {title}" for i, title in enumerate(subtasks, start=1))
        attributes = {
            INPUT_TEXT_ATTRIBUTE: goal,
            OUTPUT_TEXT_ATTRIBUTE: numbered or None,
            PLAN_SUBTASKS_ATTRIBUTE: dumps(list(subtasks)) if subtasks else None,
        }

        def make(span: trace.Span) -> Plan:
            return Plan(
                span,
                self.clock,
                open_subtask=self.subtask,
                subtasks=subtasks,
                record_stacktraces=self.record_stacktraces,
            )

        with self._step(make, "plan", OPERATION_PLAN, StepKind.PLAN, attributes) as handle:
            yield handle

    def subtask(self, index: int, title: str) -> CM[StepHandle]:
        """One sub-task of a plan, as a plan step the sub-task's work nests under."""
        return self._step(
            self._handle(StepHandle),
            f"subtask {index}: {title}",
            OPERATION_PLAN,
            StepKind.PLAN,
            {SUBTASK_INDEX_ATTRIBUTE: index, INPUT_TEXT_ATTRIBUTE: title},
        )

    def reasoning(self, text: str, *, model: str | None = None, name: str = "reasoning") -> CM[StepHandle]:
        """A scratchpad thought that is not a model call of its own (a ReAct "Thought:", a reflection)."""
        return self._step(
            self._handle(StepHandle),
            name,
            OPERATION_REASONING,
            StepKind.REASONING,
            {REASONING_CONTENT_ATTRIBUTE: text, "gen_ai.request.model": model},
        )

    def branch(self, label: str, thought: str, *, model: str | None = None) -> CM[Branch]:
        """One candidate of a multi-path search (tree of thought): nest branches to draw the tree; the
        handle scores it and marks the one chosen."""
        return self._step(
            self._handle(Branch),
            f"branch {label}",
            OPERATION_REASONING,
            StepKind.REASONING,
            {REASONING_CONTENT_ATTRIBUTE: thought, "gen_ai.request.model": model, BRANCH_ID_ATTRIBUTE: label},
        )

    def guardrail(self, name: str, *, checked: str | None = None) -> CM[Decision]:
        """A safety check on what the agent is about to do; `handle.decide("allow" | "block" | ...)`."""
        return self._step(
            self._handle(Decision),
            f"guardrail {name}",
            OPERATION_GUARDRAIL,
            StepKind.GUARDRAIL,
            {GUARDRAIL_NAME_ATTRIBUTE: name, INPUT_TEXT_ATTRIBUTE: checked},
        )

    def human_approval(self, request: str, *, approver: str | None = None) -> CM[Decision]:
        """A person asked to approve an action; `handle.decide("approved" | "rejected", reason)`."""
        return self._step(
            self._handle(Decision),
            "human_approval",
            OPERATION_HUMAN_APPROVAL,
            StepKind.HUMAN,
            {APPROVER_ATTRIBUTE: approver, INPUT_TEXT_ATTRIBUTE: request},
        )

    def tool(
        self, name: str | None = None, *, side_effect: str | None = None, description: str | None = None
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator: every call of the function is a tool step with its bound arguments and result."""
        return tool_decorator(self.tool_call, name, side_effect=side_effect, description=description)

    def agent(self, name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator: every call of the function is an agent run; its arguments are the task, its
        return value the answer."""
        return agent_decorator(self.agent_run, name)
