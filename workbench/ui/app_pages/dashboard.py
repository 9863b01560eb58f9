"""Dashboard: activity, cost, reasoning share, error and retry rates, and the agentic IQ table per agent."""

from __future__ import annotations

import streamlit as st

from workbench.store import explore
from workbench.ui import data, figures

store = data.store()
st.markdown("### Dashboard")

totals = explore.totals(store)
if not totals["steps"]:
    st.info("No traces yet. Send OTLP to the collectors or run `workbench ingest FILE`.")
    st.stop()

m = st.columns(6)
m[0].metric("traces", f"{totals['traces']:,}")
m[1].metric("steps", f"{totals['steps']:,}")
m[2].metric("cost", f"${totals['cost_usd']:,.4f}")
m[3].metric("error rate", f"{totals['error_rate']:.1%}", help="steps that ended in error")
m[4].metric("retry rate", f"{totals['retry_rate']:.1%}", help="steps recorded as a retry (attempt > 1)")
m[5].metric(
    "reasoning share",
    f"{totals['reasoning_share']:.1%}",
    help="reasoning tokens / output tokens (reasoning included)",
)

bucket = st.segmented_control("Bucket", ["minute", "hour", "day"], default="day", key="dash_bucket") or "day"
st.plotly_chart(figures.activity_chart(explore.activity(store, bucket)), width="stretch")

costs = explore.cost_by_agent_model(store)
left, right = st.columns(2)
left.plotly_chart(figures.cost_chart(costs), width="stretch")
right.plotly_chart(figures.reasoning_share_chart(costs), width="stretch")

st.markdown("#### Agentic IQ")
st.caption(
    "Per agent: completion rate (traces whose root step did not fail), median steps per trace, retries, "
    "error rate, human interventions, the share of reasoning tokens and the reasoning cost per completed "
    "task (each model call's cost split by its token counts)."
)
card = explore.agent_scorecard(store)
# No completed task: no cost per completed task (blank, not "None").
card["reasoning_cost_per_completed"] = card["reasoning_cost_per_completed"].astype(float)
st.dataframe(
    card,
    hide_index=True,
    width="stretch",
    column_config={
        "completion_rate": st.column_config.ProgressColumn(
            "completion", format="percent", min_value=0, max_value=1
        ),
        "median_steps": st.column_config.NumberColumn("median steps", format="%.0f"),
        "error_rate": st.column_config.NumberColumn("error rate", format="percent"),
        "reasoning_share": st.column_config.NumberColumn("reasoning share", format="percent"),
        "reasoning_cost_per_completed": st.column_config.NumberColumn(
            "reasoning $ / completed", format="$%.4f"
        ),
        "cost_usd": st.column_config.NumberColumn("cost", format="$%.4f"),
        "human_interventions": st.column_config.NumberColumn("human interventions"),
    },
)
st.markdown("#### Cost by agent and model")
st.dataframe(
    costs,
    hide_index=True,
    width="stretch",
    column_config={"cost_usd": st.column_config.NumberColumn(format="$%.4f")},
)
