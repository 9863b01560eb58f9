"""Trace search for the UI's trace list: filters, one row per trace, the filter choices.

The search itself runs in `explore_walk` (fast at scale); `explore_scan` keeps the one-scan reference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workbench.model import TraceSummary
from workbench.store import explore_walk, search_index
from workbench.store.connection import Store

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
    the scan's. A command or a UI on the file uses the index a server left beside it, when it was built
    from this database (`search_index.left_beside`); a store without one (a lake) scans.

    How it stays fast as the store grows (`explore_walk`): the time window, `has_findings`, `has_errors`
    and the side index's narrowing are judged on the small `trace_commits` table (all but the window as
    sets of trace ids, read once per search), reading only its newest rows by start time, so a page with
    only those reads just its own traces' steps. Text, services, agents and `min_cost` need the steps:
    the search walks the candidate traces newest first in growing batches, each judged over its own seq
    ranges, and stops once `offset + limit` traces passed; a condition so rare that the walk passes a
    quarter of the traces falls back to one scan of the rest, of only the steps that can meet it when
    it asks for some step with a text, service or agent. The answer is always the exact
    scan's (`explore_scan.scan_traces`, the reference the tests compare against).
    """
    cur = store.cursor()
    try:
        rows = explore_walk.search(cur, conditions(store, flt), limit, offset)
    finally:
        cur.close()
    return [to_row(r) for r in rows]


TEXT_COLUMNS = ("input_text", "output_text", "reasoning_text", "tool_arguments", "tool_result", "name")


def conditions(store: Store, flt: TraceFilter) -> explore_walk.Conditions:
    """`flt` as a window, sets of traces (judged on `trace_commits`) and terms over a trace's steps.

    `has_errors` is a set, the traces with an error step: a narrow scan of one boolean column, where
    a term would need every candidate's steps read (the walk that cost 715 ms at 10M spans). Every
    term here but `min_cost` asks for "some step with P", so then the rest of a walk scans only the
    steps where some P holds (`prefilter`).
    """
    sets: list[explore_walk.TraceSet] = []
    steps: list[explore_walk.Condition] = []
    exists: list[explore_walk.Condition] = []
    match: explore_walk.Condition = ("0", ())
    text = flt.text.strip()
    if text:
        predicate = text_predicate(text.lower())
        match = (f"count(*) FILTER (WHERE {predicate[0]})", predicate[1])
        steps.append((match[0] + " > 0", match[1]))
        exists.append(predicate)
    narrowed = narrowed_by_index(store, text)
    if narrowed is not None:
        traces, mark = narrowed
        sets.append(
            explore_walk.TraceSet(
                "SELECT unnest(?::VARCHAR[]) AS trace_id UNION ALL SELECT trace_id FROM trace_commits"
                " WHERE last_seq > ? UNION ALL SELECT trace_id FROM logs WHERE seq > ? AND span_id <> ''",
                (traces, mark, mark),
            )
        )
    for values, column in ((flt.services, "service_name"), (flt.agents, "actor")):
        if values:
            predicate = (f"list_contains(?, {column})", (list(values),))
            steps.append((f"bool_or({predicate[0]})", predicate[1]))
            exists.append(predicate)
    if flt.has_findings is not None:
        sets.append(explore_walk.TraceSet("SELECT trace_id FROM findings", keep=flt.has_findings))
    if flt.has_errors is not None:
        sets.append(explore_walk.TraceSet("SELECT trace_id FROM steps WHERE is_error", keep=flt.has_errors))
    prefilter: explore_walk.Condition | None = None
    if flt.min_cost is not None:
        steps.append(("coalesce(sum(cost_usd) FILTER (WHERE kind <> 'agent'), 0.0) >= ?", (flt.min_cost,)))
    elif exists:
        prefilter = (" OR ".join(f"({p})" for p, _ in exists), tuple(v for _, vs in exists for v in vs))
    return explore_walk.Conditions(
        start_ns=flt.start_ns,
        end_ns=flt.end_ns,
        sets=tuple(sets),
        steps=tuple(steps),
        prefilter=prefilter,
        match_expr=match,
    )


def text_predicate(needle: str) -> explore_walk.Condition:
    """Whether one step's text holds `needle` (already lower-cased): `contains(lower(column), needle)`
    over the text columns, each guarded by a cheaper test that no match can fail.

    The guard: DuckDB's lower() maps each code point to one code point, and none but the ASCII
    characters that are not letters (digits, punctuation, space) lowers to one of those
    (`tests/test_explore_walk.py` checks every code point). So a run of them in the needle lies,
    byte for byte, in any text whose lower() holds the needle, and `contains(column, run)`, which
    needs no lower-cased copy of the text, can go first: a search for an id, a ticket or a SQL
    fragment lower-cases only the few texts that hold its digits and punctuation.
    """
    run = max(_CASELESS.findall(needle), key=len, default="")
    parts: list[str] = []
    params: list[Any] = []
    for column in TEXT_COLUMNS:
        exact = f"contains(lower({column}), ?)"
        if len(run) >= MIN_GUARD:
            parts.append(f"(contains({column}, ?) AND {exact})")
            params += [run, needle]
        else:
            parts.append(exact)
            params.append(needle)
    return " OR ".join(parts), tuple(params)


# Runs of ASCII characters that are not letters: what lower() neither makes nor changes.
_CASELESS = re.compile(r"[\x00-\x40\x5b-\x60\x7b-\x7f]+")
MIN_GUARD = 2  # a shorter run is in most texts: the guard would cost more than it saves


def to_row(r: Sequence[Any]) -> TraceRow:
    """One result row (the column order of `explore_walk._rows` and `explore_scan`) as a TraceRow."""
    return TraceRow(
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


def narrowed_by_index(store: Store, text: str) -> tuple[list[str], int] | None:
    """The traces the side index allows for `text` and its watermark, or None: scan everything."""
    if not text:
        return None
    index = search_index.for_search(store)
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
