"""Drive opentelemetry-instrumentation-openai-v2 in EVENT_ONLY content mode: content as OTLP log records.

    python -m tests.drive_events --http URL --fake-openai BASE_URL [--order logs-first|spans-first]

The same agent loop as tests/drive_client.py (openai-v2 chat calls, util-genai agent and tool spans),
but with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=event_only`: the spans carry no content,
the messages and tool calls travel as `gen_ai.client.inference.operation.details` log records. Spans
and log records go through the SDK's batch processors and the real OTLP/HTTP exporters to URL's
/v1/traces and /v1/logs; nothing is exported until the end, then one signal is flushed before the
other (`--order`), so the workbench sees the events before or after their spans. The last stdout line
is JSON: trace id, spans and log records exported, the answer. Exit 2 when an export was refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from tests.drive_client import RecordingExporter, current_trace_id, openai_agent_loop, run_sql
from tests.fake_openai import MODEL, USER_PROMPT

_LATER_MS = 600_000  # batch processors export only when flushed: the order is the driver's choice


class RecordingLogExporter(LogRecordExporter):
    """Delegates to the real log exporter and remembers every result."""

    def __init__(self, inner: LogRecordExporter) -> None:
        self.inner = inner
        self.results: list[LogRecordExportResult] = []
        self.exported = 0

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = self.inner.export(batch)
        self.results.append(result)
        if result is LogRecordExportResult.SUCCESS:
            self.exported += len(batch)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", required=True, help="base URL of a workbench serve's OTLP/HTTP port")
    parser.add_argument("--fake-openai", required=True)
    parser.add_argument("--order", choices=("logs-first", "spans-first"), default="logs-first")
    args = parser.parse_args(argv)
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "event_only"
    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.util.genai.handler import TelemetryHandler
    from opentelemetry.util.genai.types import InputMessage, OutputMessage, Text

    resource = Resource.create({"service.name": "real-openai-v2-events"})
    spans = RecordingExporter(OTLPSpanExporter(endpoint=f"{args.http}/v1/traces", timeout=10))
    logs = RecordingLogExporter(OTLPLogExporter(endpoint=f"{args.http}/v1/logs", timeout=10))
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(spans, schedule_delay_millis=_LATER_MS))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(logs, schedule_delay_millis=_LATER_MS))
    set_logger_provider(logger_provider)

    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    handler = TelemetryHandler(tracer_provider=tracer_provider, logger_provider=logger_provider)
    client = openai.OpenAI(base_url=args.fake_openai, api_key="sk-fake", max_retries=0)

    def run_tool(name: str, call_id: str, arguments: dict[str, Any]) -> Any:
        with handler.tool(name, tool_call_id=call_id, tool_type="function") as invocation:
            invocation.arguments = arguments
            result = run_sql(**arguments)
            invocation.tool_result = result
            return result

    with handler.invoke_local_agent(agent_name="db-agent", request_model=MODEL) as agent:
        trace_id = current_trace_id()
        agent.input_messages = [InputMessage(role="user", parts=[Text(content=USER_PROMPT)])]
        answer = openai_agent_loop(client, run_tool)
        agent.output_messages = [
            OutputMessage(role="assistant", parts=[Text(content=answer)], finish_reason="stop")
        ]

    first, second = (
        (logger_provider, tracer_provider)
        if args.order == "logs-first"
        else (tracer_provider, logger_provider)
    )
    flushed = first.force_flush(30_000) and second.force_flush(30_000)
    tracer_provider.shutdown()
    logger_provider.shutdown()
    failed = [r for r in spans.results if r is not SpanExportResult.SUCCESS]
    failed += [r for r in logs.results if r is not LogRecordExportResult.SUCCESS]
    print(
        json.dumps({"trace_id": trace_id, "spans": spans.exported, "logs": logs.exported, "answer": answer})
    )
    if not flushed or failed or not spans.exported or not logs.exported:
        print(f"export failed: flushed={flushed} results={spans.results} {logs.results}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
