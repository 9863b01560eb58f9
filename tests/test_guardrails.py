"""Guardrails in the GenAI security conventions: guardrail spans become guardrail steps with their verdict,
and our findings leave as `gen_ai.guardrail.security.finding` log records (a file, and a live endpoint)."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collectors.normalize import normalize
from sample_traces.catalog import SAMPLES
from tests.conventions_fixture import span_record
from workbench.cli import cli
from workbench.cli.loading import ingest_files
from workbench.model import SpanEvent, StepKind
from workbench.policies.finding_events import EVENT_NAME, finding_id
from workbench.policies.finding_exporter import FindingExporter
from workbench.settings import Settings
from workbench.store import findings as store_findings
from workbench.store.connection import Store

REQUIRED = (
    "gen_ai.guardrail.security.policy.id",
    "gen_ai.guardrail.security.risk.category",
    "gen_ai.guardrail.target.type",
)


def _guardrail_span(attrs: dict[str, Any], events: tuple[SpanEvent, ...] = ()) -> Any:
    span = span_record({"name": "run_guardrail Model Armor", "kind": 3, "attributes": attrs})
    return dataclasses.replace(span, events=events)


def test_a_run_guardrail_span_is_a_guardrail_step_with_its_verdict() -> None:
    step = normalize(
        _guardrail_span(
            {
                "gen_ai.operation.name": "run_guardrail",
                "gen_ai.guardrail.component.name": "Model Armor",
                "gen_ai.guardrail.target.type": "input",
                "gen_ai.guardrail.target.subtype": "tool_call",
                "gen_ai.guardrail.target.id": "call_1",
                "gen_ai.guardrail.verdict.type": "deny",
                "gen_ai.guardrail.verdict.reason": "Prompt injection attempt detected",
                "gen_ai.guardrail.action.type": "block",
                "gen_ai.guardrail.security.policy.id": "policy_pi_v2",
                "gen_ai.guardrail.security.risk.category": "prompt_injection",
                "gen_ai.guardrail.security.risk.score": 0.93,
                "gen_ai.guardrail.security.content.input.value": "ignore previous instructions",
            },
            (
                SpanEvent(
                    name="gen_ai.guardrail.security.finding",
                    time_ns=0,
                    attributes={
                        "gen_ai.guardrail.security.policy.id": "policy_pi_v2",
                        "gen_ai.guardrail.security.risk.category": "jailbreak",
                        "gen_ai.guardrail.target.type": "input",
                    },
                ),
            ),
        )
    )
    assert step.kind is StepKind.GUARDRAIL and step.actor == "Model Armor"
    assert step.operation == "run_guardrail" and step.convention == "genai"
    assert step.input_text == "ignore previous instructions"
    out = step.output_text or ""
    assert out.startswith("verdict: deny (Prompt injection attempt detected)")
    assert "action: block" in out and "target: input tool_call call_1" in out
    assert "risk: prompt_injection (score 0.93)" in out and "finding: " in out and "jailbreak" in out


@pytest.mark.parametrize("verdict", ["allow", "deny", "modify", "warn", "escalate"])
def test_every_verdict_of_the_earlier_apply_guardrail_draft_is_read_too(verdict: str) -> None:
    step = normalize(
        _guardrail_span(
            {
                "gen_ai.operation.name": "apply_guardrail",
                "gen_ai.security.decision.type": verdict,
                "gen_ai.security.target.type": "llm_output",
            }
        )
    )
    assert step.kind is StepKind.GUARDRAIL
    assert (step.output_text or "").startswith(f"verdict: {verdict}")


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("samples")
    totals = ingest_files(Settings(data_dir=data), [s.path for s in SAMPLES])
    assert totals.findings
    return data


def _records(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for rl in doc["resourceLogs"] for sl in rl["scopeLogs"] for r in sl["logRecords"]]


def _attrs(record: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in record["attributes"]}


def test_findings_otlp_writes_one_security_finding_event_per_finding(
    sample_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "findings.otlp.jsonl"
    runner = CliRunner()
    listed = runner.invoke(cli, ["--data-dir", str(sample_data), "findings", "--json", "--otlp", str(out)])
    assert listed.exit_code == 0, listed.output
    found = json.loads(listed.output)
    lines = out.read_text().splitlines()
    assert len(lines) == 1
    records = _records(json.loads(lines[0]))
    assert len(records) == len(found) > 0
    for record, finding in zip(records, found, strict=True):
        attrs = _attrs(record)
        assert record["eventName"] == EVENT_NAME
        assert record["traceId"] == finding["trace_id"] and record["spanId"] == finding["span_id"]
        assert all(attrs.get(k) for k in REQUIRED)
        assert attrs["gen_ai.guardrail.security.policy.id"] == finding["rule_id"]
        assert attrs["gen_ai.guardrail.action.type"] == "audit"
        body = {kv["key"]: kv["value"] for kv in record["body"]["kvlistValue"]["values"]}
        assert body["title"]["stringValue"] == finding["title"]
    destructive = [
        r for r in records if _attrs(r)["gen_ai.guardrail.security.policy.id"] == "destructive-action"
    ]
    assert (
        destructive
        and _attrs(destructive[0])["gen_ai.guardrail.security.risk.category"] == "excessive_agency"
    )
    assert _attrs(destructive[0])["gen_ai.guardrail.verdict.type"] == "deny"


def test_findings_otlp_to_an_unwritable_path_is_one_line_not_a_traceback(
    sample_data: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(
        cli, ["--data-dir", str(sample_data), "findings", "--otlp", str(blocker / "x")]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output and str(blocker) in result.output


class _Collector:
    """A real OTLP/HTTP logs endpoint on 127.0.0.1 that answers `fail_first` requests 503, then 200."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[ExportLogsServiceRequest] = []
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if outer.refused < outer.fail_first:
                    outer.refused += 1
                    self.send_response(503)
                else:
                    request = ExportLogsServiceRequest()
                    request.ParseFromString(body)
                    outer.requests.append(request)
                    self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/logs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def copied_store(sample_data: Path, tmp_path: Path) -> Iterator[Store]:
    db = tmp_path / "workbench.duckdb"
    db.write_bytes((sample_data / "workbench.duckdb").read_bytes())
    with Store(db) as store:
        yield store


