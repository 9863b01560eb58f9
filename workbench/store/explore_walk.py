"""The trace list at scale: the page's traces from `trace_commits`, totals from only their steps' seq ranges.

Why: the list used to be one GROUP BY over every step, so a page of 100 traces cost a read of the whole
store (about 1.2 s at 10M spans). Steps carry no index (migration 0050) but are appended in seq order,
so DuckDB skips every row group outside a `seq BETWEEN` range by its zone maps. `trace_commits` (one
row per trace and group commit: its earliest step start and the seq range of its steps) is small, so:

- **A page without step filters** (no text, service, agent or cost condition): the page's traces
  come from `trace_commits` in the list's order (start newest first, then trace id), reading only
  the rows near the page (`explore_candidates`): the time window, and sets of traces to keep or drop
  (`has_findings`, `has_errors`, the side index's narrowing, each resolved once per search to a list
  of ids from a small table or a narrow scan), are judged there. The totals are then summed over
  those traces' steps only, reading their seq ranges.
- **A page with step filters** is a walk: candidate traces newest first in batches (twice the traces
  the page needs, doubling), each batch's totals and conditions computed exactly over its seq ranges,
  until `offset + limit` traces passed. A condition that matches rarely would walk the whole store in
  many small reads, so once the walk has covered a quarter of the candidates the rest is one scan of
  the steps (`_rest`): only the rows some condition could be met by when every condition asks for a
  step with a property (a text, a service, an agent), all of them otherwise.

Every answer equals the exact scan's (`explore_scan.scan_traces`): the conditions are the same terms on
the same per-trace aggregates, and each batch reads all steps of its traces. The whole search runs in
one transaction, so a commit landing mid-walk cannot move a trace between batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from workbench.store.explore_candidates import Candidate, Narrowing, candidates, row_filter
from workbench.store.findings import SEVERITY_RANK_SQL

MAX_RANGES = 8  # seq ranges per batch read (each is one scan of steps: more cost more than they save)
RANGE_GAP = 122_880  # ranges closer than a row group are read as one (the zone maps skip no less)
FIRST_BATCH = 512  # at least this many candidate traces per batch of a walk
REST_FRACTION = 4  # a walk past 1/REST_FRACTION of the candidates scans the rest at once
SAMPLE_ROWS = 4096  # the newest trace_commits rows that estimate traces per row
LISTED_IDS = 1024  # up to this many traces, a read of their steps names them in an IN list

Condition = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class TraceSet:
    """Traces a search keeps (`keep`) or drops: `sql` selects their ids (with `params`). A set is a
    fact about a whole trace, so it can be judged on any of its rows."""

    sql: str
    params: tuple[Any, ...] = ()
    keep: bool = True


@dataclass(frozen=True, slots=True)
class Conditions:
    """A trace search: a window on the trace's start ([start_ns, end_ns)), sets of traces, and
    `steps` terms over one trace's aggregate of its steps (HAVING), each with its parameters.

    `prefilter`, when given, is a WHERE over steps that keeps every step a `steps` term counts: it
    holds when every term asks for "some step with P" (then it is the OR of those P). `match_expr`
    counts the steps matching the text.
    """

    start_ns: int | None = None
    end_ns: int | None = None
    sets: tuple[TraceSet, ...] = ()
    steps: tuple[Condition, ...] = ()
    prefilter: Condition | None = None
    match_expr: Condition = ("0", ())


_AGGREGATES = """
    trace_id,
    coalesce(arg_min(service_name, start_time_ns) FILTER (WHERE parent_span_id = ''),
             arg_min(service_name, start_time_ns)) AS service_name,
    coalesce(arg_min(name, start_time_ns) FILTER (WHERE parent_span_id = ''),
             arg_min(name, start_time_ns)) AS root_name,
    min(start_time_ns) AS start_ns, max(end_time_ns) AS end_ns, count(*) AS steps,
    count(*) FILTER (WHERE is_error) AS errors,
    count(*) FILTER (WHERE kind = 'tool') AS tool_calls,
    coalesce(sum(tokens_in) FILTER (WHERE kind <> 'agent'), 0) AS tin,
    coalesce(sum(tokens_out) FILTER (WHERE kind <> 'agent'), 0) AS tout,
    coalesce(sum(tokens_reasoning) FILTER (WHERE kind <> 'agent'), 0) AS treason,
    coalesce(sum(cost_usd) FILTER (WHERE kind <> 'agent'), 0.0) AS cost,
    list(DISTINCT actor ORDER BY actor) FILTER (WHERE actor IS NOT NULL) AS agents"""


def search(
    cur: duckdb.DuckDBPyConnection, conditions: Conditions, limit: int, offset: int
) -> list[tuple[Any, ...]]:
    """The rows of one page, as `explore_scan.scan_traces` selects them (same columns, same order)."""
    if limit <= 0:
        return []
    cur.execute("BEGIN TRANSACTION")
    try:
        narrowing = resolve(cur, conditions)
        if narrowing is None:
            return []
        if conditions.steps:
            page = _walk(cur, conditions, narrowing, limit + offset)[offset:]
        else:
            page = candidates(cur, narrowing, limit, offset)
        return _rows(cur, conditions, page)
    finally:
        cur.execute("ROLLBACK")


def resolve(cur: duckdb.DuckDBPyConnection, conditions: Conditions) -> Narrowing | None:
    """The window and the sets as values, each set read once per search (its SELECT may scan a column
    of the steps); None when a set to keep is empty, so nothing can match."""
    inside: set[str] | None = None
    outside: set[str] = set()
    for trace_set in conditions.sets:
        row = cur.execute(
            f"SELECT list(DISTINCT trace_id) FROM ({trace_set.sql})", list(trace_set.params)
        ).fetchone()
        ids = set(row[0] or ()) if row else set()
        if trace_set.keep:
            inside = ids if inside is None else inside & ids
        else:
            outside |= ids
    if inside is not None:
        inside -= outside
        if not inside:
            return None
        outside = set()
    return Narrowing(
        conditions.start_ns,
        conditions.end_ns,
        None if inside is None else sorted(inside),
        sorted(outside),
    )


def _total(cur: duckdb.DuckDBPyConnection, narrowing: Narrowing) -> int:
    """About how many traces pass `narrowing`: the walk uses it only to judge when to scan the rest
    at once. The rows the window allows times the traces per row among the newest rows: two reads of
    integer columns, where counting distinct trace ids reads every id (about 100 ms at 10M spans)."""
    if narrowing.inside is not None:
        return len(narrowing.inside)
    where, params = row_filter(dataclasses.replace(narrowing, outside=[]))
    row = cur.execute(
        f"SELECT count(*), (SELECT count(DISTINCT trace_id) / count(*) FROM (SELECT trace_id FROM"
        f" trace_commits ORDER BY last_seq DESC LIMIT {SAMPLE_ROWS})) FROM trace_commits WHERE {where}",
        params,
    ).fetchone()
    return int(row[0] * (row[1] or 0)) if row else 0


def _walk(
    cur: duckdb.DuckDBPyConnection, conditions: Conditions, narrowing: Narrowing, need: int
) -> list[Candidate]:
    """The first `need` traces passing every condition, in list order: batches of candidates, each
    judged over its own steps, then one scan for the rest once the walk would pass a quarter of the
    candidates (a rare text: after the first batch, not after a quarter of the store in batches).

    A batch is twice the last, or what the pass rate seen so far says the page still needs (with a
    margin), whichever is larger."""
    found: list[Candidate] = []
    size = max(2 * need, FIRST_BATCH)
    walked = 0
    total = _total(cur, narrowing)
    after: tuple[int, str] | None = None
    while len(found) < need:
        # The traces the walk would still read at the pass rate seen so far (one more match assumed,
        # so no match yet is not "never"): past a quarter of the candidates, one scan is cheaper.
        ahead = max(size, (need - len(found)) * walked // (len(found) + 1))
        if walked and walked + ahead > total // REST_FRACTION:
            assert after is not None
            found += _rest(cur, conditions, narrowing, after, need - len(found))
            break
        batch = candidates(cur, narrowing, size, after=after)
        if not batch:
            break
        by_id = {c.trace_id: c for c in batch}
        found += [by_id[t] for t in _judge(cur, conditions, batch)]
        walked += len(batch)
        if len(batch) < size:  # that was the last of the candidates
            break
        after = (batch[-1].start_ns, batch[-1].trace_id)
        if found:
            wanted = (need - len(found)) * walked // len(found)
            size = max(2 * size, wanted + wanted // 2)
        else:
            size *= 2
    return found[:need]


def _judge(cur: duckdb.DuckDBPyConnection, conditions: Conditions, batch: Sequence[Candidate]) -> list[str]:
    """The ids of the batch's traces that pass the `steps` conditions, in list order."""
    source, source_params = _source(batch)
    having, params = _terms(conditions.steps)
    rows = cur.execute(
        f"SELECT trace_id, min(start_time_ns) AS start_ns FROM {source} GROUP BY trace_id"
        f" HAVING {having} ORDER BY start_ns DESC, trace_id",
        [*source_params, *params],
    ).fetchall()
    return [str(r[0]) for r in rows]


