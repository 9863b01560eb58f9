"""Paged replay: one step, a window of neighbours, a binned timeline and the step tree.

Every query reads only what one screen shows, so the replay stays fast on a 100,000-step trace.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.model import StoredStep
from workbench.store.batch import STEP_SELECT, stored_step
from workbench.store.connection import Store

# Past this many steps the timeline shows time bins instead of one bar per step: beyond a few hundred
# bars no single bar is readable, and building and drawing them costs the step change its budget.
TIMELINE_DETAIL_MAX = 500

# Attributes of the raw span the replay shows beside the normalized step (they have no step column).
SIDE_EFFECT_ATTRIBUTE = "workbench.tool.side_effect"
RETRY_ATTEMPT_ATTRIBUTE = "workbench.retry.attempt"


# ---------------------------------------------------------------------------------------------- replay


def step_count(store: Store, trace_id: str) -> int:
    row = store.cursor().execute("SELECT count(*) FROM steps WHERE trace_id = ?", [trace_id]).fetchone()
    return int(row[0]) if row else 0


def step_counts(store: Store, trace_ids: Sequence[str]) -> dict[str, int]:
    """`step_count` of several traces from one scan (a page that lists findings of 100 traces would
    otherwise scan the steps' trace ids 100 times: 2.4 s at 1M spans)."""
    out = dict.fromkeys(trace_ids, 0)
    if out:
        rows = store.cursor().execute(
            "SELECT trace_id, count(*) FROM steps WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1",
            [list(out)],
        )
        out.update({str(t): int(n) for t, n in rows.fetchall()})
    return out


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
    rows = store.cursor().execute(STEP_SELECT + " WHERE seq IN (SELECT unnest(?))", [wanted]).fetchall()
    by_seq = {int(r[0]): stored_step(r) for r in rows}
    return [by_seq[s] for s in wanted if s in by_seq]


def step_extras(store: Store, seq: int) -> dict[str, Any]:
    """What the raw span adds to a step for investigators: side effect, retry attempt, attributes, events.

    `attributes` is the spans table's column: every attribute but long strings (`batch.slim_attributes`;
    the workbench's own `workbench.*` attributes are always there). The whole set, exactly, is in the
    span's sealed `canonical` bytes, returned with its `truncations` so a caller that may decode
    (`collectors.decode.record_from_canonical`, floor 2) re-derives every attribute as ingest saw it.
    """
    row = (
        store.cursor()
        .execute(
            "SELECT attributes, events, status_message, resource, canonical, truncations FROM spans"
            " WHERE seq = ?",
            [seq],
        )
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
        "canonical": bytes(row[4]),
        "truncations": row[5],
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
