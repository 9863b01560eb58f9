"""Findings across traces: filter by severity and rule, open the step in the replay."""

from __future__ import annotations

import html
from urllib.parse import urlencode

import streamlit as st

from workbench.model import Severity
from workbench.store import explore
from workbench.ui import data, render

store = data.store()
SHOWN = 100  # findings drawn at once: each is a card with its evidence
st.markdown("### Findings")

c1, c2 = st.columns(2)
severities = c1.multiselect(
    "Severity",
    [s.value for s in reversed(Severity)],
    default=st.query_params.get_all("severity"),
    key="f_sev",
)
rules = c2.multiselect("Rule", explore.finding_rules(store), key="f_rule")
found = explore.list_findings(store, severities, rules, limit=1000)
if not found:
    st.info(
        "No findings match."
        if severities or rules
        else "No findings yet: the findings engine writes them as traces arrive (or after a rescan)."
    )
    st.stop()

found.sort(key=lambda f: (-f.severity.rank, f.trace_id, f.step_seq))
shown = found[:SHOWN]
# Each finding names its incident: the trace's task (the user's first input), as the brief and the
# traces list title it.
# Step counts key the caches below: counted for all shown traces in one scan, once per page run.
counts = explore.step_counts(store, list(dict.fromkeys(f.trace_id for f in shown)))
tasks = data.trace_tasks(list(counts.items()))
more = f"; the first {SHOWN} are shown, filter to narrow" if len(found) > SHOWN else ""
st.caption(f"{len(found)} finding(s), most severe first{more}")
for f in shown:
    pos = data.positions(f.trace_id, [f.step_seq], counts[f.trace_id]).get(f.step_seq)
    incident = tasks.get(f.trace_id) or f"trace {f.trace_id[:12]}"
    with st.container(border=True):
        # Titles, explanations and evidence quote trace text: escaped, or in widgets that never interpret.
        st.markdown(render.finding_heading(f.severity.value, f.rule_id, f.title), unsafe_allow_html=True)
        where = f"step {pos}" if pos else "a step no longer in the trace"
        st.markdown(
            render.labelled([("incident", incident), ("where", f"{where} · trace {f.trace_id}")]),
            unsafe_allow_html=True,
        )
        st.markdown(render.text_html(f.explanation), unsafe_allow_html=True)
        if f.evidence_excerpt:
            # Exactly as stored, never a live link: st.code shows every character and offers a copy button.
            st.code(f.evidence_excerpt, language=None, wrap_lines=True)
        if f.taint_chain:
            chain = data.positions(f.trace_id, list(f.taint_chain), counts[f.trace_id])
            st.caption("taint chain: " + " → ".join(f"#{chain.get(s, '?')}" for s in f.taint_chain))
        if pos:
            link = html.escape(f"/replay?{urlencode({'trace': f.trace_id, 'step': pos})}")
            st.markdown(
                f'<a href="{link}" target="_self">open step {pos} in the replay ▶</a>', unsafe_allow_html=True
            )