# The traces left after `after` that pass the window and the sets: their start, their seq ranges.
_LEFT_SQL = """
SELECT trace_id, min(start_time_ns) AS s, min(first_seq) AS lo, max(last_seq) AS hi,
       list(first_seq ORDER BY first_seq) AS fs, list(last_seq ORDER BY first_seq) AS ls
FROM trace_commits WHERE {where} GROUP BY trace_id
HAVING {window} (min(start_time_ns) < $after_s OR (min(start_time_ns) = $after_s AND trace_id > $after_t))
"""


def _rest(
    cur: duckdb.DuckDBPyConnection,
    conditions: Conditions,
    narrowing: Narrowing,
    after: tuple[int, str],
    need: int,
) -> list[Candidate]:
    """The first `need` traces after `after` passing every condition, by one scan of the steps.

    The scan reads the seqs from the first to the last step of the traces left, so each of them is
    read whole; other traces' steps in that range are grouped too, possibly in part, and their groups
    are dropped by keeping only the traces left. With a `prefilter` only the steps it keeps are
    grouped (for a rare text: the few steps holding it, not every step).
    """
    where, params = row_filter(narrowing, window=False)
    window: list[str] = []
    if narrowing.start_ns is not None:
        window.append("min(start_time_ns) >= $w_start")
        params["w_start"] = narrowing.start_ns
    if narrowing.end_ns is not None:
        window.append("min(start_time_ns) < $w_end")
        params["w_end"] = narrowing.end_ns
    params |= {"after_s": after[0], "after_t": after[1]}
    left = _LEFT_SQL.format(where=where, window="".join(w + " AND " for w in window))
    bounds = cur.execute(f"SELECT min(lo), max(hi) FROM ({left})", params).fetchone()
    if not bounds or bounds[0] is None:
        return []
    having, having_params = _terms(conditions.steps)
    prefilter = ""
    prefilter_params: tuple[Any, ...] = ()
    if conditions.prefilter is not None:
        prefilter = f" AND ({conditions.prefilter[0]})"
        prefilter_params = conditions.prefilter[1]
    hits = cur.execute(
        f"SELECT trace_id FROM steps WHERE seq BETWEEN ? AND ?{prefilter} GROUP BY trace_id HAVING {having}",
        [bounds[0], bounds[1], *prefilter_params, *having_params],
    ).fetchall()
    if not hits:
        return []
    # The hits' rows only, grouped: the same traces left, without grouping every trace again.
    hit_rows = _LEFT_SQL.format(
        where=f"{where} AND trace_id IN (SELECT unnest($hits::VARCHAR[]))",
        window="".join(w + " AND " for w in window),
    )
    rows = cur.execute(
        f"SELECT trace_id, s, fs, ls FROM ({hit_rows}) ORDER BY s DESC, trace_id LIMIT $need",
        params | {"hits": [str(h[0]) for h in hits], "need": need},
    ).fetchall()
    return [Candidate(str(t), int(s), list(zip(lo, hi, strict=True))) for t, s, lo, hi in rows]


