"""Which traces a page of the trace list holds, judged on `trace_commits` alone, newest first.

Why a module: the list's order is a trace's start (its earliest step's), newest first, and a trace's
start is the min over its `trace_commits` rows, so any filter judged by a GROUP BY of that table costs
a hash table of every trace (500k rows at 10M spans: about 100-250 ms here, on every page). Both ways
in here read only the rows near the page:

- `newest` (no filter): the table's tail in seq order (rows are appended as commits land).
- `threshold` (a time window, sets of traces to keep or drop: findings, errors, the side index's
  narrowing): the newest rows by start time. X, the start of the m-th newest row that passes the row
  filter, splits the traces: every trace starting at or after X has its earliest row at or after X,
  so the traces with a passing row from X on, grouped over all their rows and kept when they start
  at or after X, are exactly the traces starting at or after X, and they come first in the list.
  When they fill the page it is theirs; else m grows fourfold, and once every row passes the filter
  this is the plain GROUP BY. A small set of traces to keep (findings, errors) is simply read whole.

Sets are trace-level facts (every row of a trace is in or out together), so applying them to rows
loses nothing. Both return `Candidate`s: a trace, its start, and the seq ranges of its steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import duckdb

TAIL_ROWS_PER_TRACE = 8  # the first tail `newest` reads: this many trace_commits rows per trace needed
MIN_TAIL_ROWS = 1024  # ... and at least this many; `threshold` starts from the same
NEVER = -(2**63)  # below every BIGINT start: "no lower bound"


@dataclass(slots=True)
class Candidate:
    trace_id: str
    start_ns: int
    ranges: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Narrowing:
    """The trace-level part of a search, resolved to values: a window on the trace's start ([start,
    end), None: open) and the traces to keep (`inside`, None: all) and to drop (`outside`)."""

    start_ns: int | None = None
    end_ns: int | None = None
    inside: list[str] | None = None
    outside: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when nothing narrows: every trace is a candidate."""
        return self.start_ns is None and self.end_ns is None and self.inside is None and not self.outside


def row_filter(
    narrowing: Narrowing, after: tuple[int, str] | None = None, *, window: bool = True
) -> tuple[str, dict[str, Any]]:
    """A WHERE over `trace_commits` rows keeping every row that can be a passing trace's earliest:
    start inside the window (and not after `after`'s start), trace kept by the sets; with named
    parameters (`$w_...`). With `window` False only the sets apply: every row of every passing trace
    is kept."""
    terms: list[str] = []
    params: dict[str, Any] = {}
    if window and narrowing.start_ns is not None:
        terms.append("start_time_ns >= $w_start")
        params["w_start"] = narrowing.start_ns
    if window and narrowing.end_ns is not None:
        terms.append("start_time_ns < $w_end")
        params["w_end"] = narrowing.end_ns
    if window and after is not None:
        terms.append("start_time_ns <= $w_after")
        params["w_after"] = after[0]
    if narrowing.inside is not None:
        terms.append("trace_id IN (SELECT unnest($w_in::VARCHAR[]))")
        params["w_in"] = narrowing.inside
    if narrowing.outside:
        terms.append("trace_id NOT IN (SELECT unnest($w_out::VARCHAR[]))")
        params["w_out"] = narrowing.outside
    return " AND ".join(terms) or "true", params


def candidates(
    cur: duckdb.DuckDBPyConnection,
    narrowing: Narrowing,
    limit: int,
    offset: int = 0,
    after: tuple[int, str] | None = None,
) -> list[Candidate]:
    """Traces in list order (start newest first, then id) passing `narrowing`, with the seq ranges of
    their steps; `after` continues from a trace (keyset: robust where OFFSET is not)."""
    if narrowing.empty:
        return newest(cur, limit, offset, after)
    return threshold(cur, narrowing, limit, offset, after)


_THRESHOLD_SQL = (
    "SELECT min(start_time_ns), count(*) FROM"
    " (SELECT start_time_ns FROM trace_commits WHERE {where} ORDER BY start_time_ns DESC LIMIT $rows)"
)

