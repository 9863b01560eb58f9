"""Dashboard aggregates: activity over time, cost by agent and model, the agent scorecard, totals.

They come back as pandas DataFrames because they go straight into charts.
"""

from __future__ import annotations

import pandas as pd

from workbench.store.connection import Store

# Output tokens including reasoning. OpenAI's usage (and the GenAI conventions that copy it) count
# reasoning inside output tokens; a convention that reports fewer output than reasoning tokens evidently
# counts them apart, so they are added.
_OUT_TOTAL = (
    "(CASE WHEN coalesce(s.tokens_out, 0) >= coalesce(s.tokens_reasoning, 0) THEN coalesce(s.tokens_out, 0) "
    "ELSE coalesce(s.tokens_out, 0) + s.tokens_reasoning END)"
)


# ------------------------------------------------------------------------------------------ dashboard


def activity(store: Store, bucket: str = "hour") -> pd.DataFrame:
    """Traces and steps started per time bucket (`hour` or `day`): columns bucket, traces, steps."""
    if bucket not in {"hour", "day", "minute"}:
        raise ValueError(f"bucket must be minute, hour or day, not {bucket!r}")
    return (
        store.cursor()
        .execute(
            f"""
            SELECT date_trunc('{bucket}', make_timestamptz(start_time_ns // 1000)) AS bucket,
                   count(DISTINCT trace_id) AS traces, count(*) AS steps
            FROM steps GROUP BY 1 ORDER BY 1
            """
        )
        .df()
    )


def cost_by_agent_model(store: Store) -> pd.DataFrame:
    """Cost and tokens per (agent, model) over model calls: columns agent, model, cost_usd, tokens_*."""
    return (
        store.cursor()
        .execute(
            """
            SELECT coalesce(actor, service_name) AS agent, coalesce(model, '(none)') AS model,
                   coalesce(sum(cost_usd), 0.0) AS cost_usd,
                   coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out,
                   coalesce(sum(tokens_reasoning), 0) AS tokens_reasoning,
                   coalesce(sum({out}), 0) - coalesce(sum(tokens_reasoning), 0) AS tokens_visible
            FROM steps s WHERE kind <> 'agent' AND (model IS NOT NULL OR cost_usd IS NOT NULL)
            GROUP BY ALL ORDER BY cost_usd DESC
            """.replace("{out}", _OUT_TOTAL)
        )
        .df()
    )


def agent_scorecard(store: Store) -> pd.DataFrame:
    """The "agentic IQ" table, one row per agent.

    completion_rate: share of its traces whose root step did not end in error. median_steps: steps per
    trace. retries: steps recorded as a retry (attempt > 1). error_rate: erroring steps / steps.
    human_interventions: human steps (approvals, edits). reasoning_share: reasoning tokens / output
    tokens (reasoning included). reasoning_cost_per_completed: the cost attributed to reasoning tokens
    (each model call's cost split by its token counts), divided by completed traces.
    """
    return (
        store.cursor()
        .execute(
            """
            WITH per_trace AS (
                SELECT s.trace_id,
                       coalesce(arg_min(coalesce(s.actor, s.service_name), s.start_time_ns)
                                FILTER (WHERE s.parent_span_id = ''),
                                arg_min(coalesce(s.actor, s.service_name), s.start_time_ns)) AS agent,
                       count(*) AS steps,
                       bool_or(s.is_error) FILTER (WHERE s.parent_span_id = '') AS root_failed,
                       count(*) FILTER (WHERE s.is_error) AS errors,
                       count(*) FILTER (WHERE s.kind = 'human') AS humans,
                       count(*) FILTER (
                           WHERE TRY_CAST(p.attributes->>'workbench.retry.attempt' AS INTEGER) > 1)
                           AS retries,
                       coalesce(sum(s.tokens_reasoning) FILTER (WHERE s.kind <> 'agent'), 0) AS treason,
                       coalesce(sum({out}) FILTER (WHERE s.kind <> 'agent'), 0) AS tout,
                       coalesce(sum(s.cost_usd * s.tokens_reasoning
                                    / nullif(coalesce(s.tokens_in, 0) + {out}, 0))
                                FILTER (WHERE s.kind <> 'agent'), 0.0) AS reasoning_cost,
                       coalesce(sum(s.cost_usd) FILTER (WHERE s.kind <> 'agent'), 0.0) AS cost
                FROM steps s JOIN spans p ON p.seq = s.seq
                GROUP BY s.trace_id
            )
            SELECT agent,
                   count(*) AS traces,
                   avg(CASE WHEN coalesce(root_failed, false) THEN 0.0 ELSE 1.0 END) AS completion_rate,
                   median(steps) AS median_steps,
                   sum(retries) AS retries,
                   sum(errors) / sum(steps) AS error_rate,
                   sum(humans) AS human_interventions,
                   sum(treason) / nullif(sum(tout), 0) AS reasoning_share,
                   sum(reasoning_cost) / nullif(count(*) FILTER (WHERE NOT coalesce(root_failed, false)), 0)
                       AS reasoning_cost_per_completed,
                   sum(cost) AS cost_usd
            FROM per_trace GROUP BY agent ORDER BY agent
            """.replace("{out}", _OUT_TOTAL)
        )
        .df()
    )


def totals(store: Store) -> dict[str, float]:
    """Headline numbers: traces, steps, cost, error rate, retry rate, reasoning share of output tokens."""
    row = (
        store.cursor()
        .execute(
            """
            SELECT count(DISTINCT s.trace_id), count(*),
                   coalesce(sum(s.cost_usd) FILTER (WHERE s.kind <> 'agent'), 0.0),
                   count(*) FILTER (WHERE s.is_error),
                   count(*) FILTER (WHERE TRY_CAST(p.attributes->>'workbench.retry.attempt' AS INTEGER) > 1),
                   coalesce(sum(s.tokens_reasoning) FILTER (WHERE s.kind <> 'agent'), 0),
                   coalesce(sum({out}) FILTER (WHERE s.kind <> 'agent'), 0)
            FROM steps s JOIN spans p ON p.seq = s.seq
            """.replace("{out}", _OUT_TOTAL)
        )
        .fetchone()
    )
    traces, steps, cost, errors, retries, treason, tout = row if row else (0, 0, 0.0, 0, 0, 0, 0)
    steps = int(steps or 0)
    return {
        "traces": int(traces or 0),
        "steps": steps,
        "cost_usd": float(cost or 0.0),
        "error_rate": (int(errors) / steps) if steps else 0.0,
        "retry_rate": (int(retries) / steps) if steps else 0.0,
        "reasoning_share": (int(treason) / int(tout)) if tout else 0.0,
    }
