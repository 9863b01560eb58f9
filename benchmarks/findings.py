"""Findings scan throughput on one long trace, against the ingest of the same trace measured in the run.

The long trace of `sample_traces.long_trace` (SDK-shaped steps: LLM calls with reasoning, tool calls,
memory reads...) is ingested in-process through the real pipeline into a fresh DuckDB file (the peer),
then scanned whole by the default rules: reading its steps, evaluating every rule, replacing its findings.
A trace is always rescanned whole (taint chains span steps), so this is the cost a commit to a trace of
this size pays. The section goes under "Findings scan" in benchmarks/RESULTS.md (benchmarks/report.py).

    python benchmarks/findings.py [--steps 20000] [--no-write] [--results FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from collectors import decode  # noqa: E402
from collectors.pipeline import IngestPipeline  # noqa: E402
from sample_traces.long_trace import build  # noqa: E402
from workbench.policies.engine import build_engine, scan_traces  # noqa: E402
from workbench.store import queries  # noqa: E402
from workbench.store.connection import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20_000)
    report.add_output_args(ap)
    args = ap.parse_args()
    run = report.Run()

    records = decode.to_records(build(args.steps, seed=1), 1 << 20).records
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "w.duckdb") as store:
        pipeline = IngestPipeline(store)
        t0 = time.perf_counter()
        for k in range(0, len(records), 5_000):
            pipeline.ingest(records[k : k + 5_000], "bench")
        pipeline.close()
        ingest_s = time.perf_counter() - t0
        trace_id = records[0].trace_id
        engine = build_engine()

        t0 = time.perf_counter()
        steps = queries.trace_steps(store, trace_id)
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        found = engine.evaluate(trace_id, steps)
        rules_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scanned = scan_traces(store, engine, [trace_id])
        scan_s = time.perf_counter() - t0

    n = len(records)
    by_rule: dict[str, int] = {}
    for f in found:
        by_rule[f.rule_id] = by_rule.get(f.rule_id, 0) + 1
    body = "\n".join(
        [
            f"Trace from `sample_traces.long_trace --steps {n} --seed 1`; default rules; "
            f"{scanned.findings:,} findings ({', '.join(f'{k} {v}' for k, v in sorted(by_rule.items()))}).",
            "",
            "| measure | value | ratio |",
            "|---|---|---|",
            f"| peer: in-process ingest of the same trace | {n / ingest_s:,.0f} steps/s "
            f"({ingest_s:.2f} s) | 1.00 |",
            f"| whole-trace scan (read + rules + replace) | {n / scan_s:,.0f} steps/s ({scan_s:.2f} s) "
            f"| {ingest_s / scan_s:.2f}x ingest speed |",
            f"| separately: read the steps | {read_s:.2f} s | |",
            f"| separately: evaluate the rules (first run) | {rules_s:.2f} s | |",
            "",
            "A commit to a trace rescans it whole (taint chains span steps): at this rate a live trace of "
            "this size costs the scanner thread about this long per debounced batch of commits.",
            "",
        ]
    )
    report.publish(args, "findings", run.section(f"Findings scan of one {n:,}-step trace", body))


if __name__ == "__main__":
    main()
