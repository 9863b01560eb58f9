"""The group commit's cost per span against a bare DuckDB append of the same spans, in one process.

What it measures: the CPU (this process, DuckDB's threads included) that `SpanWriter.write_group` spends
per 1,000 spans, with the checkpoint that folds its WAL into the file, for `growth.py`'s 50-span
OpenInference traces prepared as a decode worker prepares them, committed 4 requests per group (what 4
clients waiting for their 200s give the pipeline). Once with DuckDB at one thread and once at its
default (one per core), because `workbench serve` picks its thread count (`WORKBENCH_DUCKDB_THREADS`).
The floor, in the same run: a bare table of ids, name, start time, every attribute as JSON and the
canonical bytes, one append per request (`benchmarks/ingest.py`'s floor, timed by CPU here), with its
own checkpoint, at both thread counts, the cheaper kept. Also the bytes handed to DuckDB per span
(Arrow buffers of every table the commit writes) and the database file per span after the checkpoint.

Why CPU and not spans/s: on a shared 2-core machine the wall clock moves with the neighbours; CPU per
span moves much less. Decoding and normalizing (the decode worker's share) are not in these figures.

`--grow N` also grows a store to N spans with the writer alone, with DuckDB's row group merging at
checkpoints off (the writer's setting) and on (DuckDB's default), and compares the CPU per span near
100k with the CPU near N (issue #20: ingest must not slow down as the store grows).

Also where one commit's CPU goes, statement by statement, at 1 and 4 requests per commit, with the trace
list's rows timed against the DuckDB GROUP BY they replaced: the fixed cost per commit is what a server
pays for every small request (agents' exporters send a few spans at a time).

Run: `python benchmarks/write_path.py` (about a minute); `--traces N` for more; `--grow 1000000` (about
5 more minutes).
"""

from __future__ import annotations

import argparse
import linecache
import os
import re
import sys
import tempfile
import time
import types
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.growth import SPANS_PER_TRACE, TEMPLATES, make_body, template  # noqa: E402
from benchmarks.ingest import FLOOR_TABLE_SQL, floor_table  # noqa: E402
from collectors import decode  # noqa: E402
from collectors.pipeline import default_normalizer, normalizer_version_of  # noqa: E402
from collectors.workers import Limits, Prepared, prepare_body  # noqa: E402
from workbench.settings import Settings  # noqa: E402
from workbench.store import trace_commits  # noqa: E402
from workbench.store.batch import Batch, arrow_stream  # noqa: E402
from workbench.store.connection import Store  # noqa: E402
from workbench.store.writer import SpanWriter  # noqa: E402

GROUP = 4  # requests per group commit: 4 clients, each waiting for its answer


def writer_cpu(batches: list[Batch], path: Path, threads: int | None) -> tuple[float, float, float]:
    """(CPU ms per 1,000 spans, Arrow bytes per span handed to DuckDB, file bytes per span)."""
    store = Store(path)
    cur = store.cursor()
    if threads:
        cur.execute(f"SET threads = {threads}")
    writer = SpanWriter(store, normalizer_version=normalizer_version_of(default_normalizer()))
    spans = sum(b.span_count for b in batches)
    handed = sum(b.spans.nbytes + b.steps.nbytes for b in batches) + spans * (8 + 32 + 32)  # + ledger
    cpu = time.process_time()
    for i in range(0, len(batches), GROUP):
        group = batches[i : i + GROUP]
        writer.write_group(group, ["bench"] * len(group))
    cur.execute("CHECKPOINT")
    cpu = time.process_time() - cpu
    store.close()
    return 1e6 * cpu / spans, handed / spans, path.stat().st_size / spans


