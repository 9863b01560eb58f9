"""OTLP trace payloads (protobuf or JSON, optionally gzip/deflate) into frozen `SpanRecord`s.

Pure functions: bytes in, records out, no I/O. Decoding uses the `opentelemetry-proto` messages; the
only OTLP-specific work done by hand is what the OTLP/JSON mapping itself asks for (hex ids) and the
per-span checks that let a receiver accept the good spans of a batch and name the bad ones.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from collectors import json_depth
from collectors.checks import SpanRejected, check_span, find_lone_surrogate, safe_text, where_span
from collectors.compression import decompress as decompress  # the name receivers and tests use
from collectors.protobuf_salvage import salvage
from workbench.errors import BadInput
from workbench.model import Attributes, SpanEvent, SpanLink, SpanRecord, Truncation

log = logging.getLogger(__name__)

CONTENT_PROTOBUF = "application/x-protobuf"
CONTENT_JSON = "application/json"
# WORKBENCH_MAX_VALUE_DEPTH's default, for callers that pass no settings
DEFAULT_VALUE_DEPTH = 32


@dataclass
class DecodeResult:
    """The usable spans of a request and a message per span that was not."""

    records: list[SpanRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.errors)


_Parsed = TypeVar("_Parsed")  # a parsed export request and its per-item errors


def parse_request(body: bytes, content_type: str) -> tuple[ExportTraceServiceRequest, list[str]]:
    """An ExportTraceServiceRequest from a protobuf or OTLP/JSON body, and a message per span left out.

    Both are read so that one span with a bad id or field costs only itself (it is reported in
    `partial_success`), never its neighbours: JSON span by span, protobuf whole and, only when that
    fails, piece by piece (see protobuf_salvage).
    """
    return by_content_type(body, content_type, parse_protobuf, parse_json)


def by_content_type(
    body: bytes, content_type: str, protobuf: Callable[[bytes], _Parsed], json: Callable[[bytes], _Parsed]
) -> _Parsed:
    """The parser the Content-Type names (traces and logs alike); any other type is a 415."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == CONTENT_PROTOBUF:
        return protobuf(body)
    if ctype == CONTENT_JSON:
        return json(body)
    raise BadInput(
        f"unsupported Content-Type {content_type!r}; OTLP/HTTP takes {CONTENT_PROTOBUF} or {CONTENT_JSON}",
        415,
    )


def parse_protobuf(body: bytes) -> tuple[ExportTraceServiceRequest, list[str]]:
    """A protobuf ExportTraceServiceRequest, and a message per span that could not be read."""
    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        return salvage(body, f"malformed OTLP protobuf ({len(body)} bytes): {exc}")
    return req, []


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
        doc = json_depth.loads(text)
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


def _parse_shell(obj: Any, message: Message, children: tuple[str, ...]) -> str | None:
    """Parse a group's own fields (resource or scope, schema URL) without its children."""
    if not isinstance(obj, dict):
        return f"expected an object, got {type(obj).__name__}"
    shell = {k: v for k, v in obj.items() if k not in children}
    try:
        json_format.ParseDict(shell, message, ignore_unknown_fields=True)
    except Exception as exc:  # upb raises more than ParseError on hostile input (see _parse_span)
        return _json_problem(shell, exc)
    return None


def _json_problem(obj: Any, exc: Exception) -> str:
    """Why a JSON object did not parse, in words that name where, whatever the parser raised."""
    surrogate = find_lone_surrogate(obj)
    if surrogate:
        return f"invalid OTLP/JSON: {surrogate} (OTLP strings are UTF-8, which cannot hold one)"
    if "Message too deep" in str(exc):  # json_format's own limit, after a long chain of field names
        return "invalid OTLP/JSON: values nested more than protobuf's JSON parser allows (100 messages)"
    if isinstance(exc, RecursionError) or json_depth.MARK_TEXT in str(exc):
        return f"invalid OTLP/JSON: nested more than {json_depth.MAX_DEPTH} levels deep"
    if isinstance(exc, json_format.ParseError):
        return f"invalid OTLP/JSON: {safe_text(str(exc), 500)}"
    return f"invalid OTLP/JSON: {type(exc).__name__}: {safe_text(str(exc), 500)}"


def _parse_span(obj: Any, where: str) -> Span:
    deep = json_depth.deep_span_message(obj)
    if deep:
        raise BadInput(f"{where}: {deep}")
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
    except Exception as exc:
        # ParseError for most bad input, but upb raises SystemError for a key holding a lone surrogate,
        # and a last resort must not let one span's surprise fail its request.
        name = obj.get("name")
        label = f" ({safe_text(name)!r})" if isinstance(name, str) else ""
        raise BadInput(f"{where}{label}: {_json_problem(obj, exc)}") from exc
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
                raise BadInput(f"{where}.{key}: {safe_text(value, 80)!r} is not a hex id") from exc


def any_value(v: AnyValue, max_depth: int = DEFAULT_VALUE_DEPTH) -> Any:
    """An OTLP AnyValue as a plain JSON-ready Python value (bytes as {'bytesValue': base64}).

    Raises SpanRejected when arrays and kvlists nest more than `max_depth` levels.
    """
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value" or which == "kvlist_value":
        if max_depth <= 0:
            raise SpanRejected("arrayValue/kvlistValue nested too deep")
        if which == "array_value":
            return [any_value(x, max_depth - 1) for x in v.array_value.values]
        return {kv.key: any_value(kv.value, max_depth - 1) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(v.bytes_value).decode("ascii")}
    return None


