"""Replay timings for 1k, 10k and 100k-step traces: the queries, the page (AppTest) and a real browser.

For each size one trace from `sample_traces.long_trace` is ingested into its own database (kept under
benchmarks/work/replay/ and reused by later runs). Measured on it, in one run:

- queries: what the replay page reads to open the trace (step count, replay order, the step, its raw
  extras, the binned timeline, the tree index, findings) and what it reads on a step change (the
  step, extras, tree view, findings, probe results);
- the peer, in the same run: loading every step of the trace at once, the way tools that "load the
  first 1,000 spans" or everything do (`queries.trace_steps`);
- the page under `streamlit.testing.v1.AppTest` (first run, and a Next click);
- in headless Chromium against a real `workbench serve` on that database: first paint of the deep link
  (navigation until "Step N of M" is on screen) and a step change (Next click until the next step is on
  screen). Medians of several tries.

Targets (issue #4): first paint of the 100k trace under 1.5 s, a step change under 200 ms.

    python benchmarks/replay.py [--sizes 1000,10000,100000] [--tries 5] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sample_traces import long_trace  # noqa: E402
from workbench.ingest import ingest_files  # noqa: E402
from workbench.settings import Settings  # noqa: E402
from workbench.store import explore, probe_reads, queries  # noqa: E402
from workbench.store.connection import Store  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
NEXT_CLICK = "() => [...document.querySelectorAll('button')].find(b => b.innerText.includes('Next')).click()"
WORK = ROOT / "benchmarks" / "work" / "replay"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def prepare(steps: int) -> Path:
    """A data directory holding one `steps`-step trace (built once, then reused)."""
    data = WORK / f"steps-{steps}"
    marker = data / "ready"
    if marker.exists():
        return data
    data.mkdir(parents=True, exist_ok=True)
    pb = data / "trace.pb"
    long_trace.write(pb, steps=steps, seed=1)
    t0 = time.perf_counter()
    totals = ingest_files(Settings(data_dir=data), [pb])
    print(f"  ingested {totals.accepted:,} steps in {time.perf_counter() - t0:.1f} s", flush=True)
    pb.unlink()
    marker.write_text("ok")
    return data


def best_ms(fn: Callable[[], Any], tries: int) -> float:
    times = []
    for _ in range(tries):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def measure_queries(store: Store, tries: int) -> dict[str, float]:
    trace = explore.search_traces(store, explore.TraceFilter(), limit=1)[0].trace_id
    out: dict[str, float] = {}

    def open_trace() -> None:
        n = explore.step_count(store, trace)
        order = explore.step_order(store, trace)
        seq = int(order[n // 2])
        explore.steps_by_seq(store, [seq])
        explore.step_extras(store, seq)
        explore.timeline(store, trace)
        explore.TreeIndex(store, trace).view(store, seq)
        explore.trace_findings(store, trace)

    out["open (cold caches)"] = best_ms(open_trace, tries)
    order = explore.step_order(store, trace)
    index = explore.TreeIndex(store, trace)
    seq = int(order[len(order) // 2])

    def step_change() -> None:
        explore.step_count(store, trace)
        explore.steps_by_seq(store, [seq])
        explore.step_extras(store, seq)
        index.view(store, seq)
        explore.trace_findings(store, trace)
        probe_reads.latest_results(store, seq)

    out["step change (warm caches)"] = best_ms(step_change, tries)
    out["peer: load every step"] = best_ms(lambda: queries.trace_steps(store, trace), max(1, tries // 2))
    return out


def measure_apptest(store: Store, steps: int) -> dict[str, float]:
    from streamlit.testing.v1 import AppTest

    from workbench.ui import context

    context.set_store(store)
    trace = explore.search_traces(store, explore.TraceFilter(), limit=1)[0].trace_id
    at = AppTest.from_file(str(ROOT / "workbench" / "ui" / "app_pages" / "replay.py"), default_timeout=120)
    at.query_params["trace"] = trace
    at.query_params["step"] = str(steps // 2)
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    assert not at.exception, at.exception
    changes = []
    for _ in range(3):
        t0 = time.perf_counter()
        at.button(key="next").click().run()
        changes.append(time.perf_counter() - t0)
    context.set_store(None)
    return {"AppTest first run": first * 1000, "AppTest step change": statistics.median(changes) * 1000}


def measure_browser(data: Path, steps: int, tries: int) -> dict[str, float]:
    from playwright.sync_api import expect, sync_playwright

    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_DATA_DIR=str(data),
        WORKBENCH_HTTP_PORT="0",
        WORKBENCH_GRPC_PORT="0",
        WORKBENCH_UI_PORT="0",
        PYTHONUNBUFFERED="1",
    )
    log = data / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "serve"], env=env, stdout=out, stderr=out
        )
    try:
        port = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not port:
            text = log.read_text(errors="replace")
            if "\nready" in text:
                ui = next(line for line in text.splitlines() if line.startswith("UI "))
                port = int(ui.rsplit(":", 1)[1].strip("/ "))
            time.sleep(0.1)
        if not port:
            raise RuntimeError(f"workbench serve did not start:\n{log.read_text(errors='replace')}")
        trace = (data / "trace-id").read_text().strip()  # written by main() before the server took the file
        base = f"http://127.0.0.1:{port}"
        firsts, changes = [], []
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(data / "chromium-profile"),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1440, "height": 1000},
            )
            page = ctx.new_page()
            page.goto(f"{base}/_stcore/health")  # the server and Streamlit runtime are up
            for i in range(tries + 1):
                n = steps // 2 + i
                t0 = time.perf_counter()
                page.goto(f"{base}/replay?trace={trace}&step={n}")
                expect(page.get_by_text(f"Step {n:,} of {steps:,}")).to_be_visible(timeout=120_000)
                first = time.perf_counter() - t0
                page.wait_for_selector("button:has-text('Next')")
                t0 = time.perf_counter()
                # A script click: Playwright's own click waits for the page to settle, which is not what
                # an investigator waits for.
                page.evaluate(NEXT_CLICK)
                expect(page.get_by_text(f"Step {n + 1:,} of {steps:,}")).to_be_visible(timeout=120_000)
                change = time.perf_counter() - t0
                if i:  # the first round warms the server's caches for this trace
                    firsts.append(first)
                    changes.append(change)
            ctx.close()
        return {
            "browser first paint": statistics.median(firsts) * 1000,
            "browser step change": statistics.median(changes) * 1000,
        }
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--tries", type=int, default=5)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[tuple[int, dict[str, float]]] = []
    for steps in sizes:
        print(f"{steps:,} steps", flush=True)
        data = prepare(steps)
        with Store(data / "workbench.duckdb") as store:
            trace = explore.search_traces(store, explore.TraceFilter(), limit=1)[0].trace_id
            (data / "trace-id").write_text(trace)
            got = measure_queries(store, args.tries)
            got.update(measure_apptest(store, steps))
        if not args.no_browser:
            got.update(measure_browser(data, steps, args.tries))
        for k, v in got.items():
            print(f"  {k:32s} {v:10.1f} ms", flush=True)
        rows.append((steps, got))

    import duckdb
    import streamlit

    measures = list(rows[0][1])
    head = "| measure | " + " | ".join(f"{s:,} steps" for s, _ in rows) + " |"
    lines = [head, "|---|" + "---|" * len(rows)]
    for m in measures:
        lines.append(f"| {m} | " + " | ".join(f"{r[m]:,.0f} ms" for _, r in rows) + " |")
    peer = [r["peer: load every step"] / r["open (cold caches)"] for _, r in rows]
    lines.append("| peer / paged open (ratio) | " + " | ".join(f"{p:,.1f}x" for p in peer) + " |")
    report = (
        f"### Replay of 1k/10k/100k-step traces, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other work during the run), "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
        f"Streamlit {streamlit.__version__}, "
        f"Debian chromium headless. Traces from `sample_traces.long_trace --seed 1`; medians of "
        f"{args.tries} tries; the step shown is the middle one. Query rows are the replay page's own reads; "
        "the peer is loading every step of the trace at once, in the same run.\n\n" + "\n".join(lines) + "\n"
    )
    print(report)
    if not args.no_write:
        existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
        RESULTS.write_text(existing.rstrip("\n") + "\n\n" + report)


if __name__ == "__main__":
    main()
