"""`workbench serve` against Arize Phoenix, side by side in one run on the same machine.

Why: a throughput figure means little alone; it holds against a peer measured in the same run, with
the same payloads, the same client and the same concurrency. Phoenix (`pip install arize-phoenix`) is
the open-source trace store people install for this job.

What it does (`make bench-phoenix`):
- installs Phoenix into its own virtual environment under benchmarks/work/ (gitignored; reused when
  the pinned version is already there), never into the project's .venv;
- starts `phoenix serve` (its own working dir and SQLite file, loopback ports, telemetry off) and
  `workbench serve` (its own data dir), both on free loopback ports;
- sends both the identical OTLP/HTTP protobuf requests (agent spans with OpenInference and GenAI
  attributes) from this process with the same number of keep-alive client threads, alternating which
  system goes first in each round;
- ingest: the clock stops when every span of the round is queryable. Phoenix answers 200 before it
  stores (a background bulk inserter writes later), so its SQLite file is polled until the span count
  is complete; our 200 means committed, and the count is still confirmed through our read API;
- one trace of 10,000 spans: the time to fetch it for display through each system's own API (Phoenix:
  REST `GET /v1/projects/{project}/spans?trace_id=...`, 1,000 a page, its maximum; ours:
  `GET /api/v1/traces/{id}/steps`, one call), JSON parsed by the client in both cases;
- peak resident memory of each server process including its children, sampled every 100 ms;
- the two floors on the same spans: protobuf decode alone and a bare DuckDB insert of the same rows.
Medians and ratios go to benchmarks/RESULTS.md, the raw runs to benchmarks/results/.

    python benchmarks/vs_phoenix.py [--rounds 3] [--requests 200] [--spans-per-request 100] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.ingest import floor_decode, floor_duckdb_insert  # noqa: E402
from benchmarks.payloads import agent_span_attributes, kv  # noqa: E402

WORK = ROOT / "benchmarks" / "work"
PHOENIX_VENV = WORK / "phoenix-venv"
RAW_DIR = ROOT / "benchmarks" / "results"
PHOENIX_VERSION = "20.26.1"
# The installed distribution's version, read from its metadata: importing phoenix takes seconds.
_VERSION_PROBE = "import importlib.metadata as m; print(m.version('arize-phoenix'))"
PHOENIX_PROJECT = "default"  # where Phoenix files spans without an openinference.project.name
PROTOBUF = {"Content-Type": "application/x-protobuf"}
POLL_S = 0.05  # the first polls; later ones wait 1% of the time elapsed, so polling stays a small load


# --- payloads -----------------------------------------------------------------------------------------


def span_attributes(rng: random.Random, i: int) -> list[KeyValue]:
    """The benchmark's agent LLM span, plus the OpenInference keys Phoenix reads for its views
    (`input.value`, `output.value`, flattened `llm.*_messages`), so both systems get spans they
    understand, not opaque ones."""
    attrs = agent_span_attributes(rng, i)
    values = {a.key: a.value.string_value for a in attrs}
    messages = json.loads(values["gen_ai.input.messages"])
    output = json.loads(values["gen_ai.output.messages"])
    answer = output[0]["parts"][1]["content"]
    attrs.append(kv("input.value", values["gen_ai.input.messages"]))
    attrs.append(kv("output.value", answer))
    attrs.append(kv("output.mime_type", "text/plain"))
    for n, m in enumerate(messages):
        attrs.append(kv(f"llm.input_messages.{n}.message.role", m["role"]))
        attrs.append(kv(f"llm.input_messages.{n}.message.content", m["content"]))
    attrs.append(kv("llm.output_messages.0.message.role", "assistant"))
    attrs.append(kv("llm.output_messages.0.message.content", answer))
    return attrs


def _request(service: str) -> tuple[ExportTraceServiceRequest, Any]:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", service), kv("deployment.environment", "bench")])
    ss = rs.scope_spans.add()
    ss.scope.name = "openinference.instrumentation.openai"
    ss.scope.version = "0.1.66"
    return req, ss


def ingest_body(seed: int, spans: int) -> bytes:
    """One request: one trace of `spans` LLM steps under an AGENT root, unique ids for this seed."""
    rng = random.Random(seed)
    req, ss = _request("bench-agent")
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    t0 = 1_764_000_000_000_000_000 + seed * 1_000_000_000
    root = b""
    for i in range(spans):
        span_id = rng.getrandbits(64).to_bytes(8, "big") or b"\x01" * 8
        span = ss.spans.add(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=root,
            name="agent.run" if i == 0 else "ChatCompletion",
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=t0 + i * 1_000_000,
            end_time_unix_nano=t0 + i * 1_000_000 + 900_000,
        )
        span.attributes.extend(span_attributes(rng, i))
        if i == 0:
            span.attributes[0].value.string_value = "AGENT"  # openinference.span.kind
            root = span_id
    return req.SerializeToString()


def big_trace_bodies(seed: int, spans: int, per_request: int) -> tuple[str, list[bytes]]:
    """One trace of `spans` spans as a 10-ary tree (depth ~4, as nested agent steps are), sent in
    requests of `per_request` spans: returns (trace id hex, bodies)."""
    rng = random.Random(seed)
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    ids = [rng.getrandbits(64).to_bytes(8, "big") or b"\x01" * 8 for _ in range(spans)]
    t0 = 1_765_000_000_000_000_000
    bodies = []
    for first in range(0, spans, per_request):
        req, ss = _request("bench-agent-long")
        for i in range(first, min(spans, first + per_request)):
            span = ss.spans.add(
                trace_id=trace_id,
                span_id=ids[i],
                parent_span_id=ids[(i - 1) // 10] if i else b"",
                name="agent.run" if i == 0 else "ChatCompletion",
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=t0 + i * 1_000_000,
                end_time_unix_nano=t0 + i * 1_000_000 + 900_000,
            )
            span.attributes.extend(span_attributes(rng, i))
        bodies.append(req.SerializeToString())
    return trace_id.hex(), bodies


# --- the two systems ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_phoenix(version: str) -> Path:
    """Phoenix's `phoenix` command in its own venv: reused when that version is installed, else built."""
    python = PHOENIX_VENV / "bin" / "python"
    if python.exists():
        probe = subprocess.run(
            [str(python), "-c", _VERSION_PROBE],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return PHOENIX_VENV / "bin" / "phoenix"
    print(f"installing arize-phoenix=={version} into {PHOENIX_VENV} (once; a few minutes) ...", flush=True)
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PHOENIX_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"arize-phoenix=={version}"], check=True)
    return PHOENIX_VENV / "bin" / "phoenix"


