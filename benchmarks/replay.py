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
  (navigation until "Step N of M" is in the page) and a step change (Next click until "Step N+1 of M" is
  in the page), both checked on every animation frame: on a settled page (3 clicks per load) and
  clicked the moment the step first shows (the page still drawing). Medians of several tries;
- the floor, in the same run and browser: the smallest Streamlit page with a Next button and the same
  "Step N of M" line (benchmarks/replay_floor_app.py), served the same way: what Streamlit itself costs.

Targets (issue #4): first paint of the 100k trace under 1.5 s, a step change under 200 ms.

The section goes under "Replay and the UI" in benchmarks/RESULTS.md (benchmarks/report.py).

    python benchmarks/replay.py [--sizes 1000,10000,100000] [--tries 5] [--no-write] [--results FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.browser import SHOWN, chromium, floor_command, start_until_ready, wait_until  # noqa: E402
from sample_traces import long_trace  # noqa: E402
from workbench.cli.loading import ingest_files  # noqa: E402
from workbench.settings import Settings  # noqa: E402
from workbench.store import explore, probe_reads, queries  # noqa: E402
from workbench.store.connection import Store  # noqa: E402

NEXT_CLICK = "() => [...document.querySelectorAll('button')].find(b => b.innerText.includes('Next')).click()"
WORK = ROOT / "benchmarks" / "work" / "replay"


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


def _browse(
    profile: Path, url: Callable[[int], str], first_step: int, total: int, tries: int
) -> tuple[float, float, float]:
    """Medians in ms: first paint (navigation until "Step N of M" shows), a step change clicked right at
    first paint, and a step change on a settled page (Next until "Step N+1 of M" shows, 3 per load)."""
    firsts, eager, settled = [], [], []

    def step(n: int) -> float:
        t0 = time.perf_counter()
        # A script click: Playwright's own click waits for the page to settle, which is not what an
        # investigator waits for.
        page.evaluate(NEXT_CLICK)
        wait_until(page, SHOWN, f"Step {n + 1:,} of {total:,}")
        return time.perf_counter() - t0

    def settle() -> None:
        # The script run is over and the browser's main thread has had an idle moment (the Plotly bundle
        # loaded, the charts drawn): when an investigator who reads the step would click next.
        page.wait_for_selector("[data-test-script-state='notRunning']", state="attached", timeout=120_000)
        page.evaluate("() => new Promise(r => requestIdleCallback(() => r(), {timeout: 5000}))")

    with chromium(profile) as ctx:
        page = ctx.new_page()
        for i in range(tries + 1):
            n = first_step + 5 * i
            t0 = time.perf_counter()
            page.goto(url(n))
            wait_until(page, SHOWN, f"Step {n:,} of {total:,}")
            first = time.perf_counter() - t0
            page.wait_for_selector("button:has-text('Next')")
            right_away = step(n)  # clicked the moment the step shows, the page still drawing
            changes = []
            for k in range(1, 4):
                settle()
                changes.append(step(n + k))
            if i:  # the first round loads the JS bundle and warms the server's caches
                firsts.append(first)
                eager.append(right_away)
                settled.extend(changes)
    return tuple(statistics.median(x) * 1000 for x in (firsts, eager, settled))  # type: ignore[return-value]


def measure_browser(data: Path, steps: int, tries: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(PYTHONUNBUFFERED="1")
    floor_env = {**env}
    env.update(
        WORKBENCH_DATA_DIR=str(data), WORKBENCH_HTTP_PORT="0", WORKBENCH_GRPC_PORT="0", WORKBENCH_UI_PORT="0"
    )
    trace = (data / "trace-id").read_text().strip()  # written by main() before the server took the file
    out: dict[str, float] = {}
    proc, port = start_until_ready([sys.executable, "-m", "workbench.cli", "serve"], env, data / "serve.log")
    try:
        first, eager, change = _browse(
            data / "chromium-profile",
            lambda n: f"http://127.0.0.1:{port}/replay?trace={trace}&step={n}",
            steps // 2,
            steps,
            tries,
        )
        out["browser first paint"], out["browser step change"] = first, change
        out["browser step change clicked at first paint"] = eager
    finally:
        proc.terminate()
        proc.wait(30)
    floor_app = str(ROOT / "benchmarks" / "replay_floor_app.py")
    proc, port = start_until_ready(floor_command(floor_app), floor_env, data / "floor.log")
    try:
        first, eager, change = _browse(
            data / "chromium-profile-floor",
            lambda n: f"http://127.0.0.1:{port}/?step={n}&of={steps}",
            steps // 2,
            steps,
            tries,
        )
        out["floor: minimal Streamlit page, first paint"] = first
        out["floor: minimal Streamlit page, step change"] = change
        out["floor: step change clicked at first paint"] = eager
    finally:
        proc.terminate()
        proc.wait(30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--tries", type=int, default=5)
    ap.add_argument("--no-browser", action="store_true")
    report.add_output_args(ap)
    args = ap.parse_args()
    run = report.Run()
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
    if "browser first paint" in rows[0][1]:
        for what in ("first paint", "step change"):
            ratio = [r[f"browser {what}"] / r[f"floor: minimal Streamlit page, {what}"] for _, r in rows]
            lines.append(
                f"| browser {what} / floor (ratio) | " + " | ".join(f"{x:,.1f}x" for x in ratio) + " |"
            )
    body = (
        "Machines shared with other work during the run; Debian chromium headless. Traces from "
        f"`sample_traces.long_trace --seed 1`; medians of {args.tries} tries; the step shown is the middle "
        "one. Query rows are the replay page's own reads; the peer is loading every step of the trace at "
        "once, in the same run.\n\n" + "\n".join(lines) + "\n"
    )
    sizes_title = "/".join(f"{s // 1000}k" if s >= 1000 else str(s) for s in sizes)
    section = run.section(
        f"Replay of {sizes_title}-step traces",
        body,
        {"DuckDB": duckdb.__version__, "Streamlit": streamlit.__version__},
    )
    report.publish(args, "replay", section)


if __name__ == "__main__":
    main()
