"""The floor for the replay benchmark: the smallest Streamlit page with the replay's controls.

A Next button and one line "Step N of M" read from `?step=N&of=M`, served the way `workbench serve`
serves the UI (st.App on Uvicorn, the same Streamlit options). What the browser needs for this page is
what Streamlit itself costs on this machine; the replay's times are reported against it.
"""

import streamlit as st

if "step" not in st.session_state:
    st.session_state["step"] = int(st.query_params.get("step", "1"))


def _next() -> None:
    st.session_state["step"] += 1


st.button("Next ▶", on_click=_next)
st.markdown(f"Step {st.session_state['step']:,} of {int(st.query_params.get('of', '1')):,}")
