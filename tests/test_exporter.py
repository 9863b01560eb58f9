"""DuckDBSpanExporter is a real SpanExporter: spans from a real TracerProvider land as steps."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collectors.exporter import DuckDBSpanExporter
from collectors.pipeline import IngestPipeline
from workbench.model import StepKind
from workbench.store import queries
from workbench.store.connection import Store


def test_exporter_writes_spans_steps_and_ledger(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    exporter = DuckDBSpanExporter(db_path=db)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("invoke_agent triage") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.agent.name", "triage")
        with tracer.start_as_current_span("execute_tool lookup") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "lookup")
            tool.set_attribute("gen_ai.tool.call.arguments", '{"customer": 42}')
            tool.set_attribute("gen_ai.tool.call.result", '{"plan": "gold"}')
    provider.shutdown()  # flushes, then shuts the exporter down (closing its own store)

    with Store(db, read_only=True) as store:
        assert queries.counts(store)["ledger"] == 2
        trace = queries.list_traces(store)[0]
        steps = [s.step for s in queries.trace_steps(store, trace.trace_id)]
    assert [s.kind for s in steps] == [StepKind.AGENT, StepKind.TOOL]
    assert steps[0].actor == "triage"
    assert steps[1].tool_name == "lookup" and steps[1].tool_result == '{"plan": "gold"}'


def test_a_failing_store_never_raises_into_the_agent(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.duckdb")
    pipeline = IngestPipeline(store)
    exporter = DuckDBSpanExporter(pipeline)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store.close()  # the database goes away under the agent's feet
    with provider.get_tracer("t").start_as_current_span("still running"):
        pass  # the span ends here and is exported: no exception may reach this code
    assert len(memory.get_finished_spans()) == 1
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.FAILURE
    pipeline.close()
