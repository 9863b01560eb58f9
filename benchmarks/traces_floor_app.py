"""The floor for the growth benchmark's page timings: the Traces page's table with nothing behind it.

The same table as `workbench/ui/app_pages/traces.py` (its columns, widths, severity colours, link
column and row selection) over made-up rows built in memory: 500 rows (the page's limit), or one row
"matching" when `?q=` is set, under the same caption. Served by benchmarks/browser.py's FLOOR_SERVER the
way `workbench serve` serves the UI, what the browser needs for it is what Streamlit and its grid cost
on this machine with no store at all; the Traces page's times are reported against it.
"""

import pandas as pd
import streamlit as st

from workbench.ui import render

st.markdown("### Traces")
text = st.text_input(
    "Search inputs, outputs, reasoning and tool arguments", value=st.query_params.get("q", "")
)
n = 1 if text else 500
table = pd.DataFrame(
    [
        {
            "open": f"/replay?trace={i:032x}",
            "severity": render.severity_label(("high", "medium", None)[i % 3]),
            "task": f"Ticket #{i}: free disk space on db-prod-1 before the nightly backup starts.",
            "findings": i % 4,
            "steps": 50,
            "errors": i % 2,
            "cost $": 0.0123,
            "started (UTC)": "2026-12-03 15:00",
            "agents": "ops-agent",
            **({"matches": 1} if text else {}),
        }
        for i in range(1, n + 1)
    ]
)
shown = ["open", "severity", "task", "findings", "steps", "errors", "cost $", "started (UTC)"]
shown.append("matches" if text else "agents")
st.caption(f"{n} trace(s){' matching' if text else ''}, worst severity first")
st.dataframe(
    table.style.map(render.severity_cell_style, subset=["severity"]),
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="single-row",
    column_order=shown,
    column_config={
        "open": st.column_config.LinkColumn("open", display_text="replay ▶", width=70),
        "severity": st.column_config.TextColumn("severity", width=85),
        "task": st.column_config.TextColumn("task", width=300),
        "findings": st.column_config.NumberColumn("findings", width=65),
        "steps": st.column_config.NumberColumn("steps", width=55),
        "errors": st.column_config.NumberColumn("errors", width=55),
        "cost $": st.column_config.NumberColumn("cost $", format="%.4f", width=75),
        "started (UTC)": st.column_config.TextColumn("started (UTC)", width=115),
        "agents": st.column_config.TextColumn("agents", width=100),
        "matches": st.column_config.NumberColumn("matches", width=70),
    },
)
