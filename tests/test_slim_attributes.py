"""The spans table's `attributes` column leaves out long strings (issue #20, fewer bytes per span): what it
drops is exactly re-derived from the sealed canonical bytes, `ledger verify` accepts the slim form and the
older full form and catches an edit of either, and the replay shows every attribute.

Real OpenTelemetry SDK spans with hostile values (NUL, non-ASCII, NaN and infinities, a 200,000-character
string, nested key-value lists), real ingest through the pipeline into a real DuckDB file, tampering in
plain SQL.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collectors import decode
from collectors.decode import record_from_canonical
from collectors.integrity import step_deriver, stored_columns_check
from collectors.normalize import NORMALIZER_VERSION
from collectors.pipeline import IngestPipeline
from workbench.store import explore
from workbench.store.batch import LONG_ATTRIBUTE, slim_attributes, to_json
from workbench.store.connection import Store
from workbench.store.verify import verify_ledger
from workbench.ui.data import raw_attributes

HUGE = "\x00ünï\u202e" * 40_000  # 200,000 characters of NUL, non-ASCII and a right-to-left override
LONG = "x" * (LONG_ATTRIBUTE + 1)
EDGE = "y" * LONG_ATTRIBUTE  # exactly at the limit: kept


def _nested(depth: int) -> AnyValue:
    value = AnyValue(string_value="\x00 bottom " + LONG)
    for i in range(depth):
        value = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=f"level{i}", value=value)]))
    return value


def _hostile_request() -> ExportTraceServiceRequest:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "hostile\x00agent"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("tests.slim").start_as_current_span("chat \x00ñ") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.input.messages", json.dumps([{"role": "user", "content": HUGE}]))
        span.set_attribute("llm.output_messages.0.message.content", LONG + "\x00é")
        span.set_attribute("edge", EDGE)
        span.set_attribute("nan", math.nan)
        span.set_attribute("inf", math.inf)
        span.set_attribute("minus_inf", -math.inf)
        span.set_attribute("long_list", [LONG, "short"])
        span.set_attribute("workbench.tool.side_effect", "drops a table; " + LONG)
        span.set_attribute("workbench.retry.attempt", 2)
    provider.shutdown()
    req = encode_spans(memory.get_finished_spans())
    # The SDK's attribute API has no key-value lists: nest one in the protobuf, as another client may.
    req.resource_spans[0].scope_spans[0].spans[0].attributes.append(KeyValue(key="deep", value=_nested(20)))
    return req


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    with Store(path) as store:
        pipeline = IngestPipeline(store)
        pipeline.ingest(decode.to_records(_hostile_request(), 1 << 24).records, "test")
        pipeline.close()
    return path


def _row(path: Path) -> tuple[int, dict[str, object], bytes, str]:
    with Store(path, read_only=True) as store:
        row = store.cursor().execute("SELECT seq, attributes, canonical, truncations FROM spans").fetchall()
    ((seq, attrs, canonical, truncations),) = row  # one span
    return int(seq), json.loads(attrs), bytes(canonical), truncations


def _problems(path: Path) -> list[str]:
    with Store(path, read_only=True) as store:
        report = verify_ledger(
            store, stored_columns_check(), derive=step_deriver(), normalizer_version=NORMALIZER_VERSION
        )
    return [p for _, p in report.problems + report.step_problems + report.entry_problems]


def _sql(path: Path, sql: str, params: list[object]) -> None:
    with Store(path) as store:
        store.cursor().execute(sql, params)


def test_long_strings_leave_the_column_and_short_or_own_attributes_stay(db: Path) -> None:
    _, stored, canonical, _ = _row(db)
    assert set(stored) == {
        "gen_ai.operation.name",
        "edge",
        "nan",
        "inf",
        "minus_inf",
        "long_list",
        "deep",
        "workbench.tool.side_effect",
        "workbench.retry.attempt",
    }
    assert stored["edge"] == EDGE
    assert stored["workbench.tool.side_effect"] == "drops a table; " + LONG
    assert stored["long_list"] == [LONG, "short"]  # only top-level strings are judged
    assert (stored["nan"], stored["inf"], stored["minus_inf"]) == (None, None, None)  # JSON has no NaN
    # The column is exactly the slim form of what the canonical bytes decode to.
    record = record_from_canonical(canonical, 1 << 24)
    assert stored == json.loads(to_json(slim_attributes(record.attributes)))


def test_what_the_column_drops_is_exactly_in_the_canonical_bytes(db: Path) -> None:
    seq, _, canonical, truncations = _row(db)
    ingested = decode.to_records(_hostile_request(), 1 << 24).records[0].attributes
    record = record_from_canonical(canonical, 1 << 24)
    assert record.attributes["gen_ai.input.messages"] == json.dumps([{"role": "user", "content": HUGE}])
    assert record.attributes["llm.output_messages.0.message.content"] == LONG + "\x00é"
    assert math.isnan(record.attributes["nan"])  # the exact double, which the JSON column cannot hold
    assert record.attributes["inf"] == math.inf and record.attributes["minus_inf"] == -math.inf
    assert repr(record.attributes) == repr(ingested)  # every value, NaN included, as ingest decoded it
    with Store(db, read_only=True) as store:
        extras = explore.step_extras(store, seq)
    # The replay's raw view decodes them: every attribute, in the JSON shape the column always had.
    assert raw_attributes(extras) == json.loads(to_json(ingested))
    assert extras["side_effect"] == "drops a table; " + LONG and extras["retry_attempt"] == 2


def test_verify_accepts_the_slim_and_the_older_full_form(db: Path) -> None:
    assert _problems(db) == []
    seq, _, canonical, _ = _row(db)
    full = to_json(record_from_canonical(canonical, 1 << 24).attributes)
    _sql(db, "UPDATE spans SET attributes = ? WHERE seq = ?", [full, seq])  # a row stored before slimming
    assert _problems(db) == []


@pytest.mark.parametrize(
    "edit",
    [
        lambda a: {**a, "edge": "z" + EDGE[1:]},  # a kept value changed
        lambda a: {k: v for k, v in a.items() if k != "workbench.retry.attempt"},  # one left out
        lambda a: {**a, "gen_ai.input.messages": "forged"},  # a dropped one put back, edited
    ],
    ids=["changed", "removed", "forged-long"],
)
def test_an_edited_column_is_named_in_either_form(db: Path, edit: object, tmp_path: Path) -> None:
    seq, stored, canonical, _ = _row(db)
    full = json.loads(to_json(record_from_canonical(canonical, 1 << 24).attributes))
    assert callable(edit)
    for form in (stored, full):
        _sql(db, "UPDATE spans SET attributes = ? WHERE seq = ?", [to_json(edit(form)), seq])
        problems = _problems(db)
        assert any("attributes" in p and "differ from the canonical bytes" in p for p in problems), problems


def test_slim_keeps_the_same_object_when_nothing_is_long() -> None:
    short = {"a": "x" * LONG_ATTRIBUTE, "b": 1.5, "c": [LONG]}
    assert slim_attributes(short) is short
    assert slim_attributes({"a": LONG, "b": 1}) == {"b": 1}
