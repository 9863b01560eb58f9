"""Drive one real instrumentation library through one agent run and export its spans over a real socket.

    python -m tests.drive_client LIBRARY --endpoint URL --protocol http|grpc --fake-openai BASE_URL
                                 [--compression gzip]

LIBRARY is `openinference` (openinference-instrumentation-openai + OITracer agent/tool decorators),
`openai-v2` (opentelemetry-instrumentation-openai-v2 chat spans + opentelemetry-util-genai agent and
tool spans) or `pydantic-ai` (Agent + OpenAIChatModel with `capabilities=[Instrumentation(...)]`).
The OpenAI-based ones talk to the fake server in tests/fake_openai.py through the real `openai` SDK.

Spans go through a BatchSpanProcessor and the real OTLP exporter (protobuf over HTTP, or gRPC,
insecure) to ENDPOINT, a `workbench serve`. Instrumentors patch the `openai` module globally, which is
why every library runs in a process of its own. The last stdout line is JSON: the trace id of the run,
the number of spans exported and the agent's answer. Exit 2 when any export was not acknowledged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from tests.fake_openai import MODEL, SYSTEM_PROMPT, TOOL_RESULT, TOOLS, USER_PROMPT

LIBRARIES = ("openinference", "openai-v2", "pydantic-ai")


class RecordingExporter(SpanExporter):
    """Delegates to the real exporter and remembers every result, so a refused batch fails the driver."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.results: list[SpanExportResult] = []
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append(result)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def make_exporter(protocol: str, endpoint: str, compression: str | None) -> SpanExporter:
    if protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(
            endpoint=endpoint,
            insecure=True,
            timeout=10,
            compression=grpc.Compression.Gzip if compression == "gzip" else None,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(
        endpoint=endpoint,
        timeout=10,
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
    )


def run_sql(query: str) -> dict[str, Any]:
    """The tool every agent is given; it only pretends."""
    return dict(TOOL_RESULT)


def current_trace_id() -> str:
    return f"{trace.get_current_span().get_span_context().trace_id:032x}"


def openai_agent_loop(client: Any, run_tool: Callable[[str, str, dict[str, Any]], Any]) -> str:
    """The smallest agent loop: call the model, run the tools it asks for, feed results back, until text."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_PROMPT},
    ]
    for _ in range(4):
        resp = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, temperature=0)
        msg = resp.choices[0].message
        if not msg.tool_calls:
            return msg.content or ""
        messages.append(msg.model_dump(exclude_none=True))
        for call in msg.tool_calls:
            result = run_tool(call.function.name, call.id, json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    raise RuntimeError("the model never stopped asking for tools")


def drive_openinference(provider_for: Callable[..., TracerProvider], base_url: str) -> tuple[str, str]:
    import openai
    from openinference.instrumentation import TracerProvider as OITracerProvider
    from openinference.instrumentation import using_session
    from openinference.instrumentation.openai import OpenAIInstrumentor

    provider = provider_for(OITracerProvider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("db-agent")
    client = openai.OpenAI(base_url=base_url, api_key="sk-fake", max_retries=0)
    seen: list[str] = []

    @tracer.tool(name="run_sql", description="Run one SQL statement against the production database.")
    def sql_tool(query: str) -> dict[str, Any]:
        return run_sql(query)

    @tracer.agent(name="db-agent")
    def agent(question: str) -> str:
        seen.append(current_trace_id())
        return openai_agent_loop(client, lambda name, call_id, args: sql_tool(**args))

    with using_session("sess-real-oi"):
        answer = agent(USER_PROMPT)
    return seen[0], answer


def drive_openai_v2(provider_for: Callable[..., TracerProvider], base_url: str) -> tuple[str, str]:
    # Read when the instrumentation starts: content on spans needs the latest (experimental) GenAI
    # conventions, where 2.4b0 with util-genai 1.1b0 accepts span_only / event_only / span_and_event.
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "span_only"
    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.util.genai.handler import TelemetryHandler
    from opentelemetry.util.genai.types import InputMessage, OutputMessage, Text

    provider = provider_for(TracerProvider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    handler = TelemetryHandler(tracer_provider=provider)
    client = openai.OpenAI(base_url=base_url, api_key="sk-fake", max_retries=0)

    def run_tool(name: str, call_id: str, args: dict[str, Any]) -> Any:
        with handler.tool(name, tool_call_id=call_id, tool_type="function") as invocation:
            invocation.arguments = args
            result = run_sql(**args)
            invocation.tool_result = result
            return result

    with handler.invoke_local_agent(agent_name="db-agent", request_model=MODEL) as agent:
        trace_id = current_trace_id()
        agent.input_messages = [InputMessage(role="user", parts=[Text(content=USER_PROMPT)])]
        answer = openai_agent_loop(client, run_tool)
        agent.output_messages = [
            OutputMessage(role="assistant", parts=[Text(content=answer)], finish_reason="stop")
        ]
    return trace_id, answer


def drive_pydantic_ai(provider_for: Callable[..., TracerProvider], base_url: str) -> tuple[str, str]:
    from pydantic_ai import Agent
    from pydantic_ai.capabilities import Instrumentation
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = provider_for(TracerProvider)
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=base_url, api_key="sk-fake"))
    agent = Agent(
        model,
        name="db_agent",
        instructions=SYSTEM_PROMPT,
        capabilities=[Instrumentation(settings=InstrumentationSettings(tracer_provider=provider))],
    )
    seen: list[str] = []

    @agent.tool_plain(name="run_sql")
    def sql_tool(query: str) -> dict[str, Any]:
        """Run one SQL statement against the production database."""
        seen.append(current_trace_id())
        return run_sql(query)

    result = agent.run_sync(USER_PROMPT)
    return seen[0], result.output


DRIVERS: dict[str, Callable[[Callable[..., TracerProvider], str], tuple[str, str]]] = {
    "openinference": drive_openinference,
    "openai-v2": drive_openai_v2,
    "pydantic-ai": drive_pydantic_ai,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument("--endpoint", required=True, help="OTLP/HTTP traces URL, or host:port for gRPC")
    parser.add_argument("--protocol", choices=("http", "grpc"), default="http")
    parser.add_argument("--compression", choices=("gzip",), default=None)
    parser.add_argument("--fake-openai", required=True, help="base URL of the fake OpenAI server")
    args = parser.parse_args(argv)

    exporter = RecordingExporter(make_exporter(args.protocol, args.endpoint, args.compression))
    providers: list[TracerProvider] = []

    def provider_for(cls: Callable[..., TracerProvider]) -> TracerProvider:
        provider = cls(resource=Resource.create({"service.name": f"real-{args.library}"}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        providers.append(provider)
        return provider

    trace_id, answer = DRIVERS[args.library](provider_for, args.fake_openai)
    (provider,) = providers
    flushed = provider.force_flush(30_000)
    provider.shutdown()
    failed = [r for r in exporter.results if r is not SpanExportResult.SUCCESS]
    report = {
        "trace_id": trace_id,
        "exported": exporter.exported,
        "answer": answer,
        "batches": len(exporter.results),
    }
    print(json.dumps(report))
    if not flushed or failed or not exporter.exported:
        print(f"export failed: flushed={flushed} results={exporter.results}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
