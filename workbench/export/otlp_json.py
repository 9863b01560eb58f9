"""Canonical span bytes to OTLP/JSON and back, byte for byte.

Why not `google.protobuf.json_format`: OTLP/JSON differs from the proto3 JSON mapping (trace and span
ids are hex, not base64; enums are integers), and json_format walks fields by reflection, about 0.5 ms
a span here, which would make verifying a 100,000-span bundle take a minute. This walks the OTLP
messages directly. `canonical_from_line(line_from_canonical(c)) == c` for every canonical span the
collectors store: the deterministic protobuf of a ResourceSpans holding one span, with `resource` and
`scope` always present (as the collectors' CanonicalFrame writes them).
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import orjson
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

Json = dict[str, Any]


class OtlpJsonError(ValueError):
    """A line that is not the OTLP/JSON of exactly one span."""


# --- protobuf -> JSON -------------------------------------------------------------------------------


def _float_out(x: float) -> Any:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def _any_out(v: AnyValue) -> Json:
    which = v.WhichOneof("value")
    if which is None:
        return {}
    if which == "string_value":
        return {"stringValue": v.string_value}
    if which == "bool_value":
        return {"boolValue": v.bool_value}
    if which == "int_value":
        return {"intValue": str(v.int_value)}
    if which == "double_value":
        return {"doubleValue": _float_out(v.double_value)}
    if which == "array_value":
        return {"arrayValue": {"values": [_any_out(x) for x in v.array_value.values]}}
    if which == "kvlist_value":
        return {"kvlistValue": {"values": _kvs_out(v.kvlist_value.values)}}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(v.bytes_value).decode("ascii")}
    raise OtlpJsonError(f"unknown AnyValue field {which}")  # a newer OTLP than this exporter knows


def _kvs_out(kvs: Any) -> list[Json]:
    out = []
    for kv in kvs:
        item: Json = {"key": kv.key}
        if kv.HasField("value"):
            item["value"] = _any_out(kv.value)
        out.append(item)
    return out


def _put(d: Json, key: str, value: Any) -> None:
    if value:  # proto3 scalars at their default are not on the wire; leaving them out is lossless
        d[key] = value


def _span_out(s: Span) -> Json:
    d: Json = {}
    _put(d, "traceId", s.trace_id.hex())
    _put(d, "spanId", s.span_id.hex())
    _put(d, "traceState", s.trace_state)
    _put(d, "parentSpanId", s.parent_span_id.hex())
    _put(d, "flags", s.flags)
    _put(d, "name", s.name)
    _put(d, "kind", s.kind)
    _put(d, "startTimeUnixNano", str(s.start_time_unix_nano) if s.start_time_unix_nano else "")
    _put(d, "endTimeUnixNano", str(s.end_time_unix_nano) if s.end_time_unix_nano else "")
    _put(d, "attributes", _kvs_out(s.attributes))
    _put(d, "droppedAttributesCount", s.dropped_attributes_count)
    events = []
    for e in s.events:
        ev: Json = {}
        _put(ev, "timeUnixNano", str(e.time_unix_nano) if e.time_unix_nano else "")
        _put(ev, "name", e.name)
        _put(ev, "attributes", _kvs_out(e.attributes))
        _put(ev, "droppedAttributesCount", e.dropped_attributes_count)
        events.append(ev)
    _put(d, "events", events)
    _put(d, "droppedEventsCount", s.dropped_events_count)
    links = []
    for link in s.links:
        lk: Json = {}
        _put(lk, "traceId", link.trace_id.hex())
        _put(lk, "spanId", link.span_id.hex())
        _put(lk, "traceState", link.trace_state)
        _put(lk, "attributes", _kvs_out(link.attributes))
        _put(lk, "droppedAttributesCount", link.dropped_attributes_count)
        _put(lk, "flags", link.flags)
        links.append(lk)
    _put(d, "links", links)
    _put(d, "droppedLinksCount", s.dropped_links_count)
    if s.HasField("status"):
        st: Json = {}
        _put(st, "message", s.status.message)
        _put(st, "code", s.status.code)
        d["status"] = st
    return d


def json_from_canonical(canonical: bytes) -> Json:
    """The OTLP/JSON TracesData of one stored span (a dict ready for orjson)."""
    rs = ResourceSpans.FromString(canonical)
    if len(rs.scope_spans) != 1 or len(rs.scope_spans[0].spans) != 1:
        raise OtlpJsonError("canonical bytes must hold exactly one span")
    ss = rs.scope_spans[0]
    resource: Json = {}
    _put(resource, "attributes", _kvs_out(rs.resource.attributes))
    _put(resource, "droppedAttributesCount", rs.resource.dropped_attributes_count)
    scope: Json = {}
    _put(scope, "name", ss.scope.name)
    _put(scope, "version", ss.scope.version)
    _put(scope, "attributes", _kvs_out(ss.scope.attributes))
    _put(scope, "droppedAttributesCount", ss.scope.dropped_attributes_count)
    scope_spans: Json = {"scope": scope, "spans": [_span_out(ss.spans[0])]}
    _put(scope_spans, "schemaUrl", ss.schema_url)
    resource_spans: Json = {"resource": resource, "scopeSpans": [scope_spans]}
    _put(resource_spans, "schemaUrl", rs.schema_url)
    return {"resourceSpans": [resource_spans]}


def line_from_canonical(canonical: bytes) -> bytes:
    """One JSON line (no newline) for spans.jsonl."""
    return orjson.dumps(json_from_canonical(canonical))


# --- JSON -> protobuf -------------------------------------------------------------------------------


def _float_in(x: Any) -> float:
    if isinstance(x, str):
        return float(x.replace("Infinity", "inf"))
    return float(x)


def _any_in(d: Json) -> AnyValue:
    if not d:
        return AnyValue()
    if len(d) != 1:
        raise OtlpJsonError(f"an AnyValue holds one value, got {sorted(d)}")
    ((key, v),) = d.items()
    if key == "stringValue":
        return AnyValue(string_value=v)
    if key == "boolValue":
        return AnyValue(bool_value=v)
    if key == "intValue":
        return AnyValue(int_value=int(v))
    if key == "doubleValue":
        return AnyValue(double_value=_float_in(v))
    if key == "arrayValue":
        return AnyValue(array_value=ArrayValue(values=[_any_in(x) for x in v.get("values", ())]))
    if key == "kvlistValue":
        return AnyValue(kvlist_value=KeyValueList(values=_kvs_in(v.get("values", ()))))
    if key == "bytesValue":
        return AnyValue(bytes_value=base64.b64decode(v))
    raise OtlpJsonError(f"unknown AnyValue field {key!r}")


def _kvs_in(items: Any) -> list[KeyValue]:
    out = []
    for item in items:
        if "value" in item:
            out.append(KeyValue(key=item["key"], value=_any_in(item["value"])))
        else:
            out.append(KeyValue(key=item["key"]))
    return out


def _id(value: Any) -> bytes:
    return bytes.fromhex(value) if value else b""


def _span_in(d: Json) -> Span:
    span = Span(
        trace_id=_id(d.get("traceId")),
        span_id=_id(d.get("spanId")),
        trace_state=d.get("traceState", ""),
        parent_span_id=_id(d.get("parentSpanId")),
        flags=d.get("flags", 0),
        name=d.get("name", ""),
        kind=d.get("kind", 0),
        start_time_unix_nano=int(d.get("startTimeUnixNano", 0)),
        end_time_unix_nano=int(d.get("endTimeUnixNano", 0)),
        attributes=_kvs_in(d.get("attributes", ())),
        dropped_attributes_count=d.get("droppedAttributesCount", 0),
        events=[
            Span.Event(
                time_unix_nano=int(e.get("timeUnixNano", 0)),
                name=e.get("name", ""),
                attributes=_kvs_in(e.get("attributes", ())),
                dropped_attributes_count=e.get("droppedAttributesCount", 0),
            )
            for e in d.get("events", ())
        ],
        dropped_events_count=d.get("droppedEventsCount", 0),
        links=[
            Span.Link(
                trace_id=_id(lk.get("traceId")),
                span_id=_id(lk.get("spanId")),
                trace_state=lk.get("traceState", ""),
                attributes=_kvs_in(lk.get("attributes", ())),
                dropped_attributes_count=lk.get("droppedAttributesCount", 0),
                flags=lk.get("flags", 0),
            )
            for lk in d.get("links", ())
        ],
        dropped_links_count=d.get("droppedLinksCount", 0),
    )
    if "status" in d:
        st = d["status"]
        span.status.CopyFrom(Status(message=st.get("message", ""), code=st.get("code", 0)))
    return span


def canonical_via_messages(doc: Json) -> bytes:
    """canonical_from_json by building protobuf messages: the slow reference the fast encoder is tested
    against (protobuf itself decides the bytes here)."""
    try:
        (rs,) = doc["resourceSpans"]
        (ss,) = rs["scopeSpans"]
        (span,) = ss["spans"]
        res = rs.get("resource", {})
        scope = ss.get("scope", {})
        message = ResourceSpans(
            resource=Resource(
                attributes=_kvs_in(res.get("attributes", ())),
                dropped_attributes_count=res.get("droppedAttributesCount", 0),
            ),
            scope_spans=[
                ScopeSpans(
                    scope=InstrumentationScope(
                        name=scope.get("name", ""),
                        version=scope.get("version", ""),
                        attributes=_kvs_in(scope.get("attributes", ())),
                        dropped_attributes_count=scope.get("droppedAttributesCount", 0),
                    ),
                    spans=[_span_in(span)],
                    schema_url=ss.get("schemaUrl", ""),
                )
            ],
            schema_url=rs.get("schemaUrl", ""),
        )
        return message.SerializeToString(deterministic=True)
    except OtlpJsonError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise OtlpJsonError(f"not the OTLP/JSON of one span: {type(exc).__name__}: {exc}") from exc


# --- JSON -> protobuf wire bytes, directly ----------------------------------------------------------
# Why by hand: building upb messages from Python costs ~1 us per field, most of verify's time. A
# deterministic serialization is fully specified (fields in number order, proto3 defaults left out,
# oneof and sub-message presence kept), and tests/test_export.py checks every span of the sample
# incidents and of a long trace against canonical_via_messages and against the stored bytes.

_PACK_DOUBLE = struct.Struct("<d").pack
_PACK_U64 = struct.Struct("<Q").pack
_PACK_U32 = struct.Struct("<I").pack


def _slow_varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Lengths and counts below 2**14 (one or two varint bytes) come from a table: most calls are these.
_VARINTS = [_slow_varint(i) for i in range(1 << 14)]


def _varint(n: int) -> bytes:
    return _VARINTS[n] if n < 16384 else _slow_varint(n)


def _ld(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _s(tag: bytes, value: str) -> bytes:
    if not value:
        return b""
    b = value.encode("utf-8")
    return tag + _varint(len(b)) + b


def _u(tag: bytes, value: int) -> bytes:
    return tag + _varint(value) if value else b""


def _hex(tag: bytes, value: str | None) -> bytes:
    return _ld(tag, bytes.fromhex(value)) if value else b""


def _fixed64(tag: bytes, value: Any) -> bytes:
    n = int(value) if value else 0
    return tag + _PACK_U64(n) if n else b""


def _enc_any(d: Json) -> bytes:
    if not d:
        return b""
    if len(d) != 1:
        raise OtlpJsonError(f"an AnyValue holds one value, got {sorted(d)}")
    ((key, v),) = d.items()
    if key == "stringValue":
        b = v.encode("utf-8")
        return b"\x0a" + _varint(len(b)) + b
    if key == "boolValue":
        if not isinstance(v, bool):
            raise OtlpJsonError(f"boolValue must be true or false, got {v!r}")
        return b"\x10\x01" if v else b"\x10\x00"
    if key == "intValue":
        return b"\x18" + _varint(int(v) & 0xFFFFFFFFFFFFFFFF)
    if key == "doubleValue":
        return b"\x21" + _PACK_DOUBLE(_float_in(v))
    if key == "arrayValue":
        return _ld(b"\x2a", b"".join(_ld(b"\x0a", _enc_any(x)) for x in v.get("values", ())))
    if key == "kvlistValue":
        return _ld(b"\x32", _enc_kvs(b"\x0a", v.get("values", ())))
    if key == "bytesValue":
        return _ld(b"\x3a", base64.b64decode(v))
    raise OtlpJsonError(f"unknown AnyValue field {key!r}")


def _enc_kvs(tag: bytes, items: Any) -> bytes:
    # The hottest loop of verify: inlined varints and strings (a function call costs what a field does).
    out = []
    v = _VARINTS
    for item in items:
        k = item["key"].encode("utf-8")
        n = len(k)
        body = (b"\x0a" + (v[n] if n < 16384 else _slow_varint(n)) + k) if n else b""
        if "value" in item:
            a = _enc_any(item["value"])
            n = len(a)
            body += b"\x12" + (v[n] if n < 16384 else _slow_varint(n)) + a
        n = len(body)
        out.append(tag + (v[n] if n < 16384 else _slow_varint(n)) + body)
    return b"".join(out)


def _enc_span(d: Json) -> bytes:
    parts = [
        _hex(b"\x0a", d.get("traceId")),
        _hex(b"\x12", d.get("spanId")),
        _s(b"\x1a", d.get("traceState", "")),
        _hex(b"\x22", d.get("parentSpanId")),
        _s(b"\x2a", d.get("name", "")),
        _u(b"\x30", d.get("kind", 0)),
        _fixed64(b"\x39", d.get("startTimeUnixNano")),
        _fixed64(b"\x41", d.get("endTimeUnixNano")),
        _enc_kvs(b"\x4a", d.get("attributes", ())),
        _u(b"\x50", d.get("droppedAttributesCount", 0)),
    ]
    for e in d.get("events", ()):
        body = (
            _fixed64(b"\x09", e.get("timeUnixNano"))
            + _s(b"\x12", e.get("name", ""))
            + _enc_kvs(b"\x1a", e.get("attributes", ()))
            + _u(b"\x20", e.get("droppedAttributesCount", 0))
        )
        parts.append(_ld(b"\x5a", body))
    parts.append(_u(b"\x60", d.get("droppedEventsCount", 0)))
    for lk in d.get("links", ()):
        flags = lk.get("flags", 0)
        body = (
            _hex(b"\x0a", lk.get("traceId"))
            + _hex(b"\x12", lk.get("spanId"))
            + _s(b"\x1a", lk.get("traceState", ""))
            + _enc_kvs(b"\x22", lk.get("attributes", ()))
            + _u(b"\x28", lk.get("droppedAttributesCount", 0))
            + (b"\x35" + _PACK_U32(flags) if flags else b"")
        )
        parts.append(_ld(b"\x6a", body))
    parts.append(_u(b"\x70", d.get("droppedLinksCount", 0)))
    if "status" in d:
        st = d["status"]
        parts.append(_ld(b"\x7a", _s(b"\x12", st.get("message", "")) + _u(b"\x18", st.get("code", 0))))
    flags = d.get("flags", 0)
    if flags:
        parts.append(b"\x85\x01" + _PACK_U32(flags))
    return b"".join(parts)


def canonical_from_json(doc: Json) -> bytes:
    """The canonical bytes (what the ledger hashed) of a TracesData holding exactly one span."""
    try:
        (rs,) = doc["resourceSpans"]
        (ss,) = rs["scopeSpans"]
        (span,) = ss["spans"]
        res = rs.get("resource", {})
        scope = ss.get("scope", {})
        resource = _enc_kvs(b"\x0a", res.get("attributes", ())) + _u(
            b"\x10", res.get("droppedAttributesCount", 0)
        )
        scope_body = (
            _s(b"\x0a", scope.get("name", ""))
            + _s(b"\x12", scope.get("version", ""))
            + _enc_kvs(b"\x1a", scope.get("attributes", ()))
            + _u(b"\x20", scope.get("droppedAttributesCount", 0))
        )
        scope_spans = (
            _ld(b"\x0a", scope_body) + _ld(b"\x12", _enc_span(span)) + _s(b"\x1a", ss.get("schemaUrl", ""))
        )
        return _ld(b"\x0a", resource) + _ld(b"\x12", scope_spans) + _s(b"\x1a", rs.get("schemaUrl", ""))
    except OtlpJsonError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, struct.error, OverflowError) as exc:
        raise OtlpJsonError(f"not the OTLP/JSON of one span: {type(exc).__name__}: {exc}") from exc
