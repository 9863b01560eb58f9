"""Named queries behind the workbench UI: trace search, paged replay, the timeline, the step tree, dashboards.

Why a module of its own: the replay must stay fast on a 100,000-step trace, so every query here reads
only what one screen shows (one step, a window of neighbours, a binned timeline) instead of the whole
trace. Pages call these and never write SQL. Small lists come back as frozen records; aggregates that
go straight into charts come back as pandas DataFrames.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.model import Finding, Severity, Step, StepKind, StoredStep
from workbench.store.batch import STEP_COLUMNS
from workbench.store.connection import Store

# Past this many steps the timeline shows time bins instead of one bar per step: beyond a few hundred
# bars no single bar is readable, and building and drawing them costs the step change its budget.
TIMELINE_DETAIL_MAX = 500

# Attributes of the raw span the replay shows beside the normalized step (they have no step column).
SIDE_EFFECT_ATTRIBUTE = "workbench.tool.side_effect"
RETRY_ATTEMPT_ATTRIBUTE = "workbench.retry.attempt"

# Output tokens including reasoning. OpenAI's usage (and the GenAI conventions that copy it) count
# reasoning inside output tokens; a convention that reports fewer output than reasoning tokens evidently
# counts them apart, so they are added.
_OUT_TOTAL = (
    "(CASE WHEN coalesce(s.tokens_out, 0) >= coalesce(s.tokens_reasoning, 0) THEN coalesce(s.tokens_out, 0) "
    "ELSE coalesce(s.tokens_out, 0) + s.tokens_reasoning END)"
)

_STEP_SELECT = "SELECT seq, " + ", ".join(STEP_COLUMNS) + " FROM steps"


def _to_stored(row: Sequence[Any]) -> StoredStep:
    values = dict(zip(STEP_COLUMNS, row[1:], strict=True))
    values["kind"] = StepKind(values["kind"])
    return StoredStep(seq=int(row[0]), step=Step(**values))


# ---------------------------------------------------------------------------------------------- traces


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
class TraceRow:
    """One line of the Traces page: the trace's totals plus how many findings it raised."""

    trace_id: str
    service_name: str
    root_name: str
    start_time_ns: int
    end_time_ns: int
    steps: int
    errors: int
    tool_calls: int
    tokens_in: int
    tokens_out: int
    tokens_reasoning: int
    cost_usd: float
    agents: tuple[str, ...]
    findings: int
    max_severity: str | None
    matches: int  # steps matching the text search (0 without a search)


