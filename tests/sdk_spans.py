"""Real OpenTelemetry SDK spans for tests: a small agent run recorded by a real TracerProvider."""

from __future__ import annotations

import json

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode


def agent_run_request(tools: int = 3, service: str = "ops-agent") -> ExportTraceServiceRequest:
    """One trace: an agent span, a chat span per tool call, and the tool spans (GenAI conventions)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.sdk_spans", "1.0")
    with tracer.start_as_current_span("invoke_agent cleaner") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.agent.name", "cleaner")
        for i in range(tools):
            with tracer.start_as_current_span("chat gpt-test") as chat:
                chat.set_attribute("gen_ai.operation.name", "chat")
                chat.set_attribute("gen_ai.request.model", "gpt-test")
                chat.set_attribute("gen_ai.usage.input_tokens", 100 + i)
                chat.set_attribute("gen_ai.usage.output_tokens", 10 + i)
                chat.set_attribute(
                    "gen_ai.output.messages",
                    json.dumps(
                        [{"role": "assistant", "parts": [{"type": "reasoning", "content": f"think {i}"}]}]
                    ),
                )
            with tracer.start_as_current_span(f"execute_tool run_sql_{i}") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.name", "run_sql")
                tool.set_attribute("gen_ai.tool.call.arguments", json.dumps({"query": f"SELECT {i}"}))
                tool.add_event("note", {"i": i})
                if i == tools - 1:
                    tool.set_status(Status(StatusCode.ERROR, "permission denied"))
    provider.shutdown()
    return encode_spans(memory.get_finished_spans())
