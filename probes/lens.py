"""The logit lens: read each layer's residual stream through the final norm and unembedding.

Why: it shows at which depth the model's next-token guess becomes the action it finally took. If the
action's first token is already top-1 in an early layer, the decision was formed early and the rest of
the scratchpad did not change it.
"""

from __future__ import annotations

from typing import Any

import torch

from probes.models import LoadedModel
from probes.text import StepText

TOP_K = 5


def resid_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


def lens_positions(st: StepText, max_positions: int) -> list[int]:
    """Positions to decode at every layer: all of them for short texts, else the last ones before and
    at the action (where the decision forms) plus an even sample of the rest, action position always in."""
    n = len(st.token_ids)
    if n <= max_positions:
        return list(range(n))
    tail = max_positions // 2
    end = st.action_position + 1
    recent = list(range(max(0, end - tail), end))
    rest = max_positions - len(recent)
    sample = [round(i * (n - 1) / max(1, rest - 1)) for i in range(rest)]
    return sorted(set(recent) | set(sample) | {st.action_position})


@torch.no_grad()
def layer_logits(model: LoadedModel, resid: torch.Tensor) -> torch.Tensor:
    """Logits the model would give if the residual stream `resid` [pos, d_model] were its last layer."""
    bridge = model.bridge
    return bridge.unembed(bridge.ln_final(resid.unsqueeze(0)))[0]


@torch.no_grad()
def logit_lens(
    model: LoadedModel,
    st: StepText,
    resid: dict[int, torch.Tensor],
    action_logits: torch.Tensor,
    max_positions: int = 48,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Top tokens per layer at sampled positions, and the rank/probability of the action's first token
    at the action position per layer. `resid` maps layer -> [pos, d_model] (hook_resid_post);
    `action_logits` [vocab] are the model's own logits at the action position."""
    layers = sorted(resid)
    positions = lens_positions(st, max_positions)
    target = st.action_token_id
    if target is None:  # no action: follow what the model itself would say next
        target = int(action_logits.argmax())
    decode = model.tokenizer.decode
    top_tokens: list[list[list[list[Any]]]] = []
    ranks: list[int] = []
    probs: list[float] = []
    pos_index = torch.tensor(positions)
    at = positions.index(st.action_position)
    # All layers in one unembedding call: the unembedding matrix (d_model x vocab, 113 MB for SmolLM2)
    # is then read from memory once, not once per layer; per layer it was most of the lens' time.
    # Probabilities only where read (top k, the target): exp(logit - logsumexp) of those entries, not a
    # softmax of the whole [layers x positions, vocab] matrix; ranks compare logits (same order).
    stacked = torch.cat([resid[layer][pos_index] for layer in layers])
    logits_all = layer_logits(model, stacked).float()
    lse_all = torch.logsumexp(logits_all, dim=-1)
    top_all, top_ids = logits_all.topk(TOP_K, dim=-1)
    top_probs = torch.exp(top_all - lse_all.unsqueeze(-1))
    for li in range(len(layers)):
        rows = slice(li * len(positions), (li + 1) * len(positions))
        top_tokens.append(
            [
                [[decode([int(t)]), round(float(v), 6)] for v, t in zip(vs, ts, strict=True)]
                for vs, ts in zip(top_probs[rows], top_ids[rows], strict=True)
            ]
        )
        row = logits_all[li * len(positions) + at]
        ranks.append(int((row > row[target]).sum()))
        probs.append(float(torch.exp(row[target] - lse_all[li * len(positions) + at])))
    first_top1 = next((layer for layer, r in zip(layers, ranks, strict=True) if r == 0), None)
    data = {
        "layers": layers,
        "positions": positions,
        "top_tokens": top_tokens,
        "target_token": decode([target]),
        "target_rank": ranks,
        "target_prob": probs,
    }
    return data, {"first_layer_top1": first_top1, "final_prob": probs[-1] if probs else 0.0}
