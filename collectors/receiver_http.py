"""OTLP/HTTP receiver: `POST /v1/traces` and `POST /v1/logs`, protobuf or JSON, gzip or deflate, as the
OTLP spec asks. Both signals take the same path (limits, decode workers, group commit, acknowledgement
after commit); only the decoder and the response message differ.

Status codes follow the OTLP/HTTP specification: 200 with an ExportTraceServiceResponse (and
`partial_success` when some spans were refused), 400 for undecodable data, 401 without the bearer token,
413 for bodies or batches over the limits, 415 for an unknown content type or encoding, 503 with
Retry-After when the queue is full. Error bodies are a google.rpc.Status in the request's encoding.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from concurrent.futures.process import BrokenProcessPool

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collectors import decode
from collectors.checks import safe_text
from collectors.hosts import HostGuard, allowed_hosts
from collectors.pipeline import IngestPipeline
from collectors.workers import LOGS, TRACES, DecodeLimits, DecodePool, Prepared, Refused, prepare_body
from workbench.errors import BadInput, Overloaded
from workbench.settings import Settings

log = logging.getLogger(__name__)

# grpc status codes used in google.rpc.Status bodies
_INVALID_ARGUMENT = 3
_UNAUTHENTICATED = 16
_UNAVAILABLE = 14
_RESOURCE_EXHAUSTED = 8


def _wants_json(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype != decode.CONTENT_PROTOBUF


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    code = {
        401: _UNAUTHENTICATED,
        413: _RESOURCE_EXHAUSTED,
        503: _UNAVAILABLE,
        500: _UNAVAILABLE,
    }.get(status, _INVALID_ARGUMENT)
    message = safe_text(message, 4000)  # JSON and protobuf strings both refuse a lone surrogate
    if _wants_json(request):
        return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)
    body = status_pb2.Status(code=code, message=message).SerializeToString()
    return Response(body, status_code=status, media_type=decode.CONTENT_PROTOBUF, headers=headers)


def export_response(otlp_signal: str, rejected: int, errors: list[str]) -> Message:
    """The signal's Export response, with `partial_success` when some records were refused."""
    if otlp_signal == LOGS:
        logs = ExportLogsServiceResponse()
        if rejected:
            logs.partial_success.rejected_log_records = rejected
            logs.partial_success.error_message = summarize_errors(errors, noun="log record")
        return logs
    resp = ExportTraceServiceResponse()
    if rejected:
        resp.partial_success.rejected_spans = rejected
        resp.partial_success.error_message = summarize_errors(errors)
    return resp


def _ok(request: Request, rejected: int, errors: list[str], otlp_signal: str = TRACES) -> Response:
    resp = export_response(otlp_signal, rejected, errors)
    if _wants_json(request):
        return JSONResponse(json_format.MessageToDict(resp))
    return Response(resp.SerializeToString(), media_type=decode.CONTENT_PROTOBUF)


