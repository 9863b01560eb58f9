"""Probes: the probe artifacts known, recent probe runs, and a probe's score over a trace's steps."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from workbench.store import explore, probe_reads
from workbench.ui import data, figures, render

store = data.store()
st.markdown("### Probes")


ROC_CURVES: dict[str, tuple[list[float], list[float], float | None]] = {}


def _artifacts_from_package() -> pd.DataFrame | None:
    """The trained probe artifacts that `probes/` ships (probes/artifacts/*.json), read as JSON.

    Read as files rather than through `probes.linear`, which imports torch: listing what exists must not
    load a deep-learning stack into the page. The sha256 is the artifact's own (its fields, sorted JSON),
    the one probe results cite.
    """
    spec = importlib.util.find_spec("probes")
    if spec is None or not spec.submodule_search_locations:
        return None
    rows: list[dict[str, Any]] = []
    for path in sorted(Path(next(iter(spec.submodule_search_locations))).glob("artifacts/*.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            st.warning(render.md_text(f"probe artifact {path.name} is unreadable: {exc}"))
            continue
        roc = raw.get("roc") or {}
        if roc.get("fpr") and roc.get("tpr"):
            ROC_CURVES[str(raw.get("name", path.stem))] = (roc["fpr"], roc["tpr"], raw.get("heldout_auroc"))
        provenance = raw.get("provenance") or {}
        rows.append(
            {
                "probe": raw.get("name", path.stem),
                "version": raw.get("version"),
                # What the head reads: a multi-layer head's weights apply to these layers' residuals
                # concatenated (`layers`); artifacts from before multi-layer heads name one `layer`.
                "layers": "+".join(str(v) for v in (raw.get("layers") or [raw.get("layer")])),
                "method": raw.get("method"),
                "threshold": raw.get("threshold"),
                "fpr_target": raw.get("fpr_target"),
                "controls": (raw.get("counts") or {}).get("control"),
                "heldout_auroc": raw.get("heldout_auroc"),
                "external_auroc": raw.get("external_auroc"),
                "model": provenance.get("model_id", ""),
                "weights": provenance.get("weights", ""),
                "sha256": hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16],
                "data_sha256": str(raw.get("data_sha256", ""))[:16],
                "created": raw.get("created_at", ""),
                "description": raw.get("description", ""),
            }
        )
    return pd.DataFrame(rows) if rows else None


st.markdown("#### Artifacts")
artifacts = _artifacts_from_package()
if artifacts is None or artifacts.empty:
    artifacts = probe_reads.probe_artifacts_seen(store)
    st.caption("as named by stored probe results (probes/ ships no artifact files)")
if artifacts.empty:
    st.caption("no probe artifacts yet")
else:
    st.dataframe(artifacts, hide_index=True, width="stretch")
    st.caption(
        "A probe scores a step as sigmoid of the mean over its reasoning and action tokens of w·h + b, where "
        "h is the residual stream at the layers it reads (several layers: concatenated) and it fires at "
        "or above its threshold, set at a 1% false-positive rate on the benign controls. In the replay, "
        "per-token scores are shown relative to the per-token threshold, in standard deviations of "
        "benign tokens (-4 to 4; above 0 is above what 1% of benign tokens reach)."
    )
if ROC_CURVES:
    st.plotly_chart(figures.roc_curves(ROC_CURVES), width="stretch")

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
