"""Reads on a lake against the embedded file holding the same spans: the trace list, one trace, and the
trace search for a ticket, a phrase in every trace and a word in no step.

Why: issue #20's reads (list 100 traces, search in half a second at 1M spans) were built and measured on
the embedded file, where the trace search narrows by the full-text side index. A lake keeps no side index
(every node's spans would have to pass every indexing node) and its rows live in PostgreSQL until
compaction flushes them to Parquet, so its reads are measured here, as written and after `compact`
(what `serve --lake` runs every `lake_compact_every` seconds), against the embedded file with its side
index (what `serve` gives) and without (the same scan a lake runs).

How: one node's `SpanWriter` commits `growth.py`'s 50-span OpenInference traces, 4 requests a commit,
into a lake (PostgreSQL from the Debian package, fsync off: the fill is not what is measured) and into a
DuckDB file; the file's side index is built by the indexer's own `update`. Each read is the lowest of 3
after one warm-up, by a fresh read-only store; every search's rows are compared between the stores.

Run: `python benchmarks/lake_reads.py` (about 8 minutes at the default 100,000 spans: the lake's fill
is the slow part, one catalog commit per group).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import report  # noqa: E402
from benchmarks.growth import COMMON, SPANS_PER_TRACE, TEMPLATES, make_body, template  # noqa: E402
from collectors.pipeline import default_normalizer, normalizer_version_of  # noqa: E402
from collectors.workers import Limits, Prepared, prepare_body  # noqa: E402
from workbench.settings import Settings  # noqa: E402
from workbench.store import lake, lake_compact, queries, search_index  # noqa: E402
from workbench.store.batch import Batch  # noqa: E402
from workbench.store.connection import Store  # noqa: E402
from workbench.store.explore_traces import TraceFilter, TraceRow, search_traces  # noqa: E402
from workbench.store.writer import SpanWriter  # noqa: E402

GROUP = 4  # requests per group commit, as in write_path.py


def batches_of(traces: int) -> tuple[list[Batch], list[str]]:
    """`traces` prepared requests (one 50-span trace each) and their trace ids."""
    templates = [template(seed) for seed in range(TEMPLATES)]
    limits, normalize = Limits.of(Settings()), default_normalizer()
    out: list[Batch] = []
    ids: list[str] = []
    for k in range(traces):
        body, trace_id = make_body(templates[k % TEMPLATES], k)
        prepared = prepare_body(body, "application/x-protobuf", None, limits, normalize)
        assert isinstance(prepared, Prepared) and prepared.batch is not None, (
            "every benchmark request prepares"
        )
        out.append(prepared.batch)
        ids.append(trace_id)
    return out, ids


def fill(store: Store, batches: list[Batch]) -> float:
    """Commit every batch, GROUP a commit; seconds taken."""
    writer = SpanWriter(store, normalizer_version=normalizer_version_of(default_normalizer()))
    began = time.perf_counter()
    for i in range(0, len(batches), GROUP):
        group = batches[i : i + GROUP]
        writer.write_group(group, ["bench"] * len(group))
    return time.perf_counter() - began


def best_ms(read: Callable[[], object], tries: int = 3) -> tuple[float, object]:
    read()
    low, got = float("inf"), None
    for _ in range(tries):
        began = time.perf_counter()
        got = read()
        low = min(low, time.perf_counter() - began)
    return 1000 * low, got


def reads(open_store: Callable[[], Store], trace_id: str, ticket: str) -> dict[str, tuple[float, object]]:
    """Each read's lowest time and its answer (trace ids, for the comparison between stores)."""

    def ids(rows: list[TraceRow]) -> list[str]:
        return [r.trace_id for r in rows]

    store = open_store()
    try:
        return {
            "list 100 traces": best_ms(lambda: ids(search_traces(store, TraceFilter(), 100))),
            "open a 50-span trace": best_ms(lambda: len(queries.trace_steps(store, trace_id))),
            "search: one ticket": best_ms(lambda: ids(search_traces(store, TraceFilter(text=ticket), 100))),
            "search: a phrase in every trace": best_ms(
                lambda: ids(search_traces(store, TraceFilter(text=COMMON), 100))
            ),
            "search: a word in no step": best_ms(
                lambda: ids(search_traces(store, TraceFilter(text="qzvxkw no such word"), 100))
            ),
        }
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=100_000, help="spans in each store (50 per trace)")
    report.add_output_args(ap)
    args = ap.parse_args()
    run = report.Run()

    from workbench.server import postgres_local

    traces = max(GROUP, args.spans // SPANS_PER_TRACE)
    batches, trace_ids = batches_of(traces)
    spans = traces * SPANS_PER_TRACE
    middle = traces // 2
    probe_trace, ticket = trace_ids[middle], f"zqx{middle:08d}"
    root = Path(tempfile.mkdtemp(prefix="workbench-bench-lake-reads-"))
    pg_root = Path(tempfile.mkdtemp(prefix="workbench-bench-lake-reads-pg-"))
    pg = postgres_local.start(pg_root, durable=False)
    columns: dict[str, dict[str, tuple[float, object]]] = {}
    try:
        db = root / "workbench.duckdb"
        with Store(db) as store:
            file_fill = fill(store, batches)
        with Store(db) as store:
            index = search_index.SearchIndex(search_index.index_path(store))
            while index.update(store):
                pass
            index.close()
        read_only: Callable[[], Store] = lambda: Store(db, read_only=True)  # noqa: E731
        columns["file, side index"] = reads(read_only, probe_trace, ticket)
        aside = db.with_name(db.name + search_index.SUFFIX)
        aside.rename(aside.with_name(aside.name + ".aside"))
        columns["file, scan"] = reads(read_only, probe_trace, ticket)

        settings = Settings(
            data_dir=root / "node",
            lake=pg.create_database("lake"),
            data_path=str(root / "lake-data"),
            node_id="n1",
        )
        node = lake.open_lake(settings)
        try:
            lake_fill = fill(node, batches)
            lake_reader: Callable[[], Store] = lambda: lake.open_lake(settings, read_only=True)  # noqa: E731
            columns["lake, as written"] = reads(lake_reader, probe_trace, ticket)
            began = time.perf_counter()
            compacted = lake_compact.compact(node)
            compact_s = time.perf_counter() - began
            columns["lake, compacted"] = reads(lake_reader, probe_trace, ticket)
        finally:
            node.close()
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(pg_root, ignore_errors=True)

    names = list(columns)
    for read in columns[names[0]]:
        answers = {name: columns[name][read][1] for name in names}
        assert len({repr(a) for a in answers.values()}) == 1, f"{read}: the stores answered differently"
    lines = [
        "| read | "
        + " | ".join(names)
        + " | compacted lake / file, side index | compacted lake / file, scan |",
        "|---|" + "---|" * (len(names) + 2),
    ]
    for read in columns[names[0]]:
        ms = [columns[name][read][0] for name in names]
        lines.append(
            f"| {read} | "
            + " | ".join(f"{v:,.0f} ms" for v in ms)
            + f" | {ms[3] / ms[0]:.1f}x | {ms[3] / ms[1]:.1f}x |"
        )
    body = "\n".join(
        [
            f"{spans:,} spans ({traces:,} traces of {SPANS_PER_TRACE}) in each store, committed "
            f"{GROUP} requests a commit by one writer: the file in {file_fill:.0f} s, the lake in "
            f"{lake_fill:.0f} s (PostgreSQL fsync off). Compaction afterwards: {compact_s:.1f} s "
            f"({compacted.flushed_rows:,} inlined rows flushed to Parquet, {compacted.merged_files} files "
            "merged). Each read the lowest of 3 after a warm-up, on a fresh read-only store; every answer "
            "is the same in all four.",
            "",
            *lines,
        ]
    )
    report.publish(
        args, "lake", run.section(f"Lake reads at {spans:,} spans against the embedded file", body)
    )


if __name__ == "__main__":
    main()