def search_traces(store: Store, flt: TraceFilter, limit: int = 200, offset: int = 0) -> list[TraceRow]:
    """Traces newest first, narrowed by `flt`. Totals skip agent spans, which repeat their children's sums.

    The text search is a case-insensitive substring match over the step text columns: DuckDB scans a
    100,000-step trace's text in tens of milliseconds, and substring is what investigators type (ids,
    hostnames, SQL fragments) where a word index would split them.
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
    if flt.services:
        where.append("s.trace_id IN (SELECT trace_id FROM steps WHERE list_contains(?, service_name))")
        params_where: list[Any] = [list(flt.services)]
    else:
        params_where = []
    if flt.agents:
        where.append("s.trace_id IN (SELECT trace_id FROM steps WHERE list_contains(?, actor))")
        params_where.append(list(flt.agents))
    if flt.has_findings is not None:
        where.append(("" if flt.has_findings else "NOT ") + "s.trace_id IN (SELECT trace_id FROM findings)")
    if flt.start_ns is not None:
        having.append("min(start_time_ns) >= ?")
        params_having.append(flt.start_ns)
    if flt.end_ns is not None:
        having.append("min(start_time_ns) < ?")
        params_having.append(flt.end_ns)
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
               arg_max(severity, CASE severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3
                   WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END) AS worst
        FROM findings GROUP BY trace_id
    )
    SELECT t.*, coalesce(f.n, 0), f.worst FROM t LEFT JOIN f USING (trace_id)
    ORDER BY t.start_ns DESC, t.trace_id
    LIMIT ? OFFSET ?
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
            steps=int(r[5]),
            errors=int(r[6]),
            tool_calls=int(r[7]),
            tokens_in=int(r[8]),
            tokens_out=int(r[9]),
            tokens_reasoning=int(r[10]),
            cost_usd=float(r[11]),
            agents=tuple(r[12] or ()),
            matches=int(r[13]),
            findings=int(r[14]),
            max_severity=r[15],
        )
        for r in rows
    ]


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


# ---------------------------------------------------------------------------------------------- replay


def step_count(store: Store, trace_id: str) -> int:
    row = store.cursor().execute("SELECT count(*) FROM steps WHERE trace_id = ?", [trace_id]).fetchone()
    return int(row[0]) if row else 0


def step_order(store: Store, trace_id: str) -> np.ndarray:
    """The seqs of a trace's steps in replay order (start time, ties by ingest order).

    Step N of the replay (1-based, as in the `?step=N` deep link) is `step_order(...)[N - 1]`. A 100,000-step
    trace is an 800 KB array: the UI keeps it server-side so that moving to any step is one primary-key read.
    """
    result = (
        store.cursor()
        .execute("SELECT seq FROM steps WHERE trace_id = ? ORDER BY start_time_ns, seq", [trace_id])
        .fetchnumpy()
    )
    return np.asarray(result["seq"], dtype=np.int64)


def steps_by_seq(store: Store, seqs: Sequence[int]) -> list[StoredStep]:
    """Full steps for these seqs, in the order given (missing seqs are skipped)."""
    if not len(seqs):
        return []
    wanted = [int(s) for s in seqs]
    rows = store.cursor().execute(_STEP_SELECT + " WHERE seq IN (SELECT unnest(?))", [wanted]).fetchall()
    by_seq = {int(r[0]): _to_stored(r) for r in rows}
    return [by_seq[s] for s in wanted if s in by_seq]


def step_extras(store: Store, seq: int) -> dict[str, Any]:
    """What the raw span adds to a step for investigators: side effect, retry attempt, attributes, events."""
    row = (
        store.cursor()
        .execute("SELECT attributes, events, status_message, resource FROM spans WHERE seq = ?", [seq])
        .fetchone()
    )
    if row is None:
        return {}
    attributes = json.loads(row[0]) if row[0] else {}
    return {
        "side_effect": attributes.get(SIDE_EFFECT_ATTRIBUTE),
        "retry_attempt": attributes.get(RETRY_ATTEMPT_ATTRIBUTE),
        "attributes": attributes,
        "events": json.loads(row[1]) if row[1] else [],
        "status_message": row[2],
        "resource": json.loads(row[3]) if row[3] else {},
    }


def timeline(store: Store, trace_id: str, bins: int = 200) -> tuple[str, pd.DataFrame]:
    """The trace's timeline: ("detail", one row per step) or ("binned", counts per time bin and kind).

    Detail rows: seq, kind, actor, name, start_ns, end_ns, is_error. Binned rows: bin, kind, steps,
    errors, start_ns, end_ns. The binned form keeps a 100,000-step trace to at most bins x kinds rows.
    """
    cur = store.cursor()
    n = step_count(store, trace_id)
    if n <= TIMELINE_DETAIL_MAX:
        df = cur.execute(
            "SELECT seq, kind, coalesce(actor, service_name) AS actor, name, start_time_ns AS start_ns, "
            "end_time_ns AS end_ns, is_error FROM steps WHERE trace_id = ? ORDER BY start_time_ns, seq",
            [trace_id],
        ).df()
        return "detail", df
    df = cur.execute(
        """
        WITH r AS (SELECT min(start_time_ns) AS lo,
                          greatest(max(start_time_ns) - min(start_time_ns), 1) AS span
                   FROM steps WHERE trace_id = ?)
        SELECT least(CAST(floor((start_time_ns - r.lo) * ? / r.span) AS BIGINT), ? - 1) AS bin, kind,
               count(*) AS steps, count(*) FILTER (WHERE is_error) AS errors,
               min(start_time_ns) AS start_ns, max(end_time_ns) AS end_ns
        FROM steps, r WHERE trace_id = ?
        GROUP BY ALL ORDER BY bin, kind
        """,
        [trace_id, bins, bins, trace_id],
    ).df()
    return "binned", df


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A step in the step tree: enough to draw it and link to it."""

    seq: int
    span_id: str
    parent_span_id: str
    kind: str
    name: str
    start_time_ns: int
    is_error: bool
    children: int  # how many children it has in the whole trace (the tree may show only some)


@dataclass(frozen=True, slots=True)
class TreeView:
    """The part of the step tree shown around the current step (the whole tree for a small trace)."""

    nodes: list[TreeNode] = field(default_factory=list)
    complete: bool = True  # False when only the current step's context is shown


