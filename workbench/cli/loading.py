"""OTLP files into the database, directly or through a running `workbench serve` (`workbench ingest`).

One process owns the database, so when a server holds it the file's requests travel to the server as
OTLP/HTTP protobuf, exactly as an agent's exporter would send them (a full queue's 503 is retried after
its Retry-After); otherwise the file goes through the same pipeline in this process. A server on this
data directory that holds another database than `--db` names gets nothing: the named file is written
directly, and the command says so.

`ingest_files` is also how the demo, the tests and the benchmarks load files.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from tqdm import tqdm

from collectors import decode, decode_logs
from collectors.files import is_logs, read_requests
from collectors.pipeline import IngestPipeline
from workbench.errors import BadInput, WorkbenchError
from workbench.server.client import ServerClient, connect
from workbench.settings import Settings
from workbench.store.connection import Store
from workbench.store.lake import open_store


@dataclass
class IngestTotals:
    accepted: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    via: str = ""
    findings: int | None = None  # computed by the policy rules after a direct ingest
    findings_error: str | None = None  # why they were not (a bad rules file); the spans are in regardless


def _chunks(req: ExportTraceServiceRequest, max_spans: int) -> Iterable[ExportTraceServiceRequest]:
    """Split a large request so each piece respects the per-request span limit."""
    if decode.count_spans(req) <= max_spans:
        yield req
        return
    piece = ExportTraceServiceRequest()
    n = 0
    for _, _, rs, ss, span, _ in decode.iter_spans(req):
        if n == max_spans:
            yield piece
            piece, n = ExportTraceServiceRequest(), 0
        out_rs = piece.resource_spans.add(schema_url=rs.schema_url)
        out_rs.resource.CopyFrom(rs.resource)
        out_ss = out_rs.scope_spans.add(schema_url=ss.schema_url)
        out_ss.scope.CopyFrom(ss.scope)
        out_ss.spans.append(span)
        n += 1
    if n:
        yield piece


def _log_chunks(req: ExportLogsServiceRequest, max_records: int) -> Iterable[ExportLogsServiceRequest]:
    """Split a large logs request so each piece respects the per-request limit (which bounds records)."""
    if decode_logs.count_records(req) <= max_records:
        yield req
        return
    piece = ExportLogsServiceRequest()
    n = 0
    for rl, sl, record in decode_logs.iter_records(req):
        if n == max_records:
            yield piece
            piece, n = ExportLogsServiceRequest(), 0
        out_rl = piece.resource_logs.add(schema_url=rl.schema_url)
        out_rl.resource.CopyFrom(rl.resource)
        out_sl = out_rl.scope_logs.add(schema_url=sl.schema_url)
        out_sl.scope.CopyFrom(sl.scope)
        out_sl.log_records.append(record)
        n += 1
    if n:
        yield piece


def _send(client: ServerClient, req: ExportTraceServiceRequest) -> tuple[int, str]:
    """(spans the server rejected, its message) for one request."""
    body = ExportTraceServiceResponse.FromString(client.export_traces(req.SerializeToString()))
    return body.partial_success.rejected_spans, body.partial_success.error_message


def _send_logs(client: ServerClient, req: ExportLogsServiceRequest) -> tuple[int, str]:
    """(log records the server rejected, its message) for one request."""
    body = ExportLogsServiceResponse.FromString(client.export_logs(req.SerializeToString()))
    return body.partial_success.rejected_log_records, body.partial_success.error_message


def _ingest_logs(
    settings: Settings,
    client: ServerClient | None,
    pipeline: IngestPipeline | None,
    req: ExportLogsServiceRequest,
    where: str,
    source: str,
    totals: IngestTotals,
) -> int:
    """One logs request from a file, through the server or this process's pipeline; returns how many
    records it held (for the progress bar)."""
    held = 0
    for piece in _log_chunks(req, settings.max_spans_per_request):
        if client is not None:
            n = decode_logs.count_records(piece)
            rejected, message = _send_logs(client, piece)
            totals.accepted += n - rejected
            totals.rejected += rejected
            if message:
                totals.errors.append(f"{where}: {message}")
            held += n
            continue
        assert pipeline is not None
        result = decode_logs.to_records(piece, settings.max_attribute_length, settings.max_value_depth)
        committed = pipeline.ingest_logs(result.records, source)
        totals.accepted += committed.accepted
        totals.rejected += result.rejected + committed.rejected
        totals.errors += [f"{where}: {e}" for e in (*result.errors, *committed.errors)]
        held += len(result.records) + result.rejected
    return held


def _as_traces(request: Message) -> ExportTraceServiceRequest:
    assert isinstance(request, ExportTraceServiceRequest)
    return request


def ingest_files(settings: Settings, files: Iterable[Path]) -> IngestTotals:
    """Ingest every file; a file that cannot be read is reported and the others still go in."""
    totals = IngestTotals()
    client = connect(settings)
    store = pipeline = None
    if client is not None:
        totals.via = f"workbench serve (PID {client.info.pid})"
    else:
        store = open_store(settings)
        pipeline = IngestPipeline(
            store,
            commit_max_spans=settings.commit_max_spans,
            checkpoint_interval=settings.checkpoint_interval,
        )
    try:
        with tqdm(unit="span", disable=None, file=sys.stderr) as bar:
            for path in files:
                bar.set_description(path.name)
                try:
                    for where, request, left_out in read_requests(path):
                        totals.rejected += len(left_out)
                        totals.errors += [f"{where}: {e}" for e in left_out]
                        if is_logs(request):
                            assert isinstance(request, ExportLogsServiceRequest)
                            bar.update(
                                _ingest_logs(
                                    settings, client, pipeline, request, where, f"file:{path.name}", totals
                                )
                            )
                            continue
                        req = _as_traces(request)
                        for piece in _chunks(req, settings.max_spans_per_request):
                            if client is not None:
                                n = decode.count_spans(piece)
                                rejected, message = _send(client, piece)
                                totals.accepted += n - rejected
                                totals.rejected += rejected
                                if message:
                                    totals.errors.append(f"{where}: {message}")
                                bar.update(n)
                                continue
                            assert pipeline is not None
                            result = decode.to_records(
                                piece, settings.max_attribute_length, max_value_depth=settings.max_value_depth
                            )
                            # what the commit says: a span refused at column-build or commit time is not
                            # counted as stored, a redelivered one is counted as accepted (stored once)
                            committed = pipeline.ingest(result.records, f"file:{path.name}")
                            totals.accepted += committed.accepted
                            totals.rejected += result.rejected + committed.rejected
                            totals.errors += [f"{where}: {e}" for e in (*result.errors, *committed.errors)]
                            bar.update(len(result.records) + result.rejected)
                except BadInput as exc:
                    totals.errors.append(str(exc))
                    totals.rejected += 1
    finally:
        if client is not None:
            client.close()
        if pipeline is not None and store is not None:
            pipeline.close()
            try:
                _scan_findings(settings, store, totals)  # no server to do it: findings exist after ingest
            finally:
                store.close()
    return totals


def _scan_findings(settings: Settings, store: Store, totals: IngestTotals) -> None:
    """Run the policy rules over the traces this ingest touched (from the stored watermark on)."""
    from workbench.policies.engine import catch_up, engine_from_settings

    try:
        report = catch_up(store, engine_from_settings(settings))
    except WorkbenchError as exc:
        totals.findings_error = str(exc)
        return
    totals.findings = report.findings