@dataclass
class System:
    """A server under test: how to reach it, how to count its queryable spans, how to fetch a trace."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    count: Callable[[], int] = lambda: 0
    fetch_trace: Callable[[str], int] = lambda trace_id: 0
    peak_rss: int = 0
    peak_rss_main: int = 0  # the server process alone (ours also runs a decode worker process)
    samples: list[int] = field(default_factory=list)

    @property
    def traces_path(self) -> str:
        return "/v1/traces"

    def rss(self) -> tuple[int, int]:
        """Resident memory of (the server with every child process it started, the server alone)."""
        try:
            p = psutil.Process(self.proc.pid)
            main = p.memory_info().rss
            children = p.children(recursive=True)
        except psutil.NoSuchProcess:
            return 0, 0
        total = main
        for q in children:
            try:
                total += q.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total, main

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _get_json(port: int, path: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path} answered {resp.status}: {body[:300]!r}")
        return orjson.loads(body)
    finally:
        conn.close()


def _wait_ready(proc: subprocess.Popen[bytes], ready: Callable[[], bool], log: Path, what: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{what} did not become ready in 180 s:\n{log.read_text(errors='replace')[-3000:]}")


def start_workbench(run_dir: Path) -> System:
    data = run_dir / "workbench"
    data.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    # Every listening port free-picked (the in-process UI too), so a user's running server never clashes.
    ports = {f"WORKBENCH_{name}_PORT": "0" for name in ("HTTP", "GRPC", "UI")}
    env.update({"WORKBENCH_DATA_DIR": str(data), **ports})
    log = run_dir / "workbench.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "serve"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    _wait_ready(proc, lambda: "ready" in log.read_text(errors="replace"), log, "workbench serve")
    port = int(json.loads((data / "server.json").read_text())["http_port"])
    system = System("workbench", proc, port, log)

    def count() -> int:
        # The read API's trace list sums span counts from the steps table: a real query, not the ack.
        total, offset = 0, 0
        while True:
            page = _get_json(port, f"/api/v1/traces?limit=10000&offset={offset}")
            total += sum(t["span_count"] for t in page["traces"])
            offset += len(page["traces"])
            if not page["traces"] or offset >= page["total"]:
                return total

    def fetch(trace_id: str) -> int:
        page = _get_json(port, f"/api/v1/traces/{trace_id}/steps")
        if len(page["steps"]) != page["total"]:
            raise RuntimeError(f"workbench returned {len(page['steps'])} of {page['total']} steps")
        return len(page["steps"])

    system.count, system.fetch_trace = count, fetch
    return system


def start_phoenix(run_dir: Path, phoenix: Path) -> System:
    work = run_dir / "phoenix"
    work.mkdir(parents=True)
    port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOENIX_")}
    env.update(
        {
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_WORKING_DIR": str(work),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
    )
    log = run_dir / "phoenix.log"
    proc = subprocess.Popen([str(phoenix), "serve"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def ready() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    _wait_ready(proc, ready, log, "phoenix serve")
    system = System("phoenix", proc, port, log)
    db = work / "phoenix.db"

    def count() -> int:
        # Read-only, on the WAL file Phoenix writes: readers never block its writer.
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            row = con.execute("SELECT count(*) FROM spans").fetchone()
            return int(row[0]) if row else 0
        finally:
            con.close()

    def fetch(trace_id: str) -> int:
        got, cursor = 0, None
        while True:
            params = {"trace_id": trace_id, "limit": 1000, "sort": "start_time", "order": "asc"}
            if cursor:
                params["cursor"] = cursor
            page = _get_json(port, f"/v1/projects/{PHOENIX_PROJECT}/spans?{urllib.parse.urlencode(params)}")
            got += len(page["data"])
            cursor = page.get("next_cursor")
            if not cursor or not page["data"]:
                return got

    system.count, system.fetch_trace = count, fetch
    return system


# --- measuring ----------------------------------------------------------------------------------------


def post_all(system: System, bodies: list[bytes], clients: int) -> tuple[float, int]:
    """POST every body from `clients` keep-alive threads; a 503 is retried after 100 ms (both systems
    answer 503 when their queue is full). Returns (seconds until the last 200, retries)."""
    retries = 0
    failures: list[str] = []
    lock = threading.Lock()

    def worker(mine: list[bytes]) -> None:
        nonlocal retries
        conn = http.client.HTTPConnection("127.0.0.1", system.port, timeout=600)
        for body in mine:
            while True:
                conn.request("POST", system.traces_path, body, PROTOBUF)
                resp = conn.getresponse()
                resp.read()
                if resp.status == 503:
                    with lock:
                        retries += 1
                    time.sleep(0.1)
                    continue
                if resp.status != 200:
                    failures.append(f"{system.name}: HTTP {resp.status}")
                break
        conn.close()

    threads = [threading.Thread(target=worker, args=(bodies[i::clients],)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return elapsed, retries


def ingest(system: System, bodies: list[bytes], n_spans: int, clients: int) -> dict[str, Any]:
    """Send, then poll the system's count until every span is queryable: that is when the clock stops."""
    before = system.count()
    start = time.perf_counter()
    acked, retries = post_all(system, bodies, clients)
    want = before + n_spans
    polls = 0
    while True:
        have = system.count()
        polls += 1
        if have >= want:
            break
        if time.perf_counter() - start > 1800:
            raise SystemExit(f"{system.name}: only {have - before} of {n_spans} spans queryable after 30 min")
        time.sleep(max(POLL_S, (time.perf_counter() - start) / 100))
    queryable = time.perf_counter() - start
    return {
        "system": system.name,
        "spans": n_spans,
        "requests": len(bodies),
        "acked_s": round(acked, 4),
        "queryable_s": round(queryable, 4),
        "spans_per_s": round(n_spans / queryable, 1),
        "retries_503": retries,
        "count_polls": polls,
    }


