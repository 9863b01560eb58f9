"""Named queries: the only SQL that pages, the CLI and exports use, each returning frozen records."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import duckdb

from workbench.errors import WorkbenchError
from workbench.model import Step, StepKind, StoredStep, TraceSummary
from workbench.store.batch import STEP_SELECT, steps_table, stored_step
from workbench.store.connection import Store
from workbench.store.explore_traces import TraceFilter, search_traces
from workbench.store.explore_walk import merge_ranges


def counts(store: Store) -> dict[str, int]:
    """Rows per table; `versions` are conflicting span versions (stored, sealed, but no step) and
    `duplicates` redelivered spans acknowledged without storing (the server's /health can show both)."""
    cur = store.cursor()
    out = {}
    for table in ("spans", "steps", "ledger", "ledger_checkpoints"):
        row = cur.execute(f"SELECT count(*) FROM {table}").fetchone()
        out[table] = int(row[0]) if row else 0
    row = cur.execute("SELECT count(DISTINCT trace_id) FROM spans").fetchone()
    out["traces"] = int(row[0]) if row else 0
    out.update(delivery_counts(store))
    return out


DELIVERY_COUNTS_SQL = (
    "SELECT (SELECT coalesce(sum(duplicate_spans), 0) FROM delivery_stats),"
    " (SELECT count(*) FROM spans WHERE version_of IS NOT NULL)"
)


def delivery_counts(store: Store) -> dict[str, int]:
    """{'duplicates': redelivered spans not stored again, 'versions': same id with different bytes}."""
    row = store.cursor().execute(DELIVERY_COUNTS_SQL).fetchone()
    return {"duplicates": int(row[0]), "versions": int(row[1])} if row else {"duplicates": 0, "versions": 0}


_SUMMARY_FIELDS = tuple(f.name for f in dataclasses.fields(TraceSummary))


def list_traces(store: Store, limit: int = 100, offset: int = 0) -> list[TraceSummary]:
    """Traces, newest first: the trace search with no filter, as plain summaries (the CLI's and the API's
    shape). Token and cost totals skip agent spans, which repeat their children's sums."""
    rows = search_traces(store, TraceFilter(), limit=limit, offset=offset)
    return [TraceSummary(**{name: getattr(row, name) for name in _SUMMARY_FIELDS}) for row in rows]


def resolve_trace_id(store: Store, prefix: str) -> str:
    """A full trace id from a unique prefix, so a person can type the first few characters."""
    p = prefix.strip().lower()
    rows = (
        store.cursor()
        .execute("SELECT DISTINCT trace_id FROM steps WHERE starts_with(trace_id, ?) LIMIT 2", [p])
        .fetchall()
    )
    if not rows:
        raise WorkbenchError(f"no trace with id {prefix!r}")
    if len(rows) > 1:
        raise WorkbenchError(f"{prefix!r} matches several traces; give more characters")
    return str(rows[0][0])


def trace_candidates(store: Store, prefix: str, limit: int = 20) -> list[str]:
    """Trace ids starting with `prefix`, newest first: what a link with an ambiguous id could have meant."""
    p = prefix.strip().lower()
    rows = (
        store.cursor()
        .execute(
            "SELECT trace_id FROM steps WHERE starts_with(trace_id, ?)"
            " GROUP BY trace_id ORDER BY min(start_time_ns) DESC LIMIT ?",
            [p, limit],
        )
        .fetchall()
    )
    return [str(r[0]) for r in rows]


def trace_steps(store: Store, trace_id: str, limit: int | None = None, offset: int = 0) -> list[StoredStep]:
    """The steps of one trace in time order (ties broken by ingest order)."""
    sql = STEP_SELECT + " WHERE trace_id = ? ORDER BY start_time_ns, seq"
    params: list[object] = [trace_id]
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params += [limit, offset]
    return [stored_step(r) for r in store.cursor().execute(sql, params).fetchall()]


def _trace_ranges(cur: duckdb.DuckDBPyConnection, trace_ids: list[str]) -> list[tuple[int, int]]:
    """Seq ranges holding every step of these traces, from `trace_commits` (kept in each commit's
    transaction: a trace's steps all lie inside the union of its rows' ranges), merged and bounded."""
    rows = cur.execute(
        "SELECT first_seq, last_seq FROM trace_commits WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))",
        [trace_ids],
    ).fetchall()
    return merge_ranges([(int(lo), int(hi)) for lo, hi in rows])


def _in_ranges(select: str, ranges: list[tuple[int, int]]) -> tuple[str, list[object]]:
    """`select` (a SELECT over steps without WHERE) read over these seq ranges only, and its parameters:
    one zone-map pruned scan per range."""
    sql = " UNION ALL ".join(f"{select} WHERE seq BETWEEN ? AND ?" for _ in ranges)
    return sql, [v for r in ranges for v in r]


def steps_by_trace(store: Store, trace_ids: Sequence[str]) -> dict[str, list[StoredStep]]:
    """The steps of several traces, each in `trace_steps` order, from one query.

    Why: the findings scanner reads the traces each commit touched, as the store grows. A scan of the
    trace_id column (no index: see migration 0050) costs the whole store each time: at 1M spans it was
    the one part of the scanner that grew with the store (3% of the server's samples at 100k, 12% at
    1M). `trace_commits` says where the traces' steps lie, so only those seq ranges are read. The
    ranges only narrow the read: steps are still chosen by trace id, and tests compare the result with
    `trace_steps` on split, redelivered and late-joined traces.
    """
    out: dict[str, list[StoredStep]] = {t: [] for t in trace_ids}
    if not out:
        return out
    cur = store.cursor()
    ids = list(out)
    ranges = _trace_ranges(cur, ids)
    if not ranges:
        return out
    scans, params = _in_ranges(STEP_SELECT, ranges)
    rows = cur.execute(
        f"SELECT * FROM ({scans}) s WHERE s.trace_id IN (SELECT unnest(?::VARCHAR[]))"
        " ORDER BY s.trace_id, s.start_time_ns, s.seq",
        [*params, ids],
    ).fetchall()
    for r in rows:
        out[r[1]].append(stored_step(r))
    return out


def first_inputs_by_trace(
    store: Store, trace_ids: Sequence[str], limit: int
) -> dict[str, list[tuple[StepKind, str | None]]]:
    """(kind, input text) of the first `limit` steps of each trace, in `trace_steps` order, in one read.

    Why: the Traces page shows each listed trace's task, the user's first input among its first steps.
    One `trace_steps` call per trace scans the whole trace_id column each time (no index, migration
    0050): 500 rows took 39 s on a 300k-span store. `trace_commits` says where each trace's steps lie,
    so one read of those seq ranges (zone-map pruned) serves the page, and only the two columns the
    task needs leave DuckDB (whole rows cost five times more). The ranges only narrow what is read: the
    steps kept are still chosen by trace id, so a trace missing from `trace_commits` shows none.
    """
    out: dict[str, list[tuple[StepKind, str | None]]] = {t: [] for t in trace_ids}
    if not out or limit <= 0:
        return out
    cur = store.cursor()
    ids = list(out)
    ranges = _trace_ranges(cur, ids)
    if not ranges:
        return out
    scans, params = _in_ranges("SELECT trace_id, start_time_ns, seq, kind, input_text FROM steps", ranges)
    sql = (
        f"SELECT trace_id, kind, input_text FROM ({scans}) s"
        " SEMI JOIN (SELECT unnest(?::VARCHAR[]) AS trace_id) b USING (trace_id)"
        " QUALIFY row_number() OVER (PARTITION BY trace_id ORDER BY start_time_ns, seq) <= ?"
        " ORDER BY trace_id, start_time_ns, seq"
    )
    for trace_id, kind, text in cur.execute(sql, [*params, ids, limit]).fetchall():
        out[trace_id].append((StepKind(kind), text))
    return out


def step_by_span(store: Store, trace_id: str, span_id: str) -> StoredStep | None:
    row = store.cursor().execute(STEP_SELECT + " WHERE trace_id = ? AND span_id = ?", [trace_id, span_id])
    found = row.fetchone()
    return stored_step(found) if found else None


def iter_canonical(store: Store, chunk: int = 5_000) -> Iterator[list[tuple[int, bytes]]]:
    """(seq, canonical bytes) of every span that has a step (not conflicting versions), in ingest order, a
    chunk at a time (bounded memory)."""
    cur = store.cursor()
    row = cur.execute("SELECT coalesce(min(seq), 1), coalesce(max(seq), 0) FROM spans").fetchone()
    lo, hi = (int(row[0]), int(row[1])) if row else (1, 0)
    start = lo
    while start <= hi:
        rows = cur.execute(
            "SELECT seq, canonical FROM spans WHERE seq BETWEEN ? AND ? AND version_of IS NULL ORDER BY seq",
            [start, start + chunk - 1],
        ).fetchall()
        if rows:
            yield [(int(s), bytes(c)) for s, c in rows]
        start += chunk


def replace_steps(
    store: Store, seqs: Sequence[int], steps: Sequence[Step], normalizer_version: str = ""
) -> None:
    """Overwrite the steps of these spans in one transaction (renormalize after a mapping fix); each
    records its span's ledger digest and the normalizer version, as at ingest."""
    table = steps_table(seqs, steps)
    with store.write_lock:
        cur = store.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            cur.register("_steps_new", table)
            cur.execute("DELETE FROM steps WHERE seq IN (SELECT seq FROM _steps_new)")
            cur.execute(
                "INSERT INTO steps BY NAME SELECT n.*, l.digest AS span_digest, ? AS normalizer_version"
                " FROM _steps_new n JOIN ledger l ON l.seq = n.seq",
                [normalizer_version],
            )
            cur.execute("COMMIT")
        except duckdb.Error:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.unregister("_steps_new")


def span_versions(store: Store, trace_id: str) -> list[tuple[int, str, int, bytes, bytes]]:
    """Conflicting versions in a trace: (version seq, span id, seq of the first span, its digest, the
    version's digest), in ingest order. The `span-rewritten` rule reads these."""
    return span_versions_by_trace(store, [trace_id])[trace_id]


def span_versions_by_trace(
    store: Store, trace_ids: Sequence[str]
) -> dict[str, list[tuple[int, str, int, bytes, bytes]]]:
    """`span_versions` of several traces in one query.

    Why: the findings scanner asks for every trace it rescans. Asked one trace at a time, DuckDB joined
    the whole ledger for each (about 30 ms a trace at 1M spans, 12% of the server's samples in the
    growth benchmark). Versions are rare, so the spans are filtered first (a version has no step, so
    `trace_commits` does not say where it lies) and only they meet the ledger.
    """
    out: dict[str, list[tuple[int, str, int, bytes, bytes]]] = {t: [] for t in trace_ids}
    if not out:
        return out
    rows = (
        store.cursor()
        .execute(
            "SELECT v.trace_id, v.seq, v.span_id, v.version_of, lo.digest, lv.digest FROM"
            " (SELECT trace_id, seq, span_id, version_of FROM spans WHERE version_of IS NOT NULL"
            "  AND trace_id IN (SELECT unnest(?::VARCHAR[]))) v"
            " JOIN ledger lv ON lv.seq = v.seq JOIN ledger lo ON lo.seq = v.version_of ORDER BY v.seq",
            [list(out)],
        )
        .fetchall()
    )
    for t, a, b, c, d, e in rows:
        out[t].append((int(a), str(b), int(c), bytes(d), bytes(e)))
    return out
