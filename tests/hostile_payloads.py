"""The bodies of issue #14 that each got a 500: every one holds good spans beside one hostile span.

Each builder returns the body and the keys of the good spans, which must be stored afterwards.
"""

from __future__ import annotations

import json

from collectors.decode import _varint
from tests.otlp_payloads import Batch, SpanKey, agent_batch, to_otlp_json


def _good_keys(batch: Batch, bad: int) -> set[SpanKey]:
    spans = batch.message.resource_spans[0].scope_spans[0].spans
    return {(s.trace_id.hex(), s.span_id.hex()) for i, s in enumerate(spans) if i != bad}


def huge_start_time(tag: str, n_spans: int = 5, bad: int = 1) -> tuple[bytes, set[SpanKey]]:
    """Protobuf: one span starts at 2^63 ns, one past what an int64 column holds."""
    batch = agent_batch(tag, 0, n_spans)
    batch.message.resource_spans[0].scope_spans[0].spans[bad].start_time_unix_nano = 2**63
    return batch.protobuf(), _good_keys(batch, bad)


def _json_with(tag: str, bad: int, raw_member: str) -> tuple[bytes, set[SpanKey]]:
    """OTLP/JSON whose span `bad` has `raw_member` (JSON text, written as is) among its members."""
    batch = agent_batch(tag, 0, 3)
    doc = json.loads(to_otlp_json(batch))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][bad]["__HOSTILE__"] = 0
    text = json.dumps(doc).replace('"__HOSTILE__": 0', raw_member)
    return text.encode(), _good_keys(batch, bad)


def surrogate_key(tag: str) -> tuple[bytes, set[SpanKey]]:
    """OTLP/JSON: a member of a span whose key is a lone surrogate, `{"\\ud800": 1}`."""
    return _json_with(tag, 1, '"\\ud800": 1')


def deep_array_json(tag: str, depth: int = 3000) -> tuple[bytes, set[SpanKey]]:
    """OTLP/JSON: an attribute whose arrayValue nests `depth` deep."""
    value = '{"stringValue": "x"}'
    for _ in range(depth):
        value = '{"arrayValue": {"values": [' + value + "]}}"
    return _json_with(tag, 1, f'"attributes": [{{"key": "deep", "value": {value}}}]')


def deep_array_protobuf(tag: str, depth: int = 3000) -> tuple[bytes, set[SpanKey]]:
    """Protobuf: the same deep attribute on one span, framed by hand (protobuf refuses to build it)."""
    batch = agent_batch(tag, 0, 3)
    value = b"\x0a\x01x"  # AnyValue.string_value
    for _ in range(depth):
        array = b"\x0a" + _varint(len(value)) + value  # ArrayValue.values
        value = b"\x2a" + _varint(len(array)) + array  # AnyValue.array_value
    kv = b"\x0a\x04deep\x12" + _varint(len(value)) + value
    spans = batch.message.resource_spans[0].scope_spans[0].spans
    raw_spans = [s.SerializeToString() for s in spans]
    raw_spans[1] += b"\x4a" + _varint(len(kv)) + kv  # Span.attributes
    rs = batch.message.resource_spans[0]
    scope = rs.scope_spans[0].scope.SerializeToString()
    ss = b"\x0a" + _varint(len(scope)) + scope
    ss += b"".join(b"\x12" + _varint(len(s)) + s for s in raw_spans)
    resource = rs.resource.SerializeToString()
    rsb = b"\x0a" + _varint(len(resource)) + resource + b"\x12" + _varint(len(ss)) + ss
    return b"\x0a" + _varint(len(rsb)) + rsb, _good_keys(batch, 1)


def brackets(n: int = 100_000) -> bytes:
    """A body of nothing but `[`: no span at all, nested past any parser's recursion."""
    return b"[" * n
