"""GenAI events joined to their step: log records of a span fill the content the span lacks.

In event-only content modes the spans carry no content: the messages, reasoning, tool arguments and
results arrive as OTLP log records linked by trace and span id, either one record per model call
(`gen_ai.client.inference.operation.details`, content in structured attributes, empty body) or one
record per message (`gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`,
`gen_ai.tool.message`, `gen_ai.choice`; content in the body or in attributes).

How: the records are laid onto a copy of the span (content attributes the span lacks; per-message
records as span events of the same name, which the GenAI convention already reads) and the copy is
normalized by the one normalizer. Only the content fields the span's own step left empty are taken
from it, and the step names them in `event_fields`: the span always wins, nothing else changes. Pure:
the same span and records (in seq order) always give the same step, which is what lets
`ledger verify` re-derive a joined step from sealed bytes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from collectors import decode, decode_logs
from collectors.conventions.adk import NO_CONTENT_NOTE
from collectors.conventions.genai import CURRENT_CONTENT_KEYS, MESSAGE_EVENTS, event_message
from collectors.conventions.messages import Message, messages_from_value
from workbench.errors import BadInput
from workbench.model import LogRecord, SpanEvent, SpanRecord, Step, StepKind
from workbench.store.log_join import Rejoin
from workbench.store.verify_derived import truncations_limit

log = logging.getLogger(__name__)

DETAILS_EVENT = "gen_ai.client.inference.operation.details"
# The step fields an event may fill, in the order `event_fields` lists them.
CONTENT_FIELDS = (
    "input_text",
    "output_text",
    "reasoning_text",
    "tool_name",
    "tool_call_id",
    "tool_arguments",
    "tool_result",
)
# Attributes of a details record that carry content (and are copied onto the span when it lacks them).
CONTENT_KEYS = frozenset(
    (*CURRENT_CONTENT_KEYS, "gen_ai.reasoning.content", "gen_ai.tool.name", "gen_ai.tool.call.id")
)
# Attributes of a per-message record that say who sent it, not what it said.
_NOT_CONTENT = frozenset(("event.name", "gen_ai.system", "gen_ai.provider.name"))

# What a convention writes in place of content its span did not capture (ADK's NO_CONTENT default): a
# field holding one of these lacks content, so an event may fill it.
PLACEHOLDERS = frozenset((NO_CONTENT_NOTE,))

Normalizer = Callable[[SpanRecord], Step]


def _lacks(step: Step, name: str) -> bool:
    value = getattr(step, name)
    return value is None or value in PLACEHOLDERS


def is_event(record: LogRecord) -> bool:
    """Whether this record can add to a step: in a span, and a GenAI event or carrying GenAI content."""
    if not record.span_id:
        return False
    if record.event_name in MESSAGE_EVENTS or record.event_name == DETAILS_EVENT:
        return True
    return any(key in CONTENT_KEYS for key in record.attributes)


def _message_attributes(record: LogRecord) -> dict[str, Any]:
    """A per-message record as the attributes of the span event the GenAI convention reads: the body's
    keys when it is an object (OpenLLMetry, the older util-genai), else the body as `content`, then the
    record's own attributes where the body did not say."""
    out: dict[str, Any] = {}
    body = record.body
    if isinstance(body, Mapping):
        out.update({str(k): v for k, v in body.items()})
    elif body is not None and body != "":
        out["content"] = body
    for key, value in record.attributes.items():
        if key not in _NOT_CONTENT and key not in out:
            out[key] = value
    return out


def with_events(span: SpanRecord, records: Sequence[LogRecord]) -> SpanRecord:
    """A copy of the span carrying its records' content where the span carried none (span first)."""
    attrs = dict(span.attributes)
    events = list(span.events)
    for record in records:
        if not is_event(record):
            continue
        if record.event_name in MESSAGE_EVENTS:
            events.append(SpanEvent(record.event_name, record.time_ns, _message_attributes(record)))
            continue
        body = record.body if isinstance(record.body, Mapping) else {}
        for source in (record.attributes, body):
            for key, value in source.items():
                if key in CONTENT_KEYS and key not in attrs:
                    attrs[key] = value
    return dataclasses.replace(span, attributes=attrs, events=tuple(events))


def _messages(record: LogRecord) -> list[Message]:
    """Every message a record carries, in whichever shape it came."""
    out: list[Message] = []
    if record.event_name in MESSAGE_EVENTS:
        _, message = event_message(record.event_name, _message_attributes(record))
        return [message] if message is not None else []
    body = record.body if isinstance(record.body, Mapping) else {}
    for key in ("gen_ai.input.messages", "gen_ai.output.messages"):
        for source in (record.attributes, body):
            if key in source:
                out += messages_from_value(source[key]) or []
                break
    return out


def tool_parts(records: Sequence[LogRecord]) -> tuple[dict[str, str], dict[str, str]]:
    """({call id: arguments}, {call id: result}) of every tool call and result a trace's events carry,
    the first one of each id in seq order."""
    calls: dict[str, str] = {}
    results: dict[str, str] = {}
    for record in records:
        if not is_event(record):
            continue
        for message in _messages(record):
            for part in message.parts:
                if part.call_id and part.text is not None:
                    if part.kind == "tool_call":
                        calls.setdefault(part.call_id, part.text)
                    elif part.kind == "tool_result":
                        results.setdefault(part.call_id, part.text)
    return calls, results


