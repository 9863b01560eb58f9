"""Which file and field of a bundle answers which record-keeping requirement.

Why a table in code: the same map goes into the signed manifest and the readable report, so an auditor
who reads either sees the same claim, and a test can check that every file it names is in the bundle.
"""

from __future__ import annotations

from typing import Any

FIELD_MAP: list[dict[str, Any]] = [
    {
        "framework": "EU AI Act",
        "clause": "Art. 12(1)",
        "requirement": "Automatic recording of events (logs) over the lifetime of the high-risk AI system.",
        "answered_by": [
            {
                "file": "spans.jsonl",
                "fields": "every OTLP span: traceId, spanId, name, times, attributes, events",
            },
            {
                "file": "proofs.jsonl",
                "fields": "seq, digest, chain, proof: each record is in the tamper-evident ledger",
            },
        ],
    },
    {
        "framework": "EU AI Act",
        "clause": "Art. 12(2)(a)",
        "requirement": "Logs enable identifying situations that may present a risk or lead to a "
        "substantial modification.",
        "answered_by": [
            {
                "file": "findings.jsonl",
                "fields": "rule_id, severity, title, explanation, evidence_excerpt, taint_chain",
            },
            {
                "file": "probe_results.jsonl",
                "fields": "analysis, summary (probe score, threshold, fired), data.score_relative, "
                "data.token_relative, data.provenance (model, weights hash, quantization; sealed)",
            },
        ],
    },
    {
        "framework": "EU AI Act",
        "clause": "Art. 12(2)(b)-(c), Art. 26(5)",
        "requirement": "Logs support post-market monitoring and the deployer's monitoring of operation.",
        "answered_by": [
            {
                "file": "steps.parquet",
                "fields": "kind, actor, model, tool_name, tool_arguments, is_error, error, tokens_*, "
                "cost_usd",
            },
            {"file": "annotations.jsonl", "fields": "author, text, created_at (human oversight notes)"},
        ],
    },
    {
        "framework": "EU AI Act",
        "clause": "Art. 19(1), Art. 26(6)",
        "requirement": "Providers and deployers keep the automatically generated logs for at least six "
        "months.",
        "answered_by": [
            {
                "file": "manifest.json",
                "fields": "time_range, created_at, ledger.checkpoint (tree_size, merkle_root, chain_head)",
            },
            {
                "file": "manifest.sig",
                "fields": "Ed25519 signature over manifest.json: the retained copy is the one exported",
            },
        ],
    },
    {
        "framework": "ISO/IEC 42001",
        "clause": "Annex A, A.6.2.8",
        "requirement": "AI system recording of event logs: determine at which phases logging is enabled "
        "and keep the logs.",
        "answered_by": [
            {"file": "spans.jsonl", "fields": "resource (service.name, deployment), scope, attributes"},
            {"file": "manifest.json", "fields": "system, deployment, counts, files[*].sha256"},
        ],
    },
    {
        "framework": "SOC 2",
        "clause": "CC7.2",
        "requirement": "Monitor system components for anomalies indicative of malicious acts, errors or "
        "failures.",
        "answered_by": [
            {"file": "findings.jsonl", "fields": "rule_id, severity, evidence_field, evidence_start/end"},
            {"file": "steps.parquet", "fields": "is_error, error"},
        ],
    },
    {
        "framework": "SOC 2",
        "clause": "CC7.3-CC7.4",
        "requirement": "Evaluate security events and respond to identified incidents.",
        "answered_by": [
            {"file": "annotations.jsonl", "fields": "investigators' notes per step"},
            {
                "file": "probe_runs.jsonl",
                "fields": "analyses, status, provenance (model id, weights hash, what the weights are)",
            },
            {
                "file": "report.html",
                "fields": "timeline, findings with evidence, probe evidence, how to verify",
            },
        ],
    },
    {
        "framework": "Integrity (all of the above)",
        "clause": "RFC 6962 / RFC 9162",
        "requirement": "Records are complete and unaltered since ingest; redactions are accounted for.",
        "answered_by": [
            {
                "file": "proofs.jsonl",
                "fields": "inclusion proof of each span against the signed covered-range root",
            },
            {
                "file": "manifest.json",
                "fields": "ledger.consistency: covered range is a prefix of the signed checkpoint",
            },
            {
                "file": "redactions.jsonl",
                "fields": "rule, location, character ranges, hmac_sha256 of each masked value",
            },
        ],
    },
]
