"""A bundle's log records (logs.pb, logs.jsonl; see bundle_logs.py) checked against the ledger, and handed
to the step re-derivation so that steps filled from GenAI events re-derive as ingest joined them.

Each record's bytes must hash to its ledger digest, and the digest must sit at its seq in the signed
checkpoint tree (RFC 6962 audit path). A record that fails is named by file and line and left out of the
join, so the steps it filled are reported too. The grouping by trace uses the line's trace id only to
find candidates: the join itself reads the trace and span ids from the sealed bytes.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

import orjson

from workbench.export.bundle_logs import LOGS_JSONL, LOGS_PB
from workbench.export.verify_base import Framing, VerifyResult, _Bundle, records
from workbench.export.verify_nodes import tree_of
from workbench.store import ledger

# {trace id: [(canonical bytes, truncation record)] in seq order}: what the deriver joins with.
EventsByTrace = dict[str, list[tuple[bytes, object]]]


def verify_logs(
    bundle: _Bundle, manifest: dict[str, Any], names: set[str], result: VerifyResult
) -> tuple[EventsByTrace, set[str]]:
    """Check every log record the bundle carries; return the good ones by trace (empty when none), and the
    traces with a record the exporter withheld (redaction), whose joined steps cannot be re-derived."""
    facts = manifest.get("logs") or {}
    present = [n for n in (LOGS_PB, LOGS_JSONL) if n in names]
    if not present:
        return {}, set()  # a file the manifest lists but the bundle lacks was named by the file check
    if len(present) == 1:
        missing = LOGS_JSONL if present == [LOGS_PB] else LOGS_PB
        result.add(missing, f"missing: {present[0]} comes with it")
        return {}, set()
    checkpoint = manifest["ledger"].get("checkpoint", {})  # none in a lake bundle: a tree per node
    size, root = int(checkpoint.get("tree_size", 0)), bytes.fromhex(checkpoint.get("merkle_root", ""))
    out: EventsByTrace = {}
    withheld: set[str] = set()
    lines = previous = good = 0
    try:
        pairs = zip_longest(bundle.lines(LOGS_JSONL), records(bundle.chunks(LOGS_PB)))
        for line_no, (raw, rec) in enumerate(pairs, 1):
            if raw is None:
                result.add(LOGS_PB, f"record {line_no} has no line in {LOGS_JSONL} (inserted record)")
                continue
            lines += 1
            if rec is None:
                result.add(
                    LOGS_JSONL, f"no record {line_no} in {LOGS_PB} for this line (deleted record)", line_no
                )
                continue
            try:
                entry = orjson.loads(raw)
                seq = int(entry["seq"])
                digest = bytes.fromhex(entry["digest"])
                proof = [bytes.fromhex(p) for p in entry["proof"]]
                index, tree_size, tree_root, node = tree_of(manifest, entry, "spans", (size, root))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                result.add(LOGS_JSONL, f"not a log record's proof line: {type(exc).__name__}: {exc}", line_no)
                continue
            span_id = entry.get("span_id")
            if seq <= previous:
                result.add(
                    LOGS_JSONL, f"seq {seq} after seq {previous}: records out of order", line_no, span_id
                )
                continue
            previous = seq
            if entry.get("withheld") is True and rec == b"":
                if not ledger.verify_inclusion(index, tree_size, digest, proof, tree_root):
                    result.add(
                        LOGS_JSONL,
                        f"{node}seq {seq}: the audit path does not lead to the checkpoint root",
                        line_no,
                    )
                withheld.add(str(entry.get("trace_id")))
                continue
            if ledger.digest(rec) != digest:
                result.add(
                    LOGS_PB,
                    f"{node}record {line_no} (seq {seq}) does not hash to its ledger digest: "
                    "log record altered",
                    line_no,
                    span_id,
                )
                continue
            if not ledger.verify_inclusion(index, tree_size, digest, proof, tree_root):
                result.add(
                    LOGS_JSONL,
                    f"{node}seq {seq}: the audit path does not lead to the checkpoint root (a record not in "
                    "the ledger, or an altered proof)",
                    line_no,
                    span_id,
                )
                continue
            good += 1
            out.setdefault(str(entry.get("trace_id")), []).append((rec, entry.get("truncations")))
    except Framing as exc:
        result.add(LOGS_PB, f"cannot be read as length-delimited records: {exc}")
    if facts.get("records") is not None and int(facts["records"]) != lines:
        result.add("manifest.json", f"counts {facts['records']} log records, {LOGS_JSONL} has {lines}")
    result.checked["logs"] = good
    return out, withheld
