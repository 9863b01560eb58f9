"""Per-span checks run before a span becomes a record: what a span must satisfy to be stored.

Why before, and per span: the columns a batch is written to have fixed types (int64 times, int8 kind
and status) and one value that does not fit fails the Arrow build or the insert for every span of the
batch. Checked here, a bad span is refused alone, with a reason that names where it was, and its
neighbours are stored. Every message says what and where; none repeats hostile text unescaped.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

INT64_MAX = 2**63 - 1
_INT8 = range(-128, 128)


class SpanRejected(Exception):
    """A span that cannot be stored; the message is the reason, without the span's location."""


def check_span(span: Span) -> str | None:
    """Why this span cannot be stored, or None. Cheap: called for every span ingested."""
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return f"trace_id must be 16 non-zero bytes, got {len(span.trace_id)} bytes"
    if len(span.span_id) != 8 or not any(span.span_id):
        return f"span_id must be 8 non-zero bytes, got {len(span.span_id)} bytes"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"parent_span_id must be empty or 8 bytes, got {len(span.parent_span_id)} bytes"
    # fixed64 on the wire, int64 nanoseconds in the store (and in every OTel SDK): a time at or past
    # 2^63 ns (the year 2262) is a corrupt or hostile value, not a real time. End before start is kept.
    for name in ("start_time_unix_nano", "end_time_unix_nano"):
        value = getattr(span, name)
        if value > INT64_MAX:
            return f"{name} {value} is out of range (must be below 2^63 ns)"
    if span.kind not in _INT8:
        return f"kind {span.kind} is out of range (SpanKind is 0-5)"
    if span.status.code not in _INT8:
        return f"status.code {span.status.code} is out of range (StatusCode is 0-2)"
    return None


def check_log_record(record: LogRecord) -> str | None:
    """Why this log record cannot be stored, or None. Ids are optional on a log record (a record outside
    any trace is kept), but when present they must be real ids, or the join to a step would be a lie."""
    if record.trace_id and (len(record.trace_id) != 16 or not any(record.trace_id)):
        return f"trace_id must be empty or 16 non-zero bytes, got {len(record.trace_id)} bytes"
    if record.span_id and (len(record.span_id) != 8 or not any(record.span_id)):
        return f"span_id must be empty or 8 non-zero bytes, got {len(record.span_id)} bytes"
    if record.span_id and not record.trace_id:
        return "span_id is set without a trace_id"
    for name in ("time_unix_nano", "observed_time_unix_nano"):
        value = getattr(record, name)
        if value > INT64_MAX:
            return f"{name} {value} is out of range (must be below 2^63 ns)"
    return None


def where_span(r_i: int, s_i: int, p_i: int, span: Span | None = None) -> str:
    """The location of a span in a request, with its id and name when they are known."""
    where = f"resource_spans[{r_i}].scope_spans[{s_i}].spans[{p_i}]"
    if span is None:
        return where
    label = f" span_id={span.span_id.hex()}" if span.span_id else ""
    return f"{where}{label} ({span.name[:200]!r})" if span.name else f"{where}{label}"


def safe_text(text: str, limit: int = 200) -> str:
    """Text that always encodes as UTF-8 (a lone surrogate becomes its \\ud800 escape), cut to `limit`.

    Error messages travel in protobuf strings, gRPC trailers and JSON bodies, all of which refuse a
    lone surrogate: an unescaped one would turn a clear 400 into a failed response.
    """
    cut = text if len(text) <= limit else text[:limit] + "…"
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def find_lone_surrogate(obj: Any, path: str = "", max_depth: int = 200) -> str | None:
    """Where the first lone surrogate (in a key or a string) of a JSON-like value is, or None.

    Iterative and depth-bounded, so a hostile document cannot make it recurse. Only called after a
    span failed to parse, to say why: the protobuf parser reports a surrogate in a key as a SystemError
    that names nothing.
    """
    stack: list[tuple[Any, str, int]] = [(obj, path, 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            if _has_surrogate(value):
                return f"{where or 'value'}: a string holds a lone surrogate"
        elif depth < max_depth and isinstance(value, dict):
            for key, child in value.items():
                if isinstance(key, str) and _has_surrogate(key):
                    return f"{where or 'object'}: key {key[:100]!r} holds a lone surrogate"
                stack.append((child, f"{where}.{str(key)[:60]!r}", depth + 1))
        elif depth < max_depth and isinstance(value, list):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(value))
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
