"""A captured convention fixture (tests/fixtures/conventions/*.json) as the OTLP/JSON requests its library's
exporters would have sent: one ExportTraceServiceRequest for the spans, one ExportLogsServiceRequest for
the GenAI log records, so a test can send the two halves to a real server separately, in either order.

The fixture keeps what the join reads, not the records' timestamps: each record is stamped with the end
time of its span (the SDK emits them while the span is open), which changes nothing the join derives.
"""

from __future__ import annotations

import json
from typing import Any

from tests.conventions_fixture import load_fixture


def any_value(value: Any) -> dict[str, Any]:
    """One OTLP/JSON AnyValue (bool before int: a bool is an int in Python)."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": key_values(value)}}
    raise TypeError(f"no OTLP value for {type(value).__name__}")


def key_values(mapping: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": any_value(v)} for k, v in mapping.items()]


def _resource(doc: dict[str, Any]) -> dict[str, Any]:
    return {"attributes": key_values({"service.name": doc.get("service_name", "test-service")})}


def traces_request(name: str) -> bytes:
    """The fixture's spans as one OTLP/JSON ExportTraceServiceRequest (one scope group per scope)."""
    doc = load_fixture(name)
    scopes: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for raw in doc["spans"]:
        span = {
            "traceId": raw["trace_id"],
            "spanId": raw["span_id"],
            "parentSpanId": raw.get("parent_span_id", ""),
            "name": raw["name"],
            "kind": raw.get("kind", 1),
            "startTimeUnixNano": str(raw["start_time_ns"]),
            "endTimeUnixNano": str(raw["end_time_ns"]),
            "attributes": key_values(raw.get("attributes", {})),
            "events": [
                {
                    "name": e["name"],
                    "timeUnixNano": str(e["time_ns"]),
                    "attributes": key_values(e["attributes"]),
                }
                for e in raw.get("events", [])
            ],
            "status": {"code": raw.get("status_code", 0), "message": raw.get("status_message", "")},
        }
        scopes.setdefault((raw.get("scope_name", ""), raw.get("scope_version", "")), []).append(span)
    groups = [{"scope": {"name": n, "version": v}, "spans": spans} for (n, v), spans in scopes.items()]
    return json.dumps({"resourceSpans": [{"resource": _resource(doc), "scopeSpans": groups}]}).encode()


def logs_request(name: str) -> bytes:
    """The fixture's log records as one OTLP/JSON ExportLogsServiceRequest."""
    doc = load_fixture(name)
    ends = {raw["span_id"]: raw["end_time_ns"] for raw in doc["spans"]}
    records = []
    for raw in doc["logs"]:
        record: dict[str, Any] = {
            "timeUnixNano": str(ends.get(raw["span_id"], 0)),
            "traceId": raw["trace_id"],
            "spanId": raw["span_id"],
            "attributes": key_values(raw.get("attributes", {})),
        }
        if raw.get("event_name"):
            record["eventName"] = raw["event_name"]
        if raw.get("body") is not None:
            record["body"] = any_value(raw["body"])
        records.append(record)
    scope = {"scope": {"name": "captured"}, "logRecords": records}
    return json.dumps({"resourceLogs": [{"resource": _resource(doc), "scopeLogs": [scope]}]}).encode()


def trace_id(name: str) -> str:
    """The fixture's one trace id."""
    (only,) = {raw["trace_id"] for raw in load_fixture(name)["spans"]}
    return str(only)