def _rows(
    cur: duckdb.DuckDBPyConnection, conditions: Conditions, page: Sequence[Candidate]
) -> list[tuple[Any, ...]]:
    """The page's rows with their totals, findings, redeliveries and conflicting versions.

    Two queries, not one: the page's few ids given to findings, delivery_stats and spans as a list
    cost a few ms, where joining them to the aggregate in one plan cost tens (measured at 100k spans).
    """
    if not page:
        return []
    source, source_params = _source(page)
    match_sql, match_params = conditions.match_expr
    totals = cur.execute(
        f"SELECT {_AGGREGATES}, {match_sql} AS matches FROM {source} GROUP BY trace_id"
        " ORDER BY start_ns DESC, trace_id",
        [*match_params, *source_params],
    ).fetchall()
    extra = {r[0]: r[1:] for r in cur.execute(_EXTRA_SQL, [[r[0] for r in totals]]).fetchall()}
    return [(*r, *extra[r[0]]) for r in totals]


# Per trace of a page: findings and the worst severity, redelivered spans, conflicting versions.
# `version_of > 0`, not IS NOT NULL: the same rows (it holds a seq, and seqs start at 1, in a lake too),
# but a range the zone maps answer, so row groups without a version are skipped (5 ms, not 100 ms, at
# 10M spans).
_EXTRA_SQL = f"""
WITH p AS (SELECT unnest(?::VARCHAR[]) AS trace_id),
f AS (
    SELECT trace_id, count(*) AS n, arg_max(severity, {SEVERITY_RANK_SQL}) AS worst
    FROM findings WHERE trace_id IN (SELECT trace_id FROM p) GROUP BY trace_id
),
v AS (
    SELECT trace_id, count(*) AS n FROM spans
    WHERE version_of > 0 AND trace_id IN (SELECT trace_id FROM p) GROUP BY trace_id
)
SELECT p.trace_id, coalesce(f.n, 0), f.worst, coalesce(d.duplicate_spans, 0), coalesce(v.n, 0)
FROM p LEFT JOIN f USING (trace_id) LEFT JOIN delivery_stats d USING (trace_id) LEFT JOIN v USING (trace_id)
"""


