"""Load the convention fixtures (tests/fixtures/conventions/*.json) as SpanRecord objects.

The fixtures hold spans as the libraries emitted them (see capture.py there); the normalizer only
needs the decoded record, so canonical bytes are left empty.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.model import SpanEvent, SpanRecord

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "conventions"


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def span_record(raw: dict[str, Any], service: str = "test-service") -> SpanRecord:
    return SpanRecord(
        trace_id=raw.get("trace_id", "0" * 32),
        span_id=raw.get("span_id", "0" * 16),
        parent_span_id=raw.get("parent_span_id", ""),
        name=raw.get("name", ""),
        kind=raw.get("kind", 1),
        start_time_ns=raw.get("start_time_ns", 0),
        end_time_ns=raw.get("end_time_ns", 0),
        status_code=raw.get("status_code", 0),
        status_message=raw.get("status_message", ""),
        trace_state="",
        flags=0,
        resource={"service.name": service},
        resource_schema_url="",
        scope_name=raw.get("scope_name", ""),
        scope_version=raw.get("scope_version", ""),
        scope_attributes={},
        scope_schema_url="",
        attributes=dict(raw.get("attributes", {})),
        events=tuple(
            SpanEvent(name=e["name"], time_ns=e.get("time_ns", 0), attributes=dict(e.get("attributes", {})))
            for e in raw.get("events", [])
        ),
        links=(),
        dropped_attributes_count=0,
        dropped_events_count=0,
        dropped_links_count=0,
        canonical=b"",
    )


def fixture_spans(name: str) -> list[SpanRecord]:
    doc = load_fixture(name)
    service = doc.get("service_name", "test-service")
    return [span_record(raw, service) for raw in doc["spans"]]


def fixture_files() -> list[str]:
    return sorted(p.name for p in FIXTURES.glob("*.json"))
