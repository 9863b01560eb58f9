"""Re-deriving the steps of an event-only trace (content in GenAI log records) against the floor: the same
spans re-derived without their records, measured in the same run.

One trace of n chat spans, each with one `gen_ai.client.inference.operation.details` record holding its
messages (the shape otel-openai-v2 and Google ADK send in EVENT_ONLY mode). Every step is derived from
canonical bytes the way `workbench verify` re-derives a bundle and the writer re-joins a trace
(`collectors.normalize.step_from_canonical`, with `events=` for the join); the floor is the same call
without events. The ratio at two sizes shows whether the join stays linear in the trace (it was n * n
before the trace's events were indexed once). The section goes under "GenAI event join" in
benchmarks/RESULTS.md (benchmarks/report.py).

    python benchmarks/event_join.py [--sizes 500,5000] [--no-write] [--results FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from collectors import decode, decode_logs  # noqa: E402
from collectors.normalize import step_from_canonical  # noqa: E402

TRACE = "5f1e0c2a9b8d7e6f5a4b3c2d1e0f9a8b"


def _attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def trace(n: int) -> tuple[list[bytes], dict[str, list[tuple[bytes, object]]]]:
    """The spans' canonical bytes and the records by trace, as ingest would store them."""
    spans, records = [], []
    for i in range(n):
        span_id = f"{i + 1:016x}"
        spans.append(
            {
                "traceId": TRACE,
                "spanId": span_id,
                "name": "chat gpt-x",
                "kind": 3,
                "startTimeUnixNano": str(10 * i + 1),
                "endTimeUnixNano": str(10 * i + 9),
                "attributes": [
                    _attr("gen_ai.operation.name", "chat"),
                    _attr("gen_ai.request.model", "gpt-x"),
                ],
            }
        )
        said = [{"role": "user", "parts": [{"type": "text", "content": f"question {i}"}]}]
        answer = [{"role": "assistant", "parts": [{"type": "text", "content": f"answer {i}"}]}]
        records.append(
            {
                "traceId": TRACE,
                "spanId": span_id,
                "timeUnixNano": str(10 * i + 5),
                "eventName": "gen_ai.client.inference.operation.details",
                "attributes": [
                    _attr("gen_ai.input.messages", json.dumps(said)),
                    _attr("gen_ai.output.messages", json.dumps(answer)),
                ],
            }
        )
    resource = {"attributes": [_attr("service.name", "bench-agent")]}
    traces = {
        "resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "b"}, "spans": spans}]}]
    }
    logs = {
        "resourceLogs": [
            {"resource": resource, "scopeLogs": [{"scope": {"name": "b"}, "logRecords": records}]}
        ]
    }
    span_req, _ = decode.parse_json(json.dumps(traces))
    log_req, _ = decode_logs.parse_json(json.dumps(logs))
    canon = [r.canonical for r in decode.to_records(span_req, 1 << 20).records]
    events = [(r.canonical, "[]") for r in decode_logs.to_records(log_req, 1 << 20).records]
    return canon, {TRACE: events}


def _seconds(spans: list[bytes], events: dict[str, list[tuple[bytes, object]]] | None) -> float:
    # Fresh lists: the join decodes a trace's records once per sequence it is given, so a repeat with the
    # same list would measure a warm cache, not what a verify or a re-join pays.
    events = {t: list(e) for t, e in events.items()} if events is not None else None
    started = time.perf_counter()
    steps = [step_from_canonical(c, sys.maxsize, events=events) for c in spans]
    took = time.perf_counter() - started
    if events is not None:
        assert all(s.input_text and s.event_fields for s in steps), "the join filled nothing"
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="500,5000", help="trace sizes (spans, each with one record)")
    report.add_output_args(ap)
    args = ap.parse_args()
    run = report.Run()
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        spans, events = trace(n)
        floor = min(_seconds(spans, None) for _ in range(3))
        joined = min(_seconds(spans, events) for _ in range(3))
        rows.append((n, floor, joined))
        print(
            f"n={n}: floor {floor:.3f} s, joined {joined:.3f} s, ratio {joined / floor:.2f}", file=sys.stderr
        )
    table = (
        "| spans (+ as many records) | floor: derive without events | derive joined with events | ratio |\n"
    )
    table += "|---:|---:|---:|---:|\n"
    table += "".join(
        f"| {n:,} | {f:.3f} s ({n / f:,.0f} steps/s) | {j:.3f} s ({n / j:,.0f} steps/s) | {j / f:.2f}x |\n"
        for n, f, j in rows
    )
    body = (
        "Every step of one event-only trace derived from canonical bytes as bundle verify and the writer's "
        "re-join do (`step_from_canonical(events=...)`), against the same spans derived alone, best of 3. "
        "A ratio that stays flat as the trace grows means the join is linear in the trace.\n\n" + table
    )
    report.publish(args, "event-join", run.section("GenAI event join: derive with events vs without", body))


if __name__ == "__main__":
    main()
