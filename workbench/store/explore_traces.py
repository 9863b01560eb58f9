"""Trace search for the UI's trace list: filters, one row per trace, the filter choices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workbench.model import TraceSummary
from workbench.store import search_index
from workbench.store.connection import Store
from workbench.store.findings import SEVERITY_RANK_SQL

# ---------------------------------------------------------------------------------------------- traces


def selection_clauses(
    trace_ids: Sequence[str] = (),
    start_ns: int | None = None,
    end_ns: int | None = None,
    *,
    time_expr: str = "start_time_ns",
) -> tuple[list[str], list[Any]]:
    """The trace and time conditions every selection of traces shares, and their parameters in order.

    One builder for the trace search and for exports, so "these traces, from T0 up to T1" means the same
    wherever a person chooses it: the window is half-open [start, end), which lets consecutive windows
    tile without a span in two of them. `time_expr` is the time a row is judged by: each span's start in
    an export's WHERE, `min(start_time_ns)` (the trace's start) in the search's HAVING. Empty arguments
    add no condition. Trace ids only ever travel as parameters, never as SQL text.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if trace_ids:
        clauses.append(f"trace_id IN ({', '.join('?' for _ in trace_ids)})")
        params += list(trace_ids)
    if start_ns is not None:
        clauses.append(f"{time_expr} >= ?")
        params.append(start_ns)
    if end_ns is not None:
        clauses.append(f"{time_expr} < ?")
        params.append(end_ns)
    return clauses, params


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """What the Traces page narrows the list by; empty fields do not filter."""

    text: str = ""  # case-insensitive substring of input, output, reasoning, tool arguments or result
    services: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    start_ns: int | None = None  # traces that started at or after
    end_ns: int | None = None  # traces that started before
    has_findings: bool | None = None
    has_errors: bool | None = None
    min_cost: float | None = None


@dataclass(frozen=True, slots=True)
class TraceRow(TraceSummary):
    """One line of the Traces page: the trace's totals plus how many findings it raised."""

    findings: int = 0
    max_severity: str | None = None
    matches: int = 0  # steps matching the text search (0 without a search)


def search_traces(store: Store, flt: TraceFilter, limit: int = 200, offset: int = 0) -> list[TraceRow]:
    """Traces newest first, narrowed by `flt`. Totals skip agent spans, which repeat their children's sums.

    The text search is a case-insensitive substring match over the step text columns: substring is
    what investigators type (ids, hostnames, SQL fragments), where a word index alone would split them.
    When the server keeps the full-text side index (`search_index`), it only narrows the traces the
    match runs on (those its words allow, plus everything newer than its watermark), so the answer is
    the scan's; a store without one (a lake, a command on the file) scans.
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
    narrowed = _narrowed(store, flt.text.strip())
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
    return [
        TraceRow(
            trace_id=r[0],
            service_name=r[1] or "",
            root_name=r[2] or "",
            start_time_ns=int(r[3]),
            end_time_ns=int(r[4]),
            span_count=int(r[5]),
            error_count=int(r[6]),
            tool_calls=int(r[7]),
            tokens_in=int(r[8]),
            tokens_out=int(r[9]),
            tokens_reasoning=int(r[10]),
            cost_usd=float(r[11]),
            agents=tuple(r[12] or ()),
            matches=int(r[13]),
            findings=int(r[14]),
            max_severity=r[15],
            duplicates=int(r[16]),
            versions=int(r[17]),
        )
        for r in rows
    ]


def _narrowed(store: Store, text: str) -> tuple[list[str], int] | None:
    """The traces the side index allows for `text` and its watermark, or None: scan everything."""
    if not text:
        return None
    index = search_index.attached(store)
    return index.candidates(text) if index is not None else None


def filter_choices(store: Store) -> dict[str, list[str]]:
    """The services and agents seen, for the Traces page's multiselects."""
    cur = store.cursor()
    services = [r[0] for r in cur.execute("SELECT DISTINCT service_name FROM steps ORDER BY 1").fetchall()]
    agents = [
        r[0]
        for r in cur.execute("SELECT DISTINCT actor FROM steps WHERE actor IS NOT NULL ORDER BY 1").fetchall()
    ]
    return {"services": services, "agents": agents}


def trace_exists(store: Store, trace_id: str) -> bool:
    row = store.cursor().execute("SELECT 1 FROM steps WHERE trace_id = ? LIMIT 1", [trace_id]).fetchone()
    return row is not None