class TreeIndex:
    """The parent/child structure of one trace as two integer arrays, for the step tree around any step.

    Why: finding a step's ancestors and siblings with SQL costs a scan of the trace per level (about
    100 ms per step change on a 100,000-step trace). One query computes every step's parent position
    (integers only: about 0.2 s for 100,000 steps); after that a view needs only the few shown steps'
    names. Arrays are in replay order; `parents[i]` is the index of step i's parent, or -1 for a root
    (or a parent span that was never received).
    """

    def __init__(self, store: Store, trace_id: str) -> None:
        got = (
            store.cursor()
            .execute(
                """
                WITH o AS (SELECT seq, span_id, parent_span_id,
                                  row_number() OVER (ORDER BY start_time_ns, seq) - 1 AS i
                           FROM steps WHERE trace_id = ?),
                     p AS (SELECT span_id, min(i) AS i FROM o GROUP BY span_id)
                SELECT o.seq, coalesce(p.i, -1) AS parent
                FROM o LEFT JOIN p ON p.span_id = o.parent_span_id AND o.parent_span_id <> ''
                ORDER BY o.i
                """,
                [trace_id],
            )
            .fetchnumpy()
        )
        self.trace_id = trace_id
        self.seqs = np.asarray(got["seq"], dtype=np.int64)
        self.parents = np.asarray(got["parent"], dtype=np.int64)
        # Children grouped by parent, each group in replay order (a stable sort keeps it).
        self._by_parent = np.argsort(self.parents, kind="stable")
        self._sorted_parents = self.parents[self._by_parent]
        self.child_counts = np.bincount(self.parents[self.parents >= 0], minlength=len(self.seqs))
        by_seq = np.argsort(self.seqs)
        self._seq_sorted, self._seq_index = self.seqs[by_seq], by_seq

    def __len__(self) -> int:
        return len(self.seqs)

    def index_of(self, seq: int) -> int | None:
        k = int(np.searchsorted(self._seq_sorted, seq))
        if k < len(self._seq_sorted) and int(self._seq_sorted[k]) == int(seq):
            return int(self._seq_index[k])
        return None

    def children(self, i: int) -> np.ndarray:
        """Indices of the children of step i (i = -1: the roots), in replay order."""
        lo = np.searchsorted(self._sorted_parents, i, side="left")
        hi = np.searchsorted(self._sorted_parents, i, side="right")
        return self._by_parent[lo:hi]

    def view(self, store: Store, seq: int, full_max: int = 400, window: int = 12) -> TreeView:
        """The whole tree when the trace has at most `full_max` steps, else the context of `seq`.

        The context is the step's ancestors, up to `window` siblings before and after it at each level,
        and its first `window` children: enough to place the step, in bounded size.
        """
        if len(self) <= full_max:
            return TreeView(self._nodes(store, range(len(self))), complete=True)
        me = self.index_of(seq)
        if me is None:
            return TreeView([], complete=False)
        wanted = {me, *(int(k) for k in self.children(me)[:window])}
        level = me
        for _ in range(256):  # a cycle of parent ids (bad data) must not loop forever
            parent = int(self.parents[level])
            sibs = self.children(parent)
            k = int(np.searchsorted(sibs, level))
            wanted.update(int(x) for x in sibs[max(0, k - window) : k + window + 1])
            if parent < 0:
                break
            wanted.add(parent)
            level = parent
        return TreeView(self._nodes(store, sorted(wanted)), complete=False)

    def _nodes(self, store: Store, indices: Sequence[int] | range) -> list[TreeNode]:
        seqs = [int(self.seqs[i]) for i in indices]
        rows = (
            store.cursor()
            .execute(
                "SELECT seq, span_id, parent_span_id, kind, name, start_time_ns, is_error FROM steps "
                "WHERE seq IN (SELECT unnest(?))",
                [seqs],
            )
            .fetchall()
        )
        by_seq = {int(r[0]): r for r in rows}
        out = []
        for i, q in zip(indices, seqs, strict=True):
            r = by_seq.get(q)
            if r is not None:
                out.append(
                    TreeNode(q, r[1], r[2], r[3], r[4], int(r[5]), bool(r[6]), int(self.child_counts[i]))
                )
        return out


def step_tree(store: Store, trace_id: str, seq: int, full_max: int = 400, window: int = 12) -> TreeView:
    """The step tree around `seq` (see TreeIndex.view); builds the index, so cache a TreeIndex to repeat."""
    return TreeIndex(store, trace_id).view(store, seq, full_max=full_max, window=window)


