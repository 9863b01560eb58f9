"""Ingest and reads as the store grows: one real `workbench serve`, checkpoints at 100k, 300k, 1M spans.

Why: a store that holds months of agent traffic holds tens of millions of spans, and its ingest rate
must not depend on its size (issue #20). One run, one server: 4 client threads POST realistic 50-span
OpenInference traces (`benchmarks/payloads.py`) over OTLP/HTTP and wait for the durable 200. At each
checkpoint the clients pause and the benchmark reads through the API as a user would: list 100
traces, open a 50-span trace, a text search for one trace's ticket number and one for a phrase in every
trace, and the size of the data directory; then as a user sees it in Chromium (Debian's, headless): the
Traces page until its first trace rows show, and the Traces page opened with a search for a ticket
number until that trace's row shows (each the median of 3 loads; the browser runs only while the
clients are paused, and its time is left out of the next stretch's rate). Ingest is reported over the
whole stretch and over its last part (the marginal rate at that size); the goal is the marginal rate
at 1M >= 90% of the one at 100k.

Side by side, last: the big store's server and a fresh one filled to half the first checkpoint ingest
at the same moments, half the clients each (`--side-s`, 60 s). On a shared machine the CPU's speed
drifts by 15-30% in the minutes between the 100k and the 1M stretch, and a sequential ratio cannot tell
that from growth; two servers at the same moments share the drift, so their ratio is the store's effect.

The floors, measured in the same run: for ingest, a bare DuckDB append of the same bytes' decoded rows,
one transaction per request as the server commits them; for the pages, the Traces page's table over
rows made up in memory with no store behind it (`benchmarks/traces_floor_app.py`), what Streamlit and
its grid alone cost in the same browser. py-spy samples the server for a while in the first
and the last stretch; the functions whose share of the samples grew most are printed, which names
where the extra time goes.

Bodies: a few templates are serialized once; each trace is a template with a new trace id, new span
ids, times moved forward and its own ticket number, patched in place at byte offsets found once (the
fields keep their lengths), so the load generator costs microseconds a trace and the server sees
unique, valid, realistic traces.

    python benchmarks/growth.py [--quick | --checkpoints 5000,10000] [--max-spans 1000000] [--clients 4]
                                [--no-profile] [--no-browser] [--no-write] [--results FILE]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import duckdb
import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.browser import chromium, floor_command, seconds_until, start_until_ready  # noqa: E402
from benchmarks.ingest import floor_duckdb_insert, start_server  # noqa: E402
from benchmarks.payloads import export_request, kv  # noqa: E402
from workbench.store import search_index  # noqa: E402
from workbench.store.connection import Store  # noqa: E402
from workbench.store.explore_traces import TraceFilter, search_traces  # noqa: E402

SPANS_PER_TRACE = 50
TEMPLATES = 8
TICKET = b"zqx00000000"  # patched to zqx<8 digits>, one per trace: the selective search's needle
COMMON = "after a dry run"  # in every step: the unselective search
FULL = (100_000, 300_000, 1_000_000)
QUICK = (20_000, 60_000, 200_000)
BEYOND = (3_000_000, 10_000_000)
PAGE_TRIES = 3
# The Traces page's table (a canvas grid) keeps the text of its visible rows in an accessibility table
# in the DOM; a row's "open" cell is `/replay?trace=<id>`. So [row text, caption text] both present
# means the page shows rows, not only its header or a previous run's caption.
ROWS_SHOWN = """([row, caption]) => {
  const grid = document.querySelector('[data-testid="stDataFrame"]');
  return !!grid && grid.textContent.includes(row) && document.body.textContent.includes(caption);
}"""


@dataclass
class Template:
    body: bytes
    trace_at: list[int]
    span_at: list[list[int]]  # per span: offsets of its id (its own and its child's parent field)
    times_at: list[int]  # offsets of every fixed64 time
    ticket_at: int


def openinference_messages(req: ExportTraceServiceRequest, ticket: bytes) -> None:
    """The GenAI message attributes of `payloads` as OpenInference's flattened `llm.*_messages`, which
    its convention reads into the step's input and output text (the text the search looks through);
    every system message carries the COMMON phrase, the first span's user message the ticket."""
    for n, span in enumerate(req.resource_spans[0].scope_spans[0].spans):
        keep, flat = [], []
        for a in span.attributes:
            if a.key in ("gen_ai.input.messages", "gen_ai.output.messages"):
                side = "input" if "input" in a.key else "output"
                for i, m in enumerate(json.loads(a.value.string_value)):
                    content = m.get("content") or " ".join(p["content"] for p in m.get("parts", []))
                    if side == "input" and i == 0:
                        content += " Archive old rows only " + COMMON + "."
                    if n == 0 and side == "input" and i == 1:
                        content += " ticket " + ticket.decode()
                    flat += [kv(f"llm.{side}_messages.{i}.message.role", m["role"])]
                    flat += [kv(f"llm.{side}_messages.{i}.message.content", content)]
            else:
                keep.append(a)
        del span.attributes[:]
        span.attributes.extend(keep + flat)


