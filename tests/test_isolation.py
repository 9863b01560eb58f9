"""The last line of defence: a span that slips past the checks still costs only itself.

Real DuckDB and a real pipeline; the bad span is made by hand, past the decoder's checks, the way an
unforeseen value would arrive.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa

from collectors import decode
from collectors.pipeline import IngestPipeline
from tests.otlp_payloads import tiny_batch
from workbench.model import SpanRecord
from workbench.store.batch import Batch
from workbench.store.connection import Store


def _records(n: int, tag: str = "iso") -> list[SpanRecord]:
    result = decode.to_records(tiny_batch(tag, 0, n).message, 1 << 20)
    assert not result.errors
    return result.records


def _stored(store: Store) -> set[str]:
    cur = store.cursor()
    try:
        return {r[0] for r in cur.execute("SELECT span_id FROM spans").fetchall()}
    finally:
        cur.close()


def test_a_record_the_columns_refuse_is_left_out_alone(tmp_path: Path) -> None:
    records = _records(4)
    records[2] = dataclasses.replace(records[2], start_time_ns=2**63)  # past int64: Arrow refuses it
    store = Store(tmp_path / "db.duckdb")
    pipeline = IngestPipeline(store)
    try:
        result = pipeline.ingest(records, "test")
        assert result.accepted == 3 and result.rejected == 1
        assert (
            f"span_id={records[2].span_id}" in result.errors[0] and "could not be stored" in result.errors[0]
        )
        assert _stored(store) == {r.span_id for i, r in enumerate(records) if i != 2}
    finally:
        pipeline.close()
        store.close()


def test_a_batch_whose_commit_fails_is_retried_span_by_span(tmp_path: Path) -> None:
    records = _records(3)
    pipeline_store = Store(tmp_path / "db.duckdb")
    pipeline = IngestPipeline(pipeline_store)
    try:
        steps = [pipeline.normalize(r) for r in records]
        batch = Batch.of(records, steps)
        # Text the JSON column refuses, in the middle span only: the insert of the whole batch fails.
        column = batch.spans.schema.get_field_index("attributes")
        values = batch.spans["attributes"].to_pylist()
        values[1] = "{not json"
        broken = Batch(
            batch.spans.set_column(column, "attributes", pa.array(values, pa.string())),
            batch.steps,
            batch.digests,
        )
        result = pipeline.submit_batch(broken, "test").result(60)
        assert result.accepted == 2 and result.rejected == 1
        assert f"span_id={records[1].span_id}" in result.errors[0], result.errors
        assert result.first_seq == 1 and result.last_seq == 2
        assert _stored(pipeline_store) == {records[0].span_id, records[2].span_id}
        # The writer is still usable, and its sequence has no gap.
        later = pipeline.ingest(_records(1, "later"), "test")
        assert later.first_seq == 3
    finally:
        pipeline.close()
        pipeline_store.close()


def test_the_exporter_stores_the_good_spans_beside_one_protobuf_cannot_encode(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    from collectors.exporter import DuckDBSpanExporter

    exporter = DuckDBSpanExporter(db_path=tmp_path / "db.duckdb")
    provider = TracerProvider()
    tracer = provider.get_tracer("isolation")
    finished = []
    for name in ("good one", "bad \ud800 name", "good two"):
        with tracer.start_as_current_span(name) as span:
            finished.append(span)
    try:
        assert exporter.export(finished) == SpanExportResult.SUCCESS  # type: ignore[arg-type]
        cur = exporter.pipeline.store.cursor()
        names = {r[0] for r in cur.execute("SELECT name FROM spans").fetchall()}
        cur.close()
        assert names == {"good one", "good two"}
    finally:
        exporter.shutdown()
        provider.shutdown()