def floor_cpu(bodies: list[bytes], path: Path, threads: int | None) -> tuple[float, float]:
    """(CPU ms per 1,000 spans, Arrow bytes per span) of a bare append, one transaction per request."""
    tables = []
    for body in bodies:
        req = decode.parse_request(body, "application/x-protobuf")[0]
        records = decode.to_records(req, 1 << 20).records
        tables.append(floor_table(records))
    con = duckdb.connect(str(path))
    if threads:
        con.execute(f"SET threads = {threads}")
    con.execute(FLOOR_TABLE_SQL)
    spans = sum(t.num_rows for t in tables)
    cpu = time.process_time()
    for chunk in tables:  # noqa: B007 - read by DuckDB's replacement scan
        con.execute("INSERT INTO t SELECT * FROM chunk")
    con.execute("CHECKPOINT")
    cpu = time.process_time() - cpu
    con.close()
    return 1e6 * cpu / spans, sum(t.nbytes for t in tables) / spans


def renamed(batch: Batch, k: int) -> Batch:
    """The same spans under other trace ids (the last 8 hex digits replaced by k): new spans to the
    writer's redelivery check, at no decoding cost, so a store can grow to a million spans in minutes."""

    def fix(t: pa.Table) -> pa.Table:
        ids = pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(t.column("trace_id"), 0, 24), pa.scalar(f"{k:08x}"), ""
        )
        return t.set_column(t.schema.get_field_index("trace_id"), "trace_id", ids)

    return Batch(fix(batch.spans), fix(batch.steps), batch.digests)


OLD_TRACE_COMMITS_SQL = (
    "INSERT INTO trace_commits SELECT trace_id, min(start_time_ns), min(seq), max(seq) FROM _wb_new_steps"
    " GROUP BY trace_id ORDER BY min(seq)"
)  # what the writer ran before `trace_commits.rows_of`: the peer of its row in the breakdown


def _statement_at(filename: str, line: int) -> str:
    """The statement a writer line executes: the SQL literal on that line, else the line itself."""
    text = linecache.getline(filename, line).strip()
    literal = re.search(r'"([A-Z][^"]*)"', text)
    return (literal.group(1) if literal else text)[:60]


def commit_breakdown(batches: list[Batch], tmp: Path, group: int) -> tuple[float, list[tuple[str, float]]]:
    """(CPU ms per commit, [(statement, CPU ms per commit)]) with `group` requests per commit, DuckDB at
    one thread. The total comes from a plain run; the statements from a second run on a fresh store,
    each `execute` the writer makes timed on the thread's CPU clock through a profile hook (a wrapper
    around the cursor would hide the caller's Arrow streams from DuckDB's replacement scan; the hook
    slows the Python around the statements, which is why the total is not taken from that run).
    What the statements leave is Python: redelivery bookkeeping, the chain, the Merkle frontier, Arrow.
    """
    spent: defaultdict[str, float] = defaultdict(float)
    started: list[tuple[str, float]] = []

    def hook(frame: types.FrameType, event: str, arg: object) -> None:
        if getattr(arg, "__name__", "") != "execute":
            return
        if event == "c_call":
            started.append((_statement_at(frame.f_code.co_filename, frame.f_lineno), time.thread_time()))
        elif event in ("c_return", "c_exception") and started:
            name, t = started.pop()
            spent[name] += time.thread_time() - t

    totals = []
    for hooked in (False, True):
        store = Store(tmp / f"breakdown-{group}-{hooked}.duckdb")
        store.cursor().execute("SET threads = 1")
        writer = SpanWriter(store, normalizer_version=normalizer_version_of(default_normalizer()))
        cpu = time.thread_time()
        sys.setprofile(hook if hooked else None)
        try:
            for i in range(0, len(batches), group):
                writer.write_group(batches[i : i + group], ["bench"] * len(batches[i : i + group]))
        finally:
            sys.setprofile(None)
        totals.append(time.thread_time() - cpu)
        store.close()
    commits = -(-len(batches) // group)
    return 1000 * totals[0] / commits, [
        (k, 1000 * v / commits) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])
    ]


