"""Every Plotly figure of the workbench UI, as pure functions of query results (testable without a browser).

Why one module: pages stay thin, and the figures share one look (colours per step kind and status), so
a kind has the same colour on the timeline, the dashboard and the report.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

KIND_COLORS = {
    "agent": "#6b7280",
    "llm": "#2563eb",
    "tool": "#059669",
    "reasoning": "#7c3aed",
    "memory": "#0891b2",
    "plan": "#d97706",
    "guardrail": "#db2777",
    "human": "#65a30d",
    "other": "#9ca3af",
}
ERROR_COLOR = "#dc2626"
OK_COLOR = "#16a34a"
CURRENT_COLOR = "#111827"
TAINT_COLOR = "#ea580c"

# No Plotly template: st.plotly_chart applies the Streamlit theme, and building a template object costs
# about 0.1 s per figure, which a step change cannot afford.
_LAYOUT: dict[str, Any] = {
    "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
    "font": {"size": 12},
}
BASE_LAYOUT = _LAYOUT  # the shared look, for the other figure modules (probe_figures)


def plotly_text(value: object) -> str:
    """A string for a Plotly label, tick, legend name or hover text, shown literally.

    Why: Plotly renders a few HTML tags in text (`<a href>` becomes a live link, `<b>`, `<span style>`),
    and trace text is hostile; it decodes entities back, so the reader sees the exact characters.
    """
    return html.escape(str(value), quote=False)


def _texts(values: pd.Series) -> pd.Series:
    return values.astype(str).map(plotly_text)


def _vline(x: Any, dash: str = "solid", width: int = 1) -> dict[str, Any]:
    # A plain shape: fig.add_vline walks every subplot and costs ~50 ms, a step change's whole budget.
    line = {"color": CURRENT_COLOR, "dash": dash, "width": width}
    return {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1, "line": line}


def mark_current(fig: go.Figure, x: Any, label: str) -> go.Figure:
    """Move the current-step marker (a dashed line and its label) to `x`, in place.

    Why separate: the replay builds a trace's timeline once and only moves this marker on a step
    change, because rebuilding a figure of hundreds of bars costs more than the whole step budget.
    """
    fig.layout.shapes = [_vline(x, dash="dash", width=2)]
    fig.layout.annotations = [
        {
            "x": x,
            "xref": "x",
            "y": 1.0,
            "yref": "paper",
            "text": label,
            "showarrow": False,
            "yanchor": "bottom",
            "font": {"size": 11, "color": CURRENT_COLOR},
            "bgcolor": "#fef3c7",
        }
    ]
    return fig


def time_range(df: pd.DataFrame) -> tuple[Any, Any]:
    """The x range (first start, last end) of a timeline frame, detail or binned.

    Why explicit: the timeline and the current-step strip under it must share one x axis to the pixel,
    and Plotly's autorange pads bars and areas differently.
    """
    if df.empty:
        now = pd.Timestamp.now(tz="UTC")
        return now, now
    return _ts(int(df["start_ns"].min())), _ts(int(df["end_ns"].max()))


def widest_tick(df: pd.DataFrame, mode: str) -> tuple[str, str | None]:
    """(the timeline's widest y tick label, its y axis title): what its left margin must hold."""
    if df.empty:
        return "", None
    if mode == "detail":
        rows = df["actor"].fillna("?").astype(str) + " · " + df["kind"].astype(str)
        return max(rows, key=len), None
    peak = int(df.groupby("bin")["steps"].sum().max())
    return f"{peak:,}", "steps"


TIMELINE_RIGHT_PX = 20


def pin_plot_area(fig: go.Figure, tick: tuple[str, str | None]) -> int:
    """Fix the timeline's left and right margins (in px) from its widest y tick label; returns the left.

    Why: the replay marks the current step on an HTML strip under the timeline (redrawing a Plotly
    figure per step cost ~80 ms of browser main thread on a machine without a GPU). The strip can line
    up with the plot area only if the plot area's edges are known, and Plotly's automatic margin is not.
    The estimate is generous (7 px a character at font size 12) so no label is clipped.
    """
    label, title = tick
    left = 16 + 7 * len(label) + (24 if title else 0)
    fig.update_layout(margin={"l": left, "r": TIMELINE_RIGHT_PX})
    fig.update_yaxes(automargin=False)
    return left


def _ts(ns: pd.Series | int) -> Any:
    return pd.to_datetime(ns, unit="ns", utc=True)


def to_time(ns: int) -> Any:
    """An OTLP nanosecond time as the timestamp the timeline's x axis uses."""
    return _ts(ns)


def timeline_detail(
    df: pd.DataFrame,
    current_seq: int | None,
    finding_seqs: Sequence[int] = (),
    taint_chain: Sequence[int] = (),
) -> go.Figure:
    """One bar per step on a time axis, rows by actor and kind, coloured by status (error red, else green).

    The current step is marked with a vertical line (`mark_current`); steps with findings get a flag; the
    taint chain (untrusted source to action) is drawn as a connected orange path. `customdata` holds each
    bar's 1-based replay position, so a click can move the replay there.
    """
    fig = go.Figure()
    if df.empty:
        return fig.update_layout(**_LAYOUT, title="no steps")
    d = df.reset_index(drop=True).copy()
    d["position"] = range(1, len(d) + 1)
    d["row"] = _texts(d["actor"].fillna("?").astype(str) + " · " + d["kind"].astype(str))
    d["start"] = _ts(d["start_ns"])
    # A zero-length span still gets a visible sliver.
    d["ms"] = ((d["end_ns"] - d["start_ns"]) / 1e6).clip(lower=1.0)
    rows = list(dict.fromkeys(d.sort_values("start_ns")["row"]))
    for is_error, color, label in ((False, OK_COLOR, "ok"), (True, ERROR_COLOR, "error")):
        part = d[d["is_error"] == is_error]
        if part.empty:
            continue
        fig.add_trace(
            go.Bar(
                y=part["row"],
                x=part["ms"],
                base=part["start"],
                orientation="h",
                marker={"color": color, "opacity": 0.75},
                name=label,
                customdata=part["position"],
                hovertext="#" + part["position"].astype(str) + " " + _texts(part["name"]),
                hoverinfo="text",
            )
        )
    flagged = d[d["seq"].isin(list(finding_seqs))]
    if not flagged.empty:
        fig.add_trace(
            go.Scatter(
                y=flagged["row"],
                x=flagged["start"],
                mode="markers",
                marker={"symbol": "triangle-down", "size": 12, "color": ERROR_COLOR},
                name="finding",
                customdata=flagged["position"],
                hovertext="finding on #" + flagged["position"].astype(str),
                hoverinfo="text",
            )
        )
    if taint_chain:
        order = {int(s): i for i, s in enumerate(taint_chain)}
        chain = d[d["seq"].isin(list(order))].copy()
        chain["k"] = chain["seq"].map(order)
        chain = chain.sort_values("k")
        fig.add_trace(
            go.Scatter(
                y=chain["row"],
                x=chain["start"],
                mode="lines+markers",
                line={"color": TAINT_COLOR, "width": 2, "dash": "dot"},
                marker={"symbol": "diamond", "size": 10, "color": TAINT_COLOR},
                name="taint chain",
                customdata=chain["position"],
                hovertext="taint chain: #" + chain["position"].astype(str),
                hoverinfo="text",
            )
        )
    cur = d[d["seq"] == current_seq] if current_seq is not None else d.iloc[0:0]
    if not cur.empty:
        mark_current(fig, cur.iloc[0]["start"], f"step {int(cur.iloc[0]['position'])}")
    fig.update_layout(
        **_LAYOUT,
        barmode="overlay",
        height=max(220, 34 * len(rows) + 80),
        legend={"orientation": "h", "y": 1.08, "x": 0},
        yaxis={"categoryorder": "array", "categoryarray": rows[::-1], "title": None},
        xaxis={"type": "date", "title": None},
    )
    return fig


def timeline_binned(df: pd.DataFrame, current_start_ns: int | None, total_steps: int) -> go.Figure:
    """A summarized timeline for large traces: steps per time bin as areas stacked by kind, errors marked.

    One SVG path per kind whatever the trace's size: a browser redraws it on every step change, and
    thousands of bars made that take seconds on a machine without a GPU.
    """
    fig = go.Figure()
    if df.empty:
        return fig.update_layout(**_LAYOUT, title="no steps")
    centers = _ts(((df["start_ns"] + df["end_ns"]) // 2).astype("int64"))
    df = df.assign(center=centers)
    counts = df.pivot_table(index="bin", columns="kind", values="steps", aggfunc="sum", fill_value=0)
    x = df.groupby("bin")["center"].min().reindex(counts.index)
    for kind in counts.columns:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=counts[kind],
                name=plotly_text(kind),
                mode="lines",
                stackgroup="kinds",
                line={"width": 0.5, "color": KIND_COLORS.get(str(kind), KIND_COLORS["other"])},
            )
        )
    errors = df.groupby("bin").agg(errors=("errors", "sum"), center=("center", "first"))
    errors = errors[errors["errors"] > 0]
    if not errors.empty:
        fig.add_trace(
            go.Scatter(
                x=errors["center"],
                y=[0] * len(errors),
                mode="markers",
                marker={"color": ERROR_COLOR, "symbol": "x", "size": 8},
                name="errors",
                hovertext=errors["errors"].astype(str) + " errors",
                hoverinfo="text",
            )
        )
    if current_start_ns is not None:
        mark_current(fig, _ts(current_start_ns), "current step")
    fig.update_layout(
        **_LAYOUT,
        height=260,
        title={"text": f"{total_steps:,} steps, summarized per time bin", "font": {"size": 13}},
        legend={"orientation": "h", "y": -0.2, "x": 0},
        xaxis={"type": "date", "title": None},
        yaxis={"title": "steps"},
    )
    return fig


def roc_curves(curves: dict[str, tuple[list[float], list[float], float | None]]) -> go.Figure:
    """Held-out ROC curve of each probe artifact (name -> (fpr, tpr, auroc)), against chance."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"color": "#9ca3af", "dash": "dot"})
    )
    for name, (fpr, tpr, auroc) in curves.items():
        label = plotly_text(f"{name} (AUROC {auroc:.3f})" if auroc is not None else name)
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=label, line={"shape": "hv"}))
    return fig.update_layout(
        **_LAYOUT,
        title="held-out ROC of the shipped probes",
        xaxis={"title": "false-positive rate", "range": [0, 1]},
        yaxis={"title": "true-positive rate", "range": [0, 1.02]},
        height=360,
    )


def probe_series_line(df: pd.DataFrame, title: str) -> go.Figure:
    """A probe's score over the reasoning steps of a trace, with its threshold and the steps that fired."""
    fig = go.Figure()
    if df.empty:
        return fig.update_layout(**_LAYOUT, title="no probe results for this trace yet")
    fig.add_trace(
        go.Scatter(
            x=df["position"],
            y=df["score"],
            mode="lines+markers",
            name="score",
            line={"color": KIND_COLORS["reasoning"]},
        )
    )
    fired = df[df["fired"].fillna(False).astype(bool)]
    if not fired.empty:
        fig.add_trace(
            go.Scatter(
                x=fired["position"],
                y=fired["score"],
                mode="markers",
                marker={"color": ERROR_COLOR, "size": 11},
                name="fired",
            )
        )
    thresholds = df["threshold"].dropna()
    if not thresholds.empty:
        y = float(thresholds.iloc[-1])
        line = {"color": ERROR_COLOR, "dash": "dash", "width": 1}
        fig.update_layout(
            shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": y, "y1": y, "line": line}]
        )
        # The shape has no legend entry: an empty trace styled like it names it.
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, name=f"threshold {y:.2f}"))
    fig.update_layout(
        **_LAYOUT,
        height=300,
        title=plotly_text(title),
        xaxis_title="step (replay position)",
        yaxis={"title": "probe score (0–1)", "range": [0, 1.02]},
    )
    return fig


