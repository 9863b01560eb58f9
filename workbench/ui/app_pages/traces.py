"""Traces: search and filter every captured trace, then open one in the replay."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pandas as pd
import streamlit as st

from workbench.store import explore
from workbench.ui import data, render

store = data.store()
st.markdown("### Traces")

choices = explore.filter_choices(store)
text = st.text_input(
    "Search inputs, outputs, reasoning and tool arguments",
    value=st.query_params.get("q", ""),
    placeholder="e.g. DROP TABLE, parcelfast, order A-1042",
    key="traces_q",
)
c1, c2, c3, c4, c5, c6 = st.columns([3, 3, 3, 2, 2, 2])
services = c1.multiselect("Service", choices["services"], key="traces_services")
agents = c2.multiselect("Agent", choices["agents"], key="traces_agents")
dates = c3.date_input("Started between", value=[], key="traces_dates")
findings_opt = c4.selectbox("Findings", ["any", "with", "without"], key="traces_findings")
errors_opt = c5.selectbox("Errors", ["any", "with", "without"], key="traces_errors")
min_cost = c6.number_input(
    "Min cost ($)", min_value=0.0, value=0.0, step=0.01, format="%.4f", key="traces_cost"
)

start_ns = end_ns = None
if isinstance(dates, tuple) and len(dates) >= 1:
    start_ns = int(datetime.combine(dates[0], time.min, UTC).timestamp()) * 1_000_000_000
    if len(dates) == 2:
        end = datetime.combine(dates[1], time.min, UTC) + timedelta(days=1)
        end_ns = int(end.timestamp()) * 1_000_000_000
tri = {"any": None, "with": True, "without": False}
flt = explore.TraceFilter(
    text=text,
    services=tuple(services),
    agents=tuple(agents),
    start_ns=start_ns,
    end_ns=end_ns,
    has_findings=tri[findings_opt],
    has_errors=tri[errors_opt],
    min_cost=min_cost or None,
)
if text:
    st.query_params["q"] = text
elif "q" in st.query_params:
    del st.query_params["q"]

rows = explore.search_traces(store, flt, limit=500)
if not rows:
    st.info(
        "No trace matches."
        if any([text, services, agents, dates]) or findings_opt != "any" or errors_opt != "any"
        else "No traces yet. Send OTLP to the collectors or run `workbench ingest FILE`."
    )
    st.stop()

# Worst first: an investigator opens the list to find the incident, not the latest heartbeat.
rank = {sev: i for i, sev in enumerate(render.SEVERITY_ORDER)}
rows = sorted(rows, key=lambda r: (-rank.get(r.max_severity or "", -1), -r.start_time_ns))
tasks = data.trace_tasks([(r.trace_id, r.span_count) for r in rows])
table = pd.DataFrame(
    [
        {
            "open": f"/replay?trace={r.trace_id}",
            "severity": render.severity_label(r.max_severity),
            "task": tasks.get(r.trace_id) or r.root_name,
            "findings": r.findings,
            "steps": r.span_count,
            "errors": r.error_count,
            "cost $": round(r.cost_usd, 4),
            "started (UTC)": render.fmt_time(r.start_time_ns)[:16],
            "agents": ", ".join(r.agents),
            **({"matches": r.matches} if text else {}),
            # Kept for the row's details and the tests, not shown: the replay has them all.
            "trace": r.root_name,
            "service": r.service_name,
            "tools": r.tool_calls,
            "tokens": r.tokens_in + r.tokens_out,
            "reasoning": r.tokens_reasoning,
            "duration": render.fmt_duration(r.end_time_ns - r.start_time_ns),
            "id": r.trace_id,
        }
        for r in rows
    ]
)
# Widths add up to what a 1440 px window leaves beside the sidebar; a search's matches replace agents.
shown = ["open", "severity", "task", "findings", "steps", "errors", "cost $", "started (UTC)"]
shown.append("matches" if text else "agents")
st.caption(
    f"{len(rows)} trace(s){' matching' if text else ''}, worst severity first; "
    "select a row or click open to replay it"
)
event = st.dataframe(
    table.style.map(render.severity_cell_style, subset=["severity"]),
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="single-row",
    key="traces_table",
    column_order=shown,
    column_config={
        "open": st.column_config.LinkColumn("open", display_text="replay ▶", width=70),
        "severity": st.column_config.TextColumn("severity", width=85),
        "task": st.column_config.TextColumn("task", width=300, help="the user's first input"),
        "findings": st.column_config.NumberColumn("findings", width=65),
        "steps": st.column_config.NumberColumn("steps", width=55),
        "errors": st.column_config.NumberColumn("errors", width=55),
        "cost $": st.column_config.NumberColumn("cost $", format="%.4f", width=75),
        "started (UTC)": st.column_config.TextColumn("started (UTC)", width=115),
        "agents": st.column_config.TextColumn("agents", width=100),
        "matches": st.column_config.NumberColumn("matches", width=70),
    },
)
selected = event.selection.rows if hasattr(event, "selection") else []
if selected:
    chosen = rows[selected[0]].trace_id
    st.switch_page("app_pages/replay.py", query_params={"trace": chosen})