def trace_commits_peer(batches: list[Batch], path: Path, group: int) -> tuple[float, float]:
    """(ms of CPU per commit, rows_of and its INSERT; the same with the GROUP BY it replaced) on the same
    steps, in one transaction rolled back after each, alternating."""
    con = duckdb.connect(str(path))
    con.execute("SET threads = 1")
    con.execute(
        "CREATE TABLE trace_commits (trace_id VARCHAR NOT NULL, start_time_ns BIGINT NOT NULL,"
        " first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL)"
    )
    groups = []
    seq = 1
    for i in range(0, len(batches), group):
        steps = pa.concat_tables([b.steps for b in batches[i : i + group]])
        groups.append(steps.add_column(0, "seq", pa.array(range(seq, seq + steps.num_rows), pa.int64())))
        seq += steps.num_rows
    spent = [0.0, 0.0]
    for _ in range(3):
        for which in (0, 1):
            con.execute("BEGIN TRANSACTION")
            t = time.thread_time()
            for steps in groups:
                if which == 0:
                    trace_commits.append(con, steps)
                else:
                    _wb_new_steps = arrow_stream(steps.select(["seq", "trace_id", "start_time_ns"]))  # noqa: F841
                    con.execute(OLD_TRACE_COMMITS_SQL)
            spent[which] += time.thread_time() - t
            con.execute("ROLLBACK")
    con.close()
    return 1000 * spent[0] / (3 * len(groups)), 1000 * spent[1] / (3 * len(groups))


def breakdown_section(batches: list[Batch], tmp: Path) -> str:
    """Where one commit's CPU goes, statement by statement, at 1 and at 4 requests per commit."""
    per: dict[int, tuple[float, dict[str, float]]] = {}
    for group in (1, GROUP):
        total, parts = commit_breakdown(batches, tmp, group)
        per[group] = (total, dict(parts))
    names = sorted(per[1][1], key=lambda k: -per[1][1][k])
    rest = {g: total - sum(parts.values()) for g, (total, parts) in per.items()}
    lines = [
        "| statement | 1 request (50 spans) a commit | 4 requests (200 spans) a commit |",
        "|---|---|---|",
        *(f"| `{n}` | {per[1][1][n]:.2f} ms | {per[GROUP][1].get(n, 0.0):.2f} ms |" for n in names),
        f"| Python (the rest) | {rest[1]:.2f} ms | {rest[GROUP]:.2f} ms |",
        f"| **a commit in all** | **{per[1][0]:.2f} ms** | **{per[GROUP][0]:.2f} ms** |",
    ]
    new1, old1 = trace_commits_peer(batches, tmp / "peer-1.duckdb", 1)
    new4, old4 = trace_commits_peer(batches, tmp / "peer-4.duckdb", GROUP)
    return (
        f"Where a commit's CPU goes ({len(batches)} requests, DuckDB at one thread, CPU of the writer's "
        "thread per commit; `COMMIT` includes the checkpoints DuckDB runs at the WAL threshold):\n\n"
        + "\n".join(lines)
        + f"\n\nThe trace list's rows (`trace_commits.rows_of` and its INSERT) against the DuckDB GROUP BY "
        f"over the Arrow stream it replaced, the same steps, alternating: {new1:.2f} vs {old1:.2f} ms a "
        f"commit of 1 request (**{old1 / new1:.2f}x** less), {new4:.2f} vs {old4:.2f} ms of 4 "
        f"(**{old4 / new4:.2f}x**)."
    )


