"""Server-side caches over the store for the pages, keyed so that new data is never hidden.

Why: moving one step in a 100,000-step trace must not re-sort the trace or re-bin its timeline. The
order of a trace's steps and its timeline are cached per (database, trace, step count): a trace that is
still growing gets a fresh entry as soon as a step arrives, and nothing is sent to the browser.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from collectors.decode import record_from_canonical
from workbench.errors import BadInput
from workbench.export.brief import Brief, build_brief, excerpt, task_of_inputs
from workbench.model import StepKind
from workbench.store import explore, queries
from workbench.store.batch import to_json
from workbench.store.connection import Store
from workbench.store.verify_derived import truncations_limit
from workbench.ui.context import get_store


def store() -> Store:
    return get_store()


@st.cache_resource(max_entries=16, show_spinner=False)
def _order(db: str, trace_id: str, count: int) -> np.ndarray:
    arr = explore.step_order(get_store(), trace_id)
    arr.setflags(write=False)  # shared between sessions
    return arr


def raw_attributes(extras: dict[str, Any]) -> dict[str, Any]:
    """Every attribute of the step's span, decoded from its sealed canonical bytes (the spans table
    keeps only the short ones: `workbench.store.batch.slim_attributes`), with the attribute limit of its
    own ingest, in the column's JSON shape. Bytes that do not decode (never for a stored span) fall
    back to the column."""
    canonical = extras.get("canonical")
    if not canonical:
        return dict(extras.get("attributes") or {})
    try:
        record = record_from_canonical(canonical, truncations_limit(extras.get("truncations")) or sys.maxsize)
    except BadInput:
        return dict(extras.get("attributes") or {})
    attributes: dict[str, Any] = json.loads(to_json(record.attributes))
    return attributes


def step_count(trace_id: str) -> int:
    """The trace's step count now: the version key of every cache below (count it once per page run)."""
    return explore.step_count(get_store(), trace_id)


def step_order(trace_id: str, count: int | None = None) -> np.ndarray:
    """Seqs of the trace's steps in replay order (cached per step count)."""
    s = get_store()
    return _order(str(s.path), trace_id, explore.step_count(s, trace_id) if count is None else count)


@st.cache_data(max_entries=16, show_spinner=False)
def _timeline(db: str, trace_id: str, count: int) -> tuple[str, pd.DataFrame]:
    return explore.timeline(get_store(), trace_id)


def timeline(trace_id: str, count: int) -> tuple[str, pd.DataFrame]:
    return _timeline(str(get_store().path), trace_id, count)


@st.cache_resource(max_entries=16, show_spinner=False)
def _rank(db: str, trace_id: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    order = _order(db, trace_id, count)
    by_seq = np.argsort(order, kind="stable")
    return order[by_seq], by_seq + 1


def positions(trace_id: str, seqs: list[int], count: int | None = None) -> dict[int, int]:
    """1-based replay positions of these seqs, from the cached order (no window query per call)."""
    s = get_store()
    count = explore.step_count(s, trace_id) if count is None else count
    sorted_seqs, pos = _rank(str(s.path), trace_id, count)
    out: dict[int, int] = {}
    if not len(sorted_seqs):
        return out
    for seq in seqs:
        i = int(np.searchsorted(sorted_seqs, seq))
        if i < len(sorted_seqs) and int(sorted_seqs[i]) == int(seq):
            out[int(seq)] = int(pos[i])
    return out


@st.cache_resource(max_entries=8, show_spinner=False)
def _tree(db: str, trace_id: str, count: int) -> explore.TreeIndex:
    return explore.TreeIndex(get_store(), trace_id)


def tree_view(trace_id: str, count: int, seq: int) -> explore.TreeView:
    """The step tree around `seq`, from a per-trace index built once (cached per step count)."""
    store = get_store()
    return _tree(str(store.path), trace_id, count).view(store, seq)


BRIEF_MAX_STEPS = 20_000  # beyond this the brief would read the whole trace on every new step


@st.cache_data(max_entries=16, show_spinner=False)
def _brief(db: str, trace_id: str, count: int) -> Brief:
    store = get_store()
    steps = queries.trace_steps(store, trace_id)
    findings = explore.trace_findings(store, trace_id)
    tool_seqs = [s.seq for s in steps if s.step.kind == StepKind.TOOL][:500]
    effects = {seq: str(e) for seq in tool_seqs if (e := explore.step_extras(store, seq).get("side_effect"))}
    return build_brief(trace_id, steps, findings, effects)


def brief(trace_id: str, count: int) -> Brief | None:
    """The trace's incident brief (cached per step count); None for a trace too large to summarise here."""
    if count > BRIEF_MAX_STEPS:
        return None
    return _brief(str(get_store().path), trace_id, count)


TASK_SCAN_STEPS = 12  # the user's first input is among a trace's first steps
TASK_CACHE_ENTRIES = 20_000


@st.cache_resource(show_spinner=False)
def _task_cache() -> dict[tuple[str, str, int], str | None]:
    """(database, trace, step count) -> task, shared by every session (a trace that grows gets a new key)."""
    return {}


def trace_tasks(traces: list[tuple[str, int]]) -> dict[str, str | None]:
    """Each trace's task (the user's first input, on one line), cached per trace and step count.

    The traces not cached yet are read together (`queries.first_inputs_by_trace`): one read per page
    instead of one scan of the steps per listed trace, which made the first Traces page of a large
    store take minutes.
    """
    store = get_store()
    db = str(store.path)
    cache = _task_cache()
    missing = [trace_id for trace_id, count in traces if (db, trace_id, count) not in cache]
    if missing:
        if len(cache) + len(missing) > TASK_CACHE_ENTRIES:
            cache.clear()
        first = queries.first_inputs_by_trace(store, missing, TASK_SCAN_STEPS)
        counts = dict(traces)
        for trace_id in missing:
            found = task_of_inputs(first[trace_id])
            cache[(db, trace_id, counts[trace_id])] = excerpt(found[0], 160) if found else None
    return {trace_id: cache.get((db, trace_id, count)) for trace_id, count in traces}