def template(seed: int) -> Template:
    req = export_request(seed, SPANS_PER_TRACE)
    openinference_messages(req, TICKET)
    spans = req.resource_spans[0].scope_spans[0].spans
    body = req.SerializeToString()

    def offsets(needle: bytes) -> list[int]:
        out, at = [], body.find(needle)
        while at >= 0:
            out.append(at)
            at = body.find(needle, at + 1)
        return out

    times = []
    for s in spans:
        for t in (s.start_time_unix_nano, s.end_time_unix_nano):
            found = offsets(struct.pack("<Q", t))
            assert len(found) == 1, "a time's bytes must be unique in the template"
            times += found
    trace_at = offsets(spans[0].trace_id)
    assert len(trace_at) == SPANS_PER_TRACE
    span_at = [offsets(s.span_id) for s in spans]
    (ticket_at,) = offsets(TICKET)
    return Template(body, trace_at, span_at, times, ticket_at)


def make_body(t: Template, k: int) -> tuple[bytes, str]:
    """Trace number k from a template: unique ids, times k seconds later, ticket k. Returns (body, id)."""
    b = bytearray(t.body)
    ids = os.urandom(16 + 8 * SPANS_PER_TRACE)
    for at in t.trace_at:
        b[at : at + 16] = ids[:16]
    for i, where in enumerate(t.span_at):
        sid = ids[16 + 8 * i : 24 + 8 * i]
        for at in where:
            b[at : at + 8] = sid
    shift = k * 1_000_000_000
    for at in t.times_at:
        (v,) = struct.unpack_from("<Q", b, at)
        struct.pack_into("<Q", b, at, v + shift)
    b[t.ticket_at : t.ticket_at + len(TICKET)] = b"zqx%08d" % (k % 10**8)
    return bytes(b), ids[:16].hex()


@dataclass
class Load:
    """The clients' shared state: the next trace number, the acknowledged spans over time."""

    templates: list[Template]
    next_k: int = 0
    acked: int = 0
    progress: list[tuple[float, int]] = field(default_factory=list)  # (time, spans acknowledged)
    sent: list[tuple[int, str]] = field(default_factory=list)  # (k, trace id)
    lock: threading.Lock = field(default_factory=threading.Lock)
    failures: Counter[str] = field(default_factory=Counter)