def decode_section(bodies: list[bytes], repeat: int = 5) -> str:
    """The decode worker's CPU per span, part by part, against a bare protobuf parse of the same bodies.

    Why here: the writer's figures above leave out what the decode worker spends before a batch reaches
    it, and on two cores that process competes with the writer. Its three parts are timed separately
    (each the lowest of `repeat` passes) so that a change to one shows in its own line."""
    from collectors.batching import build_batch
    from collectors.pipeline import safe_normalize
    from collectors.workers import decode_body

    limits, normalize = Limits.of(Settings()), default_normalizer()
    results = [decode_body(b, "application/x-protobuf", None, limits) for b in bodies]
    records = [r.records for r in results]
    steps = [[safe_normalize(normalize, x) for x in rs] for rs in records]
    spans = sum(len(rs) for rs in records)

    def best(work: Callable[[], object]) -> float:
        low = float("inf")
        for _ in range(repeat):
            began = time.process_time()
            work()
            low = min(low, time.process_time() - began)
        return 1e6 * low / spans

    parts = {
        "decode (decompress, parse, checks, records, canonical bytes)": best(
            lambda: [decode_body(b, "application/x-protobuf", None, limits) for b in bodies]
        ),
        "normalize (records to steps)": best(
            lambda: [[safe_normalize(normalize, x) for x in rs] for rs in records]
        ),
        "Arrow columns and digests": best(
            lambda: [build_batch(rs, st) for rs, st in zip(records, steps, strict=True)]
        ),
    }
    floor = best(lambda: [ExportTraceServiceRequest.FromString(b) for b in bodies])
    total = sum(parts.values())
    lines = [
        "| part | CPU per 1,000 spans | x the bare parse |",
        "|---|---|---|",
        *(f"| {name} | {ms:.1f} ms | {ms / floor:.1f}x |" for name, ms in parts.items()),
        f"| **the decode worker in all** | **{total:.1f} ms** | **{total / floor:.1f}x** |",
        f"| bare parse (`ExportTraceServiceRequest.FromString`) | {floor:.1f} ms | 1.0x |",
    ]
    return (
        f"The decode worker's share, in this process ({spans:,} spans, each part the lowest of {repeat} "
        "passes):\n\n" + "\n".join(lines)
    )


class Grower:
    """One store and its writer, taking rounds of the same requests under new trace ids."""

    def __init__(self, path: Path, batches: list[Batch], vacuum: bool, first_id: int) -> None:
        self.store = Store(path)
        cur = self.store.cursor()
        cur.execute("SET threads = 1")  # what `workbench serve` gives DuckDB on 2 cores
        self.writer = SpanWriter(self.store, normalizer_version=normalizer_version_of(default_normalizer()))
        if vacuum:
            cur.execute("RESET max_vacuum_tasks")  # after the writer set its own
        self.batches, self.next_id = batches, first_id

    def round(self) -> float:
        """Commit one round, 4 requests per group; CPU ms per 1,000 spans (checkpoints included)."""
        group = [renamed(b, self.next_id) for b in self.batches]
        self.next_id += 1
        cpu = time.process_time()
        for i in range(0, len(group), GROUP):
            self.writer.write_group(group[i : i + GROUP], ["bench"] * len(group[i : i + GROUP]))
        return 1e6 * (time.process_time() - cpu) / sum(b.span_count for b in group)

    def stored(self) -> int:
        return self.writer.last_seq


