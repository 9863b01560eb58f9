"""Decorators that record every call of a function as a step: a tool call, or a whole agent run.

They take the function that opens the step (a recorder's `tool_call` or `agent_run`) as an argument, so
they depend on the handles only, never on the recorder's module.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, ParamSpec, TypeVar

from collectors.sdk.handles import AgentRun, ToolCall, dumps


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


def _bound_arguments(
    signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Arguments by parameter name, as a tool-call record shows them; `self` is not an argument."""
    if signature is not None:
        try:
            bound = signature.bind_partial(*args, **kwargs)
            return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}
        except TypeError:
            pass
    return {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}


def _first_line(doc: str | None) -> str | None:
    return doc.strip().splitlines()[0] if doc and doc.strip() else None


P = ParamSpec("P")
R = TypeVar("R")

OpenToolCall = Callable[..., AbstractContextManager[ToolCall]]
OpenAgentRun = Callable[..., AbstractContextManager[AgentRun]]


def tool_decorator(
    open_tool_call: OpenToolCall, name: str | None, *, side_effect: str | None, description: str | None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Each call of the function is `open_tool_call(name, bound arguments, ...)` with its result."""

    def wrap(func: Callable[P, R]) -> Callable[P, R]:
        tool_name = name or func.__name__
        signature = _signature(func)

        @functools.wraps(func)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            with open_tool_call(
                tool_name,
                _bound_arguments(signature, args, kwargs),
                description=description or _first_line(func.__doc__),
                side_effect=side_effect,
            ) as step:
                result = func(*args, **kwargs)
                step.result(result)
                return result

        return call

    return wrap


def agent_decorator(
    open_agent_run: OpenAgentRun, name: str | None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Each call of the function is `open_agent_run(name, task=...)`: arguments the task, result the
    answer."""

    def wrap(func: Callable[P, R]) -> Callable[P, R]:
        agent_name = name or func.__name__
        signature = _signature(func)

        @functools.wraps(func)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            arguments = _bound_arguments(signature, args, kwargs)
            task = next(iter(arguments.values())) if len(arguments) == 1 else arguments
            with open_agent_run(agent_name, task=task if isinstance(task, str) else dumps(task)) as run:
                result = func(*args, **kwargs)
                run.finish(result if isinstance(result, str) else dumps(result))
                return result

        return call

    return wrap
