"""`DuckDBSpanExporter`: a real OpenTelemetry `SpanExporter` that writes straight into the workbench.

For agents that run in the same process as the workbench (notebooks, tests, the sample agents): no
socket, same path as the receivers (encode to OTLP, decode, normalize, commit, ledger).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from collectors import decode
from collectors.pipeline import IngestPipeline
from workbench.model import SpanRecord
from workbench.settings import Settings
from workbench.store.connection import Store

log = logging.getLogger(__name__)


class DuckDBSpanExporter(SpanExporter):
    """Exports to a workbench database, either through a running pipeline or by opening the file.

    Follows the SpanExporter contract: `export` never raises into the host program; a failure is
    logged and reported as FAILURE so the SDK's processor can count it.
    """

    def __init__(
        self,
        pipeline: IngestPipeline | None = None,
        *,
        db_path: Path | str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self._owned_store: Store | None = None
        if pipeline is None:
            self._owned_store = Store(db_path or self.settings.db_path)
            pipeline = IngestPipeline(
                self._owned_store,
                queue_max_spans=self.settings.queue_max_spans,
                commit_max_spans=self.settings.commit_max_spans,
                checkpoint_interval=self.settings.checkpoint_interval,
            )
        self.pipeline = pipeline
        self._shutdown = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        # Our own writes must not be traced by the host's instrumentations (e.g. of DuckDB or files).
        token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            records = self._records(spans)
            stored = self.pipeline.ingest(records, "exporter")
            for error in stored.errors:
                log.warning("span not stored: %s", error)
            return SpanExportResult.SUCCESS
        except Exception:
            log.exception("DuckDBSpanExporter failed to export %d spans", len(spans))
            return SpanExportResult.FAILURE
        finally:
            otel_context.detach(token)

    def _records(self, spans: Sequence[ReadableSpan]) -> list[SpanRecord]:
        """The spans as records; one that cannot be encoded or decoded is logged and left out alone.

        Encoding is all or nothing (protobuf refuses a name holding a lone surrogate, for one), so when
        the whole batch fails each span is encoded on its own.
        """
        try:
            requests = [encode_spans(spans)]
        except Exception:
            requests = []
            for span in spans:
                try:
                    requests.append(encode_spans([span]))
                except Exception as exc:
                    log.warning("span %r not exported: %s: %s", span.name, type(exc).__name__, exc)
        records: list[SpanRecord] = []
        for request in requests:
            result = decode.to_records(
                request, self.settings.max_attribute_length, self.settings.max_value_depth
            )
            for error in result.errors:
                log.warning("span not exported: %s", error)
            records += result.records
        return records

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # export() returns only after commit: nothing is ever pending here

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        if self._owned_store is not None:
            self.pipeline.close()
            self._owned_store.close()