@dataclasses.dataclass
class _Index:
    """A trace's events by trace and by span, and its tool parts once read: what `join` looks up per span.

    Why: a step is re-derived for each span of a trace against the same records (the writer's rejoin,
    `ledger verify`, bundle verify); filtering and decoding them again per span made joining a trace of
    n spans and n records cost n * n (800 of each: minutes)."""

    by_trace: dict[str, list[LogRecord]]
    by_span: dict[tuple[str, str], list[LogRecord]]
    parts: dict[str, tuple[dict[str, str], dict[str, str]]]

    def tool_parts(self, trace_id: str) -> tuple[dict[str, str], dict[str, str]]:
        if trace_id not in self.parts:
            self.parts[trace_id] = tool_parts(self.by_trace.get(trace_id, []))
        return self.parts[trace_id]


# The last records indexed and the last stored records decoded, each with the very object it came from
# (held, so its id cannot be reused): callers pass the same sequence for every span of a trace. One entry
# each, replaced whole, so threads sharing it at worst index twice.
_last_index: tuple[Sequence[LogRecord], _Index] | None = None
_last_decoded: tuple[Sequence[tuple[bytes, object]], list[LogRecord]] | None = None


def _indexed(records: Sequence[LogRecord]) -> _Index:
    global _last_index
    last = _last_index
    if last is not None and last[0] is records:
        return last[1]
    index = _Index({}, {}, {})
    for record in records:
        if is_event(record):
            index.by_trace.setdefault(record.trace_id, []).append(record)
            index.by_span.setdefault((record.trace_id, record.span_id), []).append(record)
    _last_index = (records, index)
    return index


def join(span: SpanRecord, records: Sequence[LogRecord], normalize: Normalizer) -> Step:
    """The span's step, with the content fields it lacks filled from its events (see the module doc).

    `records` are the events of the span's whole trace, in seq order: its own fill it; a tool step that
    lacks its arguments or result (util-genai's tool spans in event-only mode) takes them from the tool
    call and tool result of the same call id in the trace's model-call events.
    """
    base = _safe(normalize, span)
    index = _indexed(records)
    events = index.by_trace.get(span.trace_id, [])
    own = index.by_span.get((span.trace_id, span.span_id), [])
    fills: dict[str, Any] = {}
    if own:
        full = _safe(normalize, with_events(span, own))
        fills = {
            name: getattr(full, name)
            for name in CONTENT_FIELDS
            if _lacks(base, name) and not _lacks(full, name)
        }
    call_id = base.tool_call_id or fills.get("tool_call_id")
    if base.kind is StepKind.TOOL and call_id and events:
        calls, results = index.tool_parts(span.trace_id)
        for name, found, text in (
            ("tool_arguments", calls, "input_text"),
            ("tool_result", results, "output_text"),
        ):
            if getattr(base, name) is None and name not in fills and call_id in found:
                fills[name] = found[call_id]
                if _lacks(base, text):
                    fills.setdefault(text, found[call_id])
    if not fills:
        return base
    names = [name for name in CONTENT_FIELDS if name in fills]
    return dataclasses.replace(base, **fills, event_fields=json.dumps(names))


def _safe(normalize: Normalizer, span: SpanRecord) -> Step:
    from collectors.pipeline import safe_normalize  # the pipeline imports this module

    return safe_normalize(normalize, span)


def _undecodable(exc: Exception) -> Step:
    return Step(
        trace_id="",
        span_id="",
        parent_span_id="",
        kind=StepKind.OTHER,
        name="",
        start_time_ns=0,
        end_time_ns=0,
        convention="unknown",
        error=f"undecodable span: {exc}",
    )


def decode_events(logs: Sequence[tuple[bytes, object]]) -> list[LogRecord]:
    """Stored log records back from their canonical bytes, each with the attribute limit of its own
    ingest (read from its truncation record); one that does not decode is left out, as verify does.
    The same sequence given again (the next span of the trace) gives the same list without decoding."""
    global _last_decoded
    last = _last_decoded
    if last is not None and last[0] is logs:
        return last[1]
    out = []
    for canonical, truncations in logs:
        try:
            out.append(
                decode_logs.record_from_canonical(canonical, truncations_limit(truncations) or sys.maxsize)
            )
        except BadInput:
            log.warning("a stored log record does not decode; left out of its step")
    _last_decoded = (logs, out)
    return out


def derive(
    canonical: bytes, truncations: object, logs: Sequence[tuple[bytes, object]], normalize: Normalizer
) -> Step:
    """A stored span's step joined with its stored events: the one derivation ingest and verify share."""
    try:
        span = decode.record_from_canonical(canonical, truncations_limit(truncations) or sys.maxsize)
    except BadInput as exc:
        return _undecodable(exc)
    return join(span, decode_events(logs), normalize) if logs else _safe(normalize, span)


def rejoiner(normalize: Normalizer) -> Rejoin:
    """The writer's Rejoin (workbench.store.log_join) for this normalizer."""

    def rejoin(canonical: bytes, truncations: object, logs: Sequence[tuple[bytes, object]]) -> Step:
        return derive(canonical, truncations, logs, normalize)

    return rejoin