BUCKET_MS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}


def activity_chart(df: pd.DataFrame, bucket: str = "day") -> go.Figure:
    """Traces and steps started per time bucket.

    Bars are as wide as 80% of their bucket: on a date axis Plotly otherwise sizes them from the
    closest pair of buckets, and a few minute buckets over days drew hairlines.
    """
    fig = go.Figure()
    if not df.empty:
        width = 0.8 * BUCKET_MS.get(bucket, BUCKET_MS["day"])
        fig.add_trace(
            go.Bar(
                x=df["bucket"],
                y=df["steps"],
                width=[width] * len(df),
                name="steps",
                marker={"color": "#93c5fd"},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=df["bucket"],
                y=df["traces"],
                name="traces",
                yaxis="y2",
                mode="lines+markers",
                line={"color": CURRENT_COLOR},
            )
        )
    fig.update_layout(
        **_LAYOUT,
        height=300,
        title=f"traces and steps started per {bucket}",
        xaxis={"title": f"time (UTC, one bar per {bucket})"},
        yaxis={"title": "steps started"},
        yaxis2={
            "title": "traces started",
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "tickformat": ",d",
            # Whole traces only: Plotly would otherwise put ticks at halves and print 1, 1, 2, 2.
            "dtick": max(1, -(-int(df["traces"].max()) // 4)) if not df.empty else 1,
        },
        legend={"orientation": "h", "y": -0.3},
    )
    return fig


def cost_chart(df: pd.DataFrame) -> go.Figure:
    """Cost by agent, stacked by model."""
    fig = go.Figure()
    for model, part in df.groupby("model", sort=True):
        fig.add_trace(go.Bar(x=_texts(part["agent"]), y=part["cost_usd"], name=plotly_text(model)))
    fig.update_layout(
        **_LAYOUT,
        barmode="stack",
        height=300,
        title="cost by agent and model",
        xaxis={"title": "agent"},
        yaxis={"title": "cost (USD)", "tickprefix": "$"},
        legend={"orientation": "h", "y": -0.35, "title": {"text": "model"}},
    )
    return fig


def reasoning_share_chart(df: pd.DataFrame) -> go.Figure:
    """Per agent, reasoning tokens against visible output tokens."""
    by_agent = df.groupby("agent", as_index=False)[["tokens_visible", "tokens_reasoning"]].sum()
    fig = go.Figure(
        [
            go.Bar(
                x=_texts(by_agent["agent"]),
                y=by_agent["tokens_reasoning"],
                name="reasoning",
                marker={"color": KIND_COLORS["reasoning"]},
            ),
            go.Bar(
                x=_texts(by_agent["agent"]),
                y=by_agent["tokens_visible"],
                name="visible output",
                marker={"color": KIND_COLORS["llm"]},
            ),
        ]
    )
    fig.update_layout(
        **_LAYOUT,
        barmode="stack",
        height=300,
        title="reasoning vs visible output tokens",
        xaxis={"title": "agent"},
        yaxis={"title": "output tokens", "tickformat": ",d"},
        legend={"orientation": "h", "y": -0.35},
    )
    return fig