# The traces with a row from X on that passes the filter, judged on all their rows: those that start at
# or after X (no row before it) pass; their start and seq ranges come from the same read.
_PAGE_SQL = """
WITH g AS (SELECT DISTINCT trace_id FROM trace_commits WHERE {where} AND start_time_ns >= $x)
SELECT trace_id, min(start_time_ns) AS s,
       list(first_seq ORDER BY first_seq), list(last_seq ORDER BY first_seq)
FROM trace_commits WHERE trace_id IN (SELECT trace_id FROM g)
GROUP BY trace_id HAVING min(start_time_ns) >= $x {after}
ORDER BY s DESC, trace_id LIMIT $need
"""

# A small set of traces to keep: all their rows, grouped (no threshold needed).
_DIRECT_SQL = """
SELECT trace_id, min(start_time_ns) AS s,
       list(first_seq ORDER BY first_seq), list(last_seq ORDER BY first_seq)
FROM trace_commits WHERE trace_id IN (SELECT unnest($w_in::VARCHAR[]))
GROUP BY trace_id HAVING {having}
ORDER BY s DESC, trace_id LIMIT $need
"""
DIRECT_TRACES = 20_000  # a set to keep up to this size is read whole: one read of trace_commits


def threshold(
    cur: duckdb.DuckDBPyConnection,
    narrowing: Narrowing,
    limit: int,
    offset: int = 0,
    after: tuple[int, str] | None = None,
) -> list[Candidate]:
    """`candidates` with a filter, reading the newest rows by start time (see the module docstring).

    X is taken over the rows the window and a set to keep allow, not over a set to drop: any X is
    correct (it only decides how many traces a round finds), and a set to drop is usually small, so
    its membership test, a read of every row's trace id, would cost more than it saves."""
    need = offset + limit
    after_sql = ""
    params: dict[str, Any] = {"need": need}
    if after is not None:
        after_sql = (
            "AND (min(start_time_ns) < $after_s OR (min(start_time_ns) = $after_s AND trace_id > $after_t))"
        )
        params |= {"after_s": after[0], "after_t": after[1]}
    if narrowing.inside is not None and len(narrowing.inside) <= DIRECT_TRACES:
        having = ["true"]
        if narrowing.start_ns is not None:
            having.append("min(start_time_ns) >= $w_start")
            params["w_start"] = narrowing.start_ns
        if narrowing.end_ns is not None:
            having.append("min(start_time_ns) < $w_end")
            params["w_end"] = narrowing.end_ns
        sql = _DIRECT_SQL.format(having=" AND ".join(having) + " " + after_sql)
        found = cur.execute(sql, params | {"w_in": narrowing.inside}).fetchall()
    else:
        where, where_params = row_filter(narrowing, after)
        params |= where_params
        top, top_params = row_filter(dataclasses.replace(narrowing, outside=[]), after)
        rows_needed = max(TAIL_ROWS_PER_TRACE * need, MIN_TAIL_ROWS)
        floor = narrowing.start_ns if narrowing.start_ns is not None else NEVER
        while True:
            row = cur.execute(_THRESHOLD_SQL.format(where=top), top_params | {"rows": rows_needed}).fetchone()
            complete = row is None or row[0] is None or int(row[1]) < rows_needed
            x = floor if complete or row is None else int(row[0])
            found = cur.execute(_PAGE_SQL.format(where=where, after=after_sql), params | {"x": x}).fetchall()
            if complete or len(found) >= need:
                break
            rows_needed *= 4
    return [Candidate(str(t), int(s), list(zip(lo, hi, strict=True))) for t, s, lo, hi in found[offset:]]


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


def newest(
    cur: duckdb.DuckDBPyConnection, limit: int, offset: int, after: tuple[int, str] | None
) -> list[Candidate]:
    """`candidates` without a filter, reading the newest rows of `trace_commits` rather than all.

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
        tail = NEVER if whole else _tail_start(cur, rows_in_tail)
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
    return [Candidate(str(t), int(s), ranges[str(t)]) for t, s, _n in rows]


def _tail_start(cur: duckdb.DuckDBPyConnection, rows: int) -> int:
    """The last_seq below which all but the newest `rows` rows of trace_commits lie."""
    row = cur.execute(
        "SELECT min(last_seq) - 1 FROM (SELECT last_seq FROM trace_commits ORDER BY last_seq DESC LIMIT ?)",
        [rows],
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else NEVER