def send_until(port: int, load: Load, target: int, clients: int) -> None:
    """Send traces on `clients` keep-alive connections until `target` spans are acknowledged."""

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with load.lock:
                if load.next_k * SPANS_PER_TRACE >= target:
                    break
                k = load.next_k
                load.next_k += 1
            body, trace_id = make_body(load.templates[k % len(load.templates)], k)
            while True:
                conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    break
                load.failures[f"HTTP {resp.status}"] += 1
                if resp.status != 503:
                    raise SystemExit(f"the server answered {resp.status}")
                time.sleep(0.05)
            with load.lock:
                load.acked += SPANS_PER_TRACE
                load.progress.append((time.perf_counter(), load.acked))
                load.sent.append((k, trace_id))
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def rate_over(progress: list[tuple[float, int]], first: int, last: int, paused_s: float = 0.0) -> float:
    """Spans/s between the acknowledgements of `first` and `last` spans, less `paused_s` seconds in
    between when no client sent."""
    t0 = next(t for t, n in progress if n >= first)
    t1 = next(t for t, n in progress if n >= last)
    return (last - first) / max(t1 - t0 - paused_s, 1e-9)


def get_ms(port: int, path: str, repeat: int = 5) -> tuple[float, dict[str, object]]:
    """Median milliseconds of GET path (after one warm-up call), and the last answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    times, answer = [], {}
    for i in range(repeat + 1):
        t = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise SystemExit(f"GET {path}: {resp.status} {data[:200]!r}")
        if i:
            times.append((time.perf_counter() - t) * 1000)
        answer = json.loads(data)
    conn.close()
    return statistics.median(times), answer


def server_cpu_s(pid: int) -> float:
    """CPU seconds of the server and its children (decode workers): a per-span cost that a shared,
    loaded machine changes far less than it changes the wall-clock rate."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def profile(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the server (all threads, idle ones left out) into collapsed stacks."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy not found: no profile (pip install py-spy)")
        return None
    cmd = [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "50"]
    cmd += ["--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(spy: subprocess.Popen[bytes]) -> None:
    """End a profile now (py-spy writes what it has sampled on SIGINT) or when its duration is up."""
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
    spy.wait(60)


def self_and_total(path: Path) -> tuple[Counter[str], Counter[str], int]:
    """Per function: samples where it is on the stack (total) and on top (self); and all samples."""
    total: Counter[str] = Counter()
    own: Counter[str] = Counter()
    n = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        frames = [f.split(" (")[0] + " (" + f.split("(")[-1].split(":")[0] + ")" for f in stack.split(";")]
        n += c
        for f in set(frames):
            total[f] += c
        own[frames[-1]] += c
    return own, total, n


def compare_profiles(small: Path, large: Path, top: int = 12) -> list[str]:
    """Functions by the growth of their share of the server's samples from the small to the large store."""
    if not (small.exists() and large.exists()):
        return ["(no profile)"]
    _, ts, ns = self_and_total(small)
    _, tl, nl = self_and_total(large)
    grown = sorted(set(ts) | set(tl), key=lambda f: tl[f] / max(nl, 1) - ts[f] / max(ns, 1), reverse=True)
    lines = ["| function (file) | share of samples, small store | large store |", "|---|---|---|"]
    for f in grown[:top]:
        lines.append(f"| `{f}` | {100 * ts[f] / max(ns, 1):.1f}% | {100 * tl[f] / max(nl, 1):.1f}% |")
    return lines


def drain(proc: subprocess.Popen[bytes]) -> collections.deque[bytes]:
    """Read the server's output on a thread from now on (the last 200 lines kept): a pipe nobody reads
    fills up and blocks the server on its next log line, and a browser makes the UI log."""
    tail: collections.deque[bytes] = collections.deque(maxlen=200)
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: tail.extend(out), daemon=True).start()
    return tail


def pages_s(base_url: str, searches: list[tuple[str, str]], profile_dir: Path) -> tuple[float, float, float]:
    """Median seconds until the Traces page at `base_url` shows its first rows, and until it shows a
    search's row when opened with `?q=` (what its search box sets): `searches` holds (text, the found
    row's text). One load of the page first, so the medians are a returning user's (the JavaScript
    bundle cached, and the page's per-trace task cache filled for the traces it lists), then one of
    each per search: a different ticket each time (a search the server has not just answered). Each
    load is a new Streamlit session that runs the page's queries. Returns (Traces page, search page,
    that first load)."""
    lists, found = [], []
    with chromium(profile_dir) as ctx:
        page = ctx.new_page()
        first = seconds_until(page, base_url, ROWS_SHOWN, ["/replay?trace=", "trace(s)"])
        for q, row in searches:
            lists.append(seconds_until(page, base_url, ROWS_SHOWN, ["/replay?trace=", "trace(s)"]))
            found.append(seconds_until(page, f"{base_url}?q={quote(q)}", ROWS_SHOWN, [row, "matching"]))
    shutil.rmtree(profile_dir, ignore_errors=True)
    return statistics.median(lists), statistics.median(found), first


