"""The search side index's read cost at a million steps: `candidates` against its previous query, same run.

Why: a search narrows by the side index before DuckDB runs the exact match, so whatever the index
costs comes first on every search. The word a search ends on can be the start of a longer word, and
the index used to ask FTS5 for it as a prefix term (`"run"*`). FTS5 answers a prefix term by merging
the whole doclist of every word with that prefix before it returns a row, so a common one cost time
in proportion to the store, even when the answer was then too wide to use and the search scanned.
`candidates` now spells the prefix out as the stored words that start with it (exact terms, read
lazily, so the LIMIT bounds them).

What it measures: an index of `--steps` documents built by the real write path (`SearchIndex._append`,
what the server's indexer runs), from the step text of `growth.py`'s OpenInference traces (decoded,
normalized and stored by the real pipeline, then repeated with a ticket and a trace id of their own per
50 steps), and the wall time of `candidates` for searches an investigator types, median of 5, against
the previous query (the same terms with the last one as an FTS5 prefix term) on the same file. Both
must give the same candidates or a superset of them (the new one may leave a too-common prefix out).

    python benchmarks/search_read.py [--steps 1000000] [--no-write] [--results FILE]
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.growth import COMMON, SPANS_PER_TRACE  # noqa: E402
from benchmarks.search_write import build_store  # noqa: E402
from workbench.store import search_index  # noqa: E402

Found = tuple[list[str], int] | None


def previous_candidates(path: Path, needle: str) -> Found:
    """`candidates` as it was before the prefix was spelled out: the terms as `terms` gives them."""
    found, longest = search_index.terms(needle.lower())
    if not found and len(longest) < search_index.MIN_INFIX:
        return None
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        mark = int(search_index._meta(conn, "watermark") or 0)
        query = " AND ".join(found)
        if not query:
            words = conn.execute(
                "SELECT word FROM word_grams WHERE word_grams MATCH ? LIMIT ?",
                [f'"{longest}"', search_index.WORDS_PER_QUERY + 1],
            ).fetchall()
            if not words or len(words) > search_index.WORDS_PER_QUERY:
                return ([], mark) if not words else None
            query = " OR ".join(f'"{w[0]}"' for w in words)
        rows = conn.execute(
            "SELECT d.trace_id FROM text JOIN docs d ON d.doc = text.rowid WHERE text MATCH ? LIMIT ?",
            [query, search_index.CAP + 1],
        ).fetchall()
    finally:
        conn.close()
    if len(rows) > search_index.CAP:
        return None
    return sorted({r[0] for r in rows}), mark


def build_index(path: Path, steps: int, traces: int) -> None:
    """`steps` documents: the stored step text of `traces` real traces, repeated under new trace ids with
    the ticket renumbered, appended in chunks as the indexer appends them."""
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(Path(tmp) / "w.duckdb", traces)
        bodies = [r[2] for r in store.cursor().execute(search_index._DOC_SQL + " ORDER BY seq").fetchall()]
        store.close()
    ticket = re.compile(r"zqx\d{8}")
    index = search_index.SearchIndex(path)
    chunk: list[tuple[int, str, str]] = []
    for seq in range(1, steps + 1):
        k = (seq - 1) // SPANS_PER_TRACE
        body = bodies[(seq - 1) % len(bodies)]
        chunk.append((seq, f"{k:032x}", ticket.sub(f"zqx{k:08d}", body)))
        if len(chunk) == search_index.CHUNK or seq == steps:
            index._append(chunk, seq, "00")
            chunk = []
    index.close()


def timed(fn: Callable[[], Found], tries: int = 5) -> tuple[float, Found]:
    fn()
    times, got = [], None
    for _ in range(tries):
        t = time.perf_counter()
        got = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1_000_000, help="documents in the index")
    ap.add_argument("--traces", type=int, default=40, help="real traces whose step text is repeated")
    report.add_output_args(ap)
    args = ap.parse_args()
    run = report.Run()
    k = args.steps // SPANS_PER_TRACE // 2
    searches = [
        ("one ticket", f"zqx{k:08d}"),
        ("a ticket's start", f"zqx{k // 100:06d}"),
        ("a phrase in every step", COMMON),
        ("the same, cut short", COMMON[:-1]),
        ("two words, the last a common prefix", "dry r"),
        ("a word in no step", "qqzzxxnowhere"),
        ("a phrase ending in no stored word", "after a qqzz"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.duckdb.search.sqlite"
        t = time.perf_counter()
        build_index(path, args.steps, args.traces)
        built_s = time.perf_counter() - t
        lines = [
            "| search | candidates now | previous query | ratio | traces, now / before (none: scan) |",
            "|---|---|---|---|---|",
        ]
        for name, text in searches:
            now_s, now = timed(partial(search_index.candidates, path, text))
            old_s, old = timed(partial(previous_candidates, path, text))
            if old is not None:
                assert now is None or set(now[0]) >= set(old[0]), f"{text!r}: the new candidates lost a trace"
            count = f"{len(now[0]) if now else 'none'} / {len(old[0]) if old else 'none'}"
            lines.append(
                f"| {name} (`{text}`) | {1000 * now_s:.1f} ms | {1000 * old_s:.1f} ms "
                f"| {old_s / now_s:.1f}x | {count} |"
            )
        size = sum(p.stat().st_size for p in Path(tmp).glob("w.duckdb.search.sqlite*"))
    body = (
        f"An index of {args.steps:,} steps ({size / 1e9:.2f} GB, built in {built_s:.0f} s by the indexer's "
        f"own append), the step text of {args.traces} real traces repeated with a ticket per 50 steps; wall "
        "time of `search_index.candidates`, median of 5 after one call, against the previous query on "
        "the same file (the last word as an FTS5 prefix term):\n\n" + "\n".join(lines)
    )
    report.publish(args, "growth", run.section("Search side index: reads at scale", body))


if __name__ == "__main__":
    main()
