"""A long agent trace (100,000 steps by default) for tests and benchmarks: never committed, built on demand.

    python -m sample_traces.long_trace OUT [--steps 100000] [--seed 1]

OUT's suffix picks the format: `.pb` (one OTLP ExportTraceServiceRequest, the fastest), `.jsonl` (OTLP
JSON, one request of at most 5,000 spans a line, as the Collector's file exporter writes), `.json`;
add `.gz` to compress. Spans are built as OTLP protobuf directly: the OpenTelemetry SDK costs tens of
microseconds a span, too slow for 100,000. They carry the same attributes our SDK writes, so they
normalize into the same step kinds (one agent run; plan sub-tasks with model calls, reasoning, tools,
memory reads, guardrails and an occasional human approval under each). Same arguments, same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from collectors.conventions.sdk import (
    DECISION_ATTRIBUTE,
    INPUT_TEXT_ATTRIBUTE,
    REASONING_CONTENT_ATTRIBUTE,
    SDK_SCOPE_NAME,
    STEP_KIND_ATTRIBUTE,
)
from collectors.sdk import SDK_FORMAT_VERSION

START_NS = 1_762_300_800_000_000_000  # 2025-11-05T00:00:00Z
JSONL_SPANS_PER_LINE = 5_000
AGENT = "batch-agent"
MODEL = "gpt-4.1-mini-2025-04-14"
TOOLS = ("read_file", "run_sql", "http_get", "write_file", "list_dir")
_WORDS = (
    "check the next batch of invoices against the ledger and flag any amount that differs by more than "
    "one cent then continue with the following account unless the reconciliation window has closed"
).split()
# One sub-task's steps after its plan span, in order (a sub-task is ~10 steps).
_TURN = ("llm", "reasoning", "tool", "llm", "tool", "memory", "llm", "tool", "guardrail")


def _kv(key: str, value: str | int | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _common(operation: str, kind: str) -> list[KeyValue]:
    return [
        _kv("gen_ai.operation.name", operation),
        _kv(STEP_KIND_ATTRIBUTE, kind),
        _kv("gen_ai.agent.name", AGENT),
    ]


_FIXED = {
    "agent": _common("invoke_agent", "agent"),
    "plan": _common("plan", "plan"),
    "llm": [
        *_common("chat", "llm"),
        _kv("gen_ai.request.model", MODEL),
        _kv("gen_ai.provider.name", "openai"),
    ],
    "reasoning": [*_common("reasoning", "reasoning"), _kv("gen_ai.request.model", MODEL)],
    "tool": [*_common("execute_tool", "tool"), _kv("gen_ai.tool.type", "function")],
    "memory": [*_common("retrieval", "memory"), _kv("gen_ai.data_source.id", "ledger-notes")],
    "guardrail": _common("guardrail", "guardrail"),
    "human": _common("human_approval", "human"),
}


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(_WORDS, k=words))


def _kinds(steps: int) -> Iterator[str]:
    """agent, then sub-tasks (a plan span and its turn) until `steps` spans; every 50th adds an approval."""
    yield "agent"
    n, turn = 1, 0
    while n < steps:
        turn += 1
        for kind in ("plan", *_TURN, *(("human",) if turn % 50 == 0 else ())):
            if n == steps:
                return
            yield kind
            n += 1


def build(steps: int = 100_000, seed: int = 1) -> ExportTraceServiceRequest:
    """One trace of exactly `steps` spans, deterministic for (steps, seed)."""
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    resource_spans: ResourceSpans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        [_kv("service.name", AGENT), _kv("deployment.environment.name", "bench")]
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = SDK_SCOPE_NAME
    scope_spans.scope.version = SDK_FORMAT_VERSION
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    root = subtask = b""
    t = START_NS
    turn = 0
    for i, kind in enumerate(_kinds(steps)):
        span_id = (i + 1).to_bytes(8, "big")  # unique and never zero; randomness adds nothing here
        parent = b"" if kind == "agent" else root if kind == "plan" else subtask
        duration = {"llm": 1_400_000_000, "tool": 120_000_000, "human": 90_000_000_000}.get(kind, 20_000_000)
        span = scope_spans.spans.add(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name=kind,
            kind=Span.SPAN_KIND_CLIENT if kind == "llm" else Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=t,
            end_time_unix_nano=t + duration,
        )
        span.attributes.extend(_FIXED[kind])
        if kind == "agent":
            root = span_id
            span.name = f"invoke_agent {AGENT}"
            span.attributes.append(
                _kv(INPUT_TEXT_ATTRIBUTE, "Reconcile November invoices against the ledger.")
            )
        elif kind == "plan":
            turn += 1
            subtask = span_id
            span.name = f"subtask {turn}: accounts batch {turn}"
            span.attributes.append(_kv(INPUT_TEXT_ATTRIBUTE, f"accounts batch {turn}"))
        elif kind == "llm":
            span.name = f"chat {MODEL}"
            output = [{"role": "assistant", "parts": [{"type": "reasoning", "content": _text(rng, 30)}]}]
            span.attributes.extend(
                [
                    _kv("gen_ai.output.messages", json.dumps(output)),
                    _kv("gen_ai.usage.input_tokens", rng.randint(800, 6_000)),
                    _kv("gen_ai.usage.output_tokens", rng.randint(40, 600)),
                ]
            )
        elif kind == "reasoning":
            span.attributes.append(_kv(REASONING_CONTENT_ATTRIBUTE, _text(rng, 20)))
        elif kind == "tool":
            tool = rng.choice(TOOLS)
            span.name = f"execute_tool {tool}"
            span.attributes.extend(
                [
                    _kv("gen_ai.tool.name", tool),
                    _kv("gen_ai.tool.call.arguments", json.dumps({"account": rng.randint(1, 99_999)})),
                    _kv("gen_ai.tool.call.result", json.dumps({"ok": True, "rows": rng.randint(0, 50)})),
                ]
            )
            if rng.random() < 0.02:
                span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="TimeoutError: upstream"))
        elif kind == "memory":
            span.attributes.append(_kv("gen_ai.retrieval.query.text", _text(rng, 8)))
        elif kind == "guardrail":
            span.attributes.append(_kv(DECISION_ATTRIBUTE, "allow"))
        elif kind == "human":
            span.attributes.append(_kv(DECISION_ATTRIBUTE, "approved"))
        t += duration + 1_000_000
    root_span = scope_spans.spans[0]
    root_span.end_time_unix_nano = t
    return request


def _value(kv: KeyValue) -> dict[str, Any]:
    which = kv.value.WhichOneof("value")
    if which == "int_value":
        return {"intValue": str(kv.value.int_value)}
    if which == "bool_value":
        return {"boolValue": kv.value.bool_value}
    return {"stringValue": kv.value.string_value}


def _span_json(span: Span) -> dict[str, Any]:
    """OTLP/JSON of one span, by hand: protobuf's json_format takes ~150 µs a span, this ~15."""
    doc: dict[str, Any] = {
        "traceId": span.trace_id.hex(),
        "spanId": span.span_id.hex(),
        "parentSpanId": span.parent_span_id.hex(),
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_time_unix_nano),
        "endTimeUnixNano": str(span.end_time_unix_nano),
        "attributes": [{"key": kv.key, "value": _value(kv)} for kv in span.attributes],
    }
    if span.status.code:
        doc["status"] = {"code": span.status.code, "message": span.status.message}
    return doc


def _json_requests(request: ExportTraceServiceRequest, size: int) -> Iterator[bytes]:
    """OTLP/JSON requests of at most `size` spans each."""
    source = request.resource_spans[0]
    resource = {"attributes": [{"key": kv.key, "value": _value(kv)} for kv in source.resource.attributes]}
    scope = {"name": source.scope_spans[0].scope.name, "version": source.scope_spans[0].scope.version}
    spans = source.scope_spans[0].spans
    for start in range(0, len(spans), size):
        chunk = [_span_json(span) for span in spans[start : start + size]]
        doc = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": chunk}]}]}
        yield orjson.dumps(doc) + b"\n"


def write(path: Path, steps: int = 100_000, seed: int = 1) -> int:
    """Build and write the trace; returns the number of spans written."""
    request = build(steps, seed)
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        data = b"".join(_json_requests(request, JSONL_SPANS_PER_LINE))
    elif name.endswith(".json"):
        data = b"".join(_json_requests(request, steps))
    else:
        data = request.SerializeToString()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=3, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sample_traces.long_trace", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out", type=Path, help="file to write: .pb, .json or .jsonl, optionally .gz")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    n = write(args.out, args.steps, args.seed)
    print(f"wrote {n:,} spans to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
