"""The trace search by one scan of all steps: the reference `explore_walk` must equal, and its peer.

Why keep it: "exactly the old answer" is only checkable against the old query, run on the same store.
"""

from __future__ import annotations

from typing import Any

from workbench.store.connection import Store
from workbench.store.explore_traces import TraceFilter, TraceRow, narrowed_by_index, selection_clauses, to_row
from workbench.store.findings import SEVERITY_RANK_SQL


def scan_traces(store: Store, flt: TraceFilter, limit: int = 200, offset: int = 0) -> list[TraceRow]:
    """The trace search as one GROUP BY over every step: `search_traces`'s answer, read the slow way.

    Kept verbatim from before `trace_commits` (migration 0051) as the reference: the tests compare
    `search_traces` with it row for row, and `benchmarks/listing.py` times it as the peer. Linear in the
    store (about 1.2 s at 10M spans); nothing in the product calls it.
    """
    where: list[str] = []
    having: list[str] = []
    params: list[Any] = []
    match_expr = "0"
    if flt.text.strip():
        needle = flt.text.strip().lower()
        cols = ("input_text", "output_text", "reasoning_text", "tool_arguments", "tool_result", "name")
        match_expr = "count(*) FILTER (WHERE " + " OR ".join(f"contains(lower({c}), ?)" for c in cols) + ")"
        params += [needle] * len(cols)
        having.append(match_expr + " > 0")
        params_having: list[Any] = [needle] * len(cols)
    else:
        params_having = []
    params_where: list[Any] = []
    narrowed = narrowed_by_index(store, flt.text.strip())
    if narrowed is not None:
        traces, mark = narrowed
        where.append(
            "s.trace_id IN (SELECT unnest(?::VARCHAR[]) UNION ALL SELECT trace_id FROM steps WHERE seq > ?"
            " UNION ALL SELECT trace_id FROM logs WHERE seq > ? AND span_id <> '')"
        )
        params_where += [traces, mark, mark]
    if flt.services:
        where.append("s.trace_id IN (SELECT trace_id FROM steps WHERE list_contains(?, service_name))")
        params_where.append(list(flt.services))
    if flt.agents:
        where.append("s.trace_id IN (SELECT trace_id FROM steps WHERE list_contains(?, actor))")
        params_where.append(list(flt.agents))
    if flt.has_findings is not None:
        where.append(("" if flt.has_findings else "NOT ") + "s.trace_id IN (SELECT trace_id FROM findings)")
    window, window_params = selection_clauses(
        start_ns=flt.start_ns, end_ns=flt.end_ns, time_expr="min(start_time_ns)"
    )
    having += window
    params_having += window_params
    if flt.has_errors is not None:
        having.append("count(*) FILTER (WHERE is_error) " + ("> 0" if flt.has_errors else "= 0"))
    if flt.min_cost is not None:
        having.append("coalesce(sum(cost_usd) FILTER (WHERE kind <> 'agent'), 0.0) >= ?")
        params_having.append(flt.min_cost)
    sql = f"""
    WITH t AS (
        SELECT
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
            list(DISTINCT actor ORDER BY actor) FILTER (WHERE actor IS NOT NULL) AS agents,
            {match_expr} AS matches
        FROM steps s
        {"WHERE " + " AND ".join(where) if where else ""}
        GROUP BY trace_id
        {"HAVING " + " AND ".join(having) if having else ""}
    ),
    f AS (
        SELECT trace_id, count(*) AS n,
               arg_max(severity, {SEVERITY_RANK_SQL}) AS worst
        FROM findings GROUP BY trace_id
    ),
    page AS (
        SELECT t.*, coalesce(f.n, 0) AS n_findings, f.worst FROM t LEFT JOIN f USING (trace_id)
        ORDER BY t.start_ns DESC, t.trace_id
        LIMIT ? OFFSET ?
    )
    SELECT page.*, coalesce(d.duplicate_spans, 0),
           (SELECT count(*) FROM spans v WHERE v.trace_id = page.trace_id AND v.version_of IS NOT NULL)
    FROM page LEFT JOIN delivery_stats d USING (trace_id)
    ORDER BY page.start_ns DESC, page.trace_id
    """
    # Parameters in the order their placeholders appear: SELECT list, WHERE, HAVING, LIMIT.
    args = (params if flt.text.strip() else []) + params_where + params_having + [limit, offset]
    rows = store.cursor().execute(sql, args).fetchall()
    return [to_row(r) for r in rows]
