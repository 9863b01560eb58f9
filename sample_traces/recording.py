"""How a scripted agent run becomes a trace: the same scenario code recorded two ways.

- Into a committed OTLP JSON file, reproducibly: a scripted clock (time moves only when the script says
  a model or a tool took so long), span ids from a generator seeded with the sample's name, no stack
  traces (they name local paths), and a resource without SDK version numbers. Re-running gives the same
  bytes, which `tests/test_samples.py` checks.
- Live, against a running `workbench serve` over OTLP/HTTP (`workbench demo --live`): wall-clock time,
  paced with real sleeps so the steps arrive while you watch, random ids.

Scenarios call the agent SDK (`collectors.sdk`) through a `Session`; only the model is scripted.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from collectors import sdk
from collectors.sdk import LLMCall, StepHandle, ToolCall

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Each read of the scripted clock moves it on by this much, so no two timestamps are equal and a
# child always starts after its parent.
TICK_NS = 1_000_000


def ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of a timezone-aware datetime, exactly (no float rounding)."""
    if moment.tzinfo is None:
        raise ValueError("scenario times must be timezone-aware (UTC)")
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


class Clock(Protocol):
    def __call__(self) -> int: ...

    def advance(self, seconds: float) -> None: ...


class ScriptedClock:
    """Time that passes only when the script says so: reproducible timestamps whatever the machine."""

    def __init__(self, start: datetime) -> None:
        self._now = ns(start)

    def __call__(self) -> int:
        self._now += TICK_NS
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += round(seconds * 1_000_000_000)


class LiveClock:
    """Wall-clock time; the script's model latencies become real sleeps, scaled by `pace`."""

    def __init__(self, pace: float) -> None:
        self.pace = pace

    def __call__(self) -> int:
        return time.time_ns()

    def advance(self, seconds: float) -> None:
        if self.pace > 0:
            time.sleep(seconds * self.pace)


class SeededIdGenerator(IdGenerator):
    """Trace and span ids from a generator seeded with a name: the same run gets the same ids."""

    def __init__(self, seed: str) -> None:
        self._rng = random.Random(hashlib.sha256(seed.encode()).digest())

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


