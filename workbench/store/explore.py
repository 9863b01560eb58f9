"""Named queries behind the workbench UI: trace search, paged replay, the timeline, the step tree, dashboards.

Why a module of its own: the replay must stay fast on a 100,000-step trace, so every query here reads
only what one screen shows (one step, a window of neighbours, a binned timeline) instead of the whole
trace. Pages call these and never write SQL. Small lists come back as frozen records; aggregates that
go straight into charts come back as pandas DataFrames.

The queries live in `explore_traces`, `explore_replay`, `explore_findings` and `explore_dashboard`;
this module gathers them so that pages can say `explore.<query>`.
"""

from __future__ import annotations

from workbench.store.explore_dashboard import activity, agent_scorecard, cost_by_agent_model, totals
from workbench.store.explore_findings import finding_rules, list_findings, step_positions, trace_findings
from workbench.store.explore_replay import (
    RETRY_ATTEMPT_ATTRIBUTE,
    SIDE_EFFECT_ATTRIBUTE,
    TIMELINE_DETAIL_MAX,
    TreeIndex,
    TreeNode,
    TreeView,
    step_count,
    step_counts,
    step_extras,
    step_order,
    step_tree,
    steps_by_seq,
    timeline,
)
from workbench.store.explore_traces import TraceFilter, TraceRow, filter_choices, search_traces, trace_exists

__all__ = [
    "RETRY_ATTEMPT_ATTRIBUTE",
    "SIDE_EFFECT_ATTRIBUTE",
    "TIMELINE_DETAIL_MAX",
    "TraceFilter",
    "TraceRow",
    "TreeIndex",
    "TreeNode",
    "TreeView",
    "activity",
    "agent_scorecard",
    "cost_by_agent_model",
    "filter_choices",
    "finding_rules",
    "list_findings",
    "search_traces",
    "step_count",
    "step_counts",
    "step_extras",
    "step_order",
    "step_positions",
    "step_tree",
    "steps_by_seq",
    "timeline",
    "totals",
    "trace_exists",
    "trace_findings",
]
