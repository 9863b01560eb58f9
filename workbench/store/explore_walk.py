"""The trace list at scale: newest traces from `trace_commits`, totals from only their steps' seq ranges.

Why: the list used to be one GROUP BY over every step, so a page of 100 traces cost a read of the whole
store (about 1.2 s at 10M spans). Steps carry no index (migration 0050) but are appended in seq order,
so DuckDB skips every row group outside a `seq BETWEEN` range by its zone maps. `trace_commits` (one
row per trace and group commit: its earliest step start and the seq range of its steps) is small, so:

- **A page without step filters** (no text, service, agent, error or cost condition): the page's traces
  come straight from `trace_commits` in the list's order (start newest first, then trace id), with the
  time window, `has_findings` and the side index's narrowing applied there (a GROUP BY of the table);
  with no condition at all, only the table's newest rows are read (`_newest`). The totals are then
  summed over those traces' steps only, reading their seq ranges.
- **A page with step filters** is a walk: candidate traces newest first in batches (twice the traces
  the page needs, doubling), each batch's totals and conditions computed exactly over its seq ranges,
  until `offset + limit` traces passed. A condition that matches rarely would walk the whole store in
  many small reads, so once the walk has covered a quarter of the candidates the rest is one exact
  scan of all steps (`_rest`), restricted to traces after the last one walked: at worst about 1.75
  times the old scan, never unbounded.

Every answer equals the exact scan's (`explore_scan.scan_traces`): the conditions are the same HAVING
terms on the same per-trace aggregates, and each batch reads all steps of its traces. The whole search
runs in one transaction, so a commit landing mid-walk cannot move a trace between batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from workbench.store.findings import SEVERITY_RANK_SQL

MAX_RANGES = 8  # seq ranges per batch read (each is one scan of steps: more cost more than they save)
RANGE_GAP = 122_880  # ranges closer than a row group are read as one (the zone maps skip no less)
FIRST_BATCH = 512  # at least this many candidate traces per batch of a walk
REST_FRACTION = 4  # a walk past 1/REST_FRACTION of the candidates scans the rest at once
TAIL_ROWS_PER_TRACE = 8  # the first tail `_newest` reads: this many trace_commits rows per trace needed
MIN_TAIL_ROWS = 1024  # ... and at least this many

Condition = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Conditions:
    """A trace search as SQL terms over one trace's aggregate (HAVING), each with its parameters.

    `trace` terms can be judged on `trace_commits` as well as on `steps`: they are written with
    `{last_seq}` for the column holding the newest seq (`max(seq)` on steps, `max(last_seq)` on
    trace_commits) and use only `trace_id` and `min(start_time_ns)` otherwise. `steps` terms need the
    steps (text, services, agents, errors, cost). `match_expr` counts the steps matching the text.
    """

    trace: tuple[Condition, ...] = ()
    steps: tuple[Condition, ...] = ()
    match_expr: Condition = ("0", ())


@dataclass(slots=True)
class _Candidate:
    trace_id: str
    start_ns: int
    ranges: list[tuple[int, int]] = field(default_factory=list)


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
        if conditions.steps:
            page = _walk(cur, conditions, limit + offset)[offset:]
        else:
            page = _candidates(cur, conditions, limit, offset)
        return _rows(cur, conditions, page)
    finally:
        cur.execute("ROLLBACK")


def _candidates(
    cur: duckdb.DuckDBPyConnection,
    conditions: Conditions,
    limit: int,
    offset: int = 0,
    after: tuple[int, str] | None = None,
) -> list[_Candidate]:
    """Traces in list order (start newest first, then id) passing the `trace` conditions, with the seq
    ranges of their steps; `after` continues from a trace (keyset: robust where OFFSET is not)."""
    if not conditions.trace:
        return _newest(cur, limit, offset, after)
    having, params = _terms(conditions.trace, "max(last_seq)")
    having += _after(after, params)
    rows = cur.execute(
        "SELECT trace_id, min(start_time_ns) AS start_ns, list(first_seq), list(last_seq)"
        " FROM trace_commits GROUP BY trace_id HAVING "
        + " AND ".join(having)
        + " ORDER BY start_ns DESC, trace_id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [_Candidate(str(t), int(s), list(zip(lo, hi, strict=True))) for t, s, lo, hi in rows]


_NEWEST_SQL = """
WITH tail AS (
    SELECT trace_id, min(start_time_ns) AS start_ns FROM trace_commits
    WHERE last_seq > $tail GROUP BY trace_id
), bound AS (
    SELECT coalesce(max(start_time_ns), -9223372036854775808) AS b FROM trace_commits
    WHERE last_seq <= $tail
), g AS (
    SELECT trace_id, start_ns FROM tail, bound WHERE start_ns > bound.b {after}
), older AS (
    SELECT DISTINCT trace_id FROM trace_commits
    WHERE last_seq <= $tail AND trace_id IN (SELECT trace_id FROM g)
)
SELECT trace_id, start_ns, count(*) OVER () FROM g WHERE trace_id NOT IN (SELECT trace_id FROM older)
ORDER BY start_ns DESC, trace_id LIMIT $limit OFFSET $offset
"""


def _newest(
    cur: duckdb.DuckDBPyConnection, limit: int, offset: int, after: tuple[int, str] | None
) -> list[_Candidate]:
    """`_candidates` without conditions, reading the newest rows of `trace_commits` rather than all.

    Why: a GROUP BY over every row is linear in the store (its rows grow with commits: 0.2-0.6 s for
    300k rows on this project's 2 cores). The table is appended in seq order, so its tail (rows with
    last_seq > T) holds the traces written last. B, the latest start of any row before the tail,
    bounds every trace with a row there: such a trace starts at or before B. So the traces of the
    tail that start after B and have no row before it (the `older` check: a long trace seen again)
    are, exactly, every trace starting after B, and they come first in list order. When they are
    enough for the page, the page is theirs; else the tail grows fourfold, and once it is the whole
    table (B is -inf) this is the plain GROUP BY.
    """
    need = offset + limit
    rows_in_tail = max(TAIL_ROWS_PER_TRACE * need, MIN_TAIL_ROWS)
    (total_rows,) = cur.execute("SELECT count(*) FROM trace_commits").fetchone() or (0,)
    after_sql = "AND (start_ns < $s OR (start_ns = $s AND trace_id > $t))" if after else ""
    sql = _NEWEST_SQL.format(after=after_sql)
    while True:
        whole = rows_in_tail >= total_rows
        tail = -(2**63) if whole else _tail_start(cur, rows_in_tail)
        params: dict[str, Any] = {"tail": tail, "limit": limit, "offset": offset}
        if after:
            params |= {"s": after[0], "t": after[1]}
        rows = cur.execute(sql, params).fetchall()
        if whole or (rows and int(rows[0][2]) >= need):
            break
        rows_in_tail *= 4
    ids = [str(r[0]) for r in rows]
    ranges = {
        str(t): list(zip(lo, hi, strict=True))
        for t, lo, hi in cur.execute(
            "SELECT trace_id, list(first_seq), list(last_seq) FROM trace_commits"
            " WHERE last_seq > ? AND trace_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY trace_id",
            [tail, ids],
        ).fetchall()
    }
    return [_Candidate(str(t), int(s), ranges[str(t)]) for t, s, _n in rows]


def _tail_start(cur: duckdb.DuckDBPyConnection, rows: int) -> int:
    """The last_seq below which all but the newest `rows` rows of trace_commits lie."""
    row = cur.execute(
        "SELECT min(last_seq) - 1 FROM (SELECT last_seq FROM trace_commits ORDER BY last_seq DESC LIMIT ?)",
        [rows],
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else -(2**63)


def _total(cur: duckdb.DuckDBPyConnection, conditions: Conditions) -> int:
    """How many traces pass the `trace` conditions; without conditions an estimate (HyperLogLog, no
    hash table of every trace): the walk uses it only to judge when to scan the rest at once."""
    if not conditions.trace:
        row = cur.execute("SELECT approx_count_distinct(trace_id) FROM trace_commits").fetchone()
    else:
        having, params = _terms(conditions.trace, "max(last_seq)")
        row = cur.execute(
            "SELECT count(*) FROM (SELECT trace_id FROM trace_commits GROUP BY trace_id HAVING "
            + " AND ".join(having)
            + ")",
            params,
        ).fetchone()
    return int(row[0]) if row else 0


def _after(after: tuple[int, str] | None, params: list[Any]) -> list[str]:
    """The HAVING term "after this trace in list order" (none for None), its parameters added."""
    if after is None:
        return []
    params += [after[0], after[0], after[1]]
    return ["(min(start_time_ns) < ? OR (min(start_time_ns) = ? AND trace_id > ?))"]


def _walk(cur: duckdb.DuckDBPyConnection, conditions: Conditions, need: int) -> list[_Candidate]:
    """The first `need` traces passing every condition, in list order: batches of candidates, each
    judged over its own steps, then (past a quarter of the candidates) one scan for the rest.

    A batch is twice the last, or what the pass rate seen so far says the page still needs (with a
    margin), whichever is larger."""
    found: list[_Candidate] = []
    size = max(2 * need, FIRST_BATCH)
    walked = 0
    total = _total(cur, conditions)
    after: tuple[int, str] | None = None
    while len(found) < need:
        if walked and walked + size > total // REST_FRACTION:
            assert after is not None
            found += _rest(cur, conditions, after, need - len(found))
            break
        batch = _candidates(cur, conditions, size, after=after)
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


def _judge(cur: duckdb.DuckDBPyConnection, conditions: Conditions, batch: Sequence[_Candidate]) -> list[str]:
    """The ids of the batch's traces that pass the `steps` conditions, in list order."""
    source, source_params = _source(batch)
    having, params = _terms(conditions.steps, "max(seq)")
    rows = cur.execute(
        f"SELECT trace_id, min(start_time_ns) AS start_ns FROM {source} GROUP BY trace_id"
        f" HAVING {' AND '.join(having)} ORDER BY start_ns DESC, trace_id",
        [*source_params, *params],
    ).fetchall()
    return [str(r[0]) for r in rows]