# -------------------------------------------------------------------------------------------- findings


_FINDING_COLUMNS = (
    "id, trace_id, step_seq, span_id, rule_id, severity, title, explanation, evidence_field, "
    "evidence_start, evidence_end, evidence_excerpt, taint_chain, details"
)


def _to_finding(r: Sequence[Any]) -> Finding:
    try:
        severity = Severity(r[5])
    except ValueError:
        severity = Severity.INFO  # an unknown severity still shows, at the bottom
    return Finding(
        id=int(r[0]),
        trace_id=r[1],
        step_seq=int(r[2]),
        span_id=r[3],
        rule_id=r[4],
        severity=severity,
        title=r[6],
        explanation=r[7],
        evidence_field=r[8],
        evidence_start=r[9],
        evidence_end=r[10],
        evidence_excerpt=r[11],
        taint_chain=tuple(int(x) for x in (json.loads(r[12]) if r[12] else [])),
        details=json.loads(r[13]) if r[13] else {},
    )


def trace_findings(store: Store, trace_id: str) -> list[Finding]:
    """Every finding of one trace, worst first."""
    rows = (
        store.cursor()
        .execute(
            f"SELECT {_FINDING_COLUMNS} FROM findings WHERE trace_id = ? ORDER BY step_seq, id", [trace_id]
        )
        .fetchall()
    )
    found = [_to_finding(r) for r in rows]
    return sorted(found, key=lambda f: -f.severity.rank)


def list_findings(
    store: Store,
    severities: Sequence[str] = (),
    rules: Sequence[str] = (),
    limit: int = 500,
) -> list[Finding]:
    """Findings across traces, newest trace activity first, narrowed by severity and rule."""
    where, params = [], []
    if severities:
        where.append("list_contains(?, severity)")
        params.append(list(severities))
    if rules:
        where.append("list_contains(?, rule_id)")
        params.append(list(rules))
    sql = f"SELECT {_FINDING_COLUMNS} FROM findings"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
    rows = store.cursor().execute(sql, [*params, limit]).fetchall()
    return [_to_finding(r) for r in rows]


