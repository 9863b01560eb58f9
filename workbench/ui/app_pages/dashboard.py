"""Dashboard: activity, cost, reasoning share, error and retry rates, and the agentic IQ table per agent."""

from __future__ import annotations

import pandas as pd
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
st.plotly_chart(figures.activity_chart(explore.activity(store, bucket), bucket), width="stretch")

costs = explore.cost_by_agent_model(store)
left, right = st.columns(2)
left.plotly_chart(figures.cost_chart(costs), width="stretch")
right.plotly_chart(figures.reasoning_share_chart(costs), width="stretch")


def _money(value: float | None) -> str:
    # A missing amount reads "—", never "None" or "nan" (e.g. no completed task: no cost per task).
    return "—" if value is None or value != value else f"${float(value):,.4f}"


st.markdown("#### Agentic IQ")
st.caption(
    "Per agent: completion rate (traces whose root step did not fail), median steps per trace, retries, "
    "error rate, human interventions, the share of reasoning tokens and the reasoning cost per completed "
    "task (each model call's cost split by its token counts). — means not applicable."
)
card = explore.agent_scorecard(store)
shown = pd.DataFrame(
    {
        "agent": card["agent"],
        "traces": card["traces"],
        "completion": card["completion_rate"],
        "median steps": card["median_steps"],
        "retries": card["retries"].fillna(0).astype(int),
        "error rate": card["error_rate"],
        "human interventions": card["human_interventions"].fillna(0).astype(int),
        "reasoning share": card["reasoning_share"],
        "reasoning cost per completed task": card["reasoning_cost_per_completed"].map(_money),
        "cost": card["cost_usd"].map(_money),
    }
)
st.dataframe(
    shown,
    hide_index=True,
    width="stretch",
    column_config={
        "completion": st.column_config.ProgressColumn(
            "completion", format="percent", min_value=0, max_value=1
        ),
        "median steps": st.column_config.NumberColumn(format="%.0f"),
        "error rate": st.column_config.NumberColumn(format="percent"),
        "reasoning share": st.column_config.NumberColumn(format="percent"),
    },
)
st.markdown("#### Cost by agent and model")
st.dataframe(
    pd.DataFrame(
        {
            "agent": costs["agent"],
            "model": costs["model"],
            "cost": costs["cost_usd"].map(_money),
            "input tokens": costs["tokens_in"].astype(int),
            "output tokens": costs["tokens_out"].astype(int),
            "reasoning tokens": costs["tokens_reasoning"].astype(int),
            "visible output tokens": costs["tokens_visible"].astype(int),
        }
    ),
    hide_index=True,
    width="stretch",
)
