"""Read the good spans of a protobuf request that does not parse whole.

Why: protobuf parses a message whole or not at all, so one span with a string that is not UTF-8, a
value nested deeper than the parser allows, or a mutated byte would cost every span of its request.
When the whole request fails, this walks the wire format's framing (every field of the three outer
messages is length-delimited or a scalar) and parses each resource, scope and span on its own: a
span that does not parse is refused alone, named by where it was; a resource or scope that does not
parse costs the spans of its group. Where the framing itself is broken, what came before is kept and
the rest is refused. The normal path never comes here: this runs only after a failed parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from workbench.errors import BadInput

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class _Broken(Exception):
    """The framing is broken at `offset`: nothing after it can be read."""

    def __init__(self, offset: int, why: str) -> None:
        super().__init__(f"{why} at byte {offset}")
        self.offset = offset


@dataclass(frozen=True, slots=True)
class _Field:
    number: int
    raw: bytes  # the whole field: tag, length and payload, so a shell can be rebuilt by joining
    payload: bytes  # for length-delimited fields, the payload alone


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _Broken(pos, "truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Broken(pos, "varint longer than 10 bytes")


def _fields(data: bytes) -> tuple[list[_Field], _Broken | None]:
    """The top-level fields of a serialized message, up to where the framing breaks (if it does)."""
    out: list[_Field] = []
    pos = 0
    try:
        while pos < len(data):
            start = pos
            tag, pos = _varint(data, pos)
            number, wire = tag >> 3, tag & 7
            if number == 0:
                raise _Broken(start, "field number 0")
            if wire == _VARINT:
                _, pos = _varint(data, pos)
                payload = b""
            elif wire == _I64 or wire == _I32:
                pos += 8 if wire == _I64 else 4
                payload = b""
            elif wire == _LEN:
                size, pos = _varint(data, pos)
                payload = data[pos : pos + size]
                pos += size
            else:
                raise _Broken(start, f"wire type {wire} (groups are not used by OTLP)")
            if pos > len(data):
                raise _Broken(start, "field runs past the end of its message")
            out.append(_Field(number, data[start:pos], payload))
    except _Broken as broken:
        return out, broken
    return out, None


@dataclass(frozen=True, slots=True)
class Shape:
    """The three nested messages of an OTLP signal's request, all framed alike (the group list is
    field 1 of the request, the scope list field 2 of a group, the item list field 2 of a scope), and
    the words that name them in messages."""

    request: type[Message]
    resource: type[Message]
    scope: type[Message]
    item: type[Message]
    groups: str  # "resource_spans"
    scopes: str  # "scope_spans"
    items: str  # "spans"
    noun: str  # "span"


TRACES = Shape(
    ExportTraceServiceRequest,
    ResourceSpans,
    ScopeSpans,
    Span,
    "resource_spans",
    "scope_spans",
    "spans",
    "span",
)
LOGS = Shape(
    ExportLogsServiceRequest,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
    "resource_logs",
    "scope_logs",
    "log_records",
    "log record",
)


def salvage(body: bytes, first_error: str, shape: Shape = TRACES) -> tuple[Any, list[str]]:
    """The request's parseable parts, and a message per span (or log record, or unreadable rest) left
    out. The request is of `shape.request`'s type.

    Raises BadInput with `first_error` when nothing of the request can be framed at all.
    """
    req: Any = shape.request()
    errors: list[str] = []
    fields, broken = _fields(body)
    if broken is not None and not any(f.number == 1 for f in fields):
        raise BadInput(first_error)
    r_i = 0
    for f in fields:
        if f.number != 1:
            continue  # unknown fields of the request: protobuf would keep them, we never read them
        _resource_spans(f.payload, r_i, req, errors, shape)
        r_i += 1
    if broken is not None:
        errors.append(f"{shape.groups}[{r_i}] and after: malformed OTLP protobuf ({broken}); not read")
    return req, errors


def _parse(message: Message, data: bytes) -> str | None:
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        return str(exc)
    return None


def _resource_spans(data: bytes, r_i: int, req: Any, errors: list[str], shape: Shape) -> None:
    where = f"{shape.groups}[{r_i}]"
    groups = getattr(req, shape.groups)
    rs: Any = shape.resource()
    if _parse(rs, data) is None:
        groups.append(rs)
        return
    rs = shape.resource()
    fields, broken = _fields(data)
    shell = b"".join(f.raw for f in fields if f.number != 2)
    scopes = [f.payload for f in fields if f.number == 2]
    problem = _parse(rs, shell)
    if problem is not None:
        n = sum(_count_spans(s) for s in scopes)
        errors += [
            f"{where}: its resource does not parse ({problem}); its {shape.items} were not read"
        ] * max(n, 1)
        return
    for s_i, scope in enumerate(scopes):
        _scope_spans(scope, f"{where}.{shape.scopes}[{s_i}]", rs, errors, shape)
    if broken is not None:
        errors.append(f"{where}.{shape.scopes}[{len(scopes)}] and after: malformed ({broken}); not read")
    groups.append(rs)


def _scope_spans(data: bytes, where: str, rs: Any, errors: list[str], shape: Shape) -> None:
    scopes = getattr(rs, shape.scopes)
    ss: Any = shape.scope()
    if _parse(ss, data) is None:
        scopes.append(ss)
        return
    ss = shape.scope()
    fields, broken = _fields(data)
    shell = b"".join(f.raw for f in fields if f.number != 2)
    spans = [f.payload for f in fields if f.number == 2]
    problem = _parse(ss, shell)
    if problem is not None:
        errors += [f"{where}: its scope does not parse ({problem}); its {shape.items} were not read"] * max(
            len(spans), 1
        )
        return
    items = getattr(ss, shape.items)
    for p_i, raw in enumerate(spans):
        span = shape.item()
        problem = _parse(span, raw)
        if problem is None:
            items.append(span)
        else:
            errors.append(
                f"{where}.{shape.items}[{p_i}]: malformed OTLP protobuf {shape.noun}"
                f" ({len(raw)} bytes): {problem}"
            )
    if broken is not None:
        errors.append(f"{where}.{shape.items}[{len(spans)}] and after: malformed ({broken}); not read")
    scopes.append(ss)


def _count_spans(scope: bytes) -> int:
    fields, _ = _fields(scope)
    return sum(1 for f in fields if f.number == 2)
