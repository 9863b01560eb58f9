"""The replay's "Inside the model" figures: logit lens, action-token probability, attention, patching.

Why a module of their own: these charts are read by investigators, not only by researchers, so each
one comes with a sentence saying what it shows (`EXPLAIN`), a colour bar or legend with units, and
tokens written as text (`readable_token`). Token labels are trace-derived: they pass `plotly_text`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from workbench.ui.figures import BASE_LAYOUT, KIND_COLORS, plotly_text

# One sentence per chart, shown under it in the replay.
EXPLAIN = {
    "logit_lens": (
        "Logit lens: for each layer (rows) and each token of the input (columns), the token the model would "
        "predict next if it stopped at that layer; darker cells are more confident (probability 0 to 1)."
    ),
    "target_prob": (
        "How early the model settled on its action: the probability (0 to 1) of the action's first token "
        "at each layer; a curve that rises early means the decision was made early."
    ),
    "attention": (
        "Where the model looked when it chose its action: the share of attention (0 to 1, averaged over "
        "heads) that the action position gives each earlier token, per layer. The first token is left "
        "out and each row renormalized, because models park most attention on it (an 'attention sink')."
    ),
    "patching": (
        "Activation patching: how much of the change between the counterfactual and the real run each "
        "(layer, token) carries; 1 = the cell alone restores the real action, 0 = no effect, "
        "negative = it pushes the other way."
    ),
    "probe": (
        "Per-token probe score on the step's text, relative to the probe's per-token threshold (the level "
        "about 1% of benign tokens reach), in standard deviations of benign tokens: red tokens are above "
        "it, grey-blue tokens below it (not alarming); darker = further from the threshold."
    ),
}

# `<|name|>` (ChatML, Llama 3) or a tokenizer's classic specials; any other `<x>` is text and stays so.
_SPECIAL = re.compile(r"^<\|([A-Za-z0-9_]+)\|>$|^<(/?s|pad|unk|bos|eos)>$")
_SHOWN_CHARS = 16


def readable_token(token: str) -> str:
    """A model token as a reader would write it: no quotes, no index, special tokens plainly.

    `<|im_start|>` becomes `[im_start]`, a newline `↵`, a run of spaces `␣`; leading and trailing spaces
    are dropped (the tick spacing already separates tokens). Not escaped: pass the result to
    `plotly_text` (the axis helpers here do).
    """
    special = _SPECIAL.match(token.strip())
    if special:
        return f"[{special.group(1) or special.group(2)}]"
    shown = token.replace("\r\n", "↵").replace("\n", "↵").replace("\t", "⇥").strip(" ")
    if not shown:
        return "␣"
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 1] + "…"


def token_axis(tokens: Sequence[str], positions: Sequence[int], title: str) -> dict[str, Any]:
    """An x axis whose ticks are readable tokens at numeric positions.

    Why numeric positions with tick text: Plotly merges equal category labels, so two `the` tokens
    would collapse into one column; positions keep them apart without printing an index.
    """
    text = [plotly_text(readable_token(tokens[p])) if 0 <= p < len(tokens) else str(p) for p in positions]
    return {
        "title": title,
        "tickmode": "array",
        "tickvals": list(positions),
        "ticktext": text,
        "tickangle": -45,
    }


def _hover_tokens(tokens: Sequence[str], positions: Sequence[int], rows: int) -> list[list[str]]:
    shown = [plotly_text(readable_token(tokens[p])) if 0 <= p < len(tokens) else str(p) for p in positions]
    return [shown] * rows


def logit_lens_heatmap(data: dict[str, Any]) -> go.Figure:
    """Logit lens: per layer (rows) and position (columns) the top-1 token, shaded by its probability."""
    layers = list(data.get("layers", []))
    tokens = list(data.get("tokens", []))
    top = data.get("top_tokens", [])
    positions = list(data.get("positions") or range(len(top[0]) if top else 0))
    z, text = [], []
    for per_layer in top:
        z.append([float(cands[0][1]) if cands else 0.0 for cands in per_layer])
        text.append([plotly_text(readable_token(str(cands[0][0]))) if cands else "" for cands in per_layer])
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=positions,
            y=[f"L{layer}" for layer in layers],
            text=text,
            customdata=_hover_tokens(tokens, positions, len(z)),
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": {"text": "probability<br>of top-1 (0–1)"}},
            hovertemplate="layer %{y}, input %{customdata}<br>predicts %{text} (p = %{z:.2f})<extra></extra>",
        )
    )
    fig.update_layout(
        **BASE_LAYOUT,
        height=max(280, 22 * len(layers) + 150),
        title="logit lens: the top-1 next-token prediction per layer",
        xaxis=token_axis(tokens, positions, "input token"),
        yaxis={"title": "layer"},
    )
    return fig


def target_rank_line(data: dict[str, Any]) -> go.Figure:
    """How early the model 'knew' its action: the action token's probability per layer."""
    target = readable_token(str(data.get("target_token") or data.get("action_token") or "action token"))
    fig = go.Figure(
        go.Scatter(
            x=list(data.get("layers", [])),
            y=list(data.get("target_prob", [])),
            mode="lines+markers",
            name=plotly_text(f"p({target})"),
            showlegend=True,
            line={"color": KIND_COLORS["llm"]},
        )
    )
    fig.update_layout(
        **BASE_LAYOUT,
        height=260,
        xaxis_title="layer",
        yaxis={"title": "probability (0–1)", "range": [0, 1.02]},
        title="the action token's probability per layer",
        legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
    )
    return fig