def attributes(
    kvs: Any, limit: int, where: str, truncations: list[Truncation], max_depth: int = DEFAULT_VALUE_DEPTH
) -> Attributes:
    """Attributes as a dict; string values over `limit` characters are cut and the cut is recorded.

    Raises SpanRejected naming the attribute when a value nests deeper than `max_depth`.
    """
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
            try:
                value = any_value(v, max_depth)
            except SpanRejected:
                raise SpanRejected(
                    f"{where} key {safe_text(kv.key, 100)!r}: arrayValue/kvlistValue nested more than "
                    f"{max_depth} levels (WORKBENCH_MAX_VALUE_DEPTH)"
                ) from None
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

    def __init__(self, rs: ResourceSpans | ResourceLogs, ss: ScopeSpans | ScopeLogs) -> None:
        # The message-built form always carries `resource` and `scope`, empty or not (CopyFrom marks
        # them present), and each schema_url only when non-empty: the constructors below do the same.
        # type(rs) and type(ss): ResourceLogs and ScopeLogs have the very same field numbers (resource 1,
        # scope_logs 2, schema_url 3; scope 1, log_records 2, schema_url 3), so log records are framed
        # by this same code (collectors.decode_logs).
        self._resource = type(rs)(resource=rs.resource).SerializeToString(deterministic=True)
        self._resource_tail = type(rs)(schema_url=rs.schema_url).SerializeToString(deterministic=True)
        self._scope = type(ss)(scope=ss.scope).SerializeToString(deterministic=True)
        self._scope_tail = type(ss)(schema_url=ss.schema_url).SerializeToString(deterministic=True)

    def canonical(self, span: Message) -> bytes:
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


def to_records(
    req: ExportTraceServiceRequest, max_attribute_length: int, max_value_depth: int = DEFAULT_VALUE_DEPTH
) -> DecodeResult:
    """Every valid span as a SpanRecord; each invalid span becomes an error naming where it was.

    Each span is checked (collectors.checks) and decoded on its own: a span that fails, for a known
    reason or a surprise, is refused alone and its neighbours still become records.
    """
    result = DecodeResult()
    lim, depth = max_attribute_length, max_value_depth
    for r_i, rs in enumerate(req.resource_spans):
        # Resource and scope are decoded once per group, only when the group holds a valid span.
        resource: tuple[Attributes, list[Truncation]] | str | None = None
        for s_i, ss in enumerate(rs.scope_spans):
            group: tuple[Attributes, list[Truncation], CanonicalFrame] | str | None = None
            for p_i, span in enumerate(ss.spans):
                problem = check_span(span)
                if problem is None:
                    if resource is None:
                        resource = _group_part(rs.resource.attributes, "resource", lim, depth)
                    if group is None:
                        scope = _group_part(ss.scope.attributes, "scope", lim, depth)
                        group = scope if isinstance(scope, str) else (*scope, CanonicalFrame(rs, ss))
                    problem = _span_record(rs, ss, span, resource, group, lim, depth, result.records)
                if problem is not None:
                    result.errors.append(f"{where_span(r_i, s_i, p_i, span)}: {problem}")
    return result


def _group_part(kvs: Any, where: str, lim: int, depth: int) -> tuple[Attributes, list[Truncation]] | str:
    """Resource or scope attributes with their truncations, or why they cannot be read."""
    truncs: list[Truncation] = []
    try:
        return attributes(kvs, lim, where, truncs, depth), truncs
    except SpanRejected as exc:
        return str(exc)
    except Exception as exc:
        log.exception("%s could not be decoded", where)
        return f"{where} could not be decoded: {type(exc).__name__}: {safe_text(str(exc))}"


def _span_record(
    rs: ResourceSpans,
    ss: ScopeSpans,
    span: Span,
    resource: tuple[Attributes, list[Truncation]] | str,
    group: tuple[Attributes, list[Truncation], CanonicalFrame] | str,
    lim: int,
    depth: int,
    out: list[SpanRecord],
) -> str | None:
    """Append the span's record to `out`, or say why it cannot be one (its group's reason first)."""
    if isinstance(resource, str):
        return resource
    if isinstance(group, str):
        return group
    try:
        out.append(_record(rs, ss, span, resource, group, lim, depth))
    except SpanRejected as exc:
        return str(exc)
    except Exception as exc:  # a surprise costs this span only, and is logged
        log.exception("span could not be decoded")
        return f"could not be decoded: {type(exc).__name__}: {safe_text(str(exc))}"
    return None


def _record(
    rs: ResourceSpans,
    ss: ScopeSpans,
    span: Span,
    resource: tuple[Attributes, list[Truncation]],
    group: tuple[Attributes, list[Truncation], CanonicalFrame],
    lim: int,
    depth: int = DEFAULT_VALUE_DEPTH,
) -> SpanRecord:
    scope_attrs, s_trunc, frame = group
    truncs: list[Truncation] = [*resource[1], *s_trunc]
    attrs = attributes(span.attributes, lim, "attributes", truncs, depth)
    events = tuple(
        SpanEvent(
            name=e.name,
            time_ns=e.time_unix_nano,
            attributes=attributes(e.attributes, lim, f"events[{i}]", truncs, depth),
            dropped_attributes_count=e.dropped_attributes_count,
        )
        for i, e in enumerate(span.events)
    )
    links = tuple(
        SpanLink(
            trace_id=link.trace_id.hex(),
            span_id=link.span_id.hex(),
            trace_state=link.trace_state,
            attributes=attributes(link.attributes, lim, f"links[{i}]", truncs, depth),
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