class MemorySampler:
    """Peak RSS (with children) of each server, sampled every 100 ms on a daemon thread."""

    def __init__(self, systems: list[System]) -> None:
        self.systems = systems
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for s in self.systems:
                rss, main = s.rss()
                s.peak_rss = max(s.peak_rss, rss)
                s.peak_rss_main = max(s.peak_rss_main, main)
                s.samples.append(rss)
            self._stop.wait(0.1)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def machine() -> dict[str, Any]:
    """benchmarks/report.py's machine facts, plus the versions this comparison is about."""
    try:
        from importlib.metadata import version

        workbench_version = version("agent-audit-workbench")
    except Exception:
        workbench_version = "?"
    return {**report.machine_info(), "duckdb": duckdb.__version__, "workbench": workbench_version}


def phoenix_version() -> str:
    out = subprocess.run(
        [
            str(PHOENIX_VENV / "bin" / "python"),
            "-c",
            _VERSION_PROBE,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


# --- the run ------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    phoenix = ensure_phoenix(args.phoenix_version)
    stamp = datetime.now(UTC)
    run_dir = WORK / f"run-{stamp:%Y%m%dT%H%M%S}"
    run_dir.mkdir(parents=True)
    load_start = report.loadavg()
    rounds: list[dict[str, Any]] = []
    fetches: list[dict[str, Any]] = []
    print(f"starting workbench serve and phoenix serve in {run_dir}", flush=True)
    wb = start_workbench(run_dir)
    phx = start_phoenix(run_dir, phoenix)
    systems = [wb, phx]
    idle_rss = {s.name: s.rss()[0] for s in systems}
    all_bodies: list[bytes] = []
    try:
        with MemorySampler(systems):
            # Warm-up (not counted): first requests pay for imports, caches and connection set-up.
            warm = [ingest_body(10_000_000 + i, args.spans_per_request) for i in range(args.clients)]
            for s in systems:
                ingest(s, warm, len(warm) * args.spans_per_request, args.clients)
            for r in range(args.rounds):
                bodies = [ingest_body(r * 100_000 + i, args.spans_per_request) for i in range(args.requests)]
                all_bodies += bodies
                n = args.requests * args.spans_per_request
                order = systems if r % 2 == 0 else systems[::-1]
                for s in order:
                    result = ingest(s, bodies, n, args.clients)
                    result["round"] = r
                    result["load"] = report.loadavg()
                    rounds.append(result)
                    print(
                        f"round {r} {s.name:<9} {result['spans_per_s']:>9,.0f} spans/s "
                        f"(acked {result['acked_s']:.2f} s, queryable {result['queryable_s']:.2f} s, "
                        f"503 retries {result['retries_503']})",
                        flush=True,
                    )
            trace_id, big = big_trace_bodies(99_999_999, args.big_trace_spans, 1000)
            for s in systems:
                result = ingest(s, big, args.big_trace_spans, args.clients)
                result["round"] = "big-trace"
                rounds.append(result)
            for rep in range(args.fetch_repeats):
                order = systems if rep % 2 == 0 else systems[::-1]
                for s in order:
                    t = time.perf_counter()
                    got = s.fetch_trace(trace_id)
                    elapsed = time.perf_counter() - t
                    if got != args.big_trace_spans:
                        raise SystemExit(f"{s.name} returned {got} of {args.big_trace_spans} spans")
                    fetches.append(
                        {"system": s.name, "repeat": rep, "seconds": round(elapsed, 4), "spans": got}
                    )
                    print(f"fetch {rep} {s.name:<9} {elapsed:.3f} s for {got} spans", flush=True)
    finally:
        for s in systems:
            s.stop()
    load_end = report.loadavg()
    decode_s = floor_decode(all_bodies)
    insert_s = floor_duckdb_insert(all_bodies, run_dir / "floor.duckdb")
    n_floor = args.rounds * args.requests * args.spans_per_request
    if not args.keep_work:
        shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "date": stamp.isoformat(timespec="seconds"),
        "machine": machine(),
        "phoenix": phoenix_version(),
        "config": {
            "rounds": args.rounds,
            "requests_per_round": args.requests,
            "spans_per_request": args.spans_per_request,
            "clients": args.clients,
            "bytes_per_span": round(sum(map(len, all_bodies)) / max(1, n_floor)),
            "big_trace_spans": args.big_trace_spans,
            "fetch_repeats": args.fetch_repeats,
        },
        "load": {"start": load_start, "end": load_end},
        "ingest": rounds,
        "fetch": fetches,
        "idle_rss_bytes": idle_rss,
        "peak_rss_bytes": {s.name: s.peak_rss for s in systems},
        "peak_rss_main_process_bytes": {s.name: s.peak_rss_main for s in systems},
        "floors": {
            "spans": n_floor,
            "protobuf_decode_spans_per_s": round(n_floor / decode_s, 1),
            "duckdb_insert_spans_per_s": round(n_floor / insert_s, 1),
        },
    }


def summarize(raw: dict[str, Any], raw_path: Path) -> str:
    """The RESULTS.md section: medians over rounds, ratios, and the conditions they were measured in."""
    timed = [r for r in raw["ingest"] if r["round"] != "big-trace"]

    def med(system: str, key: str) -> float:
        return statistics.median(r[key] for r in timed if r["system"] == system)

    def fetch_med(system: str) -> float:
        return statistics.median(f["seconds"] for f in raw["fetch"] if f["system"] == system)

    def big(system: str) -> float:
        return float(
            next(
                r["spans_per_s"] for r in raw["ingest"] if r["round"] == "big-trace" and r["system"] == system
            )
        )

    wb_rate, phx_rate = med("workbench", "spans_per_s"), med("phoenix", "spans_per_s")
    wb_ack, phx_ack = med("workbench", "acked_s"), med("phoenix", "acked_s")
    wb_q, phx_q = med("workbench", "queryable_s"), med("phoenix", "queryable_s")
    wb_fetch, phx_fetch = fetch_med("workbench"), fetch_med("phoenix")
    wb_big, phx_big = big("workbench"), big("phoenix")
    mib = {k: v / 2**20 for k, v in raw["peak_rss_bytes"].items()}
    main_mib = {k: v / 2**20 for k, v in raw["peak_rss_main_process_bytes"].items()}
    idle_mib = {k: v / 2**20 for k, v in raw["idle_rss_bytes"].items()}
    m, c, floors = raw["machine"], raw["config"], raw["floors"]
    decode_rate, insert_rate = floors["protobuf_decode_spans_per_s"], floors["duckdb_insert_spans_per_s"]
    n_round = c["requests_per_round"] * c["spans_per_request"]
    retries = {
        s: sum(r["retries_503"] for r in raw["ingest"] if r["system"] == s) for s in ("workbench", "phoenix")
    }
    fetched = (
        f"fetch one {c['big_trace_spans']:,}-span trace through its own API (median of {c['fetch_repeats']})"
    )
    rows = [
        (
            "ingest until queryable (median)",
            f"{wb_rate:,.0f} spans/s",
            f"{phx_rate:,.0f} spans/s",
            f"{wb_rate / phx_rate:.1f}x",
        ),
        (
            f"time until all {n_round:,} spans of a round are queryable",
            f"{wb_q:.2f} s",
            f"{phx_q:.2f} s",
            f"{phx_q / wb_q:.1f}x less",
        ),
        (
            "time until the last 200 of a round",
            f"{wb_ack:.2f} s (durable)",
            f"{phx_ack:.2f} s (queued, not yet stored)",
            "",
        ),
        (
            f"ingest of the {c['big_trace_spans']:,}-span trace until queryable",
            f"{wb_big:,.0f} spans/s",
            f"{phx_big:,.0f} spans/s",
            f"{wb_big / phx_big:.1f}x",
        ),
        ("503 retries, all rounds", str(retries["workbench"]), str(retries["phoenix"]), ""),
        (fetched, f"{wb_fetch:.2f} s", f"{phx_fetch:.2f} s", f"{phx_fetch / wb_fetch:.1f}x less"),
        (
            "peak RSS, server incl. children",
            f"{mib['workbench']:,.0f} MiB",
            f"{mib['phoenix']:,.0f} MiB",
            f"{mib['workbench'] / mib['phoenix']:.2f}x",
        ),
        (
            "RSS after start, idle, incl. children",
            f"{idle_mib['workbench']:,.0f} MiB",
            f"{idle_mib['phoenix']:,.0f} MiB",
            f"{idle_mib['workbench'] / idle_mib['phoenix']:.2f}x",
        ),
        (
            "peak RSS, server process alone",
            f"{main_mib['workbench']:,.0f} MiB",
            f"{main_mib['phoenix']:,.0f} MiB",
            f"{main_mib['workbench'] / main_mib['phoenix']:.2f}x",
        ),
        (
            "floor: protobuf decode alone",
            f"{decode_rate:,.0f} spans/s",
            "",
            f"ingest is {wb_rate / decode_rate:.3f}x",
        ),
        (
            "floor: bare DuckDB insert of the same rows",
            f"{insert_rate:,.0f} spans/s",
            "",
            f"ingest is {wb_rate / insert_rate:.3f}x",
        ),
    ]
    lines = [
        f"### Workbench vs Arize Phoenix, {raw['date'][:16].replace('T', ' ')} UTC",
        "",
        f"Machine: {m['arch']}, {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, "
        f"DuckDB {m['duckdb']}, agent-audit-workbench {m['workbench']} (commit {m['workbench_commit']}, "
        f"{m['workbench_uncommitted_files']} uncommitted file(s)), arize-phoenix {raw['phoenix']} "
        f"(SQLite, its defaults). `uptime` load average (1/5/15 min): {raw['load']['start']} at the start, "
        f"{raw['load']['end']} at the end; other engineers were building and testing on the same cores, so "
        "absolute figures are low and noisy; the ratios come from alternating rounds under the same load.",
        "",
        f"Both got the same OTLP/HTTP protobuf bodies from one client process with {c['clients']} keep-alive "
        f"threads: {c['rounds']} rounds of {c['requests_per_round']} requests x {c['spans_per_request']} "
        f"spans ({n_round:,} spans a round, {c['bytes_per_span']:,} bytes/span, OpenInference + GenAI "
        "attributes), the order of the two systems alternating each round. The clock stops when the "
        "last span is queryable (Phoenix: the span count in its SQLite file; workbench: the span count "
        "from its read API).",
        "",
        "| measure | workbench serve | Phoenix | workbench vs Phoenix |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c_} | {d} |" for a, b, c_, d in rows),
        "",
        f"Raw runs: `{raw_path.relative_to(ROOT)}`. Fetch: Phoenix REST `GET /v1/projects/default/spans"
        "?trace_id=...` (1,000 spans a page, its maximum, cursor-paged); workbench "
        "`GET /api/v1/traces/{id}/steps` (one call); both timed until the JSON is parsed in the client.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=40, help="requests per round")
    ap.add_argument("--spans-per-request", type=int, default=50)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--big-trace-spans", type=int, default=10_000)
    ap.add_argument("--fetch-repeats", type=int, default=3)
    ap.add_argument("--phoenix-version", default=PHOENIX_VERSION)
    ap.add_argument("--keep-work", action="store_true", help="keep the run's databases and logs")
    report.add_output_args(ap)  # --no-write also leaves results/ alone
    args = ap.parse_args()

    raw = run(args)
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    raw_path = RAW_DIR / f"vs_phoenix_{raw['date'][:16].replace(':', '')}.json"
    section = summarize(raw, raw_path)
    print(section)
    if args.no_write:
        print(json.dumps(raw, indent=2))
        return
    raw_path.write_text(json.dumps(raw, indent=2) + "\n")
    report.write_section("phoenix", section, args.results)


if __name__ == "__main__":
    main()