def _source(traces: Sequence[Candidate]) -> tuple[str, list[Any]]:
    """FROM text for these traces' steps: the union of their seq ranges (each a zone-map-pruned scan),
    narrowed to the traces themselves (a range also holds other traces' steps).

    Up to `LISTED_IDS` traces, the ids are an IN list of parameters, which DuckDB applies inside the
    scan, so only the rows of those traces are read past `trace_id`; a page of sparse traces (those
    with findings) spans row groups where most rows belong to other traces (252 vs 118 ms for 100
    traces with findings at 10M spans). More ids go as one list joined to the scan: a long IN list
    costs more to plan than it saves."""
    ranges = merge_ranges([r for c in traces for r in c.ranges])
    if not ranges:
        ranges = [(0, -1)]  # a candidate without rows cannot happen (same transaction); read nothing
    ids = [c.trace_id for c in traces]
    if len(ids) <= LISTED_IDS:
        listed = ", ".join("?" for _ in ids)
        scans = " UNION ALL ".join(
            f"SELECT * FROM steps WHERE seq BETWEEN ? AND ? AND trace_id IN ({listed})" for _ in ranges
        )
        return f"({scans}) s", [v for lo, hi in ranges for v in (lo, hi, *ids)]
    scans = " UNION ALL ".join("SELECT * FROM steps WHERE seq BETWEEN ? AND ?" for _ in ranges)
    params: list[Any] = [v for r in ranges for v in r]
    params.append(ids)
    return f"({scans}) s SEMI JOIN (SELECT unnest(?::VARCHAR[]) AS trace_id) b USING (trace_id)", params


def merge_ranges(
    ranges: Sequence[tuple[int, int]], gap: int = RANGE_GAP, most: int = MAX_RANGES
) -> list[tuple[int, int]]:
    """Disjoint seq ranges covering `ranges`, sorted, at most `most` of them.

    Ranges closer than `gap` are joined (reading the seqs between costs no more row groups than a
    second scan would); beyond `most`, the smallest gaps are closed first. Covering more seqs is
    always correct: the reader keeps only its traces' steps.
    """
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    if len(merged) <= most:
        return merged
    # Keep the most-1 widest gaps as the only splits.
    gaps = sorted(range(1, len(merged)), key=lambda i: merged[i][0] - merged[i - 1][1], reverse=True)
    splits = sorted(gaps[: most - 1])
    out: list[tuple[int, int]] = []
    start = 0
    for split in [*splits, len(merged)]:
        out.append((merged[start][0], max(hi for _, hi in merged[start:split])))
        start = split
    return out


def _terms(conditions: Sequence[Condition]) -> tuple[str, list[Any]]:
    """The conditions ANDed, and their parameters in order."""
    params: list[Any] = []
    for _text, values in conditions:
        params += values
    return " AND ".join(f"({text})" for text, _values in conditions) or "true", params
