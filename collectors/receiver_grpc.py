"""OTLP/gRPC receiver: the TraceService and the LogsService of `opentelemetry-proto`, served by grpcio.

Answers only after commit, like the HTTP receiver. Bad input and oversized batches get
INVALID_ARGUMENT with a message (not RESOURCE_EXHAUSTED, which OTLP exporters retry although such a
batch can never fit); a full queue gets UNAVAILABLE, which exporters do retry.
"""

from __future__ import annotations

import logging
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from typing import NoReturn

import grpc
from google.protobuf.message import Message

from collectors import decode
from collectors.pipeline import IngestPipeline
from collectors.receiver_http import check_token, export_response, summarize_errors
from collectors.workers import LOGS, TRACES, DecodePool, Prepared, Refused, prepare_body
from workbench.errors import Overloaded
from workbench.settings import Settings

log = logging.getLogger(__name__)

_SERVICE_NAMES = {
    TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
    LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
}


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """context.abort raises to end the call; said here so the type checker knows it never returns."""
    context.abort(code, message)
    raise AssertionError("grpc's abort returned")


class TraceService:
    """The Export method; each call runs on a grpcio thread and blocks until its spans are committed.

    It takes the raw request bytes and prepares them exactly as the HTTP receiver does (in a decode
    worker process when there is a pool, else on this thread), so undecodable bytes get INVALID_ARGUMENT
    with the decoder's message (grpcio's own deserializer answers INTERNAL, "Exception deserializing
    request!", which says neither what nor where).
    """

    def __init__(
        self,
        pipeline: IngestPipeline,
        settings: Settings,
        decode_pool: DecodePool | None = None,
        otlp_signal: str = TRACES,
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.decode_pool = decode_pool
        self.otlp_signal = otlp_signal  # TRACES, or LOGS for the LogsService (the same method otherwise)
        self.noun = "log record" if otlp_signal == LOGS else "span"

    def _prepare(self, body: bytes) -> Prepared | Refused:
        self.pipeline.check_room()  # refuse an overloaded request before doing its work
        ctype = decode.CONTENT_PROTOBUF
        if self.decode_pool is None:
            return prepare_body(body, ctype, None, self.settings, self.pipeline.normalize, self.otlp_signal)
        return self.decode_pool.submit(body, ctype, None, self.otlp_signal).result()

    def export_bytes(self, body: bytes, context: grpc.ServicerContext) -> Message:
        metadata = dict(context.invocation_metadata() or ())
        if not check_token(metadata.get("authorization"), self.settings.auth_token):
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        # Every _abort stands outside a `try`: grpcio's abort raises a plain Exception, which a broad
        # `except` would catch and turn into a second, wrong status.
        try:
            prepared = self._prepare(body)
        except Overloaded as exc:
            _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        except BrokenProcessPool:
            log.exception("a decode worker died")
            _abort(context, grpc.StatusCode.UNAVAILABLE, "a decode worker died, nothing was kept; retry")
        except Exception as exc:  # prepare_body returns bad input as a value; this is a last resort
            log.exception("a request could not be prepared")
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request could not be decoded: {type(exc).__name__}",
            )
        if isinstance(prepared, Refused):
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, prepared.message)
        if prepared.batch is None:
            if prepared.errors:
                _abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    summarize_errors(prepared.errors, noun=self.noun),
                )
            return export_response(self.otlp_signal, 0, [])
        failure = None
        errors = list(prepared.errors)
        try:
            errors += self.pipeline.submit_batch(prepared.batch, "otlp-grpc").result().errors
        except Overloaded as exc:
            failure = str(exc)
        except Exception as exc:
            log.exception("commit failed")
            failure = f"could not store the {self.noun}s, nothing was kept: {exc}"
        if failure is not None:
            _abort(context, grpc.StatusCode.UNAVAILABLE, failure)
        return export_response(self.otlp_signal, len(errors), errors)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def start_grpc_server(
    pipeline: IngestPipeline, settings: Settings, decode_pool: DecodePool | None = None, workers: int = 8
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
    handlers = []
    for otlp_signal, service_name in _SERVICE_NAMES.items():
        service = TraceService(pipeline, settings, decode_pool, otlp_signal)
        export = grpc.unary_unary_rpc_method_handler(
            service.export_bytes,
            request_deserializer=None,  # raw bytes in: export_bytes decodes them
            response_serializer=_serialize,
        )
        handlers.append(grpc.method_handlers_generic_handler(service_name, {"Export": export}))
    server.add_generic_rpc_handlers(tuple(handlers))
    host = settings.host
    address = f"[{host}]:{settings.grpc_port}" if ":" in host else f"{host}:{settings.grpc_port}"
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind OTLP/gRPC to {address}")
    server.start()
    return server, port
