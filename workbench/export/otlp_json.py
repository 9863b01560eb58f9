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


def canonical_from_json(doc: Json) -> bytes:
    """The canonical bytes (what the ledger hashed) of a TracesData holding exactly one span."""
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
