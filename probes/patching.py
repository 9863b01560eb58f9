"""Activation patching between the real scratchpad and a counterfactual one the investigator writes.

Question answered: which layers and positions carry the difference between "what it thought" and
"what it might have thought" into the action? The metric is the log-probability of the real action's
first token at the action position. Patching the clean (real) residual stream at (layer, position) into
the counterfactual run and watching the metric come back says how much that cell carries:
effect = (patched - counterfactual) / (real - counterfactual), 1 = carries all of it.

Two methods. "attribution" (default) is the first-order estimate of every cell from one forward and
one backward pass (Nanda 2023, "attribution patching"): cheap enough for the whole grid on a CPU.
"exact" runs one patched forward per cell on a coarse grid: slower, no approximation.

Positions are paired by a token-level edit alignment (difflib's SequenceMatcher over the token ids,
between the shared prefix and the shared tail): each token is compared with the same token in the
counterfactual, however many tokens the edit added or removed before it, and a replaced token with its
replacement; a token the edit added or removed has no partner and no cell. Tokens before the first
edited one are the same text in both runs, so the same activations (the model is causal): their effect
is exactly zero, they get no cell, and the counterfactual pass resumes from the first edited token on
the real pass's cached keys and values (probes/prefix.py) instead of reading the prefix again.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

import torch

from probes.hooks import Captured, forward_capture, keep_logits, rows_at
from probes.models import LoadedModel
from probes.prefix import cache_kwargs, resume_from, shared_prefix
from probes.text import StepText
from workbench.errors import WorkbenchError

METRIC = "log-probability of the action's first token at the action position"
ALIGNMENT = "token edit alignment (difflib.SequenceMatcher over token ids)"


def resid_pre_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_pre"


def _metric(logits: torch.Tensor, position: int, target: int) -> torch.Tensor:
    return torch.log_softmax(logits[..., position, :].float(), dim=-1)[..., target]


def aligned_positions(clean: StepText, corrupt: StepText, max_positions: int) -> list[tuple[int, int]]:
    """(clean position, counterfactual position) pairs from the first edited token up to each action
    position, paired by the token edit alignment. Beyond `max_positions` pairs, the edited tokens keep
    up to half of the cells and the tokens nearest the action the rest."""
    a, b = clean.token_ids, corrupt.token_ids
    start = shared_prefix(a, b)
    tail = shared_prefix(a[start:][::-1], b[start:][::-1])
    pairs: list[tuple[int, int]] = []
    edited: list[tuple[int, int]] = []
    matcher = SequenceMatcher(None, a[start : len(a) - tail], b[start : len(b) - tail], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for k in range(min(i2 - i1, j2 - j1)):  # "insert" and "delete" pair nothing
            pair = (start + i1 + k, start + j1 + k)
            pairs.append(pair)
            if tag != "equal":
                edited.append(pair)
    pairs += [(len(a) - tail + k, len(b) - tail + k) for k in range(tail)]
    pairs = [(c, r) for c, r in pairs if c <= clean.action_position and r <= corrupt.action_position]
    if len(pairs) > max_positions:
        keep = set(edited[: max_positions // 2])
        rest = [p for p in pairs if p not in keep]
        keep |= set(rest[len(rest) - (max_positions - len(keep)) :])
        pairs = sorted(keep)
    return pairs


def _target(clean: StepText, action_logits: torch.Tensor) -> int:
    if clean.action_token_id is not None:
        return clean.action_token_id
    return int(action_logits.argmax())


class _Counterfactual:
    """The counterfactual's tokens from `start` on, and the keywords that resume a pass there and
    unembed only the action position (the metric's)."""

    def __init__(self, corrupt: StepText, start: int, cache: Any) -> None:
        self.start = start
        self.cache = cache if start > 0 else None
        self.tokens = torch.tensor([corrupt.token_ids[start:]], dtype=torch.long)
        self.action = corrupt.action_position - start

    def local(self, positions: list[int]) -> list[int]:
        return [p - self.start for p in positions]

    def kwargs(self, batch: int = 1) -> dict[str, Any]:
        resume = cache_kwargs(resume_from(self.cache, self.start, batch)) if self.cache is not None else {}
        return {**resume, **keep_logits([self.action])}

    def metric(self, logits: torch.Tensor, target: int) -> torch.Tensor:
        """The metric per batch row from a pass given `kwargs()`."""
        return _metric(rows_at(logits, [self.action], self.tokens.shape[1]), 0, target)


def patching(
    model: LoadedModel,
    clean: StepText,
    corrupt: StepText,
    method: str = "attribution",
    max_positions: int = 48,
    layers: list[int] | None = None,
    clean_run: Captured | None = None,
    reuse_prefix: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the patching analysis; returns (data, summary) in the probe_results shape.

    `clean_run` is the real text's pass when the caller already has it (the runner's, with
    `resid_pre_layers` and `keep_cache`), saving a forward pass here. `reuse_prefix=False` recomputes
    the counterfactual from its first token: the same numbers, slower (the tests compare the two).
    """
    if method not in ("attribution", "exact"):
        raise ValueError(f"unknown patching method {method!r}; use attribution or exact")
    n_layers = model.n_layers
    pairs = aligned_positions(clean, corrupt, max_positions)
    if not pairs:
        raise WorkbenchError("the counterfactual reads the same as the real step up to the action")
    clean_pos = [c for c, _ in pairs]
    corrupt_pos = [r for _, r in pairs]
    if layers is None:
        layers = (
            list(range(n_layers))
            if method == "attribution"
            else sorted({round(i * (n_layers - 1) / 5) for i in range(6)})
        )
    if clean_run is None or clean_run.logits is None or any(lay not in clean_run.resid_pre for lay in layers):
        clean_run = forward_capture(
            model,
            clean.token_ids,
            resid_pre_layers=layers,
            keep_cache=reuse_prefix,
            logit_positions=[clean.action_position],
        )
    clean_acts = {lay: clean_run.resid_pre[lay][clean_pos] for lay in layers}
    action_logits = clean_run.logits_at(clean.action_position)
    target = _target(clean, action_logits)
    clean_value = float(_metric(action_logits.unsqueeze(0), 0, target))
    cache = clean_run.cache if reuse_prefix else None
    cf = _Counterfactual(corrupt, min(corrupt_pos) if cache is not None else 0, cache)

    run = _attribution if method == "attribution" else _exact
    effect, corrupt_value = run(model, cf, layers, corrupt_pos, clean_acts, target, clean_value)

    flat = [(abs(v), li, pi) for li, row in enumerate(effect) for pi, v in enumerate(row)]
    _, best_l, best_p = max(flat)
    data = {
        "layers": layers,
        "positions": clean_pos,
        "counterfactual_positions": corrupt_pos,
        "alignment": ALIGNMENT,
        "resumed_from": cf.start,
        "effect": [[round(v, 6) for v in row] for row in effect],
        "metric": METRIC,
        "method": method,
        "hook": "hook_resid_pre",
        "clean_value": clean_value,
        "corrupt_value": corrupt_value,
        "counterfactual_text": corrupt.step_text,
        "counterfactual_tokens": corrupt.tokens,
    }
    summary = {"max_effect_layer": layers[best_l], "max_effect_position": clean_pos[best_p], "method": method}
    return data, summary


def _normalizer(clean_value: float, corrupt_value: float) -> float:
    diff = clean_value - corrupt_value
    return diff if abs(diff) > 1e-6 else 1.0  # no difference to explain: report raw changes


def _attribution(
    model: LoadedModel,
    cf: _Counterfactual,
    layers: list[int],
    positions: list[int],
    clean_acts: dict[int, torch.Tensor],
    target: int,
    clean_value: float,
) -> tuple[list[list[float]], float]:
    acts: dict[int, torch.Tensor] = {}
    grads: dict[int, torch.Tensor] = {}
    local = cf.local(positions)
    first = min(layers)

    def keep(layer: int) -> Any:
        def hook(tensor: torch.Tensor, hook: Any) -> torch.Tensor:
            if layer == first:
                # Gradients are wanted for activations only: the model's weights do not require grad,
                # so the backward pass skips every weight gradient (about half its cost and a copy of
                # the weights in memory). The first patched layer's input becomes the leaf.
                tensor = tensor.detach().requires_grad_(True)
            acts[layer] = tensor[0, local].detach().clone()

            def on_grad(g: torch.Tensor) -> None:
                grads[layer] = g[0, local].detach().clone()

            tensor.register_hook(on_grad)
            return tensor

        return hook

    with (
        torch.enable_grad(),
        model.bridge.hooks(fwd_hooks=[(resid_pre_hook(lay), keep(lay)) for lay in layers]),
    ):
        value = cf.metric(model.bridge(cf.tokens, **cf.kwargs()), target)[0]
        value.backward()
    model.bridge.zero_grad(set_to_none=True)
    corrupt_value = float(value.detach())
    norm = _normalizer(clean_value, corrupt_value)
    effect = [
        (((clean_acts[lay] - acts[lay].float()) * grads[lay].float()).sum(dim=-1) / norm).tolist()
        for lay in layers
    ]
    return effect, corrupt_value


@torch.no_grad()
def _exact(
    model: LoadedModel,
    cf: _Counterfactual,
    layers: list[int],
    positions: list[int],
    clean_acts: dict[int, torch.Tensor],
    target: int,
    clean_value: float,
) -> tuple[list[list[float]], float]:
    corrupt_value = float(cf.metric(model.bridge(cf.tokens, **cf.kwargs()), target)[0])
    norm = _normalizer(clean_value, corrupt_value)
    batch = cf.tokens.repeat(len(positions), 1)
    rows = torch.arange(len(positions))
    local = cf.local(positions)
    effect = []
    for layer in layers:

        def patch(tensor: torch.Tensor, hook: Any, layer: int = layer) -> torch.Tensor:
            tensor = tensor.clone()
            tensor[rows, local] = clean_acts[layer].to(tensor.dtype)
            return tensor

        with model.bridge.hooks(fwd_hooks=[(resid_pre_hook(layer), patch)]):
            values = cf.metric(model.bridge(batch, **cf.kwargs(len(positions))), target)
        effect.append(((values - corrupt_value) / norm).tolist())
    return effect, corrupt_value