def _rest(
    cur: duckdb.DuckDBPyConnection, conditions: Conditions, after: tuple[int, str], need: int
) -> list[_Candidate]:
    """The first `need` traces after `after` passing every condition, by one scan of the steps.

    The scan reads only the seqs from the first to the last step of the traces left, so every trace
    left is read whole. Steps of walked traces inside that range are grouped too, but partially; a
    partial trace's earliest start is no earlier than its true one, so it still sorts at or before
    `after` and the "after" term drops it.
    """
    having, params = _terms(conditions.trace, "max(last_seq)")
    having += _after(after, params)
    bounds = cur.execute(
        "SELECT min(lo), max(hi) FROM (SELECT min(first_seq) AS lo, max(last_seq) AS hi FROM trace_commits"
        " GROUP BY trace_id HAVING " + " AND ".join(having) + ")",
        params,
    ).fetchone()
    if not bounds or bounds[0] is None:
        return []
    having, params = _terms(conditions.trace + conditions.steps, "max(seq)")
    having += _after(after, params)
    rows = cur.execute(
        "SELECT trace_id, min(start_time_ns) AS start_ns FROM steps WHERE seq BETWEEN ? AND ?"
        f" GROUP BY trace_id HAVING {' AND '.join(having)} ORDER BY start_ns DESC, trace_id LIMIT ?",
        [bounds[0], bounds[1], *params, need],
    ).fetchall()
    if not rows:
        return []
    ids = [str(r[0]) for r in rows]
    ranges = cur.execute(
        "SELECT trace_id, list(first_seq), list(last_seq) FROM trace_commits"
        " WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY trace_id",
        [ids],
    ).fetchall()
    spans = {str(t): list(zip(lo, hi, strict=True)) for t, lo, hi in ranges}
    return [_Candidate(str(t), int(s), spans.get(str(t), [])) for t, s in rows]


def _rows(
    cur: duckdb.DuckDBPyConnection, conditions: Conditions, page: Sequence[_Candidate]
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


def _source(traces: Sequence[_Candidate]) -> tuple[str, list[Any]]:
    """FROM text for these traces' steps: the union of their seq ranges (each a zone-map-pruned scan),
    narrowed to the traces themselves (a range also holds other traces' steps)."""
    ranges = merge_ranges([r for c in traces for r in c.ranges])
    if not ranges:
        ranges = [(0, -1)]  # a candidate without rows cannot happen (same transaction); read nothing
    scans = " UNION ALL ".join("SELECT * FROM steps WHERE seq BETWEEN ? AND ?" for _ in ranges)
    params: list[Any] = [v for r in ranges for v in r]
    params.append([c.trace_id for c in traces])
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


def _terms(conditions: Sequence[Condition], last_seq: str) -> tuple[list[str], list[Any]]:
    sql: list[str] = []
    params: list[Any] = []
    for text, values in conditions:
        sql.append(text.replace("{last_seq}", last_seq))
        params += values
    return sql, params
