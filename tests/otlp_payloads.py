"""Realistic OTLP export requests for the fault tests, with ids derived from (tag, request, span).

Every id is a function of its position, so a test can compute later exactly which spans a request
carried and look for them in the database: `expected_keys(tag, request, n)` is the same set the
builder put on the wire.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from benchmarks.payloads import kv

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

BASE_TIME_NS = 1_795_000_000_000_000_000

SpanKey = tuple[str, str]  # (trace_id hex, span_id hex), as stored in the spans table


def _id(n_bytes: int, *parts: object) -> bytes:
    raw = hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:n_bytes]
    return raw if any(raw) else b"\x01" + raw[1:]


def trace_id(tag: str, request: int) -> bytes:
    return _id(16, "trace", tag, request)


def span_id(tag: str, request: int, index: int) -> bytes:
    return _id(8, "span", tag, request, index)


def expected_keys(tag: str, request: int, n_spans: int) -> set[SpanKey]:
    t = trace_id(tag, request).hex()
    return {(t, span_id(tag, request, i).hex()) for i in range(n_spans)}


def _messages(tag: str, request: int, index: int) -> str:
    """About 2 KB of GenAI input messages JSON, with a reasoning part, different for every span."""
    filler = (
        f"Request {request} step {index} of {tag}: the user asks for the weather in three cities and a "
        "packing list; the agent checks the forecast tool, compares temperatures and drafts an answer. "
    )
    return json.dumps(
        [
            {
                "role": "system",
                "parts": [{"type": "text", "content": "You are a careful travel agent. " * 8}],
            },
            {"role": "user", "parts": [{"type": "text", "content": filler * 6}]},
            {
                "role": "assistant",
                "parts": [
                    {"type": "reasoning", "content": f"I should call get_weather for step {index}. " * 10},
                    {
                        "type": "tool_call",
                        "id": f"call_{request}_{index}",
                        "name": "get_weather",
                        "arguments": {"city": "Lisbon", "unit": "celsius"},
                    },
                ],
            },
        ]
    )


def agent_span(tag: str, request: int, index: int) -> Span:
    """A GenAI chat span (index 0 is the invoke_agent root) with about 20 attributes."""
    start = BASE_TIME_NS + request * 1_000_000_000 + index * 1_000_000
    span = Span(
        trace_id=trace_id(tag, request),
        span_id=span_id(tag, request, index),
        name="invoke_agent travel-agent" if index == 0 else "chat gpt-4o-mini",
        kind=Span.SPAN_KIND_INTERNAL if index == 0 else Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 750_000,
    )
    if index:
        span.parent_span_id = span_id(tag, request, 0)
    attrs: dict[str, object] = {
        "gen_ai.operation.name": "invoke_agent" if index == 0 else "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.agent.name": "travel-agent",
        "gen_ai.agent.id": f"agent-{tag}",
        "gen_ai.conversation.id": f"conv-{tag}-{request}",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": f"chatcmpl-{request}-{index}",
        "gen_ai.response.finish_reasons": "tool_calls",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.usage.input_tokens": 512 + index,
        "gen_ai.usage.output_tokens": 64 + index,
        "gen_ai.usage.reasoning_tokens": 32,
        "gen_ai.input.messages": _messages(tag, request, index),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": f"Answer {request}.{index}"}]}]
        ),
        "server.address": "api.openai.com",
        "server.port": 443,
        "test.request": request,
        "test.index": index,
    }
    span.attributes.extend(kv(k, v) for k, v in attrs.items())
    return span


def _resource_spans(tag: str) -> ResourceSpans:
    rs = ResourceSpans()
    rs.resource.attributes.extend(
        [
            kv("service.name", f"fault-test-{tag}"),
            kv("service.version", "1.0.0"),
            kv("telemetry.sdk.language", "python"),
        ]
    )
    return rs


@dataclass
class Batch:
    """One export request and the span keys it carries."""

    tag: str
    request: int
    n_spans: int
    message: ExportTraceServiceRequest

    @property
    def keys(self) -> set[SpanKey]:
        return expected_keys(self.tag, self.request, self.n_spans)

    def protobuf(self) -> bytes:
        return self.message.SerializeToString()


def agent_batch(tag: str, request: int, n_spans: int) -> Batch:
    """`n_spans` realistic agent spans in one trace: one invoke_agent root and its chat children."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.CopyFrom(_resource_spans(tag))
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai_v2"
    ss.scope.version = "2.4b0"
    ss.spans.extend(agent_span(tag, request, i) for i in range(n_spans))
    return Batch(tag, request, n_spans, req)


def tiny_batch(tag: str, request: int, n_spans: int) -> Batch:
    """Many minimal spans (ids, name, times): for span-count limits, where size must stay small."""
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    t = trace_id(tag, request)
    ss.spans.extend(
        Span(
            trace_id=t,
            span_id=span_id(tag, request, i),
            name="s",
            start_time_unix_nano=BASE_TIME_NS + i,
            end_time_unix_nano=BASE_TIME_NS + i + 1,
        )
        for i in range(n_spans)
    )
    return Batch(tag, request, n_spans, req)


def to_otlp_json(batch: Batch) -> bytes:
    """The OTLP/JSON encoding of a batch (hex ids, camelCase, as OTLP/HTTP JSON clients send)."""
    from google.protobuf import json_format

    doc = json_format.MessageToDict(batch.message)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = _b64_to_hex(span[key])
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def _b64_to_hex(value: str) -> str:
    import base64

    return base64.b64decode(value).hex()


def gzip_bomb(uncompressed_bytes: int, chunk: int = 1 << 20) -> bytes:
    """A valid gzip stream of `uncompressed_bytes` zeros, about 1000 times smaller, built in chunks.

    Each chunk of zeros is deflated once and ended with a full flush, which resets the compressor, so
    every later chunk deflates to the very same bytes: the stream is that block repeated, then the
    gzip trailer (CRC-32 and length). Seconds faster than deflating a gigabyte, and it never holds
    more than one chunk of input.
    """
    if uncompressed_bytes % chunk:
        raise ValueError("uncompressed_bytes must be a multiple of chunk")
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(chunk)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(uncompressed_bytes // chunk):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, mtime 0, unknown OS
    trailer = comp.flush() + struct.pack("<II", crc, uncompressed_bytes & 0xFFFFFFFF)
    return header + block * (uncompressed_bytes // chunk) + trailer


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=1)