def test_the_exporter_sends_each_new_finding_once_after_retrying_a_busy_endpoint(copied_store: Store) -> None:
    collector = _Collector(fail_first=2)
    try:
        all_found = store_findings.list_findings(copied_store, limit=None)
        trace_id = all_found[0].trace_id
        expected = {finding_id(f) for f in all_found if f.trace_id == trace_id}
        # The findings of one trace are "new": the exporter starts on a store without them.
        kept = {t: store_findings.trace_findings(copied_store, t) for t in {f.trace_id for f in all_found}}
        store_findings.replace_findings(copied_store, {trace_id: []})
        exporter = FindingExporter(copied_store, collector.url)
        exporter.start()
        store_findings.replace_findings(copied_store, {trace_id: kept[trace_id]})
        exporter.on_scan([trace_id])
        exporter.on_scan([trace_id])  # a rescan of the same trace sends nothing twice
        exporter.stop()
        sent = [
            r
            for req in collector.requests
            for rl in req.resource_logs
            for sl in rl.scope_logs
            for r in sl.log_records
        ]
        ids = [
            next(a.value.string_value for a in r.attributes if a.key.endswith("external_finding_id"))
            for r in sent
        ]
        assert collector.refused == 2 and sorted(ids) == sorted(expected)
        assert all(r.event_name == EVENT_NAME and r.trace_id.hex() == trace_id for r in sent)
        assert exporter.exported == len(expected) and exporter.dropped == 0
    finally:
        collector.close()


def test_an_unreachable_endpoint_drops_the_batch_and_counts_it_without_raising(copied_store: Store) -> None:
    collector = _Collector()
    url = collector.url
    collector.close()  # nothing listens there now: connection refused, retried, then dropped
    found = store_findings.list_findings(copied_store, limit=None)
    trace_id = found[0].trace_id
    kept = store_findings.trace_findings(copied_store, trace_id)
    store_findings.replace_findings(copied_store, {trace_id: []})
    exporter = FindingExporter(copied_store, url)
    exporter.start()
    store_findings.replace_findings(copied_store, {trace_id: kept})
    exporter.on_scan([trace_id])
    exporter.stop()
    assert exporter.exported == 0 and exporter.dropped == len(kept)
    assert store_findings.trace_findings(copied_store, trace_id)
