"""OTLP trace payloads (protobuf or JSON, optionally gzip/deflate) into frozen `SpanRecord`s.

Pure functions: bytes in, records out, no I/O. Decoding uses the `opentelemetry-proto` messages; the
only OTLP-specific work done by hand is what the OTLP/JSON mapping itself asks for (hex ids) and the
per-span checks that let a receiver accept the good spans of a batch and name the bad ones.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from workbench.errors import BadInput
from workbench.model import Attributes, SpanEvent, SpanLink, SpanRecord, Truncation

CONTENT_PROTOBUF = "application/x-protobuf"
CONTENT_JSON = "application/json"


@dataclass
class DecodeResult:
    """The usable spans of a request and a message per span that was not."""

    records: list[SpanRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.errors)


def decompress(body: bytes, encoding: str | None, max_size: int) -> bytes:
    """Undo Content-Encoding, refusing output larger than `max_size` (a decompression bomb).

    Streaming with a cap means a 1 GB bomb costs at most `max_size` bytes of memory before it is refused.
    """
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif enc == "deflate":
        wbits = zlib.MAX_WBITS  # zlib-wrapped, as HTTP's "deflate" means; raw deflate retried below
    else:
        raise BadInput(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none", 415)
    try:
        return _inflate(body, wbits, max_size)
    except zlib.error as exc:
        if enc == "deflate":
            try:
                return _inflate(body, -zlib.MAX_WBITS, max_size)
            except zlib.error:
                pass
        raise BadInput(f"body is not valid {enc} data: {exc}") from exc


_INFLATE_STEP = 1 << 20


def _inflate(body: bytes, wbits: int, max_size: int) -> bytes:
    """Inflate a step at a time, so a bomb is refused holding at most `max_size` bytes of output (one
    call with `max_length` would hold it twice while zlib joins its buffers). Every member of a
    multi-member gzip body is read, as gzip readers do; anything else after the stream is refused."""
    parts: list[bytes] = []
    size = 0
    data = body
    while True:
        d = zlib.decompressobj(wbits)
        while True:
            out = d.decompress(data, _INFLATE_STEP)
            data = d.unconsumed_tail
            size += len(out)
            if size > max_size:
                raise BadInput(
                    f"decompressed body exceeds the limit of {max_size} bytes "
                    "(WORKBENCH_MAX_DECOMPRESSED_BYTES)",
                    413,
                )
            parts.append(out)
            if d.eof or not (out or data):
                break
        if not d.eof:
            raise BadInput(f"compressed body is truncated after {len(body)} bytes")
        data = d.unused_data
        if not data or wbits != 16 + zlib.MAX_WBITS:
            break
    if data:
        raise BadInput(f"{len(data)} bytes of trailing data after the end of the compressed body")
    return b"".join(parts)


def parse_request(body: bytes, content_type: str) -> tuple[ExportTraceServiceRequest, list[str]]:
    """An ExportTraceServiceRequest from a protobuf or OTLP/JSON body, and a message per span left out.

    Protobuf parses whole or not at all; JSON is read span by span, so one span with a bad id or field
    costs only itself (it is reported in `partial_success`), never its neighbours.
    """
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == CONTENT_PROTOBUF:
        req = ExportTraceServiceRequest()
        try:
            req.ParseFromString(body)
        except DecodeError as exc:
            raise BadInput(f"malformed OTLP protobuf ({len(body)} bytes): {exc}") from exc
        return req, []
    if ctype == CONTENT_JSON:
        return parse_json(body)
    raise BadInput(
        f"unsupported Content-Type {content_type!r}; OTLP/HTTP takes {CONTENT_PROTOBUF} or {CONTENT_JSON}",
        415,
    )


def parse_json(body: bytes | str | dict[str, Any]) -> tuple[ExportTraceServiceRequest, list[str]]:
    """OTLP/JSON: the protobuf JSON mapping, except that trace and span ids are hex, not base64.

    Resource and scope are parsed per group and each span on its own: a group whose resource or scope
    does not parse loses its spans, a span that does not parse loses only itself, and each lost span
    gets a message naming where it was.
    """
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(f"body is not valid UTF-8 at byte {exc.start}: {exc.reason}") from exc
    else:
        text = body if isinstance(body, str) else ""
    if isinstance(body, dict):
        doc: Any = body
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    if not isinstance(doc, dict):
        raise BadInput("OTLP/JSON body must be an object with a 'resourceSpans' list")
    req = ExportTraceServiceRequest()
    errors: list[str] = []
    for r_i, rs_doc in enumerate(_list(doc, "resourceSpans", "resource_spans")):
        where_r = f"resourceSpans[{r_i}]"
        scopes = _list(rs_doc, "scopeSpans", "scope_spans")
        rs = ResourceSpans()
        problem = _parse_shell(rs_doc, rs, ("scopeSpans", "scope_spans"))
        if problem:
            errors += [f"{where_r}: {problem}"] * sum(len(_list(x, "spans")) for x in scopes)
            continue
        for s_i, ss_doc in enumerate(scopes):
            where_s = f"{where_r}.scopeSpans[{s_i}]"
            spans = _list(ss_doc, "spans")
            ss = ScopeSpans()
            problem = _parse_shell(ss_doc, ss, ("spans",))
            if problem:
                errors += [f"{where_s}: {problem}"] * len(spans)
                continue
            for p_i, span_doc in enumerate(spans):
                where = f"{where_s}.spans[{p_i}]"
                try:
                    ss.spans.append(_parse_span(span_doc, where))
                except BadInput as exc:
                    errors.append(str(exc))
            rs.scope_spans.append(ss)
        req.resource_spans.append(rs)
    return req, errors


def _parse_shell(obj: Any, message: ResourceSpans | ScopeSpans, children: tuple[str, ...]) -> str | None:
    """Parse a group's own fields (resource or scope, schema URL) without its children."""
    if not isinstance(obj, dict):
        return f"expected an object, got {type(obj).__name__}"
    try:
        json_format.ParseDict(
            {k: v for k, v in obj.items() if k not in children}, message, ignore_unknown_fields=True
        )
    except json_format.ParseError as exc:
        return f"invalid OTLP/JSON: {exc}"
    return None


