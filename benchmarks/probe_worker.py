"""Does `workbench serve` stay responsive while a probe job runs? Latency of the UI's health check and of
an OTLP/HTTP export while the probe worker's child process loads SmolLM2 and runs the full probe suite,
against the same requests on the same idle server measured in the same run (the peer).

Issue #6 item 6 ("the UI never freezes"): before the job moved into a child process, the model load
inside the server starved the UI and the receivers. Ratios, not absolute numbers, are what compare
across the shared machine's load.

Issue #18 item 5: one probe run on one step, from the queue to its result, with the model cache warm
(the second run, once the child has loaded the model): goal at most 20 s on 2 cores.

Also measured, in this process before the server starts: how long `ProbeWorker.stop()` takes mid-job
(the child process loading SmolLM2 or converting it, `--stop-after` seconds into its run), and that
the run goes back to the queue. tests/test_probes_worker.py checks that stop() requeues the run and
leaves no child behind; how fast it returns is this benchmark's figure, not a test's limit.
The section goes under "Probe worker" in benchmarks/RESULTS.md (benchmarks/report.py).

    python benchmarks/probe_worker.py [--idle-samples 30] [--stop-samples 5] [--stop-after 1.0]
                                      [--convert] [--skip-serve] [--no-write] [--results FILE]

By default the converted SmolLM2 cache is copied from the test session's cache when there is one (a
model load of about a second, then the job); `--convert` makes the child de-quantize the GGUF file
first (tens of seconds of conversion under the same measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.payloads import export_request  # noqa: E402
from tests.polling import wait_for  # noqa: E402

SAMPLE = ROOT / "sample_traces" / "db_deletion.json"
SAMPLE_TRACE = "0413e656"
SHARED_CACHE = Path(tempfile.gettempdir()) / "pytest-of-root" / "workbench-probe-model" / "models"
MODEL_DIR = "HuggingFaceTB--SmolLM2-135M-Instruct"


def _start(data: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        {
            "WORKBENCH_DATA_DIR": str(data),
            "WORKBENCH_HTTP_PORT": "0",
            "WORKBENCH_GRPC_PORT": "0",
            "WORKBENCH_UI_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log = (data / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve"], env=env, stdout=log, stderr=log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited:\n{(data / 'serve.log').read_text(errors='replace')}")
        return (
            re.search(r"^ready$", (data / "serve.log").read_text(errors="replace"), re.MULTILINE) is not None
        )

    try:
        wait_for(ready, 120, 0.1, "workbench serve to say ready")
    except AssertionError:
        proc.kill()
        raise
    text = (data / "serve.log").read_text(errors="replace")
    info = json.loads((data / "server.json").read_text())
    ui = re.search(r"^UI +(http://\S+?)/?$", text, re.MULTILINE)
    assert ui, text
    return proc, f"http://127.0.0.1:{info['http_port']}", ui.group(1).rstrip("/")


def _probe_once(client: httpx.Client, http: str, ui: str, seed: int) -> tuple[float, float]:
    """(health ms, OTLP export ms) of one round; both must succeed."""
    t = time.perf_counter()
    assert client.get(f"{ui}/_stcore/health").status_code == 200
    health = (time.perf_counter() - t) * 1000
    body = export_request(seed, 10).SerializeToString()
    t = time.perf_counter()
    resp = client.post(f"{http}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
    assert resp.status_code == 200, resp.text
    return health, (time.perf_counter() - t) * 1000


def _stats(values: list[float]) -> str:
    q = statistics.quantiles(values, n=20, method="inclusive") if len(values) >= 2 else values * 19
    return f"{statistics.median(values):.0f} / {q[18]:.0f} / {max(values):.0f}"


def stop_mid_job(data: Path, samples: int, after_s: float) -> list[float]:
    """Seconds `ProbeWorker.stop()` took, `after_s` into a run's child process, once per sample; each
    stopped run must be back in the queue and its child gone."""
    from probes.worker import ProbeWorker
    from workbench.cli.loading import ingest_files
    from workbench.settings import Settings
    from workbench.store import probes as probe_store
    from workbench.store import queries
    from workbench.store.connection import Store

    settings = Settings(data_dir=data, probe_context_chars=300)
    ingest_files(settings, [SAMPLE])
    took: list[float] = []
    with Store(settings.db_path) as store:
        trace = queries.resolve_trace_id(store, SAMPLE_TRACE)
        steps = queries.trace_steps(store, trace)
        seq = next(s for s in steps if s.step.reasoning_text and "DROP" in (s.step.output_text or "")).seq
        for _ in range(samples):
            worker = ProbeWorker(settings, store)
            worker.start()
            run_id = probe_store.insert_run(store, trace, seq, ["logit_lens", "attention", "probes"])
            pid = wait_for(lambda w=worker: w.child_pid, 120, 0.02, "the probe job process to start")
            time.sleep(after_s)  # into the job: the child imports torch, loads or converts the model
            began = time.perf_counter()
            worker.stop()
            took.append(time.perf_counter() - began)
            run = probe_store.get_run(store, run_id)
            assert run is not None and run.status == "queued", run
            try:
                os.kill(pid, 0)
                raise SystemExit(f"the job process {pid} outlived stop()")
            except ProcessLookupError:
                pass  # gone and reaped, as it must be
            probe_store.finish_run(
                store, run_id, error="stopped by benchmarks/probe_worker.py"
            )  # next sample
    return took


def serve_during_job(data: Path, idle_samples: int) -> tuple[list[float], ...]:
    """Health and OTLP latencies on an idle `workbench serve`, then during a probe job; with the job's
    seconds, the SIGTERM's, and the seconds of a second run queued once the child's model is loaded."""
    proc, http, ui = _start(data)
    try:
        with httpx.Client(timeout=120) as client:
            post = client.post(
                f"{http}/v1/traces", content=SAMPLE.read_bytes(), headers={"Content-Type": "application/json"}
            )
            assert post.status_code == 200
            time.sleep(3)  # the findings scan of the new trace and the UI's first imports settle
            idle_h, idle_o = [], []
            for i in range(idle_samples):
                h, o = _probe_once(client, http, ui, 1000 + i)
                idle_h.append(h)
                idle_o.append(o)
                time.sleep(0.2)
            body = {
                "trace_id": SAMPLE_TRACE,
                "step": 6,
                "analyses": ["logit_lens", "attention", "probes", "patching"],
                "params": {
                    "counterfactual_reasoning": "Follow the runbook: archive order_events, never DROP."
                },
            }
            run = client.post(f"{http}/api/v1/probe-runs", json=body).json()
            began = time.perf_counter()
            busy_h, busy_o = [], []

            def finished_or_one_round() -> dict[str, Any] | None:
                status: dict[str, Any] = client.get(f"{http}/api/v1/probe-runs/{run['id']}").json()
                if status["status"] in ("done", "failed"):
                    return status
                h, o = _probe_once(client, http, ui, 5000 + len(busy_h))
                busy_h.append(h)
                busy_o.append(o)
                return None

            status = wait_for(finished_or_one_round, 900, 0.2, "the probe job to finish")
            job_s = time.perf_counter() - began
            assert status["status"] == "done", status["error"]
            # The next run finds the child's model loaded: queue to result of one step, nothing else asked
            began = time.perf_counter()
            run = client.post(f"{http}/api/v1/probe-runs", json={**body, "step": 12}).json()

            def finished() -> dict[str, Any] | None:
                status: dict[str, Any] = client.get(f"{http}/api/v1/probe-runs/{run['id']}").json()
                return status if status["status"] in ("done", "failed") else None

            status = wait_for(finished, 900, 0.05, "the second probe job to finish")
            warm_s = time.perf_counter() - began
            assert status["status"] == "done", status["error"]
    finally:
        proc.send_signal(signal.SIGTERM)
        t = time.perf_counter()
        proc.wait(60)
        stop_s = time.perf_counter() - t
    return idle_h, idle_o, busy_h, busy_o, [job_s], [stop_s], [warm_s]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle-samples", type=int, default=30)
    parser.add_argument("--stop-samples", type=int, default=5, help="stop() mid-job this many times; 0 skips")
    parser.add_argument("--stop-after", type=float, default=1.0, help="seconds into the job to stop it")
    parser.add_argument("--convert", action="store_true", help="convert the GGUF model inside the job")
    parser.add_argument("--skip-serve", action="store_true", help="only the stop-mid-job measure")
    report.add_output_args(parser)
    args = parser.parse_args()
    run = report.Run()

    with tempfile.TemporaryDirectory() as tmp:
        data, stop_data = Path(tmp) / "data", Path(tmp) / "stop"
        data.mkdir()
        stop_data.mkdir()
        if not args.convert and (SHARED_CACHE / MODEL_DIR).exists():
            shutil.copytree(SHARED_CACHE / MODEL_DIR, data / "models" / MODEL_DIR)
        (stop_data / "models").symlink_to(data / "models")  # the same model cache (or none: it converts)
        (data / "models").mkdir(exist_ok=True)
        has_cache = (data / "models" / MODEL_DIR).exists()
        stops = stop_mid_job(stop_data, args.stop_samples, args.stop_after) if args.stop_samples else []
        served = None if args.skip_serve else serve_during_job(data, args.idle_samples)

    load = "GGUF conversion + load + suite" if args.convert else "model load from the cache + suite"
    lines: list[str] = []
    if served is not None:
        idle_h, idle_o, busy_h, busy_o, (job_s,), (stop_s,), (warm_s,) = served
        ratio_h = statistics.median(busy_h) / statistics.median(idle_h)
        ratio_o = statistics.median(busy_o) / statistics.median(idle_o)
        lines += [
            f"One `workbench serve`; the probe worker's child process runs {load} "
            f"(lens, attention, 2 probes, attribution patching), SmolLM2-135M, {job_s:.1f} s, 1 thread. "
            "Each round: `GET /_stcore/health` of the UI, then an OTLP/HTTP protobuf export of 10 spans. "
            "`python benchmarks/probe_worker.py`",
            "",
            "| phase | rounds | UI health ms (median / p95 / max) | OTLP export ms (median / p95 / max) |",
            "|---|---|---|---|",
            f"| idle server (peer) | {len(idle_h)} | {_stats(idle_h)} | {_stats(idle_o)} |",
            f"| during the probe job | {len(busy_h)} | {_stats(busy_h)} | {_stats(busy_o)} |",
            "",
            f"Median during the job vs idle: UI health {ratio_h:.2f}x, OTLP export {ratio_o:.2f}x. "
            f"Every request succeeded. SIGTERM after the job: serve exited in {stop_s:.1f} s.",
            "",
            f"One probe run on one step with the child's model already loaded (the next run in the queue: "
            f"step 12, the same suite and counterfactual), `POST /api/v1/probe-runs` to `done`: "
            f"{warm_s:.1f} s (goal: at most 20 s). The first run, {load}, took {job_s:.1f} s.",
            "",
        ]
    if stops:
        ms = [x * 1000 for x in stops]
        cached = "from the model cache" if has_cache else "converting the GGUF file"
        lines += [
            f"Stop mid-job: `ProbeWorker.stop()` {args.stop_after:.1f} s into a run's child process "
            f"(importing torch, then loading SmolLM2 {cached}), {len(stops)} times in this process; every "
            "stopped run went back to the queue and its child was gone. "
            f"stop() took {_stats(ms)} ms (median / p95 / max).",
            "",
        ]
    title = "Serve during a probe job" if served is not None else "Probe worker stop mid-job"
    report.publish(args, "probe-worker", run.section(title, "\n".join(lines)))


if __name__ == "__main__":
    main()
