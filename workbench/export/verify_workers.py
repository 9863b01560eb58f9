"""Checking unredacted span lines in worker processes: the per-line check is independent of every
other line, so large bundles spread it over processes with a bounded number of batches in flight.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import orjson

import workbench.export.otlp_json as otlp_json
from workbench.export.verify_base import VerifyResult
from workbench.store import ledger

_BATCH = 2_000
ProblemTuple = tuple[str, str, int, str]


def _check_plain(line_no: int, doc: Any, digest_hex: str, span_id: str, trace_id: str) -> list[ProblemTuple]:
    """An unredacted span line against its proofs record: ids, and the ledger digest of its protobuf."""
    if isinstance(doc, Exception):
        return [("spans.jsonl", f"not JSON: {doc}", line_no, span_id)]
    out: list[ProblemTuple] = []
    try:
        span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        if span.get("spanId") != span_id:
            out.append(
                (
                    "spans.jsonl",
                    f"span id {span.get('spanId')} is not {span_id} from proofs.jsonl",
                    line_no,
                    span_id,
                )
            )
        if span.get("traceId") != trace_id:
            out.append(
                (
                    "spans.jsonl",
                    f"trace id {span.get('traceId')} is not {trace_id} from proofs.jsonl",
                    line_no,
                    span_id,
                )
            )
    except (KeyError, IndexError, TypeError, AttributeError):
        pass  # canonical_from_json below says what is wrong with the shape
    try:
        if ledger.digest(otlp_json.canonical_from_json(doc)).hex() != digest_hex:
            out.append(
                (
                    "spans.jsonl",
                    "span differs from what was ingested (its SHA-256 is not the ledger digest)",
                    line_no,
                    span_id,
                )
            )
    except otlp_json.OtlpJsonError as exc:
        out.append(("spans.jsonl", str(exc), line_no, span_id))
    return out


def _check_batch(batch: list[tuple[int, bytes, str, str, str]]) -> list[ProblemTuple]:
    """Worker-process side of _Workers: parse, re-encode and hash a batch of unredacted lines."""
    out: list[ProblemTuple] = []
    for line_no, raw, digest_hex, span_id, trace_id in batch:
        try:
            doc: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            doc = exc
        out.extend(_check_plain(line_no, doc, digest_hex, span_id, trace_id))
    return out


def _quick_span_id(raw: bytes) -> str | None:
    """The span's own id without parsing the line: the first `"spanId":"` key (a quote inside a JSON
    string is escaped, so string content cannot match). The worker re-checks it on the parsed line."""
    at = raw.find(b'"spanId":"')
    return raw[at + 10 : at + 26].decode("ascii", "replace") if at >= 0 else None


class _Workers:
    """A process pool with a bounded number of batches in flight (memory stays bounded)."""

    def __init__(self, jobs: int, result: VerifyResult) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.result = result
        self.limit = 2 * jobs
        self.pending: deque[Any] = deque()
        self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"))

    def submit(self, batch: list[tuple[int, bytes, str, str, str]]) -> None:
        self.pending.append(self.pool.submit(_check_batch, batch))
        while len(self.pending) > self.limit:
            self._collect()

    def _collect(self) -> None:
        for problem in self.pending.popleft().result():
            self.result.add(*problem)

    def finish(self) -> None:
        try:
            while self.pending:
                self._collect()
        finally:
            self.pool.shutdown()