def _parse_span(obj: Any, where: str) -> Span:
    if not isinstance(obj, dict):
        raise BadInput(f"{where}: expected a span object, got {type(obj).__name__}")
    obj = dict(obj)  # ids are rewritten below; the caller's document stays as it was
    _convert_ids(obj, where)
    links = _list(obj, "links")
    if links:
        obj["links"] = [dict(link) if isinstance(link, dict) else link for link in links]
        for l_i, link in enumerate(obj["links"]):
            _convert_ids(link, f"{where}.links[{l_i}]")
    span = Span()
    try:
        json_format.ParseDict(obj, span, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        name = obj.get("name")
        label = f" ({name!r})" if isinstance(name, str) else ""
        raise BadInput(f"{where}{label}: invalid OTLP/JSON: {exc}") from exc
    return span


_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _list(obj: Any, *keys: str) -> list[Any]:
    if not isinstance(obj, dict):
        return []
    for key in keys:
        value = obj.get(key)
        if isinstance(value, list):
            return value
    return []


def _convert_ids(obj: Any, where: str) -> None:
    if not isinstance(obj, dict):
        return
    for key in _ID_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError as exc:
                raise BadInput(f"{where}.{key}: {value!r} is not a hex id") from exc


def any_value(v: AnyValue) -> Any:
    """An OTLP AnyValue as a plain JSON-ready Python value (bytes as {'bytesValue': base64})."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(v.bytes_value).decode("ascii")}
    return None


def attributes(kvs: Any, limit: int, where: str, truncations: list[Truncation]) -> Attributes:
    """Attributes as a dict; string values over `limit` characters are cut and the cut is recorded."""
    out: Attributes = {}
    kv: KeyValue
    for kv in kvs:
        v = kv.value
        # This loop runs for every attribute ingested, and each access to a protobuf field is a call
        # into upb: a non-empty string (most attributes) is recognised without asking for the oneof.
        value: Any = v.string_value
        if value or v.WhichOneof("value") == "string_value":
            if len(value) > limit:
                truncations.append(Truncation(f"{where}.{kv.key}", len(value), limit))
                value = value[:limit] + f"…[truncated: {len(value)} chars, kept {limit}]"
        else:
            value = any_value(v)
        out[kv.key] = value
    return out


def iter_spans(
    req: ExportTraceServiceRequest,
) -> Iterator[tuple[int, int, ResourceSpans, ScopeSpans, Span, str]]:
    for r_i, rs in enumerate(req.resource_spans):
        for s_i, ss in enumerate(rs.scope_spans):
            for p_i, span in enumerate(ss.spans):
                yield r_i, s_i, rs, ss, span, f"resource_spans[{r_i}].scope_spans[{s_i}].spans[{p_i}]"


def count_spans(req: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)


# Protobuf wire format, used only to frame messages that are already serialized (see CanonicalFrame):
# a length-delimited field is one tag byte, the payload's length as a base-128 varint, the payload.
# Tag 0x12 is field 2 with wire type 2, (2 << 3) | 2: ScopeSpans.spans and ResourceSpans.scope_spans.
_FIELD_2 = b"\x12"


def _varint(n: int) -> bytes:
    """Base-128 varint, least significant group first, high bit set on all but the last byte."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class CanonicalFrame:
    """The canonical bytes of every span of one (resource, scope) group, without copying a message.

    Canonical bytes are the deterministic protobuf of a ResourceSpans holding only that span. Building
    that message copies the span (as much work again as decoding it), so instead the resource, the scope
    and the two schema URLs are serialized once per group by protobuf itself, and each span once; the
    only hand-written encoding is the two length prefixes around the span. The result is byte-for-byte
    what serializing the message gives, because a deterministic serialization writes fields in field
    number order (resource 1, scope_spans 2, schema_url 3; scope 1, spans 2, schema_url 3) and a nested
    message exactly as it serializes alone; tests/test_decode.py checks the equality span by span.
    """

    __slots__ = ("_resource", "_scope", "_scope_tail", "_resource_tail")

    def __init__(self, rs: ResourceSpans, ss: ScopeSpans) -> None:
        # The message-built form always carries `resource` and `scope`, empty or not (CopyFrom marks
        # them present), and each schema_url only when non-empty: the constructors below do the same.
        self._resource = ResourceSpans(resource=rs.resource).SerializeToString(deterministic=True)
        self._resource_tail = ResourceSpans(schema_url=rs.schema_url).SerializeToString(deterministic=True)
        self._scope = ScopeSpans(scope=ss.scope).SerializeToString(deterministic=True)
        self._scope_tail = ScopeSpans(schema_url=ss.schema_url).SerializeToString(deterministic=True)

    def canonical(self, span: Span) -> bytes:
        body = span.SerializeToString(deterministic=True)
        span_len = _varint(len(body))
        scope_spans_len = len(self._scope) + 1 + len(span_len) + len(body) + len(self._scope_tail)
        return b"".join(
            (
                self._resource,
                _FIELD_2,
                _varint(scope_spans_len),
                self._scope,
                _FIELD_2,
                span_len,
                body,
                self._scope_tail,
                self._resource_tail,
            )
        )


def canonical_bytes(rs: ResourceSpans, ss: ScopeSpans, span: Span) -> bytes:
    """Deterministic protobuf of a ResourceSpans holding only this span: what the ledger hashes."""
    return CanonicalFrame(rs, ss).canonical(span)


def _check_ids(span: Span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return f"trace_id must be 16 non-zero bytes, got {len(span.trace_id)} bytes"
    if len(span.span_id) != 8 or not any(span.span_id):
        return f"span_id must be 8 non-zero bytes, got {len(span.span_id)} bytes"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"parent_span_id must be empty or 8 bytes, got {len(span.parent_span_id)} bytes"
    return None


def to_records(req: ExportTraceServiceRequest, max_attribute_length: int) -> DecodeResult:
    """Every valid span as a SpanRecord; each invalid span becomes an error naming where it was."""
    result = DecodeResult()
    lim = max_attribute_length
    for r_i, rs in enumerate(req.resource_spans):
        # Resource and scope are decoded once per group, only when the group holds a valid span.
        resource: tuple[Attributes, list[Truncation]] | None = None
        for s_i, ss in enumerate(rs.scope_spans):
            group: tuple[Attributes, list[Truncation], CanonicalFrame] | None = None
            for p_i, span in enumerate(ss.spans):
                problem = _check_ids(span)
                if problem:
                    where = f"resource_spans[{r_i}].scope_spans[{s_i}].spans[{p_i}]"
                    result.errors.append(f"{where} ({span.name!r}): {problem}")
                    continue
                if resource is None:
                    rt: list[Truncation] = []
                    resource = (attributes(rs.resource.attributes, lim, "resource", rt), rt)
                if group is None:
                    st: list[Truncation] = []
                    group = (attributes(ss.scope.attributes, lim, "scope", st), st, CanonicalFrame(rs, ss))
                result.records.append(_record(rs, ss, span, resource, group, lim))
    return result


def _record(
    rs: ResourceSpans,
    ss: ScopeSpans,
    span: Span,
    resource: tuple[Attributes, list[Truncation]],
    group: tuple[Attributes, list[Truncation], CanonicalFrame],
    lim: int,
) -> SpanRecord:
    scope_attrs, s_trunc, frame = group
    truncs: list[Truncation] = [*resource[1], *s_trunc]
    attrs = attributes(span.attributes, lim, "attributes", truncs)
    events = tuple(
        SpanEvent(
            name=e.name,
            time_ns=e.time_unix_nano,
            attributes=attributes(e.attributes, lim, f"events[{i}]", truncs),
            dropped_attributes_count=e.dropped_attributes_count,
        )
        for i, e in enumerate(span.events)
    )
    links = tuple(
        SpanLink(
            trace_id=link.trace_id.hex(),
            span_id=link.span_id.hex(),
            trace_state=link.trace_state,
            attributes=attributes(link.attributes, lim, f"links[{i}]", truncs),
            flags=link.flags,
        )
        for i, link in enumerate(span.links)
    )
    status = span.status
    status_message = status.message
    if len(status_message) > lim:
        truncs.append(Truncation("status.message", len(status_message), lim))
        status_message = status_message[:lim]
    return SpanRecord(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        name=span.name,
        kind=int(span.kind),
        start_time_ns=int(span.start_time_unix_nano),
        end_time_ns=int(span.end_time_unix_nano),
        status_code=int(status.code),
        status_message=status_message,
        trace_state=span.trace_state,
        flags=int(span.flags),
        resource=resource[0],
        resource_schema_url=rs.schema_url,
        scope_name=ss.scope.name,
        scope_version=ss.scope.version,
        scope_attributes=scope_attrs,
        scope_schema_url=ss.schema_url,
        attributes=attrs,
        events=events,
        links=links,
        dropped_attributes_count=span.dropped_attributes_count,
        dropped_events_count=span.dropped_events_count,
        dropped_links_count=span.dropped_links_count,
        canonical=frame.canonical(span),
        truncations=tuple(truncs),
    )


def record_from_canonical(canonical: bytes, max_attribute_length: int) -> SpanRecord:
    """Re-decode one stored span: how `renormalize` and `ledger verify` go back to the raw truth."""
    rs = ResourceSpans()
    try:
        rs.ParseFromString(canonical)
    except DecodeError as exc:
        raise BadInput(f"stored canonical bytes do not decode: {exc}") from exc
    req = ExportTraceServiceRequest()
    req.resource_spans.append(rs)
    result = to_records(req, max_attribute_length)
    if len(result.records) != 1:
        raise BadInput("stored canonical bytes do not hold exactly one valid span")
    return result.records[0]
