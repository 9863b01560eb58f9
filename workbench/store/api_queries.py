"""Named queries behind the read API (`workbench/api.py`): pages of traces and steps with their totals.

Why separate from `queries.py`: the API answers with plain dicts that go straight to JSON. Building a
frozen `Step` per row and taking it apart again would double the Python work on a 10,000-step trace,
which is the API's main job (a UI or another tool fetching one whole trace to display).
"""

from __future__ import annotations

from typing import Any

from workbench.store.batch import STEP_COLUMNS
from workbench.store.connection import Store

STEP_FIELDS: tuple[str, ...] = ("seq", *STEP_COLUMNS)
"""The keys of one step as the API returns it: the ingest sequence number, then every `Step` field."""

_STEP_PAGE_SQL = (
    "SELECT "
    + ", ".join(STEP_FIELDS)
    + " FROM steps WHERE trace_id = ? ORDER BY start_time_ns, seq LIMIT ? OFFSET ?"
)


def count_traces(store: Store) -> int:
    """How many traces have at least one step (the total behind a page of `queries.list_traces`).

    Counted on `trace_commits` (a row per trace and commit that stored steps), not on every step."""
    row = store.cursor().execute("SELECT count(DISTINCT trace_id) FROM trace_commits").fetchone()
    return int(row[0]) if row else 0


def count_trace_steps(store: Store, trace_id: str) -> int:
    """How many steps one trace has (0 for an unknown id)."""
    row = store.cursor().execute("SELECT count(*) FROM steps WHERE trace_id = ?", [trace_id]).fetchone()
    return int(row[0]) if row else 0


def trace_step_page(store: Store, trace_id: str, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """One page of a trace's steps in time order (ties by ingest order), each a dict keyed by STEP_FIELDS.

    The order is the one `queries.trace_steps` uses, so pages fetched one after another add up to it.
    """
    rows = store.cursor().execute(_STEP_PAGE_SQL, [trace_id, limit, offset]).fetchall()
    return [dict(zip(STEP_FIELDS, row, strict=True)) for row in rows]


def trace_ids_with_prefix(store: Store, prefix: str, limit: int = 2) -> list[str]:
    """Up to `limit` trace ids starting with `prefix` (lower-case hex): one means the prefix is unique."""
    rows = (
        store.cursor()
        .execute(
            "SELECT DISTINCT trace_id FROM steps WHERE starts_with(trace_id, ?) LIMIT ?", [prefix, limit]
        )
        .fetchall()
    )
    return [str(r[0]) for r in rows]
