"""Realistic agent spans as OTLP protobuf requests, for benchmarks: OpenInference and GenAI attributes,
about 20 attributes a span and about 2 KB of message JSON, deterministic for a given seed."""

from __future__ import annotations

import json
import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_WORDS = (
    "the agent checks disk usage on the primary database host then lists large tables and decides "
    "whether archiving old rows would free enough space before touching anything destructive"
).split()


def kv(key: str, value: object) -> KeyValue:
    """An OTLP attribute from a plain Python value (tests build their payloads with it too)."""
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _text(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    n = 0
    while n < chars:
        w = rng.choice(_WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)


def agent_span_attributes(rng: random.Random, i: int) -> list[KeyValue]:
    """One LLM step as OpenInference and GenAI instrumentations describe it."""
    messages = [
        {"role": "system", "content": _text(rng, 300)},
        {"role": "user", "content": _text(rng, 500)},
        {"role": "assistant", "content": _text(rng, 700)},
    ]
    output = [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": _text(rng, 300)},
                {"type": "text", "content": _text(rng, 200)},
            ],
        }
    ]
    return [
        kv("openinference.span.kind", "LLM"),
        kv("gen_ai.operation.name", "chat"),
        kv("gen_ai.provider.name", "openai"),
        kv("gen_ai.request.model", "gpt-4o-mini"),
        kv("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
        kv("gen_ai.agent.name", f"ops-agent-{i % 4}"),
        kv("llm.model_name", "gpt-4o-mini"),
        kv("llm.token_count.prompt", rng.randint(200, 4000)),
        kv("llm.token_count.completion", rng.randint(20, 800)),
        kv("llm.token_count.total", rng.randint(220, 4800)),
        kv("gen_ai.usage.input_tokens", rng.randint(200, 4000)),
        kv("gen_ai.usage.output_tokens", rng.randint(20, 800)),
        kv("gen_ai.request.temperature", 0.2),
        kv("gen_ai.response.id", f"chatcmpl-{rng.getrandbits(64):016x}"),
        kv("gen_ai.response.finish_reasons", "tool_calls"),
        kv("session.id", f"session-{i % 97}"),
        kv("user.id", f"user-{i % 13}"),
        kv("input.mime_type", "application/json"),
        kv("gen_ai.input.messages", json.dumps(messages)),
        kv("gen_ai.output.messages", json.dumps(output)),
    ]


def export_request(seed: int, spans: int, service: str = "bench-agent") -> ExportTraceServiceRequest:
    """One request: `spans` spans of one trace, parented in a chain, with unique ids for this seed."""
    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", service), kv("deployment.environment", "bench")])
    ss = rs.scope_spans.add()
    ss.scope.name = "openinference.instrumentation.openai"
    ss.scope.version = "0.1.66"
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    parent = b""
    t0 = 1_764_000_000_000_000_000 + seed * 1_000_000_000
    for i in range(spans):
        span_id = rng.getrandbits(64).to_bytes(8, "big") or b"\x01" * 8
        span = ss.spans.add(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name="ChatCompletion",
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=t0 + i * 1_000_000,
            end_time_unix_nano=t0 + i * 1_000_000 + 900_000,
        )
        span.attributes.extend(agent_span_attributes(rng, i))
        parent = span_id
    return req
