"""Probes: the probe artifacts known, recent probe runs, and a probe's score over a trace's steps."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import pandas as pd
import streamlit as st

from workbench.store import explore, probe_reads
from workbench.ui import data, figures

store = data.store()
st.markdown("### Probes")


def _artifacts_from_package() -> pd.DataFrame | None:
    """Artifacts listed by `probes/` when it exposes `list_artifacts()` (without loading any model)."""
    for name in ("probes.artifacts", "probes"):
        try:
            if importlib.util.find_spec(name) is None:
                continue
            module = importlib.import_module(name)
        except ImportError:
            continue
        lister: Any = getattr(module, "list_artifacts", None)
        if callable(lister):
            try:
                items = list(lister())
            except Exception as exc:  # a broken artifact directory must not take the page down
                st.warning(f"probes.list_artifacts() failed: {exc}")
                return None
            return pd.DataFrame([i if isinstance(i, dict) else getattr(i, "__dict__", {}) for i in items])
    return None


st.markdown("#### Artifacts")
artifacts = _artifacts_from_package()
if artifacts is None or artifacts.empty:
    artifacts = probe_reads.probe_artifacts_seen(store)
    st.caption("as named by stored probe results")
if artifacts.empty:
    st.caption("no probe artifacts yet")
else:
    st.dataframe(artifacts, hide_index=True, width="stretch")

st.markdown("#### Recent runs")
runs = probe_reads.recent_runs(store, limit=200)
if runs:
    where = {r.id: data.positions(r.trace_id, [r.step_seq]).get(r.step_seq) for r in runs}
    table = pd.DataFrame(
        [
            {
                "run": r.id,
                "status": r.status,
                "progress": r.progress,
                "analyses": ", ".join(r.analyses),
                "step": where[r.id],
                "open": f"/replay?trace={r.trace_id}&step={where[r.id]}",
                "model": r.provenance.get("model_id", ""),
                "error": r.error or "",
                "trace": r.trace_id,
            }
            for r in runs
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
            "open": st.column_config.LinkColumn("open", display_text="replay ▶", width="small"),
        },
    )
else:
    st.caption("no probe runs yet: queue one from a step in the replay")

st.markdown("#### A probe over a trace")
traces = explore.search_traces(store, explore.TraceFilter(), limit=200)
if not traces:
    st.caption("no traces yet")
    st.stop()
labels = {t.trace_id: f"{t.root_name} · {t.service_name} · {t.trace_id[:12]}" for t in traces}
default = st.query_params.get("trace")
ids = list(labels)
trace_id = st.selectbox(
    "Trace",
    ids,
    index=ids.index(default) if default in ids else 0,
    format_func=labels.__getitem__,
    key="p_trace",
)
names = probe_reads.probe_analyses(store, trace_id)
if not names:
    st.caption("no probe scores for this trace yet")
    st.stop()
analysis = st.selectbox("Probe", names, key="p_probe")
series = probe_reads.probe_series(store, trace_id, analysis)
st.plotly_chart(figures.probe_series_line(series, f"{analysis} over the steps of the trace"), width="stretch")
