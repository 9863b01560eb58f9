"""The workbench UI's entry point: one `st.navigation` over the pages in `app_pages/`.

Pages are addressed by URL path (`/` for the traces, `/replay?trace=ID&step=N`, `/dashboard`, `/findings`,
`/probes`, `/export`), so every view has a deep link an investigator can paste into a ticket.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "app_pages"

# No icons on the page or its pages: Streamlit fetches a Material icon favicon from fonts.gstatic.com, and
# the workbench never goes online.
st.set_page_config(page_title="Agent Audit Workbench", layout="wide")

navigation = st.navigation(
    [
        st.Page(PAGES / "traces.py", title="Traces", default=True),
        st.Page(PAGES / "replay.py", title="Replay", url_path="replay"),
        st.Page(PAGES / "dashboard.py", title="Dashboard", url_path="dashboard"),
        st.Page(PAGES / "findings.py", title="Findings", url_path="findings"),
        st.Page(PAGES / "probes_page.py", title="Probes", url_path="probes"),
        st.Page(PAGES / "export.py", title="Export", url_path="export"),
    ]
)
navigation.run()
