"""Findings across traces: filter by severity and rule, open the step in the replay."""

from __future__ import annotations

import html
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from workbench.model import Severity
from workbench.store import explore
from workbench.ui import data, render

store = data.store()
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
rows = []
for f in found:
    pos = data.positions(f.trace_id, [f.step_seq]).get(f.step_seq)
    rows.append(
        {
            "severity": f.severity.value,
            "rule": f.rule_id,
            "title": f.title,
            "step": pos,
            "open": f"/replay?trace={f.trace_id}&step={pos}" if pos else None,
            "evidence": (f.evidence_excerpt or "")[:160],
            "trace": f.trace_id,
        }
    )
st.caption(f"{len(found)} finding(s), worst first")
st.dataframe(
    pd.DataFrame(rows),
    hide_index=True,
    width="stretch",
    column_config={"open": st.column_config.LinkColumn("open", display_text="replay ▶", width="small")},
)
for f, row in zip(found[:50], rows[:50], strict=False):
    # Titles, explanations and evidence quote trace text: escaped, or in widgets that never interpret.
    with st.expander(render.md_text(f"{f.severity.value.upper()} · {f.rule_id} · {f.title}")):
        st.markdown(render.text_html(f.explanation), unsafe_allow_html=True)
        if f.evidence_excerpt:
            # Exactly as stored, never a live link: st.code shows every character and offers a copy button.
            st.code(f.evidence_excerpt, language=None, wrap_lines=True)
        if f.taint_chain:
            chain = data.positions(f.trace_id, list(f.taint_chain))
            st.caption("taint chain: " + " → ".join(f"#{chain.get(s, '?')}" for s in f.taint_chain))
        if row["step"]:
            link = html.escape(f"/replay?{urlencode({'trace': f.trace_id, 'step': row['step']})}")
            st.markdown(
                f'<a href="{link}" target="_self">open step {row["step"]} in the replay ▶</a>',
                unsafe_allow_html=True,
            )