def summarize_errors(errors: list[str], limit: int = 5, noun: str = "span") -> str:
    """The first few span (or log record) errors in full, then a count: enough to find the bad one,
    bounded in size."""
    shown = "; ".join(safe_text(e, 1000) for e in errors[:limit])
    more = len(errors) - limit
    return f"{len(errors)} {noun}(s) rejected: {shown}" + (f"; and {more} more" if more > 0 else "")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadInput(
            f"request body of {declared} bytes exceeds the limit of {limit} (WORKBENCH_MAX_REQUEST_BYTES)",
            413,
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadInput(
                f"request body exceeds the limit of {limit} bytes (WORKBENCH_MAX_REQUEST_BYTES)", 413
            )
        chunks.append(chunk)
    return b"".join(chunks)


def check_token(header: str | None, token: str | None) -> bool:
    """Constant-time bearer check; no token configured means no auth."""
    if not token:
        return True
    expected = f"Bearer {token}"
    return header is not None and hmac.compare_digest(header.encode(), expected.encode())


def _prepare_here(
    pipeline: IngestPipeline,
    body: bytes,
    content_type: str,
    encoding: str | None,
    limits: DecodeLimits,
    otlp_signal: str = TRACES,
) -> Prepared | Refused | Overloaded:
    """Decode and normalize on a worker thread, so the event loop only moves bytes.

    A full queue comes back as a value with its traceback cleared, like bad input (see prepare_body):
    raised across the pool, the exception would sit in a reference cycle (anyio's future and the
    awaiting frame) until a full garbage collection, with frames that hold the request body.
    """
    try:
        pipeline.check_room()
    except Overloaded as exc:
        return exc.with_traceback(None)
    return prepare_body(body, content_type, encoding, limits, pipeline.normalize, otlp_signal)


def create_app(
    pipeline: IngestPipeline, settings: Settings, decode_pool: DecodePool | None = None
) -> Starlette:
    """The receiver as an ASGI app, so it can be mounted beside the UI in one Uvicorn server.

    With a `decode_pool`, bodies are decoded and normalized in its worker processes; without one, on
    this process's threads.
    """

    async def prepare(request: Request, body: bytes, otlp_signal: str) -> Prepared | Refused | Overloaded:
        content_type = request.headers.get("content-type", "")
        encoding = request.headers.get("content-encoding")
        if decode_pool is None:
            return await run_in_threadpool(
                _prepare_here, pipeline, body, content_type, encoding, settings, otlp_signal
            )
        pipeline.check_room()  # before the work, as _prepare_here does
        return await asyncio.wrap_future(decode_pool.submit(body, content_type, encoding, otlp_signal))

    async def export_traces(request: Request) -> Response:
        return await export(request, TRACES)

    async def export_logs(request: Request) -> Response:
        return await export(request, LOGS)

    async def export(request: Request, otlp_signal: str) -> Response:
        noun = "log record" if otlp_signal == LOGS else "span"
        if not check_token(request.headers.get("authorization"), settings.auth_token):
            return _error(request, 401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        try:
            body = await _read_body(request, settings.max_request_bytes)
            prepared = await prepare(request, body, otlp_signal)
        except BadInput as exc:
            return _error(request, exc.status, str(exc))
        except Overloaded as exc:
            prepared = exc.with_traceback(None)  # no frame (holding the body) kept alive by a cycle
        except BrokenProcessPool:
            log.exception("a decode worker died")
            return _error(request, 503, "a decode worker died, nothing was kept; retry", {"Retry-After": "1"})
        except ClientDisconnect:
            return Response(status_code=400)
        except Exception as exc:  # prepare_body returns bad input as a value; this is a last resort
            log.exception("a request could not be prepared")
            return _error(request, 400, f"request could not be decoded: {type(exc).__name__}")
        if isinstance(prepared, Refused):
            return _error(request, prepared.status, prepared.message)
        if isinstance(prepared, Overloaded):
            return _error(request, 503, str(prepared), {"Retry-After": str(prepared.retry_after)})
        if prepared.batch is None:
            if prepared.errors:
                return _error(request, 400, summarize_errors(prepared.errors, noun=noun))
            return _ok(request, 0, [], otlp_signal)
        try:
            future = pipeline.submit_batch(prepared.batch, "otlp-http")
        except Overloaded as exc:
            return _error(request, 503, str(exc), {"Retry-After": str(exc.retry_after)})
        try:
            stored = await asyncio.wrap_future(future)
        except Exception as exc:
            log.exception("commit failed")
            return _error(
                request, 503, f"could not store the {noun}s, nothing was kept: {exc}", {"Retry-After": "5"}
            )
        errors = [*prepared.errors, *stored.errors]  # records the commit refused one by one, if any
        return _ok(request, len(errors), errors, otlp_signal)

    async def health(request: Request) -> Response:
        # Without the token (when one is set), only that the server is alive: ingest progress is data.
        if not check_token(request.headers.get("authorization"), settings.auth_token):
            return JSONResponse({"status": "ok"})
        writer = pipeline.writer
        return JSONResponse(
            {
                "status": "ok",
                "last_seq": writer.last_seq,
                "queued_spans": pipeline.queued_spans,
                # redeliveries acknowledged without storing, and same-id spans with other bytes
                "duplicate_spans": writer.duplicates_total,
                "conflicting_versions": writer.versions_total,
            }
        )

    return Starlette(
        routes=[
            Route("/v1/traces", export_traces, methods=["POST"]),
            Route("/v1/logs", export_logs, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ],
        # Around every route, also the read API that `workbench serve` mounts later (DNS rebinding).
        middleware=[Middleware(HostGuard, hosts=allowed_hosts(settings))],
    )
