"""Our findings as OpenTelemetry log records: the `gen_ai.guardrail.security.finding` event.

A SIEM or another collector already understands the GenAI security conventions (status Development;
read from open-telemetry/semantic-conventions-genai `docs/gen-ai/gen-ai-security.md`, commit 3155df28),
so findings leave in that shape rather than in a format of our own:
- required: `gen_ai.guardrail.security.policy.id` (the rule id), `gen_ai.guardrail.security.risk.category`
  (OWASP LLM Top 10 names where one fits, `custom:<rule>` otherwise), `gen_ai.guardrail.target.type`;
- the verdict is what the workbench recommends (`deny` for high and critical, `warn` for medium, `audit`
  below), the action is always `audit`: the workbench observes after the fact and enforces nothing;
- `gen_ai.guardrail.security.risk.score` is the severity on a fixed scale (info 0, low 0.25, medium 0.5,
  high 0.75, critical 1.0), not a probability;
- `gen_ai.guardrail.security.external_finding_id` is a digest of what identifies the finding (trace,
  span, rule, evidence range), stable across rescans, so a receiver can deduplicate redeliveries;
- the record's trace and span ids are the offending step's, so the finding joins its span downstream.

The verdict reason must not carry user content, so it is the rule id; the title, explanation and quoted
evidence (hostile trace text) go in the body, which a receiver stores as data.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from workbench.model import Finding, Severity

EVENT_NAME = "gen_ai.guardrail.security.finding"
COMPONENT_NAME = "agent-audit-workbench"
SCOPE_NAME = "agent-audit-workbench.findings"

# OWASP LLM Top 10 (2025) names the conventions suggest, for the built-in rules that match one.
RISK_CATEGORIES: dict[str, str] = {
    "prompt-injection": "prompt_injection",
    "taint-chain": "prompt_injection",
    "sensitive-data": "sensitive_info_disclosure",
    "egress-allowlist": "sensitive_info_disclosure",
    "destructive-action": "excessive_agency",
    "unapproved-action": "excessive_agency",
    "privilege-escalation": "excessive_agency",
    "guardrail-bypass": "excessive_agency",
    "policy-override": "excessive_agency",
    "retry-loop": "unbounded_consumption",
    "reasoning-cost": "unbounded_consumption",
    "scratchpad-mismatch": "misinformation",
}
_VERDICT = {
    Severity.CRITICAL: "deny",
    Severity.HIGH: "deny",
    Severity.MEDIUM: "warn",
    Severity.LOW: "audit",
    Severity.INFO: "audit",
}
# OpenTelemetry log severity numbers: FATAL, ERROR, WARN, INFO2, INFO.
_SEVERITY_NUMBER = {
    Severity.CRITICAL: 21,
    Severity.HIGH: 17,
    Severity.MEDIUM: 13,
    Severity.LOW: 10,
    Severity.INFO: 9,
}
# Which way the judged content went, from the step field the evidence quotes.
_TARGET = {
    "tool_arguments": ("input", "tool_call"),
    "tool_name": ("input", "tool_call"),
    "tool_result": ("output", "tool_call"),
    "input_text": ("input", "llm"),
    "output_text": ("output", "llm"),
    "reasoning_text": ("output", "llm"),
}


def risk_category(rule_id: str) -> str:
    return RISK_CATEGORIES.get(rule_id, f"custom:{rule_id}")


def finding_id(f: Finding) -> str:
    """Stable across rescans and stores (the store's row id is not): what the finding is about."""
    key = json.dumps([f.trace_id, f.span_id, f.rule_id, f.evidence_field, f.evidence_start, f.evidence_end])
    return "workbench:" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _any(value: Any) -> dict[str, Any]:
    """An OTLP/JSON AnyValue."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _kvs(value)}}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [_any(v) for v in value]}}
    return {"stringValue": "" if value is None else str(value)}


def _kvs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any(v)} for k, v in values.items() if v is not None]


def attributes(f: Finding) -> dict[str, Any]:
    """The event's attributes (semantic-convention names first, then ours under `workbench.`)."""
    target, subtype = _TARGET.get(f.evidence_field or "", ("input", "action"))
    return {
        "gen_ai.guardrail.security.policy.id": f.rule_id,
        "gen_ai.guardrail.security.risk.category": risk_category(f.rule_id),
        "gen_ai.guardrail.target.type": target,
        "gen_ai.guardrail.target.subtype": subtype,
        "gen_ai.guardrail.verdict.type": _VERDICT[f.severity],
        "gen_ai.guardrail.verdict.reason": f.rule_id,
        "gen_ai.guardrail.action.type": "audit",
        "gen_ai.guardrail.component.name": COMPONENT_NAME,
        "gen_ai.guardrail.security.risk.score": f.severity.rank / 4,
        "gen_ai.guardrail.security.external_finding_id": finding_id(f),
        "workbench.finding.severity": str(f.severity),
        "workbench.finding.step_seq": f.step_seq,
    }


def body(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {"title": f.title, "explanation": f.explanation}
    if f.evidence_field is not None:
        out["evidence"] = {
            "field": f.evidence_field,
            "start": f.evidence_start,
            "end": f.evidence_end,
            "excerpt": f.evidence_excerpt,
        }
    if f.taint_chain:
        out["taint_chain"] = list(f.taint_chain)
    return out


def log_record(f: Finding, time_ns: int) -> dict[str, Any]:
    """One OTLP/JSON LogRecord (ids in hex, as OTLP/JSON writes them)."""
    return {
        "timeUnixNano": str(time_ns),
        "observedTimeUnixNano": str(time_ns),
        "severityNumber": _SEVERITY_NUMBER[f.severity],
        "severityText": str(f.severity).upper(),
        "eventName": EVENT_NAME,
        "traceId": _hex_id(f.trace_id, 32),
        "spanId": _hex_id(f.span_id, 16),
        "body": _any(body(f)),
        "attributes": _kvs(attributes(f)),
    }


def logs_data(findings: Iterable[Finding], time_ns: int, version: str = "") -> dict[str, Any]:
    """An OTLP/JSON LogsData (also the JSON form of ExportLogsServiceRequest) holding these findings."""
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": _kvs({"service.name": COMPONENT_NAME})},
                "scopeLogs": [
                    {
                        "scope": {"name": SCOPE_NAME, "version": version},
                        "logRecords": [log_record(f, time_ns) for f in findings],
                    }
                ],
            }
        ]
    }


def export_request_bytes(findings: Sequence[Finding], time_ns: int, version: str = "") -> bytes:
    """The same records as a protobuf ExportLogsServiceRequest, for OTLP/HTTP's default encoding."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    doc = logs_data(findings, time_ns, version)
    for rl in doc["resourceLogs"]:
        for sl in rl["scopeLogs"]:
            for rec in sl["logRecords"]:
                # Protobuf's JSON mapping wants bytes as base64; OTLP/JSON writes ids as hex.
                rec["traceId"] = base64.b64encode(bytes.fromhex(rec["traceId"])).decode()
                rec["spanId"] = base64.b64encode(bytes.fromhex(rec["spanId"])).decode()
    request = ExportLogsServiceRequest()
    json_format.ParseDict(doc, request)
    return request.SerializeToString()


def _hex_id(value: str, width: int) -> str:
    """A trace or span id as OTLP wants it: hex of the right width, or empty when ours is not one."""
    text = (value or "").lower()
    if len(text) == width and all(c in "0123456789abcdef" for c in text):
        return text
    return ""
