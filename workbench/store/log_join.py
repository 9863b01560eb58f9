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

# (span canonical bytes, the span's truncations JSON, [(log canonical bytes, its truncations JSON)] in seq
# order) -> the span's step with what its events carry.
Rejoin = Callable[[bytes, object, Sequence[tuple[bytes, object]]], Step]

Key = tuple[str, str]


def events_of(
    cur: duckdb.DuckDBPyConnection, span_ids: Sequence[str]
) -> dict[Key, list[tuple[bytes, object]]]:
    """{(trace id, span id): [(canonical, truncations)] in seq order} of the stored records of these spans
    (an index lookup on logs_span_id)."""
    rows = cur.execute(
        "SELECT trace_id, span_id, canonical, truncations FROM logs"
        " WHERE span_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY seq",
        [list(span_ids)],
    ).fetchall()
    out: dict[Key, list[tuple[bytes, object]]] = {}
    for trace_id, span_id, canonical, truncations in rows:
        out.setdefault((trace_id, span_id), []).append((bytes(canonical), truncations))
    return out


def rejoin_steps(cur: duckdb.DuckDBPyConnection, span_ids: Sequence[str], rejoin: Rejoin) -> int:
    """Re-derive the steps of these span ids that have events; returns how many were rewritten.

    Runs inside the writer's transaction (its cursor sees the rows just inserted)."""
    if not span_ids:
        return 0
    events = events_of(cur, span_ids)
    if not events:
        return 0
    rows = cur.execute(
        "SELECT st.seq, st.trace_id, st.span_id, s.canonical, s.truncations"
        " FROM steps st JOIN spans s ON s.seq = st.seq"
        " WHERE st.span_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY st.seq",
        [sorted({span_id for _, span_id in events})],
    ).fetchall()
    seqs: list[int] = []
    steps: list[Step] = []
    for seq, trace_id, span_id, canonical, truncations in rows:
        records = events.get((trace_id, span_id))
        if records:
            seqs.append(int(seq))
            steps.append(rejoin(bytes(canonical), truncations, records))
    if not seqs:
        return 0
    _wb_rejoined = steps_table(seqs, steps)  # noqa: F841 (read by the SQL below, a replacement scan)
    assignments = ", ".join(f"{c} = n.{c}" for c in STEP_COLUMNS)
    cur.execute(f"UPDATE steps SET {assignments} FROM _wb_rejoined n WHERE steps.seq = n.seq")
    return len(seqs)
