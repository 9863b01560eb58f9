"""OTLP log payloads (protobuf or JSON) into frozen `LogRecord`s: the logs twin of collectors.decode.

Pure functions, no I/O. Everything a trace request is promised holds for a logs request, by the same
code where the shape allows: protobuf that does not parse whole is salvaged record by record
(protobuf_salvage with the LOGS shape), OTLP/JSON is parsed group by group and record by record, each
record is checked (checks.check_log_record) and decoded on its own, attribute values are cut at the
same limit with the cut recorded, and canonical bytes are framed by the same CanonicalFrame (a
ResourceLogs holding only the record), so the ledger seals a log record exactly as it seals a span.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as PbLogRecord
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs

from collectors import decode, json_depth
from collectors.checks import SpanRejected, check_log_record, safe_text
from collectors.decode import DEFAULT_VALUE_DEPTH, CanonicalFrame
from collectors.protobuf_salvage import LOGS, salvage
from workbench.errors import BadInput
from workbench.model import Attributes, LogRecord, Truncation

log = logging.getLogger(__name__)


@dataclass
class LogDecodeResult:
    """The usable log records of a request and a message per record that was not."""

    records: list[LogRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.errors)


def parse_request(body: bytes, content_type: str) -> tuple[ExportLogsServiceRequest, list[str]]:
    """An ExportLogsServiceRequest from a protobuf or OTLP/JSON body, and a message per record left out."""
    return decode.by_content_type(body, content_type, parse_protobuf, parse_json)


def parse_protobuf(body: bytes) -> tuple[ExportLogsServiceRequest, list[str]]:
    """A protobuf ExportLogsServiceRequest, and a message per record that could not be read."""
    req = ExportLogsServiceRequest()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        salvaged, errors = salvage(body, f"malformed OTLP protobuf ({len(body)} bytes): {exc}", LOGS)
        return salvaged, errors
    return req, []


def parse_json(body: bytes | str | dict[str, Any]) -> tuple[ExportLogsServiceRequest, list[str]]:
    """OTLP/JSON logs: the protobuf JSON mapping with hex trace and span ids, read record by record."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(f"body is not valid UTF-8 at byte {exc.start}: {exc.reason}") from exc
    else:
        text = body if isinstance(body, str) else ""
    doc: Any = body if isinstance(body, dict) else json_depth.loads(text)
    if not isinstance(doc, dict):
        raise BadInput("OTLP/JSON logs body must be an object with a 'resourceLogs' list")
    req = ExportLogsServiceRequest()
    errors: list[str] = []
    for r_i, rl_doc in enumerate(decode._list(doc, "resourceLogs", "resource_logs")):
        where_r = f"resourceLogs[{r_i}]"
        scopes = decode._list(rl_doc, "scopeLogs", "scope_logs")
        rl = ResourceLogs()
        problem = decode._parse_shell(rl_doc, rl, ("scopeLogs", "scope_logs"))
        if problem:
            errors += [f"{where_r}: {problem}"] * sum(len(_records_of(x)) for x in scopes)
            continue
        for s_i, sl_doc in enumerate(scopes):
            where_s = f"{where_r}.scopeLogs[{s_i}]"
            records = _records_of(sl_doc)
            sl = ScopeLogs()
            problem = decode._parse_shell(sl_doc, sl, ("logRecords", "log_records"))
            if problem:
                errors += [f"{where_s}: {problem}"] * len(records)
                continue
            for p_i, rec_doc in enumerate(records):
                try:
                    sl.log_records.append(_parse_record(rec_doc, f"{where_s}.logRecords[{p_i}]"))
                except BadInput as exc:
                    errors.append(str(exc))
            rl.scope_logs.append(sl)
        req.resource_logs.append(rl)
    return req, errors


def _records_of(scope_doc: Any) -> list[Any]:
    return decode._list(scope_doc, "logRecords", "log_records")


def _parse_record(obj: Any, where: str) -> PbLogRecord:
    deep = json_depth.deep_span_message(obj)
    if deep:
        raise BadInput(f"{where}: {deep.replace('the span', 'the log record')}")
    if not isinstance(obj, dict):
        raise BadInput(f"{where}: expected a log record object, got {type(obj).__name__}")
    obj = dict(obj)  # ids are rewritten; the caller's document stays as it was
    decode._convert_ids(obj, where)
    record = PbLogRecord()
    try:
        json_format.ParseDict(obj, record, ignore_unknown_fields=True)
    except Exception as exc:  # upb raises more than ParseError on hostile input (see decode._parse_span)
        raise BadInput(f"{where}: {decode._json_problem(obj, exc)}") from exc
    return record


def iter_records(req: ExportLogsServiceRequest) -> Iterator[tuple[ResourceLogs, ScopeLogs, PbLogRecord]]:
    for rl in req.resource_logs:
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                yield rl, sl, rec


def count_records(req: ExportLogsServiceRequest) -> int:
    return sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)


def where_record(r_i: int, s_i: int, p_i: int, record: PbLogRecord | None = None) -> str:
    """The location of a log record in a request, with its event name and span id when known."""
    where = f"resource_logs[{r_i}].scope_logs[{s_i}].log_records[{p_i}]"
    if record is None:
        return where
    label = f" span_id={record.span_id.hex()}" if record.span_id else ""
    name = record.event_name
    return f"{where}{label} ({safe_text(name)!r})" if name else f"{where}{label}"