def floor_pages_s(tmp: Path) -> tuple[float, float, float]:
    """pages_s on the floor: the Traces page's table over rows made up in memory, no store behind it
    (benchmarks/traces_floor_app.py), served the same way, in the same browser."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    proc, port = start_until_ready(
        floor_command(ROOT / "benchmarks" / "traces_floor_app.py"), env, tmp / "floor.log"
    )
    try:
        searches = [(f"zqx{k:08d}", "/replay?trace=") for k in range(PAGE_TRIES)]
        return pages_s(f"http://127.0.0.1:{port}/", searches, tmp / "chromium-profile-floor")
    finally:
        proc.terminate()
        proc.wait(30)


@dataclass
class Side:
    """One server's share of the side-by-side window: spans acknowledged, seconds, CPU seconds."""

    spans: int
    seconds: float
    cpu_s: float
    stored_from: int

    @property
    def rate(self) -> float:
        return self.spans / self.seconds

    @property
    def cpu_ms_per_1k(self) -> float:
        return 1000 * self.cpu_s / (self.spans / 1000)


def file_searches(db: Path, texts: list[tuple[str, str]], tries: int = 3) -> list[str]:
    """Searches by a command on the file once the server has stopped: `search_traces` (what `workbench
    traces --search` runs without a server) over the read-only file, narrowed by the side index the
    server left beside it, against the peer: the same search with that index moved aside (the scan every
    command ran before `search_index.left_beside`). Median of `tries` after one warm-up; both answers
    compared row for row."""
    index = db.with_name(db.name + search_index.SUFFIX)
    aside = index.with_name(index.name + ".aside")
    lines = [
        "| search on the file, no server | with the index left beside it | scan (index moved aside) | ratio |"
    ]
    lines.append("|---|---|---|---|")
    with Store(db, read_only=True) as store:
        assert isinstance(search_index.left_beside(store), search_index.LeftIndex), "the server left an index"
        for name, text in texts:
            got: list[tuple[float, list[object]]] = []
            for hidden in (False, True):
                if hidden:
                    index.rename(aside)
                try:
                    search_traces(store, TraceFilter(text=text), 100)
                    times = []
                    for _ in range(tries):
                        t = time.perf_counter()
                        rows = search_traces(store, TraceFilter(text=text), 100)
                        times.append(time.perf_counter() - t)
                    got.append((statistics.median(times), list(rows)))
                finally:
                    if hidden:
                        aside.rename(index)
            assert got[0][1] == got[1][1], f"the index changed the answer for {text!r}"
            fast, slow = got[0][0], got[1][0]
            lines.append(
                f"| {name} ({len(got[0][1])} traces) | {1000 * fast:,.0f} ms | {1000 * slow:,.0f} ms "
                f"| {slow / fast:.1f}x |"
            )
    return lines


