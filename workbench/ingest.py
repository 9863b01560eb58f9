"""`workbench ingest`: files into the database, directly or through a running `workbench serve`.

One process owns the database, so when a server holds it the file's requests travel to the server as
OTLP/HTTP protobuf, exactly as an agent's exporter would send them; otherwise the file goes through the
same pipeline in this process.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from tqdm import tqdm

from collectors import decode
from collectors.files import read_requests
from collectors.pipeline import IngestPipeline
from workbench.errors import BadInput, WorkbenchError
from workbench.server import ServerInfo, running_server
from workbench.settings import Settings
from workbench.store.connection import Store


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


def _send(server: ServerInfo, req: ExportTraceServiceRequest, token: str | None) -> tuple[int, str]:
    headers = {"Content-Type": decode.CONTENT_PROTOBUF}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    http = urllib.request.Request(
        f"{server.http_url}/v1/traces", data=req.SerializeToString(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(http, timeout=120) as resp:
            body = ExportTraceServiceResponse.FromString(resp.read())
    except urllib.error.HTTPError as exc:
        raise WorkbenchError(f"the server refused the data ({exc.code}): {exc.read()[:500]!r}") from exc
    except urllib.error.URLError as exc:
        raise WorkbenchError(f"cannot reach workbench serve at {server.http_url}: {exc.reason}") from exc
    return body.partial_success.rejected_spans, body.partial_success.error_message


def ingest_files(settings: Settings, files: Iterable[Path]) -> IngestTotals:
    """Ingest every file; a file that cannot be read is reported and the others still go in."""
    totals = IngestTotals()
    server = running_server(settings)
    store = pipeline = None
    if server is not None:
        totals.via = f"workbench serve (PID {server.pid})"
    else:
        store = Store(settings.db_path)
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
                    for where, req, left_out in read_requests(path):
                        totals.rejected += len(left_out)
                        totals.errors += [f"{where}: {e}" for e in left_out]
                        for piece in _chunks(req, settings.max_spans_per_request):
                            if server is not None:
                                n = decode.count_spans(piece)
                                rejected, message = _send(server, piece, settings.auth_token)
                                totals.accepted += n - rejected
                                totals.rejected += rejected
                                if message:
                                    totals.errors.append(f"{where}: {message}")
                                bar.update(n)
                                continue
                            assert pipeline is not None
                            result = decode.to_records(piece, settings.max_attribute_length)
                            pipeline.ingest(result.records, f"file:{path.name}")
                            totals.accepted += len(result.records)
                            totals.rejected += result.rejected
                            totals.errors += [f"{where}: {e}" for e in result.errors]
                            bar.update(len(result.records) + result.rejected)
                except BadInput as exc:
                    totals.errors.append(str(exc))
                    totals.rejected += 1
    finally:
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