def to_records(
    req: ExportLogsServiceRequest, max_attribute_length: int, max_value_depth: int = DEFAULT_VALUE_DEPTH
) -> LogDecodeResult:
    """Every valid log record as a LogRecord; each invalid one becomes an error naming where it was."""
    result = LogDecodeResult()
    lim, depth = max_attribute_length, max_value_depth
    for r_i, rl in enumerate(req.resource_logs):
        resource: tuple[Attributes, list[Truncation]] | str | None = None
        for s_i, sl in enumerate(rl.scope_logs):
            group: tuple[Attributes, list[Truncation], CanonicalFrame] | str | None = None
            for p_i, rec in enumerate(sl.log_records):
                problem = check_log_record(rec)
                if problem is None:
                    if resource is None:
                        resource = decode._group_part(rl.resource.attributes, "resource", lim, depth)
                    if group is None:
                        scope = decode._group_part(sl.scope.attributes, "scope", lim, depth)
                        group = scope if isinstance(scope, str) else (*scope, CanonicalFrame(rl, sl))
                    problem = _try_record(rl, sl, rec, resource, group, lim, depth, result.records)
                if problem is not None:
                    result.errors.append(f"{where_record(r_i, s_i, p_i, rec)}: {problem}")
    return result


def _try_record(
    rl: ResourceLogs,
    sl: ScopeLogs,
    rec: PbLogRecord,
    resource: tuple[Attributes, list[Truncation]] | str,
    group: tuple[Attributes, list[Truncation], CanonicalFrame] | str,
    lim: int,
    depth: int,
    out: list[LogRecord],
) -> str | None:
    if isinstance(resource, str):
        return resource
    if isinstance(group, str):
        return group
    try:
        out.append(_record(rl, sl, rec, resource, group, lim, depth))
    except SpanRejected as exc:
        return str(exc)
    except Exception as exc:  # a surprise costs this record only, and is logged
        log.exception("log record could not be decoded")
        return f"could not be decoded: {type(exc).__name__}: {safe_text(str(exc))}"
    return None


def _body(rec: PbLogRecord, lim: int, depth: int, truncs: list[Truncation]) -> Any:
    """The body as a plain value; a long string body is cut like an attribute value, with the cut kept."""
    if not rec.HasField("body"):
        return None
    wrapped = decode.attributes([_BodyKV(rec.body)], lim, "body", truncs, depth)
    return wrapped["value"]


class _BodyKV:
    """The body as a one-entry key/value list, so decode.attributes cuts and bounds it like any value."""

    __slots__ = ("key", "value")

    def __init__(self, value: Any) -> None:
        self.key = "value"
        self.value = value


def _record(
    rl: ResourceLogs,
    sl: ScopeLogs,
    rec: PbLogRecord,
    resource: tuple[Attributes, list[Truncation]],
    group: tuple[Attributes, list[Truncation], CanonicalFrame],
    lim: int,
    depth: int,
) -> LogRecord:
    scope_attrs, s_trunc, frame = group
    truncs: list[Truncation] = [*resource[1], *s_trunc]
    attrs = decode.attributes(rec.attributes, lim, "attributes", truncs, depth)
    body = _body(rec, lim, depth, truncs)
    event_name = rec.event_name or (
        attrs.get("event.name") if isinstance(attrs.get("event.name"), str) else ""
    )
    return LogRecord(
        trace_id=rec.trace_id.hex(),
        span_id=rec.span_id.hex(),
        time_ns=int(rec.time_unix_nano),
        observed_time_ns=int(rec.observed_time_unix_nano),
        severity_number=int(rec.severity_number),
        severity_text=rec.severity_text,
        event_name=str(event_name or ""),
        body=body,
        attributes=attrs,
        flags=int(rec.flags),
        dropped_attributes_count=rec.dropped_attributes_count,
        resource=resource[0],
        resource_schema_url=rl.schema_url,
        scope_name=sl.scope.name,
        scope_version=sl.scope.version,
        scope_attributes=scope_attrs,
        scope_schema_url=sl.schema_url,
        canonical=frame.canonical(rec),
        truncations=tuple(truncs),
    )


def canonical_bytes(rl: ResourceLogs, sl: ScopeLogs, rec: PbLogRecord) -> bytes:
    """Deterministic protobuf of a ResourceLogs holding only this record: what the ledger hashes."""
    return CanonicalFrame(rl, sl).canonical(rec)


def record_from_canonical(canonical: bytes, max_attribute_length: int) -> LogRecord:
    """Re-decode one stored log record: how the step join and `ledger verify` go back to the raw truth."""
    rl = ResourceLogs()
    try:
        rl.ParseFromString(canonical)
    except DecodeError as exc:
        raise BadInput(f"stored canonical bytes do not decode: {exc}") from exc
    req = ExportLogsServiceRequest()
    req.resource_logs.append(rl)
    result = to_records(req, max_attribute_length)
    if len(result.records) != 1:
        raise BadInput("stored canonical bytes do not hold exactly one valid log record")
    return result.records[0]