def attention_matrix(weights: Sequence[Sequence[Sequence[float]]]) -> list[list[float]]:
    """Per layer, the attention of the query to each key position from 1 on, averaged over heads.

    The first position (an attention sink: most heads park most of their weight there) is dropped and
    each row renormalized to sum to 1, so the rest of the text is not washed out.
    """
    z = []
    for per_layer in weights:
        heads = [list(h) for h in per_layer] or [[]]
        width = max(len(h) for h in heads)
        mean = [sum(h[i] for h in heads if i < len(h)) / len(heads) for i in range(width)]
        rest = mean[1:]
        total = sum(rest)
        z.append([v / total for v in rest] if total > 0 else rest)
    return z


def attention_heatmap(data: dict[str, Any]) -> go.Figure:
    """Attention of the action position to every earlier position but the first, averaged over heads."""
    tokens = list(data.get("tokens", []))
    z = attention_matrix(data.get("weights", []))
    positions = list(range(1, 1 + (len(z[0]) if z else 0)))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=positions,
            y=[f"L{layer}" for layer in data.get("layers", [])],
            customdata=_hover_tokens(tokens, positions, len(z)),
            colorscale="Purples",
            zmin=0,
            colorbar={"title": {"text": "share of<br>attention (0–1)"}},
            hovertemplate="layer %{y}, token %{customdata}<br>share %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        **BASE_LAYOUT,
        height=max(260, 22 * len(z) + 150),
        title="attention from the action position (first token left out, rows renormalized)",
        xaxis=token_axis(tokens, positions, "earlier token"),
        yaxis={"title": "layer"},
    )
    return fig


def patching_heatmap(data: dict[str, Any]) -> go.Figure:
    """Activation patching: how much restoring each (layer, position) moves the metric toward the real run."""
    tokens = list(data.get("tokens", []))
    positions = list(data.get("positions", []))
    layers = list(data.get("layers", []))
    fig = go.Figure(
        go.Heatmap(
            z=data.get("effect", []),
            x=positions,
            y=[f"L{layer}" for layer in layers],
            customdata=_hover_tokens(tokens, positions, len(layers)),
            colorscale="RdBu",
            zmid=0,
            colorbar={"title": {"text": "share of the<br>change (1 = all)"}},
            hovertemplate="layer %{y}, token %{customdata}<br>effect %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        **BASE_LAYOUT,
        height=max(260, 22 * len(layers) + 150),
        title=plotly_text(f"activation patching ({data.get('metric', 'metric')})"),
        xaxis=token_axis(tokens, positions, "input token"),
        yaxis={"title": "layer"},
    )
    return fig
