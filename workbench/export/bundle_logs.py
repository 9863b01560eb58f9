"""The GenAI log records a bundle carries so that `workbench verify` can re-derive the steps they filled.

In event-only content modes a step's messages, tool arguments and results come from OTLP log records
joined to its span (collectors/events.py); a bundle with only the spans could not re-derive such a step.
So a bundle carries every log record in a span of its traces (what ingest joined them with), sealed as
spans are (the records share the span ledger, one seq each):

    logs.pb      record i: the canonical protobuf bytes of log record i (a ResourceLogs holding only it),
                 length-delimited like spans.pb; the ledger digest is SHA-256 of exactly these bytes
    logs.jsonl   line i: seq, trace id, span id, ledger digest, the record's truncation record (the
                 attribute limit the join decodes it with) and its RFC 6962 audit path to the signed
                 checkpoint root (tree size N): a record may be sealed after the last exported span

With redaction on, a record in which the redactor finds anything to mask is withheld (its bytes would
reveal what the step rows mask): an empty record in logs.pb and `"withheld": true` on its line, which
keeps its digest and proof; verify then says the joined steps of that trace could not be re-derived
instead of calling them altered.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from workbench.export.bundle_files import _HashingWriter
from workbench.export.bundle_nodes import LakeTrees
from workbench.export.redact import Redactor
from workbench.store import export_queries as q
from workbench.store import ledger
from workbench.store.connection import Store

LOGS_PB = "logs.pb"
LOGS_JSONL = "logs.jsonl"


def write_logs(
    store: Store,
    staging: Path,
    trace_ids: Sequence[str],
    levels_n: list[list[bytes]],
    digests: list[bytes],
    redactor: Redactor,
    trees: LakeTrees | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Write logs.pb and logs.jsonl for these traces; returns (their file entries, the manifest's "logs"
    facts). Nothing is written when the traces have no log records in a span."""
    found = q.trace_events(store, trace_ids)
    facts: dict[str, Any] = {
        "records": len(found),
        "tree": "the span ledger's (logs share its seqs); proofs lead to the checkpoint root",
        "withheld": 0,
    }
    if not found:
        return {}, facts
    pb_w = _HashingWriter(staging / LOGS_PB)
    lines_w = _HashingWriter(staging / LOGS_JSONL)
    for line_no, rec in enumerate(found, 1):
        i = rec.seq - 1
        sealed = trees.digest(rec.seq) if trees is not None else digests[i]
        if ledger.digest(rec.canonical) != sealed:
            # export_bundle ran the ledger check first; a mismatch here means a write in between
            raise ValueError(f"log record at seq {rec.seq} no longer matches its ledger digest")
        withheld = redactor.enabled and any(redactor.matches(text) for text in _strings(rec.canonical))
        facts["withheld"] += withheld
        pb_w.record(b"" if withheld else rec.canonical)
        lines_w.line(
            orjson.dumps(
                {
                    "line": line_no,
                    "withheld": withheld,
                    "seq": rec.seq,
                    "trace_id": rec.trace_id,
                    "span_id": rec.span_id,
                    "truncations": rec.truncations,
                    **(
                        _node_link(trees.span(rec.seq))
                        if trees is not None
                        else {
                            "digest": digests[i].hex(),
                            "proof": [p.hex() for p in ledger.inclusion_path(levels_n, i)],
                        }
                    ),
                }
            )
        )
    return {LOGS_PB: pb_w.close(), LOGS_JSONL: lines_w.close()}, facts


def _node_link(link: dict[str, Any]) -> dict[str, Any]:
    """A lake record's node, node-local index, digest and audit path (its chain link is not shipped)."""
    return {k: link[k] for k in ("node", "index", "digest", "proof")}


def _strings(canonical: bytes) -> Iterator[str]:
    """Every string of a record (keys, values, body; JSON inside them stays one string, as the redactor
    reads step text). Decoded, not scanned as raw bytes: the next field's tag byte would glue onto a value
    and hide it from the detectors (`bob@example.com` followed by tag 0x32 reads `...example.com2`)."""
    from google.protobuf import json_format
    from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

    message = ResourceLogs()
    message.ParseFromString(canonical)
    stack: list[Any] = [json_format.MessageToDict(message)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
