"""OTLP/gRPC receiver: the TraceService from `opentelemetry-proto`'s stubs, served by grpcio.

Answers only after commit, like the HTTP receiver. Bad input and oversized batches get
INVALID_ARGUMENT with a message (not RESOURCE_EXHAUSTED, which OTLP exporters retry although such a
batch can never fit); a full queue gets UNAVAILABLE, which exporters do retry.
"""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collectors import decode
from collectors.pipeline import IngestPipeline
from collectors.receiver_http import check_token, summarize_errors
from workbench.errors import BadInput, Overloaded
from workbench.settings import Settings

log = logging.getLogger(__name__)

_SERVICE_NAME = "opentelemetry.proto.collector.trace.v1.TraceService"


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """grpcio servicer; each call runs on a server thread and blocks until its spans are committed."""

    def __init__(self, pipeline: IngestPipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.settings = settings

    def export_bytes(self, body: bytes, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
        """The registered handler: it decodes the request itself, so undecodable bytes get
        INVALID_ARGUMENT with the decoder's message (grpcio's own deserializer answers INTERNAL,
        "Exception deserializing request!", which says neither what nor where)."""
        metadata = dict(context.invocation_metadata() or ())
        if not check_token(metadata.get("authorization"), self.settings.auth_token):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            request, _ = decode.parse_request(body, decode.CONTENT_PROTOBUF)  # protobuf: whole or nothing
        except BadInput as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return self.Export(request, context)

    def Export(  # noqa: N802 - the name is fixed by the generated servicer
        self, request: ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        metadata = dict(context.invocation_metadata() or ())
        if not check_token(metadata.get("authorization"), self.settings.auth_token):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        n = decode.count_spans(request)
        if n > self.settings.max_spans_per_request:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request holds {n} spans; the limit is {self.settings.max_spans_per_request} per request "
                "(WORKBENCH_MAX_SPANS_PER_REQUEST): send smaller batches",
            )
        result = decode.to_records(request, self.settings.max_attribute_length)
        if not result.records and result.errors:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, summarize_errors(result.errors))
        try:
            self.pipeline.ingest(result.records, "otlp-grpc")
        except Overloaded as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except Exception as exc:
            log.exception("commit failed")
            context.abort(grpc.StatusCode.UNAVAILABLE, f"could not store the spans, nothing was kept: {exc}")
        resp = ExportTraceServiceResponse()
        if result.errors:
            resp.partial_success.rejected_spans = len(result.errors)
            resp.partial_success.error_message = summarize_errors(result.errors)
        return resp


def start_grpc_server(
    pipeline: IngestPipeline, settings: Settings, workers: int = 8
) -> tuple[grpc.Server, int]:
    """Start the server on settings.host:grpc_port; returns it and the bound port (0 picks one)."""
    limit = settings.max_request_bytes
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ],
        maximum_concurrent_rpcs=workers * 4,
    )
    service = TraceService(pipeline, settings)
    export = grpc.unary_unary_rpc_method_handler(
        service.export_bytes,
        request_deserializer=None,  # raw bytes in: export_bytes decodes them
        response_serializer=ExportTraceServiceResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(_SERVICE_NAME, {"Export": export}),)
    )
    host = settings.host
    address = f"[{host}]:{settings.grpc_port}" if ":" in host else f"{host}:{settings.grpc_port}"
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind OTLP/gRPC to {address}")
    server.start()
    return server, port
