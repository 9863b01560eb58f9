"""The search side index's write cost per 1,000 steps, against a floor and the previous way, same run.

Why: the indexer runs inside `workbench serve` beside the writer, on the same two cores, so its CPU is
taken from ingest (18-35% of the server's samples in the 2026-12-03 growth runs). This measures it
alone, by CPU time of this process, on the steps of the growth benchmark's 50-span OpenInference
traces (`benchmarks/growth.py`), stored by the real decoder, normalizer and writer:

- the indexer as `serve` runs it (`SearchIndex.update` until caught up), in chunks of 50 steps (one
  request per update) and of 1,000 (what a second of ingest gives it under load);
- the previous way, a peer on the same rows: the words of each body found by a Python regex, looked up
  500 at a time, the new ones inserted (what `_append` did before fts5vocab);
- the floor: the same lower-cased bodies inserted into a bare contentless FTS5 table (SQLite's own
  tokenizing and indexing, nothing else), and DuckDB reading them out of the store.

    python benchmarks/search_write.py [--traces 200] [--no-write] [--results FILE]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.growth import SPANS_PER_TRACE, TEMPLATES, make_body, template  # noqa: E402
from collectors.workers import Limits, Prepared, prepare_body  # noqa: E402
from workbench.store import search_index  # noqa: E402
from workbench.store.connection import Store  # noqa: E402
from workbench.store.writer import SpanWriter  # noqa: E402

Rows = Sequence[tuple[int, str, str]]


def build_store(path: Path, traces: int) -> Store:
    store = Store(path)
    store.migrate()
    writer = SpanWriter(store)
    templates = [template(seed) for seed in range(TEMPLATES)]
    limits = Limits(1 << 26, 10_000, 1 << 20)
    for k in range(traces):
        prepared = prepare_body(
            make_body(templates[k % TEMPLATES], k)[0], "application/x-protobuf", None, limits
        )
        assert isinstance(prepared, Prepared) and prepared.batch is not None
        writer.write_batches([prepared.batch], ["bench"])
    return store


def cpu_s(fn: Callable[[], object], repeat: int = 2) -> float:
    """Best CPU seconds of this process over `repeat` runs (CPU, not wall: the machine is shared)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return path


def index_all(store: Store, path: Path, chunk: int) -> None:
    """The indexer as serve runs it, `chunk` seqs an update."""
    saved, search_index.CHUNK = search_index.CHUNK, chunk
    try:
        index = search_index.SearchIndex(fresh(path))
        while index.update(store):
            pass
    finally:
        search_index.CHUNK = saved


def regex_way(rows: Rows, path: Path, chunk: int) -> None:
    """The peer: `_append` before fts5vocab, on the same rows (documents, then the words by regex)."""
    index = search_index.SearchIndex(fresh(path))
    conn = index._conn
    for at in range(0, len(rows), chunk):
        part_rows = rows[at : at + chunk]
        conn.executemany("INSERT INTO docs VALUES (?, ?, ?)", [(seq, seq, t) for seq, t, _ in part_rows])
        conn.executemany("INSERT INTO text (rowid, body) VALUES (?, ?)", [(s, b) for s, _, b in part_rows])
        seen = {w for _, _, body in part_rows for w in search_index._WORD.findall(body)}
        old: set[str] = set()
        listed = sorted(seen)
        for i in range(0, len(listed), 500):
            part = listed[i : i + 500]
            sql = f"SELECT word FROM words WHERE word IN ({', '.join('?' * len(part))})"
            old.update(r[0] for r in conn.execute(sql, part))
        new = [(w,) for w in listed if w not in old]
        conn.executemany("INSERT INTO words VALUES (?)", new)
        conn.executemany("INSERT INTO word_grams (word) VALUES (?)", new)
        conn.commit()


def bare_fts5(rows: Rows, path: Path) -> None:
    """The floor: the bodies into a contentless FTS5 table with the same tokenizer, one transaction."""
    with sqlite3.connect(fresh(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(body, content='', detail=none, tokenize='ascii')")
        conn.executemany("INSERT INTO t (rowid, body) VALUES (?, ?)", [(s, b) for s, _, b in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=200, help="50-span traces stored before measuring")
    report.add_output_args(ap)
    args = ap.parse_args()
    run = report.Run()
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(Path(tmp) / "w.duckdb", args.traces)
        cur = store.cursor()
        rows: Rows = cur.execute(search_index._DOC_SQL + " ORDER BY seq").fetchall()
        steps = len(rows)
        per_k = 1000 / steps
        avg = sum(len(b) for _, _, b in rows) / steps
        side = Path(tmp) / "w.duckdb.search.sqlite"
        read = cpu_s(lambda: cur.execute(search_index._DOC_SQL + " ORDER BY seq").fetchall())
        floor = cpu_s(lambda: bare_fts5(rows, Path(tmp) / "bare.sqlite"))
        new = {c: cpu_s(partial(index_all, store, side, c)) for c in (50, 1000)}
        old = {c: cpu_s(partial(regex_way, rows, Path(tmp) / "old.sqlite", c)) for c in (50, 1000)}
        words = sqlite3.connect(side).execute("SELECT count(*) FROM words").fetchone()[0]

    def ms(s: float) -> str:
        return f"{1000 * s * per_k:,.0f} ms"

    lines = [
        f"{steps:,} steps of {args.traces} growth-benchmark traces ({SPANS_PER_TRACE} OpenInference spans "
        f"each), {avg:,.0f} characters of step text each, {words:,} distinct words; CPU time of this process "
        "per 1,000 steps, best of 2.",
        "",
        "| what | 50 steps an update | 1,000 steps an update |",
        "|---|---|---|",
        f"| the indexer (`SearchIndex.update`: DuckDB read, documents, FTS5, words by fts5vocab) "
        f"| {ms(new[50])} | {ms(new[1000])} |",
        f"| peer: SQLite side with the words by a Python regex (before), no DuckDB read "
        f"| {ms(old[50])} | {ms(old[1000])} |",
        f"| floor: the bodies into a bare contentless FTS5 table, one transaction | {ms(floor)} | |",
        f"| floor: DuckDB reading the bodies out of the store | {ms(read)} | |",
        "",
        f"The indexer costs **{new[1000] / (floor + read):.2f}x** the floor (FTS5 insert + DuckDB read) in "
        f"1,000-step updates and {new[50] / (floor + read):.2f}x in 50-step ones; the previous way's SQLite "
        f"side alone cost {old[1000] / floor:.2f}x the FTS5 floor ({old[1000] / (new[1000] - read):.2f}x "
        "the new SQLite side).",
    ]
    section = run.section(
        "Search side index: write cost per 1,000 steps", "\n".join(lines), {"DuckDB": duckdb.__version__}
    )
    report.publish(args, "growth", section)


if __name__ == "__main__":
    main()