def finding_rules(store: Store) -> list[str]:
    rows = store.cursor().execute("SELECT DISTINCT rule_id FROM findings ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def step_positions(store: Store, trace_id: str, seqs: Sequence[int]) -> dict[int, int]:
    """1-based replay positions of these seqs in their trace (for links from findings to steps)."""
    if not len(seqs):
        return {}
    rows = (
        store.cursor()
        .execute(
            """
            SELECT seq, pos FROM (
                SELECT seq, row_number() OVER (ORDER BY start_time_ns, seq) AS pos
                FROM steps WHERE trace_id = ?
            ) WHERE seq IN (SELECT unnest(?))
            """,
            [trace_id, [int(s) for s in seqs]],
        )
        .fetchall()
    )
    return {int(s): int(p) for s, p in rows}


# ------------------------------------------------------------------------------------------ dashboard


def activity(store: Store, bucket: str = "hour") -> pd.DataFrame:
    """Traces and steps started per time bucket (`hour` or `day`): columns bucket, traces, steps."""
    if bucket not in {"hour", "day", "minute"}:
        raise ValueError(f"bucket must be minute, hour or day, not {bucket!r}")
    return (
        store.cursor()
        .execute(
            f"""
            SELECT date_trunc('{bucket}', make_timestamptz(start_time_ns // 1000)) AS bucket,
                   count(DISTINCT trace_id) AS traces, count(*) AS steps
            FROM steps GROUP BY 1 ORDER BY 1
            """
        )
        .df()
    )


def cost_by_agent_model(store: Store) -> pd.DataFrame:
    """Cost and tokens per (agent, model) over model calls: columns agent, model, cost_usd, tokens_*."""
    return (
        store.cursor()
        .execute(
            """
            SELECT coalesce(actor, service_name) AS agent, coalesce(model, '(none)') AS model,
                   coalesce(sum(cost_usd), 0.0) AS cost_usd,
                   coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out,
                   coalesce(sum(tokens_reasoning), 0) AS tokens_reasoning,
                   coalesce(sum({out}), 0) - coalesce(sum(tokens_reasoning), 0) AS tokens_visible
            FROM steps s WHERE kind <> 'agent' AND (model IS NOT NULL OR cost_usd IS NOT NULL)
            GROUP BY ALL ORDER BY cost_usd DESC
            """.replace("{out}", _OUT_TOTAL)
        )
        .df()
    )


def agent_scorecard(store: Store) -> pd.DataFrame:
    """The "agentic IQ" table, one row per agent.

    completion_rate: share of its traces whose root step did not end in error. median_steps: steps per
    trace. retries: steps recorded as a retry (attempt > 1). error_rate: erroring steps / steps.
    human_interventions: human steps (approvals, edits). reasoning_share: reasoning tokens / output
    tokens (reasoning included). reasoning_cost_per_completed: the cost attributed to reasoning tokens
    (each model call's cost split by its token counts), divided by completed traces.
    """
    return (
        store.cursor()
        .execute(
            """
            WITH per_trace AS (
                SELECT s.trace_id,
                       coalesce(arg_min(coalesce(s.actor, s.service_name), s.start_time_ns)
                                FILTER (WHERE s.parent_span_id = ''),
                                arg_min(coalesce(s.actor, s.service_name), s.start_time_ns)) AS agent,
                       count(*) AS steps,
                       bool_or(s.is_error) FILTER (WHERE s.parent_span_id = '') AS root_failed,
                       count(*) FILTER (WHERE s.is_error) AS errors,
                       count(*) FILTER (WHERE s.kind = 'human') AS humans,
                       count(*) FILTER (
                           WHERE TRY_CAST(p.attributes->>'workbench.retry.attempt' AS INTEGER) > 1)
                           AS retries,
                       coalesce(sum(s.tokens_reasoning) FILTER (WHERE s.kind <> 'agent'), 0) AS treason,
                       coalesce(sum({out}) FILTER (WHERE s.kind <> 'agent'), 0) AS tout,
                       coalesce(sum(s.cost_usd * s.tokens_reasoning
                                    / nullif(coalesce(s.tokens_in, 0) + {out}, 0))
                                FILTER (WHERE s.kind <> 'agent'), 0.0) AS reasoning_cost,
                       coalesce(sum(s.cost_usd) FILTER (WHERE s.kind <> 'agent'), 0.0) AS cost
                FROM steps s JOIN spans p ON p.seq = s.seq
                GROUP BY s.trace_id
            )
            SELECT agent,
                   count(*) AS traces,
                   avg(CASE WHEN coalesce(root_failed, false) THEN 0.0 ELSE 1.0 END) AS completion_rate,
                   median(steps) AS median_steps,
                   sum(retries) AS retries,
                   sum(errors) / sum(steps) AS error_rate,
                   sum(humans) AS human_interventions,
                   sum(treason) / nullif(sum(tout), 0) AS reasoning_share,
                   sum(reasoning_cost) / nullif(count(*) FILTER (WHERE NOT coalesce(root_failed, false)), 0)
                       AS reasoning_cost_per_completed,
                   sum(cost) AS cost_usd
            FROM per_trace GROUP BY agent ORDER BY agent
            """.replace("{out}", _OUT_TOTAL)
        )
        .df()
    )


def totals(store: Store) -> dict[str, float]:
    """Headline numbers: traces, steps, cost, error rate, retry rate, reasoning share of output tokens."""
    row = (
        store.cursor()
        .execute(
            """
            SELECT count(DISTINCT s.trace_id), count(*),
                   coalesce(sum(s.cost_usd) FILTER (WHERE s.kind <> 'agent'), 0.0),
                   count(*) FILTER (WHERE s.is_error),
                   count(*) FILTER (WHERE TRY_CAST(p.attributes->>'workbench.retry.attempt' AS INTEGER) > 1),
                   coalesce(sum(s.tokens_reasoning) FILTER (WHERE s.kind <> 'agent'), 0),
                   coalesce(sum({out}) FILTER (WHERE s.kind <> 'agent'), 0)
            FROM steps s JOIN spans p ON p.seq = s.seq
            """.replace("{out}", _OUT_TOTAL)
        )
        .fetchone()
    )
    traces, steps, cost, errors, retries, treason, tout = row if row else (0, 0, 0.0, 0, 0, 0, 0)
    steps = int(steps or 0)
    return {
        "traces": int(traces or 0),
        "steps": steps,
        "cost_usd": float(cost or 0.0),
        "error_rate": (int(errors) / steps) if steps else 0.0,
        "retry_rate": (int(retries) / steps) if steps else 0.0,
        "reasoning_share": (int(treason) / int(tout)) if tout else 0.0,
    }
