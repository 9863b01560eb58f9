"""What the action attended to: per layer and head, the attention of the action position to every
earlier token.

Why only one query row: the full pattern is layers x heads x positions^2 (hundreds of MB for a long
step); the investigator asks what the decision looked at, which is one row per head. The hook slices
that row out during the forward pass, so memory grows with tokens x hooks, not tokens squared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from probes.text import StepText

LAST_LAYERS = 4  # the summary averages these: late layers move information into the prediction


def pattern_hook(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_pattern"


def row_catcher(store: dict[int, torch.Tensor], layer: int, query: int) -> Callable[..., None]:
    """A forward hook that keeps only pattern[0, :, query, :query+1] (heads x keys) of one layer."""

    def hook(tensor: torch.Tensor, hook: Any) -> None:
        store[layer] = tensor[0, :, query, : query + 1].detach().float().clone()

    return hook


def attention_result(st: StepText, rows: dict[int, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
    layers = sorted(rows)
    heads = int(rows[layers[0]].shape[0]) if layers else 0
    weights = [[[round(float(w), 5) for w in head] for head in rows[layer]] for layer in layers]
    late = torch.stack([rows[layer] for layer in layers[-LAST_LAYERS:]]).mean(dim=(0, 1)) if layers else None
    top: list[list[Any]] = []
    if late is not None:
        late = late.clone()
        if late.shape[0] > 1:
            late[0] = 0.0  # the first token is an attention sink in most models: it says nothing here
        # The summary names words of the step (the investigator's question is which of its words the
        # action looked at); template tokens like newlines and role names stay in the full weights.
        template = [i for i in range(late.shape[0]) if st.char_spans[i] is None]
        if len(template) < late.shape[0]:
            late[template] = 0.0
        values, idx = late.topk(min(5, late.shape[0]))
        top = [[st.tokens[int(i)], round(float(v), 5)] for v, i in zip(values, idx, strict=True)]
    data = {"layers": layers, "heads": heads, "query_position": st.action_position, "weights": weights}
    return data, {"top_tokens": top}
