"""The replay's probe panes: a probe's verdict, the text it scored shaded token by token, and what
model and weights computed it.

Why a module of its own: the replay page stays a thin page, and the three things an investigator reads
from a probe result (relative to what threshold, over which layers, on which weights) are said the same
way wherever a result is shown. Every value from a result is trace-derived or stored text: it passes
`render.md_text` or `render.shade_scores`, never raw Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from workbench.model import ProbeResult, ProbeRun, provenance_text, sealed_provenance
from workbench.ui import probe_figures, render


def read_layers(data: Mapping[str, Any]) -> list[int]:
    """The layers a probe's head reads, in order: `layers` (a multi-layer head concatenates them), or
    the single `layer` of results written before multi-layer heads."""
    layers = data.get("layers")
    if isinstance(layers, list) and layers:
        return [int(v) for v in layers]
    return [int(data["layer"])] if data.get("layer") is not None else []


def layers_text(data: Mapping[str, Any]) -> str:
    """`layer 18`, or `layers 9+15+18 (read together)` for a head over several layers."""
    layers = read_layers(data)
    if not layers:
        return "layer not recorded"
    if len(layers) == 1:
        return f"layer {layers[0]}"
    return f"layers {'+'.join(map(str, layers))} (read together)"


def verdict_markdown(res: ProbeResult) -> str:
    """One probe's verdict line: score, threshold, the score relative to it, the layers, fired or not."""
    s, d = res.summary, res.data
    fired = ":red-badge[fired]" if s.get("fired") else ":gray-badge[below threshold]"
    relative = d.get("score_relative")
    versus = f", {float(relative):+.3f} relative to it" if relative is not None else ""
    return (
        f"{render.md_text(res.analysis)} score **{float(s.get('score', 0)):.3f}** "
        f"(threshold {float(s.get('threshold', 0)):.3f}{versus}; {render.md_text(layers_text(d))}) {fired}"
    )


def provenance_caption(run: ProbeRun, results: Sequence[ProbeResult]) -> str:
    """The run's model and weights, from the sealed copy inside its results when they carry one."""
    provenance, sealed = sealed_provenance(run.provenance, results[0].data if results else {})
    where = (
        "sealed with the results" if sealed else "from the run row (this result predates sealed provenance)"
    )
    return render.md_text(f"run {run.id} · {provenance_text(provenance)} · {where}")


def probe_tokens(analysis: str, d: dict[str, Any]) -> None:
    """A probe's per-token scores shaded on the step's text, relative to its threshold when stored.

    Why relative: raw per-token sigmoids are uncalibrated and mostly high, so the text read red even
    for a probe far below its threshold; `token_relative` is 0 at the per-token threshold. A head over
    several layers gives one score per token too (its weights apply to the layers' residuals
    concatenated), so the shading is the same; the header names the layers.
    """
    relative = d.get("token_relative")
    versus = d.get("score_relative")
    head = (
        f"**{render.md_text(analysis)}** per-token score on the step's text, {render.md_text(layers_text(d))}"
    )
    if versus is not None:
        head += (
            f" · step score {float(d.get('score', 0)):.3f}, {float(versus):+.3f} relative to its threshold"
        )
    st.markdown(head)
    if relative is not None:
        low, high = (float(v) for v in (d.get("token_range") or [-4.0, 4.0]))
        shaded = render.shade_scores(
            d["step_text"], d.get("char_spans", []), relative, 0.0, max(abs(low), high)
        )
        legend = render.shade_legend("standard deviations from the per-token threshold", low, high)
        st.caption(probe_figures.EXPLAIN["probe"])
    else:  # results from before calibration: raw sigmoid scores against the step threshold
        shaded = render.shade_scores(
            d["step_text"], d.get("char_spans", []), d.get("scores", []), d.get("threshold")
        )
        legend = render.shade_legend("raw probe probability, uncalibrated", 0.0, 1.0)
        st.caption("Per-token probe probability (0 to 1) on the step's text, against the step's threshold.")
    st.markdown(shaded + legend, unsafe_allow_html=True)