def approx_tokens(*texts: str) -> int:
    """About four characters a token, the usual rule of thumb for English text and code."""
    return max(1, sum(len(t) for t in texts) // 4)


@dataclass(frozen=True)
class Price:
    """USD per million tokens; reasoning tokens are billed as output tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return round((input_tokens * self.input + output_tokens * self.output) / 1_000_000, 6)


@dataclass
class Outcome:
    """What a tool call gave back: its result or the exception it raised, and the step that recorded it."""

    result: Any
    error: Exception | None
    step: ToolCall


class Session:
    """A scenario's view of the recorder: an agent's moves in a few words each."""

    def __init__(self, recorder: sdk.Recorder, clock: Clock, workspace: Path) -> None:
        self.rec = recorder
        self.clock = clock
        self.workspace = workspace
        # Prompt size grows as a real agent's does: the tool schemas, then every message so far.
        self.context_tokens = 640

    def pause(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def think(self, text: str, *, model: str | None = None, seconds: float = 0.05) -> None:
        """A scratchpad thought the agent framework records apart from the model call (ReAct style)."""
        with self.rec.reasoning(text, model=model, name="scratchpad"):
            self.pause(seconds)

    def llm(
        self,
        model: str,
        *,
        provider: str,
        price: Price,
        messages: Any,
        system: str | None = None,
        reasoning: str | None = None,
        scratchpad: str | None = None,
        answer: str | None = None,
        tool: tuple[str, Mapping[str, Any]] | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        seconds: float = 1.0,
    ) -> str | None:
        """One scripted model turn; returns the id of the tool call it asked for, if any.

        `reasoning` is the model's own reasoning content; `scratchpad` a ReAct thought that the agent
        framework parses out of the answer and records as a reasoning step of its own."""
        call_id = None
        with self.rec.llm_call(model, provider=provider, messages=messages, system=system) as call:
            self.pause(seconds)
            if reasoning is not None:
                call.reasoning(reasoning)
            if answer is not None:
                call.respond(answer)
            if tool is not None:
                call_id = call.request_tool(tool[0], dict(tool[1]))
            self.context_tokens += approx_tokens(json.dumps(messages))
            tokens_in = input_tokens or self.context_tokens + approx_tokens(system or "")
            visible = approx_tokens(scratchpad or "", answer or "", json.dumps(tool[1]) if tool else "")
            self.context_tokens += visible
            tokens_out = output_tokens or visible + (reasoning_tokens or 0)
            call.usage(
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                reasoning_tokens=reasoning_tokens,
                cost_usd=price.cost(tokens_in, tokens_out),
            )
            call.response(model=model, response_id=_response_id(call))
        if scratchpad is not None:
            self.think(scratchpad, model=model)
        return call_id

    def tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        run: Callable[..., Any],
        *,
        call_id: str | None = None,
        side_effect: str | None = None,
        seconds: float = 0.2,
        attempt: int | None = None,
        retry_of: StepHandle | None = None,
    ) -> Outcome:
        """Run a real tool with these arguments inside a tool step; its failure is recorded, not raised."""
        step: ToolCall | None = None
        try:
            with self.rec.tool_call(
                name,
                dict(arguments),
                call_id=call_id,
                side_effect=side_effect,
                attempt=attempt,
                retry_of=retry_of,
            ) as step:
                try:
                    result = run(**arguments)
                finally:
                    self.pause(seconds)
                step.result(result)
                return Outcome(result, None, step)
        except Exception as exc:  # noqa: BLE001 (the agent sees the error as the tool's answer)
            assert step is not None
            return Outcome(None, exc, step)


def tool_message(call_id: str | None, outcome: Outcome) -> dict[str, Any]:
    """The tool's answer as the next model call sees it (a GenAI `tool_call_response` part)."""
    error = outcome.error
    response = outcome.result if error is None else f"{type(error).__name__}: {error}"
    return {"role": "tool", "parts": [{"type": "tool_call_response", "id": call_id, "response": response}]}


def _response_id(call: LLMCall) -> str:
    return f"resp_{call.span.get_span_context().span_id:016x}"


def load_scenario(dotted: str) -> ModuleType:
    return importlib.import_module(dotted)


@contextmanager
def _workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="workbench-sample-") as tmp:
        yield Path(tmp)


def record_file(name: str, scenario: str) -> bytes:
    """Run one scenario on the scripted clock and return its trace as OTLP JSON, byte for byte stable."""
    module = load_scenario(scenario)
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource({"service.name": module.SERVICE, "deployment.environment.name": "sample"}),
        id_generator=SeededIdGenerator(name),
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    clock = ScriptedClock(module.START)
    with _workspace() as workspace:
        module.run(Session(sdk.Recorder(provider, clock=clock, record_stacktraces=False), clock, workspace))
    provider.shutdown()
    spans = sorted(memory.get_finished_spans(), key=lambda s: s.start_time or 0)
    return otlp_json(encode_spans(spans))


def record_live(
    scenario: str, endpoint: str, *, pace: float, headers: Mapping[str, str] | None = None
) -> None:
    """Run one scenario now, exporting over OTLP/HTTP to `endpoint` as any instrumented agent would."""
    module = load_scenario(scenario)
    provider = sdk.configure(
        endpoint=endpoint,
        service_name=module.SERVICE,
        resource_attributes={"deployment.environment.name": "demo-live"},
        headers=headers,
        set_global=False,
    )
    clock = LiveClock(pace)
    try:
        with _workspace() as workspace:
            module.run(Session(sdk.Recorder(provider, clock=clock), clock, workspace))
    finally:
        provider.shutdown()


def otlp_json(request: Any, indent: int | None = 1) -> bytes:
    """OTLP/JSON as the spec writes it: hex ids, integer enums, camelCase keys; indented for reading,
    or one line when `indent` is None (JSON lines)."""
    doc = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in doc.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                _hex_ids(span)
                for link in span.get("links", []):
                    _hex_ids(link)
    separators = (",", ":") if indent is None else None
    return (json.dumps(doc, indent=indent, separators=separators, ensure_ascii=False) + "\n").encode("utf-8")


def _hex_ids(obj: dict[str, Any]) -> None:
    for key in ("traceId", "spanId", "parentSpanId"):
        if obj.get(key):
            obj[key] = base64.b64decode(obj[key]).hex()
