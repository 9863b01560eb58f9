"""Does `workbench serve` stay responsive while a probe job runs? Latency of the UI's health check and of
an OTLP/HTTP export while the probe worker's child process loads SmolLM2 and runs the full probe suite,
against the same requests on the same idle server measured in the same run (the peer).

Issue #6 item 6 ("the UI never freezes"): before the job moved into a child process, the model load
inside the server starved the UI and the receivers. Ratios, not absolute numbers, are what compare
across the shared machine's load.

    python benchmarks/probe_worker.py [--idle-samples 30] [--convert] [--no-append]

By default the converted SmolLM2 cache is copied from the test session's cache when there is one (a
model load of about a second, then the job); `--convert` makes the child de-quantize the GGUF file
first (tens of seconds of conversion under the same measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.payloads import export_request  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SAMPLE = ROOT / "sample_traces" / "db_deletion.json"
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
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = (data / "serve.log").read_text(errors="replace")
        if re.search(r"^ready$", text, re.MULTILINE):
            info = json.loads((data / "server.json").read_text())
            ui = re.search(r"^UI +(http://\S+?)/?$", text, re.MULTILINE)
            assert ui, text
            return proc, f"http://127.0.0.1:{info['http_port']}", ui.group(1).rstrip("/")
        if proc.poll() is not None:
            raise SystemExit(f"serve exited:\n{text}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("serve did not start")


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
    q = statistics.quantiles(values, n=20) if len(values) >= 2 else values * 19
    return f"{statistics.median(values):.0f} / {q[18]:.0f} / {max(values):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-samples", type=int, default=30)
    parser.add_argument("--convert", action="store_true", help="convert the GGUF model inside the job")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        if not args.convert and (SHARED_CACHE / MODEL_DIR).exists():
            shutil.copytree(SHARED_CACHE / MODEL_DIR, data / "models" / MODEL_DIR)
        proc, http, ui = _start(data)
        try:
            with httpx.Client(timeout=120) as client:
                post = client.post(
                    f"{http}/v1/traces",
                    content=SAMPLE.read_bytes(),
                    headers={"Content-Type": "application/json"},
                )
                assert post.status_code == 200
                time.sleep(3)  # the findings scan of the new trace and the UI's first imports settle
                idle_h, idle_o = [], []
                for i in range(args.idle_samples):
                    h, o = _probe_once(client, http, ui, 1000 + i)
                    idle_h.append(h)
                    idle_o.append(o)
                    time.sleep(0.2)
                body = {
                    "trace_id": "0413e656",
                    "step": 6,
                    "analyses": ["logit_lens", "attention", "probes", "patching"],
                    "params": {
                        "counterfactual_reasoning": "Follow the runbook: archive order_events, never DROP."
                    },
                }
                run = client.post(f"{http}/api/v1/probe-runs", json=body).json()
                began = time.perf_counter()
                busy_h, busy_o = [], []
                i = 0
                while True:
                    status = client.get(f"{http}/api/v1/probe-runs/{run['id']}").json()
                    if status["status"] in ("done", "failed"):
                        break
                    h, o = _probe_once(client, http, ui, 5000 + i)
                    busy_h.append(h)
                    busy_o.append(o)
                    i += 1
                    time.sleep(0.2)
                job_s = time.perf_counter() - began
                assert status["status"] == "done", status["error"]
        finally:
            proc.send_signal(signal.SIGTERM)
            t = time.perf_counter()
            proc.wait(60)
            stop_s = time.perf_counter() - t

    ratio_h = statistics.median(busy_h) / statistics.median(idle_h)
    ratio_o = statistics.median(busy_o) / statistics.median(idle_o)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end, "
        f"Python {platform.python_version()}"
    )
    load = "GGUF conversion + load + suite" if args.convert else "model load from the cache + suite"
    lines = [
        f"## Serve stays responsive during a probe job ({now})",
        "",
        f"Machine: {machine}. One `workbench serve`; the probe worker's child process runs {load} "
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
    ]
    print("\n".join(lines))
    if not args.no_append:
        with RESULTS.open("a") as f:
            f.write("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
