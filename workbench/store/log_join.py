"""Keeping a step joined with its GenAI events, whichever of the span and its log records came first.

The join itself (what an event fills) is collectors.events, floor 2; this floor only finds the steps a
commit touched and writes what the join derives, inside the commit's transaction, so a step is never
seen half joined and a crash leaves nothing to repair. A step is always re-derived whole from sealed
bytes (the span's canonical bytes and those of every stored record of that span, in seq order), never
patched: `ledger verify` re-derives it the same way (collectors.integrity.step_deriver with a store).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb

from workbench.model import Step
from workbench.store.batch import STEP_COLUMNS, steps_table

# (span canonical bytes, the span's truncations JSON, [(log canonical bytes, its truncations JSON)] of
# every event of the span's trace, in seq order) -> the span's step with what those events carry.
Rejoin = Callable[[bytes, object, Sequence[tuple[bytes, object]]], Step]

Events = list[tuple[bytes, object]]


def events_of(cur: duckdb.DuckDBPyConnection, trace_ids: Sequence[str]) -> dict[str, Events]:
    """{trace id: [(canonical, truncations)] in seq order} of the stored log records in a span of these
    traces (an index lookup on logs_trace_id)."""
    rows = cur.execute(
        "SELECT trace_id, canonical, truncations FROM logs"
        " WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) AND span_id <> '' ORDER BY seq",
        [list(trace_ids)],
    ).fetchall()
    out: dict[str, Events] = {}
    for trace_id, canonical, truncations in rows:
        out.setdefault(trace_id, []).append((bytes(canonical), truncations))
    return out


def rejoin_steps(cur: duckdb.DuckDBPyConnection, trace_ids: Sequence[str], rejoin: Rejoin) -> int:
    """Re-derive the steps of these traces that events can fill: those whose span has records, and tool
    steps (whose arguments and result may be in a model call's events). Returns how many were rewritten.

    Runs inside the writer's transaction (its cursor sees the rows just inserted)."""
    if not trace_ids:
        return 0
    events = events_of(cur, trace_ids)
    if not events:
        return 0
    rows = cur.execute(
        "SELECT st.seq, st.trace_id, s.canonical, s.truncations FROM steps st JOIN spans s ON s.seq = st.seq"
        " WHERE st.trace_id IN (SELECT unnest(?::VARCHAR[])) AND (st.kind = 'tool' OR EXISTS"
        " (SELECT 1 FROM logs g WHERE g.trace_id = st.trace_id AND g.span_id = st.span_id)) ORDER BY st.seq",
        [sorted(events)],
    ).fetchall()
    seqs: list[int] = []
    steps: list[Step] = []
    for seq, trace_id, canonical, truncations in rows:
        seqs.append(int(seq))
        steps.append(rejoin(bytes(canonical), truncations, events[trace_id]))
    if not seqs:
        return 0
    _wb_rejoined = steps_table(seqs, steps)  # noqa: F841 (read by the SQL below, a replacement scan)
    assignments = ", ".join(f"{c} = n.{c}" for c in STEP_COLUMNS)
    cur.execute(f"UPDATE steps SET {assignments} FROM _wb_rejoined n WHERE steps.seq = n.seq")
    return len(seqs)