def grow_section(batches: list[Batch], spans: int, tmp: Path, rounds: int = 12) -> str:
    """The writer's CPU per span on a store of `spans` against one of ~100k, at the same moments,
    with row group merging off (the writer's setting) and at DuckDB's default."""
    lines = [
        f"| row group merging at checkpoints | CPU per 1,000 spans, store from {spans:,} | "
        "small store, same moments | big / small | file at the end |",
        "|---|---|---|---|---|",
    ]
    for name, vacuum in (("off (the writer's setting)", False), ("DuckDB's default (on)", True)):
        big = Grower(tmp / f"big-{vacuum}.duckdb", batches, vacuum, 0)
        while big.stored() < spans:
            big.round()
        small = Grower(tmp / f"small-{vacuum}.duckdb", batches, vacuum, 1_000_000)
        while small.stored() < 60_000:
            small.round()
        small_from = small.stored()
        got: tuple[list[float], list[float]] = ([], [])
        for _ in range(rounds):  # interleaved: the machine's drift falls on both alike
            got[0].append(big.round())
            got[1].append(small.round())
        b, m = (sum(g) / len(g) for g in got)
        size = (tmp / f"big-{vacuum}.duckdb").stat().st_size / 2**30
        lines.append(
            f"| {name} | {b:,.0f} ms | {m:,.0f} ms ({small_from:,} to {small.stored():,} stored) "
            f"| {m / b:.2f}x | {size:.2f} GB |"
        )
        for g in (big, small):
            g.store.close()
    return (
        f"The writer alone on a store grown to {spans:,} spans (`--grow`) and on one of 60k, in "
        f"{rounds} alternating rounds of {len(batches)} requests each (the same prepared requests under "
        "new trace ids, 4 per group commit; DuckDB at one thread, checkpointing itself at the writer's "
        "256 MB WAL threshold): CPU of this process per 1,000 spans, checkpoints included. Alternating "
        "rounds share the machine's drift, which sequential stretches do not (it moved a single store's "
        "figures by 15% in 10 minutes). Big / small >= 0.90x is flat (issue #20 item 2).\n\n"
        + "\n".join(lines)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=400, help="50-span traces (requests) to commit")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each, the lowest CPU kept")
    ap.add_argument("--grow", type=int, default=0, help="also grow a store to this many spans (>= 200k)")
    report.add_output_args(ap)
    args = ap.parse_args()
    run = report.Run()
    templates = [template(seed) for seed in range(TEMPLATES)]
    bodies = [make_body(templates[k % TEMPLATES], k)[0] for k in range(args.traces)]
    limits, normalize = Limits.of(Settings()), default_normalizer()
    prepared = [prepare_body(b, "application/x-protobuf", None, limits, normalize) for b in bodies]
    batches = [p.batch for p in prepared if isinstance(p, Prepared) and p.batch is not None]
    assert len(batches) == len(bodies), "every benchmark request prepares"
    results: dict[str, tuple[float, ...]] = {}
    with tempfile.TemporaryDirectory(prefix="wb-write-path-") as tmp:
        for k in range(args.repeat):
            for name, threads in (("writer, 1 DuckDB thread", 1), ("writer, DuckDB's default threads", None)):
                got: tuple[float, ...] = writer_cpu(batches, Path(tmp) / f"w{k}{threads}.duckdb", threads)
                results[name] = min(results.get(name, got), got)
            for threads in (1, None):
                got = floor_cpu(bodies, Path(tmp) / f"floor{k}{threads}.duckdb", threads)
                results["floor"] = min(results.get("floor", got), got)
    floor_ms = results["floor"][0]
    lines = [
        "| | CPU per 1,000 spans | x the floor's CPU | bytes handed to DuckDB per span | file per span |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        file_bytes = f"{r[2]:,.0f} B" if len(r) > 2 else "–"
        lines.append(f"| {name} | {r[0]:,.0f} ms | {r[0] / floor_ms:.2f}x | {r[1]:,.0f} B | {file_bytes} |")
    spans = args.traces * SPANS_PER_TRACE
    body = (
        f"{spans:,} spans of `growth.py`'s OpenInference traces, committed {GROUP} requests per group; "
        f"CPU of this process including DuckDB's threads and a final CHECKPOINT, lowest of {args.repeat}. "
        "Floor: a bare table (ids, name, start, attributes JSON, canonical bytes), one append per "
        f"request, the cheaper of 1 thread and the default. DuckDB's default here: {os.cpu_count()} "
        "threads.\n\n" + "\n".join(lines)
    )
    with tempfile.TemporaryDirectory(prefix="wb-write-breakdown-") as tmp:
        body += "\n\n" + breakdown_section(batches, Path(tmp))
    body += "\n\n" + decode_section(bodies)
    if args.grow:
        with tempfile.TemporaryDirectory(prefix="wb-write-grow-") as tmp:
            body += "\n\n" + grow_section(batches[:200], args.grow, Path(tmp))
    report.publish(args, "ingest", run.section("Write path: group commit against a bare append", body))


if __name__ == "__main__":
    main()