def side_by_side(
    big_pid: int, big_port: int, big: Load, tmp: Path, small_at: int, clients: int, seconds: float
) -> tuple[Side, Side]:
    """The big store's server and a fresh one around `small_at` spans, ingesting at the same moments.

    Why: on a shared machine the speed of the CPU drifts by 15-30% over the minutes between a run's
    100k and 1M stretches (the decode workers, whose work does not depend on the store, drifted as much
    as the writer), which no sequential measurement can tell from growth. Two servers sharing the same
    moments share the drift: the ratio of their rates is the store's effect alone. The small server is
    filled to half of `small_at` alone, then each gets half the clients for `seconds` (after 10 s of
    warm-up), so its window lies around `small_at` stored spans."""
    data = tmp / "side-small"
    small_proc, small_port = start_server(data)
    drain(small_proc)
    small = Load(big.templates)
    try:
        send_until(small_port, small, small_at // 2, clients)
        stop = threading.Event()

        def drive(port: int, load: Load) -> None:
            while not stop.is_set():
                send_until(port, load, load.acked + 20 * SPANS_PER_TRACE, max(1, clients // 2))

        threads = [
            threading.Thread(target=drive, args=(big_port, big)),
            threading.Thread(target=drive, args=(small_port, small)),
        ]
        for t in threads:
            t.start()
        time.sleep(10)
        start = [(big.acked, server_cpu_s(big_pid)), (small.acked, server_cpu_s(small_proc.pid))]
        t0 = time.perf_counter()
        time.sleep(seconds)
        end = [(big.acked, server_cpu_s(big_pid)), (small.acked, server_cpu_s(small_proc.pid))]
        elapsed = time.perf_counter() - t0
        stop.set()
        for t in threads:
            t.join()
    finally:
        small_proc.terminate()
        small_proc.wait(120)
    big_side, small_side = (
        Side(e[0] - s[0], elapsed, e[1] - s[1], s[0]) for s, e in zip(start, end, strict=True)
    )
    return big_side, small_side


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="checkpoints at 20k, 60k, 200k spans")
    ap.add_argument("--checkpoints", help="comma-separated span counts instead (>= 5000: 100 traces)")
    ap.add_argument("--max-spans", type=int, default=0, help="go on to 3M and 10M up to this many spans")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--profile-s", type=int, default=0, help="seconds of py-spy per profiled stretch")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--no-browser", action="store_true", help="no page timings in Chromium")
    ap.add_argument("--side-s", type=float, default=60.0, help="seconds of the side-by-side window")
    ap.add_argument("--keep", type=Path, help="keep the data directory here (for a look afterwards)")
    report.add_output_args(ap)
    args = ap.parse_args()
    checkpoints = list(QUICK if args.quick else FULL)
    if args.checkpoints:
        checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    checkpoints += [c for c in BEYOND if c <= args.max_spans and c > checkpoints[-1]]
    profile_s = args.profile_s or (15 if args.quick else 30)
    run = report.Run()

    templates = [template(seed) for seed in range(TEMPLATES)]
    span_bytes = sum(len(t.body) for t in templates) / (TEMPLATES * SPANS_PER_TRACE)
    load = Load(templates)
    rows: list[str] = []
    marginal: list[float] = []
    cpu_per_1k: list[float] = []
    page_s: list[tuple[float, float]] = []  # (Traces page, text search page) per checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        data = args.keep or Path(tmp) / "data"
        proc, port = start_server(data)
        server_log = drain(proc)
        ui_url = json.loads((data / "server.json").read_text())["ui_url"]
        profiles: list[Path] = []
        try:
            done = 0
            browser_s = 0.0  # the last checkpoint's page timings: not part of the next stretch's ingest
            for at, target in enumerate(checkpoints):
                spy = None
                prof = Path(tmp) / f"profile-{target}.txt"
                if not args.no_profile and at in (0, len(checkpoints) - 1):
                    # Start sampling once the stretch is under way, ending before the stretch does.
                    lead = int(0.3 * (target - done))
                    send_until(port, load, done + lead, args.clients)
                    spy = profile(proc.pid, profile_s, prof)
                    profiles.append(prof)
                # CPU over the stretch's last fifth (the marginal cost at this size), py-spy aside:
                # the profile ends where the last fifth begins, whatever the rate (a fixed 30 s
                # outlasted a whole 100k stretch on a fast machine, and the clients then waited for it).
                tail = max(SPANS_PER_TRACE, (target - done) // 5)
                send_until(port, load, target - tail, args.clients)
                spy_s = time.perf_counter()
                if spy is not None:
                    stop_profile(spy)
                spy_s = time.perf_counter() - spy_s
                cpu0 = server_cpu_s(proc.pid)
                tail_from = load.acked
                t0 = time.perf_counter()
                send_until(port, load, target, args.clients)
                t1 = next(t for t, n in load.progress if n >= target)
                cpu_ms = 1000 * (server_cpu_s(proc.pid) - cpu0) / ((load.acked - tail_from) / 1000)
                cpu_per_1k.append(cpu_ms)
                whole = rate_over(load.progress, max(done, SPANS_PER_TRACE), target, browser_s + spy_s)
                last = (target - tail_from) / max(t1 - t0, 1e-9)
                marginal.append(last)
                time.sleep(2)  # let the findings scanner's debounce pass before timing reads
                list_ms, page = get_ms(port, "/api/v1/traces?limit=100")
                assert len(page["traces"]) == 100  # type: ignore[arg-type]
                rng = random.Random(target)
                opens = []
                for _ in range(5):
                    _, trace_id = rng.choice(load.sent)
                    ms, steps = get_ms(port, f"/api/v1/traces/{trace_id}/steps?limit=50", repeat=1)
                    assert len(steps["steps"]) == SPANS_PER_TRACE  # type: ignore[arg-type]
                    opens.append(ms)
                k, _ = rng.choice(load.sent)
                rare_ms, found = get_ms(port, f"/api/v1/traces?limit=100&q=zqx{k:08d}", repeat=3)
                assert len(found["traces"]) >= 1  # type: ignore[arg-type]
                common_ms, found = get_ms(port, f"/api/v1/traces?limit=100&q={quote(COMMON)}", repeat=3)
                assert len(found["traces"]) == 100  # type: ignore[arg-type]
                pages = "| – | – "
                browser_s = time.perf_counter()
                if not args.no_browser:
                    tickets = random.Random(-target).sample(load.sent, PAGE_TRIES)
                    searches = [(f"zqx{k % 10**8:08d}", f"/replay?trace={t}") for k, t in tickets]
                    list_s, search_s, first_s = pages_s(ui_url, searches, Path(tmp) / "chromium-profile")
                    page_s.append((list_s, search_s))
                    pages = f"| {list_s:.2f} s (first {first_s:.1f} s) | {search_s:.2f} s "
                browser_s = time.perf_counter() - browser_s
                size = dir_bytes(data)
                rows.append(
                    f"| {target:,} | {whole:,.0f} spans/s | {last:,.0f} spans/s | {cpu_ms:,.0f} ms "
                    f"| {list_ms:.0f} ms "
                    f"| {statistics.median(opens):.0f} ms | {rare_ms:.0f} ms | {common_ms:.0f} ms "
                    f"{pages}| {size / 1e9:.2f} GB |"
                )
                print(rows[-1], flush=True)
                done = target
            side = side_by_side(proc.pid, port, load, Path(tmp), checkpoints[0], args.clients, args.side_s)
        except BaseException:
            print(b"".join(server_log).decode(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            proc.terminate()
            proc.wait(120)
        k, _ = random.Random(1).choice(load.sent)
        on_file = file_searches(
            data / "workbench.duckdb",
            [
                ("one ticket", f"zqx{k % 10**8:08d}"),
                ("a phrase in every trace", COMMON),
                ("a word in no step", "qqzzxxnowhere"),
            ],
        )
        print("\n".join(on_file), flush=True)
        # The floor: the same bytes, decoded, appended to a bare table one request per transaction.
        sample = [make_body(templates[k % TEMPLATES], k)[0] for k in range(400)]
        floor_s = floor_duckdb_insert(sample, Path(tmp) / "floor.duckdb")
        floor = len(sample) * SPANS_PER_TRACE / floor_s
        page_floor = floor_pages_s(Path(tmp)) if page_s else (0.0, 0.0, 0.0)
        hot = compare_profiles(profiles[0], profiles[-1]) if len(profiles) == 2 else ["(no profile)"]

    first, final = marginal[0], marginal[-1]
    lines = [
        f"One `workbench serve`, {args.clients} OTLP/HTTP clients sending {SPANS_PER_TRACE}-span "
        f"OpenInference traces ({span_bytes:,.0f} bytes/span protobuf), durable 200s; reads through "
        "the API with the clients paused (median of 5, search of 3); the Traces page, and the Traces page "
        "with a search for one ticket, in headless Chromium: seconds until its first rows show (median of 3 "
        "after one load, a new ticket each time; first: that load, the browser's cache and the page's "
        "per-trace task cache cold). Marginal: the stretch's last fifth, "
        "after py-spy has finished (the whole-stretch rate of a profiled stretch includes its overhead).",
        "",
        "| stored spans | ingest (stretch) | ingest (marginal) | server CPU per 1,000 spans (marginal) "
        "| list 100 traces | open a 50-span trace | search: one ticket | search: a phrase in every trace "
        "| Traces page | text search page | data directory |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Marginal ingest at {checkpoints[-1]:,} spans is **{final / first:.2f}x** the rate at "
        f"{checkpoints[0]:,} (goal >= 0.90); by server CPU per span, which the machine's load moves "
        f"less, **{cpu_per_1k[0] / cpu_per_1k[-1]:.2f}x**.",
        "",
        f"**Side by side** (the same moments, so the machine's drift cancels): the {checkpoints[-1]:,}-span "
        f"server and a fresh one filled to {side[1].stored_from:,} spans, {max(1, args.clients // 2)} "
        f"clients each for {side[0].seconds:.0f} s. The big store's server: {side[0].rate:,.0f} spans/s, "
        f"{side[0].cpu_ms_per_1k:,.0f} ms of CPU per 1,000 spans; the small one: {side[1].rate:,.0f} "
        f"spans/s, {side[1].cpu_ms_per_1k:,.0f} ms (it ended at {side[1].stored_from + side[1].spans:,}). "
        f"Ingest at {checkpoints[-1]:,} stored spans is **{side[0].rate / side[1].rate:.2f}x** the rate "
        f"of the small store (goal >= 0.90); by CPU per span "
        f"**{side[1].cpu_ms_per_1k / side[0].cpu_ms_per_1k:.2f}x**.",
        "",
        f"Floor: a bare DuckDB append of the same rows, one transaction per request: {floor:,.0f} spans/s; "
        f"ingest at {checkpoints[-1]:,} spans is **{final / floor:.3f}x** the floor (goal >= 0.5).",
        *(
            [
                "Pages' floor: the Traces page's table over rows made up in memory, no store behind it "
                "(`benchmarks/traces_floor_app.py`), served the same way, same browser: "
                f"{page_floor[0]:.2f} s (first {page_floor[2]:.1f} s), with a search {page_floor[1]:.2f} s. "
                f"At {checkpoints[-1]:,} spans "
                f"the Traces page is **{page_s[-1][0] / page_floor[0]:.1f}x** that floor, the text search "
                f"page **{page_s[-1][1] / page_floor[1]:.1f}x** (goal: the search page < 1.5 s at 1M spans)."
            ]
            if page_s
            else []
        ),
        "",
        f"A command on the file after the server stopped ({checkpoints[-1]:,} spans; `search_traces`, median "
        "of 3 after a warm-up; the peer is the same search with the side index moved aside, as every "
        "command ran before it read the index a server leaves):",
        "",
        *on_file,
        "",
        f"Where the extra time goes (py-spy, from 30% of the first and the last stretch until their last "
        f"fifth or for {profile_s} s, whichever ends first; a function's "
        "share of the server's non-idle samples, biggest growth first):",
        "",
        *hot,
    ]
    if load.failures:
        lines.append(f"\nRetried answers: {dict(load.failures)}")
    section = run.section(
        "Growth: ingest and reads from 100k to 1M spans", "\n".join(lines), {"DuckDB": duckdb.__version__}
    )
    report.publish(args, "growth", section)


if __name__ == "__main__":
    main()
